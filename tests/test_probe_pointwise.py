"""Tests of the batch-dependence probes of actmine.candidate.probes: `is_pointwise` (the 8×32 check
and its tolerances), `probe_training_shape` (the input it draws, the elements it changes, what its
messages say), and the derivative `curve` records for a function without a gradient in x.

Each test checks a behaviour the probes promise, with the expected values computed here from the
inputs the candidate was given (recorded by a wrapper), not copied from the code.
"""

from __future__ import annotations

import math

import pytest
import torch

from actmine.candidate import probes as P
from actmine.candidate.probes import ProbeFailure

from probe_cases import backward_raising


class _Recorder:
    """Wraps a function and records (a copy of) every input it is called with."""

    def __init__(self, fn=torch.tanh):
        self.fn = fn
        self.inputs: list[torch.Tensor] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.detach().clone())
        return self.fn(x)


class _RaisesOnCall:
    """tanh, except that its `n`-th call raises RuntimeError("call n"): says which call a message names."""

    def __init__(self, n: int):
        self.n = n
        self.calls = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.n:
            raise RuntimeError(f"call {self.n}")
        return torch.tanh(x)


def _is_pre_activation_like(x: torch.Tensor) -> bool:
    """Values drawn like a layer's pre-activations: normal, mean 0, standard deviation 2."""
    values = x.double().reshape(-1)
    return abs(float(values.mean())) < 0.4 and 1.7 < float(values.std()) < 2.3


# --------------------------------------------------------------------------------------------
# is_pointwise: the 8×32 check's inputs
# --------------------------------------------------------------------------------------------


def test_the_batch_check_calls_the_function_on_the_8x32_input_its_messages_name():
    """One full call, each row alone, the columns shuffled, the other rows changed, the other
    columns changed: all on the 8×32 input that the messages call "the 8×32 input"."""
    recorder = _Recorder()
    assert P.is_pointwise(recorder) is True
    full, *rest = recorder.inputs
    rows, (shuffled, rows_changed, columns_changed) = rest[:8], rest[8:]
    assert full.shape == (8, 32) and full.dtype == torch.float32
    assert _is_pre_activation_like(full)
    assert [tuple(r.shape) for r in rows] == [(1, 32)] * 8 and torch.equal(torch.cat(rows), full)
    assert torch.equal(shuffled.sort(dim=1).values, full.sort(dim=1).values)  # a column permutation
    assert not torch.equal(shuffled, full)
    assert torch.equal(rows_changed[0], full[0]) and (rows_changed[1:] != full[1:]).all()
    assert torch.equal(columns_changed[:, 0], full[:, 0]) and (columns_changed[:, 1:] != full[:, 1:]).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_every_probe_of_is_pointwise_is_in_the_dtype_asked(dtype):
    recorder = _Recorder()
    assert P.is_pointwise(recorder, dtype=dtype, shapes=((2, 3, 4),)) is True
    assert len(recorder.inputs) == 15 and {x.dtype for x in recorder.inputs} == {dtype}


def test_is_pointwise_draws_the_same_inputs_every_time():
    """A verdict must be reproducible: the inputs, the shuffle and the changed elements are fixed."""
    first, second = _Recorder(), _Recorder()
    P.is_pointwise(first, shapes=((3, 5, 7),))
    P.is_pointwise(second, shapes=((3, 5, 7),))
    assert len(first.inputs) == len(second.inputs) == 15
    assert all(torch.equal(a, b) for a, b in zip(first.inputs, second.inputs))


_BATCH_CHECK = "on the batch-dependence check's 8×32 input"


