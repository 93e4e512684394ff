"""Which aggregate of a program's task scores should the search rank by? Judged on the unseen tests.

    python benchmarks/bench_objectives.py RUN_DIR [RUN_DIR ...] [--top 15] [--scores objectives.json]

A finished run's `evaluations` table holds every program's per-task scores (−log-ratio against
ReLU, one training seed, each task at its mean over the rounds that scored it). Each aggregate below
ranks the run's programs from those scores alone; the union of every aggregate's `--top` programs is
then scored (sandboxed) on the default config's unseen test suites, per task and seed (journalled in
`--scores`, so a second call scores nothing twice). Printed per run and aggregate:

* Spearman's ρ across the scored programs between the aggregate and the unseen test fitness (all
  unseen tasks, and per suite): which search statistic ranks programs as the unseen targets do;
* the unseen test fitness of the aggregate's first program and the mean of its first five, each
  minus GELU's (the run's own test row; above 0 = better than GELU).

The aggregates: the search's objectives (`actmine.lab.estimate.OBJECTIVES`: `mean`, `bounded`,
`softmin`) and, for comparison only, the mean of the scores clipped at other bounds, the median,
a win rate (the share of tasks better than ReLU minus the share worse) and a 10% trimmed mean.
The scored programs are chosen by the aggregates themselves, so ρ is measured where selection
happens (the upper end), not over the whole run. An aggregate proposed on some runs must be
confirmed on runs it did not see (docs/lab.md, "The objective").
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from pathlib import Path

import numpy as np
from bench_winner_rules import (
    REFERENCES,
    CandidateScores,
    flat,
    finished_runs_arguments,
    reference_rows,
    refuse_unfinished,
    suite_fitness,
)  # on the path
from scipy.stats import spearmanr

from actmine.evolve.rounds import pooled_task_scores
from actmine.lab.estimate import OBJECTIVES, bounded_estimate
from actmine.run_files import DATABASE

MIN_TASKS = 40  # programs scored on fewer tasks (refused early, or duplicates) are not ranked


def _objective(name: str):
    return lambda scores: OBJECTIVES[name](scores).mean


def _plain(statistic):
    return lambda scores: statistic(np.array([s for _, s in scores]))


AGGREGATES = {
    **{name: _objective(name) for name in OBJECTIVES},
    "clip 0.5": _plain(lambda v: bounded_estimate(v, 0.5).mean),
    "clip 2": _plain(lambda v: bounded_estimate(v, 2.0).mean),
    "median": _plain(np.median),
    "win rate": _plain(lambda v: float(np.mean(v > 0) - np.mean(v < 0))),
    "trimmed 10%": _plain(lambda v: float(np.sort(v)[len(v) // 10 : len(v) - len(v) // 10].mean())),
}


def task_scores(run_dir: Path) -> dict[int, list[tuple[str, float]]]:
    """{program id: [(family, −mean log-ratio over the rounds that scored the task)]}, pooled as the
    search pools them."""
    connection = sqlite3.connect(f"file:{run_dir / DATABASE}?mode=ro", uri=True)
    rounds: dict[int, list[dict]] = {}
    for program_id, tasks in connection.execute("SELECT program_id, tasks FROM evaluations"):
        rounds.setdefault(program_id, []).extend(json.loads(tasks))
    connection.close()
    pooled = {pid: pooled_task_scores(tasks) for pid, tasks in rounds.items()}
    return {
        pid: [(family, -ratio) for family, ratio in tasks.values()]
        for pid, tasks in pooled.items()
        if len(tasks) >= MIN_TASKS
    }


def rankings(scores: dict[int, list[tuple[str, float]]]) -> dict[str, dict[int, float]]:
    return {name: {pid: aggregate(s) for pid, s in scores.items()} for name, aggregate in AGGREGATES.items()}


def chosen(ranked: dict[str, dict[int, float]], top: int) -> list[int]:
    return sorted({pid for values in ranked.values() for pid in sorted(values, key=lambda p: -values[p])[:top]})


def report(run_dir: Path, ranked: dict[str, dict[int, float]], scores: dict[str, dict]) -> None:
    final = json.loads((run_dir / "heldout.json").read_text())
    references = reference_rows(final, REFERENCES)
    gelu = suite_fitness(flat(references["gelu"]))
    tested = {
        int(key.rsplit("#", 1)[1]): by_suite
        for key, by_suite in scores.items()
        if key.rsplit("#", 1)[0] == str(run_dir) and all(by_suite.values())
    }
    programs = sorted(set(tested) & set(next(iter(ranked.values()))))
    unseen = {pid: suite_fitness(flat(tested[pid])) for pid in programs}
    suites = sorted(next(iter(tested.values())))
    per_suite = {s: [suite_fitness(tested[pid][s]) for pid in programs] for s in suites}
    print(
        f"\n{run_dir}: {len(programs)} programs scored; unseen fitness: GELU {gelu:+.3f}, "
        f"GELUSine {suite_fitness(flat(references['gelu_sine'])):+.3f}, best program {max(unseen.values()):+.3f}"
    )
    print(
        f"  {'aggregate':<12} {'ρ unseen':>8} " + " ".join(f"{s:>16}" for s in suites) + "   first − GELU  top 5 − GELU"
    )
    for name, values in ranked.items():
        order = sorted(programs, key=lambda p: -values[p])
        rhos = [spearmanr([values[p] for p in programs], per_suite[s])[0] for s in suites]
        print(
            f"  {name:<12} {spearmanr([values[p] for p in programs], [unseen[p] for p in programs])[0]:>+8.2f} "
            + " ".join(f"{r:>+16.2f}" for r in rhos)
            + f"   {unseen[order[0]] - gelu:>+12.3f}  {np.mean([unseen[p] for p in order[:5]]) - gelu:>+12.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    finished_runs_arguments(parser, "objectives.json")
    parser.add_argument("--top", type=int, default=15, help="programs scored per aggregate (their union is scored)")
    args = parser.parse_args()
    refuse_unfinished(parser, args.runs)
    ranked = {run_dir: rankings(task_scores(run_dir)) for run_dir in args.runs}
    with CandidateScores(args.scores, args.workers) as unseen:
        for run_dir in args.runs:
            unseen.score(run_dir, chosen(ranked[run_dir], args.top))
    for run_dir in args.runs:
        report(run_dir, ranked[run_dir], unseen.scores)


if __name__ == "__main__":
    main()
