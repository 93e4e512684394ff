"""Fused activations: a candidate's elementwise program compiled to one C loop with its derivative.

`fused_or_reason(source, eager, cache_dir)` reads the candidate with the language's interpreter
(never executing it), writes its C kernel (`actmine.language.ccode`), compiles it once with the
system's C compiler into `cache_dir/fused/<digest>.so` (written atomically; the lab's cache
directory, which in a sandbox worker is under the worker's own HOME: one compile per worker) and
returns a `FusedActivation`: a callable that computes f(x) and f'(x) in one vectorised pass and
whose backward pass is one multiply. Where anything is missing — a program outside the
interpreter's subset or an op without a fused rule, a single op (its compile costs more than it saves),
no C compiler, a compile error — `fused_or_reason` returns the reason instead ("eager: …") and the
lab trains eagerly as before. Only float32 CPU tensors take the fused path; anything else runs the
eager function given as the fallback.

The compiler sees only text made by `ccode` from fixed templates and formatted numbers; nothing of
the candidate's source reaches it. The lab still checks the fused function against the candidate
itself (`actmine.lab.fitness.Lab.evaluate`): on the probes' curve, on random values, and on the real
training tensors at the steps `TrainingCheck` watches, so training never uses a fused kernel that
computes anything other than the candidate.

Flags: `-O3 -fopenmp-simd` vectorise the loop; glibc's vector math library (libmvec) supplies
vector `expf`, `tanhf`, `sinf`, … when `__FAST_MATH__` is defined, and `-fno-math-errno
-fno-trapping-math` let gcc use them and evaluate both arms of a `?:`; `-ffp-contract=off` keeps
a·b + c two roundings, as torch's one-op-at-a-time arithmetic has them (with FMA contraction,
sin((x² − x)·3x) differed from eager at |x| > 5). Full `-ffast-math` is not used: it would assume
no NaN or infinity, and the lab must see a candidate's non-finite values.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import torch

from ..language.ccode import FORWARD_BACKWARD, c_kernel, kernel_digest
from ..language.interpreter import EvaluationError, Unsupported
from ..language.program import ProgramError, parse_program
from .descriptors import curve_points
from .probe_calls import ProbeFailure, _call, _same

__all__ = [
    "FusedActivation",
    "FusedMismatch",
    "fused_or_reason",
    "agreement",
    "fused_check",
    "compile_kernel",
    "compiler_flags",
    "instruction_sets",
    "COMPILE_TIMEOUT_S",
    "MIN_OPERATIONS",
    "AGREEMENT_POINTS",
    "SLOPE_RTOL",
    "SLOPE_ATOL",
]

MIN_OPERATIONS = 2  # a single op (gelu, tanh) saves less per round (0.02–0.07 s) than its compile costs (0.055 s)
AGREEMENT_POINTS = 4096  # random inputs (besides the curve's) on which the kernel must agree with the candidate
SLOPE_RTOL, SLOPE_ATOL = 1e-3, 1e-4  # f' of the kernel vs autograd's of the candidate (values: the probes' tolerance)

COMPILE_TIMEOUT_S = 60
_BASE_FLAGS = (
    "-O3",
    "-fopenmp-simd",
    "-fno-math-errno",
    "-fno-trapping-math",
    "-ffp-contract=off",
    "-D__FAST_MATH__",
    "-fPIC",
    "-shared",
)
_loaded: dict[str, ctypes.CDLL] = {}
_lock = threading.Lock()


def compiler() -> str | None:
    """The C compiler: `$CC` if set, else gcc or cc on the PATH."""
    return os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")


def instruction_sets() -> dict[str, tuple[str, ...]]:
    """The flag sets this processor runs, narrowest first: `portable` (the compiler's default),
    `avx2` (AVX2 and FMA) and `avx512` (AVX-512 too) on x86-64 processors that have them."""
    sets = {"portable": _BASE_FLAGS}
    if platform.machine() in ("x86_64", "AMD64") and _cpu_has("avx2", "fma"):
        sets["avx2"] = _BASE_FLAGS + ("-mavx2", "-mfma")
        if _cpu_has("avx512f"):
            sets["avx512"] = sets["avx2"] + ("-mavx512f",)
    return sets


@functools.lru_cache(maxsize=1)
def compiler_flags() -> tuple[str, ...]:
    """The flags: the widest of `instruction_sets` (never -march=native: see the Makefile).

    With `-mavx512f` gcc calls libmvec's 16-wide variants (`_ZGVeN16v_tanhf`, …): measured on a
    2-core AMD EPYC (Zen 4) with AVX-512, a default run's kernels ran 1.41× faster in all than
    with the 8-wide AVX2 ones (`benchmarks/bench_fused_isa.py`). Linux lists `avx512f` in
    /proc/cpuinfo only where the kernel has enabled its registers, and the flags are part of a
    kernel's cache digest, so a library built for one machine is never loaded on another."""
    return list(instruction_sets().values())[-1]


def _cpu_has(*features: str) -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    present = set(line.split(":", 1)[-1].split())
    return all(feature in present for feature in features)


def compile_kernel(source: str, cache_dir: Path, flags: tuple[str, ...] | None = None) -> Path:
    """The shared library of `source` in `cache_dir` (compiled once; atomic); raises RuntimeError.
    `flags`: the compiler's flags (default `compiler_flags()`; benchmarks compare other sets)."""
    cc = compiler()
    if cc is None:
        raise RuntimeError("no C compiler (gcc or cc) on the PATH")
    flags = compiler_flags() if flags is None else flags
    target = cache_dir / f"{kernel_digest(source, (cc, *flags))}.so"
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".build-") as build:
        c_file, built = Path(build) / "kernel.c", Path(build) / "kernel.so"
        c_file.write_text(source)
        log = Path(build) / "compiler.log"
        status = _run_compiler([cc, *flags, str(c_file), "-o", str(built), "-lm"], log)
        if status != 0 or not built.is_file():
            raise RuntimeError(f"the C compiler failed ({status}): {log.read_text(errors='replace')[-400:]}")
        os.replace(built, target)
    return target


