"""How long does a pool take to build, and what fraction of each generator's draws is learnable?

    python benchmarks/bench_pools.py [--size 200] [--threads 1] [--generators expression polynomial harmonic feynman]

Builds each generator's pool (default parameters, the lab's default protocol, seeds 0-2) in a fresh
temporary cache, so every draw is trained, and prints per generator: draws looked at, kept, the
learnable fraction, the rejections by reason, the build time, and the time of a second build
(from the cache: no training). The numbers in docs/lab.md come from this script.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from actmine.lab.pools import Pool


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=64)
    parser.add_argument("--generators", nargs="+", default=["expression", "polynomial", "harmonic", "feynman"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"| generator | looked at | kept | learnable | rejections | build s ({args.threads} thread) | cached build s |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in args.generators:
        with tempfile.TemporaryDirectory() as cache:
            started = time.perf_counter()
            pool = Pool(name, size=args.size, cache_dir=cache, chunk_size=args.chunk)
            built = time.perf_counter() - started
            started = time.perf_counter()
            Pool(name, size=args.size, cache_dir=cache, chunk_size=args.chunk)
            cached = time.perf_counter() - started
        rejections = ", ".join(f"{reason} {n}" for reason, n in sorted(pool.rejections().items())) or "none"
        print(
            f"| {name} | {len(pool.draws)} | {len(pool.tasks)} | {pool.learnable_fraction:.0%} | {rejections} "
            f"| {built:.0f} | {cached:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
