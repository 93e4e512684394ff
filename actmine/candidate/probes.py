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
first that the candidate fails. The parts live beside this module: `probe_calls.py` (the checked
call, purity, `ProbeFailure` and its codes), `cost.py` (the operation counter, saved bytes) and
`descriptors.py` (fingerprint, curve, descriptors); their names are importable from here too. `TrainingCheck` is handed to `train_ensemble`, which calls it on a
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

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import torch

from .cost import COST_SIZE as COST_SIZE
from .cost import TRANSCENDENTAL_WEIGHT as TRANSCENDENTAL_WEIGHT
from .cost import _FREE_OPS as _FREE_OPS
from .cost import _TRANSCENDENTAL_OPS as _TRANSCENDENTAL_OPS
from .cost import Cost as Cost
from .cost import _OperationCounter as _OperationCounter
from .cost import backward_flops_per_element as backward_flops_per_element
from .cost import flops_per_element as flops_per_element
from .cost import measure_cost as measure_cost
from .cost import saved_bytes_per_element as saved_bytes_per_element
from .descriptors import CURVE_POINTS as CURVE_POINTS
from .descriptors import DESCRIPTOR_CLIP as DESCRIPTOR_CLIP
from .descriptors import FINGERPRINT_ATOL as FINGERPRINT_ATOL
from .descriptors import FINGERPRINT_DIGITS as FINGERPRINT_DIGITS
from .descriptors import curve as curve
from .descriptors import curve_points as curve_points
from .descriptors import descriptors as descriptors
from .descriptors import fingerprint as fingerprint
from .probe_calls import MESSAGE_LIMIT as MESSAGE_LIMIT
from .probe_calls import PROBE_CODES as PROBE_CODES
from .probe_calls import SAME_ATOL as SAME_ATOL
from .probe_calls import SAME_RTOL as SAME_RTOL
from .probe_calls import (
    _MODIFIES_INPUT,
    _all_same,
    _call,
    _examples,
    _pure_call,
    _refuse_modified_input,
    _same,
    _shape_text,
)
from .probe_calls import Activation as Activation
from .probe_calls import ProbeFailure as ProbeFailure
from .probe_calls import cap_message as cap_message
from .probe_calls import check_purity as check_purity
from .probe_calls import exception_code as exception_code

# The tensor shape training passes (models × batch × hidden), when the caller does not say: the
# probes always look at one 3-D tensor as large as a small lab's.
DEFAULT_TRAINING_SHAPE = (4, 128, 64)
# Finite magnitudes beyond the probe set where the output must not be NaN (log-spaced, factor
# ~1.3 apart), and how far the gradient must not be NaN either (the rule in the module docstring).
FAR_DECADES = (4.5, 30.0)
FAR_MAGNITUDES = 200
FAR_GRADIENT_LIMIT = 1e10
# How many values of a training-shape tensor are compared with the same values as a 1-D tensor.
CONSISTENCY_POINTS = 997


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
            raise TypeError(
                f"probes.allow_batch_dependent must be true or false, "
                f"got {type(self.allow_batch_dependent).__name__} {self.allow_batch_dependent!r}"
            )

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
            raise ProbeFailure(
                "non_finite",
                f"NaN output at inputs such as {_examples(x, nan)}, beyond the ±3e4 of the probe "
                f"set: no activation of the library gives NaN at a finite input up to 1e30; guard the "
                f"expression (e.g. torch.clamp its argument) so that large inputs stay defined",
            )
        if y.requires_grad:
            try:
                (gradient,) = torch.autograd.grad(y.sum(), x, allow_unused=True)
            except Exception as exc:
                raise ProbeFailure(
                    exception_code(exc), f"the backward pass raised {type(exc).__name__} {where}: {exc}"
                ) from None
    if gradient is not None:
        bad = gradient.isnan() & (x.detach().abs() <= FAR_GRADIENT_LIMIT)
        if bad.any():
            raise ProbeFailure(
                "non_finite_gradient",
                f"NaN gradient at inputs such as {_examples(x, bad)}: no activation of the library "
                f"gives a NaN gradient at a finite input up to 1e10",
            )
    with torch.no_grad():  # its value at ±inf is IEEE's business (sin(inf) is NaN); it must run
        _call(activation, torch.tensor([math.inf, -math.inf], dtype=dtype), "at x = ±inf")


