"""Cross-candidate batches: does training K candidates as one batched model pay? One run, one thread.

    python benchmarks/bench_stacked.py [--run RUN_DIR] [--candidates 8] [--k 1 2 4 8] [--repeats 3]

Candidates: the library's references (relu, gelu, gelu_sine, gelu_sinc_perturbation, silu, mish,
elu, softplus), or with `--run` the distinct scored programs of a finished run, spread over its
fitness range, each as the lab trains it (its fused kernel where it has one, else eager), read by
the candidate language's interpreter (never executed as Python). A run's programs are untrusted
text, and stacking needs several of them in one process, which the sandbox's protocol has no
message for: with `--run` everything that reads or trains them runs in one child isolated as a
sandbox worker is (`isolated.py`: no network, the run's `sandbox.memory_mb`, `--timeout` seconds of
CPU and wall clock, the workers' scrubbed environment and a throw-away HOME where the kernels are
compiled); this process only reads the run's rows and builds the workloads (the lab's own code).
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
import os
import sys
from pathlib import Path
from typing import Callable

import torch

from actmine import activations
from actmine.candidate import fused as fusion
from actmine.config import Config
from actmine.evolve.search_tasks import SearchTasks
from actmine.lab.ensemble import Activation, TrainingProtocol, Workload, build_workload, train_ensemble
from actmine.lab.fitness import Lab
from actmine.lab.stacked import stack_workloads, train_sliced
from actmine.lab.tasks import get_suite
from actmine.language.interpreter import Evaluable
from actmine.language.program import ProgramError, parse_program
from actmine.terminal import terminal_text

from bench_fitness import best_seconds, matmul_only  # benchmarks/ is on the path when run as a script
from bench_fused import as_in_a_worker, program_rounds
from isolated import isolate, reply, run_isolated

REFERENCES = ("relu", "gelu", "gelu_sine", "gelu_sinc_perturbation", "silu", "mish", "elu", "softplus")


def run_candidates(programs: list[tuple[str, int]], cache: Path, lines: list[str]) -> list[tuple[str, Activation, int]]:
    """(label, activation as the lab trains it, proposal index) of a run's (source, index) programs.

    A program is read by the candidate language's interpreter (`Evaluable`: parsed, never executed),
    so its own Python never runs; a program the language cannot read is left out, with a line in
    `lines` (its message escaped). Call it only in the isolated child (`child_main`)."""
    chosen = []
    for source, index in programs:
        try:
            function = parse_program(source, Evaluable)
        except ProgramError as exc:
            lines.append(f"#{index} left out: {terminal_text(str(exc), keep_newlines=False)[:80]}")
            continue
        fused = fusion.fused_or_reason(source, function, cache)
        label = "fused" if not isinstance(fused, str) else terminal_text(fused, keep_newlines=False)[:30]
        chosen.append((f"#{index} {label}", function if isinstance(fused, str) else fused, index))
    return chosen


def round_specs(config: Config, indexes: list[int]) -> list[dict]:
    """Each proposal's first search round (its own drawn tasks) as a lab spec (`Lab.to_spec`)."""
    tasks = SearchTasks.from_config(config, progress=False)
    return [tasks.lab_for(index, 0).to_spec() for index in indexes]


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


def report(title: str, acts: list[Activation], workloads: list[Workload], ks: list[int], repeats: int) -> list[str]:
    """The lines of one table: per K, seconds per candidate both ways, the ratio, each ÷ its bound."""
    lines = [
        f"\n{title}: {len(acts)} candidates, {sum(w.models for w in workloads) / len(workloads):.0f} models each",
        f"{'K':>3} {'one by one s':>13} {'stacked s':>10} {'× faster':>9} "
        f"{'one/bound':>10} {'stacked/bound':>14} {'max rel. diff':>14}",
    ]
    for k in ks:
        r = compare(acts, workloads, k, repeats)
        lines.append(
            f"{k:>3} {r['one by one']:>13.3f} {r['stacked']:>10.3f} {r['one by one'] / r['stacked']:>8.2f}× "
            f"{r['one by one'] / r['bound']:>9.2f}× {r['stacked'] / r['stacked bound']:>13.2f}× {r['difference']:>14.1e}"
        )
    return lines


