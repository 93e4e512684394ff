"""The report's figures (matplotlib, Agg): each `*_figure` function draws one part's data and returns
the figure; `_save` writes a figure as a 90-dpi PNG and closes it.

The package's `plot_*` functions pair the two (draw, then save through the package's `_save`, where a
caller can intercept a figure on its way to disk).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..report.plots import plot_label
from .rules import short
from .settings import REFERENCE


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _yerr(cis: Sequence[Mapping[str, Any] | None]) -> list[list[float]]:
    low = [(c["mean"] - c["low"]) if c and c.get("low") is not None else 0.0 for c in cis]
    high = [(c["high"] - c["mean"]) if c and c.get("high") is not None else 0.0 for c in cis]
    return [low, high]


def lab_figure(lab_part: Mapping, winner: Mapping | None):
    """Per suite: grouped bars (families and "all"), one bar per function, 95% intervals."""
    plt = _plt()
    suites = list(lab_part["suites"])
    fig, axes = plt.subplots(len(suites), 1, figsize=(12, 3.6 * len(suites)), squeeze=False)
    for ax, suite in zip(axes[:, 0], suites):
        data = lab_part["suites"][suite]
        entries = {n: e for n, e in data["functions"].items() if e.get("ok") and n != REFERENCE}
        if winner and winner.get("suites", {}).get(suite, {}).get("ok"):
            entries["search_winner"] = winner["suites"][suite]
        groups = list(data["families"]) + ["all"]
        _grouped_bars(
            ax,
            groups,
            {
                name: [entry["families"][g]["ci"] for g in data["families"]] + [entry["ci"]]
                for name, entry in entries.items()
            },
        )
        _label(
            ax,
            "ln(OOD error / ReLU's)",
            f"suite {suite}: {len(data['seeds'])} seeds, mean and 95% interval over seeds (below 0 beats ReLU)",
        )
    return fig


def alpha_figure(alpha_part: Mapping):
    """GELUSine's score over the α grid: mean and 95% interval, the optimum starred, the paper's α = 0.1 dashed."""
    plt = _plt()
    points = [p for p in alpha_part["points"] if p["ok"]]
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    xs = [p["alpha"] for p in points]
    ax.plot(xs, [p["ci"]["mean"] for p in points], marker="o", label="mean over seeds")
    if all(p["ci"]["low"] is not None for p in points):
        ax.fill_between(
            xs, [p["ci"]["low"] for p in points], [p["ci"]["high"] for p in points], alpha=0.25, label="95% interval"
        )
    best = alpha_part.get("best_alpha")
    if best is not None:
        point = next(p for p in points if p["alpha"] == best)
        ax.plot(
            [best],
            [point["ci"]["mean"]],
            marker="*",
            markersize=16,
            color="crimson",
            linestyle="none",
            label=f"optimum α = {best:g}",
        )
    ax.axvline(0.1, color="grey", linestyle="--", linewidth=0.8, label="paper's α = 0.1")
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("α in GELU(x) + α·sin(x)   (α = 0: GELU, tanh approximation)")
    ax.set_ylabel("ln(OOD error / ReLU's)")
    ax.set_title(
        f"GELUSine α sweep on {plot_label(alpha_part['suite'])} ({len(alpha_part['seeds'])} seeds; lower is better)"
    )
    ax.legend(fontsize="small")
    return fig


def batch_figure(batch_part: Mapping):
    """Each batch-dependent function on each suite, scored in batches (red) and one example at a time (blue)."""
    plt = _plt()
    suites = list(batch_part["suites"])
    names = batch_part["batch_dependent"]
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    labels, cis = [], []
    for suite in suites:
        for name in names:
            row = batch_part["suites"][suite][name]
            for mode in ("in_batches", "per_example"):
                entry = row.get(mode)
                if entry and entry.get("ok"):
                    labels.append(f"{short(name)}\n{suite}\n{mode.replace('_', ' ')}")
                    cis.append(entry["ci"])
    ax.bar(
        range(len(cis)),
        [c["mean"] for c in cis],
        yerr=_yerr(cis),
        capsize=3,
        color=["tab:red" if "batches" in label else "tab:blue" for label in labels],
    )
    ax.set_xticks(range(len(labels)), labels, fontsize="small")
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_ylabel("ln(OOD error / ReLU's)")
    ax.set_title("batch statistics: scored in batches (red) vs one example at a time (blue)")
    return fig


def transfer_figure(transfer_part: Mapping):
    """Per benchmark: one bar per function, mean and 95% interval of its log-ratio vs ReLU (the zero line)."""
    plt = _plt()
    rows = [r for r in transfer_part["rows"] if r["activation"] != REFERENCE]
    benchmarks = list(transfer_part["benchmarks"])
    names = list(dict.fromkeys(r["activation"] for r in rows))
    by_cell = {(r["activation"], r["benchmark"]): r for r in rows}
    fig, ax = plt.subplots(figsize=(max(6.0, 2.0 + 2.2 * len(benchmarks)), 3.8))
    _grouped_bars(
        ax,
        benchmarks,
        {name: [by_cell[(name, b)]["ci"] if (name, b) in by_cell else None for b in benchmarks] for name in names},
    )
    _label(
        ax,
        "ln(error / ReLU's error)",
        f"transfer: mean and 95% interval over {len(transfer_part['seeds'])} seeds (below 0 beats ReLU)",
    )
    return fig


def correlation_figure(analysis_part: Mapping):
    """Per downstream benchmark (and their mean): lab fitness vs downstream fitness, a point per function."""
    plt = _plt()
    keys = list(analysis_part["correlations"])
    fig, axes = plt.subplots(1, len(keys), figsize=(5.0 * len(keys), 4.0), squeeze=False)
    for i, (ax, key) in enumerate(zip(axes[0], keys)):
        corr = analysis_part["correlations"][key]
        names = corr["functions"]
        x = [analysis_part["points"][n]["lab_fitness"] for n in names]
        y = [analysis_part["points"][n]["downstream"][key] for n in names]
        ax.scatter(x, y, color=["crimson" if n == "search_winner" else "tab:blue" for n in names])
        for n, a, b in zip(names, x, y):
            ax.annotate(plot_label(short(n)), (a, b), fontsize="x-small", xytext=(3, 3), textcoords="offset points")
        ax.axhline(0.0, color="grey", linewidth=0.6)
        ax.axvline(0.0, color="grey", linewidth=0.6)
        rho = "—" if corr["rho"] is None else f"{corr['rho']:+.2f} (p = {corr['p_value']:.3f})"
        ax.set_title(f"{plot_label(key)}: Spearman ρ = {rho}", fontsize="medium")
        ax.set_xlabel("lab fitness (−ood_log_ratio)")
        if i == 0:
            ax.set_ylabel("downstream fitness (−log-ratio vs ReLU)")
    fig.tight_layout()
    return fig


def _grouped_bars(ax, groups: Sequence[str], series: Mapping[str, Sequence[Mapping[str, Any] | None]]) -> None:
    """One bar per (function, group): each function's means with 95% error bars, side by side within
    a group, in the function's colour; a missing interval (None, or no mean) leaves its slot empty.
    Draws the zero line (ReLU) and the group ticks."""
    width = 0.8 / max(1, len(series))
    colours = _plt().get_cmap("tab10")
    for i, (name, cis) in enumerate(series.items()):
        slots = [(j, ci) for j, ci in enumerate(cis) if ci is not None and ci["mean"] is not None]
        ax.bar(
            [j - 0.4 + width * (i + 0.5) for j, _ in slots],
            [ci["mean"] for _, ci in slots],
            width,
            yerr=_yerr([ci for _, ci in slots]),
            capsize=2,
            label=plot_label(short(name)),
            color=colours(i % 10),
        )
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(groups)), [plot_label(group) for group in groups])


def _label(ax, ylabel: str, title: str) -> None:
    """A bar chart's y label and title, and its legend of functions to the right of the axes."""
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def _save(fig, path: Path) -> Path:
    plt = _plt()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------------
