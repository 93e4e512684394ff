"""Crash-stress, the long version: kill `actmine search` at many random moments, resume, check.

    python benchmarks/crash_stress.py [--minutes 10] [--cycles 0] [--seed 0] [--budget 16]
                                      [--mutators symbolic llm] [--kills-per-run 8] [--pools]

Runs searches one after another (alternating the symbolic mutator and the LLM mutator against the
scripted server of tests/chat_server.py), on a fixed suite or, with `--pools`, in the default
config's pools mode (task samples, GELU's control variate, the blend of the winner). Each start of the controller is one cycle, killed at a
moment drawn from the seeded generator:
- a named fault point at one of its next passes (`ACTMINE_FAULT=POINT:N`, actmine/faults.py),
- every point at once with a small probability per pass (`ACTMINE_FAULT=random:SEED:P`),
- or an external SIGKILL of the controller after a random delay;
then resumed. After every cycle the invariants of tests/crash_harness.py are checked against what
the previous cycle left (integrity, indexes unique and gap-free but for work in flight, nothing lost,
changed or recorded twice, LLM calls owned, elites recorded, seeds on every island, one held-out
check); a run that ends is checked for its budget, its gap-free indexes and its files, and the
next run starts in a new directory. After `--kills-per-run` kills a run is resumed without faults
so that runs finish. Prints a line per cycle, then the number of cycles, kills, moments tried
(distinct point-and-pass pairs that fired, plus external kills) and every violation; exits 1 if
there was one. With the symbolic mutator the LLM-call rule holds structurally (no calls are made);
the LLM runs record real calls.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from chat_server import ChatServer  # noqa: E402
from crash_harness import Checker, describe, llm_script, stress_config  # noqa: E402

from actmine.faults import POINTS  # noqa: E402

LOOP_POINTS = ("proposal_ready", "in_flight", "result_ready", "db_program_inserted", "db_commit", "migration")
END_POINTS = ("best_program_write", "heldout_evaluated", "heldout_write", "report")


def draw_moment(rng: random.Random, remaining: int, seed: int) -> tuple[str | None, float | None]:
    """(ACTMINE_FAULT value, None) or (None, seconds before an external SIGKILL)."""
    kind = rng.random()
    if kind < 0.15:
        return None, round(rng.uniform(1.0, 12.0), 2)
    if kind < 0.3:
        return f"random:{seed}:{rng.choice((0.02, 0.05, 0.1))}", None
    if kind < 0.45 or remaining == 0:
        point = rng.choice(END_POINTS)
        passes = {"best_program_write": 1, "heldout_evaluated": 1, "heldout_write": 6, "report": 1}[point]
        return f"{point}:{rng.randint(1, passes)}", None
    point = rng.choice(LOOP_POINTS)
    most = {"db_commit": 2 * remaining + 3, "migration": max(1, remaining // 3)}.get(point, remaining)
    return f"{point}:{rng.randint(1, max(1, most))}", None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="stop starting cycles after this long")
    parser.add_argument("--cycles", type=int, default=0, help="stop after this many cycles (0: no limit)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=16, help="evaluations per search")
    parser.add_argument("--mutators", nargs="+", choices=("symbolic", "llm"), default=["symbolic", "llm"])
    parser.add_argument("--kills-per-run", type=int, default=8)
    parser.add_argument("--pools", action="store_true", help="the pools mode (tests/search_runs.py SMALL_POOLS)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    end = time.monotonic() + args.minutes * 60
    os.environ.setdefault("ACTMINE_TEST_KEY", "sk-crash-stress")
    all_cycles, runs_finished, violations = [], 0, []
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="actmine-crash-")))
        os.environ.setdefault("ACTMINE_CACHE_DIR", str(root / "cache"))  # never the user's cache
        server = stack.enter_context(ChatServer(llm_script(100_000)))
        run_number = 0
        while time.monotonic() < end and not (args.cycles and len(all_cycles) >= args.cycles):
            mutator = args.mutators[run_number % len(args.mutators)]
            directory = root / f"run{run_number}"
            directory.mkdir()
            config = stress_config(
                directory,
                budget=args.budget,
                llm_base_url=server.base_url if mutator == "llm" else None,
                pools=args.pools,
            )
            checker = Checker(
                config, directory / "run", budget=args.budget, islands=2, max_gaps=4 if mutator == "llm" else 2
            )
            kills = 0
            while time.monotonic() < end and not (args.cycles and len(all_cycles) >= args.cycles):
                remaining = args.budget - len(checker.previous.programs)
                if kills >= args.kills_per_run:
                    fault, delay = None, None
                else:
                    fault, delay = draw_moment(rng, remaining, rng.randrange(10**6))
                started = time.monotonic()
                cycle = checker.cycle(fault, kill_after_s=delay)
                all_cycles.append(cycle)
                kills += cycle.killed
                print(
                    f"run {run_number} ({mutator}) cycle {len(checker.cycles):>2}: {cycle.moment:<28} "
                    f"{'killed at ' + cycle.fired if cycle.fired else ('killed' if cycle.killed else 'finished'):<40} "
                    f"programs {cycle.programs:>3}  {time.monotonic() - started:5.1f} s",
                    flush=True,
                )
                for violation in cycle.violations:
                    print(f"    VIOLATION: {violation}", flush=True)
                    violations.append(f"run {run_number} cycle {len(checker.cycles)} ({cycle.moment}): {violation}")
                if cycle.returncode == 0:
                    runs_finished += 1
                    break
                if not cycle.killed:  # it failed on its own (a violation, printed above): next run
                    break
            run_number += 1
    summary = describe(all_cycles)
    moments = {c.fired.replace(" (pass ", ":").rstrip(")") for c in all_cycles if c.fired}
    print(
        f"\ncycles {summary['cycles']}, killed {summary['killed']} (at fault points "
        f"{summary['killed'] - summary['external_kills']}, external SIGKILL {summary['external_kills']}), "
        f"runs {run_number} ({runs_finished} finished at their budget)"
    )
    print(
        f"moments tried: {len(moments)} distinct point:pass pairs + {summary['external_kills']} external kills; "
        f"kills per point: " + ", ".join(f"{p} {summary['points_fired'].get(p, 0)}" for p in POINTS)
    )
    print(f"violations: {len(violations)}")
    for violation in violations:
        print(f"  {violation}")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
