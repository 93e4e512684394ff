"""Calling an untrusted candidate for a check: the refusal it earns (`ProbeFailure` and its reason
codes), the checked call (`_call`: an exception, a non-tensor or a wrongly shaped result is a
refusal), its derivative, "the same values" as every check compares them, and purity (the same
output twice, the input untouched). The probes (`probes.py`), the cost counter (`cost.py`), the
descriptors (`descriptors.py`) and the fused kernels' agreement check all call candidates this way.
"""

from __future__ import annotations

from typing import Callable

import torch

Activation = Callable[[torch.Tensor], torch.Tensor]

# Every "the same function" comparison (two calls, two shapes, training against the probes):
# float kernels differ by an ulp or so between tensor sizes (vectorised vs scalar tails).
SAME_RTOL = 1e-4
SAME_ATOL = 1e-5
# Exception and refusal messages are cut to this many characters (a candidate can raise a 50 MB one).
MESSAGE_LIMIT = 4096


def cap_message(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """`text` cut to `limit` characters, with a marker saying that it was cut and how long it was."""
    text = str(text)
    if len(text) <= limit:
        return text
    return text[:limit] + f"… [cut: {len(text)} characters, the first {limit} kept]"


def exception_code(exc: BaseException) -> str:
    """The reason code for an exception raised by candidate code: running out of memory (Python's
    MemoryError, or torch's allocator failing under the worker's address-space limit) is
    `memory_limit`; anything else is `runtime_error`."""
    text = str(exc)
    if isinstance(exc, MemoryError) or "can't allocate memory" in text or "out of memory" in text.lower():
        return "memory_limit"
    return "runtime_error"


#: Stable reason codes of `ProbeFailure` (and of `exception_code`), with what each means.
PROBE_CODES: dict[str, str] = {
    "bad_output": "the activation returned something other than a floating-point tensor",
    "bad_shape": "the output's shape or dtype differs from the input's",
    "non_finite": "a NaN or infinite output on the probe set (or NaN beyond it)",
    "non_finite_gradient": "a NaN or infinite gradient on the probe set (or NaN beyond it)",
    "no_gradient": "the output is not differentiable with respect to the input",
    "zero_gradient": "the gradient is zero (almost) everywhere",
    "nondeterministic": "the same input gave different outputs",
    "inconsistent_function": "a different function on another tensor shape, or in training than in the probes",
    "modifies_input": "the activation changed its input in place",
    "batch_dependent": "an element's output depends on other elements of the tensor",
    "over_flop_budget": "more weighted elementwise operations per element than the budget allows",
    "over_memory_budget": "more bytes saved for the backward pass per element than the budget allows",
    "runtime_error": "the activation's code raised an exception",
    "memory_limit": "the activation ran out of memory",
}


class ProbeFailure(Exception):
    """The candidate failed a probe; `code` says which (see `PROBE_CODES`)."""

    def __init__(self, code: str, message: str):
        super().__init__(cap_message(message))
        self.code = code


def _call(activation: Activation, x: torch.Tensor, where: str) -> torch.Tensor:
    """activation(x), with any exception, non-tensor or wrongly shaped result as a ProbeFailure."""
    try:
        y = activation(x)
    except ProbeFailure:
        raise
    except Exception as exc:
        raise ProbeFailure(exception_code(exc), f"the activation raised {type(exc).__name__} {where}: {exc}") from None
    if not isinstance(y, torch.Tensor):
        raise ProbeFailure("bad_output", f"the activation returned {type(y).__name__}, not a torch.Tensor, {where}")
    if y.shape != x.shape or y.dtype != x.dtype:
        raise ProbeFailure(
            "bad_shape",
            f"output {tuple(y.shape)} {y.dtype} differs from input "
            f"{tuple(x.shape)} {x.dtype} {where}: return a tensor of the input's "
            f"shape and dtype",
        )
    return y


def _derivative(activation: Activation, x: torch.Tensor, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(f(x), d sum f(x) / dx): the elementwise derivative for a pointwise f; zeros if f has no gradient."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        y = _call(activation, x, where)
        if not y.requires_grad:
            return y.detach(), torch.zeros_like(x)
        try:
            (gradient,) = torch.autograd.grad(y, x, torch.ones_like(y), allow_unused=True)
        except Exception as exc:
            raise ProbeFailure(
                exception_code(exc), f"the backward pass raised {type(exc).__name__} {where}: {exc}"
            ) from None
    return y.detach(), torch.zeros_like(x) if gradient is None else gradient.detach()


def _same(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Elementwise: a and b agree within SAME_RTOL/SAME_ATOL (NaN agrees with NaN, inf with inf)."""
    return torch.isclose(a, b, rtol=SAME_RTOL, atol=SAME_ATOL, equal_nan=True)


def _all_same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """`_same(a, b).all()`, with a fast path: a deterministic function on the same values in the same
    positions gives bit-identical results, and `torch.equal` checks that at memory speed."""
    return torch.equal(a, b) or bool(_same(a, b).all())


def _unchanged(before: torch.Tensor, after: torch.Tensor) -> bool:
    """Bit for bit the same values (NaN counts as equal to NaN)."""
    return torch.equal(before, after) or bool(((before == after) | (before.isnan() & after.isnan())).all())


def _examples(x: torch.Tensor, where: torch.Tensor, n: int = 3) -> list[float]:
    """A few inputs at which a check failed, for the message."""
    return [float(f"{v:.6g}") for v in x.detach()[where][:n].double().tolist()]


_MODIFIES_INPUT = (
    "the activation changed its input in place {where} (an in-place method such as x.mul_() or "
    "x.clamp_(), an item assignment, or an out= argument): in training that corrupts the layer's "
    "values and gradients; compute a new tensor instead (x * 2, not x.mul_(2))"
)


def _refuse_modified_input(before: torch.Tensor, after: torch.Tensor, where: str) -> None:
    if not _unchanged(before, after):
        raise ProbeFailure("modifies_input", _MODIFIES_INPUT.format(where=where))


def _pure_call(activation: Activation, x: torch.Tensor, where: str) -> torch.Tensor:
    """activation(x) without gradient tracking, called twice on copies of x: the input must be left
    unchanged (`modifies_input`) and the two outputs must agree (`nondeterministic`). Returns the first."""
    with torch.no_grad():
        given = x.clone()
        first = _call(activation, given, where)
        _refuse_modified_input(x, given, where)
        second = _call(activation, x.clone(), where)
    agree = _same(first, second)
    if not agree.all():
        raise ProbeFailure(
            "nondeterministic",
            f"two calls on the same input gave different outputs {where}, at inputs such as "
            f"{_examples(x, ~agree)}: the activation must be a function of its input alone (no "
            f"randomness, no uninitialised memory such as torch.empty_like, no state kept "
            f"between calls)",
        )
    return first


def check_purity(activation: Activation, x: torch.Tensor, where: str) -> torch.Tensor:
    """The same output for the same input: twice without gradient tracking, and once with it.

    Raises `modifies_input` if a call changes its input (checked with and without tracking: a
    leaf tensor that requires grad refuses in-place changes, so the tracked call gets a non-leaf
    input, as a layer's output is in training), `nondeterministic` if two calls differ and
    `inconsistent_function` if the tracked call differs from the untracked ones (a candidate that
    branches on `x.requires_grad` would train one function and be scored on another).
    Returns the untracked output.
    """
    untracked = _pure_call(activation, x, where)
    with torch.enable_grad():
        tracked_input = x.detach().clone().requires_grad_(True) * 1.0
        tracked = _call(activation, tracked_input, where).detach()
        _refuse_modified_input(x, tracked_input.detach(), where + " with gradients tracked")
    agree = _same(untracked, tracked)
    if not agree.all():
        raise ProbeFailure(
            "inconsistent_function",
            f"the output differs when gradients are tracked {where}, at inputs such as "
            f"{_examples(x, ~agree)}: training would use one function and scoring another",
        )
    return untracked


def _shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(str(n) for n in shape)
