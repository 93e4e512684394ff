"""Would a larger validation choose better winners? Judged on the unseen test suites.

    python benchmarks/bench_validation_size.py RUN_DIR [RUN_DIR ...] [--scale 4] [--min-size 120]
        [--draws 200] [--scores validation_size.json]

A run's winner is chosen from its final-check candidates (the top list and the seeds) by their
validation rows: 140 tasks × 2 seeds by default (`tasks.validation`: the search generators from
index 1,000,000, a third of their size each). If that choice is limited by the validation's noise,
more validation tasks choose better; if it is limited by what the validation's targets are, they do
not. This script scores every candidate of finished runs (sandboxed, journalled in `--scores`) on
a *large validation* — the default validation pools' generators, parameters and seeds, `--scale`
times their size (at least `--min-size`), drawn from index 2,000,000, beyond every index of the
default validation (the search's are refused by `check_split` and `Split.check_content`) — and on
the unseen test suites, then prints per run:

* Spearman's ρ across candidates between each large-validation family and the unseen test fitness
  (all unseen tasks, and per suite): with ~4× the tasks these are close to the families' true
  rankings;
* for each winner rule (`actmine.lab.estimate.WINNER_RULES`), the unseen fitness of its pick minus
  GELU's (above 0 = the pick extrapolates better than GELU) when the validation is a random subset
  of the large one at the default sizes (`default`), at twice them (`2x`), a bootstrap resample of
  the whole large validation (`large*`; the mean over `--draws` draws, with the share of picks better
  than GELU), the whole large validation (`large`), and, at the default sizes, when only the run's
  seeds (the known functions it started from) are candidates (`seeds`): what choosing among the
  search's programs adds.

If `large` picks are no better than `default` ones, more validation tasks would not help: the
validation families rank the candidates differently from the unseen targets (docs/lab.md, "Which
rule picks the winner").
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np
from bench_winner_rules import (
    REFERENCES,
    CandidateScores,
    candidates,
    flat,
    finished_runs_arguments,
    refuse_unfinished,
    suite_fitness,
)
from scipy.stats import spearmanr

from actmine.config import Config
from actmine.evolve.database import ProgramDatabase
from actmine.evolve.search_tasks import SearchTasks, split_spec
from actmine.lab.estimate import WINNER_RULES

LARGE_VALIDATION_START = 2_000_000  # beyond the default validation's indexes (1,000,000 + 20·size + 100)
LARGE = "large validation"


def large_validation(config: Config, scale: int, min_size: int) -> list[dict]:
    """The config's validation pools, `scale` times their size (at least `min_size`), from a fresh start."""
    return [
        {**spec.to_dict(), "size": max(min_size, scale * spec.size), "start": LARGE_VALIDATION_START}
        for spec in split_spec(config).validation
    ]


def families(tasks: SearchTasks) -> dict[str, str]:
    """The family of each validation task, by name."""
    return {task.name: task.family for task in tasks.validation.suite.tasks}


def family_sizes(tasks: SearchTasks) -> dict[str, int]:
    """Tasks per family of a validation."""
    return dict(Counter(families(tasks).values()))


def pick(rule: str, validation: np.ndarray, columns: dict[str, np.ndarray]) -> int:
    """The candidate `rule` picks when the validation is the task `columns` of each family.

    `validation` is candidates × tasks of per-task scores (the clipped mean log-ratio over seeds)."""
    chosen = np.concatenate(list(columns.values()))
    fitness = -validation[:, chosen].mean(axis=1)
    by_family = {family: validation[:, c].mean(axis=1) for family, c in columns.items()}
    ranks = [
        WINNER_RULES[rule](fitness[i], {family: values[i] for family, values in by_family.items()})
        for i in range(len(validation))
    ]
    return int(np.argmax(ranks))


def family_columns(task_families: list[str]) -> dict[str, np.ndarray]:
    """The task columns of each family."""
    return {f: np.flatnonzero(np.array(task_families) == f) for f in dict.fromkeys(task_families)}


