"""Does blending the validation's choice with GELU extrapolate better than the choice itself?

    python benchmarks/bench_blend.py RUN_DIR [RUN_DIR ...] [--weights 0.5] [--partners gelu ...] [--kinds]
                                     [--scores blend.json] [--against OTHER.summary.json] [--rule RULE]

For each finished run: the validation's choice under the run's winner rule, or under `--rule` (read
from heldout.json's validation rows, the blend's own row left out), and that choice blended with each partner of
`--partners` (default GELU), (1 − w)·choice + w·partner (`actmine.evolve.blend.blend_source`; the
partner mirrored or negated as the choice is, `aligned_signs`), for each weight w of `--weights`;
with two partners or more, also their equal `mix` (the choice and every partner, each 1/(k + 1)).
Each is scored (sandboxed) on the default config's unseen test suites, per task and seed
(journalled in `--scores`, so a second call scores nothing twice); the run's own test rows give the
references. Printed per run: each function's mean paired log-ratio against ReLU, GELU and GELUSine on
"all unseen" (below 0 = better), and against GELU per suite; then over runs: the mean against GELU,
how many runs meet issue 13's bar (means below 0 against all three), and each way's difference
from the choice with a t-interval over runs (paired by run; each run's difference is itself paired
by task and seed).

`--against OTHER.summary.json` (the summary another call wrote beside its journal, over the same runs
in the same order: e.g. the same run seeds resumed with a larger `--budget`) prints each way of this
call minus the same way there, paired by run, with t-intervals over runs.

`--kinds` also scores every function and the references on fresh draws of each kind of target the
search draws (`bench_kinds.kind_labs`: each expression operator group alone, harmonic, polynomial;
40 tasks × 2 seeds each, from index 3,000,000) and compares them, paired by task, on two groups
besides "all unseen": **search kinds** (every kind, 40 tasks each) and **issue 13's kinds** — the
kinds of the unseen suite that issue 13's filing described and that will judge the winner
(oscillating: periodic expressions and harmonic sums; saturating; kinked; bump-shaped: the
`expression-bump` test suite). GELU and GELUSine rank differently on them than on "all unseen",
where the Feynman equations weigh 60%; a winner meets issue 13's bar only by beating both there too.

A run searched with `search.winner_blend` > 0 already holds its blend as the winner; the blend
scored here at its weight computes the same function (text aside), so its numbers match the run's
own test rows up to float rounding.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from scipy import stats

from bench_kinds import EXPRESSION_KINDS, GENERATOR_KINDS, kind_labs, kind_scores, task_score
from bench_winner_rules import (  # benchmarks/ is on the path when run as a script
    CandidateScores,
    _rank,
    candidates,
    finished_runs_arguments,
    flat,
    refuse_unfinished,
    reference_rows,
    validation_references,
)

from actmine.config import Config
from actmine.evolve.blend import aligned_signs, blend_source, partner_name
from actmine.evolve.database import ProgramDatabase
from actmine.evolve.seeds import SEED_EXPRESSIONS, program
from actmine.lab.estimate import WINNER_RULES, paired_interval

REFERENCES = ("relu", "gelu", "gelu_sine")
TIE = 1e-6  # |mean paired difference| below this is a tie (`better`)
KIND_LABS = (EXPRESSION_KINDS, GENERATOR_KINDS)
KIND_SIZE = 40  # tasks per kind (× seeds 0 and 1), as bench_kinds.py
#: The kinds of issue 13's unseen suite (oscillating, saturating, kinked, bump-shaped) among the
#: search's kinds and the test suites (`bench_kinds.kind_pools` names; `expression-bump` a test suite).
ISSUE_13_KINDS = ("expression/periodic", "harmonic", "expression/saturating", "expression/kinked", "expression-bump")


def choice(run_dir: Path, rule: str | None = None) -> tuple[dict, dict, dict[str, dict]]:
    """The run's heldout.json, the validation's choice (its row) under `rule` (default: the run's own
    winner rule) and the references' test rows by suite."""
    final, rows = candidates(run_dir)  # the blend's own row is not a candidate
    rule = rule or final.get("winner_rule", "mean")
    known = validation_references(final)
    chosen = max(rows, key=lambda row: _rank(rule, row, known))
    return final, chosen, reference_rows(final, REFERENCES)


def compare(entry: dict, references: dict[str, dict]) -> dict[str, float]:
    """Mean paired log-ratio against each reference on all unseen tasks (the references' suites), and
    against GELU per suite."""
    entry = {suite: tasks for suite, tasks in entry.items() if suite in references["gelu"]}
    mine = flat(entry)
    out = {ref: paired_interval(mine, flat(references[ref]))["mean"] for ref in REFERENCES if ref in references}
    for suite, tasks in entry.items():
        out[f"gelu/{suite}"] = paired_interval(flat({suite: tasks}), flat({suite: references["gelu"][suite]}))["mean"]
    return out


def better(difference: float) -> bool:
    """A mean paired difference below 0 by more than float rounding: the same function scored in
    another worker differs from itself by ~1e-7 (a validation that chose GELU itself blends GELU with
    GELU), and a tie does not meet a bar."""
    return difference < -TIE


