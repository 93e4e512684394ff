"""Does any candidate beat GELU on every kind of target the search draws? Judged on the unseen suites.

    python benchmarks/bench_kinds.py RUN_DIR [RUN_DIR ...] [--size 40] [--scores kinds.json]

The search draws its tasks from a mixture of kinds: expressions built from six operator groups
(polynomial, exp_log, rational, periodic, saturating, kinked), harmonic sums and polynomials. A
winner that is better than GELU on targets of *new* kinds (issue 13's bar) should, if the lab's kinds
say anything about new ones, be better than GELU on the kinds it knows — not better on some and
worse on others, which is what the validation families showed (docs/lab.md, "Would a larger
validation choose better?"). This script scores every final-check candidate of finished runs
(sandboxed, journalled in `--scores`) and the library's GELU on one pool per kind — each expression
operator group alone and each other search generator, `--size` tasks × seeds 0 and 1 from index
3,000,000, where no other side draws — and on the unseen test suites, then prints:

* per run, how many candidates are better than GELU on every kind (each kind's mean paired
  difference of per-task scores below 0), the candidates closest to that (the smallest *worst-kind
  gap*), and Spearman's ρ across the run's candidates between minus the worst-kind gap and the
  unseen fitness;
* over all runs, the distinct programs closest to beating GELU on every kind, with their unseen
  fitness minus GELU's per suite; the pooled ρ; and the unseen fitness minus GELU's of each run's
  pick by the smallest worst-kind gap and by the mean gap over kinds.

Reading: if no candidate beats GELU on every kind, every winner trades one kind of target for
another, and whether it beats GELU on new kinds depends on which kinds those are.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from bench_winner_rules import CandidateScores, candidates, finished_runs_arguments, refuse_unfinished, suite_fitness
from scipy.stats import spearmanr

from actmine.config import Config
from actmine.evolve.search_tasks import SearchTasks, split_spec
from actmine.evolve.seeds import SEED_EXPRESSIONS, program
from actmine.lab.fitness import Lab
from actmine.terminal import terminal_text

KINDS_START = 3_000_000  # beyond the default (1,000,000) and the large (2,000,000) validations' indexes
EXPRESSION_KINDS, GENERATOR_KINDS = "kinds: expression groups", "kinds: other generators"
GELU_KEY = "library#gelu"


def kind_pools(config: Config, size: int, seeds: tuple[int, ...] = (0, 1), start: int = KINDS_START) -> dict[str, dict]:
    """One pool spec per kind of the config's search pools: each operator group of an expression
    pool alone (named `expression/GROUP`), and each other pool's generator (named by it); their draws
    from index `start`."""
    pools = {}
    for spec in split_spec(config).search:
        base = {**spec.to_dict(), "size": size, "start": start, "seeds": list(seeds)}
        base.pop("weight", None)
        groups = spec.params.get("operators") if spec.generator == "expression" else None
        if groups:
            for group in groups:
                pools[f"expression/{group}"] = {**base, "params": {**base["params"], "operators": [group]}}
        else:
            pools[spec.generator] = base
    return pools


def kind_labs(config: Config, size: int, start: int = KINDS_START) -> tuple[dict[str, Lab], dict[str, str], list[str]]:
    """The kinds as labs — the expression operator groups in one, the other generators in another
    (each a validation lab of its own pools) — beside the config's unseen test suites (a lab each,
    by name); the kind of each kind lab's task; and the unseen suites' names."""
    pools = kind_pools(config, size, start=start)
    labs, kind_of, tasks = {}, {}, None
    for lab, kinds in (
        (EXPRESSION_KINDS, [k for k in pools if k.startswith("expression/")]),
        (GENERATOR_KINDS, [k for k in pools if not k.startswith("expression/")]),
    ):
        if not kinds:
            continue
        tasks = SearchTasks.from_config(
            config.with_overrides({"tasks.validation": [pools[k] for k in kinds]}), progress=True
        )
        labs[lab] = tasks.validation
        for kind, pool in zip(kinds, tasks.split.validation.pools):
            kind_of.update({task.name: kind for task in pool.tasks})
    suites = tasks.unseen_tests()
    return labs | {name: tasks.tests[name] for name in suites}, kind_of, suites


def task_score(log_ratios: list[float]) -> float:
    """The lab's per-task score: the mean over seeds of the log-ratio vs ReLU, clipped to ±3."""
    return float(np.clip(np.mean(log_ratios), -3, 3))


def kind_gaps(scores: dict[str, list[float]], reference: dict[str, list[float]], kind_of: dict[str, str]) -> dict:
    """Per kind, the mean over its tasks of the candidate's task score minus the reference's (paired
    by task; below 0 = better than the reference)."""
    gaps: dict[str, list[float]] = {}
    for task, kind in kind_of.items():
        gaps.setdefault(kind, []).append(task_score(scores[task]) - task_score(reference[task]))
    return {kind: float(np.mean(values)) for kind, values in gaps.items()}


def worst_gap(gaps: dict[str, float]) -> float:
    """The candidate's gap on its worst kind: below 0 = better than the reference on every kind."""
    return max(gaps.values())


def unseen_gains(entry: dict, gelu: dict, suites: list[str]) -> dict[str, float]:
    """Unseen fitness minus GELU's: on all unseen tasks (`all`) and per suite (above 0 = better)."""
    every = {f"{s}/{t}": v for s in suites for t, v in entry[s].items()}
    every_gelu = {f"{s}/{t}": v for s in suites for t, v in gelu[s].items()}
    gains = {"all": suite_fitness(every) - suite_fitness(every_gelu)}
    return gains | {s: suite_fitness(entry[s]) - suite_fitness(gelu[s]) for s in suites}


