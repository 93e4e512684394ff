"""Fused kernels against eager PyTorch on search-like candidates: speed and equal ranking, in one run.

    python benchmarks/bench_fused.py [--candidates 50] [--seed 0] [--suite lab] [--run RUN_DIR [--rounds]]

Takes the programs of a finished run (`--run`: its scored programs, spread over its fitness range)
or draws candidates as the search makes them (random expressions of the random mutator, and chains
of one to four symbolic edits of a seed activation, as `tests/test_fused.py` does), and evaluates each
with the whole lab cascade (probes, screen, training on the suite, scoring) twice, in this one
process and one thread, with the sandbox workers' environment (`WORKER_ENV`): `Lab(fused=False)` (eager PyTorch: what the lab ran before) and
`Lab(fused=True)` (the default). The kernels are compiled once before timing (the cost of a first
compile is printed separately). The matmul-only bound of `bench_fitness.py` is timed in the same
run. Prints per candidate the seconds of both paths and the fitness of both, then:

- evaluations per core-hour, eager and fused (the sum over all candidates), and their ratio;
- the fused train stage ÷ the matmul-only bound (median);
- Spearman's ρ between the eager and the fused fitness, and the largest |difference|.

`--rounds` (with `--run`) evaluates each program on its own first search round instead of `--suite`
(the run's config: 48 tasks drawn for that proposal, one seed), as a search worker does: the round's
workload is built (timed) and each candidate is evaluated eagerly, fused with a cold kernel cache
(the compile paid, as for every new program of a search) and fused again with the kernel cached;
ReLU and the matmul-only bound are timed on the same workload. It prints evaluations per core-hour
of each, and the ceiling: a round whose activation cost no more than ReLU's.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from actmine.candidate import fused as fusion
from actmine.candidate.sandbox import WORKER_ENV
from actmine.candidate.source import compile_candidate
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


def search_rounds(run_dir: Path, count: int, cache: Path) -> None:
    """Each program on its own first search round: build, eager, fused cold, fused cached, ReLU, bound."""
    from actmine.config import Config
    from actmine.evolve.search_tasks import SearchTasks

    config = Config.load(run_dir / "config.yaml")
    tasks = SearchTasks.from_config(config, progress=False)
    columns = ("build", "eager", "fused cold", "fused", "relu", "bound")
    totals, fitness = dict.fromkeys(columns, 0.0), ([], [])
    print(f"{'#':>4} " + " ".join(f"{c:>10}" for c in columns) + "  kernel")
    for n, (source, index) in enumerate(program_rounds(run_dir, count)):
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

        eager = lab(False, cache).evaluate_source(source)
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache, prefix="cold-") as empty:  # this evaluation compiles
            cold_lab = lab(True, Path(empty))
            cold = cold_lab.evaluate_source(source)
            warm = cold_lab.evaluate_source(source)
        if not (eager.ok and cold.ok and warm.ok):
            print(f"{n:>4} refused: {terminal_text(eager.error or cold.error or warm.error, keep_newlines=False)}")
            continue
        seconds.update({"eager": eager.seconds, "fused cold": cold.seconds, "fused": warm.seconds})
        seconds.update(best_seconds({"relu": lambda: lab(False, cache).evaluate(torch.relu)}, 1))
        seconds.update(best_seconds({"bound": lambda: matmul_only(workload)}, 1))
        for column in columns:
            totals[column] += seconds[column]
        fitness[0].append(eager.fitness)
        fitness[1].append(warm.fitness)
        print(
            f"{n:>4} "
            + " ".join(f"{seconds[c]:>10.3f}" for c in columns)
            + f"  {terminal_text(warm.workload['kernel'], keep_newlines=False)[:40]}"
        )
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


def main() -> None:
    as_in_a_worker()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--suite", default="lab")
    parser.add_argument("--cache", default="/tmp/actmine-bench-fused", help="kernel cache directory")
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
    started = time.perf_counter()
    for source in sources:  # the first compile of each kernel, outside the timed evaluations
        fusion.fused_or_reason(source, compile_candidate(source, "candidate"), cache)
    compile_s = time.perf_counter() - started
    bound = best_seconds({"bound": lambda: matmul_only(labs[True].workload)}, 5)["bound"]
    rows = []
    print(f"{'#':>3} {'eager s':>8} {'fused s':>8} {'×':>5} {'eager fitness':>14} {'fused fitness':>14}  kernel")
    for i, source in enumerate(sources):
        eager, fused = (labs[flag].evaluate_source(source) for flag in (False, True))
        if not (eager.ok and fused.ok):
            print(
                f"{i:>3} refused: eager {eager.error and eager.error['code']}, fused {fused.error and fused.error['code']}"
            )
            continue
        rows.append((eager, fused))
        print(
            f"{i:>3} {eager.seconds:>8.2f} {fused.seconds:>8.2f} {eager.seconds / fused.seconds:>4.1f}× "
            f"{eager.fitness:>+14.5f} {fused.fitness:>+14.5f}  {terminal_text(fused.workload['kernel'], keep_newlines=False)[:60]}"
        )
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
