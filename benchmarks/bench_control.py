"""Do GELU's cached scores, as a control variate, make the search's estimates less noisy? Offline.

    python benchmarks/bench_control.py RUN_DIR [RUN_DIR ...]

A search scores a program on tasks drawn for it, each paired with ReLU's cached errors on the same
draw (score = −log-ratio). The pools cache GELU's errors on every draw as well, so GELU's score on
each drawn task is known for free, and so is its mean over each pool. A control-variate estimate
subtracts β·(GELU's score on the task − GELU's mean over the task's pool) from each task's score:
the same expected fitness, with less variance by the share of the per-task spread that GELU's
scores explain (the tasks that are hard for every GELU-like function stop counting as noise).

For each finished run (its database and config; the pools are read from the cache, nothing trains):

- **variance ratio**: per program with at least `--min-tasks` pooled tasks, the variance of the
  per-task scores with the control ÷ without, for β = 1 (the difference from GELU), β fitted per
  program (the regression estimator), one β fitted on the whole run's programs (printed) and the
  default config's `tasks.control_beta` (what the search does since it was measured here); the
  median and the 10th–90th percentiles, over all such programs and over those the confirmation
  rule gave a second round (near the top list);
- **split-half reliability**: programs with two full rounds (independent samples of tasks): each
  round's estimate each way, round 0 against round 1 across programs — Pearson, Spearman and the
  standard deviation of the difference. A less noisy estimate agrees with itself more.

The control is the search's own (`TaskDistribution.control_offsets`); a run's recorded task scores
are the plain ones whatever its `tasks.control_beta`, so runs made with or without it compare.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from actmine.config import Config
from actmine.evolve.search_tasks import SearchTasks
from actmine.reproduce.rules import spearman
from actmine.run_files import DATABASE

WAYS = ("plain", "beta 1", "beta fitted", "beta run", "beta config")
CONFIG_BETA = Config().tasks.control_beta  # what the search does


def gelu_offsets(config: Config) -> Callable[[str], float]:
    """GELU's offset on a search task: the search's own control variate
    (`TaskDistribution.control_offsets`: GELU's cached score on the task less its pool's mean, so the
    offsets have mean 0 over each pool), read from the pool cache."""
    distribution = SearchTasks.from_config(config, progress=False).split.search
    return distribution.control_offsets("gelu", **config.lab_options()).__getitem__


def fitted_beta(scores: np.ndarray, controls: np.ndarray) -> float:
    """The regression coefficient of the scores on the controls (0 when the controls do not vary)."""
    spread = float(np.var(controls, ddof=1)) if controls.size > 1 else 0.0
    return float(np.cov(scores, controls, ddof=1)[0, 1] / spread) if spread > 0 else 0.0


def run_beta(programs: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """One coefficient for a whole run: the within-program regression of the scores on the controls
    over every program's (scores, controls), each program centred on its own means."""
    covariance = sum(float(np.sum((s - s.mean()) * (g - g.mean()))) for s, g in programs)
    spread = sum(float(np.sum((g - g.mean()) ** 2)) for _, g in programs)
    return covariance / spread if spread > 0 else 0.0


def adjusted(scores: np.ndarray, offsets: np.ndarray, way: str, beta_run: float = 1.0) -> np.ndarray:
    """Per-task scores with the control subtracted (`way`: one of WAYS; "beta run" uses `beta_run`,
    "beta config" the default config's `tasks.control_beta`: what the search does)."""
    if way == "plain":
        return scores
    beta = {"beta 1": 1.0, "beta run": beta_run, "beta config": CONFIG_BETA}.get(way)
    beta = fitted_beta(scores, offsets) if beta is None else beta
    return scores - beta * offsets


