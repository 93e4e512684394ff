"""The batched ensemble must train exactly what M separate MLPs with M separate Adams would."""

import math

import pytest
import torch

from actmine import activations
from actmine.lab.ensemble import (
    Protocol, build_workload, check_steps, init_model, parameter_shapes, split_parameters, train_ensemble,
    train_per_model,
)
from actmine.lab.tasks import Suite, feynman, harmonic, polynomial


@pytest.fixture(scope="module")
def mixed_suite():
    """Input widths 1, 2, 3 and 5: the ensemble pads them to 5."""
    return Suite("mixed", (polynomial(dim=1, seed=0), polynomial(dim=3, seed=1, degree=2, n_terms=3),
                           harmonic(seed=0), feynman("I.29.4"), feynman("II.2.42")), (0, 1))


@pytest.mark.parametrize("name", ["relu", "gelu", "gelu_sine", "snake", "turbulent"])
def test_batched_ensemble_matches_per_model_training(mixed_suite, name):
    protocol = Protocol(steps=12, dtype="float64", n_train=256, n_eval=128)
    workload = build_workload(mixed_suite, protocol)
    act = activations.get(name)
    batched = train_ensemble(act, workload, pointwise=activations.is_pointwise(name))
    reference = train_per_model(act, workload)
    torch.testing.assert_close(batched.losses, reference.losses, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(batched.id_error, reference.id_error, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(batched.ood_error, reference.ood_error, rtol=1e-8, atol=1e-12)
    assert batched.non_finite == reference.non_finite == []
    assert batched.losses[-1].mean() < batched.losses[0].mean()  # it did learn something


def test_float32_ensemble_matches_per_model_within_float_tolerance(mixed_suite):
    workload = build_workload(mixed_suite, Protocol(steps=10, n_train=256, n_eval=128))
    batched = train_ensemble(torch.nn.functional.gelu, workload)
    reference = train_per_model(torch.nn.functional.gelu, workload)
    torch.testing.assert_close(batched.losses, reference.losses, rtol=2e-4, atol=1e-5)


def test_padding_changes_nothing(mixed_suite):
    """A 1-D task trained alone equals the same task padded to width 5 beside wider tasks."""
    protocol = Protocol(steps=10, dtype="float64", n_train=256, n_eval=128)
    alone = train_ensemble(torch.tanh, build_workload(Suite("one", mixed_suite.tasks[:1], (0, 1)), protocol))
    together = train_ensemble(torch.tanh, build_workload(mixed_suite, protocol))
    torch.testing.assert_close(together.losses[:, :2], alone.losses, rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(together.ood_error[:2], alone.ood_error, rtol=1e-10, atol=1e-13)


def test_batch_statistics_activation_sees_one_model_at_a_time(mixed_suite):
    """Applied to the whole stacked tensor, turbulent would mix models; per model it must not."""
    protocol = Protocol(steps=5, dtype="float64", n_train=256, n_eval=128)
    act = activations.get("turbulent")
    per_model = train_ensemble(act, build_workload(mixed_suite, protocol), pointwise=False)
    alone = train_ensemble(act, build_workload(Suite("one", mixed_suite.tasks[:1], (0, 1)), protocol), pointwise=False)
    torch.testing.assert_close(per_model.losses[:, :2], alone.losses, rtol=1e-10, atol=1e-13)
    mixed = train_ensemble(act, build_workload(mixed_suite, protocol), pointwise=True)
    assert not torch.allclose(mixed.losses[:, :2], alone.losses)


def test_initial_weights_follow_nn_linear_and_do_not_depend_on_the_activation(mixed_suite):
    protocol = Protocol()
    params = init_model(3, 5, protocol, seed=7)
    assert [tuple(p.shape) for p in params] == [s[1:] for s in parameter_shapes(1, 5, protocol)]
    first, hidden = params[0], params[2]
    assert first[3:].abs().max() == 0  # padded input columns start (and stay) at zero
    assert first[:3].abs().max() <= 1 / math.sqrt(3)
    assert hidden.abs().max() <= 1 / math.sqrt(protocol.hidden)
    assert hidden.abs().max() > 0.8 / math.sqrt(protocol.hidden)  # uniform over the full bound
    torch.testing.assert_close(init_model(3, 5, protocol, seed=7)[2], hidden)
    a, b = build_workload(mixed_suite, protocol), build_workload(mixed_suite, protocol)
    torch.testing.assert_close(a.init, b.init)


def test_split_parameters_are_views_in_order():
    protocol = Protocol(hidden=4, depth=2)
    shapes = parameter_shapes(3, 2, protocol)
    flat = torch.arange(sum(math.prod(s) for s in shapes), dtype=torch.float32)
    views = split_parameters(flat, 3, 2, protocol)
    assert [tuple(v.shape) for v in views] == shapes
    assert views[0].data_ptr() == flat.data_ptr()
    assert views[-1].flatten()[-1] == flat[-1]


def test_non_finite_training_is_reported_per_model(mixed_suite):
    workload = build_workload(mixed_suite, Protocol(steps=5, n_train=256, n_eval=128))
    result = train_ensemble(lambda x: torch.exp(torch.exp(x * 50)), workload)
    assert result.non_finite  # overflow: a failure, never a score
    ok = train_ensemble(torch.relu, workload)
    assert ok.non_finite == []


def test_learning_rate_schedule_warms_up_then_decays():
    protocol = Protocol(lr=0.03, steps=50, warmup=5, final_lr_fraction=0.1)
    rates = protocol.learning_rates()
    assert len(rates) == 50
    assert rates[0] == pytest.approx(0.006) and rates[4] == pytest.approx(0.03)
    assert max(rates) == pytest.approx(0.03) and rates[-1] == pytest.approx(0.003)
    assert all(a >= b for a, b in zip(rates[4:], rates[5:]))


@pytest.mark.parametrize("field,value", [("hidden", 0), ("steps", -1), ("lr", 0.0), ("dtype", "float16"),
                                         ("device", "tpu")])
def test_protocol_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        Protocol(**{field: value})


class _Recorder:
    """A call check that keeps what it was shown (a real check raises instead)."""

    def __init__(self):
        self.calls = []

    def __call__(self, h, output, where, modified_in_place):
        self.calls.append((where, tuple(h.shape), not modified_in_place, output.requires_grad))


def test_a_call_check_sees_a_few_training_steps_and_the_scoring_pass(mixed_suite):
    protocol = Protocol(steps=7, n_train=256, n_eval=128, depth=2)
    workload = build_workload(mixed_suite, protocol)
    recorder = _Recorder()
    checked = train_ensemble(activations.get("gelu_sine"), workload, check=recorder)
    plain = train_ensemble(activations.get("gelu_sine"), workload)
    # watching changes nothing in the training
    assert torch.equal(checked.losses, plain.losses) and torch.equal(checked.ood_error, plain.ood_error)
    assert check_steps(7) == {0, 3, 6}
    wheres = [where for where, *_ in recorder.calls]
    assert wheres == ["at training step 0"] * 2 + ["at training step 3"] * 2 + ["at training step 6"] * 2 \
        + ["in the OOD scoring pass"] * 2  # each hidden layer of the watched calls
    models, hidden = workload.models, protocol.hidden
    assert recorder.calls[0][1] == (models, protocol.batch_size, hidden)
    assert recorder.calls[-1][1] == (models, protocol.n_eval, hidden)
    assert all(unchanged for *_, unchanged, _ in recorder.calls)
    assert [tracked for *_, tracked in recorder.calls] == [True] * 6 + [False] * 2


def test_a_call_check_that_raises_stops_the_training(mixed_suite):
    workload = build_workload(mixed_suite, Protocol(steps=4, n_train=256, n_eval=128))

    def refuse(h, output, where, modified_in_place):
        raise LookupError(f"refused {where}")

    with pytest.raises(LookupError, match="refused at training step 0"):
        train_ensemble(torch.relu, workload, check=refuse)


@pytest.mark.parametrize("steps", [1, 2, 50])
def test_check_steps_are_within_the_training(steps):
    assert check_steps(steps) <= set(range(steps)) and 0 in check_steps(steps) and steps - 1 in check_steps(steps)


@pytest.mark.parametrize("change", [
    lambda x: x.mul_(2),
    lambda x: x.view(-1)[:3].zero_(),                      # through a view
    lambda x: x.__setitem__(x.abs() > 1, 0.0),           # item assignment
    lambda x: torch.tanh(x, out=x),                        # out= its input
])
def test_a_watched_call_sees_any_in_place_change_of_its_input(mixed_suite, change):
    workload = build_workload(mixed_suite, Protocol(steps=3, n_train=256, n_eval=128))
    recorder = _Recorder()

    def activation(x):
        if not x.requires_grad:  # the scoring pass: a changed input is seen there as well
            change(x)
        return torch.relu(x) + 0.0

    train_ensemble(activation, workload, check=recorder)
    assert [unchanged for _, _, unchanged, _ in recorder.calls] == [True] * 6 + [False] * 2