def picks(
    rule: str,
    validation: np.ndarray,
    task_families: list[str],
    sizes: dict[str, int] | None,
    draws: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """The candidates `rule` picks on `draws` validations of `sizes` tasks per family drawn without
    replacement from `validation`'s tasks, or (`sizes` None) on bootstrap resamples of all its tasks,
    family by family."""
    columns = family_columns(task_families)

    def draw(family: str, c: np.ndarray) -> np.ndarray:
        if sizes is None:
            return rng.choice(c, len(c), replace=True)
        return rng.choice(c, min(sizes[family], len(c)), replace=False)

    return np.array([pick(rule, validation, {f: draw(f, c) for f, c in columns.items()}) for _ in range(draws)])


def seeds_among(run_dir: Path, program_ids: list[int]) -> set[int]:
    """Those of `program_ids` that the run started from (its `search.initial_programs`)."""
    database = ProgramDatabase(run_dir / "programs.sqlite", readonly=True)
    try:
        return {i for i in program_ids if database.get(i).mutator == "seed"}
    finally:
        database.close()


def report(
    run_dir: Path, scores: dict, family_of: dict[str, str], default_sizes: dict[str, int], draws: int, summary: dict
) -> None:
    final, rows = candidates(run_dir)
    keys = [f"{run_dir}#{r['program_id']}" for r in rows]
    keys = [k for k in keys if scores.get(k) and all(scores[k].values())]
    references = {}
    for r in final["test"]:
        if r["program_id"] is None and r["name"] in REFERENCES:
            references.setdefault(r["name"], {})[r["suite"]] = r["tasks"]
    unseen_suites = [s for s in scores[keys[0]] if s != LARGE]
    gelu = suite_fitness(flat({s: references["gelu"][s] for s in unseen_suites}))
    gain = np.array([suite_fitness(flat({s: scores[k][s] for s in unseen_suites})) for k in keys]) - gelu
    names = sorted(scores[keys[0]][LARGE])
    task_families = [family_of[name] for name in names]
    validation = np.array([[np.clip(np.mean(scores[k][LARGE][t]), -3, 3) for t in names] for k in keys])
    ids = [int(k.rsplit("#", 1)[1]) for k in keys]
    started_from = seeds_among(run_dir, ids)
    seeds = np.array([i for i, program_id in enumerate(ids) if program_id in started_from])
    per_suite = {s: np.array([suite_fitness(scores[k][s]) for k in keys]) for s in unseen_suites}
    suite_gain = {s: v - suite_fitness(references["gelu"][s]) for s, v in per_suite.items()}
    winner = f"{run_dir}#{final['winner']}"
    own = f"{gain[keys.index(winner)]:+.3f}" if winner in keys else "not scored"
    print(
        f"\n{run_dir}: {len(keys)} candidates; unseen fitness minus GELU's: the best candidate's "
        f"{gain.max():+.3f}, the run's winner's (on its own validation) {own}"
    )
    print("  Spearman ρ, large-validation family vs unseen fitness: all unseen, " + ", ".join(unseen_suites))
    columns = family_columns(task_families)
    for family, c in columns.items():
        values = -validation[:, c].mean(axis=1)
        correlations = [spearmanr(values, gain)[0]] + [spearmanr(values, per_suite[s])[0] for s in unseen_suites]
        print(f"    {family:<12} " + "  ".join(f"{r:+.2f}" for r in correlations))
    if winner in keys:
        summary.setdefault("winner", []).append(gain[keys.index(winner)])
    report_rules(validation, task_families, gain, suite_gain, seeds, default_sizes, draws, summary)


def report_rules(
    validation: np.ndarray,
    task_families: list[str],
    gain: np.ndarray,
    suite_gain: dict[str, np.ndarray],
    seeds: np.ndarray,
    default_sizes: dict[str, int],
    draws: int,
    summary: dict,
) -> None:
    """Per rule, the gain of its picks at each validation size, and among the seeds only."""
    rng = np.random.default_rng(0)
    sizes = {"default": default_sizes, "2x": {f: 2 * n for f, n in default_sizes.items()}, "large*": None}
    print(
        "  the pick's unseen fitness minus GELU's (mean over draws, share of picks better than GELU; "
        f"at the default size also per suite: {', '.join(suite_gain)})"
    )
    for rule in WINNER_RULES:
        cells = []
        for label, size in sizes.items():
            chosen = picks(rule, validation, task_families, size, draws, rng)
            summary.setdefault((rule, label), []).append(gain[chosen].mean())
            cells.append(f"{label} {gain[chosen].mean():+.3f} ({np.mean(gain[chosen] > 0):.0%})")
            if label == "default":
                for suite, values in suite_gain.items():
                    summary.setdefault((rule, suite), []).append(values[chosen].mean())
                cells[-1] += " [" + ", ".join(f"{v[chosen].mean():+.2f}" for v in suite_gain.values()) + "]"
        whole = gain[pick(rule, validation, family_columns(task_families))]
        among_seeds = seeds[picks(rule, validation[seeds], task_families, default_sizes, draws, rng)]
        summary.setdefault((rule, "large"), []).append(whole)
        summary.setdefault((rule, "seeds"), []).append(gain[among_seeds].mean())
        cells += [
            f"large {whole:+.3f}",
            f"seeds {gain[among_seeds].mean():+.3f} ({np.mean(gain[among_seeds] > 0):.0%})",
        ]
        print(f"    {rule:<12} " + " | ".join(cells))


def report_summary(summary: dict, runs: int, suites: list[str]) -> None:
    print(f"\nover {runs} runs, the means of the above: the runs' own winners {np.mean(summary['winner']):+.3f}")
    for rule in WINNER_RULES:
        labels = ["default", *suites, "2x", "large*", "large", "seeds"]
        print(f"    {rule:<12} " + " | ".join(f"{label} {np.mean(summary[(rule, label)]):+.3f}" for label in labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    finished_runs_arguments(parser, "validation_size.json")
    parser.add_argument("--scale", type=int, default=4, help="large validation pools: this many times the default")
    parser.add_argument("--min-size", type=int, default=120, help="and at least this many tasks per pool")
    parser.add_argument("--draws", type=int, default=200, help="validations drawn per size")
    args = parser.parse_args()
    refuse_unfinished(parser, args.runs)
    config = Config()
    default_sizes = family_sizes(SearchTasks.from_config(config, progress=False))
    pools = large_validation(config, args.scale, args.min_size)
    large = SearchTasks.from_config(config.with_overrides({"tasks.validation": pools}), progress=True)
    labs = {LARGE: large.validation, **{name: large.tests[name] for name in large.unseen_tests()}}
    print(f"validation: {default_sizes} tasks by default; large: {family_sizes(large)}")
    with CandidateScores(args.scores, args.workers, labs) as scorer:
        for run_dir in args.runs:
            scorer.score(run_dir, [row["program_id"] for row in candidates(run_dir)[1]])
    summary: dict = {}
    for run_dir in args.runs:
        report(run_dir, scorer.scores, families(large), default_sizes, args.draws, summary)
    report_summary(summary, len(args.runs), large.unseen_tests())


if __name__ == "__main__":
    main()
