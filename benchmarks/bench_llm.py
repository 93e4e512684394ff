"""Does the search keep its workers busy while an LLM thinks? Concurrent vs one-at-a-time proposals.

    python benchmarks/bench_llm.py [--budget 24] [--latency 2.0] [--workers 2] [--concurrency 1 4]

A scripted OpenAI-compatible server on 127.0.0.1 (tests/chat_server.py) answers every call after
`--latency` seconds with a valid program (one of a few GELU perturbations), so the model's
speed is fixed and known. The same search (the lab suite, 3 seeds) runs once per `--concurrency`
value; the baseline is concurrency 1 (propose, then evaluate: the workers wait for every call).
Prints wall time, evaluations per second and the workers' idle fraction, and the speed-up of each
setting over the baseline.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from chat_server import ChatServer  # noqa: E402

from actmine.config import Config  # noqa: E402
from actmine.evolve.controller import Search  # noqa: E402

ANSWERS = [
    f"A GELU with a periodic term of amplitude {a} to keep curvature outside the training range.\n"
    f"```python\ndef activation_function(x):\n    return F.gelu(x) + {a} * torch.sin({b} * x)\n```"
    for a in (0.05, 0.1, 0.15, 0.2)
    for b in (0.5, 1.0, 2.0)
]


class CyclingServer(ChatServer):
    """Every answer different (no duplicates to skip), each after the configured latency."""

    def __init__(self, latency: float):
        super().__init__([{"content": text, "delay": latency} for text in ANSWERS] * 20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=int, default=24)
    parser.add_argument("--latency", type=float, default=2.0, help="seconds the scripted model takes per answer")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    print(f"{'concurrency':>11} {'evals':>5} {'seconds':>8} {'evals/s':>8} {'idle':>6} {'speed-up':>9}")
    baseline = None
    for concurrency in args.concurrency:
        with CyclingServer(args.latency) as server, tempfile.TemporaryDirectory(prefix="actmine-bench-") as run_dir:
            config = Config.from_dict(
                {
                    "search": {"budget": args.budget, "time_limit": 0, "heldout_top": 1, "initial_programs": ["gelu"]},
                    "mutator": {
                        "kind": "llm",
                        "options": {
                            "models": [{"name": "scripted", "base_url": server.base_url}],
                            "concurrency": concurrency,
                            "operators": {"mutate": 1},
                        },
                    },
                    "executor": {"workers": args.workers},
                    "lab": {"training_seeds": 3},
                }
            )
            started = time.monotonic()
            summary = Search(config, Path(run_dir) / "run", live=False).run()
            # the search loop only: the held-out check and the report come after it
            seconds = summary["seconds"]
        baseline = baseline or seconds
        print(
            f"{concurrency:>11} {summary['evaluated']:>5} {seconds:>8.1f} {summary['evaluated'] / seconds:>8.2f} "
            f"{summary['idle_fraction']:>6.1%} {baseline / seconds:>8.2f}x   "
            f"(with held-out check and report: {time.monotonic() - started:.0f} s)"
        )


if __name__ == "__main__":
    main()