def interval_text(mean: float, low: float, high: float) -> str:
    return f"{mean:+.3f} " + ("(one run: no interval)" if math.isnan(low) else f"[{low:+.3f}, {high:+.3f}]")


def t_interval(values: list[float]) -> tuple[float, float, float]:
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = stats.t.ppf(0.975, len(values) - 1) * float(np.std(values, ddof=1)) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def ways(source: str, curve: dict | None, weights: list[float], partners: list[str]) -> dict[str, str]:
    """The choice, its blends with each partner at each weight ("blend 0.5" with GELU, "blend 0.5
    gelu_sine" with another), and with two partners or more their equal `mix`; a blend the language
    cannot write is left out, with a line saying why."""
    out = {"choice": source}
    signs = {partner: aligned_signs(curve, partner) for partner in partners}
    try:
        for partner in partners:
            for weight in weights:
                name = f"blend {weight:g}" + ("" if partner == "gelu" else f" {partner}")
                out[name] = blend_source(source, partner, weight, signs[partner])
        if len(partners) > 1:
            mixed = source
            for k, partner in enumerate(partners, start=1):  # after k partners each function weighs 1/(k + 1)
                mixed = blend_source(mixed, partner, 1 / (k + 1), signs[partner])
            out["mix"] = mixed
    except ValueError as exc:  # ProgramError: the choice is outside the language's subset
        print(f"  the choice cannot be blended: {exc}")
    return out


def task_scores(entry: dict, kind_of: dict[str, str], suites: list[str]) -> dict[str, float]:
    """{kind|task: the lab's per-task score} of a journal entry on the kind labs and the unseen suites
    (a suite's tasks are of the kind named by the suite)."""
    kinds = {f"{kind_of[task]}|{task}": task_score(v) for task, v in (kind_scores(entry, KIND_LABS) or {}).items()}
    return kinds | {f"{suite}|{task}": task_score(v) for suite in suites for task, v in entry[suite].items()}


def group_gap(mine: dict[str, float], reference: dict[str, float], kinds: set[str]) -> float:
    """The mean over the tasks of `kinds` of mine minus the reference's task score (below 0 = better)."""
    return float(np.mean([mine[key] - reference[key] for key in mine if key.split("|", 1)[0] in kinds]))


def kind_groups(kind_of: dict[str, str]) -> dict[str, set[str]]:
    """The groups of kinds compared: every kind the search draws, and issue 13's; exits if the search
    no longer draws one of issue 13's kinds (its names come from the config's pools)."""
    kinds = set(kind_of.values())
    missing = set(ISSUE_13_KINDS) - kinds - {"expression-bump"}
    if missing:
        raise SystemExit(f"the default search draws none of {', '.join(sorted(missing))}: update ISSUE_13_KINDS")
    return {"search kinds": kinds, "issue 13's kinds": set(ISSUE_13_KINDS)}


def compare_kinds(mine: dict[str, float], references: dict[str, dict[str, float]], groups: dict) -> dict:
    """{"GROUP vs REF": mean paired difference} for every group and reference."""
    return {
        f"{g} vs {ref}": group_gap(mine, references[ref], kinds) for g, kinds in groups.items() for ref in REFERENCES
    }


def score_run(run_dir: Path, scores: CandidateScores, args: argparse.Namespace, kinds: dict) -> dict[str, dict]:
    """Each way's comparisons for one run ({way: {name: mean paired difference}}), printed."""
    final, chosen, references = choice(run_dir, args.rule)
    with ProgramDatabase(run_dir / "programs.sqlite", readonly=True) as database:
        record = database.get(chosen["program_id"])
    curve = (record.probes or {}).get("curve")
    print(
        f"\n{run_dir}: the validation's choice is program {chosen['program_id']} "
        f"(rule {args.rule or final.get('winner_rule')}); partners "
        + ", ".join(partner_name(p, aligned_signs(curve, p)) for p in args.partners)
    )
    numbers: dict[str, dict] = {}
    for way, text in ways(record.source, curve, args.weights, args.partners).items():
        entry = scores.score_source(f"{run_dir}#{way}", text)
        if any(v is None for v in entry.values()):
            print(f"  {way:<10} refused")
            continue
        row = numbers[way] = compare(entry, references)
        print(
            f"  {way:<10} all unseen vs "
            + "  ".join(f"{ref} {row[ref]:+.3f}" for ref in REFERENCES)
            + " | vs gelu "
            + "  ".join(f"{k.split('/', 1)[1]} {v:+.3f}" for k, v in row.items() if k.startswith("gelu/"))
        )
        if kinds:
            row.update(
                compare_kinds(task_scores(entry, kinds["of"], kinds["suites"]), kinds["library"], kinds["groups"])
            )
            for group in kinds["groups"]:
                print(
                    f"  {'':<10} {group} vs "
                    + "  ".join(f"{ref} {row[f'{group} vs {ref}']:+.3f}" for ref in REFERENCES)
                )
    return numbers


