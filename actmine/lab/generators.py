"""Task generators: families as distributions of tasks, drawn deterministically by index.

A generator is a family with documented parameters. `draw(index)` returns one `Task`, and the draw
depends only on (generator name, parameters, index): the random state comes from `stable_seed` of
those three, never from a global RNG, so a pool of thousands of tasks is the same in every
process and run, and per-task reference numbers (ReLU's errors) can be cached once.

A drawn task records {"generator", "params", "index", "name"} as its `spec` and its generator's
family as its `family` (so scores group by family as before); `tasks.build_task` sees the
"generator" field and redraws it, so `build_task(task.to_dict())` rebuilds any drawn task.
`params()` returns every parameter with defaults filled in, so the spec (and any cache key built
from it) does not change meaning if a default changes later.

Generators here: `polynomial`, `harmonic`, `feynman`. The random-expression generator
(`expression`) registers itself from `actmine.lab.expression_tasks`; `get_generator` imports that
module on demand. The fixed families of `tasks.py` (and the `lab` / `lab-heldout` suites) are
untouched: these generators are new constructors beside them. docs/lab.md, "Task generators",
documents every parameter.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import importlib
import importlib.util
import sys
import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from .task_families import Box, SuiteError, Task, feynman_equations, formula, parse_expression, stable_seed


class GeneratorError(SuiteError):
    """A generator name, parameter or index is invalid; the message names it and the allowed values."""


@runtime_checkable
class TaskGenerator(Protocol):
    """A family of tasks with documented parameters, drawn by index."""

    name: str       # registry name: "polynomial", "harmonic", "feynman", "expression"
    family: str     # the Task.family of its draws

    def params(self) -> dict:
        """Every parameter, defaults filled in, JSON-able: part of each draw's spec and cache keys."""
        ...

    def draw(self, index: int) -> Task:
        """The task at `index`: deterministic in (name, params, index); distinct for distinct indexes."""
        ...


GENERATORS: dict[str, Callable[..., TaskGenerator]] = {}

# Modules that register generators of their own; imported on first lookup so that asking for
# "expression" works whichever module the caller imported first.
_PLUGIN_MODULES = ("actmine.lab.expression_tasks",)


def register_generator(name: str) -> Callable[[Callable[..., TaskGenerator]], Callable[..., TaskGenerator]]:
    """Decorator: register a generator constructor (called with the parameters as keywords)."""
    def decorate(constructor: Callable[..., TaskGenerator]) -> Callable[..., TaskGenerator]:
        if name in GENERATORS and GENERATORS[name] is not constructor:
            raise ValueError(f"a generator named {name!r} is already registered")
        GENERATORS[name] = constructor
        return constructor
    return decorate


def _load_plugins() -> None:
    for module in _PLUGIN_MODULES:
        if module not in sys.modules and importlib.util.find_spec(module) is not None:
            importlib.import_module(module)


def generator_names() -> list[str]:
    _load_plugins()
    return sorted(GENERATORS)


def get_generator(name: str, **params: Any) -> TaskGenerator:
    """The generator `name` with `params` (unknown or out-of-range parameters raise GeneratorError)."""
    _load_plugins()
    if name not in GENERATORS:
        close = difflib.get_close_matches(str(name), GENERATORS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise GeneratorError(f"unknown generator {name!r}{hint} (known: {', '.join(sorted(GENERATORS))})")
    return GENERATORS[name](**params)


def boxes_disjoint(a: Box, b: Box) -> bool:
    """True when the boxes share no interior point: some coordinate's intervals meet at most at an end."""
    return any(a_hi <= b_lo or b_hi <= a_lo for (a_lo, a_hi), (b_lo, b_hi) in zip(a, b))


# --------------------------------------------------------------------------------------------
# Parameters: each one validates itself and says what it allows
# --------------------------------------------------------------------------------------------

def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class IntRange:
    """An inclusive integer range [low, high] drawn from per task (a single integer fixes it)."""

    default: tuple[int, int]
    bounds: tuple[int, int]
    doc: str

    def check(self, where: str, value: Any) -> list[int]:
        pair = [value, value] if isinstance(value, int) and not isinstance(value, bool) else value
        lo_b, hi_b = self.bounds
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
                or not lo_b <= pair[0] <= pair[1] <= hi_b):
            raise GeneratorError(f"{where} must be an integer or [low, high] with {lo_b} <= low <= high <= {hi_b}, "
                                 f"got {value!r}")
        return [int(pair[0]), int(pair[1])]

    def allowed(self) -> str:
        return f"integer or [low, high] within [{self.bounds[0]}, {self.bounds[1]}]"


