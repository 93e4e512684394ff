"""Tests for actmine.activations: the functions, the modules and the registry.

Three kinds of evidence are used, from strongest to weakest:

* torch's own kernels, for the classic activations torch implements
  (values and gradients, property-based over random inputs);
* closed forms: values and derivatives at 0, asymptotes and bounds that
  follow from the formulas on paper;
* independent scalar re-implementations with Python's ``math`` module, which
  pin the paper functions and their default constants.
"""

from __future__ import annotations

import copy
import doctest
import math
import pickle
import statistics

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from actmine import activations as A
from actmine.activations import classic, paper, registry
from actmine.activations.registry import (
    Activation,
    ActivationFromCallable,
    ActivationInfo,
    ActivationRegistry,
    UnknownActivationError,
)

CLASSIC = (
    "relu",
    "leaky_relu",
    "elu",
    "selu",
    "gelu",
    "gelu_tanh",
    "silu",
    "mish",
    "softplus",
    "tanh",
    "sigmoid",
    "snake",
    "sin",
    "identity",
)
PAPER = ("gelu_sine", "gelu_sinc_perturbation", "gmtu", "turbulent")
BUILTIN = CLASSIC + PAPER
DTYPES = (torch.float32, torch.float64)
# float32: a few ulps of disagreement between our composed formulas and
# torch's fused kernels; float64 should agree to ~1e-15 relative.
TOL = {
    torch.float32: dict(rtol=1e-5, atol=1e-6),
    torch.float64: dict(rtol=1e-10, atol=1e-12),
}

# Hypothesis: no deadline (first calls into torch kernels are slow), and a
# modest number of examples to keep the file well under 20 s.
SETTINGS = settings(deadline=None, max_examples=25)


