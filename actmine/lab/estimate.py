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


def paired_interval(
    a: Mapping[str, Sequence[float]],
    b: Mapping[str, Sequence[float]],
    *,
    clip: float = 3.0,
    resamples: int = 2000,
    seed: int = 0,
) -> dict[str, float | int]:
    """Mean over tasks of (a − b) per (task, seed), with a 95% cluster-bootstrap interval.

    `a` and `b` map task names to per-seed log-ratios (unclipped; the same seeds, in the same order,
    for a task in both); only tasks in both are compared. A task's difference is clip(mean of a's
    seeds) − clip(mean of b's seeds), the clip ±`clip` as the lab's per-task log-ratio, so the mean
    over tasks is exactly the difference of the two functions' `ood_log_ratio` on these tasks. The
    bootstrap resamples tasks, then seeds within each task (the same seeds for both functions).
    Returns {mean, low, high, tasks, seeds}.
    """
    names = [n for n in a if n in b]
    if not names:
        raise ValueError("no task is scored in both")
    pairs = []
    for name in names:
        x, y = np.asarray(a[name], dtype=float), np.asarray(b[name], dtype=float)
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise ValueError(f"task {name!r}: scores must be finite")
        if x.shape != y.shape or x.size == 0:
            raise ValueError(f"task {name!r}: the two functions have different seeds ({x.size} and {y.size})")
        pairs.append((x, y))
    width = max(x.size for x, _ in pairs)
    first, second = np.full((len(pairs), width), np.nan), np.full((len(pairs), width), np.nan)
    for i, (x, y) in enumerate(pairs):
        first[i, : x.size], second[i, : y.size] = x, y
    counts = np.array([x.size for x, _ in pairs])

    def statistic(rows_a: np.ndarray, rows_b: np.ndarray) -> float:
        per_task = np.clip(np.nanmean(rows_a, axis=1), -clip, clip) - np.clip(np.nanmean(rows_b, axis=1), -clip, clip)
        return float(per_task.mean())

    mean = statistic(first, second)
    rng = np.random.default_rng(seed)
    boot = np.empty(resamples)
    for r in range(resamples):
        tasks = rng.integers(0, len(pairs), len(pairs))
        # seeds within each resampled task: positions drawn among that task's own seeds, the same for both
        picks = (rng.random((len(pairs), width)) * counts[tasks, None]).astype(int)
        missing = np.arange(width)[None, :] >= counts[tasks, None]
        rows_a = np.take_along_axis(first[tasks], picks, axis=1)
        rows_b = np.take_along_axis(second[tasks], picks, axis=1)
        rows_a[missing] = rows_b[missing] = np.nan
        boot[r] = statistic(rows_a, rows_b)
    low, high = np.percentile(boot, [2.5, 97.5])
    return {"mean": mean, "low": float(low), "high": float(high), "tasks": len(pairs), "seeds": int(counts.max())}


SOFTMIN_TEMPERATURE = 0.1


def softmin_fitness(families: Mapping[str, float], temperature: float = SOFTMIN_TEMPERATURE) -> float:
    """A smooth worst family: −T·ln(mean_f exp(l_f / T)) of the per-family mean log-ratios l_f
    (lower is better). T → 0 gives the worst family (−max_f l_f), T → ∞ the mean over families,
    so one family that is much worse than ReLU outweighs gains elsewhere; T = 0.1 (in log-ratio
    units) lets families within ~0.1 of the worst still count."""
    values = np.array(_family_values(families), dtype=float)
    if values.size == 0:
        return float("-inf")
    top = values.max()
    return float(-(temperature * math.log(np.mean(np.exp((values - top) / temperature))) + top))


def softmin_estimate(families: Mapping[str, Sequence[float]], temperature: float = SOFTMIN_TEMPERATURE) -> Estimate:
    """`softmin_fitness` of per-task fitness scores grouped by family, as an estimate.

    `families` maps a family to its tasks' fitness scores (−log-ratio each). The mean is the softmin
    of the family means; its standard error is the delta method's: the softmin's gradient with respect
    to the family log-ratios is the softmax weights w_f = exp(l_f/T) / Σ exp(l/T), so
    se² = Σ w_f² se_f², where se_f is the standard error of family f's mean (a family of one task
    borrows the standard deviation of all tasks). `n` counts every task.
    """
    groups = {f: np.asarray(list(v), dtype=float) for f, v in families.items() if len(v)}
    if not groups:
        raise ValueError("an estimate needs at least one score")
    if not all(np.isfinite(v).all() for v in groups.values()):
        raise ValueError("scores must be finite")
    everything = np.concatenate(list(groups.values()))
    pooled_sd = float(everything.std(ddof=1)) if everything.size > 1 else 0.0
    ratios = np.array([-v.mean() for v in groups.values()])
    weights = np.exp((ratios - ratios.max()) / temperature)
    weights /= weights.sum()
    family_se = np.array([(v.std(ddof=1) if v.size > 1 else pooled_sd) / math.sqrt(v.size) for v in groups.values()])
    mean = softmin_fitness(dict(zip(groups, ratios)), temperature)
    return Estimate(mean, float(math.sqrt(np.sum((weights * family_se) ** 2))), int(everything.size))


