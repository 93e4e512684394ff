"""What does the sandbox cost? The same good candidate evaluated in-process and in a warm worker.

    python benchmarks/bench_sandbox.py [--repeats 10] [--suite lab]

In-process: `Lab.evaluate_source` in this process (the whole cascade: policy, probes, screening,
training). Sandboxed: `SandboxPool.evaluate` with one warm worker (torch imported, the workload
already built by a first request), which adds the JSON round trip, the worker's bookkeeping and
the result's validation. Both run on one thread. Prints best-of-N seconds and the overhead
(sandboxed ÷ in-process − 1; target < 10 %).
"""

from __future__ import annotations

import argparse
import time

import torch

from actmine.candidate.sandbox import SandboxPool
from actmine.lab.fitness import Lab

CANDIDATES = {
    "gelu_sine": "def activation_function(x):\n    return F.gelu(x, approximate='tanh') + 0.1 * torch.sin(x)\n",
    "relu": "def activation_function(x):\n    return torch.relu(x)\n",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="lab")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    lab = Lab(args.suite)
    lab.reference
    print(f"suite {lab.suite.name}: {lab.workload_summary()['models']} models; one thread; best of {args.repeats}")
    print(f"{'candidate':<12} {'in-process s':>13} {'sandboxed s':>12} {'overhead':>9}")
    with SandboxPool(workers=1) as pool:
        pool.start()
        for name, source in CANDIDATES.items():
            assert pool.evaluate(source, lab, name).ok  # warm: the worker builds its workload once
            lab.evaluate_source(source, name)
            best_local = best_sandboxed = float("inf")
            for _ in range(args.repeats):  # interleaved, so a slow phase of the machine hits both
                started = time.perf_counter()
                local = lab.evaluate_source(source, name)
                best_local = min(best_local, time.perf_counter() - started)
                started = time.perf_counter()
                sandboxed = pool.evaluate(source, lab, name)
                best_sandboxed = min(best_sandboxed, time.perf_counter() - started)
                assert local.ok and sandboxed.ok and abs(local.fitness - sandboxed.fitness) < 1e-6
            print(f"{name:<12} {best_local:>13.3f} {best_sandboxed:>12.3f} {best_sandboxed / best_local - 1:>8.1%}")
        # The fixed cost of a round trip: a candidate the policy refuses does no work in the worker.
        best_trip = float("inf")
        for _ in range(args.repeats * 5):
            started = time.perf_counter()
            assert not pool.evaluate("import os\n", lab, "refused").ok
            best_trip = min(best_trip, time.perf_counter() - started)
        print(f"round trip of a refused candidate (the sandbox's fixed cost): {best_trip * 1e3:.2f} ms")
    print(
        "A negative overhead is real: workers run with glibc malloc thresholds (sandbox.WORKER_ENV) that "
        "this process lacks."
    )


if __name__ == "__main__":
    main()
