"""Cheap checks of an activation before any training.

- shape and dtype: the output has the input's shape and dtype;
- finiteness: finite outputs and gradients on a probe set from tiny to huge magnitudes;
- cost: weighted elementwise operations per input element in the forward and in the backward
  pass, counted by a dispatch-mode operator counter (torch's FlopCounterMode counts only matmuls
  and convolutions, zero for elementwise ops), with transcendental functions weighted more;
- memory: bytes that the activation saves for its backward pass, per input element;
- batch dependence: whether one element's output depends on the other elements of the tensor;
- descriptors: a few numbers that place the function's shape on the search's diversity grid;
- fingerprint: a hash of the outputs on fixed points, so that two programs that compute the same
  function are recognised as one whatever their source text.

`run_probes` runs them all under a `ProbeBudget` and raises `ProbeFailure` (with a `code`) on the
first that the candidate fails.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Mapping

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

Activation = Callable[[torch.Tensor], torch.Tensor]

# Operations that move no data or only describe it: they cost nothing per element.
_FREE_OPS = {"view", "_unsafe_view", "reshape", "expand", "alias", "detach", "t", "transpose", "permute",
             "unsqueeze", "squeeze", "select", "slice", "as_strided", "lift_fresh", "_to_copy", "clone",
             "copy_", "empty_like", "zeros_like", "ones_like", "full_like", "scalar_tensor", "lift_fresh_copy",
             # views and allocations without arithmetic
             "split", "split_with_sizes", "unbind", "chunk", "narrow", "diagonal", "_reshape_alias", "unfold",
             "view_as_real", "view_as_complex", "expand_as", "view_as", "empty", "empty_strided", "new_empty",
             "new_empty_strided"}
# Functions that cost many multiply-adds each (a polynomial or rational approximation in libm).
_TRANSCENDENTAL_OPS = {"exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sin", "cos", "tan", "asin",
                       "acos", "atan", "atan2", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "erf", "erfc",
                       "erfinv", "sigmoid", "pow", "sqrt", "rsqrt", "gelu", "silu", "mish", "softplus", "elu",
                       "selu", "sinc", "lgamma", "digamma", "logit", "log_sigmoid_forward", "reciprocal",
                       # fused backward kernels that evaluate a transcendental function again
                       "gelu_backward", "silu_backward", "mish_backward", "softplus_backward", "elu_backward",
                       "log_sigmoid_backward", "logit_backward"}
TRANSCENDENTAL_WEIGHT = 8

# Size of the random input on which cost and memory are measured.
COST_SIZE = 4096
# Fingerprint rounding: outputs with |v| < FINGERPRINT_ATOL read as 0, the rest keep
# FINGERPRINT_DIGITS significant digits.
FINGERPRINT_ATOL = 1e-5
FINGERPRINT_DIGITS = 5
# Non-finite or huge descriptor values are clipped to ±DESCRIPTOR_CLIP (NaN reads as 0).
DESCRIPTOR_CLIP = 1e6
GROWTH_CLIP = 10.0
DERIVATIVE_ZERO = 1e-6
BOUNDED_BELOW = 10.0


def exception_code(exc: BaseException) -> str:
    """The reason code for an exception raised by candidate code: running out of memory (Python's
    MemoryError, or torch's allocator failing under the worker's address-space limit) is
    `memory_limit`; anything else is `runtime_error`."""
    text = str(exc)
    if isinstance(exc, MemoryError) or "can't allocate memory" in text or "out of memory" in text.lower():
        return "memory_limit"
    return "runtime_error"


class ProbeFailure(Exception):
    """The candidate failed a probe; `code` says which."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------------------------
