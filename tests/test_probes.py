"""Tests of actmine.candidate.probes: cheap checks of an activation before training."""

from __future__ import annotations

import hashlib
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from actmine import activations
from actmine.candidate import descriptors as D
from actmine.candidate import probe_calls as C
from actmine.candidate import probes as P
from actmine.candidate.probes import ProbeFailure

FAST = settings(max_examples=20, deadline=None)


# --------------------------------------------------------------------------------------------
# is_pointwise
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, fn",
    [
        ("relu", torch.relu),
        ("gelu", F.gelu),
        ("sin", torch.sin),
        ("swish", lambda x: x * torch.sigmoid(x)),
        ("gelu_sine", activations.get("gelu_sine")),
        ("where", lambda x: torch.where(x > 0, x, 0.1 * x)),
    ],
)
def test_pointwise_functions(name, fn):
    assert P.is_pointwise(fn) is True


@pytest.mark.parametrize(
    "name, fn",
    [
        ("centre", lambda x: x - x.mean()),
        ("scale", lambda x: x / x.std()),
        ("roll", lambda x: torch.roll(x, 1, -1)),
        ("softmax", lambda x: torch.softmax(x, -1)),
        ("cumsum", lambda x: torch.cumsum(x, -1)),
        ("row-centre", lambda x: x - x.mean(-1, keepdim=True)),
        ("layer-norm", lambda x: F.layer_norm(x, x.shape[-1:])),
        ("column-centre", lambda x: x - x.mean(0, keepdim=True)),
        ("turbulent", activations.get("turbulent")),
    ],
)
def test_batch_dependent_functions(name, fn):
    assert P.is_pointwise(fn) is False


@FAST
@given(scale=st.floats(0.1, 10.0), shift=st.floats(-5.0, 5.0))
def test_pointwise_property(scale, shift):
    assert P.is_pointwise(lambda x: scale * torch.tanh(x) + shift)
    # Subtracting any visible multiple of the tensor mean makes it batch dependent.
    assert not P.is_pointwise(lambda x: torch.tanh(x) - scale * x.mean())


# --------------------------------------------------------------------------------------------
# flops_per_element
# --------------------------------------------------------------------------------------------


def flops(fn):
    return P.flops_per_element(fn)[0]


def test_flops_of_simple_functions():
    assert flops(lambda x: x) == pytest.approx(0.0, abs=1e-9)
    assert flops(torch.relu) >= 1
    # one multiply and one add per element
    value, ops = P.flops_per_element(lambda x: x * 2 + 1)
    assert value == 2.0
    assert ops == {"mul": 1, "add": 1}
    # the counter counts per element whatever the tensor size
    assert P.flops_per_element(lambda x: x * 2 + 1, size=100)[0] == 2.0


def test_flops_are_relative_costs():
    assert flops(activations.get("gelu_sine")) > flops(F.gelu)
    assert flops(torch.exp) > flops(lambda x: x + 1)
    assert flops(lambda x: torch.exp(torch.sin(x))) > flops(torch.exp)
    assert flops(lambda x: x * 3) < flops(lambda x: x * 3 + x * x)
    # a transcendental call costs more than a handful of arithmetic ops
    assert flops(torch.tanh) > flops(lambda x: ((x * 2 + 1) * 3 - 4) / 5)


@FAST
@given(n_adds=st.integers(1, 6))
def test_flops_count_each_elementwise_op(n_adds):
    def chain(x):
        for _ in range(n_adds):
            x = x + 1
        return x

    assert flops(chain) == n_adds


# --------------------------------------------------------------------------------------------
# fingerprint
# --------------------------------------------------------------------------------------------


def test_fingerprint_recognises_the_same_function():
    assert P.fingerprint(lambda x: x * torch.sigmoid(x)) == P.fingerprint(F.silu)
    assert P.fingerprint(lambda x: torch.clamp(x, min=0)) == P.fingerprint(torch.relu)
    # x * (x > 0) yields -0.0 for negative x: the same function as relu all the same
    assert P.fingerprint(lambda x: x * (x > 0)) == P.fingerprint(torch.relu)
    # float32 noise around the zeros of sin(πx) must not split two ways of writing it
    assert P.fingerprint(lambda x: torch.sin(math.pi * x)) == P.fingerprint(
        lambda x: torch.cos(math.pi * x - math.pi / 2)
    )


def test_fingerprint_separates_different_functions():
    prints = {
        P.fingerprint(f) for f in (torch.relu, F.gelu, F.silu, torch.tanh, torch.sin, lambda x: x, lambda x: 1.01 * x)
    }
    assert len(prints) == 7
    fp = P.fingerprint(torch.relu)
    assert len(fp) == 16 and int(fp, 16) >= 0


@FAST
@given(a=st.floats(0.5, 3.0), b=st.floats(0.5, 3.0))
def test_fingerprint_property(a, b):
    # the same function written twice hashes the same; scales 0.1% apart (far above the 5
    # significant digits kept) do not
    assert P.fingerprint(lambda x: a * torch.tanh(x)) == P.fingerprint(lambda x: torch.tanh(x) * a)
    if abs(a - b) > 1e-3 * max(a, b):
        assert P.fingerprint(lambda x: a * torch.tanh(x)) != P.fingerprint(lambda x: b * torch.tanh(x))


# --------------------------------------------------------------------------------------------
# run_probes
# --------------------------------------------------------------------------------------------


def _detached(x):
    return torch.relu(x).detach()


def _raises(x):
    raise RuntimeError("boom")


@pytest.mark.parametrize(
    "fn, code",
    [
        (torch.exp, "non_finite"),
        (lambda x: x.sum(), "bad_shape"),
        (lambda x: x.double(), "bad_shape"),
        (lambda x: 1.0, "bad_output"),
        (lambda x: x.tolist(), "bad_output"),
        (_raises, "runtime_error"),
        (_detached, "no_gradient"),
        (torch.zeros_like, "no_gradient"),
        (lambda x: x * 0, "zero_gradient"),
        (lambda x: torch.sqrt(x.abs()), "non_finite_gradient"),
    ],
)
def test_run_probes_failure_codes(fn, code):
    with pytest.raises(ProbeFailure) as info:
        P.run_probes(fn)
    assert info.value.code == code
    assert str(info.value)


def test_run_probes_runtime_error_message_names_the_exception():
    with pytest.raises(ProbeFailure, match="RuntimeError.*boom"):
        P.run_probes(_raises)


def test_run_probes_success():
    result = P.run_probes(F.gelu)
    assert set(result) == {
        "pointwise",
        "flops_per_element",
        "backward_flops_per_element",
        "saved_bytes_per_element",
        "fingerprint",
        "descriptors",
        "ops",
        "curve",
    }
    assert result["pointwise"] is True
    assert result["flops_per_element"] >= 1
    assert result["backward_flops_per_element"] > 0
    assert result["saved_bytes_per_element"] == 0.0
    assert result["fingerprint"] == P.fingerprint(F.gelu)
    assert result["descriptors"] == P.descriptors(F.gelu)
    assert result["ops"] == {"gelu": 1}


def test_run_probes_in_float64():
    result = P.run_probes(torch.tanh, dtype=torch.float64)
    assert result["pointwise"] is True
    assert result["saved_bytes_per_element"] == 8.0  # tanh saves its float64 output
    with pytest.raises(ProbeFailure) as info:
        P.run_probes(lambda x: x.float(), dtype=torch.float64)
    assert info.value.code == "bad_shape"


def test_probe_points_span_tiny_to_huge():
    x = P.probe_points()
    assert x.dtype == torch.float32 and x.ndim == 1
    assert (x == 0).any()
    assert x.abs().max() >= 1e4
    assert x[x != 0].abs().min() <= 1e-6
    assert (x < 0).any() and (x > 0).any()
    assert torch.equal(x, P.probe_points())


