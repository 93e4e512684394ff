"""The `feynman` generator: the AI Feynman equations of actmine/data, each with a choice of ID/OOD split.

Unlike the synthetic generators it is finite: its draws are an enumeration of (equation, split)
candidates, minus the combinations `feynman_exclusions` names with the reason. Registered by name
on import; `generators.py` imports this module, so `get_generator("feynman")` finds it.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .generator_base import ParametrisedGenerator, register_generator
from .generator_params import Choices, GeneratorError, Number
from .task_families import Task, feynman_equations, formula, parse_expression


# How the listed range of each variable is split at low + id_fraction·(high − low):
#   upper      — ID: lower part of every variable; OOD: upper part of every variable (the lab's split)
#   lower      — ID: upper part of every variable; OOD: lower part of every variable
#   one-upper  — ID as `upper`; OOD: the same box but one variable in its upper part (extrapolate in one
#                input); one task per variable the formula depends on, only for 2+ variables
#   one-lower  — the mirror of one-upper
FEYNMAN_SPLITS = ("upper", "lower", "one-upper", "one-lower")


@dataclass(frozen=True)
class FeynmanCandidate:
    """One (equation, split) the Feynman generator offers; `variable` is set for one-variable splits."""

    equation: str
    split: str
    variable: str | None = None


@dataclass(frozen=True)
class EquationList:
    """A list of AI Feynman file names; the empty list means every equation."""

    default: tuple[str, ...]
    doc: str

    def check(self, where: str, value: Any) -> list[str]:
        if value == "all":
            value = []
        if not isinstance(value, (list, tuple)) or not all(isinstance(e, str) for e in value):
            raise GeneratorError(
                f'{where} must be a list of AI Feynman file names (or [] / "all" for every equation), got {value!r}'
            )
        known = feynman_equations()
        for equation in value:
            if equation not in known:
                close = ", ".join(difflib.get_close_matches(equation, known, n=3)) or "none"
                raise GeneratorError(
                    f"{where}: unknown AI Feynman equation {equation!r} (close matches: {close}; "
                    "see actmine/data/FeynmanEquations.csv)"
                )
        if len(set(value)) != len(value):
            raise GeneratorError(f"{where} lists an equation twice: {list(value)!r}")
        return list(value)

    def allowed(self) -> str:
        return "list of AI Feynman file names; [] = all"


@register_generator("feynman")
class FeynmanGenerator(ParametrisedGenerator):
    """The AI Feynman equations of actmine/data with a choice of ID/OOD split, drawn by index.

    The candidates are enumerated in a fixed order — every equation (file order) with its first
    split, then every equation with its second, and so on (see `FEYNMAN_SPLITS`) — and `draw(i)`
    is the i-th; with the defaults indexes 0..99 are the 100 equations with the lab's `upper` split.
    So the draws are distinct by construction and the generator is finite: `len(generator)` is the
    number of candidates, and a larger index is an error that says how many there are.

    Excluded (see `feynman_exclusions`): one-variable splits on a listed variable the formula does
    not depend on (its OOD box would hold the same targets as ID), and one-variable splits of
    1-variable equations (the same task as the all-variable split). No equation is excluded for its
    ranges: every listed range gives a finite, non-constant target on both boxes of every split
    (asserted by tests/test_generators.py). Which draws are learnable is the learnability filter's
    decision (`actmine/lab/pools.py`), not this generator's.
    """

    name = "feynman"
    family = "feynman"
    PARAMETERS = {
        "splits": Choices(FEYNMAN_SPLITS, FEYNMAN_SPLITS, "the splits offered, in the order they are enumerated"),
        "id_fraction": Number(0.5, (0.0, 1.0), "where each range is split, as a fraction of it", open_bounds=True),
        "equations": EquationList((), "AI Feynman file names to offer"),
    }

    def __init__(self, **params: Any):
        super().__init__(**params)
        equations = tuple(self._params["equations"]) or tuple(feynman_equations())
        self._candidates = _feynman_candidates(equations, tuple(self._params["splits"]))

    def __len__(self) -> int:
        return len(self._candidates)

    def candidates(self) -> tuple[FeynmanCandidate, ...]:
        return self._candidates

    def draw(self, index: int) -> Task:
        index = self._check_index(index)
        if index >= len(self._candidates):
            raise GeneratorError(
                f"generator 'feynman': index {index} is out of range; these params offer "
                f"{len(self._candidates)} tasks (indexes 0..{len(self._candidates) - 1})"
            )
        candidate = self._candidates[index]
        eq = feynman_equations()[candidate.equation]
        fraction = self._params["id_fraction"]
        lower, upper = {}, {}
        for v, lo, hi in eq.variables:
            cut = lo + fraction * (hi - lo)
            lower[v], upper[v] = [lo, cut], [cut, hi]
        if candidate.split == "upper":
            id_box, ood_box = lower, upper
        elif candidate.split == "lower":
            id_box, ood_box = upper, lower
        elif candidate.split == "one-upper":
            id_box, ood_box = lower, {**lower, candidate.variable: upper[candidate.variable]}
        else:
            id_box, ood_box = upper, {**upper, candidate.variable: lower[candidate.variable]}
        name = self._task_name(index)
        variables, target = _feynman_target(candidate.equation)
        where = candidate.split + (f" in {candidate.variable}" if candidate.variable else "")
        return Task(
            name,
            self.family,
            variables,
            target,
            tuple(tuple(id_box[v]) for v in variables),
            tuple(tuple(ood_box[v]) for v in variables),
            self._spec(index, name),
            f"{candidate.equation}: {eq.output} = {eq.formula} (OOD: {where})",
        )


@functools.lru_cache(maxsize=None)
def _feynman_target(equation: str) -> tuple[tuple[str, ...], Callable[[np.ndarray], np.ndarray]]:
    """The variables and compiled target of an equation, built once per process by `tasks.formula`
    (parsing and compiling per draw would cost ~10 ms a task)."""
    eq = feynman_equations()[equation]
    full = {v: [lo, hi] for v, lo, hi in eq.variables}
    built = formula(eq.formula, id=full, ood=full, name=f"feynman-{equation}", family="feynman")
    return built.variables, built.target


@dataclass(frozen=True)
class FeynmanExclusion:
    equation: str
    split: str
    variable: str | None
    reason: str


def _depends_on(equation: str) -> frozenset[str]:
    eq = feynman_equations()[equation]
    names = [v for v, _, _ in eq.variables]
    expr = parse_expression(eq.formula, names, f"feynman-{equation}")
    return frozenset(str(s) for s in expr.free_symbols)


@functools.lru_cache(maxsize=1)
def feynman_exclusions() -> tuple[FeynmanExclusion, ...]:
    """The (equation, split, variable) combinations the Feynman generator does not offer, with why."""
    excluded = []
    for equation, eq in feynman_equations().items():
        used = _depends_on(equation)
        for split in ("one-upper", "one-lower"):
            for v, _, _ in eq.variables:
                if len(eq.variables) == 1:
                    excluded.append(
                        FeynmanExclusion(
                            equation, split, v, f"1 variable: the same task as {split.removeprefix('one-')!r}"
                        )
                    )
                elif v not in used:
                    excluded.append(FeynmanExclusion(equation, split, v, "the formula does not depend on it"))
    return tuple(excluded)


@functools.lru_cache(maxsize=64)
def _feynman_candidates(equations: tuple[str, ...], splits: tuple[str, ...]) -> tuple[FeynmanCandidate, ...]:
    excluded = {(e.equation, e.split, e.variable) for e in feynman_exclusions()}
    per_equation: dict[str, list[FeynmanCandidate]] = {}
    known = feynman_equations()
    for equation in equations:
        options = []
        for split in splits:
            if split in ("upper", "lower"):
                options.append(FeynmanCandidate(equation, split))
            else:
                options += [
                    FeynmanCandidate(equation, split, v)
                    for v, _, _ in known[equation].variables
                    if (equation, split, v) not in excluded
                ]
        per_equation[equation] = options
    ordered = []
    for rank in range(max(len(o) for o in per_equation.values())):
        ordered += [options[rank] for options in per_equation.values() if rank < len(options)]
    return tuple(ordered)
