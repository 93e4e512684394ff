"""Fused kernels under each instruction set this processor has: the kernel's time per element.

    python benchmarks/bench_fused_isa.py [--run RUN_DIR] [--candidates 50] [--seed 0] [--repeats 15]

`actmine.candidate.fused.compiler_flags` builds a kernel for the best vector instruction set the
processor lists (AVX-512, else AVX2 and FMA, else the compiler's default), and libmvec supplies
vector tanhf, sinf, erfcf, … of that width. For programs of a finished run (`--run`, evenly spaced
over its ranking) or search-like programs (half random expressions, half symbolic edits of a seed,
as `bench_fused.py` draws them), each program's kernel is compiled under every flag set and timed
on one search round's activation tensor (48 models × batch × hidden, one thread, the best of
`--repeats` calls), side by side in one run; printed per program the nanoseconds per element of
each set, and over all programs the median and the total ratio against AVX2 (the flags before
AVX-512 was used) and against torch's ReLU on the same tensor (forward, its mask for the backward:
what an activation costs that needs no vector math: the floor of the activation path), and the
largest relative difference of each set's values from AVX2's (the lab's agreement check compares
every kernel with the candidate itself before training with it).

Only compiled kernels run here: C text written by `actmine.language.ccode` from fixed templates and
formatted numbers, never the program's own Python (nothing of a run's text reaches the compiler).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from actmine.candidate import fused
from actmine.config import Config
from actmine.lab.fitness import Lab
from actmine.language.ccode import FORWARD_BACKWARD, c_kernel
from actmine.language.interpreter import EvaluationError, Unsupported
from actmine.language.program import ProgramError, parse_program

from bench_fused import as_in_a_worker, draw_candidates, run_programs  # benchmarks/ is on the path


def kernel_seconds(library_path: Path, x: torch.Tensor, repeats: int) -> tuple[float, torch.Tensor]:
    """The best of `repeats` calls of the kernel on `x`, and its values."""
    function = getattr(fused._library(library_path), FORWARD_BACKWARD)  # loaded and typed as the lab does
    y, slope = torch.empty_like(x), torch.empty_like(x)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function(x.data_ptr(), y.data_ptr(), slope.data_ptr(), x.numel())
        best = min(best, time.perf_counter() - started)
    return best, y


def relu_seconds(x: torch.Tensor, repeats: int) -> float:
    """torch's ReLU on `x`: the forward and the mask its backward uses."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        torch.relu(x), x > 0
        best = min(best, time.perf_counter() - started)
    return best


def time_kernels(
    sources: list[str], sets: dict[str, tuple[str, ...]], x: torch.Tensor, repeats: int, cache: Path
) -> list[dict]:
    """Each fusable program's kernel under every flag set: a row with its seconds per set and the
    largest relative difference of each set's values from AVX2's (programs without a kernel are left
    out); printed as it goes."""
    rows, widest = [], list(sets)[-1]
    for n, source in enumerate(sources):
        try:
            kernel = c_kernel(parse_program(source))
        except (ProgramError, Unsupported, EvaluationError, RecursionError, ValueError, TypeError):
            continue
        if kernel.operations < fused.MIN_OPERATIONS:
            continue
        seconds, values = {}, {}
        for name, flags in sets.items():
            library = fused.compile_kernel(kernel.source, cache, flags)
            seconds[name], values[name] = kernel_seconds(library, x, repeats)
        scale = values["avx2"].abs().clamp_min(1e-3)
        differs = {name: float(((values[name] - values["avx2"]).abs() / scale).max()) for name in sets}
        rows.append({"source": source, "operations": kernel.operations, "seconds": seconds, "differs": differs})
        print(
            f"{n:>3} {kernel.operations:>4} "
            + " ".join(f"{1e9 * seconds[name] / x.numel():>11.2f}" for name in sets)
            + f"  {seconds['avx2'] / seconds[widest]:>11.2f}  {source.strip().splitlines()[-1].strip()[:60]}",
            flush=True,
        )
    return rows


def report(rows: list[dict], sets: dict[str, tuple[str, ...]], x: torch.Tensor, relu: float) -> None:
    print(f"\n{len(rows)} kernels; torch's ReLU on the same tensor: {1e9 * relu / x.numel():.2f} ns per element")
    avx2 = [row["seconds"]["avx2"] for row in rows]
    for name in sets:
        seconds = [row["seconds"][name] for row in rows]
        ratios = [a / b for a, b in zip(avx2, seconds)]
        print(
            f"{name:>9}: median {1e9 * statistics.median(seconds) / x.numel():.2f} ns per element, "
            f"total ×{sum(avx2) / sum(seconds):.2f} vs avx2 (median ×{statistics.median(ratios):.2f}), "
            f"{sum(seconds) / (len(rows) * relu):.1f}× ReLU's; largest relative difference from avx2 "
            f"{max(row['differs'][name] for row in rows):.1e}"
        )


def main() -> None:
    as_in_a_worker()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a finished run: its programs instead of drawn ones")
    parser.add_argument("--candidates", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    if fused.compiler() is None:
        sys.exit("error: no C compiler (gcc or cc) on the PATH: there are no fused kernels to time")
    sets = fused.instruction_sets()
    if "avx2" not in sets:
        sys.exit("error: this processor has no AVX2: there is nothing to compare (every kernel is portable)")
    torch.set_num_threads(1)
    _, batch, hidden = Lab("lab").training_shape()  # the protocol's batch and hidden width
    shape = (Config().tasks.sample, batch, hidden)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(args.seed)) * 2
    sources = run_programs(args.run, args.candidates) if args.run else draw_candidates(args.candidates, args.seed)
    print(f"# flags chosen here: {' '.join(fused.compiler_flags())}; tensor {'×'.join(map(str, shape))}")
    print(f"{'#':>3} {'ops':>4} " + " ".join(f"{name + ' ns':>11}" for name in sets) + "  avx2÷widest  program")
    with tempfile.TemporaryDirectory(prefix="bench-isa-") as cache:
        rows = time_kernels(sources, sets, x, args.repeats, Path(cache))
    if not rows:
        sys.exit("error: none of the programs has a fused kernel")
    report(rows, sets, x, relu_seconds(x, args.repeats))


if __name__ == "__main__":
    main()
