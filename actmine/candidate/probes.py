"""Cheap checks of an activation before any training, and one during it.

- purity: the same input gives the same output twice, with and without gradient tracking, and the
  input is left as it was (`nondeterministic`, `inconsistent_function`, `modifies_input`);
- shape and dtype: the output has the input's shape and dtype;
- finiteness: finite outputs and gradients on a probe set from tiny magnitudes to ±3e4, and no NaN
  beyond it (the rule below);
- cost: weighted elementwise operations per input element in the forward and in the backward
  pass, counted by a dispatch-mode operator counter (torch's FlopCounterMode counts only matmuls
  and convolutions, zero for elementwise ops), with transcendental functions weighted more;
  measured on a 1-D input and on every tensor shape training will pass (`shapes`), and the most
  expensive of them counts: a candidate that does more work on large or 3-D tensors pays for it;
- memory: bytes that the activation saves for its backward pass, per input element;
- batch dependence: whether one element's output depends on the other elements of the tensor,
  checked on a small 2-D batch and on each training shape; and on each training shape, whether
  the function is the same one the 1-D probes saw (`inconsistent_function` if it branches on
  `x.dim()`, `x.numel()` or `x.shape` to compute something else);
- descriptors: a few numbers that place the function's shape on the search's diversity grid;
- fingerprint: a hash of the outputs on fixed points, so that two programs that compute the same
  function are recognised as one whatever their source text.

`run_probes` runs them all under a `ProbeBudget` and raises `ProbeFailure` (with a `code`) on the
first that the candidate fails. `TrainingCheck` is handed to `train_ensemble`, which calls it on a
few of the activation's calls in training: the candidate must compute there the function that the
probes recorded (see its docstring).

The finiteness rule beyond the probe set (measured on every pointwise activation of the library,
in float32 and float64):

- finite inputs with 3e4 < |x| ≤ 1e30 (`FAR_POINTS`, log-spaced so that no band wider than a
  factor of ~1.3 is skipped): the output must not be NaN. ±inf is allowed there (x² overflows
  float32 near 2e19; gelu(3e38) is inf), NaN is not: no library activation gives NaN at a finite
  input up to 1e30 (gelu_sinc_perturbation does at 3e38 in float32, which is why the range stops
  at 1e30);
- the same inputs up to |x| ≤ 1e10 (`FAR_GRADIENT_LIMIT`): the gradient must not be NaN. Beyond
  that float32 arithmetic itself makes NaN gradients (x³ overflows in GELU's tanh form near 7e12,
  and inf·0 follows; gelu_tanh, gelu_sine, gelu_sinc_perturbation and gmtu all give NaN gradients
  at 1e20 in float32);
- ±inf: the activation must run and return a tensor of the input's shape and dtype; its value
  there is not checked, because IEEE arithmetic makes NaN of sin(±inf) and of ∞·0 (sin, snake,
  gelu_sine, gelu_sinc_perturbation, silu, mish, gelu at −inf: most of the library).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Mapping

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from actmine.language import ops as _language

Activation = Callable[[torch.Tensor], torch.Tensor]

# The weights come from the one table of the candidate language (`actmine.language.ops.OPS`): each
# op names the aten kernels it dispatches and what they weigh per element.
# Kernels that move no data or only allocate it (views, allocations): they cost nothing per element.
# Copies and dtype conversions (clone, _to_copy, copy_, lift_fresh_copy) are not among them: they
# move every element and weigh 1 per element of their output.
_FREE_OPS: frozenset[str] = _language.FREE_ATEN
# Kernels that evaluate a transcendental function (a polynomial or rational approximation in libm,
# many multiply-adds each), forward and fused backward (gelu_backward, ...).
_TRANSCENDENTAL_OPS: frozenset[str] = _language.TRANSCENDENTAL_ATEN
TRANSCENDENTAL_WEIGHT = _language.TRANSCENDENTAL_WEIGHT

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
# The tensor shape training passes (models × batch × hidden), when the caller does not say: the
# probes always look at one 3-D tensor as large as a small lab's.
DEFAULT_TRAINING_SHAPE = (4, 128, 64)
# Finite magnitudes beyond the probe set where the output must not be NaN (log-spaced, factor
# ~1.3 apart), and how far the gradient must not be NaN either (the rule in the module docstring).
FAR_DECADES = (4.5, 30.0)
FAR_MAGNITUDES = 200
FAR_GRADIENT_LIMIT = 1e10
# Every "the same function" comparison (two calls, two shapes, training against the probes):
# float kernels differ by an ulp or so between tensor sizes (vectorised vs scalar tails).
SAME_RTOL = 1e-4
SAME_ATOL = 1e-5
# How many values of a training-shape tensor are compared with the same values as a 1-D tensor.
CONSISTENCY_POINTS = 997
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


_MODIFIES_INPUT = ("the activation changed its input in place {where} (an in-place method such as x.mul_() or "
                   "x.clamp_(), an item assignment, or an out= argument): in training that corrupts the layer's "
                   "values and gradients; compute a new tensor instead (x * 2, not x.mul_(2))")


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
        raise ProbeFailure("nondeterministic",
                           f"two calls on the same input gave different outputs {where}, at inputs such as "
                           f"{_examples(x, ~agree)}: the activation must be a function of its input alone (no "
                           f"randomness, no uninitialised memory such as torch.empty_like, no state kept "
                           f"between calls)")
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
        raise ProbeFailure("inconsistent_function",
                           f"the output differs when gradients are tracked {where}, at inputs such as "
                           f"{_examples(x, ~agree)}: training would use one function and scoring another")
    return untracked


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


def measure_cost(activation: Activation, size: int = COST_SIZE, dtype: torch.dtype = torch.float32,
                 shape: tuple[int, ...] | None = None) -> Cost:
    """Forward and backward operation counts and saved bytes on a random input of `size` elements
    (a 1-D tensor), or of the given `shape` (which then sets the size).

    Saved bytes: every tensor that autograd keeps for the backward pass goes through a
    `saved_tensors_hooks` pack hook, which records the `untyped_storage().nbytes()` of its storage;
    a storage saved twice (or by two views) counts once, and the input's own storage is not
    counted (it is kept alive by the previous layer anyway). ReLU saves its output (4 B/element
    in float32), GELU only its input (0).
    """
    generator = torch.Generator().manual_seed(2)
    shape = tuple(shape) if shape is not None else (size,)
    size = math.prod(shape)
    # drawn in the probe's dtype: a float64 draw of a training-sized tensor costs more than the probe
    x = torch.randn(shape, generator=generator, dtype=dtype).requires_grad_(True)
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
            y = _call(activation, x, f"while measuring its cost on {_shape_text(shape)} elements")
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


def far_points(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """FAR_MAGNITUDES log-spaced magnitudes from 10^4.5 to 10^30, both signs (see the module docstring)."""
    magnitudes = torch.logspace(*FAR_DECADES, FAR_MAGNITUDES, dtype=torch.float64)
    return torch.cat([magnitudes, -magnitudes]).to(dtype)


def check_far_inputs(activation: Activation, dtype: torch.dtype = torch.float32) -> None:
    """The finiteness rule beyond the probe set (module docstring): no NaN output at finite inputs up
    to ±1e30, no NaN gradient up to ±1e10, and ±inf runs. Raises ProbeFailure('non_finite' or
    'non_finite_gradient', or the code of an exception or a wrongly shaped result)."""
    x = far_points(dtype).requires_grad_(True)
    where = "on the far probe points (3e4 < |x| ≤ 1e30)"
    gradient = None
    with torch.enable_grad():
        y = _call(activation, x, where)
        nan = y.detach().isnan()
        if nan.any():
            raise ProbeFailure("non_finite",
                               f"NaN output at inputs such as {_examples(x, nan)}, beyond the ±3e4 of the probe "
                               f"set: no activation of the library gives NaN at a finite input up to 1e30; guard the "
                               f"expression (e.g. torch.clamp its argument) so that large inputs stay defined")
        if y.requires_grad:
            try:
                (gradient,) = torch.autograd.grad(y.sum(), x, allow_unused=True)
            except Exception as exc:
                raise ProbeFailure(exception_code(exc), f"the backward pass raised {type(exc).__name__} {where}: "
                                                        f"{exc}") from None
    if gradient is not None:
        bad = gradient.isnan() & (x.detach().abs() <= FAR_GRADIENT_LIMIT)
        if bad.any():
            raise ProbeFailure("non_finite_gradient",
                               f"NaN gradient at inputs such as {_examples(x, bad)}: no activation of the library "
                               f"gives a NaN gradient at a finite input up to 1e10")
    with torch.no_grad():  # its value at ±inf is IEEE's business (sin(inf) is NaN); it must run
        _call(activation, torch.tensor([math.inf, -math.inf], dtype=dtype), "at x = ±inf")


def _shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(str(n) for n in shape)


def _shape_input(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Pre-activation-like values (normal, standard deviation 2) of the given shape, always the same."""
    generator = torch.Generator().manual_seed(3)
    return torch.randn(tuple(shape), generator=generator, dtype=dtype) * 2