def kind_scores(entry: dict, lab_names: list[str]) -> dict[str, list[float]] | None:
    """A journal entry's per-task scores on all the kind labs, or None where one of them failed."""
    if not all(entry.get(lab) for lab in lab_names):
        return None
    return {task: v for lab in lab_names for task, v in entry[lab].items()}


def report_run(run_dir: Path, scores: dict, gelu: dict, kind_of: dict, suites: list[str], summary: dict) -> None:
    kind_lab_names = [lab for lab in (EXPRESSION_KINDS, GENERATOR_KINDS) if lab in gelu]
    reference = kind_scores(gelu, kind_lab_names)
    rows = []
    for row in candidates(run_dir)[1]:
        key = f"{run_dir}#{row['program_id']}"
        by_task = kind_scores(scores.get(key, {}), kind_lab_names)
        if by_task and all(scores[key].get(s) for s in suites):
            rows.append((key, kind_gaps(by_task, reference, kind_of), unseen_gains(scores[key], gelu, suites)))
    if not rows:
        print(f"\n{run_dir}: no candidate scored on every kind and test suite")
        return
    better = [k for k, gaps, _ in rows if worst_gap(gaps) < 0]
    print(f"\n{run_dir}: {len(rows)} candidates, {len(better)} better than GELU on every kind")
    for key, gaps, gains in sorted(rows, key=lambda row: worst_gap(row[1]))[:3]:
        worst = max(gaps, key=gaps.get)
        where = "the same as GELU on every kind" if not any(gaps.values()) else worst
        print(
            f"  {key.rsplit('#', 1)[1]:>5} worst-kind gap {gaps[worst]:+.3f} ({where}) | unseen minus GELU "
            + "  ".join(f"{s} {v:+.3f}" for s, v in gains.items())
        )
    worst = [-worst_gap(gaps) for _, gaps, _ in rows]
    correlations = {s: spearmanr(worst, [g[s] for _, _, g in rows])[0] for s in rows[0][2]}
    print(
        "  Spearman ρ, minus the worst-kind gap vs unseen fitness: "
        + "  ".join(f"{s} {r:+.2f}" for s, r in correlations.items())
    )
    summary.setdefault("ρ", []).append(correlations)
    for rule, rank in (("worst kind", worst_gap), ("mean over kinds", lambda g: float(np.mean(list(g.values()))))):
        _, _, gains = min(rows, key=lambda row: rank(row[1]))
        summary.setdefault(rule, []).append(gains)
    summary.setdefault("rows", []).extend(rows)


def report_summary(summary: dict, sources: dict[str, str], suites: list[str]) -> None:
    distinct: dict[str, tuple] = {}
    for key, gaps, gains in summary["rows"]:
        distinct.setdefault(sources[key], (key, gaps, gains))
    rows = sorted(distinct.values(), key=lambda row: worst_gap(row[1]))
    better = sum(worst_gap(gaps) < 0 for _, gaps, _ in rows)
    print(f"\nover all runs: {len(rows)} distinct programs, {better} better than GELU on every kind; the closest:")
    for key, gaps, gains in rows[:8]:
        body = terminal_text(sources[key].split("return", 1)[-1].strip(), keep_newlines=False)  # a candidate's text
        print(
            f"  worst-kind gap {worst_gap(gaps):+.3f} | "
            + "  ".join(f"{s} {v:+.3f}" for s, v in gains.items())
            + f" | {body[:70]}"
        )
    within = summary["ρ"]
    print(
        "Spearman ρ within runs, minus the worst-kind gap vs unseen fitness (range over runs): "
        + "  ".join(f"{s} {min(r[s] for r in within):+.2f} to {max(r[s] for r in within):+.2f}" for s in within[0])
    )
    worst = [-worst_gap(gaps) for _, gaps, _ in rows]
    print(
        "Spearman ρ over the distinct programs, minus the worst-kind gap vs unseen fitness: "
        + "  ".join(f"{s} {spearmanr(worst, [g[s] for _, _, g in rows])[0]:+.2f}" for s in rows[0][2])
    )
    for rule in ("worst kind", "mean over kinds"):
        picks = summary[rule]
        print(
            f"pick by the {rule:<16} unseen minus GELU, mean over {len(picks)} runs: "
            + "  ".join(f"{s} {np.mean([p[s] for p in picks]):+.3f}" for s in picks[0])
            + f"; better than GELU on all unseen in {sum(p['all'] > 0 for p in picks)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    finished_runs_arguments(parser, "kinds.json")
    parser.add_argument("--size", type=int, default=40, help="tasks per kind")
    args = parser.parse_args()
    refuse_unfinished(parser, args.runs)
    labs, kind_of, suites = kind_labs(Config(), args.size)
    print("kinds: " + ", ".join(f"{k} {list(kind_of.values()).count(k)}" for k in dict.fromkeys(kind_of.values())))
    with CandidateScores(args.scores, args.workers, labs) as scorer:
        for run_dir in args.runs:
            scorer.score(run_dir, [row["program_id"] for row in candidates(run_dir)[1]])
        gelu = scorer.score_source(GELU_KEY, program(SEED_EXPRESSIONS["gelu"]))
    summary: dict = {}
    for run_dir in args.runs:
        report_run(run_dir, scorer.scores, gelu, kind_of, suites, summary)
    report_summary(summary, scorer.sources, suites)


if __name__ == "__main__":
    main()