def value_and_grad(fn, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``fn(x)`` and d(sum fn(x))/dx -- the elementwise derivative for pointwise fn."""
    x = x.detach().clone().requires_grad_(True)
    y = fn(x)
    (g,) = torch.autograd.grad(y.sum(), x)
    return y.detach(), g


def float_tensors(dtype: torch.dtype, bound: float = 1e3, max_size: int = 32):
    width = 32 if dtype == torch.float32 else 64
    elements = st.floats(-bound, bound, allow_nan=False, allow_infinity=False, width=width)
    return st.lists(elements, min_size=1, max_size=max_size).map(lambda v: torch.tensor(v, dtype=dtype))


def scalar(v: float, dtype=torch.float64) -> torch.Tensor:
    return torch.tensor(v, dtype=dtype)


# -- independent scalar references (Python math, not torch) ---------------------


def gelu_ref(v: float) -> float:
    return 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0)))


def gelu_tanh_ref(v: float) -> float:
    return 0.5 * v * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v**3)))


def sinc_ref(v: float) -> float:
    return 1.0 if v == 0 else math.sin(math.pi * v) / (math.pi * v)


# ------------------------------------------------------------------------------
# Against torch's own implementations
# ------------------------------------------------------------------------------

TORCH_REFERENCES = [
    ("gelu", {}, nn.GELU()),
    ("gelu", {"approximate": "tanh"}, nn.GELU(approximate="tanh")),
    ("gelu_tanh", {}, nn.GELU(approximate="tanh")),
    ("silu", {}, nn.SiLU()),
    ("mish", {}, nn.Mish()),
    ("elu", {}, nn.ELU()),
    ("elu", {"alpha": 0.5}, nn.ELU(alpha=0.5)),
    ("selu", {}, nn.SELU()),
    ("softplus", {}, nn.Softplus()),
    ("softplus", {"beta": 2.0, "threshold": 5.0}, nn.Softplus(beta=2.0, threshold=5.0)),
    ("leaky_relu", {}, nn.LeakyReLU()),
    ("leaky_relu", {"negative_slope": 0.2}, nn.LeakyReLU(negative_slope=0.2)),
    ("relu", {}, nn.ReLU()),
    ("tanh", {}, nn.Tanh()),
    ("sigmoid", {}, nn.Sigmoid()),
    ("identity", {}, nn.Identity()),
]
REFERENCE_IDS = [f"{n}{k or ''}" for n, k, _ in TORCH_REFERENCES]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name,kwargs,reference", TORCH_REFERENCES, ids=REFERENCE_IDS)
@given(data=st.data())
@SETTINGS
def test_matches_torch_values_and_gradients(name, kwargs, reference, dtype, data):
    x = data.draw(float_tensors(dtype))
    ours = A.get(name, **kwargs)
    y, g = value_and_grad(ours, x)
    y_ref, g_ref = value_and_grad(reference, x)
    assert y.dtype == dtype
    torch.testing.assert_close(y, y_ref, **TOL[dtype])
    torch.testing.assert_close(g, g_ref, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name,kwargs,reference", TORCH_REFERENCES, ids=REFERENCE_IDS)
def test_matches_torch_on_edge_values(name, kwargs, reference, dtype):
    # The kinks (0), thresholds (softplus at 20 and 2.5) and overflow regions
    # of exp() are where hand-written formulas usually go wrong.
    x = torch.tensor(
        [0.0, -0.0, 1e-30, -1e-30, 2.5, 19.99, 20.0, 20.01, -20.0, 88.0, 100.0, -100.0, 1e4, -1e4],
        dtype=dtype,
    )
    y, g = value_and_grad(A.get(name, **kwargs), x)
    y_ref, g_ref = value_and_grad(reference, x)
    torch.testing.assert_close(y, y_ref, **TOL[dtype])
    torch.testing.assert_close(g, g_ref, **TOL[dtype])
    assert torch.isfinite(g).all()


# ------------------------------------------------------------------------------
# Closed forms
# ------------------------------------------------------------------------------

SELU_LAMBDA_ALPHA = classic.SELU_SCALE * classic.SELU_ALPHA


@pytest.mark.parametrize(
    "name,kwargs,value,derivative",
    [
        ("relu", {}, 0.0, 0.0),  # torch's convention at the kink
        ("leaky_relu", {}, 0.0, 0.01),
        ("elu", {}, 0.0, 1.0),
        ("selu", {}, 0.0, SELU_LAMBDA_ALPHA),
        ("gelu", {}, 0.0, 0.5),
        ("gelu_tanh", {}, 0.0, 0.5),
        ("silu", {}, 0.0, 0.5),
        ("mish", {}, 0.0, 0.6),  # tanh(log 2) = 3/5
        ("softplus", {}, math.log(2.0), 0.5),
        ("tanh", {}, 0.0, 1.0),
        ("sigmoid", {}, 0.5, 0.25),
        ("snake", {}, 0.0, 1.0),
        ("snake", {"a": 3.0}, 0.0, 1.0),
        ("sin", {}, 0.0, 1.0),
        ("identity", {}, 0.0, 1.0),
        ("gelu_sine", {}, 0.0, 0.5 + 0.1),
        ("gelu_sine", {"alpha": 0.3}, 0.0, 0.5 + 0.3),
        ("gelu_sine", {"approximate": "none"}, 0.0, 0.5 + 0.1),
        ("gelu_sinc_perturbation", {}, 0.0, 0.5 * (1 + 0.5)),
        ("gelu_sinc_perturbation", {"alpha": 0.2, "approximate": "none"}, 0.0, 0.5 * (1 + 0.2)),
        ("gmtu", {}, 0.0, 1.5 + 0.1),
        ("gmtu", {"beta": 2.0, "gamma": 1.0, "alpha": 0.3}, 0.0, 2.0 + 0.3),
    ],
)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_value_and_derivative_at_zero(name, kwargs, value, derivative, dtype):
    y, g = value_and_grad(A.get(name, **kwargs), torch.zeros(1, dtype=dtype))
    assert y.item() == pytest.approx(value, abs=1e-7)
    assert g.item() == pytest.approx(derivative, abs=1e-6)


@pytest.mark.parametrize("fn", [A.gelu, A.gelu_tanh], ids=["erf", "tanh"])
def test_gelu_asymptotes(fn):
    for v in (10.0, 20.0, 50.0, 1e3, 1e6):  # GELU(x)/x -> 1 as x -> +inf
        assert fn(scalar(v)).item() / v == pytest.approx(1.0, abs=1e-12)
    for v in (-10.0, -20.0, -50.0, -1e3):  # GELU(x)/x -> 0 as x -> -inf
        assert abs(fn(scalar(v)).item() / v) < 1e-12
    # ... and the approach is monotone over a range where it is not yet exact.
    ratios = [fn(scalar(v)).item() / v for v in (1.0, 2.0, 3.0, 4.0)]
    assert ratios == sorted(ratios)


def test_selu_limits():
    assert A.selu(scalar(-50.0)).item() == pytest.approx(-SELU_LAMBDA_ALPHA, rel=1e-12)
    assert A.selu(scalar(2.0)).item() == pytest.approx(2.0 * classic.SELU_SCALE, rel=1e-12)


@given(x=st.floats(-1e3, 1e3), a=st.floats(0.05, 20.0))
@SETTINGS
def test_snake_derivative_and_periodic_part(x, a):
    # d/dx [x + sin²(ax)/a] = 1 + 2 sin(ax) cos(ax) = 1 + sin(2ax)
    y, g = value_and_grad(lambda t: A.snake(t, a), scalar(x))
    assert g.item() == pytest.approx(1.0 + math.sin(2 * a * x), abs=1e-9)
    periodic = y.item() - x
    tol = 1e-12 * max(1.0, abs(x))  # cancellation in y - x
    assert -tol <= periodic <= 1.0 / a + tol


def test_snake_periodic_part_reaches_its_bounds():
    a = 2.0
    m = A.Snake(a=a)
    peak = torch.tensor(math.pi / (2 * a), dtype=torch.float64)  # sin² = 1
    assert (m(peak) - peak).item() == pytest.approx(1.0 / a)
    trough = torch.tensor(math.pi / a, dtype=torch.float64)  # sin² = 0
    assert (m(trough) - trough).item() == pytest.approx(0.0, abs=1e-15)


def test_snake_rejects_nonpositive_frequency():
    for a in (0.0, -1.0):
        with pytest.raises(ValueError):
            A.Snake(a=a)
        with pytest.raises(ValueError):
            A.snake(torch.ones(2), a=a)


def test_snake_accepts_tensor_frequency():
    # A per-channel frequency (as learnable-snake variants use) broadcasts.
    x = torch.randn(4, 3, dtype=torch.float64)
    a = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    expected = torch.stack([A.snake(x[:, i], float(a[i])) for i in range(3)], dim=1)
    torch.testing.assert_close(A.snake(x, a), expected)


@given(x=st.floats(-1e4, 1e4), alpha=st.floats(0.0, 1.0))
@SETTINGS
def test_gelu_sine_stays_within_alpha_of_gelu(x, alpha):
    t = scalar(x)
    diff = (A.gelu_sine(t, alpha) - A.gelu_tanh(t)).item()
    assert abs(diff) <= alpha + 1e-9
    assert diff == pytest.approx(alpha * math.sin(x), abs=1e-9)


def test_gelu_sine_bound_is_attained():
    t = scalar(math.pi / 2)
    assert (A.gelu_sine(t, 0.1) - A.gelu_tanh(t)).item() == pytest.approx(0.1)


@pytest.mark.parametrize("alpha", [0.0, 0.05, 0.1, 0.2, 0.5, 1.0])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_gelu_sine_alpha_sweep(alpha, dtype):
    x = torch.linspace(-8, 8, 257, dtype=dtype)
    m = A.get("gelu_sine", alpha=alpha)
    torch.testing.assert_close(m(x) - nn.GELU(approximate="tanh")(x), alpha * torch.sin(x), **TOL[dtype])
    exact = A.get("gelu_sine", alpha=alpha, approximate="none")
    torch.testing.assert_close(exact(x) - nn.GELU()(x), alpha * torch.sin(x), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_alpha_zero_recovers_gelu(dtype):
    x = torch.linspace(-10, 10, 201, dtype=dtype)
    tanh_gelu, erf_gelu = nn.GELU(approximate="tanh")(x), nn.GELU()(x)
    # Default GELU in the paper functions is the tanh approximation (jax.nn.gelu).
    torch.testing.assert_close(A.get("gelu_sine", alpha=0.0)(x), tanh_gelu, **TOL[dtype])
    torch.testing.assert_close(A.get("gelu_sinc_perturbation", alpha=0.0)(x), tanh_gelu, **TOL[dtype])
    torch.testing.assert_close(A.get("gelu_sine", alpha=0.0, approximate="none")(x), erf_gelu, **TOL[dtype])
    # The tanh default is a real choice: the two variants differ measurably.
    assert (tanh_gelu - erf_gelu).abs().max() > 1e-4


@given(x=st.floats(1.0, 1e4), alpha=st.floats(0.0, 1.0))
@SETTINGS
def test_gelu_sinc_perturbation_tends_to_gelu(x, alpha):
    for v in (x, -x):
        t = scalar(v)
        g = A.gelu_tanh(t).item()
        # |GELU·α·sinc| <= |GELU|·α/(π|x|): relative gap shrinks like 1/|x|,
        # and for x -> -inf both sides vanish with GELU.
        gap = abs(A.gelu_sinc_perturbation(t, alpha).item() - g)
        assert gap <= abs(g) * alpha / (math.pi * abs(v)) + 1e-12


def test_gelu_sinc_perturbation_equals_gelu_at_integers():
    n = torch.tensor([-5.0, -3.0, -1.0, 1.0, 2.0, 7.0, 100.0], dtype=torch.float64)
    torch.testing.assert_close(A.gelu_sinc_perturbation(n), A.gelu_tanh(n), rtol=1e-12, atol=1e-14)
    # ... and differs from it in between.
    half = n + 0.5
    assert not torch.allclose(A.gelu_sinc_perturbation(half), A.gelu_tanh(half))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("approximate", ["tanh", "none"])
def test_gelu_sinc_perturbation_is_smooth_at_zero(dtype, approximate):
    alpha = 0.5
    x = torch.tensor([0.0, -0.0, 1e-8, -1e-8, 1e-30], dtype=dtype)
    y, g = value_and_grad(lambda t: A.gelu_sinc_perturbation(t, alpha, approximate), x)
    assert torch.isfinite(y).all() and torch.isfinite(g).all()
    assert y[0].item() == 0.0
    # The derivative is continuous through 0: 0.5·(1 + α) on both sides.
    torch.testing.assert_close(g, torch.full_like(g, 0.5 * (1 + alpha)), rtol=0, atol=1e-6)


@given(
    x=st.floats(-1e3, 1e3),
    beta=st.floats(0.1, 5.0),
    gamma=st.floats(0.01, 2.0),
    alpha=st.floats(0.0, 1.0),
)
@SETTINGS
def test_gmtu_envelope_bound(x, beta, gamma, alpha):
    # |tanh| <= 1, so the deviation from the linear leak is bounded by the envelope.
    y = A.gmtu(scalar(x), beta, gamma, alpha).item()
    assert abs(y - alpha * x) <= math.exp(-gamma * x * x) + 1e-12


def test_gmtu_tends_to_linear_leak_and_is_odd():
    x = torch.tensor([20.0, 50.0, 1e3, -20.0, -50.0, -1e3], dtype=torch.float64)
    torch.testing.assert_close(A.gmtu(x), 0.1 * x, rtol=0, atol=1e-30)
    x = torch.linspace(-10, 10, 101, dtype=torch.float64)
    torch.testing.assert_close(A.gmtu(-x), -A.gmtu(x))


# ------------------------------------------------------------------------------
# Paper functions against scalar re-implementations (pins the default constants)
# ------------------------------------------------------------------------------

GRID = [-6.0, -3.3, -1.0, -0.5, -1e-3, 0.0, 1e-3, 0.25, 0.5, 1.0, 1.7, 3.0, 6.0]


def _paper_references():
    return {
        "gelu_sine": lambda v: gelu_tanh_ref(v) + 0.1 * math.sin(v),
        "gelu_sinc_perturbation": lambda v: gelu_tanh_ref(v) * (1.0 + 0.5 * sinc_ref(v)),
        "gmtu": lambda v: math.tanh(1.5 * v) * math.exp(-0.2 * v * v) + 0.1 * v,
    }


@pytest.mark.parametrize("name", ["gelu_sine", "gelu_sinc_perturbation", "gmtu"])
def test_paper_pointwise_defaults_match_scalar_reference(name):
    ref = _paper_references()[name]
    x = torch.tensor(GRID, dtype=torch.float64)
    expected = torch.tensor([ref(v) for v in GRID], dtype=torch.float64)
    torch.testing.assert_close(A.get(name)(x), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(A.info(name).function(x), expected, rtol=1e-12, atol=1e-12)


def turbulent_ref(values, alpha=0.2, omega=2.0, base=gelu_tanh_ref):
    mean = statistics.fmean(values)
    std = statistics.pstdev(values)  # population std, as jnp.std
    out = []
    for v in values:
        z = (v - mean) / (std + 1e-6)
        out.append(base(v) + alpha * math.exp(-z * z / 2) * math.sin(omega * v))
    return out


def test_turbulent_matches_scalar_reference_over_whole_tensor():
    x = torch.tensor([[0.3, -1.2, 2.5], [0.0, 4.0, -0.7]], dtype=torch.float64)
    expected = torch.tensor(turbulent_ref(x.flatten().tolist()), dtype=torch.float64).view_as(x)
    torch.testing.assert_close(A.get("turbulent")(x), expected, rtol=1e-12, atol=1e-12)
    # Statistics are over the whole tensor, not per row.
    per_row = torch.stack([A.turbulent(row) for row in x])
    assert not torch.allclose(A.turbulent(x), per_row)


# ------------------------------------------------------------------------------
# Turbulent: batch-dependent
# ------------------------------------------------------------------------------


def test_turbulent_is_not_pointwise():
    torch.manual_seed(0)
    x = torch.randn(8, 4, dtype=torch.float64)
    other = x.clone()
    other[1:] = 3.0 * torch.randn(7, 4, dtype=torch.float64) + 2.0  # row 0 unchanged
    m = A.get("turbulent")
    assert not torch.allclose(m(x)[0], m(other)[0])
    assert A.info("turbulent").pointwise is False
    assert A.is_pointwise("turbulent") is False
    assert A.is_pointwise(m) is False
    assert A.is_pointwise(A.Turbulent) is False


@pytest.mark.parametrize("name", BUILTIN)
def test_pointwise_flag_is_honest(name):
    # A pointwise activation's output at one element must not depend on the
    # others; the flag in the registry must say exactly that.
    torch.manual_seed(1)
    x = torch.randn(6, 5, dtype=torch.float64)
    other = x.clone()
    other[1:] = 3.0 * torch.randn(5, 5, dtype=torch.float64) + 2.0
    m = A.get(name)
    same = torch.equal(m(x)[0], m(other)[0])
    assert same == A.info(name).pointwise == A.is_pointwise(name) == A.is_pointwise(m)


def test_turbulent_is_permutation_equivariant():
    torch.manual_seed(2)
    x = torch.randn(32, dtype=torch.float64)
    perm = torch.randperm(32)
    torch.testing.assert_close(A.turbulent(x[perm]), A.turbulent(x)[perm])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("fill,shape", [(0.0, (5,)), (3.0, (4, 3)), (-2.0, (1,)), (7.0, ())])
def test_turbulent_constant_input(dtype, fill, shape):
    # std = 0: z must be 0 (not 0/0), values and gradients finite.
    x = torch.full(shape, fill, dtype=dtype)
    y, g = value_and_grad(A.get("turbulent"), x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all() and torch.isfinite(g).all()
    expected = A.gelu_tanh(x) + 0.2 * torch.sin(2.0 * x)  # window exp(0) = 1
    torch.testing.assert_close(y, expected, **TOL[dtype])


def test_turbulent_configurable_base():
    torch.manual_seed(3)
    x = torch.randn(10, dtype=torch.float64)
    ripple = A.turbulent(x) - A.gelu_tanh(x)  # the base-independent part
    for base in ("relu", "ReLU", torch.relu, nn.ReLU()):
        torch.testing.assert_close(A.turbulent(x, base=base), torch.relu(x) + ripple)
        torch.testing.assert_close(A.get("turbulent", base=base)(x), torch.relu(x) + ripple)
    torch.testing.assert_close(A.turbulent(x, approximate="none"), A.gelu(x) + ripple)
    assert isinstance(A.get("turbulent").base, A.GELU)
    assert A.get("turbulent").base.approximate == "tanh"
    with pytest.raises(UnknownActivationError):
        A.Turbulent(base="nope")
    with pytest.raises(TypeError):
        A.turbulent(x, base=3)


def test_turbulent_gradient_flows_through_statistics():
    # Moving the other elements changes d f(x)[0] / d x[0] only if the
    # normalisation is part of the graph.
    x = torch.tensor([0.5, 1.0, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(A.turbulent(x)[0], x)
    assert (g[1:] != 0).any()


# ------------------------------------------------------------------------------
# Every registered activation
# ------------------------------------------------------------------------------


def test_all_builtins_registered():
    names = A.list()
    assert set(BUILTIN) <= set(names)
    assert names == sorted(names) and len(names) == len(set(names))
    assert "swish" not in names  # aliases are not listed as names


shapes = st.lists(st.integers(1, 5), min_size=0, max_size=4).map(tuple)


@pytest.mark.parametrize("name", BUILTIN)
@given(shape=shapes, dtype=st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16]))
@settings(deadline=None, max_examples=10)
def test_shape_and_dtype_preserved(name, shape, dtype):
    x = torch.randn(shape).to(dtype)
    y = A.get(name)(x)
    assert y.shape == x.shape
    assert y.dtype == dtype


@pytest.mark.parametrize("name", BUILTIN)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_finite_values_and_gradients_on_grid(name, dtype):
    special = torch.tensor([0.0, 1e-8, -1e-8], dtype=dtype)  # sinc and kinks at 0
    grid = torch.cat([torch.linspace(-50, 50, 2001, dtype=dtype), special])
    y, g = value_and_grad(A.get(name), grid)
    assert torch.isfinite(y).all(), name
    assert torch.isfinite(g).all(), name


@pytest.mark.parametrize("name", BUILTIN)
def test_module_and_function_agree(name):
    x = torch.linspace(-5, 5, 41, dtype=torch.float64).view(1, 41)
    entry = A.info(name)
    assert callable(entry.function)
    torch.testing.assert_close(A.get(name)(x), entry.function(x))


@pytest.mark.parametrize("name", BUILTIN)
def test_get_returns_fresh_instances(name):
    a, b = A.get(name), A.get(name)
    assert a is not b
    assert type(a) is A.info(name).module_cls
    assert isinstance(a, Activation)
    assert isinstance(copy.deepcopy(a), type(a))
    assert name in A.REGISTRY


@pytest.mark.parametrize("name", BUILTIN)
def test_info_metadata(name):
    entry = A.info(name)
    assert isinstance(entry, ActivationInfo)
    assert entry.name == name
    assert entry.formula.strip() and entry.source.strip()
    assert entry.pointwise == (name != "turbulent")
    if name in PAPER:
        assert "2602.05688" in entry.source
    with pytest.raises(AttributeError):  # frozen dataclass
        entry.name = "other"


# ------------------------------------------------------------------------------
# Registry behaviour
# ------------------------------------------------------------------------------


def test_get_names_are_case_and_hyphen_insensitive():
    assert type(A.get("GELU")) is A.GELU
    assert type(A.get("Gelu-Sine")) is A.GELUSine
    assert type(A.get("GELU-Sinc-Perturbation")) is A.GELUSincPerturbation
    assert type(A.get("Leaky-ReLU")) is A.LeakyReLU


def test_aliases():
    assert type(A.get("swish")) is A.SiLU
    assert type(A.get("SWISH")) is A.SiLU
    assert A.info("swish").name == "silu"
    assert "swish" in A.info("silu").aliases
    assert A.is_pointwise("Swish") is True


def test_get_passes_kwargs():
    m = A.get("gelu_sine", alpha=0.3)
    assert isinstance(m, A.GELUSine) and m.alpha == 0.3
    x = torch.linspace(-3, 3, 13, dtype=torch.float64)
    torch.testing.assert_close(m(x) - A.gelu_tanh(x), 0.3 * torch.sin(x))
    assert "alpha=0.3" in repr(m)
    assert A.get("snake", a=2.0).a == 2.0
    assert A.get("gmtu", beta=1.0, gamma=0.5, alpha=0.0).gamma == 0.5


def test_get_rejects_unknown_kwargs():
    with pytest.raises(TypeError) as err:
        A.get("gelu_sine", beta=2.0)
    assert any("gelu_sine" in note for note in err.value.__notes__)
    with pytest.raises(ValueError):
        A.get("gelu", approximate="cubic")


def test_get_wraps_callables():
    x = torch.linspace(-2, 2, 9)
    m = A.get(torch.sin)
    assert isinstance(m, ActivationFromCallable)
    torch.testing.assert_close(m(x), torch.sin(x))
    assert "sin" in repr(m)
    assert A.is_pointwise(m) is None  # unknown, not guessed

    leaky = A.get(F.leaky_relu, negative_slope=0.2)
    torch.testing.assert_close(leaky(x), F.leaky_relu(x, 0.2))
    assert "torch.nn.functional.leaky_relu" in repr(leaky) and "negative_slope=0.2" in repr(leaky)

    lam = A.get(lambda t: 2 * t)
    torch.testing.assert_close(lam(x), 2 * x)
    assert "<lambda>" in repr(lam) and "test_activations.py" in repr(lam)


def test_get_passes_modules_through():
    relu = nn.ReLU()
    assert A.get(relu) is relu
    ours = A.GELUSine(alpha=0.3)
    assert A.get(ours) is ours
    with pytest.raises(TypeError):
        A.get(relu, inplace=True)


def test_get_instantiates_module_classes():
    assert type(A.get(nn.Tanh)) is nn.Tanh
    m = A.get(A.GELUSine, alpha=0.2)
    assert type(m) is A.GELUSine and m.alpha == 0.2


@pytest.mark.parametrize("bad", [42, None, 1.5, ["gelu"]])
def test_get_rejects_non_callables(bad):
    with pytest.raises(TypeError):
        A.get(bad)


def test_unknown_name_lists_known_names_and_suggests():
    with pytest.raises(UnknownActivationError) as err:
        A.get("gleu")
    assert isinstance(err.value, ValueError)
    message = str(err.value)
    assert "unknown activation 'gleu'" in message
    assert "did you mean 'gelu'" in message
    for name in A.list():
        assert name in message
    assert err.value.suggestions[0] == "gelu"
    # A misspelled alias suggests its canonical name.
    with pytest.raises(UnknownActivationError) as err:
        A.get("swiss")
    assert "silu" in err.value.suggestions
    # Nothing close: no suggestion, still the full list.
    with pytest.raises(UnknownActivationError) as err:
        A.get("qqqqqqqq")
    assert "did you mean" not in str(err.value) and err.value.suggestions == ()
    for lookup in (A.info, A.is_pointwise):
        with pytest.raises(UnknownActivationError):
            lookup("gleu")


def test_unknown_name_error_survives_pickling():
    # Errors raised in process-pool workers are pickled back to the parent.
    with pytest.raises(UnknownActivationError) as err:
        A.get("gleu")
    clone = pickle.loads(pickle.dumps(err.value))
    assert type(clone) is UnknownActivationError
    assert str(clone) == str(err.value) and clone.suggestions == err.value.suggestions


@pytest.mark.parametrize("name", BUILTIN)
def test_modules_survive_pickling(name):
    m = A.get(name)
    clone = pickle.loads(pickle.dumps(m))
    x = torch.linspace(-3, 3, 13)
    torch.testing.assert_close(clone(x), m(x))


def test_is_pointwise_variants():
    assert A.is_pointwise("gelu") is True
    assert A.is_pointwise(A.get("gelu_sine")) is True
    assert A.is_pointwise(A.GMTU) is True
    assert A.is_pointwise(nn.ReLU()) is None  # foreign, unregistered module
    assert A.is_pointwise(torch.relu) is None  # plain callable


def test_register_on_private_registry():
    reg = ActivationRegistry()
    entry = reg.register(
        "Hard-Swish", nn.Hardswish, formula="x·relu6(x+3)/6", source="Howard et al. 2019", aliases=("hswish",)
    )
    assert entry.name == "hard_swish" and entry.aliases == ("hswish",)
    assert reg.list() == ["hard_swish"]
    assert type(reg.get("HSWISH")) is nn.Hardswish
    # Foreign classes have no `pointwise` attribute; the registry knows.
    assert reg.is_pointwise(nn.Hardswish()) is True
    # Re-registering the same class under the same name (module reload) is allowed...
    reg.register("hard_swish", nn.Hardswish, formula="f", source="s", aliases=("hswish",))
    # ...but clashes are not.
    with pytest.raises(ValueError):
        reg.register("hard_swish", nn.ReLU, formula="f", source="s")
    with pytest.raises(ValueError):
        reg.register("other", nn.ReLU, formula="f", source="s", aliases=("hswish",))
    with pytest.raises(ValueError):
        reg.register("hswish", nn.ReLU, formula="f", source="s")
    # The pointwise flag must agree with the class attribute.
    with pytest.raises(ValueError):
        reg.register("turb", A.Turbulent, formula="f", source="s", pointwise=True)
    with pytest.raises(TypeError):
        reg.register("fn", torch.relu, formula="f", source="s")
    # Nothing leaked into the global registry.
    assert "hard_swish" not in A.REGISTRY and "hswish" not in A.REGISTRY


def test_module_reprs():
    assert repr(A.get("gelu_sine")) == "GELUSine(alpha=0.1, approximate='tanh')"
    assert repr(A.get("gmtu")) == "GMTU(beta=1.5, gamma=0.2, alpha=0.1)"
    assert "GELU(approximate='tanh')" in repr(A.get("turbulent"))


@pytest.mark.parametrize("module", [registry, classic, paper, A], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    flags = doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, extraglobs={"torch": torch})
    assert result.attempted > 0
    assert result.failed == 0
