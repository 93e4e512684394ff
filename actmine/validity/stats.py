"""The validity study's statistics: rank correlation of lab and downstream fitness, with a
bootstrap interval over functions, lab tasks and downstream seeds. Pure functions of arrays.

Inputs, one row per function:

- ``lab``: an (n, T) array of task log-ratios (a task's mean over its training seeds of
  ln(OOD error ÷ ReLU's), clipped to ±3, as the lab scores it); NaN where missing.
- ``downstream``: per benchmark an (n, S) array of per-seed log-ratios vs ReLU (the transfer
  runner's `log_ratio`); NaN where a job failed or did not run.

Fitness is minus the mean log-ratio (higher is better, ReLU is 0):

    lab fitness        x_i = −mean_t lab[i, t]             (over the chosen task columns)
    downstream fitness y_i = −mean_s downstream[b][i, s]   (pooled: mean over benchmarks of y_i^b)

ρ = Spearman's rank correlation of (x_i, y_i) (`actmine.reproduce.spearman`, ties averaged).

The interval is a percentile bootstrap (2.5 % and 97.5 % quantiles of ρ over the replicates). A
replicate resamples, with replacement, the functions; the lab's task columns; and each benchmark's
seed columns; then recomputes every x_i, y_i and ρ. Tasks and seeds are *crossed* with functions
(every function is scored on the same tasks and seeds, each log-ratio paired with ReLU on the same
task, seed, data and initial weights), so one draw of tasks and one of seeds per benchmark serves
every function of a replicate (the "pigeonhole" bootstrap of crossed designs, Owen 2007): a
task's seeds stay together (the task is the cluster), and a seed that was hard for ReLU shifts
every function alike, as it did in the measurement, rather than becoming noise of its own per
function. Replicates where ρ is undefined (fewer than 3 functions with a value, or one side
constant) are dropped and counted.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..reproduce import spearman

__all__ = ["REPLICATES", "correlation", "fitness_rows", "stratified_choice"]

REPLICATES = 2000
LEVEL = 0.95


def _negative_row_mean(matrix: np.ndarray) -> np.ndarray:
    """−(mean over columns, NaN ignored) per row; NaN for a row without values."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "mean of empty slice": NaN is the answer
        return 0.0 - np.nanmean(matrix, axis=1)


def fitness_rows(lab: np.ndarray, downstream: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(x, y): lab fitness and downstream fitness per function (see the module docstring); y is the
    mean over ``downstream``'s benchmarks, NaN where a function lacks one of them."""
    x = _negative_row_mean(np.asarray(lab, dtype=float))
    ys = [_negative_row_mean(np.asarray(d, dtype=float)) for d in downstream]
    y = np.mean(ys, axis=0) if ys else np.full(len(x), np.nan)
    return x, y


def _rho(x: np.ndarray, y: np.ndarray) -> float | None:
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 3:
        return None
    return spearman(x[keep].tolist(), y[keep].tolist())


def correlation(
    lab: np.ndarray,
    downstream: Sequence[np.ndarray],
    *,
    replicates: int = REPLICATES,
    seed: int = 0,
    level: float = LEVEL,
) -> dict[str, Any]:
    """ρ of lab vs downstream fitness and its bootstrap interval (see the module docstring).

    Returns ``{rho, low, high, n, seeds, tasks, replicates, dropped}``: ``n`` the functions with
    both values, ``seeds`` the seed columns per benchmark, ``tasks`` the lab task columns,
    ``replicates`` those that gave a ρ; ``rho``/``low``/``high`` None when undefined.
    """
    lab = np.asarray(lab, dtype=float)
    downstream = [np.asarray(d, dtype=float) for d in downstream]
    x, y = fitness_rows(lab, downstream)
    keep = np.isfinite(x) & np.isfinite(y)
    lab, downstream = lab[keep], [d[keep] for d in downstream]
    n = int(keep.sum())
    result: dict[str, Any] = {
        "rho": _rho(x[keep], y[keep]),
        "low": None,
        "high": None,
        "n": n,
        "seeds": [int(d.shape[1]) for d in downstream],
        "tasks": int(lab.shape[1]),
        "replicates": 0,
        "dropped": 0,
        "level": level,
    }
    if result["rho"] is None:
        return result
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(replicates):
        rows = rng.integers(0, n, n)
        tasks = rng.integers(0, lab.shape[1], lab.shape[1])
        resampled = [d[rows][:, rng.integers(0, d.shape[1], d.shape[1])] for d in downstream]
        rho = _rho(*fitness_rows(lab[rows][:, tasks], resampled))
        if rho is not None and math.isfinite(rho):
            values.append(rho)
    result["replicates"], result["dropped"] = len(values), replicates - len(values)
    if values:
        tail = 100.0 * (1.0 - level) / 2.0
        low, high = np.percentile(values, [tail, 100.0 - tail])
        result["low"], result["high"] = float(low), float(high)
    return result


def stratified_choice(values: Sequence[float], k: int) -> list[int]:
    """Indices of ``k`` of ``values`` spread evenly over their range: sort them (ties by index)
    and take the ones at ranks ⌊j·(n−1)/(k−1) + ½⌋, j = 0..k−1, so the lowest and the highest are
    always in (k ≥ 2; k = 1: the median). All of them when k ≥ n. Returned in the sorted order."""
    if k < 0:
        raise ValueError(f"k must be at least 0, got {k}")
    order = sorted(range(len(values)), key=lambda i: (values[i], i))
    n = len(order)
    if k >= n:
        return order
    if k == 0:
        return []
    if k == 1:
        return [order[(n - 1) // 2]]
    # spacing (n−1)/(k−1) ≥ 1, and ⌊a + ½⌋ is monotone with ⌊a + 1 + ½⌋ = ⌊a + ½⌋ + 1: distinct ranks
    # (Python's round() would not do: round(1.5) == round(2.5))
    return [order[math.floor(j * (n - 1) / (k - 1) + 0.5)] for j in range(k)]


def family_columns(groups: Sequence[str]) -> dict[str, list[int]]:
    """``{group: its column indices}`` in order of first appearance."""
    columns: dict[str, list[int]] = {}
    for i, group in enumerate(groups):
        columns.setdefault(group, []).append(i)
    return columns


def correlations(
    lab: np.ndarray,
    groups: Sequence[str],
    downstream: Mapping[str, np.ndarray],
    *,
    replicates: int = REPLICATES,
    seed: int = 0,
) -> dict[str, Any]:
    """Every correlation of the study.

    ``per_benchmark[b]`` and ``pooled`` (the mean over all benchmarks; functions that have them
    all) use every lab task; ``families[group][b]`` and ``families[group]["pooled"]`` only the
    tasks of one lab group (``groups[t]`` names task column t's group). Pooled only with two or
    more benchmarks.
    """
    lab = np.asarray(lab, dtype=float)
    keys = list(downstream)

    def cells(columns: Sequence[int]) -> dict[str, Any]:
        part = lab[:, list(columns)]
        out = {b: correlation(part, [downstream[b]], replicates=replicates, seed=seed) for b in keys}
        if len(keys) > 1:
            out["pooled"] = correlation(part, [downstream[b] for b in keys], replicates=replicates, seed=seed)
        return out

    overall = cells(range(lab.shape[1]))
    return {
        "per_benchmark": {b: overall[b] for b in keys},
        "pooled": overall.get("pooled"),
        "families": {group: cells(columns) for group, columns in family_columns(groups).items()},
    }
