"""The winner's blend with a reference (`actmine.evolve.blend`): the program it writes computes
(1 − w)·f + w·reference for every shape of program of the language, and refuses what it cannot blend.
The blend in a real search's final check is tested in tests/test_search_noise.py."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from actmine.activations import get
from actmine.candidate.source import compile_candidate
from actmine.evolve.blend import BLENDED_HELPER, aligned_signs, blend_source, partner_name
from actmine.evolve.seeds import SEED_EXPRESSIONS, program
from actmine.language.program import ProgramError, parse_program

# Programs of every shape the language allows: one expression, assignments, helpers, module
# constants, another parameter name, and names that clash with the helper the blend introduces.
PROGRAMS = [
    program("F.gelu(x, approximate='tanh') * (1.23 + 0.5 * torch.sinc(F.softsign(x)))"),
    program("torch.tanh(1.5 * x) * torch.exp(-0.2 * x * x) + 0.1 * x"),
    "def activation_function(z):\n    y = torch.sin(z)\n    y = y * 0.3\n    return F.silu(z) + y\n",
    "A = 0.7\n\n\ndef bump(u, s):\n    return torch.exp(-u * u / s)\n\n\n"
    "def activation_function(x):\n    return F.elu(x) + A * bump(x, 2.0)\n",
    f"def {BLENDED_HELPER}(x):\n    return torch.relu(x)\n\n\n"
    f"def activation_function(x):\n    {BLENDED_HELPER}_1 = 0.5\n    return {BLENDED_HELPER}(x) * {BLENDED_HELPER}_1\n",
    '"""A docstring."""\n\n\ndef activation_function(x):\n    return F.mish(x)\n',
]


def _values(source: str, x: torch.Tensor) -> torch.Tensor:
    return compile_candidate(source)(x.clone())


SIGNS = [(1, 1), (1, -1), (-1, 1), (-1, -1)]


@pytest.mark.parametrize("source", PROGRAMS)
@settings(max_examples=15, deadline=None)
@given(weight=st.floats(0.01, 0.99), scale=st.sampled_from([0.1, 1.0, 10.0]), signs=st.sampled_from(SIGNS))
def test_the_blend_computes_the_weighted_mean_of_the_program_and_the_signed_reference(source, weight, scale, signs):
    x = torch.randn(257, generator=torch.Generator().manual_seed(int(weight * 1e6))) * scale
    blended = blend_source(source, "gelu", weight, signs)
    parse_program(blended)  # inside the language's subset: the interpreter and the fused path read it
    expected = (1 - weight) * _values(source, x) + weight * signs[0] * F.gelu(signs[1] * x)
    torch.testing.assert_close(_values(blended, x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("signs", SIGNS)
@pytest.mark.parametrize("reference", ["gelu", "gelu_sine", "silu"])
def test_the_partner_is_the_reference_mirrored_or_negated_as_the_choice_is(signs, reference):
    """A mirrored or negated GELU-like choice (the same functions for an MLP) is blended with the
    reference turned the same way, whatever its own scale and small terms."""
    x = torch.linspace(-6, 6, 121)
    g = get(reference)
    chosen = signs[0] * 1.2 * g(signs[1] * 1.3 * x) + 0.05 * torch.sin(3 * x)
    curve = {"x": x.tolist(), "y": chosen.tolist()}
    assert aligned_signs(curve, reference) == signs
    assert partner_name(reference, signs) == ("-" if signs[0] < 0 else "") + reference + (
        "(-x)" if signs[1] < 0 else ""
    )


@pytest.mark.parametrize(
    "curve",
    [
        None,
        {},
        {"x": [0.0], "y": [1.0]},
        {"x": "abc", "y": [1]},
        {"x": [0.0, 1.0, 2.0], "y": [math.nan, math.inf, None]},
    ],
)
def test_without_a_usable_curve_the_reference_is_taken_as_it_is(curve):
    assert aligned_signs(curve, "gelu") == (1, 1)


def test_non_finite_points_of_a_curve_are_left_out():
    x = torch.linspace(-6, 6, 121)
    y = (-F.gelu(-x)).tolist()
    y[3], y[60] = math.nan, math.inf
    assert aligned_signs({"x": x.tolist(), "y": y}, "gelu") == (-1, -1)


@pytest.mark.parametrize("reference", ["gelu", "silu", "gelu_sine"])
def test_any_reference_with_a_source_form_can_be_the_partner(reference):
    x = torch.linspace(-6, 6, 301)
    source = PROGRAMS[2]
    expected = 0.75 * _values(source, x) + 0.25 * get(reference)(x)
    torch.testing.assert_close(_values(blend_source(source, reference, 0.25), x), expected, rtol=1e-5, atol=1e-6)


def test_blending_a_seed_with_itself_gives_the_seed():
    x = torch.linspace(-6, 6, 301)
    blended = blend_source(program(SEED_EXPRESSIONS["gelu"]), "gelu", 0.5)
    torch.testing.assert_close(_values(blended, x), F.gelu(x))


@pytest.mark.parametrize(
    "source, says",
    [
        ("F = 2.0\n\n\ndef activation_function(x):\n    return x * F\n", "binds F"),
        ("def activation_function(x):\n    return x +\n", "not valid Python"),
        ("def activation_function(x):\n    for i in range(2):\n        x = x + 1\n    return x\n", "only assignments"),
        ("def helper(x):\n    return x\n", "no `def activation_function"),
    ],
)
def test_what_cannot_be_blended_is_refused_with_the_reason(source, says):
    with pytest.raises(ProgramError, match=says):
        blend_source(source, "gelu", 0.5)


def test_a_bad_reference_or_weight_is_a_value_error():
    with pytest.raises(ValueError, match="no source form"):
        blend_source(PROGRAMS[0], "gelu_nonsense", 0.5)
    for weight in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"\(0, 1\)"):
            blend_source(PROGRAMS[0], "gelu", weight)
    with pytest.raises(ValueError, match="signs"):
        blend_source(PROGRAMS[0], "gelu", 0.5, (2, 1))
