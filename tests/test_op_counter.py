"""The probes' operation counter (`probes._OperationCounter`, used by `measure_cost`).

Every weighted op family weighs what the language documents (`actmine.language.ops`: 8 per element
for a transcendental kernel -- exp, log, trig, erf, gamma, pow, sqrt, reciprocal, ... --, 1 for
arithmetic, 0 for views and allocations) in every spelling a candidate can write: the function
(`torch.exp(x)`), the method (`x.exp()`), the in-place method (`x.exp_()`) and the in-place function
(`torch.exp_(x)`). An in-place spelling that lost its weight would let a candidate buy transcendental
work at the price of an add.

The weights are written out here on purpose (not read from the table): the test says what they are.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from actmine.candidate import probes as P
from actmine.language import ops as language

N = 64  # elements of the probe tensor: small, the counter's weights are per element

#: Documented weights per element (actmine.language.ops module docstring and table).
TRANSCENDENTAL = 8
ARITHMETIC = 1

#: One-tensor elementwise families: name -> weight per element.
UNARY = {
    **dict.fromkeys(
        """exp exp2 expm1 log log2 log10 log1p sqrt rsqrt reciprocal sin cos tan asin acos atan
                       sinh cosh tanh asinh acosh atanh erf erfc erfinv sigmoid sinc lgamma digamma i0 logit
                    """.split(),
        TRANSCENDENTAL,
    ),
    **dict.fromkeys("abs neg relu sign sgn floor ceil round trunc frac deg2rad rad2deg nan_to_num".split(), ARITHMETIC),
}
#: Two-tensor elementwise families: name -> weight per element.
BINARY = {
    **dict.fromkeys("pow atan2 hypot xlogy logaddexp logaddexp2".split(), TRANSCENDENTAL),
    **dict.fromkeys("add sub mul div fmod remainder maximum minimum copysign".split(), ARITHMETIC),
}
#: torch.nn.functional activations: F name -> (the aten kernel the counter sees, weight per element).
FUNCTIONAL = {
    "gelu": ("gelu", TRANSCENDENTAL),
    "silu": ("silu", TRANSCENDENTAL),
    "mish": ("mish", TRANSCENDENTAL),
    "elu": ("elu", TRANSCENDENTAL),
    "selu": ("elu", TRANSCENDENTAL),
    "celu": ("celu", TRANSCENDENTAL),
    "softplus": ("softplus", TRANSCENDENTAL),
    "logsigmoid": ("log_sigmoid_forward", TRANSCENDENTAL),
    "relu": ("relu", ARITHMETIC),
    "hardtanh": ("hardtanh", ARITHMETIC),
    "leaky_relu": ("leaky_relu", ARITHMETIC),
    "hardswish": ("hardswish", ARITHMETIC),
    "hardsigmoid": ("hardsigmoid", ARITHMETIC),
    "relu6": ("hardtanh", ARITHMETIC),
}


def count(function, *tensors: torch.Tensor) -> tuple[float, dict[str, int]]:
    """(weighted elements, ops by name) of `function(*tensors)` under the counter; the tensors are
    copied first, so that in-place spellings change a copy made outside the count."""
    copies = [tensor.clone() for tensor in tensors]
    counter = P._OperationCounter()
    with counter:
        function(*copies)
    return counter.elements, counter.ops


def probe_tensor(n: int = N) -> torch.Tensor:
    """Values inside every family's domain where it matters (0 < x < 1: log, acos, atanh, logit)."""
    return torch.linspace(0.1, 0.9, n)


def _spellings(name: str) -> list[tuple[str, object]]:
    """The spellings of op `name` that this torch has: torch.f, Tensor.f, Tensor.f_, torch.f_."""
    found = []
    for label, owner, attribute in [
        (f"torch.{name}", torch, name),
        (f"x.{name}", torch.Tensor, name),
        (f"x.{name}_", torch.Tensor, name + "_"),
        (f"torch.{name}_", torch, name + "_"),
    ]:
        function = getattr(owner, attribute, None)
        if callable(function):
            found.append((label, function))
    return found


UNARY_CASES = [
    pytest.param(name, function, weight, id=label)
    for name, weight in UNARY.items()
    for label, function in _spellings(name)
]
BINARY_CASES = [
    pytest.param(name, function, weight, id=label)
    for name, weight in BINARY.items()
    for label, function in _spellings(name)
]


