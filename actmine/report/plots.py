"""Figures of a search (matplotlib `Figure` objects, drawn without pyplot: no display needed, and
importing this module leaves the user's pyplot backend alone, e.g. a notebook's inline plots).

Every `*_figure` function draws one figure and, given a path, writes it as PNG there; it returns
the `matplotlib.figure.Figure` (closed figures are fine to pass to `png_bytes`/`data_uri`, which
render them again). `plot_comparison` is what `actmine compare --plot FILE.png` writes; `generalisation_gap_figure`
draws the best program's search estimate against its validation fitness over a run.
"""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from ..terminal import terminal_text

__all__ = [
    "plot_label",
    "curves_figure",
    "family_bars_figure",
    "fitness_over_time_figure",
    "generalisation_gap_figure",
    "heatmap_figure",
    "plot_comparison",
    "png_bytes",
    "data_uri",
    "REFERENCES",
]

X_RANGE = (-6.0, 6.0)
POINTS = 481


def plot_label(text: Any) -> str:
    """A name from outside (a file stem, a program's name) as matplotlib text: control characters as
    visible escapes (matplotlib would draw nothing and warn with the raw character on stderr), and
    `$` escaped (a pair of them starts mathtext, whose parser raises on an unknown command)."""
    return terminal_text(text, keep_newlines=False).replace("$", r"\$")


def _references() -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    return {"ReLU": torch.relu, "GELU": torch.nn.functional.gelu}


REFERENCES = _references()


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    """The figure rendered as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def data_uri(fig: Figure, dpi: int = 100) -> str:
    """The figure as a `data:image/png;base64,…` URI, for inlining in HTML."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(fig, dpi)).decode("ascii")