def _family_values(families: Mapping[str, float]) -> list[float]:
    return [v for v in families.values() if v is not None and math.isfinite(v)]


def family_mean_fitness(families: Mapping[str, float]) -> float:
    """−mean over families of the per-family mean log-ratios: every family weighs the same."""
    values = _family_values(families)
    return -float(np.mean(values)) if values else float("-inf")


def worst_family_fitness(families: Mapping[str, float]) -> float:
    """−max over families of the per-family mean log-ratios: the worst family (maximin)."""
    values = _family_values(families)
    return -max(values) if values else float("-inf")


def _by_family(scores: Sequence[tuple[str, float]]) -> dict[str, list[float]]:
    families: dict[str, list[float]] = {}
    for family, score in scores:
        families.setdefault(family, []).append(score)
    return families


#: The most one task can add to or take from a `bounded` estimate, in log-ratio units (a factor of
#: e in OOD error against ReLU's).
TASK_SCORE_BOUND = 1.0


def bounded_estimate(scores: Sequence[float], bound: float = TASK_SCORE_BOUND) -> Estimate:
    """The mean of the per-task scores clipped to ±`bound`, as an estimate (`tasks.objective: bounded`).

    The per-task log-ratio is heavy-tailed (standard deviation ~1.2; a third of the tasks beyond
    ±1), so a plain mean is moved most by the few targets one oscillating or bump-shaped term
    happens to extrapolate very well or very badly. Bounded, each task moves the estimate by at most
    `bound`/n: a function ranks high by being better than ReLU on many tasks. Across a finished
    run's programs it ranked them as the unseen test suites do far better than the mean (Spearman
    +0.71 against +0.21), but searches that ranked by it did not choose better winners (docs/lab.md,
    "The objective"), so it is an option, not the default.
    """
    if not bound > 0:
        raise ValueError(f"the bound must be positive, got {bound!r}")
    values = np.asarray(list(scores), dtype=float)
    if not np.isfinite(values).all():
        raise ValueError("scores must be finite")  # before clipping: an infinity is an error, not a bound
    return Estimate.of(np.clip(values, -bound, bound))


#: How a search turns a program's per-task scores into its fitness estimate (`tasks.objective`):
#: ``objective(scores)`` of (family, fitness) per task.
OBJECTIVES = {
    "mean": lambda scores: Estimate.of([score for _, score in scores]),
    "bounded": lambda scores: bounded_estimate([score for _, score in scores]),
    "softmin": lambda scores: softmin_estimate(_by_family(scores)),
}


def references_fitness(
    families: Mapping[str, float],
    references: Mapping[str, Mapping[str, float]],
    temperature: float = SOFTMIN_TEMPERATURE,
) -> float:
    """How far a function beats the hardest of `references` on its hardest family: the minimum over
    references r of `softmin_fitness` of the per-family differences l_f − l_f(r) (both mean log-ratios
    against ReLU on the same tasks, so each difference is paired). Above 0 only for a function better
    than every reference on (nearly) every family; a reference scores at most 0 (itself). ReLU is
    always a reference (l_f = 0), so with no others this is `softmin_fitness`. A family that a
    reference lacks compares with ReLU."""
    values = {f: v for f, v in families.items() if v is not None and math.isfinite(v)}
    if not values:
        return float("-inf")
    scores = [softmin_fitness(values, temperature)]  # against ReLU
    for reference in references.values():
        if reference:
            scores.append(softmin_fitness({f: v - _or_zero(reference.get(f)) for f, v in values.items()}, temperature))
    return min(scores)


def _or_zero(value: float | None) -> float:
    """A reference's family log-ratio, or ReLU's (0) where it has none."""
    return value if value is not None and math.isfinite(value) else 0.0


#: How the end of a run ranks its candidates on the validation tasks (higher is better):
#: ``rule(fitness, families, references)`` of the validation fitness (−mean log-ratio over tasks),
#: the per-family mean log-ratios, and the library references' per-family mean log-ratios on the same
#: tasks ({name: families}). Measured side by side by benchmarks/bench_winner_rules.py
#: (docs/lab.md, "Which rule picks the winner").
WINNER_RULES = {
    "mean": lambda fitness, families, references=None: fitness,
    "family_mean": lambda fitness, families, references=None: family_mean_fitness(families),
    "maximin": lambda fitness, families, references=None: worst_family_fitness(families),
    "softmin": lambda fitness, families, references=None: softmin_fitness(families),
    "references": lambda fitness, families, references=None: references_fitness(families, references or {}),
}
