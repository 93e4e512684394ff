"""Fused kernels against eager PyTorch on search-like candidates: speed and equal ranking, in one run.

    python benchmarks/bench_fused.py [--candidates 50] [--seed 0] [--suite lab] [--run RUN_DIR [--rounds]]

Takes the programs of a finished run (`--run`: its scored programs, spread over its fitness range)
or draws candidates as the search makes them (random expressions of the random mutator, and chains
of one to four symbolic edits of a seed activation, as `tests/test_fused.py` does), and evaluates each
with the whole lab cascade (probes, screen, training on the suite, scoring) as the search does: in
a sandboxed worker (`SandboxPool`, one thread), timed by the worker. `Lab(fused=False)` (eager
PyTorch: what the lab ran before) and `Lab(fused=True)` (the default), the fused path twice: its
first evaluation compiles the kernel (the cost of first compiles is printed separately), the second
is timed. The matmul-only bound of `bench_fitness.py` is timed in the same run, in this process
with the workers' environment (`WORKER_ENV`); no candidate runs in this process. Prints per
candidate the seconds of both paths and the fitness of both, then:

- evaluations per core-hour, eager and fused (the sum over all candidates), and their ratio;
- the fused train stage ÷ the matmul-only bound (median);
- Spearman's ρ between the eager and the fused fitness, and the largest |difference|.

`--rounds` (with `--run`) evaluates each program on its own first search round instead of `--suite`
(the run's config: 48 tasks drawn for that proposal, one seed), as a search worker does: the round's
workload is built (timed here) and each candidate is evaluated in the worker eagerly, fused with
the kernel not yet compiled (the compile paid, as for every new program of a search) and fused
again with the kernel cached; ReLU and the matmul-only bound are timed here on the same workload.
It prints evaluations per core-hour of each, and the ceiling: a round whose activation cost no more
than ReLU's.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

import torch

from actmine.candidate.sandbox import WORKER_ENV, SandboxPool
from actmine.evolve.mutators.base import Parent
from actmine.evolve.mutators.random_search import RandomMutator
from actmine.evolve.mutators.symbolic import SymbolicMutator
from actmine.evolve.seeds import SEED_EXPRESSIONS, program
from actmine.lab.fitness import Lab
from actmine.reproduce.rules import spearman
from actmine.terminal import terminal_text

from bench_fitness import best_seconds, matmul_only  # benchmarks/ is on the path when run as a script


def draw_candidates(count: int, seed: int) -> list[str]:
    """Search-like programs: half random expressions, half symbolic edits of a seed activation."""
    rng, sources = random.Random(seed), []
    while len(sources) < count:
        if len(sources) % 2:
            source = program(SEED_EXPRESSIONS[rng.choice(sorted(SEED_EXPRESSIONS))])
            for _ in range(rng.randint(1, 4)):
                source = SymbolicMutator().propose(Parent(source), [], rng).source
        else:
            source = RandomMutator().propose(None, [], rng).source
        if source not in sources:
            sources.append(source)
    return sources


def run_programs(run_dir: Path, count: int) -> list[str]:
    """Up to `count` distinct scored programs of a run, evenly spaced over its fitness ranking."""
    return [source for source, _ in program_rounds(run_dir, count)]


def as_in_a_worker() -> None:
    """Re-run this script with the sandbox workers' environment (one thread; glibc keeping freed
    memory): without it eager training pays page faults on every temporary, which the workers do
    not, and the comparison would flatter the fused kernels."""
    if os.environ.get("ACTMINE_BENCH_AS_WORKER") != "1":
        os.execve(
            sys.executable, [sys.executable, *sys.argv], {**os.environ, **WORKER_ENV, "ACTMINE_BENCH_AS_WORKER": "1"}
        )


def program_rounds(run_dir: Path, count: int) -> list[tuple[str, int]]:
    """Up to `count` distinct scored programs of a run with their proposal index, evenly spaced over
    its fitness ranking."""
    import sqlite3

    from actmine.run_files import DATABASE

    connection = sqlite3.connect(f"file:{run_dir / DATABASE}?mode=ro", uri=True)
    try:
        rows = connection.execute(
            "SELECT source, MIN(proposal_index) FROM programs WHERE status = 'ok' GROUP BY source ORDER BY MAX(fitness)"
        ).fetchall()
    finally:
        connection.close()
    step = max(1, len(rows) / count)
    return [rows[int(i * step)] for i in range(min(count, len(rows)))]


ROUND_COLUMNS = ("build", "eager", "fused cold", "fused", "relu", "bound")  # seconds of a round, each way


def search_rounds(run_dir: Path, count: int, cache: Path) -> None:
    """Each program on its own first search round: build, eager, fused cold, fused cached, ReLU, bound."""
    from actmine.config import Config

    config = Config.load(run_dir / "config.yaml")
    print(f"{'#':>4} " + " ".join(f"{c:>10}" for c in ROUND_COLUMNS) + "  kernel")
    with SandboxPool(1, config.sandbox_limits()) as pool:
        totals, fitness = time_rounds(pool, config, program_rounds(run_dir, count), cache)
    rows = len(fitness[0])
    per_hour = {c: 3600 * rows / (totals["build"] + totals[c]) for c in ("eager", "fused cold", "fused", "relu")}
    print(f"\n{rows} programs, each on its own first search round (the round's build counted in every column)")
    print(
        "evaluations per core-hour: "
        + ", ".join(f"{c} {v:.0f} (×{v / per_hour['eager']:.2f})" for c, v in per_hour.items())
        + " — `relu` is the ceiling of any activation path: a round whose activation costs what ReLU's does"
    )
    print(
        f"whole evaluations ÷ the matmul-only bound (totals): eager {totals['eager'] / totals['bound']:.2f}×, "
        f"fused {totals['fused'] / totals['bound']:.2f}×, ReLU {totals['relu'] / totals['bound']:.2f}× "
        "(probes, screen and scoring included)"
    )
    rho = spearman(*fitness)
    print(f"Spearman ρ (eager vs fused fitness) {'n/a' if rho is None else f'{rho:.4f}'}")


def time_rounds(
    pool: SandboxPool, config, programs: list[tuple[str, int]], cache: Path
) -> tuple[dict[str, float], tuple[list[float], list[float]]]:
    """Time every column of each program's first round (the program evaluated in `pool`'s worker,
    ReLU and the bound here) and print a row each; the column totals and the eager and fused fitness."""
    from actmine.evolve.search_tasks import SearchTasks

    tasks = SearchTasks.from_config(config, progress=False)
    totals, fitness = dict.fromkeys(ROUND_COLUMNS, 0.0), ([], [])
    for n, (source, index) in enumerate(programs):
        round_lab = tasks.lab_for(index, 0)
        started = time.perf_counter()
        workload, reference = round_lab.workload, round_lab.reference
        seconds = {"build": time.perf_counter() - started}

        def lab(fused: bool, cache_dir: Path) -> Lab:
            options = {**config.lab_options(), "fused": fused}
            made = Lab(round_lab.suite, protocol=round_lab.protocol, cache_dir=cache_dir, **options)
            made.__dict__["workload"] = workload
            made.use_reference(reference)
            return made

        # The worker builds the same workload from the lab's spec; its first fused evaluation of a
        # program compiles the kernel, the second finds it in the worker's cache.
        eager, cold, warm = (pool.evaluate(source, lab(flag, cache)) for flag in (False, True, True))
        if not (eager.ok and cold.ok and warm.ok):
            print(f"{n:>4} refused: {terminal_text(eager.error or cold.error or warm.error, keep_newlines=False)}")
            continue
        seconds.update({"eager": eager.seconds, "fused cold": cold.seconds, "fused": warm.seconds})
        seconds.update(best_seconds({"relu": lambda: lab(False, cache).evaluate(torch.relu)}, 1))
        seconds.update(best_seconds({"bound": lambda: matmul_only(workload)}, 1))
        for column in ROUND_COLUMNS:
            totals[column] += seconds[column]
        fitness[0].append(eager.fitness)
        fitness[1].append(warm.fitness)
        print(
            f"{n:>4} "
            + " ".join(f"{seconds[c]:>10.3f}" for c in ROUND_COLUMNS)
            + f"  {terminal_text(warm.workload['kernel'], keep_newlines=False)[:40]}"
        )
    return totals, fitness


def time_suite(pool: SandboxPool, labs: dict[bool, Lab], sources: list[str]) -> tuple[list, float]:
    """Each program eagerly and fused in `pool`'s worker (the workloads are built there, untimed),
    printing a row each; the (eager, fused) evaluations of the programs that both paths scored, and
    the seconds of the first compiles (a program's first fused evaluation less its second)."""
    rows, compile_s = [], 0.0
    print(f"{'#':>3} {'eager s':>8} {'fused s':>8} {'×':>5} {'eager fitness':>14} {'fused fitness':>14}  kernel")
    for i, source in enumerate(sources):
        eager, cold, fused = (pool.evaluate(source, labs[flag]) for flag in (False, True, True))
        if not (eager.ok and cold.ok and fused.ok):
            print(
                f"{i:>3} refused: eager {eager.error and eager.error['code']}, fused {fused.error and fused.error['code']}"
            )
            continue
        compile_s += max(0.0, cold.seconds - fused.seconds)
        rows.append((eager, fused))
        print(
            f"{i:>3} {eager.seconds:>8.2f} {fused.seconds:>8.2f} {eager.seconds / fused.seconds:>4.1f}× "
            f"{eager.fitness:>+14.5f} {fused.fitness:>+14.5f}  {terminal_text(fused.workload['kernel'], keep_newlines=False)[:60]}"
        )
    return rows, compile_s


def main() -> None:
    as_in_a_worker()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--suite", default="lab")
    parser.add_argument(
        "--cache", default="/tmp/actmine-bench-fused", help="ReLU's reference numbers (kernels compile in the worker)"
    )
    parser.add_argument("--run", type=Path, help="take the programs of this finished run instead of drawing")
    parser.add_argument("--rounds", action="store_true", help="with --run: each program on its own search round")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cache = Path(args.cache)
    if args.rounds:
        if args.run is None:
            parser.error("--rounds needs --run RUN_DIR (a finished search's directory)")
        search_rounds(args.run, args.candidates, cache)
        return
    labs = {fused: Lab(args.suite, cache_dir=cache, fused=fused) for fused in (False, True)}
    for lab in labs.values():
        lab.reference  # noqa: B018  (ReLU's numbers, computed once before timing)
    sources = run_programs(args.run, args.candidates) if args.run else draw_candidates(args.candidates, args.seed)
    bound = best_seconds({"bound": lambda: matmul_only(labs[True].workload)}, 5)["bound"]
    with SandboxPool(1) as pool:
        rows, compile_s = time_suite(pool, labs, sources)
    eager_s, fused_s = sum(e.seconds for e, _ in rows), sum(f.seconds for _, f in rows)
    fused_train = [f.timings["train"] for _, f in rows if f.workload["kernel"] == "fused"]
    print(
        f"\n{len(rows)} candidates scored ({sum(f.workload['kernel'] == 'fused' for _, f in rows)} fused), "
        f"first compiles {compile_s:.1f} s in all; matmul-only bound {bound:.3f} s"
    )
    print(
        f"evaluations per core-hour: eager {3600 * len(rows) / eager_s:.0f}, fused {3600 * len(rows) / fused_s:.0f} "
        f"(×{eager_s / fused_s:.2f})"
    )
    if fused_train:
        print(f"fused train stage ÷ matmul-only bound: median {statistics.median(fused_train) / bound:.2f}×")
    rho = spearman([e.fitness for e, _ in rows], [f.fitness for _, f in rows])
    print(
        f"Spearman ρ (eager vs fused fitness) {'n/a' if rho is None else f'{rho:.4f}'}; "
        f"largest |Δ fitness| {max(abs(e.fitness - f.fitness) for e, f in rows):.2e}"
    )


if __name__ == "__main__":
    main()
