"""The validity study's scatter plots: lab fitness against downstream fitness, one point per
function, labelled, coloured by why it is in the study; ReLU is (0, 0) by construction."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["ORIGIN_COLOURS", "scatter"]

ORIGIN_COLOURS = {
    "library": "tab:blue",
    "paper": "tab:red",
    "given": "tab:purple",
    "winner": "tab:green",
    "random": "tab:gray",
}


def _label(name: str) -> str:
    from ..terminal import terminal_text

    text = terminal_text(name, keep_newlines=False)
    return text if len(text) <= 28 else text[:27] + "…"


def scatter(
    points: Sequence[Mapping[str, Any]],
    correlation: Mapping[str, Any] | None,
    title: str,
    ylabel: str,
    path: str | Path,
) -> Path:
    """``points``: ``{name, origin, x, y}``. Writes a PNG to ``path`` (matplotlib's Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 6.0))
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.axvline(0.0, color="black", linewidth=0.6)
    for origin, colour in ORIGIN_COLOURS.items():
        mine = [p for p in points if p["origin"] == origin]
        if mine:
            ax.scatter([p["x"] for p in mine], [p["y"] for p in mine], s=22, color=colour, label=origin, zorder=3)
    for p in points:
        # parse_math=False: a name is a file stem, and "$" must not start TeX
        ax.annotate(
            _label(p["name"]), (p["x"], p["y"]), textcoords="offset points", xytext=(3, 3), fontsize=7, parse_math=False
        )
    rho = (correlation or {}).get("rho")
    if rho is not None and math.isfinite(rho):
        low, high = correlation.get("low"), correlation.get("high")
        interval = f" [{low:+.2f}, {high:+.2f}]" if low is not None and high is not None else ""
        title = f"{title}\nSpearman ρ = {rho:+.2f}{interval}, n = {correlation['n']}"
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("lab fitness (−mean log-ratio vs ReLU over the test tasks; > 0 beats ReLU)")
    ax.set_ylabel(ylabel)
    if points:
        ax.legend(fontsize="small", frameon=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