def _shape_input(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Pre-activation-like values (normal, standard deviation 2) of the given shape, always the same."""
    generator = torch.Generator().manual_seed(3)
    return torch.randn(tuple(shape), generator=generator, dtype=dtype) * 2


def probe_training_shape(activation: Activation, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> bool:
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
        raise ProbeFailure(
            "inconsistent_function",
            f"the activation computes another function {where} than on the same values as a "
            f"1-D tensor (at inputs such as {_examples(flat, ~agree)}): it must not depend on the "
            f"tensor's shape, size or number of dimensions",
        )
    return True


def is_pointwise(
    activation: Activation,
    atol: float = 1e-5,
    dtype: torch.dtype = torch.float32,
    shapes: tuple[tuple[int, ...], ...] = (),
) -> bool:
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
        alone = torch.cat([_call(activation, x[i : i + 1], where) for i in range(len(x))])
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


# --------------------------------------------------------------------------------------------
# All of them
# --------------------------------------------------------------------------------------------


def _check_probe_points(activation: Activation, dtype: torch.dtype) -> None:
    """Purity, then finite outputs and finite, not all zero gradients on the probe points."""
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


def run_probes(
    activation: Activation,
    dtype: torch.dtype = torch.float32,
    budget: ProbeBudget | None = None,
    shapes: tuple[tuple[int, ...], ...] | None = None,
) -> dict[str, Any]:
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
    _check_probe_points(activation, dtype)
    check_far_inputs(activation, dtype)
    # The most expensive of the shapes counts: training pays for the shape it passes.
    costs = [measure_cost(activation, dtype=dtype)] + [
        measure_cost(activation, dtype=dtype, shape=shape) for shape in shapes
    ]
    cost = max(costs, key=lambda c: c.flops_per_element)
    flops = round(cost.flops_per_element, 2)
    backward_flops = round(max(c.backward_flops_per_element for c in costs), 2)
    saved = round(max(c.saved_bytes_per_element for c in costs), 2)
    if flops > budget.max_flops_per_element:
        index = costs.index(cost)
        where = f" on a {_shape_text(shapes[index - 1])} tensor (the training shape)" if index else ""
        raise ProbeFailure(
            "over_flop_budget",
            f"the forward pass costs {flops:g} weighted elementwise ops per element{where} (a "
            f"transcendental op counts {TRANSCENDENTAL_WEIGHT}), over the budget of "
            f"{budget.max_flops_per_element:g}; raise probes.max_flops_per_element to allow it",
        )
    if saved > budget.max_saved_bytes_per_element:
        raise ProbeFailure(
            "over_memory_budget",
            f"the activation saves {saved:g} bytes per element for its backward pass (the "
            f"input not counted), over the budget of {budget.max_saved_bytes_per_element:g}; "
            f"raise probes.max_saved_bytes_per_element to allow it",
        )
    pointwise = is_pointwise(activation, dtype=dtype, shapes=shapes)
    if not pointwise and not budget.allow_batch_dependent:
        raise ProbeFailure(
            "batch_dependent",
            "the output for one element depends on other elements of the tensor (batch "
            "statistics such as mean or std, softmax, roll): in the paper such functions won "
            "the lab, where the statistics come from one small task's batch, and failed "
            "downstream; set probes.allow_batch_dependent to true to allow them (they are "
            "then scored per example)",
        )
    try:
        shape_descriptors = descriptors(activation)
    except ProbeFailure:
        if dtype == torch.float64:
            raise
        shape_descriptors = descriptors(activation, dtype)  # a candidate that only works in the lab's dtype
    return {
        "pointwise": pointwise,
        "flops_per_element": flops,
        "backward_flops_per_element": backward_flops,
        "saved_bytes_per_element": saved,
        "fingerprint": fingerprint(activation),
        "descriptors": shape_descriptors,
        "ops": cost.ops,
        "curve": curve(activation),
    }


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
            parts.append(
                (flat_in, output.reshape(-1)[-CONSISTENCY_POINTS:], "on values of the training tensor as a 1-D tensor")
            )
            for values, expected, what in parts:
                given = values.clone()
                got = _pure_call(self.activation, given, f"{what} {where}")
                agree = _same(got, expected.to(got.dtype))
                if not agree.all():
                    raise ProbeFailure(
                        "inconsistent_function",
                        f"the activation {what} {where} gives other values than in the training "
                        f"call itself (at inputs such as {_examples(values, ~agree)}): it must compute "
                        f"the same function whatever the tensor's shape, size or origin",
                    )
            recomputed = _call(self.activation, curve_points(), f"on the curve's points {where}").double()
            recomputed = recomputed.nan_to_num(0.0, DESCRIPTOR_CLIP, -DESCRIPTOR_CLIP).clamp(
                -DESCRIPTOR_CLIP, DESCRIPTOR_CLIP
            )
            agree = _same(recomputed, self.reference)
            if not agree.all():
                raise ProbeFailure(
                    "inconsistent_function",
                    f"{where}, the activation no longer computes the function the probes recorded "
                    f"(at inputs such as {_examples(curve_points(), ~agree)}): it must not change "
                    f"between calls",
                )
