"""Which CLRS setting measures something? Per setting: cost per job, ReLU's ID and OOD score, and
the seeds a 0.1 difference in log-ratio needs.

    python benchmarks/bench_clrs_power.py [--algorithms bfs,bellman_ford bfs,bellman_ford,dijkstra]
        [--steps 300 600 1000] [--seeds 4] [--activations gelu gelu_sine] [--out FILE.jsonl] [--quick]

A setting is one set of algorithms (one ``--algorithms`` entry) × one ``train_steps``; the grid is
every pair.  For seeds 0..S-1, ReLU and each activation train one CLRS model per algorithm on one
thread (``actmine.transfer.algorithmic.CLRS.run_algorithm``, the benchmark's own job).  Each
algorithm trains once, to the largest step count, and is scored on the way at the smaller ones
(``score_at``: exactly what a shorter run scores, as nothing in training depends on the number of
steps); a setting's score is the mean over its algorithms, as the benchmark's.  With ``--out``
every (algorithm, activation, seed) result is appended to a JSON-lines file as it finishes, and
a rerun with the same file reuses them (an interrupted run continues).

Columns (one row per setting):

    setting     algorithms @ train_steps
    s/job       mean seconds of one job of the setting on one thread: sampling, training to that
                step, scoring both test sets (the runner's process start, ~5-10 s, not included)
    ReLU ID     ReLU's mean in-distribution score (held-out instances of train_size nodes)
    ReLU OOD    ReLU's mean OOD score (test_size nodes): the benchmark's score
    ACT lr±sd   per activation: the mean and sample sd over seeds of the paired log-ratio
                runner.log_ratio(score_act,seed, score_relu,seed) of the OOD scores (negative
                beats ReLU): what the runner reports
    ACT ID      the mean of the same log-ratio on the ID scores: an OOD gain that comes with an
                ID gain as large is a better fit, not better extrapolation
    sd          the activations' pooled sd: sqrt(mean of their variances)
    n           seeds for a 95 % interval of half-width 0.1 on the mean log-ratio:
                n = ceil((1.96 · sd / 0.1)^2) (normal approximation; at least 2)
    min/act     n × s/job / 60: minutes of one-thread compute per activation at that n (ReLU's
                n jobs are paid once for all activations)

With few seeds the sd itself is rough (S − 1 degrees of freedom per activation); read n as an order
of magnitude.  --quick runs a tiny grid (seconds) to check that the script works.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from actmine import activations
from actmine.reproduce import mean_ci
from actmine.transfer.algorithmic import CLRS
from actmine.transfer.runner import log_ratio

REFERENCE = "relu"
RESOLUTION = 0.1  # the log-ratio difference to resolve (~10 % fewer errors)
Z95 = 1.96
QUICK_OPTIONS = dict(hidden=16, num_train_samples=32, num_test_samples=4)


@dataclass(frozen=True)
class Setting:
    algorithms: tuple[str, ...]
    steps: int

    @property
    def label(self) -> str:
        return f"{'+'.join(self.algorithms)} @{self.steps}"


def grid(algorithm_sets: Sequence[Sequence[str]], steps: Sequence[int]) -> list[Setting]:
    """Every (algorithm set, train_steps) pair, in the order given."""
    return [Setting(tuple(algs), int(k)) for algs in algorithm_sets for k in steps]


def training_plan(settings: Iterable[Setting]) -> dict[str, list[int]]:
    """Per algorithm, the step counts it is scored at (sorted): it trains once, to the last."""
    plan: dict[str, set[int]] = {}
    for setting in settings:
        for algorithm in setting.algorithms:
            plan.setdefault(algorithm, set()).add(setting.steps)
    return {algorithm: sorted(ks) for algorithm, ks in plan.items()}


def seeds_needed(sd: float, resolution: float = RESOLUTION, z: float = Z95) -> int:
    """Seeds for a two-sided interval of half-width ``resolution``: ceil((z·sd/resolution)²), ≥ 2."""
    return max(2, math.ceil((z * sd / resolution) ** 2 - 1e-9))


def pooled_sd(sds: Iterable[float | None]) -> float | None:
    """sqrt of the mean variance (the activations have the same number of seeds)."""
    values = [s for s in sds if s is not None]
    return math.sqrt(sum(s * s for s in values) / len(values)) if values else None


def run_one(bench: CLRS, algorithm: str, activation: str, seed: int, steps: Sequence[int]) -> list[dict[str, Any]]:
    """Train ``algorithm`` with ``activation`` to ``max(steps)``: one record per step count."""
    start = time.perf_counter()
    scores, record = bench.run_algorithm(
        algorithm, lambda: activations.get(activation), seed, train_steps=max(steps), score_at=steps[:-1]
    )
    data = record["seconds"]["data"]
    at = dict(record["scored_at"])
    at[max(steps)] = {
        "score": scores["score"],
        "id_score": record["id_scores"]["score"],
        "train_seconds": record["seconds"]["train"],
        "evaluate_seconds": record["seconds"]["evaluate"],
    }
    rows = [
        {
            "algorithm": algorithm,
            "activation": activation,
            "seed": seed,
            "steps": k,
            "score": at[k]["score"],
            "id_score": at[k]["id_score"],
            "seconds": data + at[k]["train_seconds"] + at[k]["evaluate_seconds"],
        }
        for k in steps
    ]
    print(
        f"  {algorithm:<20} {activation:<10} seed {seed}  "
        + "  ".join(f"@{r['steps']}: OOD {r['score']:.3f} ID {r['id_score']:.3f}" for r in rows)
        + f"  ({time.perf_counter() - start:.0f} s)",
        flush=True,
    )
    return rows


def measure(
    bench: CLRS, plan: dict[str, list[int]], names: Sequence[str], seeds: int, out: Path | None
) -> list[dict[str, Any]]:
    """Every (algorithm, activation, seed) of the plan, reusing what ``out`` already holds."""
    done = load(out, bench) if out else []
    have = {(r["algorithm"], r["activation"], r["seed"], r["steps"]) for r in done}
    records = list(done)
    for seed in range(seeds):
        for name in names:
            for algorithm, steps in plan.items():
                if all((algorithm, name, seed, k) in have for k in steps):
                    continue
                rows = run_one(bench, algorithm, name, seed, steps)
                records += rows
                if out:
                    with out.open("a") as fh:
                        for row in rows:
                            fh.write(json.dumps({**row, "options": options_of(bench)}) + "\n")
    return records


def options_of(bench: CLRS) -> dict[str, Any]:
    """The constructor options that change a result (not the algorithms or steps: per record)."""
    return {
        k: getattr(bench, k)
        for k in (
            "train_size",
            "test_size",
            "batch_size",
            "hidden",
            "lr",
            "num_train_samples",
            "num_test_samples",
            "msg_passing_steps",
        )
    }


def load(path: Path, bench: CLRS) -> list[dict[str, Any]]:
    """The records of ``path`` made with ``bench``'s options (others are ignored)."""
    if not path.exists():
        return []
    wanted = options_of(bench)
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("options") == wanted]