def probe_training_shape(activation: Activation, shape: tuple[int, ...],
                         dtype: torch.dtype = torch.float32) -> bool:
    """The probes on a tensor of a shape that training passes; True when the function is pointwise there.

    - batch dependence: about half of the elements (a fixed random mask) are changed, and the
      others' outputs must not move. Any dependence on other elements — statistics over the whole
      tensor, one model, one row or one column, a roll, a sort, a cumulative sum — is seen, whatever
      the axis: every slice of the tensor holds changed elements;
    - the input is left unchanged (`modifies_input`);
    - for a pointwise function: the values are those of the same inputs as a 1-D tensor, as the
      probe points are (`inconsistent_function`): a candidate that branches on `x.dim()`,
      `x.numel()` or `x.shape` is probed as one function and would be trained as another.

    Three calls on a tensor of the training shape (the cost probe makes the fourth): a calls-twice
    determinism check here would double that, and `TrainingCheck` compares training's own calls
    with fresh ones anyway.
    """
    x = _shape_input(shape, dtype)
    where = f"on a {_shape_text(shape)} tensor (the training shape)"
    mask = torch.rand(tuple(shape), generator=torch.Generator().manual_seed(4)) < 0.5
    with torch.no_grad():
        given = x.clone()
        y = _call(activation, given, where)
        _refuse_modified_input(x, given, where)
        changed = _call(activation, torch.where(mask, x * 5 + 3, x), where)
    # the unchanged positions of both outputs agree (compared in place: boolean indexing costs more)
    if not _all_same(torch.where(mask, changed, y), changed):
        return False
    flat = x.reshape(-1)[-CONSISTENCY_POINTS:].clone()
    with torch.no_grad():
        alone = _call(activation, flat, f"on {flat.numel()} values of the training shape's tensor as a 1-D tensor")
    agree = _same(alone, y.reshape(-1)[-CONSISTENCY_POINTS:])
    if not agree.all():
        raise ProbeFailure("inconsistent_function",
                           f"the activation computes another function {where} than on the same values as a "
                           f"1-D tensor (at inputs such as {_examples(flat, ~agree)}): it must not depend on the "
                           f"tensor's shape, size or number of dimensions")
    return True