# --------------------------------------------------------------------------------------------
# ProbeBudget
# --------------------------------------------------------------------------------------------


def test_budget_defaults_and_dict():
    budget = P.ProbeBudget()
    assert budget.to_dict() == {
        "max_flops_per_element": 200.0,
        "max_saved_bytes_per_element": 64.0,
        "allow_batch_dependent": False,
    }
    assert P.ProbeBudget.from_dict(budget.to_dict()) == budget
    with pytest.raises(ValueError, match="unknown.*max_flops"):
        P.ProbeBudget.from_dict({"max_flops": 3})
    with pytest.raises(Exception):
        budget.max_flops_per_element = 1.0  # frozen


@pytest.mark.parametrize(
    "field, value, error",
    [
        ("max_flops_per_element", 0, ValueError),
        ("max_flops_per_element", -1.0, ValueError),
        ("max_flops_per_element", math.nan, ValueError),
        ("max_flops_per_element", "200", TypeError),
        ("max_flops_per_element", True, TypeError),
        ("max_saved_bytes_per_element", 0.0, ValueError),
        ("max_saved_bytes_per_element", None, TypeError),
        ("allow_batch_dependent", 1, TypeError),
    ],
)
def test_budget_rejects_bad_values(field, value, error):
    with pytest.raises(error, match=field):
        P.ProbeBudget(**{field: value})


# --------------------------------------------------------------------------------------------
# Cost: forward and backward flops, reductions
# --------------------------------------------------------------------------------------------


def test_forward_flops_exact():
    assert flops(lambda x: x * 2 + 1) == 2.0
    assert flops(torch.exp) == P.TRANSCENDENTAL_WEIGHT
    assert flops(lambda x: torch.exp(x) + 1) == P.TRANSCENDENTAL_WEIGHT + 1


@pytest.mark.parametrize(
    "fn, expected",
    [
        (lambda x: x - x.mean(), 2.0),  # mean reads n elements, sub writes n
        (lambda x: x - x.sum(), 2.0),
        (lambda x: x / x.std(), 2.0),
        (lambda x: x - x.mean() / x.std(), 3.0),  # (+ one element for the scalar division)
    ],
)
def test_reductions_count_their_input(fn, expected):
    assert flops(fn) == pytest.approx(expected, abs=1e-3)


def test_backward_flops():
    assert P.backward_flops_per_element(F.gelu) > 0
    assert P.backward_flops_per_element(lambda x: x * 2 + 1) == 1.0  # grad * 2
    assert P.backward_flops_per_element(lambda x: x) == 0.0
    # forward and backward are counted apart
    cost = P.measure_cost(activations.get("gelu_sine"))
    assert cost.flops_per_element == flops(activations.get("gelu_sine"))
    assert cost.backward_flops_per_element > 0
    assert P.run_probes(F.gelu)["backward_flops_per_element"] == P.backward_flops_per_element(F.gelu)


@pytest.mark.parametrize("budget, admitted", [(18.0, True), (17.99, False), (18.01, True), (1.0, False)])
def test_flop_budget_boundary(budget, admitted):
    fn = activations.get("gelu_sine")  # gelu (8) + sin (8) + mul + add = 18
    assert P.run_probes(fn)["flops_per_element"] == 18.0
    limits = P.ProbeBudget(max_flops_per_element=budget)
    if admitted:
        assert P.run_probes(fn, budget=limits)["flops_per_element"] == 18.0
    else:
        with pytest.raises(ProbeFailure) as info:
            P.run_probes(fn, budget=limits)
        assert info.value.code == "over_flop_budget"
        message = str(info.value)
        assert "18" in message and f"{budget:g}" in message and "probes.max_flops_per_element" in message


def test_default_flop_budget_refuses_a_long_chain():
    def expensive(x):
        for _ in range(30):
            x = torch.sin(x) + x  # 9 per step, 270 in all; sin saves each step's input
        return x

    with pytest.raises(ProbeFailure) as info:
        P.run_probes(expensive)
    assert info.value.code == "over_flop_budget"
    roomy = P.ProbeBudget(max_flops_per_element=300, max_saved_bytes_per_element=1000)
    result = P.run_probes(expensive, budget=roomy)
    assert result["flops_per_element"] == 270
    assert result["saved_bytes_per_element"] == 29 * 4  # all but the first are new tensors


# --------------------------------------------------------------------------------------------
# Memory: bytes saved for backward
# --------------------------------------------------------------------------------------------


def _chain(x):
    return x * torch.sigmoid(x) * torch.tanh(x) * torch.exp(-x * x)


def test_saved_bytes():
    assert P.saved_bytes_per_element(torch.relu) == 4.0  # its float32 output
    assert P.saved_bytes_per_element(torch.relu, dtype=torch.float64) == 8.0  # its float64 output
    assert P.saved_bytes_per_element(lambda x: x) == 0.0
    assert P.saved_bytes_per_element(F.gelu) == 0.0  # only the input
    assert P.saved_bytes_per_element(lambda x: x * x) == 0.0  # the input, twice
    assert P.saved_bytes_per_element(_chain) > P.saved_bytes_per_element(torch.relu)
    assert P.run_probes(torch.relu)["saved_bytes_per_element"] == 4.0
    assert P.run_probes(torch.relu, dtype=torch.float64)["saved_bytes_per_element"] == 8.0


def test_saved_storage_counts_once():
    def square_of_exp(x):
        y = torch.exp(x)  # exp saves its output y; y * y saves y twice more
        return y * y

    assert P.saved_bytes_per_element(square_of_exp) == 4.0


@pytest.mark.parametrize("budget, admitted", [(4.0, True), (3.99, False), (64.0, True)])
def test_memory_budget_boundary(budget, admitted):
    limits = P.ProbeBudget(max_saved_bytes_per_element=budget)
    if admitted:
        assert P.run_probes(torch.relu, budget=limits)["saved_bytes_per_element"] == 4.0
    else:
        with pytest.raises(ProbeFailure) as info:
            P.run_probes(torch.relu, budget=limits)
        assert info.value.code == "over_memory_budget"
        assert "4" in str(info.value) and "probes.max_saved_bytes_per_element" in str(info.value)


def test_memory_budget_with_the_chain():
    saved = P.run_probes(_chain)["saved_bytes_per_element"]
    with pytest.raises(ProbeFailure) as info:
        P.run_probes(_chain, budget=P.ProbeBudget(max_saved_bytes_per_element=saved / 2))
    assert info.value.code == "over_memory_budget"


def test_failure_order_of_the_budgets():
    turbulent = activations.get("turbulent")
    tight = dict(max_flops_per_element=1.0, max_saved_bytes_per_element=1.0)
    # over both budgets and batch dependent: the flop budget is checked first, then memory
    with pytest.raises(ProbeFailure) as info:
        P.run_probes(turbulent, budget=P.ProbeBudget(**tight))
    assert info.value.code == "over_flop_budget"
    with pytest.raises(ProbeFailure) as info:
        P.run_probes(turbulent, budget=P.ProbeBudget(max_saved_bytes_per_element=1.0))
    assert info.value.code == "over_memory_budget"
    # a gradient failure comes before any budget
    with pytest.raises(ProbeFailure) as info:
        P.run_probes(lambda x: x * 0, budget=P.ProbeBudget(**tight))
    assert info.value.code == "zero_gradient"


# --------------------------------------------------------------------------------------------
# Batch dependence in run_probes
# --------------------------------------------------------------------------------------------


