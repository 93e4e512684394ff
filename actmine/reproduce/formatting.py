"""Short text for numbers in the report and the progress lines: a value or "—", a duration, a list of
function names in words."""

from __future__ import annotations

import math
from collections.abc import Sequence

from .rules import short


def _f(value: float | None, fmt: str = "+.3f") -> str:
    return "—" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, fmt)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _names(names: Sequence[str]) -> str:
    names = [short(n) for n in names]
    if not names:
        return "none"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