def kind_setup(scores: CandidateScores, kind_of: dict[str, str], suites: list[str]) -> dict:
    """What `score_run` needs for `--kinds`: the kinds, the groups and the references' task scores."""
    library = {
        ref: task_scores(scores.score_source(f"library#{ref}", program(SEED_EXPRESSIONS[ref])), kind_of, suites)
        for ref in REFERENCES
    }
    return {"of": kind_of, "suites": suites, "groups": kind_groups(kind_of), "library": library}


def report(results: dict[str, list[dict]], runs: int) -> None:
    print(f"\nover {runs} runs (mean paired log-ratio; below 0 = better; t-intervals over runs):")
    for way, rows in results.items():
        against = interval_text(*t_interval([r["gelu"] for r in rows]))
        met = sum(bars_met(r)[0] for r in rows)
        print(f"  {way:<10} all unseen vs gelu {against}  bar met in {met} of {len(rows)} runs")
        for group in dict.fromkeys(key.split(" vs ")[0] for key in rows[0] if " vs " in key):
            against = "  ".join(
                f"{ref} {interval_text(*t_interval([r[f'{group} vs {ref}'] for r in rows]))}" for ref in REFERENCES
            )
            met = sum(all(better(r[f"{group} vs {ref}"]) for ref in REFERENCES) for r in rows)
            print(f"  {'':<10} {group} vs {against}  bar met in {met}")
    base = results.get("choice", [])
    for way, rows in results.items():
        if way == "choice" or len(rows) != len(base):
            continue
        difference = interval_text(*t_interval([r["gelu"] - b["gelu"] for r, b in zip(rows, base)]))
        wins = sum(better(r["gelu"] - b["gelu"]) for r, b in zip(rows, base))
        print(f"  {way} − choice, all unseen: {difference} (better in {wins} of {len(rows)})")


def bars_met(row: dict) -> tuple[bool, bool]:
    """Whether one run's way beats ReLU, GELU and GELUSine (means below 0) on "all unseen", and on
    issue 13's kinds (False where the row has no kinds)."""
    unseen = all(better(row[ref]) for ref in REFERENCES)
    kinds = all(better(row.get(f"issue 13's kinds vs {ref}", math.inf)) for ref in REFERENCES)
    return unseen, kinds


def report_against(results: dict[str, list[dict]], other: dict[str, list[dict]]) -> None:
    """Each way of this call minus the same way of `other` (the summary of an earlier call over the
    same runs in the same order, e.g. the same run seeds searched with another config), paired by run:
    t-intervals over runs, and how many runs meet both of issue 13's bars in each."""
    print(
        "\nthis call − the --against summary, paired by run (below 0 = this call's way is better; the same"
        " against every reference, which cancels):"
    )
    keys = {
        "gelu": "all unseen",
        "issue 13's kinds vs gelu": "issue 13's kinds",
        "search kinds vs gelu": "search kinds",
    }
    for way, rows in results.items():
        base = other.get(way, [])
        if len(base) != len(rows):
            print(f"  {way:<10} not in the --against summary for {len(rows)} runs: not compared")
            continue
        for n, key in enumerate(k for k in keys if all(k in r for r in rows + base)):
            difference = interval_text(*t_interval([r[key] - b[key] for r, b in zip(rows, base)]))
            print(f"  {way if n == 0 else '':<10} {keys[key]} {difference}")
        both = sum(all(bars_met(r)) for r in rows), sum(all(bars_met(b)) for b in base)
        print(f"  {'':<10} both bars met in {both[0]} of {len(rows)} runs (there: {both[1]})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    finished_runs_arguments(parser, "blend.json")
    parser.add_argument("--weights", type=float, nargs="+", default=[0.5], help="the partner's weights in the blend")
    parser.add_argument(
        "--partners", nargs="+", default=["gelu"], choices=sorted(SEED_EXPRESSIONS), help="the blends' partners"
    )
    parser.add_argument("--kinds", action="store_true", help="also compare on fresh draws of the search's kinds")
    parser.add_argument(
        "--rule",
        choices=sorted(WINNER_RULES),
        help="the winner rule that makes the choice (default: each run's own); give each rule its own --scores",
    )
    parser.add_argument(
        "--against",
        type=Path,
        help="the .summary.json of an earlier call over the same runs in the same order: paired differences",
    )
    args = parser.parse_args()
    refuse_unfinished(parser, args.runs)
    against = json.loads(args.against.read_text()) if args.against else None
    labs, kind_of, suites = None, {}, []
    if args.kinds:
        labs, kind_of, suites = kind_labs(Config(), KIND_SIZE)
    results: dict[str, list[dict]] = {}
    with CandidateScores(args.scores, args.workers, labs) as scores:
        kinds = kind_setup(scores, kind_of, suites) if args.kinds else {}
        for run_dir in args.runs:
            for way, row in score_run(run_dir, scores, args, kinds).items():
                results.setdefault(way, []).append(row)
    report(results, len(args.runs))
    if against is not None:
        report_against(results, against)
    (args.scores.with_suffix(".summary.json")).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
