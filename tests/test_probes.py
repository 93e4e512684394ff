"""Tests of actmine.candidate.probes: cheap checks of an activation before training."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from actmine import activations
from actmine.candidate import probes as P
from actmine.candidate.probes import ProbeFailure

FAST = settings(max_examples=20, deadline=None)


# --------------------------------------------------------------------------------------------
# is_pointwise
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, fn", [
    ("relu", torch.relu),
    ("gelu", F.gelu),
    ("sin", torch.sin),
    ("swish", lambda x: x * torch.sigmoid(x)),
    ("gelu_sine", activations.get("gelu_sine")),
    ("where", lambda x: torch.where(x > 0, x, 0.1 * x)),
])
def test_pointwise_functions(name, fn):
    assert P.is_pointwise(fn) is True


@pytest.mark.parametrize("name, fn", [
    ("centre", lambda x: x - x.mean()),
    ("scale", lambda x: x / x.std()),
    ("roll", lambda x: torch.roll(x, 1, -1)),
    ("softmax", lambda x: torch.softmax(x, -1)),
    ("cumsum", lambda x: torch.cumsum(x, -1)),
    ("row-centre", lambda x: x - x.mean(-1, keepdim=True)),
    ("layer-norm", lambda x: F.layer_norm(x, x.shape[-1:])),
    ("column-centre", lambda x: x - x.mean(0, keepdim=True)),
    ("turbulent", activations.get("turbulent")),
])
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
    assert P.fingerprint(lambda x: torch.sin(math.pi * x)) == \
        P.fingerprint(lambda x: torch.cos(math.pi * x - math.pi / 2))


def test_fingerprint_separates_different_functions():
    prints = {P.fingerprint(f) for f in (torch.relu, F.gelu, F.silu, torch.tanh, torch.sin,
                                         lambda x: x, lambda x: 1.01 * x)}
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


@pytest.mark.parametrize("fn, code", [
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
])
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
    assert {"pointwise", "flops_per_element", "fingerprint"} <= set(result)
    assert result["pointwise"] is True
    assert result["flops_per_element"] >= 1
    assert result["fingerprint"] == P.fingerprint(F.gelu)
    turbulent = P.run_probes(activations.get("turbulent"))
    assert turbulent["pointwise"] is False


def test_run_probes_in_float64():
    result = P.run_probes(torch.tanh, dtype=torch.float64)
    assert result["pointwise"] is True
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