@dataclass(frozen=True)
class FloatRange:
    """A range [low, high] drawn from per task (a single number fixes it); bounds are inclusive."""

    default: tuple[float, float]
    bounds: tuple[float, float]
    doc: str
    positive: bool = False   # low must be > 0 (log-uniform laws, widths)

    def check(self, where: str, value: Any) -> list[float]:
        pair = [value, value] if _is_number(value) else value
        lo_b, hi_b = self.bounds
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2 or not all(_is_number(v) for v in pair)
                or not lo_b <= pair[0] <= pair[1] <= hi_b or (self.positive and pair[0] <= 0)):
            strict = " and low > 0" if self.positive else ""
            raise GeneratorError(f"{where} must be a number or [low, high] with {lo_b} <= low <= high <= {hi_b}"
                                 f"{strict}, got {value!r}")
        return [float(pair[0]), float(pair[1])]

    def allowed(self) -> str:
        strict = ", low > 0" if self.positive else ""
        return f"number or [low, high] within [{self.bounds[0]}, {self.bounds[1]}]{strict}"


@dataclass(frozen=True)
class Choices:
    """A non-empty subset of named options; each draw picks one uniformly."""

    default: tuple[str, ...]
    options: tuple[str, ...]
    doc: str

    def check(self, where: str, value: Any) -> list[str]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not items or not all(isinstance(v, str) for v in items):
            raise GeneratorError(f"{where} must be one of {', '.join(self.options)} or a non-empty list of them, "
                                 f"got {value!r}")
        for item in items:
            if item not in self.options:
                close = difflib.get_close_matches(item, self.options, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise GeneratorError(f"{where}: unknown option {item!r}{hint}; allowed: {', '.join(self.options)}")
        if len(set(items)) != len(items):
            raise GeneratorError(f"{where} lists an option twice: {list(items)!r}")
        return [str(v) for v in items]

    def allowed(self) -> str:
        return f"one or more of {', '.join(self.options)}"


@dataclass(frozen=True)
class Number:
    """One fixed number (not drawn), within open or closed bounds."""

    default: float
    bounds: tuple[float, float]
    doc: str
    open_bounds: bool = False

    def check(self, where: str, value: Any) -> float:
        lo, hi = self.bounds
        inside = _is_number(value) and ((lo < value < hi) if self.open_bounds else (lo <= value <= hi))
        if not inside:
            relation = "strictly between" if self.open_bounds else "between"
            raise GeneratorError(f"{where} must be a number {relation} {lo} and {hi}, got {value!r}")
        return float(value)

    def allowed(self) -> str:
        return f"number in {'(' if self.open_bounds else '['}{self.bounds[0]}, {self.bounds[1]}" \
               f"{')' if self.open_bounds else ']'}"


@dataclass(frozen=True)
class Count:
    """One fixed positive integer (not drawn)."""

    default: int
    bounds: tuple[int, int]
    doc: str

    def check(self, where: str, value: Any) -> int:
        if not (isinstance(value, int) and not isinstance(value, bool) and self.bounds[0] <= value <= self.bounds[1]):
            raise GeneratorError(f"{where} must be an integer in [{self.bounds[0]}, {self.bounds[1]}], got {value!r}")
        return int(value)

    def allowed(self) -> str:
        return f"integer in [{self.bounds[0]}, {self.bounds[1]}]"


class ParametrisedGenerator:
    """Base of the generators here: validates keyword parameters against `PARAMETERS`.

    Subclasses set `name`, `family`, `PARAMETERS` ({param: IntRange | FloatRange | Choices | ...})
    and implement `_draw(rng, index)`. Parameters may also be cross-checked in `_validate`.
    """

    name: str = ""
    family: str = ""
    PARAMETERS: dict[str, Any] = {}

    def __init__(self, **params: Any):
        unknown = sorted(set(params) - set(self.PARAMETERS))
        if unknown:
            close = difflib.get_close_matches(unknown[0], self.PARAMETERS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise GeneratorError(f"generator {self.name!r}: unknown param {unknown[0]!r}{hint}; "
                                 f"allowed: {', '.join(self.PARAMETERS)}")
        self._params = {}
        for key, spec in self.PARAMETERS.items():
            value = params.get(key, spec.default)
            self._params[key] = spec.check(f"generator {self.name!r}: param {key!r}", value)
        self._validate()
        canonical = json.dumps(self._params, sort_keys=True)
        defaults = json.dumps(type(self).default_params(), sort_keys=True)
        # Draws with non-default parameters carry a short digest in their name, so that two
        # entries of one suite (same generator, other parameters) never produce the same name.
        self._label = self.name if canonical == defaults else \
            f"{self.name}-{hashlib.sha256(canonical.encode()).hexdigest()[:6]}"

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        return {key: spec.check(f"generator {cls.name!r}: default of {key!r}", spec.default)
                for key, spec in cls.PARAMETERS.items()}

    @classmethod
    def describe(cls) -> list[dict[str, str]]:
        """[{param, default, allowed, doc}] for documentation and error messages."""
        return [{"param": key, "default": json.dumps(spec.check(key, spec.default)), "allowed": spec.allowed(),
                 "doc": spec.doc} for key, spec in cls.PARAMETERS.items()]

    def _validate(self) -> None:
        """Cross-parameter checks; raise GeneratorError naming the param."""

    def params(self) -> dict[str, Any]:
        return json.loads(json.dumps(self._params))   # a copy the caller may change

    def _check_index(self, index: Any) -> int:
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool) or index < 0:
            raise GeneratorError(f"generator {self.name!r}: index must be a non-negative integer, got {index!r}")
        return int(index)

    def draw(self, index: int) -> Task:
        index = self._check_index(index)
        rng = np.random.default_rng(stable_seed("generator", self.name, self._params, index))
        return self._draw(rng, index)

    def _spec(self, index: int, name: str) -> dict[str, Any]:
        return {"generator": self.name, "params": self.params(), "index": index, "name": name}

    def _task_name(self, index: int) -> str:
        return f"{self._label}-{index}"

    def _draw(self, rng: np.random.Generator, index: int) -> Task:
        raise NotImplementedError


def _uniform(rng: np.random.Generator, pair: Sequence[float]) -> float:
    return float(rng.uniform(pair[0], pair[1])) if pair[1] > pair[0] else float(pair[0])


def _integer(rng: np.random.Generator, pair: Sequence[int]) -> int:
    return int(rng.integers(pair[0], pair[1] + 1))


def _choice(rng: np.random.Generator, options: Sequence[str]) -> str:
    return str(options[int(rng.integers(len(options)))])


def _magnitudes(rng: np.random.Generator, law: str, pair: Sequence[float], size: int) -> np.ndarray:
    """Positive magnitudes: `uniform` in [low, high], `log-uniform` (uniform in log) in [low, high]."""
    if law == "log-uniform":
        return np.exp(rng.uniform(math.log(pair[0]), math.log(pair[1]), size=size))
    return rng.uniform(pair[0], pair[1], size=size)


def _interval_boxes(low: float, width: float, ood_ratio: float, side: str) -> tuple[tuple[float, float],
                                                                                   tuple[float, float]]:
    """ID [low, low + width] and the OOD interval of length ood_ratio·width beyond the chosen side."""
    high = low + width
    ood = (high, high + ood_ratio * width) if side == "upper" else (low - ood_ratio * width, low)
    return (low, high), ood


# --------------------------------------------------------------------------------------------
# polynomial
# --------------------------------------------------------------------------------------------

def _uniform_monomial(rng: np.random.Generator, dim: int, degree: int, exact: bool) -> tuple[int, ...]:
    """An exponent vector drawn uniformly among monomials in `dim` variables of total degree ≤ `degree`
    (or exactly `degree`), by stars and bars: the gaps between `dim` bars placed among
    degree + dim slots are a uniform composition."""
    slots = degree + dim - (1 if exact else 0)
    bars = np.sort(rng.choice(slots, size=dim - (1 if exact else 0), replace=False))
    exponents, previous = [], -1
    for bar in bars:
        exponents.append(int(bar - previous - 1))
        previous = int(bar)
    if exact:
        exponents.append(degree - sum(exponents))
    return tuple(exponents)


@register_generator("polynomial")
class PolynomialGenerator(ParametrisedGenerator):
    """Sparse random polynomials in 1 to 32 variables on a per-draw cube, OOD beyond one face.

    Per draw: dimension d ~ U{dim}; degree D ~ U{degree}; a fraction s ~ U(sparsity) of the
    C(d+D, D) − 1 non-constant monomials of degree ≤ D is kept (at least 1, at most `max_terms`),
    chosen uniformly, one of them of degree exactly D; each coefficient has a random sign and a
    magnitude from a law drawn from `coefficient_laws` (normal: |N(0, 1)|; uniform or log-uniform
    in `coefficient_range`). ID is the cube [a, a + w]^d with a ~ U(box_low), w ~ U(box_width); OOD
    is the cube of side r·w (r ~ U(ood_width)) beyond the upper or lower face (side drawn from
    `ood_sides`), so ID and OOD share at most a face.
    """

    name = "polynomial"
    family = "polynomial"
    PARAMETERS = {
        "dim": IntRange((1, 5), (1, 32), "number of input variables"),
        "degree": IntRange((2, 5), (1, 8), "total degree (one kept monomial has exactly this degree)"),
        "sparsity": FloatRange((0.3, 1.0), (0.0, 1.0), "fraction of the non-constant monomials kept", positive=True),
        "max_terms": Count(32, (1, 256), "cap on the number of monomials (keeps high-d draws cheap)"),
        "coefficient_laws": Choices(("normal", "uniform", "log-uniform"), ("normal", "uniform", "log-uniform"),
                                    "laws of the coefficient magnitudes (signs are random); one per draw"),
        "coefficient_range": FloatRange((0.5, 2.0), (1e-3, 1e3), "magnitude range of the uniform and "
                                        "log-uniform laws", positive=True),
        "box_low": FloatRange((-0.5, 0.0), (-10.0, 10.0), "lower end a of the ID interval (every coordinate)"),
        "box_width": FloatRange((0.5, 1.0), (0.05, 10.0), "width w of the ID interval", positive=True),
        "ood_width": FloatRange((0.5, 1.0), (0.05, 4.0), "OOD width as a multiple r of w", positive=True),
        "ood_sides": Choices(("upper", "lower"), ("upper", "lower"), "which face the OOD cube lies beyond"),
    }

    def _draw(self, rng: np.random.Generator, index: int) -> Task:
        p = self._params
        dim, degree = _integer(rng, p["dim"]), _integer(rng, p["degree"])
        available = math.comb(dim + degree, degree) - 1
        n_terms = int(min(available, p["max_terms"], max(1, round(_uniform(rng, p["sparsity"]) * available))))
        monomials = [_uniform_monomial(rng, dim, degree, exact=True)]
        seen = set(monomials)
        while len(monomials) < n_terms:
            monomial = _uniform_monomial(rng, dim, degree, exact=False)
            if any(monomial) and monomial not in seen:
                seen.add(monomial)
                monomials.append(monomial)
        law = _choice(rng, p["coefficient_laws"])
        if law == "normal":
            coefficients = rng.normal(size=n_terms)
        else:
            coefficients = _magnitudes(rng, law, p["coefficient_range"], n_terms) * rng.choice([-1.0, 1.0], n_terms)
        exponents = np.array(monomials, dtype=np.int64)          # (terms, dim)
        id_interval, ood_interval = _interval_boxes(_uniform(rng, p["box_low"]), _uniform(rng, p["box_width"]),
                                                    _uniform(rng, p["ood_width"]), _choice(rng, p["ood_sides"]))

        def target(x: np.ndarray) -> np.ndarray:
            # (n, 1, d) ** (terms, d) → product over d → (n, terms) @ (terms,)
            return np.prod(x[:, None, :] ** exponents[None, :, :], axis=2) @ coefficients

        variables = tuple(f"x{i}" for i in range(dim))
        shown = " + ".join(f"{c:.3g}·" + "·".join(f"{v}^{e}" for v, e in zip(variables, m) if e)
                           for c, m in zip(coefficients[:4], monomials[:4]))
        more = f" + … ({n_terms} terms)" if n_terms > 4 else ""
        name = self._task_name(index)
        return Task(name, self.family, variables, target, (id_interval,) * dim, (ood_interval,) * dim,
                    self._spec(index, name), f"degree {degree}, {law} coefficients: {shown}{more}")


# --------------------------------------------------------------------------------------------
# harmonic
# --------------------------------------------------------------------------------------------

@register_generator("harmonic")
class HarmonicGenerator(ParametrisedGenerator):
    """Sums of sines with an optional trend or decay, in one variable; OOD beyond the ID interval.

    Per draw: ID interval [a, a + L] (a ~ U(id_start), L ~ U(id_length)); t = (x − a)/L is the
    position in ID lengths. y = E(t)·Σ_k A_k·sin(2π·c_k·t + φ_k) + T(t) with n ~ U{n_tones} tones;
    c_k are cycles per ID length (so frequencies are c_k/L per unit) from `frequency_law` over
    `cycles`; phases φ_k from `phase_law` (uniform in [0, 2π) or all zero); amplitudes A_k from
    `amplitude_law` over `amplitudes`. One envelope per draw from `envelopes`: none; linear or
    quadratic trend T = ±m·t or ±m·t² with m ~ U(trend) times the mean amplitude; decay
    E = exp(−t/τ) with τ ~ U(decay) ID lengths. OOD has length r·L (r ~ U(ood_length)) beyond the
    side drawn from `ood_sides`.

    The `cycles` default [0.3, 1.4] is the lab's calibration: up to ~1.4 periods in the ID interval
    are learned in 50 steps; 2 periods were not (docs/lab.md).
    """

    name = "harmonic"
    family = "harmonic"
    PARAMETERS = {
        "n_tones": IntRange((1, 4), (1, 16), "number of sines"),
        "frequency_law": Choices(("uniform",), ("uniform", "log-uniform"), "law of the cycles per ID length"),
        "cycles": FloatRange((0.3, 1.4), (0.01, 20.0), "cycles of each tone over the ID interval", positive=True),
        "phase_law": Choices(("uniform",), ("uniform", "zero"), "uniform in [0, 2π), or all phases 0"),
        "amplitude_law": Choices(("uniform",), ("uniform", "log-uniform"), "law of the amplitudes"),
        "amplitudes": FloatRange((0.5, 1.5), (1e-3, 1e3), "amplitude range", positive=True),
        "envelopes": Choices(("none", "linear", "quadratic", "decay"), ("none", "linear", "quadratic", "decay"),
                             "trend added or decay applied; one per draw"),
        "trend": FloatRange((0.5, 2.0), (0.0, 100.0), "trend size m per ID length, in mean amplitudes"),
        "decay": FloatRange((0.5, 2.0), (0.05, 100.0), "decay time τ in ID lengths", positive=True),
        "id_start": FloatRange((0.0, 0.0), (-100.0, 100.0), "lower end a of the ID interval"),
        "id_length": FloatRange((1.5, 3.0), (0.05, 100.0), "length L of the ID interval", positive=True),
        "ood_length": FloatRange((0.25, 0.5), (0.05, 4.0), "OOD length as a multiple r of L", positive=True),
        "ood_sides": Choices(("upper",), ("upper", "lower"), "which side of the ID interval OOD lies on"),
    }

    def _draw(self, rng: np.random.Generator, index: int) -> Task:
        p = self._params
        n = _integer(rng, p["n_tones"])
        start, length = _uniform(rng, p["id_start"]), _uniform(rng, p["id_length"])
        cycles = _magnitudes(rng, _choice(rng, p["frequency_law"]), p["cycles"], n)
        phases = rng.uniform(0.0, 2 * math.pi, size=n) if _choice(rng, p["phase_law"]) == "uniform" else np.zeros(n)
        amplitudes = _magnitudes(rng, _choice(rng, p["amplitude_law"]), p["amplitudes"], n)
        envelope = _choice(rng, p["envelopes"])
        trend = _uniform(rng, p["trend"]) * float(amplitudes.mean()) * float(rng.choice([-1.0, 1.0]))
        tau = _uniform(rng, p["decay"])
        id_interval, ood_interval = _interval_boxes(start, length, _uniform(rng, p["ood_length"]),
                                                    _choice(rng, p["ood_sides"]))

        def target(x: np.ndarray) -> np.ndarray:
            t = (x[:, :1] - start) / length
            y = np.sin(2 * math.pi * t * cycles + phases) @ amplitudes
            t = t[:, 0]
            if envelope == "decay":
                y = y * np.exp(-t / tau)
            elif envelope == "linear":
                y = y + trend * t
            elif envelope == "quadratic":
                y = y + trend * t ** 2
            return y

        tones = " + ".join(f"{a:.2f}·sin(2π·{c:.2f}·t + {f:.2f})" for a, c, f in zip(amplitudes, cycles, phases))
        extra = {"none": "", "linear": f" + {trend:.2f}·t", "quadratic": f" + {trend:.2f}·t²",
                 "decay": f", times exp(−t/{tau:.2f})"}[envelope]
        name = self._task_name(index)
        return Task(name, self.family, ("x",), target, (id_interval,), (ood_interval,), self._spec(index, name),
                    f"t = (x − {start:.2f})/{length:.2f}: {tones}{extra}")


# --------------------------------------------------------------------------------------------
# feynman
# --------------------------------------------------------------------------------------------

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
            raise GeneratorError(f"{where} must be a list of AI Feynman file names (or [] / \"all\" for every "
                                 f"equation), got {value!r}")
        known = feynman_equations()
        for equation in value:
            if equation not in known:
                close = ", ".join(difflib.get_close_matches(equation, known, n=3)) or "none"
                raise GeneratorError(f"{where}: unknown AI Feynman equation {equation!r} (close matches: {close}; "
                                     "see actmine/data/FeynmanEquations.csv)")
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
            raise GeneratorError(f"generator 'feynman': index {index} is out of range; these params offer "
                                 f"{len(self._candidates)} tasks (indexes 0..{len(self._candidates) - 1})")
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
        return Task(name, self.family, variables, target, tuple(tuple(id_box[v]) for v in variables),
                    tuple(tuple(ood_box[v]) for v in variables), self._spec(index, name),
                    f"{candidate.equation}: {eq.output} = {eq.formula} (OOD: {where})")


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
                    excluded.append(FeynmanExclusion(equation, split, v, "1 variable: the same task as "
                                                     f"{split.removeprefix('one-')!r}"))
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
                options += [FeynmanCandidate(equation, split, v) for v, _, _ in known[equation].variables
                            if (equation, split, v) not in excluded]
        per_equation[equation] = options
    ordered = []
    for rank in range(max(len(o) for o in per_equation.values())):
        ordered += [options[rank] for options in per_equation.values() if rank < len(options)]
    return tuple(ordered)


def describe_generators() -> dict[str, list[dict[str, str]]]:
    """{generator: [{param, default, allowed, doc}]} for the generators defined with `PARAMETERS`."""
    _load_plugins()
    return {name: ctor.describe() for name, ctor in sorted(GENERATORS.items()) if hasattr(ctor, "describe")}
