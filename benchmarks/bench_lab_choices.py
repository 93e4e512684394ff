"""Which lab choices make lab fitness predict downstream extrapolation better? (issue 14, part 5)

    python benchmarks/bench_lab_choices.py validity [--choose series,clrs] [--report diabetes,digits]

Reads a finished validity study (`actmine validate --out DIR`: DIR/validity.json and DIR/lab.jsonl)
and recomputes lab fitness under other choices of what the lab counts, without training anything:

* `default`: the study's (−mean over the test tasks of each task's clipped mean log-ratio, ±3);
* `clip ±1`: each task's log-ratio clipped to ±1, so no task weighs more than a factor e;
* `win rate`: sign of each task's log-ratio (fitness = share of tasks beating ReLU − share losing);
* `feynman only`, `expression-bump only`: one lab group's tasks (the study's lab groups);

and for each, Spearman's ρ (crossed bootstrap 95% interval, `actmine.validity.stats.correlation`)
against the mean downstream fitness of two halves of the benchmarks. The halves are fixed before
looking (default: choose on series and clrs, report on diabetes and digits): the choice with the
highest ρ on the choosing half is the one a user should adopt only if it also holds on the
reporting half, which played no part in choosing it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from actmine.validity import data, stats
from actmine.validity.labscore import JOURNAL, read_journal


def variants(lab: np.ndarray, groups: list[str]) -> dict[str, np.ndarray]:
    """Lab choices as transforms of the (functions × tasks) matrix of task log-ratios."""
    out = {"default": lab, "clip ±1": np.clip(lab, -1.0, 1.0), "win rate": np.sign(lab)}
    for group in dict.fromkeys(groups):
        out[f"{group} only"] = lab[:, [i for i, g in enumerate(groups) if g == group]]
    return out


def downstream(document: dict, names: list[str], benchmark: str) -> np.ndarray:
    """(functions × seeds) per-seed log-ratios vs ReLU of one benchmark, from validity.json."""
    by_name = {f["name"]: f for f in document["functions"]}
    ratios = {
        n: {int(s): v for s, v in (by_name[n]["downstream"].get(benchmark) or {}).get("log_ratios", {}).items()}
        for n in names
    }
    return data.downstream_matrix(ratios, names, document["seeds"])


def text(cell: dict) -> str:
    if cell["rho"] is None:
        return "n/a"
    return f"{cell['rho']:+.2f} [{cell['low']:+.2f}, {cell['high']:+.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", type=Path, help="a finished `actmine validate --out` directory")
    parser.add_argument("--choose", default="series,clrs", help="benchmarks that choose (default: %(default)s)")
    parser.add_argument(
        "--report", default="diabetes,digits", help="benchmarks that only report (default: %(default)s)"
    )
    parser.add_argument("--replicates", type=int, default=2000)
    args = parser.parse_args()
    document = json.loads((args.study / "validity.json").read_text())
    # by name; the journal is in the order written, so a name scored twice (lab settings changed) keeps
    # its latest record, the one the study's last run used
    records = {r["name"]: r for r in read_journal(args.study / JOURNAL)[0].values()}
    names = [f["name"] for f in document["functions"] if f["lab"]["ok"] and f["downstream"]]
    lab, _, groups = data.lab_matrix([records[n] for n in names])
    halves = {"choose": args.choose.split(","), "report": args.report.split(",")}
    unknown = [b for half in halves.values() for b in half if b not in document["benchmarks"]]
    if unknown:
        raise SystemExit(
            f"benchmarks not in the study: {', '.join(unknown)} (it has {', '.join(document['benchmarks'])})"
        )
    matrices = {half: [downstream(document, names, b) for b in benchmarks] for half, benchmarks in halves.items()}
    print(f"{len(names)} functions; choose on {', '.join(halves['choose'])}, report on {', '.join(halves['report'])}")
    print(f"{'lab choice':<24} {'ρ on the choosing half':>28} {'ρ on the reporting half':>28}")
    results = {}
    for name, matrix in variants(lab, groups).items():
        results[name] = {half: stats.correlation(matrix, matrices[half], replicates=args.replicates) for half in halves}
        print(f"{name:<24} {text(results[name]['choose']):>28} {text(results[name]['report']):>28}")
    best = max(results, key=lambda n: results[n]["choose"]["rho"] if results[n]["choose"]["rho"] is not None else -2)
    print(
        f"\nchosen on {', '.join(halves['choose'])}: {best}; on the reporting half it gives "
        f"{text(results[best]['report'])} against the default's {text(results['default']['report'])}"
    )
    print("per benchmark of the reporting half (ρ [interval]):")
    for name in dict.fromkeys(["default", best]):
        matrix = variants(lab, groups)[name]
        cells = [
            f"{b} {text(stats.correlation(matrix, [m], replicates=args.replicates))}"
            for b, m in zip(halves["report"], matrices["report"])
        ]
        print(f"  {name:<22} " + "   ".join(cells))


if __name__ == "__main__":
    main()
