"""Tests of the probes that describe a candidate rather than refuse it (descriptors, curve,
fingerprint) and of the finiteness probe beyond the probe set (check_far_inputs): the messages
they show when the candidate fails on their points, and the boundaries their docstrings state."""

from __future__ import annotations

import math

import pytest
import torch

from actmine.candidate import descriptors as D
from actmine.candidate import probes as P
from actmine.candidate.probes import ProbeFailure

from probe_cases import backward_raising


def _raising_when(condition):
    """tanh, except that it raises ValueError('boom') on the inputs for which `condition(x)` holds:
    a candidate that fails on one of a probe's point sets only."""

    def activation(x):
        if condition(x):
            raise ValueError("boom")
        return torch.tanh(x)

    return activation


def _failure(probe, activation) -> ProbeFailure:
    with pytest.raises(ProbeFailure) as info:
        probe(activation)
    return info.value


# --------------------------------------------------------------------------------------------
# Messages: they tell the user (and the LLM that must fix the program) on which points it failed
# --------------------------------------------------------------------------------------------

_DESCRIPTOR_POINT_SETS = [
    ("at x = 0", lambda x: x.numel() == 1),
    ("at x = ±1e3", lambda x: x.numel() == 2),
    ("on [−100, 100]", lambda x: float(x.detach().max()) == 100.0),
    ("on [−3, 3]", lambda x: x.numel() == 601),
    ("on [−5, 5]", lambda x: x.requires_grad and x.numel() == 2001),
]


@pytest.mark.parametrize(
    "where, fails_on", _DESCRIPTOR_POINT_SETS, ids=["zero", "plus-minus-1e3", "wide", "near", "slope-grid"]
)
def test_descriptors_name_the_points_on_which_the_candidate_raised(where, fails_on):
    failure = _failure(P.descriptors, _raising_when(fails_on))
    assert (failure.code, str(failure)) == ("runtime_error", f"the activation raised ValueError {where}: boom")


@pytest.mark.parametrize(
    "probe, where",
    [(P.curve, "on the curve's points"), (P.fingerprint, "on the fingerprint's points")],
    ids=["curve", "fingerprint"],
)
def test_curve_and_fingerprint_name_their_points_when_the_candidate_raises(probe, where):
    failure = _failure(probe, _raising_when(lambda x: True))
    assert (failure.code, str(failure)) == ("runtime_error", f"the activation raised ValueError {where}: boom")


def test_the_far_check_names_infinity_when_the_candidate_raises_there():
    failure = _failure(P.check_far_inputs, _raising_when(lambda x: bool(x.isinf().any())))
    assert (failure.code, str(failure)) == ("runtime_error", "the activation raised ValueError at x = ±inf: boom")


@pytest.mark.parametrize(
    "error, code",
    [
        (RuntimeError("backward exploded"), "runtime_error"),
        (RuntimeError("CUDA out of memory"), "memory_limit"),
        (MemoryError("no room"), "memory_limit"),
    ],
    ids=["runtime", "out-of-memory", "memory-error"],
)
def test_the_far_check_reports_a_failing_backward_pass_with_its_exception(error, code):
    failure = _failure(P.check_far_inputs, backward_raising(error))
    assert failure.code == code
    assert str(failure) == (
        f"the backward pass raised {type(error).__name__} on the far probe points (3e4 < |x| ≤ 1e30): {error}"
    )


# --------------------------------------------------------------------------------------------
# check_far_inputs: what is not its business
# --------------------------------------------------------------------------------------------


def test_the_far_check_passes_a_finite_candidate_without_gradient():
    """No gradient at all is the no_gradient probe's refusal, not a finiteness failure."""
    assert P.check_far_inputs(lambda x: torch.relu(x.detach())) is None


def test_the_far_check_passes_a_finite_output_that_does_not_depend_on_its_input():
    """An output that requires grad through something else than x (x unused in the graph) has no
    gradient with respect to x, hence no NaN one."""
    weight = torch.ones((), requires_grad=True)
    assert P.check_far_inputs(lambda x: torch.zeros_like(x.detach()) * weight) is None