def test_every_family_has_its_in_place_spelling_among_the_cases():
    """The cases really hold in-place spellings (a torch without them would test nothing of them)."""
    labels = {case.id for case in UNARY_CASES + BINARY_CASES}
    assert {
        "x.exp_",
        "torch.exp_",
        "x.sin_",
        "x.tanh_",
        "x.sigmoid_",
        "x.sqrt_",
        "x.log_",
        "x.erf_",
        "x.reciprocal_",
        "x.pow_",
        "x.atan2_",
        "x.abs_",
        "x.add_",
        "x.mul_",
    } <= labels
    assert len(UNARY_CASES) > 3 * len(UNARY)


@pytest.mark.parametrize("name, function, weight", UNARY_CASES)
def test_one_tensor_ops_weigh_their_documented_weight_in_every_spelling(name, function, weight):
    elements, ops = count(function, probe_tensor())
    assert (elements, ops) == (weight * N, {name: 1})


@pytest.mark.parametrize("name, function, weight", BINARY_CASES)
def test_two_tensor_ops_weigh_their_documented_weight_in_every_spelling(name, function, weight):
    elements, ops = count(function, probe_tensor(), probe_tensor().flip(0))
    assert (elements, ops) == (weight * N, {name: 1})


#: The torch.nn.functional activations with an in-place spelling: `inplace=True`, and `F.<name>_` where named.
IN_PLACE_KEYWORD = "relu relu6 elu selu celu silu mish hardtanh leaky_relu hardswish hardsigmoid".split()
IN_PLACE_FUNCTION = "relu elu selu celu hardtanh leaky_relu".split()


@pytest.mark.parametrize("name", sorted(FUNCTIONAL))
def test_functional_activations_weigh_their_documented_weight_also_in_place(name):
    kernel, weight = FUNCTIONAL[name]
    function = getattr(F, name)
    spellings = [function]
    if name in IN_PLACE_KEYWORD:
        spellings.append(lambda t: function(t, inplace=True))
    if name in IN_PLACE_FUNCTION:
        spellings.append(getattr(F, name + "_"))
    for spelling in spellings:
        assert count(spelling, probe_tensor()) == (weight * N, {kernel: 1})


@pytest.mark.parametrize("expression", ["x ** 2", "x.square()", "x.square_()", "torch.square(x)", "x.pow_(3)"])
def test_powers_weigh_as_transcendental_in_every_spelling(expression):
    elements, ops = count(lambda x: eval(expression, {"torch": torch, "x": x}), probe_tensor())
    assert (elements, ops) == (TRANSCENDENTAL * N, {"pow": 1})


def test_the_documented_weights_are_the_language_table_s():
    """The weights above are the table's, so the counter and the language agree on one price list."""
    assert language.TRANSCENDENTAL_WEIGHT == P.TRANSCENDENTAL_WEIGHT == TRANSCENDENTAL
    for name, weight in {**UNARY, **BINARY}.items():
        assert language.aten_weight(name) == weight, name
        assert language.aten_weight(name + "_") == weight, name  # the counter's in-place name
    for kernel, weight in FUNCTIONAL.values():
        assert language.aten_weight(kernel) == weight, kernel


# --------------------------------------------------------------------------------------------
# What a kernel costs: its largest tensor, views and allocations free, every call counted
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "x.view(8, 8)",
        "x.reshape(4, 16)",
        "x.unsqueeze(0)",
        "x.unsqueeze_(0)",
        "x.squeeze_()",
        "x[1:5]",
        "x[3]",
        "x.detach()",
        "x.detach_()",
        "x.expand(3, 64)",
        "x.transpose(0, 0)",
        "torch.zeros_like(x)",
        "torch.ones_like(x)",
        "torch.empty_like(x)",
        "x.flatten()",
    ],
)
def test_views_and_allocations_are_free_in_every_spelling(expression):
    assert count(lambda x: eval(expression, {"torch": torch, "x": x}), probe_tensor()) == (0.0, {})


@pytest.mark.parametrize(
    "expression, expected",
    [
        ("x.clone()", {"clone": 1}),
        ("x.double()", {"_to_copy": 1}),
        ("x.to(torch.float64)", {"_to_copy": 1}),
        ("x.copy_(x.flip(0))", {"flip": 1, "copy": 1}),
    ],
)
def test_copies_move_every_element_and_weigh_one(expression, expected):
    elements, ops = count(lambda x: eval(expression, {"torch": torch, "x": x}), probe_tensor())
    assert (elements, ops) == (sum(expected.values()) * N, expected)


