"""What the report says about the run itself: the machine, its load, the versions and the times
(`run_info`), and the estimate of a full run that a `--quick` report quotes."""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from .cache import PartStore
from .formatting import _duration
from .settings import Settings

FULL_ESTIMATE = (
    "not timed in this report; estimated at 2–3 hours on this 2-core machine under a similar load "
    "(lab parts with 8 seeds ~4 min, the default search ~15 min, digits with 12 epochs ~5 min, and CLRS "
    "with its defaults, 4 algorithms × 300 steps, about 8 min per job × 30 jobs ÷ 2 workers ≈ 2 h); "
    "the report of a full run records its own time. More cores and `--workers` shorten the search "
    "and the transfer; `--device cuda` the training"
)


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu})"


def _load() -> str:
    try:
        return " / ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def run_info(settings: Settings, wall: float, load_start: str, store: PartStore) -> dict[str, Any]:
    """The facts of this run for the report: date, machine, load at the start and now, versions,
    wall time and each part's compute time (``store``: which parts were computed and reused)."""
    from ..version import __version__

    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": _machine(),
        "load_start": load_start,
        "load_end": _load(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "actmine": __version__,
        "wall_seconds": wall,
        "parts_seconds": sum(store.part_seconds.values()),
        "part_seconds": store.part_seconds,
        "resumed": store.resumed,
        "full_estimate": (f"this run ({_duration(wall)})" if not settings.quick else FULL_ESTIMATE),
    }
