"""What the subcommands share: exit statuses, the lab of `evaluate` and `compare`, and formats."""

from __future__ import annotations

import argparse
import math

from ..config import Config
from ..lab.fitness import Lab
from ..targets import lab_for, scoring_config

EXIT_REFUSED = 1  # the candidate was evaluated and refused (probes, divergence)
EXIT_USAGE = 2  # bad arguments, unknown names, malformed files
EXIT_BUSY = 3  # `search`: another controller holds the run directory; try again when it has finished


def lab_config(args: argparse.Namespace) -> tuple[Config, Lab]:
    """The config of `evaluate` and `compare` (their shared options, `cli._add_lab_options`, as
    overrides: `targets.scoring_config`) and its lab."""
    config = scoring_config(
        args.suite,
        seeds=args.seeds,
        steps=args.steps,
        max_flops=args.max_flops,
        allow_batch_dependent=args.allow_batch_dependent,
        timeout=args.timeout,
        memory_mb=args.memory_mb,
    )
    return config, lab_for(config, args.device)


def _fmt(value: float | None, digits: int = 3) -> str:
    """An error for the tables: `digits` significant digits, small values in exponent form, `—` if none."""
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.{digits}g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def _comma_list(text: str) -> list[str]:
    """The non-empty parts of a comma-separated option value, stripped ("a, ,b" is a and b)."""
    return [part.strip() for part in text.split(",") if part.strip()]
