"""Racing: how often would a small first sample change a decision? Offline, from finished runs.

    python benchmarks/bench_racing.py RUN_DIR [RUN_DIR ...] [--first 16 12 8] [--draws 20]

A search scores a proposal's first round on `tasks.sample` tasks (48) and confirms it on fresh
samples only if it could enter the top list (`actmine.evolve.confirmation`). With racing
(`tasks.first_sample`) the first round is smaller. For every program of the runs whose first round
was scored on the full sample, this script draws a family-stratified subset of `first` of those
tasks (`--draws` times, seeded) and asks the confirmation rule both ways against the same bar —
the score of the run's last top-list place at the end of the run (the bar a late proposal faces;
earlier bars were lower):

- **full**: the rule on all the round's tasks, as the run decided;
- **race**: the rule on the subset (with the projection's first round that small).

It prints, per `first`: how many programs the full round would confirm, how many of those the race
would settle at once (**missed**: the decisions the cheap stage changes; a missed program loses
its chance at the top list), how many of the run's final top list would be missed, the extra
confirmations the race asks for, and the tasks trained per proposal either way (first round plus
the confirmation rounds they trigger).
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
from pathlib import Path

from actmine.evolve.confirmation import ConfirmationRule
from actmine.lab.estimate import Estimate
from actmine.run_files import DATABASE


def first_rounds(run_dir: Path) -> tuple[list[dict], float, set[int], dict]:
    """(first-round task scores per program, the final top-list bar, the top list's ids, the config)."""
    connection = sqlite3.connect(f"file:{run_dir / DATABASE}?mode=ro", uri=True)
    config = json.loads(connection.execute("SELECT config FROM runs ORDER BY id LIMIT 1").fetchone()[0])
    top = int(config["search"]["heldout_top"])
    scored = connection.execute(
        "SELECT id, score FROM programs WHERE status = 'ok' AND settled = 1 AND score IS NOT NULL ORDER BY score DESC"
    ).fetchall()
    top_ids = {row[0] for row in scored[:top]}
    bar = scored[top - 1][1] if len(scored) >= top else float("-inf")
    rows = []
    for program_id, tasks in connection.execute(
        "SELECT program_id, tasks FROM evaluations WHERE round = 0 AND kind = 'search'"
    ):
        rows.append({"id": program_id, "tasks": [(t["family"], -t["log_ratio"]) for t in json.loads(tasks)]})
    return rows, bar, top_ids, config


def stratified(tasks: list[tuple[str, float]], size: int, rng: random.Random) -> list[float]:
    """`size` of the tasks, each family's share kept (largest remainders), without replacement."""
    families: dict[str, list[float]] = {}
    for family, score in tasks:
        families.setdefault(family, []).append(score)
    quotas = {f: size * len(v) / len(tasks) for f, v in families.items()}
    counts = {f: int(q) for f, q in quotas.items()}
    for family in sorted(quotas, key=lambda f: counts[f] - quotas[f])[: size - sum(counts.values())]:
        counts[family] += 1
    return [s for f, scores in families.items() for s in rng.sample(scores, min(counts[f], len(scores)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--first", type=int, nargs="+", default=[24, 16, 12, 8])
    parser.add_argument("--draws", type=int, default=20)
    args = parser.parse_args()
    data = [first_rounds(run) for run in args.runs]
    print(
        f"{'first':>5} {'programs':>8} {'full confirms':>13} {'missed':>8} {'missed in top list':>18} "
        f"{'extra':>7} {'tasks/proposal full':>19} {'race':>6}"
    )
    for first in args.first:
        counts = {
            "programs": 0,
            "full": 0,
            "missed": 0,
            "missed_top": 0,
            "top": 0,
            "extra": 0,
            "tasks_full": 0.0,
            "tasks_race": 0.0,
        }
        for rows, bar, top_ids, config in data:
            sample, rounds, z = config["tasks"]["sample"], config["tasks"]["confirm_rounds"], config["tasks"]["lcb_z"]
            full_rule, race_rule = ConfirmationRule(rounds, z), ConfirmationRule(rounds, z, first / sample)
            rng = random.Random(first)
            for row in rows:
                if len(row["tasks"]) < sample:
                    continue
                full = full_rule.needs_round(Estimate.of([s for _, s in row["tasks"]]), 1, [bar])
                for _ in range(args.draws):
                    race = race_rule.needs_round(Estimate.of(stratified(row["tasks"], first, rng)), 1, [bar])
                    counts["programs"] += 1
                    counts["full"] += full
                    counts["missed"] += full and not race
                    counts["extra"] += race and not full
                    counts["top"] += row["id"] in top_ids
                    counts["missed_top"] += row["id"] in top_ids and not race and full
                    counts["tasks_full"] += sample + (sample if full else 0)  # at least one confirmation round
                    counts["tasks_race"] += first + (sample if race else 0)
        n = counts["programs"] or 1
        print(
            f"{first:>5} {n / args.draws:>8.0f} {counts['full'] / n:>12.1%} {counts['missed'] / n:>7.1%} "
            f"{counts['missed_top'] / max(counts['top'], 1):>17.1%} {counts['extra'] / n:>6.1%} "
            f"{counts['tasks_full'] / n:>19.1f} {counts['tasks_race'] / n:>6.1f}"
        )
    print(
        "\n(missed: share of all programs the full round would confirm and the race settles; missed in top "
        "list: share of the run's final top-list programs; tasks: the first round plus one confirmation round "
        "where the rule asks for one, a lower bound on both sides)"
    )


if __name__ == "__main__":
    main()