@pytest.mark.parametrize(
    "shape, n, where",
    [
        *[((2, 3, 4), n, _BATCH_CHECK) for n in range(1, 13)],  # full, 8 rows, shuffled, rows and columns changed
        ((2, 3, 4), 13, "on a 2×3×4 tensor (the training shape)"),
        ((2, 3, 4), 14, "on a 2×3×4 tensor (the training shape)"),  # the changed elements
        ((2, 3, 4), 15, "on 24 values of the training shape's tensor as a 1-D tensor"),
        ((5, 20, 12), 15, f"on {P.CONSISTENCY_POINTS} values of the training shape's tensor as a 1-D tensor"),
    ],
    ids=[f"call{n}" for n in range(1, 16)] + ["call15-large"],
)
def test_a_failing_call_says_which_probe_made_it(shape, n, where):
    with pytest.raises(ProbeFailure) as info:
        P.is_pointwise(_RaisesOnCall(n), shapes=(shape,))
    assert (info.value.code, str(info.value)) == (
        "runtime_error",
        f"the activation raised RuntimeError {where}: call {n}",
    )


# --------------------------------------------------------------------------------------------
# is_pointwise: which dependences it sees
# --------------------------------------------------------------------------------------------


def _normalised_when_large(dim):
    """x divided by its largest magnitude along `dim` (all of the tensor for None) where that exceeds
    10, else x: a guard against overflow that reads other elements, invisible on ordinary values."""

    def fn(x):
        peak = x.abs().amax() if dim is None else x.abs().amax(dim, keepdim=True)
        return torch.where(peak > 10, x / peak, x)

    return fn


@pytest.mark.parametrize("dim", [0, -1, None], ids=["over-the-batch", "over-the-row", "over-the-tensor"])
def test_a_dependence_only_on_large_values_elsewhere_is_seen(dim):
    """Changing the other elements must make them large: a function that reads them only when they
    are large is batch dependent (over the batch: only the other rows see it; over the row: only
    the other columns)."""
    assert P.is_pointwise(_normalised_when_large(dim)) is False


@pytest.mark.parametrize("shape", [(2, 3, 4), (4, 16, 32), (5, 20, 12)], ids=["2x3x4", "4x16x32", "5x20x12"])
def test_the_training_shape_probe_makes_the_changed_elements_large(shape):
    assert P.probe_training_shape(_normalised_when_large(None), shape) is False


def test_pointwise_functions_with_nan_outputs_are_pointwise():
    """NaN where the function is undefined (log of a negative) agrees with NaN."""
    assert P.is_pointwise(torch.log, shapes=((2, 3, 4),)) is True
    assert P.is_pointwise(lambda x: torch.where(x > 1, math.nan, x)) is True


def _offset_in_a_batch(offset):
    """0, plus `offset` when the tensor has more than one row: differs by exactly `offset` from the
    rows alone, and is 0 alone (so only the absolute tolerance can admit it)."""
    return lambda x: x * 0 + (offset if x.shape[0] > 1 else 0.0)


@pytest.mark.parametrize(
    "offset, atol, pointwise",
    [
        (1e-6, 2e-6, True),
        (1e-6, 5e-7, False),
        (5e-6, None, True),
        (2e-5, None, False),  # the default atol is 1e-5
    ],
    ids=["below-atol", "above-atol", "below-default", "above-default"],
)
def test_differences_below_the_absolute_tolerance_are_float_noise(offset, atol, pointwise):
    kwargs = {} if atol is None else {"atol": atol}
    assert P.is_pointwise(_offset_in_a_batch(offset), **kwargs) is pointwise


@pytest.mark.parametrize("relative, pointwise", [(5e-5, True), (2e-4, False)], ids=["5e-5", "2e-4"])
def test_relative_differences_below_1e_4_are_float_noise(relative, pointwise):
    """x·(1 + relative) in a batch, x on a row alone: a relative difference up to 1e-4 (float kernels
    differ by an ulp or so between tensor sizes) reads as the same function, a larger one does not."""

    def scaled_in_a_batch(x):
        return x * (1 + relative) if x.shape[0] > 1 else x

    assert P.is_pointwise(scaled_in_a_batch, atol=0.0) is pointwise


