"""What `run_probes` tells the user when a candidate fails, and what it reports when one passes.

Every failure message says what went wrong *and where* (which call of the candidate, on which
inputs), because a user reading a search's failure table has only the message to go on. The
candidates here misbehave in one place only (one call, one dtype, one shape), so that each
message is checked for the call it comes from. Reported numbers are checked exactly against the
rules the docstrings give (rounding, the dtype probed, the element-count fallback of the saved
bytes).
"""

from __future__ import annotations

import math

import pytest
import torch

from actmine.candidate import probes as P
from actmine.candidate.probes import ProbeFailure

from probe_cases import backward_raising

WHERE = "on the probe points"


def _failure(activation, **kwargs) -> tuple[str, str]:
    """(code, message) of the ProbeFailure `run_probes(activation, **kwargs)` raises."""
    with pytest.raises(ProbeFailure) as info:
        P.run_probes(activation, **kwargs)
    return info.value.code, str(info.value)


class _RaisesOnCall:
    """tanh, except that call number `n` (1-based) raises; counts its calls."""

    def __init__(self, n: int):
        self.n, self.calls = n, 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.n:
            raise ValueError(f"call {self.n}")
        return torch.tanh(x)


# --------------------------------------------------------------------------------------------
# Where: each call of the candidate names itself in the message
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, which",
    [
        (1, "the first untracked call"),
        (2, "the second untracked call"),
        (3, "the call with gradients tracked"),
        (4, "the gradient probe's call"),
    ],
)
def test_a_candidate_that_raises_in_any_call_on_the_probe_points_is_told_where(n, which):
    """The first four calls all run on the probe points (twice untracked, once tracked by the purity
    check, once for the gradients): whichever raises, the message says so."""
    code, message = _failure(_RaisesOnCall(n))
    assert (code, message) == ("runtime_error", f"the activation raised ValueError {WHERE}: call {n}"), which


def _modifies_input_untracked(x):
    if not torch.is_grad_enabled():
        x.mul_(2)
    return torch.tanh(x)


def _modifies_input_tracked(x):
    if x.requires_grad:
        x.mul_(2)  # x is a non-leaf (x * 1.0), as a layer's output is in training: allowed by autograd
    return torch.tanh(x)


def test_an_in_place_change_of_the_input_is_named_with_the_call_that_made_it():
    expected = P._MODIFIES_INPUT.format(where=WHERE)
    assert _failure(_modifies_input_untracked) == ("modifies_input", expected)
    assert expected.startswith("the activation changed its input in place on the probe points (an in-place")
    tracked = P._MODIFIES_INPUT.format(where=WHERE + " with gradients tracked")
    assert _failure(_modifies_input_tracked) == ("modifies_input", tracked)


def _quoted_inputs(message: str) -> list[float]:
    """The inputs a message quotes as `such as [a, b, c]`."""
    return [float(v) for v in message.split("such as [")[1].split("]")[0].split(", ")]


def test_a_nondeterministic_candidate_is_told_why_and_at_which_inputs():
    """Noise beyond x = 5 only: the inputs quoted are ones where the two calls disagreed."""
    code, message = _failure(lambda x: x + torch.where(x > 5, torch.rand_like(x), torch.zeros_like(x)))
    assert code == "nondeterministic"
    assert message.startswith(f"two calls on the same input gave different outputs {WHERE}, at inputs such as [")
    assert message.endswith(
        "]: the activation must be a function of its input alone (no randomness, no "
        "uninitialised memory such as torch.empty_like, no state kept between calls)"
    )
    inputs = _quoted_inputs(message)
    assert len(inputs) == 3 and all(v > 5 for v in inputs)


def test_a_candidate_that_branches_on_gradient_tracking_is_told_it_trains_another_function():
    def branches(x):
        return torch.tanh(x) if x.requires_grad else torch.sin(x)

    code, message = _failure(branches)
    assert code == "inconsistent_function"
    assert message.startswith(f"the output differs when gradients are tracked {WHERE}, at inputs such as [")
    assert message.endswith("]: training would use one function and scoring another")
    inputs = _quoted_inputs(message)
    assert len(inputs) == 3 and all(math.tanh(v) != pytest.approx(math.sin(v), abs=1e-4) for v in inputs)


