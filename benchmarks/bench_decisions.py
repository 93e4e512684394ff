"""Decisions per core-hour: the search's evaluation when issue 19 was filed against today's, at equal ranking.

    python benchmarks/bench_decisions.py RUN_DIR [--candidates 50] [--exact-rounds 4] [--small 16] [--cache DIR]

A search decides by ranking candidates, so an evaluation is worth what it costs and how well it ranks.
For programs of a finished default run (its scored programs, evenly spaced over its fitness ranking),
each evaluated as the search evaluates it: in a sandboxed worker (`SandboxPool`, the run's
`sandbox` limits, one thread), timed by the worker (`Evaluation.seconds`), one worker at a time:

- **before**: the evaluation of the default search when issue 19 was filed: every proposal trained
  eagerly on the fixed `lab` suite with 6 training seeds (18 tasks × 6 = 108 MLPs), fitness = its
  mean score. The suite's workload is built once (a worker kept it), ReLU's numbers are cached.
- **before, fused**: the same evaluation (the same 108 MLPs, the same fitness) with today's fused
  kernel, compiled in its own worker, and the closed-form training: what the speed-ups that leave
  the scores as they were give on their own (its ρ against "before" is the equal-ranking check).
- **now**: today's default: a first search round — `tasks.sample` tasks drawn from the run's search
  pools (one seed; the round's workload built, as a worker builds each round's: timed here, on the
  same tasks), trained with the candidate's fused kernel compiled in the worker (a worker that has
  not seen the program: the compile is paid, as for every new program of a search), fitness = the
  search's own estimate (less `tasks.control_beta` × GELU's offsets).
- **now, eager**: the same round (the same tasks, seeds and initial weights) with the candidate's own
  code run eagerly under autograd (`lab.fused: false`): the exact numerics of today's estimate. Its ρ
  against "now" says whether the fast path (fused kernel, closed-form training) ranks as the exact
  computation of the same estimate does.
- **now, `--small` tasks**: the same with a smaller first round (`tasks.first_sample`, racing's
  first stage), drawn afresh, in a worker of its own (so its compile is paid too).
- **exact**: what all of them estimate today: the program's fitness over the search distribution,
  the plain mean over `--exact-rounds` further fresh rounds (192 tasks by default; none of them a
  fast way's round), fused (Spearman ρ = 1.0000 with eager, `bench_fused.py`). Its two halves
  against each other measure its own noise: with Spearman–Brown's reliability R of the whole, even a
  fast score that ranked exactly as the true fitness does would reach only ρ ≈ √R against it.

The rounds are drawn for proposal indexes no run uses (from 1,000,000), so no way sees the samples
the run selected its programs on. Printed: per program the seconds and fitness of each way; per way
the evaluations per core-hour (× before), Spearman's ρ against "before" (the same ranking?) and
against the exact fitness (95% bootstrap intervals over programs), over all programs and over the
better half, where decisions are close;
ReLU's evaluation of the `lab` workload against the matmul-only bound (`bench_fitness.py`), in the
same run (in this process, with the workers' environment and one thread: no run's program runs here).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import random
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace

import torch

from actmine.candidate.sandbox import SandboxPool
from actmine.config import Config
from actmine.evolve.rounds import EstimateRounds
from actmine.evolve.search_tasks import SearchTasks
from actmine.lab.ensemble import train_ensemble
from actmine.lab.fitness import Evaluation, Lab
from actmine.reproduce.rules import spearman
from actmine.run_files import DATABASE
from actmine.terminal import terminal_text

from bench_fitness import best_seconds, matmul_only  # benchmarks/ is on the path when run as a script
from bench_fused import as_in_a_worker, program_rounds

FIRST_INDEX = 1_000_000  # proposal indexes of the benchmark's rounds: beyond any run's
BEFORE_SEEDS = 6  # lab.training_seeds of the default search when issue 19 was filed


def search_fitness(tasks: SearchTasks, evaluation: Evaluation, controlled: bool) -> float:
    """The search's estimate of one or more rounds' task scores (`EstimateRounds._estimate`, the
    controller's own code): with GELU's control variate (`controlled`) or the plain mean."""
    owner = SimpleNamespace(config=tasks.config, tasks=tasks)
    return EstimateRounds._estimate(owner, [t.to_dict() for t in evaluation.tasks], controlled=controlled).mean


def round_lab(tasks: SearchTasks, index: int, round_: int, cache: Path) -> tuple[Lab, float]:
    """A search round's lab with its workload and ReLU's numbers built; the seconds that took."""
    started = time.perf_counter()
    lab = tasks.lab_for(index, round_)
    lab.cache_dir = cache
    lab.workload, lab.reference  # noqa: B018  (built as a worker builds each round)
    return lab, time.perf_counter() - started


def interval(x: list[float], y: list[float], draws: int = 2000) -> tuple[float, float]:
    """A 95% bootstrap interval of Spearman's ρ, resampling programs."""
    rng, values = random.Random(0), []
    for _ in range(draws):
        picks = [rng.randrange(len(x)) for _ in x]
        rho = spearman([x[i] for i in picks], [y[i] for i in picks])
        if rho is not None:
            values.append(rho)
    values.sort()
    return values[int(0.025 * len(values))], values[int(0.975 * len(values)) - 1]


def agreement(label: str, fast: list[float], exact: list[float]) -> str:
    rho = spearman(fast, exact)
    if rho is None:
        return f"{label}: n/a"
    low, high = interval(fast, exact)
    return f"{label} {rho:.3f} [{low:.3f}, {high:.3f}]"


def evaluate_round(
    tasks: SearchTasks, index: int, source: str, cache: Path, pool: SandboxPool
) -> tuple[Evaluation, float]:
    """A new program's first round as a search worker runs it, in a worker of `pool` that has not
    compiled the program's kernel (the compile is paid): (the evaluation, the worker's seconds plus
    the round's build, timed here on the same tasks)."""
    lab, build_s = round_lab(tasks, index, 0, cache)
    evaluation = pool.evaluate(source, lab)
    return evaluation, evaluation.seconds + build_s


def pooled(evaluations: list[Evaluation]) -> Evaluation:
    """The task scores of several rounds as one evaluation (for `search_fitness`)."""
    return Evaluation(activation="pooled", ok=True, tasks=[t for e in evaluations for t in e.tasks])


def main() -> None:
    as_in_a_worker()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a finished default search (pools mode)")
    parser.add_argument("--candidates", type=int, default=50)
    parser.add_argument("--exact-rounds", type=int, default=4, help="fresh rounds of the exact fitness (even)")
    parser.add_argument("--small", type=int, default=16, help="tasks of the smaller first round (tasks.first_sample)")
    parser.add_argument("--before-seeds", type=int, default=BEFORE_SEEDS, help="training seeds of the old evaluation")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/actmine-bench-decisions"))
    args = parser.parse_args()
    if not (args.run / DATABASE).is_file() or not (args.run / "config.yaml").is_file():
        sys.exit(f"error: {args.run} is not a finished run directory (it needs {DATABASE} and config.yaml)")
    if args.exact_rounds < 2 or args.exact_rounds % 2:
        parser.error("--exact-rounds must be even and at least 2 (its halves measure its own noise)")
    config = Config.load(args.run / "config.yaml")
    if config.lab.suite is not None:
        sys.exit(f"error: {args.run} scored a fixed suite; this benchmark needs a run of the search pools")
    torch.set_num_threads(1)
    args.cache.mkdir(parents=True, exist_ok=True)
    tasks = SearchTasks.from_config(config, progress=False)
    small = SearchTasks.from_config(
        dataclasses.replace(config, tasks=dataclasses.replace(config.tasks, first_sample=args.small)), progress=False
    )
    eager = SearchTasks.from_config(
        dataclasses.replace(config, lab=dataclasses.replace(config.lab, fused=False)), progress=False
    )
    before_lab = Lab("lab", seeds=args.before_seeds, cache_dir=args.cache, fused=False)
    before_lab.reference  # noqa: B018  (ReLU's numbers, sent to the worker; its workload is built there once)
    before_fused = Lab("lab", seeds=args.before_seeds, cache_dir=args.cache, fused=True)
    before_fused.reference  # noqa: B018
    ways = ("before", "before, fused", "now", "now, eager", f"now, {args.small} tasks")
    # A worker per way, as a search's workers are used: "before" keeps its suite's workload (a worker
    # kept it), "now" and the small round each compile the program's kernel, and none of them is
    # replaced more often than a search's (the exact rounds, untimed, have a worker of their own).
    limits = config.sandbox_limits()
    with ExitStack() as stack:
        pools = tuple(stack.enter_context(SandboxPool(1, limits)) for _ in range(6))
        rows = score_programs(args, (tasks, eager, small), (before_lab, before_fused), ways, pools)
    report(rows, ways, args, config)


def score_programs(
    args: argparse.Namespace,
    round_tasks: tuple[SearchTasks, SearchTasks, SearchTasks],
    before_labs: tuple[Lab, Lab],
    ways: tuple[str, ...],
    pools: tuple[SandboxPool, ...],
) -> list[dict]:
    """Each program every way in sandboxed workers: `round_tasks` = (now, now eager, small), `pools` =
    (before, before fused, now, now eager, small, exact); a row each."""
    tasks, eager, small = round_tasks
    before_pool, fused_pool, now_pool, eager_pool, small_pool, exact_pool = pools
    print(
        f"{'#':>3} {'before s':>9} {'fused s':>8} {'now s':>7} {'eager s':>8} {'small s':>8} {'before':>8} "
        f"{'fused':>8} {'now':>8} {'eager':>8} {'small':>8} {'exact':>8}  program"
    )
    rows = []
    for n, (source, _) in enumerate(program_rounds(args.run, args.candidates)):
        index = FIRST_INDEX + n
        before = before_pool.evaluate(source, before_labs[0])
        before_fused = fused_pool.evaluate(source, before_labs[1])
        now, now_s = evaluate_round(tasks, index, source, args.cache, now_pool)
        exact_numerics, eager_s = evaluate_round(eager, index, source, args.cache, eager_pool)
        little, little_s = evaluate_round(small, index + FIRST_INDEX, source, args.cache, small_pool)
        exact = [
            exact_pool.evaluate(source, round_lab(tasks, index, r, args.cache)[0])
            for r in range(1, args.exact_rounds + 1)
        ]
        failed = next((e for e in (before, before_fused, now, exact_numerics, little, *exact) if not e.ok), None)
        if failed is not None:
            print(f"{n:>3} refused: {terminal_text(str(failed.error), keep_newlines=False)[:100]}")
            continue
        half = args.exact_rounds // 2
        row = {
            "seconds": dict(zip(ways, (before.seconds, before_fused.seconds, now_s, eager_s, little_s))),
            "fitness": dict(
                zip(
                    ways,
                    (
                        before.fitness,
                        before_fused.fitness,
                        *(search_fitness(tasks, e, controlled=True) for e in (now, exact_numerics, little)),
                    ),
                )
            ),
            "exact": search_fitness(tasks, pooled(exact), controlled=False),
            "halves": [search_fitness(tasks, pooled(part), controlled=False) for part in (exact[:half], exact[half:])],
        }
        rows.append(row)
        seconds, fitness = row["seconds"], row["fitness"]
        print(
            f"{n:>3} {seconds['before']:>9.2f} {seconds[ways[1]]:>8.2f} {seconds['now']:>7.2f} {seconds[ways[3]]:>8.2f} "
            f"{seconds[ways[4]]:>8.2f} "
            + " ".join(f"{fitness[w]:>+8.3f}" for w in ways)
            + f" {row['exact']:>+8.3f}  {terminal_text(source.splitlines()[-1].strip(), keep_newlines=False)[:50]}"
        )
    return rows


def report(rows: list[dict], ways: tuple[str, ...], args: argparse.Namespace, config: Config) -> None:
    """Throughput and ranking of each way, the exact fitness's own reliability, ReLU against the bound."""
    if len(rows) < 3:
        sys.exit(
            f"error: only {len(rows)} programs were scored every way; a ranking needs at least 3 (more --candidates)"
        )
    exact = [r["exact"] for r in rows]
    first, second = zip(*(r["halves"] for r in rows))
    split = spearman(list(first), list(second)) or 0.0
    reliability = 2 * split / (1 + split) if split > 0 else float("nan")  # Spearman–Brown, the whole exact
    better = [i for i, value in enumerate(exact) if value >= statistics.median(exact)]
    print(
        f"\n{len(rows)} programs of {args.run}; exact = {args.exact_rounds} fresh rounds of {config.tasks.sample} "
        f"tasks, its halves agree with ρ {split:.3f} (reliability of the whole {reliability:.3f}: a fast score that "
        f"ranked as the true fitness does would reach ρ ≈ {math.sqrt(reliability):.3f} against it)"
    )
    rate = {w: 3600 * len(rows) / sum(r["seconds"][w] for r in rows) for w in ways}
    for way in ways:
        line = f"{way:>16}: {rate[way]:>6.0f} evaluations per core-hour (×{rate[way] / rate['before']:.2f})"
        if way != "before":
            line += "; " + agreement(
                "ρ vs before", [r["fitness"][way] for r in rows], [r["fitness"]["before"] for r in rows]
            )
        if way == "now":  # the fast path against the exact numerics of the same estimate
            line += "; " + agreement(
                "ρ vs now, eager", [r["fitness"]["now"] for r in rows], [r["fitness"]["now, eager"] for r in rows]
            )
        for group, members in (("all", range(len(rows))), (f"better half ({len(better)})", better)):
            fast, truth = [rows[i]["fitness"][way] for i in members], [exact[i] for i in members]
            line += "; " + agreement(f"ρ vs exact, {group}", fast, truth)
        print(line)
    workload = Lab("lab", cache_dir=args.cache).workload
    relu = best_seconds(
        {"relu": lambda: train_ensemble(torch.relu, workload), "bound": lambda: matmul_only(workload)}, 3
    )
    print(
        f"ReLU's batched evaluation of the `lab` workload (54 MLPs) ÷ the matmul-only bound: "
        f"{relu['relu']:.3f} s ÷ {relu['bound']:.3f} s = {relu['relu'] / relu['bound']:.2f}×"
    )


if __name__ == "__main__":
    main()