def setting_row(
    setting: Setting, records: Sequence[dict[str, Any]], names: Sequence[str], seeds: int
) -> dict[str, Any]:
    """The table's figures for one setting (see the module docstring)."""
    index = {(r["algorithm"], r["activation"], r["seed"], r["steps"]): r for r in records}

    def job(name: str, seed: int) -> tuple[float, float, float]:  # OOD score, ID score, seconds
        rs = [index[(a, name, seed, setting.steps)] for a in setting.algorithms]
        return (
            sum(r["score"] for r in rs) / len(rs),
            sum(r["id_score"] for r in rs) / len(rs),
            sum(r["seconds"] for r in rs),
        )

    jobs = {(name, seed): job(name, seed) for name in [REFERENCE, *names] for seed in range(seeds)}
    relu = [jobs[(REFERENCE, s)] for s in range(seeds)]
    ratios = {name: mean_ci([log_ratio(jobs[(name, s)][0], relu[s][0]) for s in range(seeds)]) for name in names}
    id_ratios = {
        name: mean_ci([log_ratio(jobs[(name, s)][1], relu[s][1]) for s in range(seeds)])["mean"] for name in names
    }
    sd = pooled_sd(r["sd"] for r in ratios.values())
    n = seeds_needed(sd) if sd is not None else None
    per_job = sum(j[2] for j in jobs.values()) / len(jobs)
    return {
        "setting": setting.label,
        "seconds_per_job": per_job,
        "relu_id": sum(j[1] for j in relu) / seeds,
        "relu_ood": sum(j[0] for j in relu) / seeds,
        "log_ratio": {name: (r["mean"], r["sd"]) for name, r in ratios.items()},
        "id_log_ratio": id_ratios,
        "sd": sd,
        "seeds_needed": n,
        "minutes_per_activation": None if n is None else n * per_job / 60,
    }


