"""Scores as estimates: a mean over tasks with its standard error, and paired intervals.

A search scores a program on samples of tasks from a distribution, so its fitness is an estimate
of the distribution's mean, not a number: `Estimate` is the mean of per-task scores with the
standard error of that mean (tasks are the unit: each task's score already averages its seeds).
Selection compares lower confidence bounds (`Estimate.lcb`), so that a program scored once on a
lucky sample does not outrank one scored several times.

`paired_interval` compares two functions scored on the same tasks and seeds (the test suites):
the mean over tasks of the per-(task, seed) differences, with a 95% cluster-bootstrap interval
(resample tasks, then seeds within each resampled task), as docs/lab.md and methods.md ask.
No dependencies beyond numpy, so records and reports can use it anywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """The mean of `n` per-task scores and the standard error of the mean (0 when n < 2)."""

    mean: float
    se: float
    n: int

    @classmethod
    def of(cls, scores: Sequence[float]) -> "Estimate":
        values = np.asarray(list(scores), dtype=float)
        if values.size == 0:
            raise ValueError("an estimate needs at least one score")
        if not np.isfinite(values).all():
            raise ValueError("scores must be finite")
        se = float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else 0.0
        return cls(float(values.mean()), se, int(values.size))

    def lcb(self, z: float) -> float:
        """mean − z·se: the score selection compares."""
        return self.mean - z * self.se

    def ucb(self, z: float) -> float:
        return self.mean + z * self.se


def paired_interval(a: Mapping[str, Sequence[float]], b: Mapping[str, Sequence[float]], *, clip: float = 3.0,
                    resamples: int = 2000, seed: int = 0) -> dict[str, float | int]:
    """Mean over tasks of (a − b) per (task, seed), with a 95% cluster-bootstrap interval.

    `a` and `b` map task names to per-seed scores (the same seeds, in the same order, for a task in
    both); only tasks in both are compared. Each task's difference is the mean over its seeds,
    clipped to ±`clip` like the lab's per-task log-ratios. Returns {mean, low, high, tasks, seeds}.
    """
    names = [n for n in a if n in b]
    if not names:
        raise ValueError("no task is scored in both")
    diffs = []
    for name in names:
        x, y = np.asarray(a[name], dtype=float), np.asarray(b[name], dtype=float)
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise ValueError(f"task {name!r}: scores must be finite")
        if x.shape != y.shape or x.size == 0:
            raise ValueError(f"task {name!r}: the two functions have different seeds ({x.size} and {y.size})")
        diffs.append(x - y)
    width = max(d.size for d in diffs)
    matrix = np.full((len(diffs), width), np.nan)
    for i, d in enumerate(diffs):
        matrix[i, :d.size] = d
    counts = np.array([d.size for d in diffs])

    def statistic(rows: np.ndarray) -> float:
        return float(np.clip(np.nanmean(rows, axis=1), -clip, clip).mean())

    mean = statistic(matrix)
    rng = np.random.default_rng(seed)
    boot = np.empty(resamples)
    for r in range(resamples):
        tasks = rng.integers(0, len(diffs), len(diffs))
        # seeds within each resampled task: positions drawn among that task's own seeds
        picks = (rng.random((len(diffs), width)) * counts[tasks, None]).astype(int)
        rows = np.take_along_axis(matrix[tasks], picks, axis=1)
        rows[np.arange(width)[None, :] >= counts[tasks, None]] = np.nan
        boot[r] = statistic(rows)
    low, high = np.percentile(boot, [2.5, 97.5])
    return {"mean": mean, "low": float(low), "high": float(high), "tasks": len(diffs),
            "seeds": int(counts.max())}
