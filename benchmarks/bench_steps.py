"""Do the differences between two activations grow with training steps faster than their cost?

    python benchmarks/bench_steps.py [--steps 50 100 200] [--size 40] [--pair gelu gelu_sine]

Issue 13's bar needs a winner better than GELU where targets grow smoothly and better than GELUSine
where they oscillate or saturate; the search cannot see such kind-wise trades, because per kind
they are 0.01–0.1 under a per-task spread of ~0.6 (docs/lab.md, "Does any candidate beat GELU on
every kind?"). One way out would be a protocol under which the differences between functions are
larger. Longer training costs in proportion to its steps, so a longer protocol pays only if the
squared effect size d² = (mean / sd)² of a paired difference grows faster than the steps.

This script trains the two library activations of `--pair` (trusted code, in this process) on one
pool per kind the default search draws — each expression operator group alone and each other
search generator, `--size` tasks × seeds 0 and 1, the same tasks as `bench_kinds.py` (index
3,000,000; the learnability filter of the default 50-step protocol) — and on the unseen test
suites, under each `--steps`, everything else of the protocol unchanged. Per kind and step count it
prints the mean paired difference of the per-task scores (second − first; below 0 = the second
extrapolates better), its standard deviation over tasks, d = mean / sd, and the core-seconds it
would take to resolve that mean at two standard errors — (2 / d)² tasks at the measured seconds
per task for both functions — so that the step counts can be compared per unit of compute. Nothing
here chooses a function: the pair is fixed, and the test suites are only read.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch

from actmine.activations.registry import get as get_activation
from actmine.config import Config
from actmine.lab.fitness import Lab

from bench_fused import as_in_a_worker  # benchmarks/ is on the path when run as a script
from bench_kinds import kind_labs, task_score


def with_steps(lab: Lab, steps: int) -> Lab:
    """The same tasks, seeds and settings with `steps` training steps."""
    spec = lab.to_spec()
    return Lab.from_spec({**spec, "protocol": {**spec["protocol"], "steps": steps}}, cache_dir=lab.cache_dir)


def task_scores(lab: Lab, name: str) -> tuple[dict[str, float], float]:
    """{task: its score} of the library activation `name` on `lab`, and the evaluation's seconds."""
    started = time.perf_counter()
    evaluation = lab.evaluate(get_activation(name), name=name)
    if not evaluation.ok:
        raise SystemExit(f"error: {name} failed on {lab.suite.name}: {evaluation.error}")
    scores = {t.name: task_score(t.seed_log_ratios) for t in evaluation.tasks}
    return scores, time.perf_counter() - started


def difference_row(differences: list[float], seconds_per_task: float) -> dict[str, float]:
    """A kind's paired differences as (tasks, mean, sd, d = mean / sd, core-seconds to resolve the
    mean at two standard errors: (2 / d)² tasks at `seconds_per_task`)."""
    mean = float(np.mean(differences))
    sd = float(np.std(differences, ddof=1))
    d = mean / sd if sd > 0 else (0.0 if mean == 0 else math.copysign(math.inf, mean))
    tasks_needed = (2 / d) ** 2 if d else math.inf  # no difference: nothing resolves it
    return {"n": len(differences), "mean": mean, "sd": sd, "d": d, "core_s": tasks_needed * seconds_per_task}


def main() -> None:
    as_in_a_worker()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--size", type=int, default=40, help="tasks per kind (seeds 0 and 1 each)")
    parser.add_argument("--pair", nargs=2, default=["gelu", "gelu_sine"], metavar=("FIRST", "SECOND"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    labs, kind_of, suites = kind_labs(Config(), args.size)
    first, second = args.pair
    print(f"# {second} − {first}, per-task scores (mean over seeds 0 and 1 of the log-ratio vs ReLU, clipped ±3)")
    print(f"{'steps':>5} {'kind':<22} {'tasks':>5} {'mean':>8} {'sd':>6} {'d':>7} {'core-s to 2 se':>15}")
    for steps in args.steps:
        differences: dict[str, list[float]] = {}
        seconds, tasks_trained = 0.0, 0
        for lab_name, lab in labs.items():
            lab = with_steps(lab, steps)
            a, a_s = task_scores(lab, first)
            b, b_s = task_scores(lab, second)
            seconds += a_s + b_s
            tasks_trained += len(a)
            for task in a:
                differences.setdefault(kind_of.get(task, lab_name), []).append(b[task] - a[task])
        per_task = seconds / tasks_trained
        rows = {kind: difference_row(xs, per_task) for kind, xs in differences.items()}
        for kind in sorted(rows, key=lambda k: (k in suites, k)):
            row = rows[kind]
            print(
                f"{steps:>5} {kind[:22]:<22} {row['n']:>5} {row['mean']:>+8.3f} {row['sd']:>6.3f} "
                f"{row['d']:>+7.3f} {row['core_s']:>15.0f}"
            )
        search = [x for kind, xs in differences.items() if kind not in suites for x in xs]
        d_search = statistics.mean(abs(row["d"]) for kind, row in rows.items() if kind not in suites)
        print(
            f"{steps:>5} {'all search kinds':<22} {len(search):>5} {np.mean(search):>+8.3f} "
            f"{np.std(search, ddof=1):>6.3f}   mean |d| over kinds {d_search:.3f}; "
            f"{per_task:.3f} core-s per task (both functions, reference included)\n",
            flush=True,
        )


if __name__ == "__main__":
    main()
