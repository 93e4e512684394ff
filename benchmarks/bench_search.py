"""Does evolution beat random search? Both at the same proposal budget, several run seeds, judged
on the test suites (generators the search never draws), never on what chose the winners.

    python benchmarks/bench_search.py [--budget 250] [--seeds 0 1 2] [--workers 2] [--keep DIR] [--set KEY=VALUE]

For each run seed: a search with the symbolic mutator and one with the random mutator (fresh random
expressions, no parent: best-of-N), both from the default config otherwise (the same pools, seeds,
confirmation rule and validation). Each run's winner is the validation's choice; the test suites
then score it with the library's references. Prints per run: proposals, confirmation rounds, the
winner's search estimate, validation fitness and test fitness per suite; then, over run seeds, the
mean test fitness of each method, and per seed the paired difference evolution − random on the
pooled unseen test tasks (mean log-ratio of the two winners per task and seed, 95% cluster-bootstrap
interval: below 0 = evolution's winner extrapolates better); and each winner against ReLU, GELU and
GELUSine on the same tasks (the `all unseen` comparisons of its heldout.json: below 0 = the winner
is better), issue 13's bar.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
from pathlib import Path

import yaml

from actmine.config import Config
from actmine.evolve.controller import Search
from actmine.lab.estimate import paired_interval


BAR = ("relu", "gelu", "gelu_sine")  # the references issue 13's winner must beat on unseen generators


def run(mutator: str, seed: int, budget: int, workers: int, keep: Path | None = None, settings=()) -> dict:
    config = Config().with_overrides(
        {
            **dict(settings),
            "search.budget": budget,
            "search.time_limit": 0,
            "search.seed": seed,
            "mutator.kind": mutator,
            "executor.workers": workers,
        }
    )
    place = (
        contextlib.nullcontext(keep / f"seed{seed}-{mutator}")  # kept for later study (bench_objectives.py)
        if keep is not None
        else tempfile.TemporaryDirectory(prefix="actmine-bench-")
    )
    with place as run_dir:
        summary = Search(config, run_dir, live=False).run()
        final = json.loads((Path(run_dir) / "heldout.json").read_text())
    unseen = list(config.tasks.test)
    winner = final["winner"]
    tests = {r["suite"]: r for r in final["test"] if r["program_id"] == winner}
    tasks = {f"{suite}/{t}": v for suite in unseen for t, v in tests[suite]["tasks"].items()}
    validation = next((r["heldout_fitness"] for r in final["validation"] if r.get("winner")), None)
    references = {(r["suite"], r["name"]): r["fitness"] for r in final["test"] if r["program_id"] is None}
    against = {c["against"]: c for c in final["comparisons"] if c["suite"] == "all unseen"}
    return {
        "summary": summary,
        "tests": {s: tests[s]["fitness"] for s in tests},
        "tasks": tasks,
        "validation": validation,
        "references": references,
        "unseen": unseen,
        "against": against,
    }


def _setting(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or "." not in key:
        raise argparse.ArgumentTypeError(f"expected SECTION.KEY=VALUE, e.g. tasks.objective=bounded, got {text!r}")
    return key, yaml.safe_load(value)


def settings_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """`--set KEY=VALUE` (repeatable; the value is YAML), gathered as `args.settings`: [(key, value)]."""
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        type=_setting,
        metavar="KEY=VALUE",
        help=f"{help} (the value is YAML); repeatable",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=int, default=Config().search.budget)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--keep", type=Path, help="keep each run in KEEP/seed<N>-<mutator> (default: a temporary directory)"
    )
    settings_argument(parser, "a config key to change in every run, e.g. tasks.objective=bounded")
    args = parser.parse_args()
    runs: dict[tuple[str, int], dict] = {}
    suites: list[str] = []
    for seed in args.seeds:
        for mutator in ("symbolic", "random"):
            result = runs[mutator, seed] = run(mutator, seed, args.budget, args.workers, args.keep, args.settings)
            suites = sorted(result["tests"])
            s = result["summary"]
            rounds = s.get("rounds", {})
            tests = "  ".join(f"{name} {result['tests'][name]:+.3f}" for name in suites)
            print(
                f"{mutator:<9} seed {seed}: {s['evaluated']} proposals, {rounds.get('confirm', 0)} confirmations, "
                f"{s['seconds']:.0f} s; winner #{s['best']['id']} search {s['best']['fitness']:+.3f} "
                f"validation {result['validation']:+.3f}; test: {tests}",
                flush=True,
            )
    print("\nmean test fitness over run seeds (higher is better; fitness = −mean log-ratio vs ReLU):")
    for mutator in ("symbolic", "random"):
        means = {name: statistics.mean(runs[mutator, s]["tests"][name] for s in args.seeds) for name in suites}
        print(f"  {mutator:<9} " + "  ".join(f"{name} {value:+.3f}" for name, value in means.items()))
    first = runs["symbolic", args.seeds[0]]
    for reference in BAR:
        print(
            f"  {reference:<9} "
            + "  ".join(f"{name} {first['references'].get((name, reference), float('nan')):+.3f}" for name in suites)
        )
    print("\nevolution's winner − random's winner on the unseen test tasks (paired by task and seed):")
    differences = []
    for seed in args.seeds:
        interval = paired_interval(runs["symbolic", seed]["tasks"], runs["random", seed]["tasks"])
        differences.append(interval["mean"])
        print(
            f"  seed {seed}: {interval['mean']:+.3f} [{interval['low']:+.3f}, {interval['high']:+.3f}] over "
            f"{interval['tasks']} tasks × {interval['seeds']} seeds"
        )
    print("\nthe winner against each reference on the unseen test tasks (issue 13's bar: all three below 0):")
    for seed in args.seeds:
        for mutator in ("symbolic", "random"):
            against = runs[mutator, seed]["against"]
            cells = [
                f"{name} {c['mean']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]"
                for name in BAR
                if (c := against.get(name))
            ]
            met = all(name in against and against[name]["mean"] < 0 for name in BAR)
            print(f"  seed {seed} {mutator:<9} " + "  ".join(cells) + ("  bar met" if met else ""))
    if len(differences) > 1:
        print(
            f"  mean over run seeds {statistics.mean(differences):+.3f} (sd {statistics.stdev(differences):.3f}, "
            f"{len(differences)} seeds)"
        )


if __name__ == "__main__":
    main()