# Budget
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProbeBudget:
    """Limits a candidate must stay within to be trained at all (configuration only).

    max_flops_per_element: weighted elementwise operations per input element in the forward pass
        (the paper's "FLOP budget"); a transcendental op weighs TRANSCENDENTAL_WEIGHT. Config key
        `probes.max_flops_per_element`.
    max_saved_bytes_per_element: bytes the activation keeps for its backward pass per input
        element, the input itself not counted. Config key `probes.max_saved_bytes_per_element`.
    allow_batch_dependent: admit functions whose output for one element depends on the others
        (batch statistics); they are then scored per example. Config key
        `probes.allow_batch_dependent`.
    """

    max_flops_per_element: float = 200.0
    max_saved_bytes_per_element: float = 64.0
    allow_batch_dependent: bool = False

    def __post_init__(self) -> None:
        for name in ("max_flops_per_element", "max_saved_bytes_per_element"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"probes.{name} must be a number, got {type(value).__name__} {value!r}")
            if math.isnan(value) or value <= 0:
                raise ValueError(f"probes.{name} must be a positive number, got {value!r}")
        if not isinstance(self.allow_batch_dependent, bool):
            raise TypeError(f"probes.allow_batch_dependent must be true or false, "
                            f"got {type(self.allow_batch_dependent).__name__} {self.allow_batch_dependent!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProbeBudget:
        """The inverse of `to_dict`; unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown probes setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**dict(data))


# --------------------------------------------------------------------------------------------
# Calling the candidate
# --------------------------------------------------------------------------------------------

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
        raise ProbeFailure("bad_shape", f"output {tuple(y.shape)} {y.dtype} differs from input "
                                        f"{tuple(x.shape)} {x.dtype} {where}: return a tensor of the input's "
                                        f"shape and dtype")
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
            raise ProbeFailure(exception_code(exc), f"the backward pass raised {type(exc).__name__} {where}: {exc}") \
                from None
    return y.detach(), torch.zeros_like(x) if gradient is None else gradient.detach()


# --------------------------------------------------------------------------------------------
# Cost and memory
# --------------------------------------------------------------------------------------------

class _OperationCounter(TorchDispatchMode):
    """Counts weighted elements of every aten op dispatched while active.

    An op costs max(elements of its tensor inputs, elements of its tensor outputs), times
    TRANSCENDENTAL_WEIGHT for a transcendental function: an elementwise op its output size, a
    reduction (sum, mean, std, ...) the size of what it reads, not its scalar result. Views and
    allocations (_FREE_OPS) are free; a fused kernel (e.g. tanh_backward) counts once.
    """

    def __init__(self) -> None:
        super().__init__()
        self.elements = 0.0
        self.ops: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 (torch's signature)
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = func.overloadpacket.__name__.rstrip("_")
        if name not in _FREE_OPS:
            leaves, _ = tree_flatten((args, kwargs, out))
            size = max((leaf.numel() for leaf in leaves if isinstance(leaf, torch.Tensor)), default=0)
            if size:
                weight = TRANSCENDENTAL_WEIGHT if name in _TRANSCENDENTAL_OPS else 1
                self.elements += weight * size
                self.ops[name] = self.ops.get(name, 0) + 1
        return out


@dataclass(frozen=True)
class Cost:
    """What one forward and backward pass of the activation costs, per input element."""

    flops_per_element: float            # forward, weighted elementwise ops
    backward_flops_per_element: float   # backward, weighted elementwise ops
    saved_bytes_per_element: float      # distinct storages saved for backward, the input's excluded
    ops: dict[str, int]                 # forward ops by name


def measure_cost(activation: Activation, size: int = COST_SIZE, dtype: torch.dtype = torch.float32) -> Cost:
    """Forward and backward operation counts and saved bytes on a random input of `size` elements.

    Saved bytes: every tensor that autograd keeps for the backward pass goes through a
    `saved_tensors_hooks` pack hook, which records the `untyped_storage().nbytes()` of its storage;
    a storage saved twice (or by two views) counts once, and the input's own storage is not
    counted (it is kept alive by the previous layer anyway). ReLU saves its output (4 B/element
    in float32), GELU only its input (0).
    """
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(size, generator=generator, dtype=torch.float64).to(dtype).requires_grad_(True)
    input_storage = x.untyped_storage().data_ptr()
    storages: dict[Any, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        try:
            storage = tensor.untyped_storage()
            key: Any = storage.data_ptr()
            nbytes = storage.nbytes()
        except Exception:  # a tensor without a plain storage (a subclass): count its elements
            key, nbytes = ("id", id(tensor)), tensor.numel() * tensor.element_size()
        if key != input_storage:
            storages[key] = nbytes
        return tensor

    forward = _OperationCounter()
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        with forward:
            y = _call(activation, x, "while measuring its cost")
    backward = _OperationCounter()
    if y.requires_grad:
        seed = torch.ones_like(y)
        try:
            with backward:
                torch.autograd.grad(y, x, seed, allow_unused=True)
        except Exception as exc:
            raise ProbeFailure(exception_code(exc), f"the backward pass raised {type(exc).__name__} while measuring "
                                                f"its cost: {exc}") from None
    return Cost(flops_per_element=forward.elements / size, backward_flops_per_element=backward.elements / size,
                saved_bytes_per_element=sum(storages.values()) / size, ops=forward.ops)


def flops_per_element(activation: Activation, size: int = COST_SIZE) -> tuple[float, dict[str, int]]:
    """Weighted elementwise operations per input element for the forward pass, and the ops by name."""
    cost = measure_cost(activation, size)
    return cost.flops_per_element, cost.ops


def backward_flops_per_element(activation: Activation, size: int = COST_SIZE) -> float:
    """Weighted elementwise operations per input element for the backward pass."""
    return measure_cost(activation, size).backward_flops_per_element


def saved_bytes_per_element(activation: Activation, dtype: torch.dtype = torch.float32,
                            size: int = COST_SIZE) -> float:
    """Bytes saved for the backward pass per input element, the input's own storage excluded."""
    return measure_cost(activation, size, dtype).saved_bytes_per_element


# --------------------------------------------------------------------------------------------
# Probe points, batch dependence, fingerprint, descriptors
# --------------------------------------------------------------------------------------------

def probe_points(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A grid over [−10, 10], normal samples at scales up to 100, zeros and extreme magnitudes."""
    generator = torch.Generator().manual_seed(0)
    parts = [torch.linspace(-10, 10, 401, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)]
    for scale in (0.01, 1.0, 10.0, 100.0):
        parts.append(torch.randn(64, generator=generator, dtype=torch.float64) * scale)
    parts.append(torch.tensor([1e-30, -1e-30, 1e-6, -1e-6, 1e4, -1e4, 3e4, -3e4], dtype=torch.float64))
    return torch.cat(parts).to(dtype)


def is_pointwise(activation: Activation, atol: float = 1e-5, dtype: torch.dtype = torch.float32) -> bool:
    """True when each output element depends only on its own input element.

    Compares f on a batch with f on each row alone and with f on a shuffled and a rescaled-others
    batch: a batch-statistics function (mean, std, FFT, roll over the tensor) changes in one of them.
    A candidate that raises on these (small, 2-D) inputs fails with ProbeFailure('runtime_error'),
    one that returns another shape or a non-tensor with 'bad_shape' or 'bad_output'.
    """
    generator = torch.Generator().manual_seed(1)
    x = (torch.randn(8, 32, generator=generator, dtype=torch.float64) * 2).to(dtype)
    where = "on the batch-dependence check's 8×32 input"
    with torch.no_grad():
        y = _call(activation, x, where)
        alone = torch.cat([_call(activation, x[i:i + 1], where) for i in range(len(x))])
        order = torch.randperm(x.shape[1], generator=generator)
        shuffled = _call(activation, x[:, order], where)[:, torch.argsort(order)]
        changed = x.clone()
        changed[1:] = changed[1:] * 5 + 3
        first_row = _call(activation, changed, where)[0]
        changed = x.clone()  # the others in the same row: catches row-wise softmax, layer norm
        changed[:, 1:] = changed[:, 1:] * 5 + 3
        first_column = _call(activation, changed, where)[:, 0]

    def close(a: torch.Tensor, b: torch.Tensor) -> bool:
        return torch.allclose(a, b, atol=atol, rtol=1e-4, equal_nan=True)

    return close(y, alone) and close(y, shuffled) and close(y[0], first_row) and close(y[:, 0], first_column)


def fingerprint(activation: Activation) -> str:
    """A hash of the outputs on 97 fixed points of [−6, 6], rounded so that float noise does not
    split equals.

    Tolerance: an output with |v| < FINGERPRINT_ATOL (1e-5: float32 noise around a zero, and -0.0)
    reads as 0, so that e.g. x*(x>0) == relu; the others keep FINGERPRINT_DIGITS (5) significant
    digits. Two functions whose outputs agree to about 5 digits everywhere on the points share a
    print (x*sigmoid(x) and F.silu do); ones that differ by more than about 1e-5 relative at any
    point do not (except for the rare value that rounds to the same 5 digits).
    """
    x = torch.linspace(-6, 6, 97, dtype=torch.float64).to(torch.float32)
    with torch.no_grad():
        y = _call(activation, x, "on the fingerprint's points").double()
    rounded = [f"{v:.{FINGERPRINT_DIGITS}g}" if abs(v) >= FINGERPRINT_ATOL else "0" for v in y.tolist()]
    return hashlib.sha256(",".join(rounded).encode()).hexdigest()[:16]


CURVE_POINTS = 121


def curve(activation: Activation) -> dict[str, list[float]]:
    """f and f' on [−6, 6] (121 points), as plain numbers: reports and plots draw a candidate
    from this record, so they never have to run its (untrusted) code themselves."""
    x = torch.linspace(-6, 6, CURVE_POINTS, dtype=torch.float32)
    y, dy = _derivative(activation, x, "on the curve's points")
    return {"x": [round(v, 4) for v in x.tolist()], "y": [_finite(v) for v in y.tolist()],
            "dy": [_finite(v) for v in dy.tolist()]}


def _finite(value: float, bound: float = DESCRIPTOR_CLIP) -> float:
    """A plain finite float: NaN reads as 0, ±inf and huge values are clipped to ±bound, -0.0 is 0.0."""
    value = float(value)
    if math.isnan(value):
        return 0.0
    return min(max(value, -bound), bound) + 0.0


def descriptors(activation: Activation, dtype: torch.dtype = torch.float64) -> dict[str, float | int | bool]:
    """Numbers that describe the function's shape, for the search's diversity grid.

    - value_at_0: f(0).
    - slope_at_0: f'(0) by autograd (torch's subgradient where f has a kink: relu gives 0).
    - growth_pos: f(1e3)/1e3, the asymptotic slope towards +∞ (1 for relu, 0 for a bounded f),
      clipped to [−10, 10].
    - growth_neg: f(−1e3)/(−1e3), the asymptotic slope towards −∞, i.e. lim f(x)/x (0 for relu,
      0.01 for leaky relu, 1 for the identity, −1 for |x|), clipped to [−10, 10].
    - sign_changes: how often f' changes sign on a grid of 2001 points over [−5, 5], values with
      |f'| < 1e-6 read as zero and skipped (0 for relu, 1 for GELU, 4 for sin): the number of
      bumps and dips.
    - monotone: sign_changes == 0.
    - bounded: max |f| on a grid over [−100, 100] is below 10.
    - mean_curvature: mean |f''| on [−3, 3], by central second differences with step 0.01; a
      kink contributes its jump in slope divided by 6 (relu: 1/6), a straight line 0.

    Computed in float64 by default. Non-finite values become finite: NaN reads as 0 (for
    `bounded`, as unbounded), ±inf is clipped (±1e6, growth to ±10). The derivatives are of
    sum f(x), which is the elementwise derivative only for a pointwise f.
    """
    def grid(lo: float, hi: float, n: int) -> torch.Tensor:
        return torch.linspace(lo, hi, n, dtype=torch.float64).to(dtype)

    value_0, slope_0 = _derivative(activation, torch.zeros(1, dtype=dtype), "at x = 0")
    with torch.no_grad():
        far = _call(activation, torch.tensor([1e3, -1e3], dtype=torch.float64).to(dtype),
                    "at x = ±1e3").double()
        wide = _call(activation, grid(-100.0, 100.0, 2001), "on [−100, 100]").double()
        h = 0.01
        near = _call(activation, grid(-3.0, 3.0, 601), "on [−3, 3]").double()
    _, slope = _derivative(activation, grid(-5.0, 5.0, 2001), "on [−5, 5]")

    slope = slope.double().nan_to_num(0.0, 0.0, 0.0)
    signs = torch.sign(slope)[slope.abs() >= DERIVATIVE_ZERO]
    sign_changes = int((signs[1:] != signs[:-1]).sum()) if signs.numel() > 1 else 0
    peak = wide.abs().nan_to_num(math.inf).max()
    curvature = ((near[2:] - 2 * near[1:-1] + near[:-2]) / (h * h)).abs().nan_to_num(math.inf).mean()
    return {
        "value_at_0": _finite(value_0.item()),
        "slope_at_0": _finite(slope_0.item()),
        "growth_pos": _finite(far[0].item() / 1e3, GROWTH_CLIP),
        "growth_neg": _finite(far[1].item() / -1e3, GROWTH_CLIP),
        "sign_changes": sign_changes,
        "monotone": sign_changes == 0,
        "bounded": bool(peak < BOUNDED_BELOW),
        "mean_curvature": max(_finite(curvature.item()), 0.0),
    }


# --------------------------------------------------------------------------------------------
# All of them
# --------------------------------------------------------------------------------------------

def run_probes(activation: Activation, dtype: torch.dtype = torch.float32,
               budget: ProbeBudget | None = None) -> dict[str, Any]:
    """All probes; raises ProbeFailure on the first that the activation fails.

    Codes, in the order checked: runtime_error, bad_output, bad_shape, non_finite, no_gradient,
    non_finite_gradient, zero_gradient, over_flop_budget, over_memory_budget, batch_dependent
    (a later check can still raise runtime_error, bad_output or bad_shape if the candidate misbehaves
    only on its inputs). `budget=None` is `ProbeBudget()`.

    Returns {"pointwise", "flops_per_element", "backward_flops_per_element",
    "saved_bytes_per_element", "fingerprint", "descriptors", "ops"}; the budgets are compared with
    the reported (rounded to 0.01) numbers.
    """
    budget = budget if budget is not None else ProbeBudget()
    x = probe_points(dtype).requires_grad_(True)
    with torch.enable_grad():
        y = _call(activation, x, "on the probe points")
        if not torch.isfinite(y).all():
            bad = x[~torch.isfinite(y)][:3].tolist()
            raise ProbeFailure("non_finite", f"non-finite output at inputs such as {bad}")
        if not y.requires_grad:
            raise ProbeFailure("no_gradient", "the output does not depend differentiably on the input")
        try:
            (gradient,) = torch.autograd.grad(y.sum(), x, allow_unused=True)
        except Exception as exc:
            raise ProbeFailure(exception_code(exc), f"the backward pass raised {type(exc).__name__}: {exc}") from None
    if gradient is None:
        raise ProbeFailure("no_gradient", "the output does not depend differentiably on the input")
    if not torch.isfinite(gradient).all():
        bad = x[~torch.isfinite(gradient)][:3].tolist()
        raise ProbeFailure("non_finite_gradient", f"non-finite gradient at inputs such as {bad}")
    if not gradient.abs().gt(0).any():
        raise ProbeFailure("zero_gradient", "the gradient is zero everywhere on the probe set")

    cost = measure_cost(activation, dtype=dtype)
    flops = round(cost.flops_per_element, 2)
    saved = round(cost.saved_bytes_per_element, 2)
    if flops > budget.max_flops_per_element:
        raise ProbeFailure("over_flop_budget",
                           f"the forward pass costs {flops:g} weighted elementwise ops per element (a "
                           f"transcendental op counts {TRANSCENDENTAL_WEIGHT}), over the budget of "
                           f"{budget.max_flops_per_element:g}; raise probes.max_flops_per_element to allow it")
    if saved > budget.max_saved_bytes_per_element:
        raise ProbeFailure("over_memory_budget",
                           f"the activation saves {saved:g} bytes per element for its backward pass (the "
                           f"input not counted), over the budget of {budget.max_saved_bytes_per_element:g}; "
                           f"raise probes.max_saved_bytes_per_element to allow it")
    pointwise = is_pointwise(activation, dtype=dtype)
    if not pointwise and not budget.allow_batch_dependent:
        raise ProbeFailure("batch_dependent",
                           "the output for one element depends on other elements of the tensor (batch "
                           "statistics such as mean or std, softmax, roll): in the paper such functions won "
                           "the lab, where the statistics come from one small task's batch, and failed "
                           "downstream; set probes.allow_batch_dependent to true to allow them (they are "
                           "then scored per example)")
    try:
        shape = descriptors(activation)
    except ProbeFailure:
        if dtype == torch.float64:
            raise
        shape = descriptors(activation, dtype)  # a candidate that only works in the lab's dtype
    return {"pointwise": pointwise, "flops_per_element": flops,
            "backward_flops_per_element": round(cost.backward_flops_per_element, 2),
            "saved_bytes_per_element": saved, "fingerprint": fingerprint(activation),
            "descriptors": shape, "ops": cost.ops, "curve": curve(activation)}
