"""Cross-candidate batches: does training K candidates as one batched model pay? One run, one thread.

    python benchmarks/bench_stacked.py [--run RUN_DIR] [--candidates 8] [--k 1 2 4 8] [--repeats 3]

Candidates: the library's references (relu, gelu, gelu_sine, gelu_sinc_perturbation, silu, mish,
elu, softplus), or with `--run` the distinct scored programs of a finished run, spread over its
fitness range, each as the lab trains it (its fused kernel where it has one, else eager), read by
the candidate language's interpreter (never executed as Python).
Workloads, two ways:

- **shared**: every candidate on the default suite `lab` (54 models), as the final check,
  `compare` and `reproduce` score many candidates on the same tasks;
- **rounds**: each candidate on its own search round (48 tasks drawn for it, one seed; the default
  config's pools, or the run's), as a search trains proposals.

For each K the candidates are trained in groups of K, once one by one (`train_ensemble` per
candidate: what the lab does now) and once stacked (`actmine.lab.stacked.train_stacked`: one
batched model per group), best of `--repeats` interleaved runs, with the matmul-only bound of
`bench_fitness.py` on the same workloads. Prints per K the seconds per candidate both ways, their
ratio, each ÷ the bound, and the largest relative difference of the OOD errors (stacking changes
the products' float rounding only).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import torch

from actmine import activations
from actmine.candidate import fused as fusion
from actmine.config import Config
from actmine.evolve.search_tasks import SearchTasks
from actmine.lab.ensemble import Activation, TrainingProtocol, Workload, build_workload, train_ensemble
from actmine.lab.stacked import stack_workloads, train_sliced
from actmine.lab.tasks import get_suite
from actmine.language.interpreter import Evaluable
from actmine.language.program import ProgramError, parse_program
from actmine.terminal import terminal_text

from bench_fitness import best_seconds, matmul_only  # benchmarks/ is on the path when run as a script
from bench_fused import as_in_a_worker, program_rounds

REFERENCES = ("relu", "gelu", "gelu_sine", "gelu_sinc_perturbation", "silu", "mish", "elu", "softplus")


def run_candidates(run_dir: Path, count: int, cache: Path) -> list[tuple[str, Activation, int]]:
    """(label, activation as the lab trains it, proposal index) of up to `count` programs of a run.

    A program is read by the candidate language's interpreter (`Evaluable`: parsed, never executed),
    so a run's text trains here without a sandbox only as a composition of the language's ops; a
    program the language cannot read is left out and said so."""
    chosen = []
    for source, index in program_rounds(run_dir, count):
        try:
            function = parse_program(source, Evaluable)
        except ProgramError as exc:
            print(f"#{index} left out: {terminal_text(str(exc), keep_newlines=False)[:80]}")
            continue
        fused = fusion.fused_or_reason(source, function, cache)
        label = "fused" if not isinstance(fused, str) else terminal_text(fused, keep_newlines=False)[:30]
        chosen.append((f"#{index} {label}", function if isinstance(fused, str) else fused, index))
    return chosen


def round_workloads(config: Config, indexes: list[int]) -> list[Workload]:
    """Each proposal's first search round's workload (its own 48 drawn tasks)."""
    tasks = SearchTasks.from_config(config, progress=False)
    return [tasks.lab_for(index, 0).workload for index in indexes]


def groups(count: int, k: int) -> list[list[int]]:
    return [list(range(start, min(start + k, count))) for start in range(0, count, k)]


def compare(acts: list[Activation], workloads: list[Workload], k: int, repeats: int) -> dict[str, float]:
    """Seconds per candidate, one by one and stacked in groups of k, the bounds, and the largest
    relative difference of the two ways' OOD errors."""
    parts = groups(len(acts), k)
    stacks = [stack_workloads([workloads[i] for i in part]) for part in parts]  # built once, as a stacked build would
    stacked_workloads = [workload for workload, _ in stacks]

    def one_by_one() -> list:
        return [train_ensemble(act, workload) for act, workload in zip(acts, workloads)]

    def stacked() -> list:
        return [r for part, stack in zip(parts, stacks) for r in train_sliced([acts[i] for i in part], *stack)]

    functions: dict[str, Callable[[], object]] = {
        "one by one": one_by_one,
        "stacked": stacked,
        "bound": lambda: [matmul_only(w) for w in workloads],
        "stacked bound": lambda: [matmul_only(w) for w in stacked_workloads],
    }
    best = best_seconds(functions, repeats)
    difference = max(
        float(((a.ood_error - b.ood_error).abs() / a.ood_error.abs().clamp_min(1e-12)).max())
        for a, b in zip(one_by_one(), stacked())
    )
    return {name: seconds / len(acts) for name, seconds in best.items()} | {"difference": difference}


def report(title: str, acts: list[Activation], workloads: list[Workload], ks: list[int], repeats: int) -> None:
    print(f"\n{title}: {len(acts)} candidates, {sum(w.models for w in workloads) / len(workloads):.0f} models each")
    print(
        f"{'K':>3} {'one by one s':>13} {'stacked s':>10} {'× faster':>9} "
        f"{'one/bound':>10} {'stacked/bound':>14} {'max rel. diff':>14}"
    )
    for k in ks:
        r = compare(acts, workloads, k, repeats)
        print(
            f"{k:>3} {r['one by one']:>13.3f} {r['stacked']:>10.3f} {r['one by one'] / r['stacked']:>8.2f}× "
            f"{r['one by one'] / r['bound']:>9.2f}× {r['stacked'] / r['stacked bound']:>13.2f}× {r['difference']:>14.1e}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a finished run: stack its programs (default: the library's)")
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--k", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/actmine-bench-stacked"), help="fused kernels")
    args = parser.parse_args()
    if args.candidates < 1 or any(k < 1 for k in args.k):
        parser.error("--candidates and every --k must be positive")
    as_in_a_worker()
    torch.set_num_threads(1)
    if args.run is not None:
        if not (args.run / "config.yaml").is_file():
            sys.exit(f"error: {args.run} is not a run directory (no config.yaml): pass a finished run's --run-dir")
        config = Config.load(args.run / "config.yaml")
        chosen = run_candidates(args.run, args.candidates, args.cache)
        labels, acts, indexes = [c[0] for c in chosen], [c[1] for c in chosen], [c[2] for c in chosen]
    else:
        config = Config.load(None)
        labels = [REFERENCES[i % len(REFERENCES)] for i in range(args.candidates)]
        acts, indexes = [activations.get(name) for name in labels], list(range(args.candidates))
    print(f"candidates: {', '.join(labels)}; torch {torch.__version__}, one thread")
    shared = build_workload(get_suite("lab"), TrainingProtocol(steps=config.lab.steps))
    report("shared workload (suite `lab`)", acts, [shared] * len(acts), args.k, args.repeats)
    if config.lab.suite is None:
        report("search rounds (each its own sample)", acts, round_workloads(config, indexes), args.k, args.repeats)


if __name__ == "__main__":
    main()
