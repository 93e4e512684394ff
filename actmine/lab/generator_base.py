"""The generator registry and the base class every built-in generator draws through.

`register_generator` fills `GENERATORS` (looked up by `generators.get_generator`);
`ParametrisedGenerator` checks keyword parameters against its `PARAMETERS` and seeds each draw from
`stable_seed(name, params, index)`, so a draw is the same in every process. The small random helpers
below it (`_uniform`, `_interval_boxes`, ...) are the steps the generators share, the expression
generator of `expression_tasks.py` included.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from .generator_params import GeneratorError
from .task_families import Box, Task, stable_seed


@runtime_checkable
class TaskGenerator(Protocol):
    """A family of tasks with documented parameters, drawn by index."""

    name: str  # registry name: "polynomial", "harmonic", "feynman", "expression"
    family: str  # the Task.family of its draws

    def params(self) -> dict:
        """Every parameter, defaults filled in, JSON-able: part of each draw's spec and cache keys."""
        ...

    def draw(self, index: int) -> Task:
        """The task at `index`: deterministic in (name, params, index); distinct for distinct indexes."""
        ...


GENERATORS: dict[str, Callable[..., TaskGenerator]] = {}


def register_generator(name: str) -> Callable[[Callable[..., TaskGenerator]], Callable[..., TaskGenerator]]:
    """Decorator: register a generator constructor (called with the parameters as keywords)."""

    def decorate(constructor: Callable[..., TaskGenerator]) -> Callable[..., TaskGenerator]:
        if name in GENERATORS and GENERATORS[name] is not constructor:
            raise ValueError(f"a generator named {name!r} is already registered")
        GENERATORS[name] = constructor
        return constructor

    return decorate


def boxes_disjoint(a: Box, b: Box) -> bool:
    """True when the boxes share no interior point: some coordinate's intervals meet at most at an end."""
    return any(a_hi <= b_lo or b_hi <= a_lo for (a_lo, a_hi), (b_lo, b_hi) in zip(a, b))


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
            raise GeneratorError(
                f"generator {self.name!r}: unknown param {unknown[0]!r}{hint}; allowed: {', '.join(self.PARAMETERS)}"
            )
        self._params = {}
        for key, spec in self.PARAMETERS.items():
            value = params.get(key, spec.default)
            self._params[key] = spec.check(f"generator {self.name!r}: param {key!r}", value)
        self._validate()
        canonical = json.dumps(self._params, sort_keys=True)
        defaults = json.dumps(type(self).default_params(), sort_keys=True)
        # Draws with non-default parameters carry a short digest in their name, so that two
        # entries of one suite (same generator, other parameters) never produce the same name.
        self._label = (
            self.name if canonical == defaults else f"{self.name}-{hashlib.sha256(canonical.encode()).hexdigest()[:6]}"
        )

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        return {
            key: spec.check(f"generator {cls.name!r}: default of {key!r}", spec.default)
            for key, spec in cls.PARAMETERS.items()
        }

    @classmethod
    def describe(cls) -> list[dict[str, str]]:
        """[{param, default, allowed, doc}] for documentation and error messages."""
        return [
            {
                "param": key,
                "default": json.dumps(spec.check(key, spec.default)),
                "allowed": spec.allowed(),
                "doc": spec.doc,
            }
            for key, spec in cls.PARAMETERS.items()
        ]

    def _validate(self) -> None:
        """Cross-parameter checks; raise GeneratorError naming the param."""

    def params(self) -> dict[str, Any]:
        return json.loads(json.dumps(self._params))  # a copy the caller may change

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


def _interval_boxes(
    low: float, width: float, ood_ratio: float, side: str
) -> tuple[tuple[float, float], tuple[float, float]]:
    """ID [low, low + width] and the OOD interval of length ood_ratio·width beyond the chosen side."""
    high = low + width
    ood = (high, high + ood_ratio * width) if side == "upper" else (low - ood_ratio * width, low)
    return (low, high), ood
