"""Does blending the validation's choice with GELU extrapolate better than the choice itself?

    python benchmarks/bench_blend.py RUN_DIR [RUN_DIR ...] [--weights 0.5] [--scores blend.json]

For each finished run: the validation's choice under the run's winner rule (read from heldout.json's
validation rows, the blend's own row left out), and that choice blended with GELU,
(1 − w)·choice + w·GELU (`actmine.evolve.blend.blend_source`; GELU mirrored or negated as the
choice is, `aligned_signs`), for each weight w of `--weights`.
Each is scored (sandboxed) on the default config's unseen test suites, per task and seed
(journalled in `--scores`, so a second call scores nothing twice); the run's own test rows give the
references. Printed per run: each function's mean paired log-ratio against ReLU, GELU and GELUSine on
"all unseen" (below 0 = better), and against GELU per suite; then over runs: the mean against GELU,
how many runs meet issue 13's bar (means below 0 against all three), and the blend − choice
difference with a t-interval over runs (paired by run; each run's difference is itself paired by
task and seed).

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

from bench_winner_rules import (  # benchmarks/ is on the path when run as a script
    CandidateScores,
    _rank,
    candidates,
    finished_runs_arguments,
    flat,
    refuse_unfinished,
    reference_rows,
)

from actmine.evolve.blend import aligned_signs, blend_source, partner_name
from actmine.evolve.database import ProgramDatabase
from actmine.lab.estimate import paired_interval

REFERENCES = ("relu", "gelu", "gelu_sine")


def choice(run_dir: Path) -> tuple[dict, dict, dict[str, dict]]:
    """The run's heldout.json, the validation's choice (its row) and the references' test rows by suite."""
    final, rows = candidates(run_dir)  # the blend's own row is not a candidate
    rule = final.get("winner_rule", "mean")
    chosen = max(rows, key=lambda row: _rank(rule, row))
    return final, chosen, reference_rows(final, REFERENCES)


def compare(entry: dict, references: dict[str, dict]) -> dict[str, float]:
    """Mean paired log-ratio against each reference on all unseen tasks, and against GELU per suite."""
    mine = flat(entry)
    out = {ref: paired_interval(mine, flat(references[ref]))["mean"] for ref in REFERENCES if ref in references}
    for suite, tasks in entry.items():
        out[f"gelu/{suite}"] = paired_interval(flat({suite: tasks}), flat({suite: references["gelu"][suite]}))["mean"]
    return out


def interval_text(mean: float, low: float, high: float) -> str:
    return f"{mean:+.3f} " + ("(one run: no interval)" if math.isnan(low) else f"[{low:+.3f}, {high:+.3f}]")


def t_interval(values: list[float]) -> tuple[float, float, float]:
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = stats.t.ppf(0.975, len(values) - 1) * float(np.std(values, ddof=1)) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    finished_runs_arguments(parser, "blend.json")
    parser.add_argument("--weights", type=float, nargs="+", default=[0.5], help="GELU's weights in the blend")
    args = parser.parse_args()
    refuse_unfinished(parser, args.runs)
    results: dict[str, list[dict[str, float]]] = {}
    with CandidateScores(args.scores, args.workers) as scores:
        for run_dir in args.runs:
            final, chosen, references = choice(run_dir)
            with ProgramDatabase(run_dir / "programs.sqlite", readonly=True) as database:
                record = database.get(chosen["program_id"])
            source, signs = record.source, aligned_signs((record.probes or {}).get("curve"), "gelu")
            ways = {"choice": source}
            for weight in args.weights:
                try:
                    ways[f"blend {weight:g}"] = blend_source(source, "gelu", weight, signs)
                except ValueError as exc:  # ProgramError: the choice is outside the language's subset
                    print(f"{run_dir}: the choice #{chosen['program_id']} cannot be blended: {exc}")
            print(
                f"\n{run_dir}: the validation's choice is program {chosen['program_id']} "
                f"(rule {final.get('winner_rule')}); its partner {partner_name('gelu', signs)}"
            )
            for way, text in ways.items():
                entry = scores.score_source(f"{run_dir}#{way}", text)
                if any(v is None for v in entry.values()):
                    print(f"  {way:<10} refused")
                    continue
                numbers = compare(entry, references)
                results.setdefault(way, []).append(numbers)
                print(
                    f"  {way:<10} all unseen vs "
                    + "  ".join(f"{ref} {numbers[ref]:+.3f}" for ref in REFERENCES)
                    + " | vs gelu "
                    + "  ".join(f"{k.split('/', 1)[1]} {v:+.3f}" for k, v in numbers.items() if k.startswith("gelu/"))
                )
    print(f"\nover {len(args.runs)} runs (all unseen, mean paired log-ratio; below 0 = better):")
    for way, rows in results.items():
        against = interval_text(*t_interval([r["gelu"] for r in rows]))
        met = sum(all(r[ref] < 0 for ref in REFERENCES) for r in rows)
        print(f"  {way:<10} vs gelu {against}  bar met in {met} of {len(rows)} runs")
    base = results.get("choice", [])
    for way, rows in results.items():
        if way == "choice" or len(rows) != len(base):
            continue
        difference = interval_text(*t_interval([r["gelu"] - b["gelu"] for r, b in zip(rows, base)]))
        better = sum(r["gelu"] < b["gelu"] for r, b in zip(rows, base))
        print(f"  {way} − choice: {difference} (t over runs; better in {better} of {len(rows)})")
    (args.scores.with_suffix(".summary.json")).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