def test_a_kernel_costs_its_largest_tensor_input_or_output():
    # a reduction reads N elements and writes one: it costs N
    assert count(torch.sum, probe_tensor()) == (N, {"sum": 1})
    assert count(lambda x: x.exp().sum(), probe_tensor()) == (TRANSCENDENTAL * N + N, {"exp": 1, "sum": 1})
    # a constructor has no tensor input: it costs its output
    assert count(lambda x: torch.full((3, N), 2.0), probe_tensor()) == (3 * N, {"full": 1})
    # broadcasting: an (8, 1) by (1, 8) product writes 64 elements from 16
    assert count(lambda a, b: a * b, torch.ones(8, 1), torch.ones(1, 8)) == (64, {"mul": 1})
    # a scalar tensor with a big one: the big one counts
    assert count(lambda x: torch.exp(x) * torch.tensor(2.0), probe_tensor()) == (
        TRANSCENDENTAL * N + N,
        {"exp": 1, "mul": 1},
    )


def test_kernels_on_empty_tensors_cost_and_record_nothing():
    assert count(lambda x: torch.exp(x[:0]) + 1, probe_tensor()) == (0.0, {})


def test_every_call_is_counted_by_name():
    def twice_each(x):
        y = torch.exp(x)
        y.exp_()
        return torch.sin(y) + torch.sin(x) * 2

    elements, ops = count(twice_each, probe_tensor())
    assert ops == {"exp": 2, "sin": 2, "mul": 1, "add": 1}
    assert elements == (4 * TRANSCENDENTAL + 2) * N


def test_the_counter_returns_what_the_kernels_compute():
    x = probe_tensor()
    counter = P._OperationCounter()
    with counter:
        y = torch.exp(x)
        z = x.clone()
        z.sin_()
    assert torch.equal(y, torch.exp(x)) and torch.equal(z, torch.sin(x))


def test_the_counter_starts_at_zero_and_accumulates():
    counter = P._OperationCounter()
    assert (counter.elements, counter.ops) == (0.0, {})
    x = probe_tensor()
    with counter:
        torch.exp(x)
    with counter:
        torch.exp(x)
    assert (counter.elements, counter.ops) == (2 * TRANSCENDENTAL * N, {"exp": 2})


# --------------------------------------------------------------------------------------------
# measure_cost: in-place work inside an activation pays like out-of-place work
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["exp", "sin", "tanh", "sigmoid", "sqrt", "log1p", "erf", "reciprocal"])
def test_in_place_transcendentals_in_an_activation_cost_at_least_as_much_as_out_of_place(name):
    """Same kernels, same weights; an in-place op whose backward needs its input makes autograd copy
    that input first (`clone`, 1 per element), so in place is never cheaper."""
    out_of_place = P.measure_cost(lambda x: getattr(torch, name)(x.abs() + 1))
    in_place = P.measure_cost(lambda x: getattr(x.abs() + 1, name + "_")())
    assert out_of_place.flops_per_element == TRANSCENDENTAL + 2
    assert out_of_place.ops == {"abs": 1, "add": 1, name: 1}
    copies = in_place.ops.get("clone", 0)
    assert {op: n for op, n in in_place.ops.items() if op != "clone"} == out_of_place.ops
    assert in_place.flops_per_element == TRANSCENDENTAL + 2 + copies


def test_measure_cost_counts_per_element_of_the_shape_and_separates_the_backward():
    cost = P.measure_cost(lambda x: torch.exp(x) * 2, shape=(3, 5, 7))
    assert cost.flops_per_element == TRANSCENDENTAL + 1
    assert cost.ops == {"exp": 1, "mul": 1}
    # backward: grad * 2 (mul), then * exp(x) (mul): two arithmetic kernels, no transcendental
    assert cost.backward_flops_per_element == 2
    assert cost.saved_bytes_per_element == 4  # exp saves its float32 output
    assert P.measure_cost(lambda x: torch.exp(x) * 2, size=100).flops_per_element == TRANSCENDENTAL + 1


# --------------------------------------------------------------------------------------------
# The whole table: every one-tensor elementwise op costs what the language says it costs
# --------------------------------------------------------------------------------------------

TABLE_UNARY = [
    pytest.param(entry, spelling, id=spelling)
    for entry in language.OPS
    if entry.kind == "elementwise" and entry.arity == 1
    for spelling in entry.spellings
    if not spelling.startswith("math.")
]


@pytest.mark.parametrize("entry, spelling", TABLE_UNARY)
def test_every_one_tensor_elementwise_op_of_the_language_costs_its_table_weight(entry, spelling):
    function = language.FUNCTIONS[spelling]
    elements, _ops = count(function, probe_tensor())
    assert elements == entry.weight * N


def test_logsumexp_pays_its_transcendental_weight():
    """One aten kernel that the table must own: unowned, it weighed 1 per element, so softplus spelt
    torch.logsumexp(torch.stack([x, 0 * x]), 0) cost half of F.softplus."""
    assert count(lambda x: torch.logsumexp(x, 0), probe_tensor()) == (TRANSCENDENTAL * N, {"logsumexp": 1})