def is_pointwise(activation: Activation, atol: float = 1e-5, dtype: torch.dtype = torch.float32,
                 shapes: tuple[tuple[int, ...], ...] = ()) -> bool:
    """True when each output element depends only on its own input element.

    Compares f on a batch with f on each row alone and with f on a shuffled and a rescaled-others
    batch: a batch-statistics function (mean, std, FFT, roll over the tensor) changes in one of them.
    Then, on a tensor of each of `shapes` (the shapes training passes), `probe_training_shape`:
    a candidate that uses batch statistics only on 3-D or large tensors is seen there, and one that
    computes another pointwise function there raises ProbeFailure('inconsistent_function').
    A candidate that raises on these inputs fails with ProbeFailure('runtime_error'),
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

    small_batch = close(y, alone) and close(y, shuffled) and close(y[0], first_row) and close(y[:, 0], first_column)
    return small_batch and all(probe_training_shape(activation, shape, dtype) for shape in shapes)


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


def curve_points() -> torch.Tensor:
    """The curve's inputs: CURVE_POINTS points on [−6, 6] in float32."""
    return torch.linspace(-6, 6, CURVE_POINTS, dtype=torch.float32)


def curve(activation: Activation) -> dict[str, list[float]]:
    """f and f' on [−6, 6] (121 points), as plain numbers: reports and plots draw a candidate
    from this record, so they never have to run its (untrusted) code themselves."""
    x = curve_points()
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
               budget: ProbeBudget | None = None,
               shapes: tuple[tuple[int, ...], ...] | None = None) -> dict[str, Any]:
    """All probes; raises ProbeFailure on the first that the activation fails.

    `shapes`: the tensor shapes training will pass the activation (the lab's models × batch ×
    hidden); `None` is (DEFAULT_TRAINING_SHAPE,). Cost, batch dependence and consistency are
    probed on each of them as well as on the 1-D probe points, and the cost per element reported
    and compared with the budget is the largest measured.

    Codes, in the order checked: runtime_error, bad_output, bad_shape, modifies_input,
    nondeterministic, inconsistent_function (on the probe points), non_finite, no_gradient,
    non_finite_gradient, zero_gradient, then the same two finiteness codes beyond the probe set,
    over_flop_budget, over_memory_budget, then modifies_input and inconsistent_function on the
    training shapes, batch_dependent (a later check can still raise
    runtime_error, bad_output or bad_shape if the candidate misbehaves only on its inputs).
    `budget=None` is `ProbeBudget()`.

    Returns {"pointwise", "flops_per_element", "backward_flops_per_element",
    "saved_bytes_per_element", "fingerprint", "descriptors", "ops", "curve"}; the budgets are
    compared with the reported (rounded to 0.01) numbers.
    """
    budget = budget if budget is not None else ProbeBudget()
    shapes = tuple(tuple(shape) for shape in (shapes if shapes is not None else (DEFAULT_TRAINING_SHAPE,)))
    points = probe_points(dtype)
    check_purity(activation, points, "on the probe points")
    x = points.clone().requires_grad_(True)
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
    check_far_inputs(activation, dtype)

    # The most expensive of the shapes counts: training pays for the shape it passes.
    costs = [measure_cost(activation, dtype=dtype)] + [measure_cost(activation, dtype=dtype, shape=shape)
                                                       for shape in shapes]
    cost = max(costs, key=lambda c: c.flops_per_element)
    flops = round(cost.flops_per_element, 2)
    backward_flops = round(max(c.backward_flops_per_element for c in costs), 2)
    saved = round(max(c.saved_bytes_per_element for c in costs), 2)
    if flops > budget.max_flops_per_element:
        index = costs.index(cost)
        where = f" on a {_shape_text(shapes[index - 1])} tensor (the training shape)" if index else ""
        raise ProbeFailure("over_flop_budget",
                           f"the forward pass costs {flops:g} weighted elementwise ops per element{where} (a "
                           f"transcendental op counts {TRANSCENDENTAL_WEIGHT}), over the budget of "
                           f"{budget.max_flops_per_element:g}; raise probes.max_flops_per_element to allow it")
    if saved > budget.max_saved_bytes_per_element:
        raise ProbeFailure("over_memory_budget",
                           f"the activation saves {saved:g} bytes per element for its backward pass (the "
                           f"input not counted), over the budget of {budget.max_saved_bytes_per_element:g}; "
                           f"raise probes.max_saved_bytes_per_element to allow it")
    pointwise = is_pointwise(activation, dtype=dtype, shapes=shapes)
    if not pointwise and not budget.allow_batch_dependent:
        raise ProbeFailure("batch_dependent",
                           "the output for one element depends on other elements of the tensor (batch "
                           "statistics such as mean or std, softmax, roll): in the paper such functions won "
                           "the lab, where the statistics come from one small task's batch, and failed "
                           "downstream; set probes.allow_batch_dependent to true to allow them (they are "
                           "then scored per example)")
    try:
        shape_descriptors = descriptors(activation)
    except ProbeFailure:
        if dtype == torch.float64:
            raise
        shape_descriptors = descriptors(activation, dtype)  # a candidate that only works in the lab's dtype
    return {"pointwise": pointwise, "flops_per_element": flops, "backward_flops_per_element": backward_flops,
            "saved_bytes_per_element": saved, "fingerprint": fingerprint(activation),
            "descriptors": shape_descriptors, "ops": cost.ops, "curve": curve(activation)}