def test_batch_dependent_refused_by_default():
    with pytest.raises(ProbeFailure) as info:
        P.run_probes(activations.get("turbulent"))
    assert info.value.code == "batch_dependent"
    assert "probes.allow_batch_dependent" in str(info.value)
    with pytest.raises(ProbeFailure) as info:
        P.run_probes(lambda x: torch.tanh(x) - x.mean())
    assert info.value.code == "batch_dependent"


def test_batch_dependent_allowed():
    result = P.run_probes(activations.get("turbulent"), budget=P.ProbeBudget(allow_batch_dependent=True))
    assert result["pointwise"] is False
    # allowing them does not refuse pointwise functions
    assert P.run_probes(F.gelu, budget=P.ProbeBudget(allow_batch_dependent=True))["pointwise"] is True


def _fails_on_small_inputs(x):
    if x.numel() < 100:
        raise ValueError("too small")
    return torch.tanh(x)


def test_is_pointwise_reports_a_runtime_error():
    with pytest.raises(ProbeFailure) as info:
        P.is_pointwise(_fails_on_small_inputs)
    assert info.value.code == "runtime_error" and "too small" in str(info.value)
    with pytest.raises(ProbeFailure) as info:
        P.run_probes(_fails_on_small_inputs)
    assert info.value.code == "runtime_error"
    with pytest.raises(ProbeFailure) as info:
        P.is_pointwise(lambda x: x.reshape(-1))  # fine on the 1-D probe points, not on a batch
    assert info.value.code == "bad_shape"


# --------------------------------------------------------------------------------------------
# descriptors
# --------------------------------------------------------------------------------------------


def _assert_plain(d):
    assert set(d) == {
        "value_at_0",
        "slope_at_0",
        "growth_pos",
        "growth_neg",
        "sign_changes",
        "bounded",
        "monotone",
        "mean_curvature",
    }
    for key, value in d.items():
        if key in ("bounded", "monotone"):
            assert type(value) is bool
        elif key == "sign_changes":
            assert type(value) is int and value >= 0
        else:
            assert type(value) is float and math.isfinite(value)
    assert d["monotone"] == (d["sign_changes"] == 0)


def test_descriptors_of_relu():
    d = P.descriptors(torch.relu)
    _assert_plain(d)
    assert d["value_at_0"] == 0.0
    assert d["slope_at_0"] == 0.0  # torch's relu gradient at 0
    assert d["growth_pos"] == 1.0 and d["growth_neg"] == 0.0
    assert d["monotone"] is True and d["sign_changes"] == 0
    assert d["bounded"] is False
    assert d["mean_curvature"] == pytest.approx(1 / 6, rel=0.02)  # a unit kink over [−3, 3]


def test_descriptors_of_tanh_and_sin():
    d = P.descriptors(torch.tanh)
    _assert_plain(d)
    assert d["bounded"] is True and d["monotone"] is True
    assert d["slope_at_0"] == pytest.approx(1.0)
    assert d["growth_pos"] == pytest.approx(0.0, abs=2e-3) and d["growth_neg"] == pytest.approx(0.0, abs=2e-3)
    d = P.descriptors(torch.sin)
    _assert_plain(d)
    assert d["sign_changes"] == 4  # cos vanishes at ±π/2 and ±3π/2 in [−5, 5]
    assert d["bounded"] is True and d["monotone"] is False
    assert d["mean_curvature"] == pytest.approx(2 / math.pi, rel=0.05)  # mean |sin| over [−3, 3] ≈ 0.66


def test_descriptors_of_gelu():
    d = P.descriptors(F.gelu)
    _assert_plain(d)
    assert d["growth_pos"] == pytest.approx(1.0, abs=1e-3)
    assert d["growth_neg"] == pytest.approx(0.0, abs=1e-3)
    assert d["sign_changes"] == 1  # GELU' < 0 below x ≈ −0.75
    assert d["slope_at_0"] == pytest.approx(0.5)
    assert d["bounded"] is False and d["monotone"] is False


def test_growth_neg_is_the_slope_towards_minus_infinity():
    assert P.descriptors(lambda x: x)["growth_neg"] == pytest.approx(1.0)
    assert P.descriptors(lambda x: F.leaky_relu(x, 0.1))["growth_neg"] == pytest.approx(0.1)
    assert P.descriptors(torch.abs)["growth_neg"] == pytest.approx(-1.0)
    assert P.descriptors(lambda x: 100 * x)["growth_pos"] == 10.0  # clipped


def test_descriptors_are_finite_for_wild_functions():
    for fn in (torch.exp, torch.log, lambda x: x / x, lambda x: 1 / x, lambda x: torch.exp(x * x)):
        _assert_plain(P.descriptors(fn))
    d = P.descriptors(torch.exp)
    assert d["growth_pos"] == 10.0 and d["bounded"] is False
    with pytest.raises(ProbeFailure) as info:
        P.descriptors(_raises)
    assert info.value.code == "runtime_error"


@FAST
@given(a=st.floats(-5.0, 5.0), b=st.floats(-5.0, 5.0))
def test_descriptors_of_affine_functions(a, b):
    d = P.descriptors(lambda x: a * x + b)
    _assert_plain(d)
    assert d["slope_at_0"] == pytest.approx(a, abs=1e-9)
    assert d["value_at_0"] == pytest.approx(b, abs=1e-9)
    assert d["sign_changes"] == 0 and d["monotone"] is True
    assert d["mean_curvature"] == pytest.approx(0.0, abs=1e-6)
    assert flops(lambda x: a * x + b) == 2.0


def test_curve_records_values_and_derivative_of_the_function():
    record = P.curve(torch.tanh)
    x = torch.tensor(record["x"], dtype=torch.float64)
    assert len(x) == P.CURVE_POINTS and record["x"][0] == -6 and record["x"][-1] == 6
    torch.testing.assert_close(torch.tensor(record["y"], dtype=torch.float64), torch.tanh(x), atol=1e-6, rtol=0)
    torch.testing.assert_close(
        torch.tensor(record["dy"], dtype=torch.float64), 1 - torch.tanh(x) ** 2, atol=1e-6, rtol=0
    )


# --------------------------------------------------------------------------------------------
# What training sees: its tensor shape, the input after the call, two calls, far inputs
# --------------------------------------------------------------------------------------------

POINTWISE_LIBRARY = [name for name in activations.list() if activations.is_pointwise(name)]
SMALL_TRAINING_SHAPE = (3, 40, 16)


def test_the_library_has_the_pointwise_activations_the_finiteness_rule_was_measured_on():
    assert {
        "relu",
        "gelu",
        "silu",
        "mish",
        "softplus",
        "elu",
        "selu",
        "tanh",
        "sigmoid",
        "snake",
        "sin",
        "gelu_sine",
        "gelu_sinc_perturbation",
        "gmtu",
    } <= set(POINTWISE_LIBRARY)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", POINTWISE_LIBRARY)
def test_every_pointwise_library_activation_passes_the_probes(name, dtype):
    f = activations.get(name)
    result = P.run_probes(f, dtype=dtype, shapes=(SMALL_TRAINING_SHAPE, P.DEFAULT_TRAINING_SHAPE))
    assert result["pointwise"] is True
    P.check_far_inputs(f, dtype)  # run_probes does; said again so that a failure names this rule


def _dim3_mean(x):
    return torch.relu(x - x.mean()) if x.dim() == 3 else torch.relu(x)


def _dim3_sin(x):
    return torch.sin(x) if x.dim() == 3 else torch.relu(x)


def _heavy_when_large(x):
    y = torch.relu(x)
    if x.numel() > 5000:
        for k in range(30):
            y = y + 1e-9 * torch.sin(x + k)
    return y