def _finish(fig: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", dpi=100, bbox_inches="tight")
    return fig


def _curve(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> tuple[list[float], list[float]] | None:
    """Values and autograd derivative of fn on x (non-finite points become NaN); None on error."""
    try:
        xs = x.clone().requires_grad_(True)
        y = fn(xs)
        if not isinstance(y, torch.Tensor) or y.shape != xs.shape:
            return None
        (grad,) = torch.autograd.grad(y.sum(), xs, allow_unused=True)
        grad = torch.zeros_like(xs) if grad is None else grad
        values = [v if math.isfinite(v) else math.nan for v in y.detach().double().tolist()]
        slopes = [v if math.isfinite(v) else math.nan for v in grad.detach().double().tolist()]
        return values, slopes
    except Exception:  # a function that cannot be drawn is left out of the figure
        return None


def _draw_curves(axes: Sequence[Any], functions: Mapping[str, Callable], references: bool = True) -> None:
    x = torch.linspace(*X_RANGE, POINTS)
    xs = x.tolist()
    drawn = dict(REFERENCES) if references else {}
    drawn.update(functions)
    for name, fn in drawn.items():
        points = xs
        if isinstance(fn, Mapping):  # a recorded curve {"x", "y", "dy"} (the probes' `curve`)
            try:
                points = [float(v) for v in fn["x"]]
                curve = (
                    [math.nan if v is None else float(v) for v in fn["y"]],
                    [math.nan if v is None else float(v) for v in fn["dy"]],
                )
                if not len(points) == len(curve[0]) == len(curve[1]):
                    continue
            except (KeyError, TypeError, ValueError):
                continue
        else:
            curve = _curve(fn, x)
        if curve is None:
            continue
        reference = references and name in REFERENCES and name not in functions
        # references in greys; the others take C0, C1, … in order, as the family bars do, so that
        # one activation has one colour in every panel of `plot_comparison`
        style = (
            dict(linestyle="--", linewidth=1.0, color="0.35" if name == "ReLU" else "0.65")
            if reference
            else dict(linewidth=1.8, color=f"C{list(functions).index(name) % 10}")
        )
        axes[0].plot(points, curve[0], label=plot_label(name), **style)
        axes[1].plot(points, curve[1], label=plot_label(name), **style)
    axes[0].set_title("f(x)")
    axes[1].set_title("f'(x) (autograd)")
    for ax in axes:
        ax.axhline(0, color="0.7", linewidth=0.6)
        ax.axvline(0, color="0.7", linewidth=0.6)
        ax.set_xlabel("x")
        ax.grid(alpha=0.3)
    axes[0].set_ylim(-3, 7)
    axes[1].set_ylim(-1.5, 2.5)
    axes[0].legend(fontsize=8, loc="upper left")


def curves_figure(
    functions: Mapping[str, Callable[[torch.Tensor], torch.Tensor]],
    path: str | Path | None = None,
    references: bool = True,
) -> Figure:
    """Each function and its derivative on [−6, 6], in two panels; ReLU and GELU as dashed
    references (unless `references=False`). A value is a callable (derivative by autograd) or a
    recorded curve `{"x": [...], "y": [...], "dy": [...]}` such as the probes' `curve`."""
    fig = Figure(figsize=(10, 3.6))
    axes = fig.subplots(1, 2)
    _draw_curves(axes, functions, references)
    fig.tight_layout()
    return _finish(fig, path)


def _family_table(evaluations: Sequence[Any]) -> tuple[list[str], list[str], list[list[float]]]:
    names = [getattr(e, "activation", str(i)) for i, e in enumerate(evaluations)]
    per = [e.by_family() if getattr(e, "tasks", None) else {} for e in evaluations]
    families = sorted({family for p in per for family in p})
    values = [[p.get(family, {}).get("log_ratio", math.nan) for family in families] for p in per]
    return names, families, values


def _draw_bars(ax: Any, names: Sequence[str], families: Sequence[str], values: Sequence[Sequence[float]]) -> None:
    if not families:
        ax.text(0.5, 0.5, "no scored evaluations", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    width = 0.8 / max(len(names), 1)
    for i, (name, row) in enumerate(zip(names, values)):
        positions = [j + (i - (len(names) - 1) / 2) * width for j in range(len(families))]
        ax.bar(positions, row, width=width, label=plot_label(name))
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(families)))
    ax.set_xticklabels([plot_label(family) for family in families])
    ax.set_ylabel("OOD log-ratio vs ReLU (lower is better)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)


def family_bars_figure(evaluations: Sequence[Any], path: str | Path | None = None) -> Figure:
    """Grouped bars of each evaluation's per-family OOD log-ratio vs ReLU (`Evaluation.by_family()`)."""
    fig = Figure(figsize=(8, 3.8))
    ax = fig.subplots()
    _draw_bars(ax, *_family_table(evaluations))
    ax.set_title("per-family OOD log-ratio vs ReLU")
    fig.tight_layout()
    return _finish(fig, path)


def _best_so_far(records: Sequence[Any]) -> tuple[list[int], list[float]]:
    scored = sorted(
        (r.proposal_index, r.fitness) for r in records if getattr(r, "status", "ok") == "ok" and r.fitness is not None
    )
    best, xs, ys = -math.inf, [], []
    for index, fitness in scored:
        best = max(best, fitness)
        xs.append(index)
        ys.append(best)
    return xs, ys


def fitness_over_time_figure(
    records: Sequence[Any], path: str | Path | None = None, baseline: Sequence[Any] | None = None
) -> Figure:
    """Every scored program's fitness against its proposal index, and the best-so-far line;
    with `baseline` (the programs of a random-search run), its best-so-far line for comparison."""
    fig = Figure(figsize=(8, 3.6))
    ax = fig.subplots()
    scored = sorted(
        (r.proposal_index, r.fitness) for r in records if getattr(r, "status", "ok") == "ok" and r.fitness is not None
    )
    failed = [r.proposal_index for r in records if getattr(r, "status", "ok") == "failed"]
    if scored:
        ax.scatter([p for p, _ in scored], [f for _, f in scored], s=14, alpha=0.7, label="evaluated")
        steps_x, steps_y = _best_so_far(records)
        ax.step(steps_x, steps_y, where="post", color="C3", label="best so far")
    if baseline:
        xs, ys = _best_so_far(baseline)
        ax.step(xs, ys, where="post", color="0.3", linestyle="--", label="random search, best so far")
    if failed:
        low = min((f for _, f in scored), default=0.0)
        ax.scatter(failed, [low] * len(failed), marker="x", color="0.6", s=14, label="failed")
    ax.axhline(0, color="0.5", linewidth=0.6, linestyle=":")
    ax.set_xlabel("proposal index")
    ax.set_ylabel("fitness (higher is better)")
    ax.set_title("fitness over the search")
    ax.grid(alpha=0.3)
    if scored or failed:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _finish(fig, path)


def _finite(value: Any) -> float:
    """A number from a database row as a float; NaN for anything else (None, text, inf), which
    matplotlib leaves as a gap."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value) if math.isfinite(value) else math.nan


def _gap_points(validations: Sequence[Mapping[str, Any]]) -> list[tuple[float, float, float, float]]:
    """(evaluated, search fitness, search se, validation fitness) of each row with a numeric
    `evaluated`, in order of `evaluated` (rows arrive oldest first; sorting guards a hand-made list)."""
    points = [
        (
            _finite(row.get("evaluated")),
            _finite(row.get("search_fitness")),
            _finite(row.get("search_se")),
            _finite(row.get("fitness")),
        )
        for row in validations
        if isinstance(row, Mapping)
    ]
    return sorted((p for p in points if math.isfinite(p[0])), key=lambda p: p[0])


def generalisation_gap_figure(
    validations: Sequence[Mapping[str, Any]], path: str | Path | None = None, until: int | None = None
) -> Figure:
    """The run's best program over the search (`ProgramDatabase.validations` rows: evaluated,
    search_fitness, search_se, fitness): its search estimate with a ±1.96·se band and its validation
    fitness, both as steps (a row holds until the best changes again; `until`, the run's proposal
    count, carries the last row to the end of the run). The distance between the two lines is the
    generalisation gap: how much the search's estimate promised beyond unseen tasks."""
    fig = Figure(figsize=(8, 3.6))
    ax = fig.subplots()
    points = _gap_points(validations)
    marked = list(range(len(points)))  # the recorded rows; not the carried-over end point
    if points and until is not None and until > points[-1][0]:
        points.append((float(until), *points[-1][1:]))
    if points:
        xs = [p[0] for p in points]
        search = [p[1] for p in points]
        low = [s - 1.96 * se if math.isfinite(se) else s for _, s, se, _ in points]
        high = [s + 1.96 * se if math.isfinite(se) else s for _, s, se, _ in points]
        validation = [p[3] for p in points]
        ax.fill_between(xs, low, high, step="post", color="C0", alpha=0.2, label="search ±1.96·se")
        ax.step(
            xs, search, where="post", color="C0", marker="o", markersize=4, markevery=marked, label="search estimate"
        )
        ax.step(
            xs,
            validation,
            where="post",
            color="C3",
            marker="s",
            markersize=4,
            markevery=marked,
            label="validation fitness",
        )
        ax.axhline(0, color="0.5", linewidth=0.6, linestyle=":")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no validation of the best yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("proposals evaluated")
    ax.set_ylabel("fitness (higher is better)")
    ax.set_title("best program: search estimate vs validation fitness")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _finish(fig, path)


def heatmap_figure(rows: Mapping[str, Mapping[str, float]], path: str | Path | None = None) -> Figure:
    """Per-task OOD log-ratios (rows: activations, columns: tasks), diverging colours centred at 0
    (blue: better than ReLU)."""
    names = list(rows)
    tasks = sorted({task for row in rows.values() for task in row})
    values = [[float(rows[name].get(task, math.nan)) for task in tasks] for name in names]
    fig = Figure(figsize=(max(5.0, 1.1 * len(tasks) + 3), max(2.5, 0.45 * len(names) + 1.5)))
    ax = fig.subplots()
    if names and tasks:
        finite = [abs(v) for row in values for v in row if math.isfinite(v)]
        bound = max(max(finite, default=0.0), 1e-3)
        image = ax.imshow(values, cmap="RdBu_r", norm=TwoSlopeNorm(vcenter=0.0, vmin=-bound, vmax=bound), aspect="auto")
        ax.set_xticks(range(len(tasks)))
        ax.set_xticklabels([plot_label(task) for task in tasks], rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels([plot_label(name) for name in names], fontsize=8)
        for i, row in enumerate(values):
            for j, value in enumerate(row):
                if math.isfinite(value):
                    ax.text(j, i, f"{value:+.2f}", ha="center", va="center", fontsize=7)
        fig.colorbar(image, ax=ax, label="OOD log-ratio vs ReLU")
    else:
        ax.text(0.5, 0.5, "no task scores", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    ax.set_title("per-task OOD log-ratio vs ReLU (lower is better)")
    fig.tight_layout()
    return _finish(fig, path)


def plot_comparison(
    evaluations: Sequence[Any],
    functions: Mapping[str, Callable[[torch.Tensor], torch.Tensor]],
    path: str | Path | None = None,
) -> Figure:
    """One figure: the curves and derivatives of `functions` (with ReLU/GELU references) above
    the per-family bar chart of `evaluations`. Used by `actmine compare --plot FILE.png`."""
    fig = Figure(figsize=(11, 7.5))
    grid = fig.add_gridspec(2, 2, height_ratios=[1, 1.05])
    _draw_curves([fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])], functions)
    bars = fig.add_subplot(grid[1, :])
    _draw_bars(bars, *_family_table(evaluations))
    bars.set_title("per-family OOD log-ratio vs ReLU")
    fig.tight_layout()
    return _finish(fig, path)
