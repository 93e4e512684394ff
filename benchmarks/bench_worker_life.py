"""What does replacing a sandbox worker cost? Requests per hour at several worker lifetimes.

    python benchmarks/bench_worker_life.py RUN_DIR [--requests 200] [--lives 50 200]

A sandbox worker is replaced after `sandbox.max_tasks_per_worker` requests, to bound what a long-lived
process could accumulate. A fresh worker pays for itself: the interpreter, torch's import and, on its
first probe, torch's lazy imports — seconds, against about half a second for a search round. This
script sends the same requests — first search rounds (`tasks.sample` drawn tasks, from proposal
index 3,000,000, where no run draws) of a finished run's programs, spread over its ranking — through a
`SandboxPool` of one worker, once per lifetime of `--lives`, and prints for each: requests per hour,
the ratio to the first lifetime (the baseline), the share of the bound it reaches (the bound: the
sum of the workers' own `Evaluation.seconds`, a worker that never started and never waited), the
workers started, and the
largest resident and virtual memory a worker reached (read from /proc after each request: the
memory limit, `sandbox.memory_mb`, bounds the virtual size). The run's programs are untrusted text:
they run only in the sandboxed worker.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench_fused import program_rounds  # benchmarks/ is on the path when run as a script
from soak import sample_process

from actmine.candidate.sandbox import SandboxPool
from actmine.config import Config
from actmine.evolve.search_tasks import SearchTasks

FIRST_INDEX = 3_000_000  # proposal indexes of the benchmark's rounds: beyond any run's


def programs(run_dir: Path, count: int) -> list[str]:
    """`count` requests: the run's distinct scored programs spread over its ranking
    (`bench_fused.program_rounds`), repeated when it has fewer."""
    sources = [source for source, _ in program_rounds(run_dir, count)]
    if not sources:
        raise SystemExit(f"{run_dir} has no scored programs")
    return [sources[i % len(sources)] for i in range(count)]


def memory_mb(pid: int) -> tuple[int, int]:
    """(resident, virtual) megabytes of a process (`soak.sample_process`); (0, 0) once it has gone."""
    sample = sample_process(pid)
    return (sample.rss_kb // 1024, sample.vm_kb // 1024) if sample else (0, 0)


def one_life(sources: list[str], tasks: SearchTasks, life: int) -> dict:
    """Every request through one worker replaced after `life` requests: seconds, the workers'
    own seconds, workers started and the largest memory seen."""
    limits = Config().with_overrides({"sandbox.max_tasks_per_worker": life}).sandbox_limits()
    pool = SandboxPool(workers=1, limits=limits)
    started, own, pids, peak = time.perf_counter(), 0.0, set(), (0, 0)
    try:
        for i, source in enumerate(sources):
            evaluation = pool.evaluate(source, tasks.lab_for(FIRST_INDEX + i, 0), f"p{i}")
            own += evaluation.seconds or 0.0
            for pid in pool.worker_pids():
                pids.add(pid)
                peak = max(peak, memory_mb(pid))
        return {"seconds": time.perf_counter() - started, "own": own, "workers": len(pids), "peak": peak}
    finally:
        pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a finished run directory (its programs are the requests)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--lives", type=int, nargs="+", default=[50, 200], help="max_tasks_per_worker values")
    args = parser.parse_args()
    sources = programs(args.run, args.requests)
    tasks = SearchTasks.from_config(Config(), progress=False)
    results = {life: one_life(sources, tasks, life) for life in args.lives}
    base = results[args.lives[0]]["seconds"]
    print(f"{args.requests} first search rounds of {args.run}'s programs through one sandbox worker:")
    for life, r in results.items():
        print(
            f"  replaced after {life:>5} requests: {3600 * args.requests / r['seconds']:,.0f} requests per hour, "
            f"{base / r['seconds']:.2f}× the first, {r['own'] / r['seconds']:.0%} of the bound "
            f"({r['seconds']:.1f} s, the workers' own {r['own']:.1f} s); {r['workers']} workers started; "
            f"largest worker {r['peak'][0]} MB resident, {r['peak'][1]} MB virtual"
        )


if __name__ == "__main__":
    main()