def format_table(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> str:
    def num(x: float | None, fmt: str) -> str:
        return "-" if x is None else format(x, fmt)

    head = (
        f"{'setting':<40} {'s/job':>6} {'ReLU ID':>7} {'ReLU OOD':>8} "
        + " ".join(f"{name + ' lr±sd':>18} {name + ' ID':>{max(6, len(name) + 3)}}" for name in names)
        + f" {'sd':>5} {'n':>4} {'min/act':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        cells = " ".join(
            f"{num(m, '+.3f') + '±' + num(s, '.3f'):>18} {num(r['id_log_ratio'][name], '+.3f'):>{max(6, len(name) + 3)}}"
            for name, (m, s) in r["log_ratio"].items()
        )
        lines.append(
            f"{r['setting']:<40} {r['seconds_per_job']:>6.1f} {r['relu_id']:>7.3f} {r['relu_ood']:>8.3f} "
            f"{cells} {num(r['sd'], '.3f'):>5} {num(r['seeds_needed'], 'd'):>4} "
            f"{num(r['minutes_per_activation'], '.0f'):>7}"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--algorithms",
        nargs="+",
        default=["bfs,bellman_ford"],
        help="algorithm sets, each comma-separated (default: bfs,bellman_ford)",
    )
    parser.add_argument("--steps", nargs="+", type=int, default=[300, 600, 1000], help="train_steps values")
    parser.add_argument("--seeds", type=int, default=4, help="seeds 0..S-1 (at least 2)")
    parser.add_argument(
        "--activations", nargs="+", default=["gelu", "gelu_sine"], help="compared with ReLU (registry names)"
    )
    parser.add_argument("--out", type=Path, help="JSON-lines file of per-algorithm results (reused)")
    parser.add_argument("--quick", action="store_true", help="a tiny grid, seconds: a smoke check")
    args = parser.parse_args(argv)
    if args.quick:
        args.algorithms, args.steps, args.seeds = ["bfs"], [4, 8], 2
    if args.seeds < 2:
        parser.error("--seeds must be at least 2 (an sd needs two seeds)")
    if any(k < 1 for k in args.steps):
        parser.error("--steps must be positive")
    args.algorithms = [tuple(a.strip() for a in entry.split(",") if a.strip()) for entry in args.algorithms]
    for name in args.activations:
        try:
            activations.info(name)
        except activations.UnknownActivationError as exc:
            parser.error(str(exc))
    args.activations = [n for n in args.activations if activations.info(n).name != REFERENCE]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    try:
        bench = CLRS(
            algorithms=sorted({a for s in args.algorithms for a in s}), **(QUICK_OPTIONS if args.quick else {})
        )
    except ValueError as exc:
        print(f"bench_clrs_power: {exc}", file=sys.stderr)
        return 2
    settings = grid(args.algorithms, sorted(set(args.steps)))
    names = [activations.info(n).name for n in args.activations]
    print(
        f"{len(settings)} settings, seeds 0..{args.seeds - 1}, {REFERENCE} vs {', '.join(names)}, "
        f"one thread; options {options_of(bench)}",
        flush=True,
    )
    records = measure(bench, training_plan(settings), [REFERENCE, *names], args.seeds, args.out)
    print()
    print(format_table([setting_row(s, records, names, args.seeds) for s in settings], names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
