"""The parameter kinds of the task generators, and the error they raise.

Each kind validates one keyword parameter (`check` returns the canonical, JSON-able value or raises
`GeneratorError` naming the parameter and what it allows) and describes itself for docs/lab.md
(`allowed`). Kept apart from the generators so a new generator (here or in a plugin module such
as `expression_tasks.py`) picks its parameters from one list.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any

from .task_families import SuiteError


class GeneratorError(SuiteError):
    """A generator name, parameter or index is invalid; the message names it and the allowed values."""


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
        if (
            not isinstance(pair, (list, tuple))
            or len(pair) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
            or not lo_b <= pair[0] <= pair[1] <= hi_b
        ):
            raise GeneratorError(
                f"{where} must be an integer or [low, high] with {lo_b} <= low <= high <= {hi_b}, got {value!r}"
            )
        return [int(pair[0]), int(pair[1])]

    def allowed(self) -> str:
        return f"integer or [low, high] within [{self.bounds[0]}, {self.bounds[1]}]"


@dataclass(frozen=True)
class FloatRange:
    """A range [low, high] drawn from per task (a single number fixes it); bounds are inclusive."""

    default: tuple[float, float]
    bounds: tuple[float, float]
    doc: str
    positive: bool = False  # low must be > 0 (log-uniform laws, widths)

    def check(self, where: str, value: Any) -> list[float]:
        pair = [value, value] if _is_number(value) else value
        lo_b, hi_b = self.bounds
        if (
            not isinstance(pair, (list, tuple))
            or len(pair) != 2
            or not all(_is_number(v) for v in pair)
            or not lo_b <= pair[0] <= pair[1] <= hi_b
            or (self.positive and pair[0] <= 0)
        ):
            strict = " and low > 0" if self.positive else ""
            raise GeneratorError(
                f"{where} must be a number or [low, high] with {lo_b} <= low <= high <= {hi_b}{strict}, got {value!r}"
            )
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
            raise GeneratorError(
                f"{where} must be one of {', '.join(self.options)} or a non-empty list of them, got {value!r}"
            )
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
        return (
            f"number in {'(' if self.open_bounds else '['}{self.bounds[0]}, {self.bounds[1]}"
            f"{')' if self.open_bounds else ']'}"
        )


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