def _training_shape_only(x):
    return torch.tanh(x) if tuple(x.shape) == (5, 20, 12) else torch.relu(x)


@pytest.mark.parametrize(
    "fn, code",
    [
        (_dim3_mean, "batch_dependent"),
        (lambda x: torch.relu(x - x.mean(0, keepdim=True)) if x.dim() == 3 else torch.relu(x), "batch_dependent"),
        (_dim3_sin, "inconsistent_function"),
        (_heavy_when_large, "over_flop_budget"),
        (_training_shape_only, "inconsistent_function"),
    ],
)
def test_candidates_that_branch_on_the_tensor_shape_are_seen_on_the_training_shape(fn, code):
    assert P.is_pointwise(fn) is True  # the classic 2-D check alone is fooled
    with pytest.raises(ProbeFailure) as info:
        P.run_probes(fn, shapes=((5, 20, 12),) if fn is _training_shape_only else None)
    assert info.value.code == code


def test_the_exact_training_shape_is_probed():
    # a candidate that changes only on the lab's exact shape passes with another training shape
    assert P.run_probes(_training_shape_only, shapes=((4, 20, 12),))["pointwise"] is True
    with pytest.raises(ProbeFailure) as info:
        P.run_probes(_training_shape_only, shapes=((4, 20, 12), (5, 20, 12)))
    assert info.value.code == "inconsistent_function" and "5×20×12" in str(info.value)


def test_cost_is_the_most_expensive_shape():
    small = P.measure_cost(_heavy_when_large)  # 4096 elements: cheap branch
    large = P.measure_cost(_heavy_when_large, shape=(4, 128, 64))
    assert small.flops_per_element < 5 < 100 < large.flops_per_element
    generous = P.ProbeBudget(max_flops_per_element=1e6, max_saved_bytes_per_element=1e6)
    reported = P.run_probes(_heavy_when_large, budget=generous)["flops_per_element"]
    assert reported == round(large.flops_per_element, 2)


@FAST
@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=4))
def test_cost_per_element_of_a_pointwise_function_does_not_depend_on_the_shape(shape):
    f = activations.get("gelu_sine")
    assert P.measure_cost(f, shape=tuple(shape)).flops_per_element == P.measure_cost(f).flops_per_element


@FAST
@given(decade=st.floats(4.6, 29.9))
def test_nan_anywhere_beyond_the_probe_set_is_refused(decade):
    threshold = 10.0**decade
    with pytest.raises(ProbeFailure) as info:
        P.run_probes(lambda x: torch.relu(x) + torch.where(x.abs() > threshold, float("nan"), 0.0))
    assert info.value.code == "non_finite" and "NaN" in str(info.value)


def _nan_gradient_beyond(threshold):
    # the added term is 0 everywhere; where |x| > t its gradient flows into the branch torch.where
    # did not select, sqrt of a negative number: 0·NaN = NaN
    return lambda x: torch.relu(x) + torch.where(x.abs() > threshold, 0.0 * x, 0.0 * torch.sqrt(threshold - x.abs()))


def test_nan_gradient_is_refused_up_to_the_gradient_limit_only():
    with pytest.raises(ProbeFailure) as info:
        P.run_probes(_nan_gradient_beyond(1e6))
    assert info.value.code == "non_finite_gradient"
    # beyond 1e10 float32 itself makes NaN gradients of the library's functions: allowed
    assert P.run_probes(_nan_gradient_beyond(1e15))["pointwise"] is True


def test_infinite_inputs_must_run_but_may_give_nan():
    # sin(±inf) is NaN, and so is most of the library there: NaN at ±inf alone is allowed
    assert P.run_probes(lambda x: torch.relu(x) + torch.where(x.isinf(), float("nan"), 0.0))["pointwise"]

    def refuses_infinity(x):
        if bool(torch.isinf(x).any()):
            raise ValueError("no infinities")
        return torch.relu(x)

    with pytest.raises(ProbeFailure) as info:
        P.run_probes(refuses_infinity)
    assert info.value.code == "runtime_error" and "±inf" in str(info.value)


def test_overflow_to_infinity_beyond_the_probe_set_is_allowed():
    assert P.run_probes(lambda x: x * x * x * 1e-6)["pointwise"] is True  # inf beyond ~7e14 in float32


def test_far_points_span_beyond_the_probe_set_to_1e30():
    x = P.far_points()
    assert x.dtype == torch.float32 and torch.isfinite(x).all()
    assert x.abs().min() > P.probe_points().abs().max() and x.abs().max() == pytest.approx(1e30, rel=1e-6)
    assert (x > 0).sum() == (x < 0).sum()
    magnitudes = x[x > 0].double().sort().values
    assert (magnitudes[1:] / magnitudes[:-1]).max() < 1.4  # no band wider than that is skipped


def _counter():
    calls = []

    def alternating(x):
        calls.append(1)
        return torch.relu(x) * (1 + len(calls) % 2)

    return alternating


@pytest.mark.parametrize(
    "fn, code",
    [
        (lambda x: torch.relu(x.mul_(2)), "modifies_input"),
        (lambda x: torch.tanh(x, out=x) * 1.0, "modifies_input"),
        (lambda x: torch.relu(x.clamp_(-5, 5)) if x.requires_grad else torch.relu(x), "modifies_input"),
        (_counter(), "nondeterministic"),
        (lambda x: torch.relu(x) if x.requires_grad else torch.tanh(x), "inconsistent_function"),
    ],
)
def test_impure_candidates_are_refused_first(fn, code):
    with pytest.raises(ProbeFailure) as info:
        P.run_probes(fn)
    assert info.value.code == code and str(info.value)


def test_check_purity_returns_the_output_and_leaves_the_input():
    x = P.probe_points()
    before = x.clone()
    assert torch.equal(P.check_purity(torch.tanh, x, "here"), torch.tanh(before))
    assert torch.equal(x, before)


# --------------------------------------------------------------------------------------------
# TrainingCheck (train_ensemble's side is in test_ensemble.py and test_fitness.py)
# --------------------------------------------------------------------------------------------


def _training_call(fn, shape=(3, 16, 8)):
    h = torch.randn(shape, generator=torch.Generator().manual_seed(7)) * 3
    return h, fn(h)


def test_training_check_accepts_the_function_the_probes_saw():
    f = activations.get("gelu_sine")
    check = P.TrainingCheck(f, P.run_probes(f)["curve"])
    check(*_training_call(f), "at step 0")
    check(*_training_call(f, (200,)), "at step 1")  # any shape
    assert check.checked == 2


def test_training_check_refuses_another_function_than_the_probes_recorded():
    check = P.TrainingCheck(torch.tanh, P.run_probes(torch.relu)["curve"])
    with pytest.raises(ProbeFailure) as info:
        check(*_training_call(torch.tanh), "at training step 3")
    assert info.value.code == "inconsistent_function" and "at training step 3" in str(info.value)


def test_training_check_refuses_values_that_a_sub_batch_does_not_reproduce():
    check = P.TrainingCheck(torch.relu, P.run_probes(torch.relu)["curve"])
    h, _ = _training_call(torch.relu)
    with pytest.raises(ProbeFailure) as info:
        check(h, torch.sin(h), "at training step 0")  # training computed something else
    assert info.value.code == "inconsistent_function" and "sub-batch" in str(info.value)


def test_training_check_refuses_a_changed_input_even_when_batch_dependent():
    check = P.TrainingCheck(torch.relu, P.run_probes(torch.relu)["curve"], pointwise=False)
    h, out = _training_call(torch.relu)
    check(h, torch.sin(h), "here")  # not pointwise: values are not compared
    with pytest.raises(ProbeFailure) as info:
        check(h, out, "at training step 9", True)
    assert info.value.code == "modifies_input" and "at training step 9" in str(info.value)