def rounds_by_program(run_dir: Path) -> dict[int, dict[int, list[tuple[str, float]]]]:
    """{program: {round: [(task name, score)]}} of every scored round of the run."""
    connection = sqlite3.connect(f"file:{run_dir / DATABASE}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT program_id, round, tasks FROM evaluations ORDER BY program_id, round")
        programs: dict[int, dict[int, list[tuple[str, float]]]] = {}
        for program_id, round_, tasks in rows:
            scored = [(str(t["name"]), -float(t["log_ratio"])) for t in json.loads(tasks)]
            programs.setdefault(program_id, {})[round_] = scored
    finally:
        connection.close()
    return programs


def arrays(tasks: list[tuple[str, float]], offset: Callable) -> tuple[np.ndarray, np.ndarray]:
    """(scores, GELU's offsets) of a list of (task, score), pooled by task."""
    pooled: dict[str, list[float]] = {}
    for name, value in tasks:
        pooled.setdefault(name, []).append(value)
    names = sorted(pooled)
    return (
        np.array([np.mean(pooled[n]) for n in names]),
        np.array([offset(n) for n in names]),
    )


def summarise(run_dir: Path, min_tasks: int) -> None:
    config = Config.load(run_dir / "config.yaml")
    if config.lab.suite is not None:
        print(f"{run_dir}: a fixed-suite run (no pools, no cached GELU scores): skipped")
        return
    offset = gelu_offsets(config)
    programs = rounds_by_program(run_dir)
    pooled = [arrays([t for r in rounds.values() for t in r], offset) for rounds in programs.values()]
    beta = run_beta([(s, g) for s, g in pooled if s.size >= min_tasks])
    ratios: dict[str, dict[str, list[float]]] = {group: {w: [] for w in WAYS[1:]} for group in ("all", "confirmed")}
    halves: dict[str, tuple[list[float], list[float]]] = {w: ([], []) for w in WAYS}
    for rounds, (s, g) in zip(programs.values(), pooled):
        if s.size >= min_tasks and np.var(s, ddof=1) > 0:
            for group in ("all", "confirmed") if len(rounds) > 1 else ("all",):
                for way in WAYS[1:]:
                    ratio = np.var(adjusted(s, g, way, beta), ddof=1) / np.var(s, ddof=1)
                    ratios[group][way].append(float(ratio))
        if all(len(rounds.get(r, ())) >= min_tasks for r in (0, 1)):
            first, second = arrays(rounds[0], offset), arrays(rounds[1], offset)
            for way in WAYS:
                halves[way][0].append(float(adjusted(*first, way, beta).mean()))
                halves[way][1].append(float(adjusted(*second, way, beta).mean()))
    print(f"\n{run_dir}: {len(programs)} programs; the run's β {beta:.2f}")
    for group, by_way in ratios.items():
        for way, values in by_way.items():
            if values:
                low, mid, high = np.percentile(values, [10, 50, 90])
                print(
                    f"  variance ratio, {group} ({len(values)} programs), {way}: "
                    f"median {mid:.3f} (10–90%: {low:.3f}–{high:.3f})"
                )
    count = len(halves["plain"][0])
    if count < 3:
        print("  split-half: fewer than 3 programs with two full rounds")
        return
    for way, (a, b) in halves.items():
        a_, b_ = np.array(a), np.array(b)
        rho = spearman(a, b)
        print(
            f"  split-half ({count} programs), {way}: Pearson {np.corrcoef(a_, b_)[0, 1]:+.3f}, "
            f"Spearman {'n/a' if rho is None else f'{rho:+.3f}'}, sd of round 0 − round 1 {np.std(a_ - b_, ddof=1):.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="finished run directories (pools mode)")
    parser.add_argument("--min-tasks", type=int, default=40, help="tasks a program (or a round) needs to count")
    args = parser.parse_args()
    for run in args.runs:
        if not (run / DATABASE).is_file() or not (run / "config.yaml").is_file():
            sys.exit(f"error: {run} is not a finished run directory (it needs {DATABASE} and config.yaml)")
    for run in args.runs:
        summarise(run, args.min_tasks)


if __name__ == "__main__":
    main()