def test_a_cost_measurement_that_raises_says_so():
    def raises_on_the_cost_input(x):
        if x.numel() == P.COST_SIZE:
            raise ValueError("too many")
        return torch.tanh(x)

    assert _failure(raises_on_the_cost_input) == (
        "runtime_error",
        f"the activation raised ValueError while measuring its cost on {P.COST_SIZE} elements: too many",
    )


# --------------------------------------------------------------------------------------------
# Non-finite values and gradients: which inputs, and no more than three of them
# --------------------------------------------------------------------------------------------


def test_non_finite_outputs_name_the_first_three_inputs_where_they_occur():
    """The probe points' extreme magnitudes (±1e4, ±3e4) are the only ones beyond 5000."""

    def blows_up_far_out(x):
        return torch.where(x.abs() > 5000, torch.full_like(x, math.inf), torch.tanh(x))

    assert _failure(blows_up_far_out) == (
        "non_finite",
        "non-finite output at inputs such as [10000.0, -10000.0, 30000.0]",
    )


def test_non_finite_gradients_name_the_first_three_inputs_where_they_occur():
    """sqrt(|x|) is finite everywhere, its gradient is not at 0; the probe points hold 0 five times
    (the grid's middle and four zeros), then 1e-30 whose gradient overflows float32."""
    code, message = _failure(lambda x: torch.sqrt(x.abs()))
    assert (code, message) == ("non_finite_gradient", "non-finite gradient at inputs such as [0.0, 0.0, 0.0]")


def test_an_output_detached_from_the_input_has_no_gradient():
    assert _failure(lambda x: torch.tanh(x).detach()) == (
        "no_gradient",
        "the output does not depend differentiably on the input",
    )


@pytest.mark.parametrize(
    "error, code",
    [
        (RuntimeError("broken"), "runtime_error"),
        (MemoryError("no room"), "memory_limit"),
        (RuntimeError("CUDA out of memory"), "memory_limit"),
    ],
)
def test_a_backward_pass_that_raises_gets_the_code_of_its_exception(error, code):
    assert _failure(backward_raising(error)) == (code, f"the backward pass raised {type(error).__name__}: {error}")


@pytest.mark.parametrize("error, code", [(KeyError("k"), "runtime_error"), (MemoryError("no room"), "memory_limit")])
def test_a_backward_pass_that_raises_while_the_cost_is_measured_gets_the_code_of_its_exception(error, code):
    with pytest.raises(ProbeFailure) as info:
        P.measure_cost(backward_raising(error))
    assert (info.value.code, str(info.value)) == (
        code,
        f"the backward pass raised {type(error).__name__} while measuring its cost: {error}",
    )


# --------------------------------------------------------------------------------------------
# The dtype probed is the dtype of every check
# --------------------------------------------------------------------------------------------


def test_the_far_input_rule_is_checked_in_the_probed_dtype():
    """A candidate that gives NaN far out only in float64 passes in float32 and fails in float64."""

    def nan_far_out_in_double(x):
        if x.dtype == torch.float64:
            return torch.where(x.abs() > 1e20, torch.full_like(x, math.nan), torch.tanh(x))
        return torch.tanh(x)

    assert P.run_probes(nan_far_out_in_double)["pointwise"] is True
    code, message = _failure(nan_far_out_in_double, dtype=torch.float64)
    assert code == "non_finite" and "beyond the ±3e4 of the probe set" in message


def _relu_saving_its_output_on(dims: set[int]):
    """ReLU's values; on tensors with a dimension count in `dims` computed by torch.relu (which saves
    its output for the backward pass), elsewhere by torch.where (which saves a bool mask)."""

    def activation(x):
        if x.dim() in dims:
            return torch.relu(x)
        return torch.where(x > 0, x, torch.zeros_like(x))

    return activation


@pytest.mark.parametrize("dims", [{1}, {3}], ids=["1-D probe", "training shape"])
def test_saved_bytes_are_measured_in_the_probed_dtype_on_every_shape(dims):
    """The largest saving of any measured shape counts, in the dtype probed: 8 bytes per element for
    ReLU's float64 output, whether the 1-D probe or the training shape saves it."""
    activation = _relu_saving_its_output_on(dims)
    assert P.run_probes(activation)["saved_bytes_per_element"] == 4.0
    assert P.run_probes(activation, dtype=torch.float64)["saved_bytes_per_element"] == 8.0