# --------------------------------------------------------------------------------------------
# probe_training_shape: the input, the changed elements, the 1-D values
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_the_training_shape_probe_draws_pre_activation_like_values_half_of_them_changed(dtype):
    shape = (4, 16, 32)
    recorder = _Recorder()
    assert P.probe_training_shape(recorder, shape, dtype) is True
    x, changed, flat = recorder.inputs
    assert x.shape == changed.shape == shape and {x.dtype, changed.dtype, flat.dtype} == {dtype}
    assert _is_pre_activation_like(x)
    moved = changed != x
    assert 0.45 < float(moved.double().mean()) < 0.55  # about half of the elements
    for axis in range(len(shape)):  # every slice holds changed elements
        others = tuple(a for a in range(len(shape)) if a != axis)
        assert moved.any(dim=others).all()
    assert torch.equal(flat, x.reshape(-1)[-P.CONSISTENCY_POINTS :])


def test_the_training_shape_probe_draws_the_same_tensors_every_time():
    first, second = _Recorder(), _Recorder()
    P.probe_training_shape(first, (3, 10, 8))
    P.probe_training_shape(second, (3, 10, 8))
    assert len(first.inputs) == len(second.inputs) == 3
    assert all(torch.equal(a, b) for a, b in zip(first.inputs, second.inputs))


def test_a_change_of_the_input_on_the_training_shape_says_where():
    def clamps_3d_in_place(x):
        if x.dim() == 3:
            x.clamp_(-1, 1)
        return torch.tanh(x)

    with pytest.raises(ProbeFailure) as info:
        P.probe_training_shape(clamps_3d_in_place, (2, 3, 4))
    assert info.value.code == "modifies_input"
    assert str(info.value).startswith(
        "the activation changed its input in place on a 2×3×4 tensor (the training "
        "shape) (an in-place method such as x.mul_()"
    )


def test_another_function_on_the_training_shape_names_the_inputs_where_it_differs():
    """tanh on the training shape, but 0 above 3 on a 1-D tensor: the message lists the first
    three of the 1-D values above 3, rounded to 6 significant digits."""
    recorder = _Recorder(lambda x: torch.tanh(x) if x.dim() > 1 else torch.where(x > 3, 0.0, torch.tanh(x)))
    with pytest.raises(ProbeFailure) as info:
        P.probe_training_shape(recorder, (4, 16, 32))
    flat = recorder.inputs[-1]
    examples = [float(f"{v:.6g}") for v in flat[flat > 3][:3].double().tolist()]
    assert len(examples) == 3
    assert (info.value.code, str(info.value)) == (
        "inconsistent_function",
        f"the activation computes another function on a 4×16×32 tensor (the training shape) than on the same "
        f"values as a 1-D tensor (at inputs such as {examples}): it must not depend on the tensor's shape, size "
        f"or number of dimensions",
    )


# --------------------------------------------------------------------------------------------
# The derivative the curve records
# --------------------------------------------------------------------------------------------


def test_a_function_differentiable_but_not_in_x_has_a_zero_derivative():
    """Its output requires grad (through a parameter) but does not depend on x: f' reads as 0."""
    weight = torch.ones(1, requires_grad=True)
    record = P.curve(lambda x: x.detach() * weight)
    assert record["dy"] == [0.0] * P.CURVE_POINTS
    assert record["y"] == pytest.approx(P.curve_points().tolist())


@pytest.mark.parametrize(
    "error, code",
    [(RuntimeError("backward exploded"), "runtime_error"), (MemoryError("no room"), "memory_limit")],
    ids=["runtime-error", "memory-error"],
)
def test_a_failing_backward_pass_of_the_curve_names_the_exception(error, code):
    with pytest.raises(ProbeFailure) as info:
        P.curve(backward_raising(error))
    assert (info.value.code, str(info.value)) == (
        code,
        f"the backward pass raised {type(error).__name__} on the curve's points: {error}",
    )