def test_far_points_in_float64_are_log_spaced_to_float64_precision():
    x = P.far_points(torch.float64)[: P.FAR_MAGNITUDES]
    exponents = torch.log10(x)
    steps = exponents[1:] - exponents[:-1]
    assert exponents[0].item() == pytest.approx(4.5, abs=1e-12)
    assert exponents[-1].item() == pytest.approx(30.0, abs=1e-12)
    assert torch.allclose(steps, torch.full_like(steps, 25.5 / (P.FAR_MAGNITUDES - 1)), rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------------
# curve: independent of torch's default dtype
# --------------------------------------------------------------------------------------------


def test_the_curve_is_drawn_in_float32_whatever_the_default_dtype(monkeypatch):
    expected = P.curve(torch.tanh)
    seen = set()

    def tanh(x):
        seen.add(x.dtype)
        return torch.tanh(x)

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        points = P.curve_points()
        record = P.curve(tanh)
    finally:
        torch.set_default_dtype(previous)
    assert points.dtype == torch.float32 and seen == {torch.float32}
    assert record == expected


# --------------------------------------------------------------------------------------------
# descriptors: the grids and thresholds the docstring states
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("peak, bounded", [(9.99, True), (10.0, False), (10.01, False)], ids=["below", "at", "above"])
def test_bounded_means_strictly_below_ten(peak, bounded):
    """max |f| on [−100, 100] reaching 10 exactly is not below 10."""
    assert P.descriptors(lambda x: torch.clamp(x, -peak, peak))["bounded"] is bounded


@pytest.mark.parametrize("side", [1.0, -1.0], ids=["right", "left"])
def test_bounded_looks_at_minus_100_to_100_only(side):
    """A function that leaves [−10, 10] only beyond |x| = 100 is bounded on the wide grid; one that
    does so at |x| = 100 is not."""
    beyond = P.descriptors(lambda x: torch.where(side * x > 100.0, 1e3, 0.0) + torch.tanh(x))
    at = P.descriptors(lambda x: torch.where(side * x >= 100.0, 1e3, 0.0) + torch.tanh(x))
    assert beyond["bounded"] is True and at["bounded"] is False


@pytest.mark.parametrize(
    "centre, changes",
    [(5.5, 0), (-5.5, 0), (4.9, 1), (-4.9, 1)],
    ids=["min-right-of-5", "min-left-of-minus-5", "min-inside-right", "min-inside-left"],
)
def test_sign_changes_look_at_minus_5_to_5_only(centre, changes):
    """(x − c)² turns at c: one sign change of f' if c lies in [−5, 5], none otherwise."""
    d = P.descriptors(lambda x: (x - centre) ** 2)
    assert d["sign_changes"] == changes and d["monotone"] is (changes == 0)


def test_sign_changes_are_counted_on_2001_points_over_minus_5_to_5():
    """f' = sin(200πx) vanishes on every point of the documented grid (step 0.005): no sign change
    is seen there, whatever happens between the points."""
    d = P.descriptors(lambda x: -torch.cos(200 * math.pi * x) / (200 * math.pi))
    assert d["sign_changes"] == 0 and d["monotone"] is True


@pytest.mark.parametrize("scale, changes", [(1e-6, 1), (0.99e-6, 0)], ids=["at-threshold", "below-threshold"])
def test_a_slope_of_exactly_the_threshold_counts(scale, changes):
    """−s·|x| has slopes ±s exactly: a bump, seen when |f'| reaches 1e-6 (|f'| < 1e-6 reads as zero)."""
    assert P.descriptors(lambda x: -scale * x.abs())["sign_changes"] == changes


def test_a_bump_narrower_than_the_grid_step_counts_once():
    """A bump whose slope the grid sees at two points only (x = ±0.005, the rest below 1e-6): one change."""
    width = 0.002
    bump = lambda x: 1e-3 * torch.exp(-((x / width) ** 2))  # noqa: E731
    x = torch.linspace(-5, 5, 2001, dtype=torch.float64)
    slope = -2 * x / width**2 * bump(x)  # the closed form, to check the premise
    assert int((slope.abs() >= D.DERIVATIVE_ZERO).sum()) == 2
    assert P.descriptors(bump)["sign_changes"] == 1


class _SlopeOverride(torch.autograd.Function):
    """f(x) = −x, whose backward pass reports `value` as the slope at x = 0 and −1 elsewhere."""

    value = math.nan

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return -x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        slope = torch.where(x.abs() < 1e-9, torch.full_like(x, _SlopeOverride.value), -torch.ones_like(x))
        return grad * slope


@pytest.mark.parametrize("value", [math.nan, -math.inf], ids=["nan", "minus-inf"])
def test_a_decreasing_function_stays_monotone_with_a_non_finite_slope(monkeypatch, value):
    """A NaN slope reads as 0 (skipped); a −∞ slope (a vertical tangent) among negative slopes is no
    sign change: the function is monotone."""
    monkeypatch.setattr(_SlopeOverride, "value", value)
    d = P.descriptors(_SlopeOverride.apply)
    assert d["sign_changes"] == 0 and d["monotone"] is True