def _run_compiler(argv: list[str], log: Path) -> int:
    """Run the compiler with its output in `log`; its exit status. This process opens no file or
    pipe for it (the child opens the log itself), so a worker's descriptors do not jump while it
    compiles (the soak test watches them); killed after `COMPILE_TIMEOUT_S`."""
    try:
        pid = os.posix_spawnp(
            argv[0],
            argv,
            {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "TMPDIR")},
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT, 0o600),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
        )
    except OSError as exc:
        raise RuntimeError(f"the C compiler did not run: {type(exc).__name__}: {exc}") from None
    deadline = time.monotonic() + COMPILE_TIMEOUT_S
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise RuntimeError(f"the C compiler did not finish in {COMPILE_TIMEOUT_S} s")
        time.sleep(0.005)


def _library(path: Path) -> ctypes.CDLL:
    with _lock:
        library = _loaded.get(str(path))
        if library is None:
            library = _loaded[str(path)] = ctypes.CDLL(str(path))
            function = getattr(library, FORWARD_BACKWARD)
            function.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_long]
            function.restype = None
        return library


def _run_kernel(library: ctypes.CDLL, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(f(x), f'(x)) from the compiled loop, for a float32 CPU tensor."""
    x = x.contiguous()
    y, slope = torch.empty_like(x), torch.empty_like(x)
    getattr(library, FORWARD_BACKWARD)(x.data_ptr(), y.data_ptr(), slope.data_ptr(), x.numel())
    return y, slope


class _Kernel(torch.autograd.Function):
    """y = f(x) with f'(x) computed in the same pass and saved; the backward is grad · f'(x)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, library: ctypes.CDLL) -> torch.Tensor:  # type: ignore[override]
        y, slope = _run_kernel(library, x)
        ctx.save_for_backward(slope)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (slope,) = ctx.saved_tensors
        return grad * slope, None


class FusedActivation:
    """A candidate's activation as a compiled kernel; `eager` runs every input the kernel does not take."""

    def __init__(self, library: ctypes.CDLL, eager: Callable[[torch.Tensor], torch.Tensor], source: str):
        self.library = library
        self.eager = eager
        self.c_source = source

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.float32 or x.device.type != "cpu":
            return self.eager(x)
        if torch.is_grad_enabled() and x.requires_grad:
            return _Kernel.apply(x, self.library)
        return _run_kernel(self.library, x)[0]  # no gradient: the slope is not needed

    # The lab's closed-form training (`actmine.lab.closed_form.ClosedForm`): f and f' into its buffers.
    in_place = False  # the C loop's pointers are `restrict`: never the same array

    @property
    def closed_form(self) -> FusedActivation:
        return self

    def takes(self, like: torch.Tensor) -> bool:
        return like.dtype == torch.float32 and like.device.type == "cpu"

    def forward_into(self, x: torch.Tensor, out: torch.Tensor, slope: torch.Tensor) -> None:
        # the C loop trusts its pointers: refuse anything but three same-sized float32 CPU arrays
        for tensor in (x, out, slope):
            if tensor.shape != x.shape or not self.takes(tensor) or not tensor.is_contiguous():
                raise ValueError("the fused kernel reads and writes contiguous float32 CPU tensors of one shape")
        getattr(self.library, FORWARD_BACKWARD)(x.data_ptr(), out.data_ptr(), slope.data_ptr(), x.numel())

    def backward_into(self, grad: torch.Tensor, out: torch.Tensor, slope: torch.Tensor) -> None:
        grad.mul_(slope)


def fused_or_reason(
    source: str, eager: Callable[[torch.Tensor], torch.Tensor], cache_dir: Path
) -> FusedActivation | str:
    """The fused form of the candidate `source` (`eager`: the candidate's own function), or why
    there is none, as "eager: …" (the caller trains eagerly)."""
    try:
        kernel = c_kernel(parse_program(source))
    except (ProgramError, Unsupported, EvaluationError) as exc:
        return f"eager: no fused kernel ({exc})"
    except (RecursionError, MemoryError, ValueError, TypeError, OverflowError) as exc:
        return f"eager: no fused kernel ({type(exc).__name__})"
    if kernel.operations < MIN_OPERATIONS:
        return "eager: a single operation (its compile would cost more than it saves)"
    try:
        library = _library(compile_kernel(kernel.source, cache_dir / "fused"))
    except (RuntimeError, OSError) as exc:
        return f"eager: no fused kernel ({exc})"
    return FusedActivation(library, eager, kernel.source)


class FusedMismatch(Exception):
    """The kernel disagreed with the candidate on a training tensor: the lab retrains eagerly."""


def _agreement_points() -> torch.Tensor:
    """The curve's points, seeded random values at several scales, and a few special values."""
    generator = torch.Generator().manual_seed(20261202)
    scales = torch.tensor([0.1, 1.0, 3.0, 10.0]).repeat_interleave(AGREEMENT_POINTS // 4)
    special = torch.tensor([0.0, -0.0, 1e-6, -1e-6, 1.0, -1.0, 3.0, -3.0, 20.0, -20.0, 60.0, -60.0, 100.0, -100.0])
    return torch.cat([curve_points(), torch.randn(AGREEMENT_POINTS, generator=generator) * scales, special])


def _value_and_slope(
    function: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.clone().requires_grad_(True)
    y = _call(function, x, "while comparing the fused kernel with the candidate")
    (slope,) = torch.autograd.grad(y.sum(), x, allow_unused=True)
    return y.detach(), (slope if slope is not None else torch.zeros_like(x))


def _where_not(agree: torch.Tensor, x: torch.Tensor) -> str:
    return ", ".join(f"{v:.4g}" for v in x[~agree][:3].tolist())


def agreement(fused: FusedActivation, candidate: Callable[[torch.Tensor], torch.Tensor]) -> str | None:
    """None when the kernel gives the candidate's values (the probes' tolerance) and derivatives
    (`SLOPE_RTOL`, `SLOPE_ATOL`) on `_agreement_points`; else what differs.

    A point agrees when the kernel is close to the candidate in float32 *or* in float64: where
    float32 autograd itself is inaccurate (the quotient rule of torch.sinc at |x| ~ 1e-4 cancels
    to noise) the kernel may be the more accurate of the two, and that is not a disagreement."""
    x = _agreement_points()
    try:
        got, got_slope = _value_and_slope(fused, x)
        expected, expected_slope = _value_and_slope(candidate, x)
    except (ProbeFailure, RuntimeError) as exc:
        return f"the fused kernel could not be compared with the candidate ({exc})"
    try:
        exact, exact_slope = _value_and_slope(candidate, x.double())
    except (ProbeFailure, RuntimeError):
        exact, exact_slope = expected, expected_slope  # a candidate that is float32 only
    agree = _same(got, expected) | _same(got.double(), exact.double())
    if not agree.all():
        return f"the fused kernel's values differ from the candidate's at x = {_where_not(agree, x)}"
    agree = _close_slope(got_slope, expected_slope) | _close_slope(got_slope.double(), exact_slope)
    if not agree.all():
        return f"the fused kernel's derivative differs from autograd's at x = {_where_not(agree, x)}"
    return None


def _close_slope(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.isclose(a, b.to(a.dtype), rtol=SLOPE_RTOL, atol=SLOPE_ATOL, equal_nan=True)


def fused_check(check: Callable, candidate: Callable[[torch.Tensor], torch.Tensor]) -> Callable:
    """A `CallCheck` for training with the kernel: the candidate's own `TrainingCheck` (it runs the
    candidate on slices of the training tensor and compares with the kernel's output there). If
    that fails, the candidate's full output decides who is wrong: where the candidate agrees with
    itself the kernel is (`FusedMismatch`: the lab retrains eagerly); else the failure stands."""

    def watch(before: torch.Tensor, output: object, where: str, modified_in_place: bool) -> None:
        try:
            check(before, output, where, modified_in_place)
        except ProbeFailure as failure:
            if failure.code != "inconsistent_function":
                raise
            with torch.no_grad():
                real = _call(candidate, before.clone(), where)
            check(before, real, where, False)  # raises when the candidate itself is inconsistent
            raise FusedMismatch(f"the fused kernel differed from the candidate {where}") from None

    return watch
