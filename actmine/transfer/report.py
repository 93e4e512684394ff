"""The summary rows (`summary`: raw mean ± std, and the log-ratio against ReLU) shown three ways:
a rich table for the terminal, a grouped bar figure (``transfer.png``) and CSV text
(``summary.csv``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..report.plots import plot_label
from .summary import REFERENCE

SUMMARY_COLUMNS = ("activation", "benchmark", "metric", "n", "mean", "std", "log_ratio_vs_relu", "log_ratio_std")


def _cell_text(row: Mapping[str, Any] | None) -> str:
    if row is None:
        return "—"
    if not row["n"]:
        return f"failed ({row['failed']})"
    text = f"{row['mean']:.4f}" + (f" ± {row['std']:.4f}" if row["std"] is not None else "")
    if row["log_ratio_vs_relu"] is not None and row["activation"] != REFERENCE:
        text += f" ({row['log_ratio_vs_relu']:+.3f})"
    if row["failed"]:
        text += f" [{row['failed']} failed]"
    return text


def results_table(rows: Sequence[Mapping[str, Any]], title: str | None = None):
    """A rich Table: rows = activations, columns = benchmarks, cells "mean ± std (log-ratio)"."""
    from rich.table import Table
    from rich.text import Text

    from ..terminal import terminal_text

    activations = list(dict.fromkeys(r["activation"] for r in rows))
    benchmarks = list(dict.fromkeys(r["benchmark"] for r in rows))
    by_cell = {(r["activation"], r["benchmark"]): r for r in rows}
    metrics = {b: next((r["metric"] for r in rows if r["benchmark"] == b and r["metric"]), "") for b in benchmarks}
    title = title or "transfer: score mean ± std over seeds (log-ratio vs ReLU)"
    table = Table(title=title, min_width=len(title) + 4)  # the title on one line
    table.add_column("activation", no_wrap=True)
    for benchmark in benchmarks:
        table.add_column(
            f"{benchmark} ({metrics[benchmark]})" if metrics[benchmark] else benchmark, justify="right", no_wrap=True
        )
    for activation in activations:
        # Text, not markup: an activation's name is a file stem or a path the user gave
        table.add_row(
            Text(terminal_text(activation, keep_newlines=False)),
            *[_cell_text(by_cell.get((activation, b))) for b in benchmarks],
        )
    return table


def plot_log_ratios(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Grouped bars: per benchmark, one bar per activation (ReLU is the zero line), error bars =
    the std over seeds of the log-ratio. Written as PNG to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benchmarks = list(dict.fromkeys(r["benchmark"] for r in rows))
    activations = [a for a in dict.fromkeys(r["activation"] for r in rows) if a != REFERENCE]
    by_cell = {(r["activation"], r["benchmark"]): r for r in rows}
    fig, ax = plt.subplots(figsize=(min(16.0, max(4.0, 1.5 + 0.5 * len(benchmarks) * max(1, len(activations)))), 3.6))
    width = 0.8 / max(1, len(activations))
    colours = plt.get_cmap("tab10" if len(activations) <= 10 else "tab20")
    for i, activation in enumerate(activations):
        xs, heights, errors = [], [], []
        for j, benchmark in enumerate(benchmarks):
            row = by_cell.get((activation, benchmark))
            if row is None or row["log_ratio_vs_relu"] is None:
                continue
            xs.append(j - 0.4 + width * (i + 0.5))
            heights.append(row["log_ratio_vs_relu"])
            errors.append(row["log_ratio_std"] or 0.0)
        ax.bar(xs, heights, width, yerr=errors, capsize=3, label=plot_label(activation), color=colours(i % colours.N))
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(benchmarks)), benchmarks)
    ax.set_xlim(-0.6, len(benchmarks) - 0.4)
    ax.set_ylabel("ln(error / ReLU's error)")
    ax.set_title("log-ratio vs ReLU per benchmark (below 0: better than ReLU)")
    if activations:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    else:
        ax.text(0.5, 0.5, "only ReLU: nothing to compare", transform=ax.transAxes, ha="center")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _csv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SUMMARY_COLUMNS)
    for row in rows:
        writer.writerow(
            ["" if row[c] is None else (repr(row[c]) if isinstance(row[c], float) else row[c]) for c in SUMMARY_COLUMNS]
        )
    return buffer.getvalue()
