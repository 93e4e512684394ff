"""Does a lab suite predict the validity study's downstream results? Without training downstream again.

    python benchmarks/bench_validity_suites.py [--study validity] [--suites feynman,expression-bump,response]
                                               [--journal FILE] [--workers 2] [--replicates 2000]

docs/validity.md's study trained 33 functions on four downstream benchmarks (three seeds each) and
correlated them with the lab fitness of that day's unseen test suites. A suite added since (the
`response` family, docs/lab.md "A third unseen suite") can be judged against the same downstream
numbers, which do not depend on the lab: this script rebuilds the study's functions from its
`validity.json` (registry names; the program files of its `functions/` directory, read as data and
checked as `actmine validate` reads them), scores them on `--suites` with `labscore.score_functions`
(programs in sandbox workers; journalled in `--journal`, so a rerun trains nothing), and prints
Spearman's ρ of each suite's lab fitness, and of all of them together, against each benchmark's and
the pooled downstream fitness, with the study's bootstrap interval (`validity.stats.correlations`:
functions, lab tasks and seeds resampled). The study's own suites are its reference: their ρ here
should match docs/validity.md's up to the lab's changes since.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from actmine.transfer.runner import resolve_activation
from actmine.validity import data, labscore, stats
from actmine.validity.functions import Function, registry_function


def study_functions(study: Path) -> tuple[list[Function], dict]:
    """The study's functions (those in its correlations) and their validity.json entries by name."""
    document = json.loads((study / "validity.json").read_text())
    entries = {entry["name"]: entry for entry in document["functions"] if entry.get("downstream")}
    functions = []
    for name, entry in entries.items():
        if entry["kind"] == "registry":
            functions.append(registry_function(entry["reference"], entry["origin"]))
        else:
            path = str(study / "functions" / f"{name}.py")
            functions.append(Function(name, entry["origin"], path, resolve_activation(path).source))
    return functions, entries


def downstream(entries: dict, names: list[str]) -> dict[str, np.ndarray]:
    """{benchmark: functions × seeds log-ratios vs ReLU} from the study's entries."""
    benchmarks = sorted({b for entry in entries.values() for b in entry["downstream"]})
    matrices = {}
    for benchmark in benchmarks:
        ratios = {
            name: {int(s): v for s, v in entries[name]["downstream"].get(benchmark, {}).get("log_ratios", {}).items()}
            for name in names
        }
        seeds = sorted({s for r in ratios.values() for s in r})
        matrices[benchmark] = data.downstream_matrix(ratios, names, seeds)
    return matrices


def cell(c: dict | None) -> str:
    if not c or c.get("rho") is None:
        return "—"
    return f"{c['rho']:+.2f} [{c['low']:+.2f}, {c['high']:+.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", type=Path, default=Path("validity"), help="the validity study's directory")
    parser.add_argument("--suites", default=None, help="lab suites, comma-separated (default: the unseen test suites)")
    parser.add_argument("--journal", type=Path, default=Path("validity_suites.jsonl"), help="journal of lab scores")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--replicates", type=int, default=2000)
    args = parser.parse_args()
    functions, entries = study_functions(args.study)
    labs = labscore.build_labs(args.suites.split(",") if args.suites else None)
    records = labscore.score_functions(functions, labs, args.journal, workers=args.workers, say=print)
    names = [f.name for f in functions if records[f.name]["ok"]]
    left_out = sorted(f.name for f in functions if not records[f.name]["ok"])
    lab, _, groups = data.lab_matrix([records[n] for n in names])
    matrices = downstream(entries, names)
    result = stats.correlations(lab, groups, matrices, replicates=args.replicates)
    columns = stats.family_columns(groups)
    print(
        f"\n{len(names)} functions of {args.study}/validity.json"
        + (f" ({', '.join(left_out)} refused by a lab)" if left_out else "")
    )
    print("Spearman ρ, lab fitness vs downstream fitness [95% bootstrap interval]")
    header = [*matrices, "pooled"]
    print(f"{'lab group (tasks)':<28} | " + " | ".join(f"{h:<22}" for h in header))
    overall = {**result["per_benchmark"], "pooled": result["pooled"]}
    print(f"{f'all ({lab.shape[1]})':<28} | " + " | ".join(f"{cell(overall.get(h)):<22}" for h in header))
    for group, cells in result["families"].items():
        print(f"{f'{group} ({len(columns[group])})':<28} | " + " | ".join(f"{cell(cells.get(h)):<22}" for h in header))


if __name__ == "__main__":
    main()