def measure(labels: list[str], acts: list[Activation], rounds: list[dict] | None, args: dict) -> list[str]:
    """Both tables: every candidate on the suite `lab`, then (pools mode) each on its own round."""
    lines = [f"candidates: {', '.join(labels)}; torch {torch.__version__}, one thread"]
    shared = build_workload(get_suite("lab"), TrainingProtocol(steps=args["steps"]))
    lines += report("shared workload (suite `lab`)", acts, [shared] * len(acts), args["k"], args["repeats"])
    if rounds is not None:
        workloads = [Lab.from_spec(spec).workload for spec in rounds]
        lines += report("search rounds (each its own sample)", acts, workloads, args["k"], args["repeats"])
    return lines


def child_main() -> None:
    """The isolated child of `--run`: interpret and train the run's programs; one JSON answer line."""
    request, answer = isolate()  # first: no program is read before the child is isolated
    torch.set_num_threads(1)
    lines: list[str] = []
    programs = [(source, int(index)) for source, index in request["programs"]]
    chosen = run_candidates(programs, Path(os.environ["HOME"]) / "kernels", lines)
    if not chosen:
        reply(answer, {"lines": lines, "error": "no program of the run could be read by the language"})
        return
    labels, acts, indexes = [c[0] for c in chosen], [c[1] for c in chosen], [c[2] for c in chosen]
    rounds = None if request["rounds"] is None else [request["rounds"][str(i)] for i in indexes]
    reply(answer, {"lines": lines + measure(labels, acts, rounds, request)})


def run_mode(args: argparse.Namespace) -> list[str]:
    """`--run`: the run's programs measured in one isolated child; its lines, or exit with its error."""
    if not (args.run / "config.yaml").is_file():
        sys.exit(f"error: {args.run} is not a run directory (no config.yaml): pass a finished run's --run-dir")
    config = Config.load(args.run / "config.yaml")
    programs = program_rounds(args.run, args.candidates)  # the rows only: text, never run here
    indexes = [index for _, index in programs]
    rounds = None if config.lab.suite is not None else dict(zip(map(str, indexes), round_specs(config, indexes)))
    request = {
        "programs": programs,
        "rounds": rounds,
        "steps": config.lab.steps,
        "k": args.k,
        "repeats": args.repeats,
        "memory_mb": config.sandbox.memory_mb,
        "cpu_s": args.timeout,
    }
    result = run_isolated(Path(__file__), request, args.timeout)
    # the child read untrusted text: what it says is shown escaped, whatever it sends
    lines = [terminal_text(line) for line in result.get("lines", []) if isinstance(line, str)]
    if "error" in result:
        print("\n".join(lines))
        sys.exit(f"error: the isolated child failed: {terminal_text(str(result['error']), keep_newlines=False)}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a finished run: stack its programs (default: the library's)")
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--k", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds for the isolated child of --run")
    args = parser.parse_args()
    if args.candidates < 1 or any(k < 1 for k in args.k):
        parser.error("--candidates and every --k must be positive")
    as_in_a_worker()
    torch.set_num_threads(1)
    if args.run is not None:
        lines = run_mode(args)
    else:  # the library's own activations: trusted code, measured here
        config = Config.load(None)
        labels = [REFERENCES[i % len(REFERENCES)] for i in range(args.candidates)]
        acts = [activations.get(name) for name in labels]
        rounds = round_specs(config, list(range(len(acts)))) if config.lab.suite is None else None
        lines = measure(labels, acts, rounds, {"steps": config.lab.steps, "k": args.k, "repeats": args.repeats})
    print("\n".join(lines))


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        child_main()
    else:
        main()
