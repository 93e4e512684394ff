"""What the subcommands share: exit statuses, the lab of `evaluate` and `compare`, and formats."""

from __future__ import annotations

import argparse
import math

from ..lab.fitness import Lab
from ..targets import lab_for

EXIT_REFUSED = 1     # the candidate was evaluated and refused (probes, divergence)
EXIT_USAGE = 2       # bad arguments, unknown names, malformed files
EXIT_BUSY = 3        # `search`: another controller holds the run directory; try again when it has finished


def make_lab(args: argparse.Namespace) -> Lab:
    """The lab of `evaluate` and `compare`, from their shared options (`cli._add_lab_options`)."""
    return lab_for(args.suite, seeds=args.seeds, steps=args.steps, device=args.device, max_flops=args.max_flops,
                   allow_batch_dependent=args.allow_batch_dependent)


def _fmt(value: float | None, digits: int = 3) -> str:
    """An error for the tables: `digits` significant digits, small values in exponent form, `—` if none."""
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.{digits}g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def _comma_list(text: str) -> list[str]:
    """The non-empty parts of a comma-separated option value, stripped ("a, ,b" is a and b)."""
    return [part.strip() for part in text.split(",") if part.strip()]