# --------------------------------------------------------------------------------------------
# During training
# --------------------------------------------------------------------------------------------

class TrainingCheck:
    """Checks, on a few of the activation's calls in training, that it computes the function the
    probes saw: `train_ensemble(..., check=TrainingCheck(...))` calls it with a call's input, its
    output, where the call was, and whether the call changed its input in place.

    The probes see tensors of their own making; a candidate could tell them from training's (a
    call counter, gradient tracking, the values' range). So on the real pre-activation tensor of
    a training step, of the final scoring pass, it checks:

    - the call did not change its input in place (`modifies_input`; `train_ensemble` reads the
      tensor's version counter, so nothing is copied);
    - for a pointwise function: the activation on a sub-batch (a (1, 5, H) slice: another shape)
      and on 997 of the values as a 1-D tensor gives the values of the training call
      (`inconsistent_function`), twice the same (`nondeterministic`);
    - for a pointwise function: the activation on the curve's points gives the curve the probes
      recorded (`inconsistent_function`): the reports draw and the fingerprint names that function.

    Each check is a few calls on small tensors, on the few steps `train_ensemble` picks
    (`check_steps`): a negligible part of a training. A failure raises ProbeFailure, which the lab
    records at stage `train`.
    """

    SUB_BATCH_ROWS = 5

    def __init__(self, activation: Activation, reference_curve: Mapping[str, Any], pointwise: bool = True):
        self.activation = activation
        self.reference = torch.tensor(reference_curve["y"], dtype=torch.float64)
        self.pointwise = pointwise
        self.checked = 0  # calls checked, for tests and messages

    def __call__(self, before: torch.Tensor, output: Any, where: str, modified_in_place: bool = False) -> None:
        self.checked += 1
        if modified_in_place:
            raise ProbeFailure("modifies_input", _MODIFIES_INPUT.format(where=where))
        if not self.pointwise:
            return
        if not isinstance(output, torch.Tensor) or output.shape != before.shape:
            return  # the training itself fails on it, with the candidate's own error
        output = output.detach()
        with torch.no_grad():
            parts = []
            if before.dim() >= 2:  # the first model's first rows: (1, …, 5, H)
                index = (slice(0, 1),) * (before.dim() - 2) + (slice(0, self.SUB_BATCH_ROWS),)
                parts.append((before[index], output[index], "on a sub-batch of the training tensor"))
            flat_in = before.reshape(-1)[-CONSISTENCY_POINTS:]
            parts.append((flat_in, output.reshape(-1)[-CONSISTENCY_POINTS:],
                          "on values of the training tensor as a 1-D tensor"))
            for values, expected, what in parts:
                given = values.clone()
                got = _pure_call(self.activation, given, f"{what} {where}")
                agree = _same(got, expected.to(got.dtype))
                if not agree.all():
                    raise ProbeFailure("inconsistent_function",
                                       f"the activation {what} {where} gives other values than in the training "
                                       f"call itself (at inputs such as {_examples(values, ~agree)}): it must compute "
                                       f"the same function whatever the tensor's shape, size or origin")
            recomputed = _call(self.activation, curve_points(), f"on the curve's points {where}").double()
            recomputed = recomputed.nan_to_num(0.0, DESCRIPTOR_CLIP, -DESCRIPTOR_CLIP).clamp(-DESCRIPTOR_CLIP,
                                                                                              DESCRIPTOR_CLIP)
            agree = _same(recomputed, self.reference)
            if not agree.all():
                raise ProbeFailure("inconsistent_function",
                                   f"{where}, the activation no longer computes the function the probes recorded "
                                   f"(at inputs such as {_examples(curve_points(), ~agree)}): it must not change "
                                   f"between calls")