# --------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------


@FAST
@given(n=st.integers(0, 3 * P.MESSAGE_LIMIT))
def test_cap_message_keeps_short_text_and_marks_cut_text(n):
    text = "é" * n
    capped = P.cap_message(text)
    if n <= P.MESSAGE_LIMIT:
        assert capped == text
    else:
        assert capped.startswith("é" * P.MESSAGE_LIMIT) and f"cut: {n} characters" in capped
        assert len(capped) < P.MESSAGE_LIMIT + 80


def test_probe_failure_messages_are_capped():
    def huge(x):
        raise ValueError("boom " * 1_000_000)

    with pytest.raises(ProbeFailure) as info:
        P.run_probes(huge)
    assert info.value.code == "runtime_error" and len(str(info.value)) < P.MESSAGE_LIMIT + 80
    assert str(info.value).startswith("the activation raised ValueError") and "cut:" in str(info.value)


# --------------------------------------------------------------------------------------------
# Reason codes of exceptions, messages and tolerances at their boundaries
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc, code",
    [
        (MemoryError(), "memory_limit"),
        (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 GB"), "memory_limit"),
        (RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"), "memory_limit"),
        (RuntimeError("Out Of Memory"), "memory_limit"),
        (RuntimeError("boom"), "runtime_error"),
        (ValueError("memory"), "runtime_error"),
        (ZeroDivisionError(), "runtime_error"),
    ],
)
def test_exception_code_tells_running_out_of_memory_from_other_errors(exc, code):
    assert P.exception_code(exc) == code


def test_a_candidate_out_of_memory_is_a_memory_limit_failure():
    def hungry(x):
        raise MemoryError

    with pytest.raises(ProbeFailure) as info:
        P.run_probes(hungry)
    assert info.value.code == "memory_limit" and "MemoryError" in str(info.value)


def test_a_probe_failure_raised_inside_the_candidate_keeps_its_code():
    def refuses(x):
        raise ProbeFailure("nondeterministic", "from inside")

    with pytest.raises(ProbeFailure) as info:
        P._call(refuses, torch.zeros(3), "here")
    assert (info.value.code, str(info.value)) == ("nondeterministic", "from inside")


def test_call_messages_say_what_was_wrong_and_where():
    x = torch.zeros(2, 3)
    with pytest.raises(ProbeFailure) as info:
        P._call(_raises, x, "on the test points")
    assert (info.value.code, str(info.value)) == (
        "runtime_error",
        "the activation raised RuntimeError on the test points: boom",
    )
    with pytest.raises(ProbeFailure) as info:
        P._call(lambda t: [1.0], x, "on the test points")
    assert (info.value.code, str(info.value)) == (
        "bad_output",
        "the activation returned list, not a torch.Tensor, on the test points",
    )
    with pytest.raises(ProbeFailure) as info:
        P._call(lambda t: t.double(), x, "on the test points")
    assert info.value.code == "bad_shape"
    assert str(info.value).startswith(
        "output (2, 3) torch.float64 differs from input (2, 3) torch.float32 on the test points"
    )
    with pytest.raises(ProbeFailure) as info:
        P._call(lambda t: t.reshape(-1), x, "there")
    assert info.value.code == "bad_shape" and "output (6,) torch.float32 differs from input (2, 3)" in str(info.value)
    same = P._call(torch.tanh, x, "there")
    assert torch.equal(same, torch.tanh(x))


def test_cap_message_at_its_limit():
    assert P.cap_message("abc", limit=3) == "abc"
    assert P.cap_message("abcd", limit=3) == "abc… [cut: 4 characters, the first 3 kept]"
    assert P.cap_message("x" * P.MESSAGE_LIMIT) == "x" * P.MESSAGE_LIMIT
    assert P.cap_message(12345, limit=2) == "12… [cut: 5 characters, the first 2 kept]"  # any object, as text
    assert (
        P.ProbeFailure("bad_output", "y" * (P.MESSAGE_LIMIT + 1))
        .args[0]
        .endswith(f"[cut: {P.MESSAGE_LIMIT + 1} characters, the first {P.MESSAGE_LIMIT} kept]")
    )


def test_budget_messages_name_the_setting_and_the_value():
    with pytest.raises(TypeError) as info:
        P.ProbeBudget(max_flops_per_element="200")
    assert str(info.value) == "probes.max_flops_per_element must be a number, got str '200'"
    with pytest.raises(ValueError) as info:
        P.ProbeBudget(max_saved_bytes_per_element=-2)
    assert str(info.value) == "probes.max_saved_bytes_per_element must be a positive number, got -2"
    with pytest.raises(TypeError) as info:
        P.ProbeBudget(allow_batch_dependent="yes")
    assert str(info.value) == "probes.allow_batch_dependent must be true or false, got str 'yes'"
    with pytest.raises(ValueError) as info:
        P.ProbeBudget.from_dict({"zeta": 1, "alpha": 2, "max_flops_per_element": 3.0})
    assert str(info.value) == (
        "unknown probes setting(s) alpha, zeta; known: allow_batch_dependent, "
        "max_flops_per_element, max_saved_bytes_per_element"
    )
    # the smallest positive numbers and integers are budgets
    assert P.ProbeBudget(max_flops_per_element=1e-9, max_saved_bytes_per_element=1).max_saved_bytes_per_element == 1
    assert P.ProbeBudget.from_dict({"allow_batch_dependent": True}) == P.ProbeBudget(allow_batch_dependent=True)


def test_same_uses_the_documented_tolerances():
    """Within SAME_ATOL (1e-5) + SAME_RTOL (1e-4) × |b|: the same function; NaN matches NaN, inf matches inf."""
    b = torch.tensor([0.0, 0.0, 100.0, 100.0, math.nan, math.inf, -math.inf, 1.0], dtype=torch.float64)
    a = torch.tensor(
        [0.9e-5, 1.1e-5, 100.0 + 0.0100, 100.0 + 0.0102, math.nan, math.inf, math.inf, math.nan], dtype=torch.float64
    )
    assert P._same(a, b).tolist() == [True, False, True, False, True, True, False, False]
    assert P._all_same(b, b.clone()) and not P._all_same(a, b)
    assert P._all_same(a[:1], b[:1])  # not bit-identical, yet the same within the tolerance


def test_unchanged_is_bit_for_bit_with_nan_equal_to_nan():
    before = torch.tensor([1.0, math.nan, -0.0])
    assert C._unchanged(before, before.clone())
    assert C._unchanged(before, torch.tensor([1.0, math.nan, 0.0]))  # -0.0 == 0.0
    assert not C._unchanged(before, torch.tensor([1.0 + 1e-7, math.nan, 0.0]))
    assert not C._unchanged(before, torch.tensor([1.0, 2.0, 0.0]))
    assert not C._unchanged(before, torch.tensor([math.nan, math.nan, 0.0]))


def test_examples_are_the_first_three_failing_inputs_rounded_to_six_digits():
    x = torch.tensor([1.0, 2.123456789, 3.0, 4.0, 5.0])
    assert P._examples(x, torch.tensor([False, True, True, True, True])) == [2.12346, 3.0, 4.0]
    assert P._examples(x, torch.tensor([True, False, False, False, False])) == [1.0]
    assert P._examples(x, x > 3.5, n=1) == [4.0]


@pytest.mark.parametrize(
    "value, bound, expected",
    [
        (math.nan, 1e6, 0.0),
        (math.inf, 1e6, 1e6),
        (-math.inf, 1e6, -1e6),
        (2e6, 1e6, 1e6),
        (-2e6, 1e6, -1e6),
        (3.5, 1e6, 3.5),
        (-0.0, 1e6, 0.0),
        (12.0, 10.0, 10.0),
        (-12.0, 10.0, -10.0),
        (1e6, 1e6, 1e6),
    ],
)
def test_finite_clips_to_the_bound_and_reads_nan_as_zero(value, bound, expected):
    result = D._finite(value, bound)
    assert result == expected and type(result) is float and math.copysign(1.0, result) == math.copysign(1.0, expected)
    assert D._finite(value) == D._finite(value, P.DESCRIPTOR_CLIP)


# --------------------------------------------------------------------------------------------
# The probe sets: what they hold
# --------------------------------------------------------------------------------------------


def test_probe_points_are_a_grid_zeros_four_normal_scales_and_extremes():
    x = P.probe_points(torch.float64)
    assert x.shape == (401 + 4 + 4 * 64 + 8,)
    assert torch.allclose(x[:401], torch.linspace(-10, 10, 401, dtype=torch.float64))
    assert torch.equal(x[401:405], torch.zeros(4, dtype=torch.float64))
    for index, scale in enumerate((0.01, 1.0, 10.0, 100.0)):
        block = x[405 + 64 * index : 405 + 64 * (index + 1)]
        assert 0.5 * scale < block.std() < 1.5 * scale  # normal samples at that scale
    assert x[-8:].tolist() == [1e-30, -1e-30, 1e-6, -1e-6, 1e4, -1e4, 3e4, -3e4]
    assert P.probe_points().dtype == torch.float32 and torch.equal(P.probe_points(), x.float())


def test_far_points_are_log_spaced_from_10_to_the_4_5_to_1e30_in_both_signs():
    x = P.far_points(torch.float64)
    assert x.shape == (2 * P.FAR_MAGNITUDES,) and P.FAR_MAGNITUDES == 200
    assert torch.equal(x[P.FAR_MAGNITUDES :], -x[: P.FAR_MAGNITUDES])
    assert x[0] == pytest.approx(10**4.5) and x[P.FAR_MAGNITUDES - 1] == pytest.approx(1e30)
    ratios = x[1 : P.FAR_MAGNITUDES] / x[: P.FAR_MAGNITUDES - 1]
    assert torch.allclose(ratios, ratios[0].expand_as(ratios)) and ratios[0] == pytest.approx(10 ** (25.5 / 199))
    assert P.far_points().dtype == torch.float32


def test_the_far_check_names_the_nan_inputs():
    def nan_beyond_1e20(x):
        return torch.relu(x) + torch.where(x.abs() > 1e20, math.nan, 0.0)

    with pytest.raises(ProbeFailure) as info:
        P.check_far_inputs(nan_beyond_1e20)
    message = str(info.value)
    assert info.value.code == "non_finite" and message.startswith("NaN output at inputs such as [")
    assert float(message.split("[")[1].split(",")[0]) > 1e20  # the first NaN input, as an example
    with pytest.raises(ProbeFailure) as info:
        P.check_far_inputs(_nan_gradient_beyond(1e6))
    assert info.value.code == "non_finite_gradient" and str(info.value).startswith("NaN gradient at inputs such as [")
    P.check_far_inputs(torch.relu)  # passes: returns nothing, raises nothing


def test_the_far_check_runs_the_candidate_at_infinity_in_its_dtype():
    seen = []

    def records(x):
        seen.append((x.dtype, x.detach().clone()))
        return torch.relu(x)

    P.check_far_inputs(records, torch.float64)
    assert all(dtype == torch.float64 for dtype, _ in seen)
    assert seen[-1][1].tolist() == [math.inf, -math.inf]


class _BackwardExplodes(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("backward exploded")


@pytest.mark.parametrize(
    "probe, says",
    [
        ("check_far_inputs", "backward exploded"),
        ("measure_cost", "while measuring its cost"),
        ("run_probes", "backward exploded"),
        ("curve", "on the curve's points"),
    ],
)
def test_a_backward_pass_that_raises_is_a_runtime_error(probe, says):
    with pytest.raises(ProbeFailure) as info:
        getattr(P, probe)(_BackwardExplodes.apply)
    assert info.value.code == "runtime_error" and says in str(info.value)


# --------------------------------------------------------------------------------------------
# Fingerprint, curve, descriptors: tolerances and clipping
# --------------------------------------------------------------------------------------------


def _documented_fingerprint(values: list[float]) -> str:
    """The recipe of `fingerprint`'s docstring, written out: outputs below 1e-5 read as 0, the others
    keep 5 significant digits, joined by commas, sha256, the first 16 hex digits."""
    rounded = [f"{v:.5g}" if abs(v) >= 1e-5 else "0" for v in values]
    return hashlib.sha256(",".join(rounded).encode()).hexdigest()[:16]


def test_fingerprints_follow_the_documented_recipe_and_stay_stable():
    """Fingerprints are stored in search databases: the same function must keep its print."""
    points = torch.linspace(-6, 6, 97, dtype=torch.float64).to(torch.float32).double()
    assert P.fingerprint(torch.relu) == _documented_fingerprint(torch.relu(points).tolist()) == "92bf6abfed76e40c"
    assert P.fingerprint(lambda x: x) == _documented_fingerprint(points.tolist()) == "a76c21f699221edf"
    assert P.fingerprint(lambda x: 2 * x) == _documented_fingerprint((2 * points).tolist())


def test_fingerprint_reads_outputs_below_its_tolerance_as_zero():
    def plus(offset):
        return lambda x: torch.relu(x) + torch.where(x <= 0, offset, 0.0)

    assert P.fingerprint(plus(0.9 * P.FINGERPRINT_ATOL)) == P.fingerprint(torch.relu)
    assert P.fingerprint(plus(-0.9 * P.FINGERPRINT_ATOL)) == P.fingerprint(torch.relu)
    assert P.fingerprint(plus(1.5 * P.FINGERPRINT_ATOL)) != P.fingerprint(torch.relu)


def test_fingerprint_keeps_five_significant_digits():
    base = P.fingerprint(lambda x: x * 0 + 1.0)
    assert P.fingerprint(lambda x: x * 0 + 1.000001) == base  # the 7th digit: rounded away
    assert P.fingerprint(lambda x: x * 0 + 1.0001) != base  # the 5th digit: kept


def test_curve_is_finite_plain_numbers_on_the_curve_points():
    record = P.curve(lambda x: 1 / x)  # inf at 0, huge slopes around it
    assert record["x"] == [round(v, 4) for v in P.curve_points().tolist()]
    assert record["x"][60] == 0.0 and record["x"][1] == pytest.approx(-5.9, abs=1e-4)
    assert abs(record["y"][60]) == P.DESCRIPTOR_CLIP and record["dy"][60] == -P.DESCRIPTOR_CLIP
    assert all(type(v) is float and math.isfinite(v) for v in record["y"] + record["dy"])
    nan = P.curve(lambda x: x * torch.where(x > 0, math.nan, 1.0))
    assert nan["y"][-1] == 0.0 and nan["y"][0] == -6.0


def test_bounded_means_below_ten_on_the_wide_grid():
    assert P.descriptors(lambda x: 9.9 * torch.tanh(x))["bounded"] is True
    assert P.descriptors(lambda x: 10.1 * torch.tanh(x))["bounded"] is False
    assert P.descriptors(lambda x: torch.where(x.abs() > 99, 1e3, 0.0) + torch.tanh(x))["bounded"] is False
    assert P.descriptors(lambda x: torch.where(x.abs() < 1, math.nan, 0.0 * x))["bounded"] is False  # NaN: unbounded


def test_sign_changes_ignore_slopes_below_the_derivative_threshold():
    assert P.descriptors(lambda x: 1e-7 * torch.sin(x))["sign_changes"] == 0
    assert P.descriptors(lambda x: 1e-5 * torch.sin(x))["sign_changes"] == 4
    assert P.descriptors(lambda x: torch.relu(x - 1) - torch.relu(-x - 1))["sign_changes"] == 0  # flat middle


def test_descriptors_growth_is_measured_at_1e3():
    d = P.descriptors(lambda x: torch.where(x.abs() >= 1e3, 3 * x, x))
    assert d["growth_pos"] == pytest.approx(3.0) and d["growth_neg"] == pytest.approx(3.0)
    d = P.descriptors(lambda x: torch.where(x.abs() >= 1e3, -20 * x, x))
    assert d["growth_pos"] == -10.0 and d["growth_neg"] == -10.0  # clipped to [−10, 10]


def test_mean_curvature_is_the_mean_second_difference_on_minus_3_to_3():
    assert P.descriptors(lambda x: x * x)["mean_curvature"] == pytest.approx(2.0, rel=1e-3)
    assert P.descriptors(lambda x: 0.5 * x * x + x)["mean_curvature"] == pytest.approx(1.0, rel=1e-3)
    # outside [−3, 3] the function may bend as it likes
    assert P.descriptors(lambda x: torch.where(x.abs() > 3.5, x * x, 0.0 * x))["mean_curvature"] == pytest.approx(
        0.0, abs=1e-9
    )
    assert P.descriptors(lambda x: x.abs() * 6)["mean_curvature"] == pytest.approx(2.0, rel=0.02)


def test_descriptors_are_computed_in_float64_by_default_and_in_the_dtype_asked():
    seen = set()

    def records(x):
        seen.add(x.dtype)
        return torch.tanh(x)

    P.descriptors(records)
    assert seen == {torch.float64}
    seen.clear()
    P.descriptors(records, torch.float32)
    assert seen == {torch.float32}


def _float32_only(x):
    if x.dtype != torch.float32:
        raise TypeError("float32 only")
    return torch.tanh(x)


def _fails_on_one_element(x):
    if x.numel() == 1:
        raise ValueError("one element")
    return torch.tanh(x)


def test_run_probes_describes_a_float32_only_candidate_in_float32():
    result = P.run_probes(_float32_only)
    assert result["descriptors"] == P.descriptors(_float32_only, torch.float32)
    assert result["descriptors"] != P.descriptors(torch.tanh)  # float32, not float64, values
    for dtype in (torch.float32, torch.float64):
        with pytest.raises(ProbeFailure) as info:
            P.run_probes(_fails_on_one_element, dtype=dtype)
        assert info.value.code == "runtime_error" and "at x = 0" in str(info.value)


def test_slope_at_zero_of_a_function_without_gradient_is_zero():
    d = P.descriptors(lambda x: torch.tanh(x).detach() + 1)
    assert d["slope_at_0"] == 0.0 and d["value_at_0"] == 1.0 and d["sign_changes"] == 0


# --------------------------------------------------------------------------------------------
# run_probes: what it reports
# --------------------------------------------------------------------------------------------


def test_run_probes_reports_costs_rounded_to_hundredths_and_the_largest_shape_cost():
    def third_of_a_sum(x):
        return x + x.sum() / 3  # 1 (sum) + 1/numel (div) + 1 (add) per element

    result = P.run_probes(
        lambda x: torch.tanh(x) + torch.relu(third_of_a_sum(x)) - torch.relu(third_of_a_sum(x)),
        budget=P.ProbeBudget(allow_batch_dependent=True),
    )
    assert result["flops_per_element"] == round(result["flops_per_element"], 2)
    assert result["ops"]["tanh"] == 1


def test_the_flop_failure_names_the_training_shape_when_it_is_the_costliest():
    generous = P.ProbeBudget(max_flops_per_element=50, max_saved_bytes_per_element=1e6)
    with pytest.raises(ProbeFailure) as info:
        P.run_probes(_heavy_when_large, budget=generous)
    assert info.value.code == "over_flop_budget"
    assert " on a 4×128×64 tensor (the training shape)" in str(info.value)
    assert "a transcendental op counts 8" in str(info.value) and "over the budget of 50" in str(info.value)
    with pytest.raises(ProbeFailure) as info:
        P.run_probes(torch.tanh, budget=P.ProbeBudget(max_flops_per_element=7.99))
    assert "training shape" not in str(info.value) and "costs 8 weighted" in str(info.value)


def test_run_probes_checks_each_training_shape_given():
    with pytest.raises(ProbeFailure) as info:
        P.run_probes(
            _heavy_when_large,
            shapes=((2, 3), (100, 60)),
            budget=P.ProbeBudget(max_flops_per_element=50, max_saved_bytes_per_element=1e6),
        )
    assert "on a 100×60 tensor" in str(info.value)
    assert P.run_probes(_heavy_when_large, shapes=((2, 3),))["flops_per_element"] < 5


def test_size_and_dtype_reach_the_cost_helpers():
    assert P.flops_per_element(_heavy_when_large, size=6000)[0] > 100 > P.flops_per_element(_heavy_when_large)[0]
    assert (
        P.backward_flops_per_element(_heavy_when_large, size=6000)
        > P.backward_flops_per_element(_heavy_when_large) + 10
    )
    assert P.saved_bytes_per_element(_heavy_when_large, size=6000) > P.saved_bytes_per_element(_heavy_when_large)
    assert P.saved_bytes_per_element(torch.relu, torch.float64, size=10) == 8.0
    assert P.measure_cost(torch.relu, size=10).saved_bytes_per_element == 4.0


# --------------------------------------------------------------------------------------------
# TrainingCheck: which values it compares
# --------------------------------------------------------------------------------------------


def test_training_check_ignores_what_training_fails_on_itself():
    check = P.TrainingCheck(torch.relu, P.curve(torch.relu))
    h = torch.randn(2, 6, 4)
    check(h, "not a tensor", "here")
    check(h, torch.zeros(3), "here")  # another shape: training raises its own error
    assert check.checked == 2


def test_training_check_compares_the_last_values_of_a_one_dimensional_call():
    check = P.TrainingCheck(torch.relu, P.curve(torch.relu))
    h = torch.randn(3000, generator=torch.Generator().manual_seed(1))
    out = torch.relu(h)
    out[: 3000 - P.CONSISTENCY_POINTS] = 7.0  # values the check does not compare
    check(h, out, "here")
    out[-1] += 1.0
    with pytest.raises(ProbeFailure) as info:
        check(h, out, "at step 2")
    assert info.value.code == "inconsistent_function" and "as a 1-D tensor at step 2" in str(info.value)


def test_training_check_sub_batch_is_the_first_model_s_first_rows():
    check = P.TrainingCheck(torch.relu, P.curve(torch.relu))
    h = torch.randn(2, 10, 400, generator=torch.Generator().manual_seed(2))
    out = torch.relu(h)
    out[1, :5] += 1.0  # another model's first rows: neither the sub-batch nor the last values see them,
    out[0, 5:] += 1.0  # nor the first model's rows past the first SUB_BATCH_ROWS
    check(h, out, "here")
    out[1, -1, -1] += 1.0  # but the last values are compared
    with pytest.raises(ProbeFailure) as info:
        check(h, out, "here")
    assert "as a 1-D tensor" in str(info.value)
    out = torch.relu(h)
    out[0, P.TrainingCheck.SUB_BATCH_ROWS - 1, 0] += 1.0
    with pytest.raises(ProbeFailure) as info:
        check(h, out, "here")
    assert "sub-batch" in str(info.value)
    out = torch.relu(h)
    out[0, P.TrainingCheck.SUB_BATCH_ROWS, 0] += 1.0  # just past the sub-batch, not among the last values
    check(h, out, "here")


def test_training_check_tolerates_non_finite_curves_recorded_clipped():
    f = lambda x: 1 / x  # noqa: E731  (inf at 0: recorded as the clip value)
    check = P.TrainingCheck(f, P.curve(f))
    h = torch.rand(2, 6, 4) + 1
    check(h, f(h), "here")
    assert check.checked == 1


def test_training_check_compares_two_dimensional_calls_on_their_first_rows():
    check = P.TrainingCheck(torch.relu, P.curve(torch.relu))
    h = torch.randn(10, 400, generator=torch.Generator().manual_seed(3))
    out = torch.relu(h)
    out[P.TrainingCheck.SUB_BATCH_ROWS - 1, 0] += 1.0  # in the first rows, not among the last values
    with pytest.raises(ProbeFailure) as info:
        check(h, out, "at step 4")
    assert "on a sub-batch of the training tensor at step 4" in str(info.value)


def test_training_check_messages_name_the_inputs_that_disagree():
    check = P.TrainingCheck(torch.relu, P.curve(torch.relu))
    h = torch.randn(3000, generator=torch.Generator().manual_seed(1))
    out = torch.relu(h)
    out[-2] += 1.0
    with pytest.raises(ProbeFailure) as info:
        check(h, out, "at step 2")
    assert f"at inputs such as [{float(f'{h[-2]:.6g}')}]" in str(info.value)
    check = P.TrainingCheck(torch.tanh, P.curve(torch.relu))
    with pytest.raises(ProbeFailure) as info:
        check(h, torch.tanh(h), "at step 3")
    assert str(info.value).startswith(
        "at step 3, the activation no longer computes the function the probes "
        "recorded (at inputs such as [-6.0, -5.9, -5.8]"
    )


def test_training_check_says_where_a_fresh_call_misbehaved():
    check = P.TrainingCheck(_counter(), P.curve(torch.relu))
    h = torch.randn(4, 6)
    with pytest.raises(ProbeFailure) as info:
        check(h, torch.relu(h), "at step 5")
    assert info.value.code == "nondeterministic" and "on a sub-batch of the training tensor at step 5" in str(
        info.value
    )

    def fails_on_the_curve(x):
        if x.numel() == P.CURVE_POINTS:
            raise ValueError("not here")
        return torch.relu(x)

    check = P.TrainingCheck(fails_on_the_curve, P.curve(torch.relu))
    with pytest.raises(ProbeFailure) as info:
        check(h, torch.relu(h), "at step 6")
    assert info.value.code == "runtime_error" and "on the curve's points at step 6" in str(info.value)


def test_training_check_accepts_training_output_in_another_dtype():
    check = P.TrainingCheck(torch.relu, P.curve(torch.relu))
    h = torch.randn(3, 5, 8)
    check(h, torch.relu(h).double(), "here")
    assert check.checked == 1


def _wild(x):
    """NaN, ±inf and huge values on parts of the curve's range: the curve records them clipped."""
    y = torch.where(x > 4, 2e6, x)
    y = torch.where(x < -4, -2e6, y)
    y = torch.where(x > 5, math.inf, y)
    y = torch.where(x < -5, -math.inf, y)
    return torch.where(x.abs() > 5.5, math.nan, y)


def test_training_check_compares_the_curve_as_recorded_with_nan_and_infinities_clipped():
    record = P.curve(_wild)
    assert record["y"][0] == 0.0 and record["y"][6] == -P.DESCRIPTOR_CLIP and record["y"][-7] == P.DESCRIPTOR_CLIP
    assert record["y"][15] == -P.DESCRIPTOR_CLIP and record["y"][-16] == P.DESCRIPTOR_CLIP  # the huge values
    check = P.TrainingCheck(_wild, record)
    h = torch.randn(2, 6, 10)
    check(h, _wild(h), "here")
    assert check.checked == 1


def _exp_of_the_first_hundred(x):
    return torch.tanh(x) + torch.exp(x[..., :100]).sum()


def test_run_probes_reports_each_cost_as_its_largest_over_the_shapes_rounded_to_hundredths():
    costs = [P.measure_cost(_exp_of_the_first_hundred), P.measure_cost(_exp_of_the_first_hundred, shape=(3, 40, 16))]
    result = P.run_probes(
        _exp_of_the_first_hundred, shapes=((3, 40, 16),), budget=P.ProbeBudget(allow_batch_dependent=True)
    )
    assert result["flops_per_element"] == round(max(c.flops_per_element for c in costs), 2)
    assert result["backward_flops_per_element"] == round(max(c.backward_flops_per_element for c in costs), 2) == 4.02
    assert result["saved_bytes_per_element"] == round(max(c.saved_bytes_per_element for c in costs), 2)
    assert result["pointwise"] is False


def test_mean_curvature_of_a_function_with_nan_near_zero_is_the_clip_value():
    d = P.descriptors(lambda x: torch.where(x.abs() < 0.5, math.nan, x))
    assert d["mean_curvature"] == P.DESCRIPTOR_CLIP and d["bounded"] is False


def test_measure_cost_of_an_output_that_ignores_its_input_is_measured_not_refused():
    weight = torch.ones(1, requires_grad=True)
    cost = P.measure_cost(lambda x: x.detach() * weight)  # depends on a parameter, not on x
    assert (cost.flops_per_element, cost.backward_flops_per_element, cost.ops) == (1.0, 0.0, {"mul": 1})


def test_training_check_sub_batch_starts_at_the_first_row():
    check = P.TrainingCheck(torch.relu, P.curve(torch.relu))
    h = torch.randn(2, 10, 400, generator=torch.Generator().manual_seed(2))
    out = torch.relu(h)
    out[0, 0, 0] += 1.0
    with pytest.raises(ProbeFailure) as info:
        check(h, out, "here")
    assert "sub-batch" in str(info.value)


def test_failures_on_the_wide_and_far_inputs_say_where():
    def fails_on_the_wide_grid(x):
        if 50 < float(x.detach().abs().max()) < 500:
            raise ValueError("wide")
        return torch.tanh(x)

    with pytest.raises(ProbeFailure) as info:
        P.descriptors(fails_on_the_wide_grid)
    assert "on [−100, 100]: wide" in str(info.value)

    def fails_far_away(x):
        if float(x.detach().abs().max()) > 1e20:
            raise ValueError("far")
        return torch.tanh(x)

    with pytest.raises(ProbeFailure) as info:
        P.check_far_inputs(fails_far_away)
    assert str(info.value) == "the activation raised ValueError on the far probe points (3e4 < |x| ≤ 1e30): far"


def test_gradient_failure_messages():
    weight = torch.ones(1, requires_grad=True)
    with pytest.raises(ProbeFailure) as info:
        P.run_probes(lambda x: x.detach() * weight)  # differentiable, but not in x
    assert (info.value.code, str(info.value)) == (
        "no_gradient",
        "the output does not depend differentiably on the input",
    )
    with pytest.raises(ProbeFailure) as info:
        P.run_probes(lambda x: x * 0)
    assert (info.value.code, str(info.value)) == ("zero_gradient", "the gradient is zero everywhere on the probe set")


def test_the_batch_dependence_message_says_why_and_how_to_allow_it():
    with pytest.raises(ProbeFailure) as info:
        P.run_probes(lambda x: torch.tanh(x) - x.mean())
    assert str(info.value).startswith(
        "the output for one element depends on other elements of the tensor (batch statistics such as mean or std, "
        "softmax, roll): in the paper such functions won the lab, where the statistics come from one small task's "
        "batch, and failed downstream; set probes.allow_batch_dependent to true"
    )