def test_batch_dependence_is_checked_in_the_probed_dtype():
    def centred_in_double(x):
        return torch.tanh(x) - x.mean() if x.dtype == torch.float64 else torch.tanh(x)

    assert P.run_probes(centred_in_double)["pointwise"] is True
    assert _failure(centred_in_double, dtype=torch.float64)[0] == "batch_dependent"
    assert (
        P.run_probes(centred_in_double, dtype=torch.float64, budget=P.ProbeBudget(allow_batch_dependent=True))[
            "pointwise"
        ]
        is False
    )


def test_the_batch_dependence_message_ends_with_how_such_functions_are_scored():
    assert _failure(lambda x: torch.tanh(x) - x.mean())[1].endswith(
        "set probes.allow_batch_dependent to true to allow them (they are then scored per example)"
    )


# --------------------------------------------------------------------------------------------
# Reported numbers: rounded to 0.01, and the budget messages
# --------------------------------------------------------------------------------------------


def _partly_counted(x):
    """tanh-free pointwise values (x) whose cost has a third decimal: 9/128 of the elements are
    copied, squared and summed (3 × 9/128 ops and 4 × 9/128 saved bytes per element), then added
    back times zero."""
    n = x.numel() * 9 // 128
    part = x.reshape(-1)[:n] * 1.0
    return x + (part * part).sum() * 0.0


def test_costs_are_reported_rounded_to_two_decimals():
    measured = P.measure_cost(_partly_counted)
    assert measured.flops_per_element == pytest.approx(1 + 3 * 9 / 128 + 1 / P.COST_SIZE)  # 1.2112
    assert measured.saved_bytes_per_element == 4 * 9 / 128  # 0.28125
    result = P.run_probes(_partly_counted)
    assert (result["flops_per_element"], result["saved_bytes_per_element"]) == (1.21, 0.28)


def test_the_flop_budget_message_of_a_plain_input_names_no_shape():
    code, message = _failure(torch.relu, budget=P.ProbeBudget(max_flops_per_element=0.5))
    assert (code, message) == (
        "over_flop_budget",
        f"the forward pass costs 1 weighted elementwise ops per element (a transcendental "
        f"op counts {P.TRANSCENDENTAL_WEIGHT}), over the budget of 0.5; raise "
        f"probes.max_flops_per_element to allow it",
    )


# --------------------------------------------------------------------------------------------
# The cost probe itself
# --------------------------------------------------------------------------------------------


def test_probing_leaves_the_global_random_state_alone():
    """The probes draw from their own generators: probing a candidate in a worker must not change
    the random numbers the training that follows draws."""
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    P.measure_cost(torch.tanh)
    P.run_probes(torch.tanh)
    assert torch.equal(torch.rand(4), expected)


def test_the_cost_input_is_the_same_every_time():
    """A candidate whose cost depends on its input's values costs the same on every measurement."""

    def data_dependent(x):
        return torch.exp(x) if float(x.detach().reshape(-1)[0]) > 0 else x * 1.0

    costs = set()
    for seed in range(6):
        torch.manual_seed(seed)
        costs.add(P.measure_cost(data_dependent).flops_per_element)
    assert len(costs) == 1


def _sparse_product(x):
    return (x.to_sparse() * (x * 2).to_sparse()).to_dense()


def test_saved_tensors_without_a_plain_storage_count_their_elements():
    """A sparse tensor has no untyped storage: each one saved counts numel × element size bytes.
    The reference counts the saved tensors with its own hook."""
    saved = []
    x = torch.randn(P.COST_SIZE, requires_grad=True)

    def pack(tensor):
        saved.append(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        _sparse_product(x)
    assert saved and all(t.layout == torch.sparse_coo for t in saved) and len({id(t) for t in saved}) == len(saved)
    expected = sum(t.numel() * t.element_size() for t in saved) / P.COST_SIZE
    assert P.measure_cost(_sparse_product).saved_bytes_per_element == expected == 4.0 * len(saved)
