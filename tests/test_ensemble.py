"""The batched ensemble must train exactly what M separate MLPs with M separate Adams would."""

import math
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from actmine import activations
from actmine.lab.ensemble import (
    TrainingProtocol,
    build_workload,
    check_steps,
    forward,
    init_model,
    normalised_error,
    parameter_shapes,
    per_example_activation,
    per_model_activation,
    split_parameters,
    train_ensemble,
    train_per_model,
    watched,
)
from actmine.lab.tasks import Suite, formula, generate, polynomial, stable_seed


@pytest.mark.parametrize("name", ["relu", "gelu", "gelu_sine", "snake", "turbulent"])
def test_batched_ensemble_matches_per_model_training(mixed_suite, name):
    protocol = TrainingProtocol(steps=12, dtype="float64", n_train=256, n_eval=128)
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
    workload = build_workload(mixed_suite, TrainingProtocol(steps=10, n_train=256, n_eval=128))
    batched = train_ensemble(torch.nn.functional.gelu, workload)
    reference = train_per_model(torch.nn.functional.gelu, workload)
    torch.testing.assert_close(batched.losses, reference.losses, rtol=2e-4, atol=1e-5)


def test_padding_changes_nothing(mixed_suite):
    """A 1-D task trained alone equals the same task padded to width 5 beside wider tasks."""
    protocol = TrainingProtocol(steps=10, dtype="float64", n_train=256, n_eval=128)
    alone = train_ensemble(torch.tanh, build_workload(Suite("one", mixed_suite.tasks[:1], (0, 1)), protocol))
    together = train_ensemble(torch.tanh, build_workload(mixed_suite, protocol))
    torch.testing.assert_close(together.losses[:, :2], alone.losses, rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(together.ood_error[:2], alone.ood_error, rtol=1e-10, atol=1e-13)


def test_batch_statistics_activation_sees_one_model_at_a_time(mixed_suite):
    """Applied to the whole stacked tensor, turbulent would mix models; per model it must not."""
    protocol = TrainingProtocol(steps=5, dtype="float64", n_train=256, n_eval=128)
    act = activations.get("turbulent")
    per_model = train_ensemble(act, build_workload(mixed_suite, protocol), pointwise=False)
    alone = train_ensemble(act, build_workload(Suite("one", mixed_suite.tasks[:1], (0, 1)), protocol), pointwise=False)
    torch.testing.assert_close(per_model.losses[:, :2], alone.losses, rtol=1e-10, atol=1e-13)
    mixed = train_ensemble(act, build_workload(mixed_suite, protocol), pointwise=True)
    assert not torch.allclose(mixed.losses[:, :2], alone.losses)


def test_initial_weights_follow_nn_linear_and_do_not_depend_on_the_activation(mixed_suite):
    protocol = TrainingProtocol()
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
    protocol = TrainingProtocol(hidden=4, depth=2)
    shapes = parameter_shapes(3, 2, protocol)
    flat = torch.arange(sum(math.prod(s) for s in shapes), dtype=torch.float32)
    views = split_parameters(flat, 3, 2, protocol)
    assert [tuple(v.shape) for v in views] == shapes
    assert views[0].data_ptr() == flat.data_ptr()
    assert views[-1].flatten()[-1] == flat[-1]


def test_non_finite_training_is_reported_per_model(mixed_suite):
    workload = build_workload(mixed_suite, TrainingProtocol(steps=5, n_train=256, n_eval=128))
    result = train_ensemble(lambda x: torch.exp(torch.exp(x * 50)), workload)
    assert result.non_finite  # overflow: a failure, never a score
    ok = train_ensemble(torch.relu, workload)
    assert ok.non_finite == []


def test_learning_rate_schedule_warms_up_then_decays():
    protocol = TrainingProtocol(lr=0.03, steps=50, warmup=5, final_lr_fraction=0.1)
    rates = protocol.learning_rates()
    assert len(rates) == 50
    assert rates[0] == pytest.approx(0.006) and rates[4] == pytest.approx(0.03)
    assert max(rates) == pytest.approx(0.03) and rates[-1] == pytest.approx(0.003)
    assert all(a >= b for a, b in zip(rates[4:], rates[5:]))


@pytest.mark.parametrize(
    "field,value", [("hidden", 0), ("steps", -1), ("lr", 0.0), ("dtype", "float16"), ("device", "tpu")]
)
def test_protocol_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        TrainingProtocol(**{field: value})


class _Recorder:
    """A call check that keeps what it was shown (a real check raises instead)."""

    def __init__(self):
        self.calls = []

    def __call__(self, h, output, where, modified_in_place):
        self.calls.append((where, tuple(h.shape), not modified_in_place, output.requires_grad))


def test_a_call_check_sees_a_few_training_steps_and_the_scoring_pass(mixed_suite):
    protocol = TrainingProtocol(steps=7, n_train=256, n_eval=128, depth=2)
    workload = build_workload(mixed_suite, protocol)
    recorder = _Recorder()
    checked = train_ensemble(activations.get("gelu_sine"), workload, check=recorder)
    plain = train_ensemble(activations.get("gelu_sine"), workload)
    # watching changes nothing in the training
    assert torch.equal(checked.losses, plain.losses) and torch.equal(checked.ood_error, plain.ood_error)
    assert check_steps(7) == {0, 3, 6}
    wheres = [where for where, *_ in recorder.calls]
    assert (
        wheres
        == ["at training step 0"] * 2
        + ["at training step 3"] * 2
        + ["at training step 6"] * 2
        + ["in the OOD scoring pass"] * 2
    )  # each hidden layer of the watched calls
    models, hidden = workload.models, protocol.hidden
    assert recorder.calls[0][1] == (models, protocol.batch_size, hidden)
    assert recorder.calls[-1][1] == (models, protocol.n_eval, hidden)
    assert all(unchanged for *_, unchanged, _ in recorder.calls)
    assert [tracked for *_, tracked in recorder.calls] == [True] * 6 + [False] * 2


@pytest.mark.parametrize("relu", [torch.relu, lambda x: torch.relu(x)], ids=["closed form", "autograd"])
def test_a_call_check_that_raises_stops_the_training(mixed_suite, relu):
    workload = build_workload(mixed_suite, TrainingProtocol(steps=4, n_train=256, n_eval=128))

    def refuse(h, output, where, modified_in_place):
        raise LookupError(f"refused {where}")

    with pytest.raises(LookupError, match="refused at training step 0"):
        train_ensemble(relu, workload, check=refuse)


@pytest.mark.parametrize("steps", [1, 2, 50])
def test_check_steps_are_within_the_training(steps):
    assert check_steps(steps) <= set(range(steps)) and 0 in check_steps(steps) and steps - 1 in check_steps(steps)


@pytest.mark.parametrize(
    "change",
    [
        lambda x: x.mul_(2),
        lambda x: x.view(-1)[:3].zero_(),  # through a view
        lambda x: x.__setitem__(x.abs() > 1, 0.0),  # item assignment
        lambda x: torch.tanh(x, out=x),  # out= its input
    ],
)
def test_a_watched_call_sees_any_in_place_change_of_its_input(mixed_suite, change):
    workload = build_workload(mixed_suite, TrainingProtocol(steps=3, n_train=256, n_eval=128))
    recorder = _Recorder()

    def activation(x):
        if not x.requires_grad:  # the scoring pass: a changed input is seen there as well
            change(x)
        return torch.relu(x) + 0.0

    train_ensemble(activation, workload, check=recorder)
    assert [unchanged for _, _, unchanged, _ in recorder.calls] == [True] * 6 + [False] * 2


# --------------------------------------------------------------------------------------------
# TrainingProtocol: what it accepts, at the boundaries
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["hidden", "depth", "steps", "batch_size", "n_train", "n_eval"])
def test_protocol_sizes_are_integers_from_one(field):
    assert getattr(TrainingProtocol(**{field: 1}), field) == 1
    for bad in (0, -3, 2.0, "4", None):
        with pytest.raises(
            ValueError,
            match=rf"^protocol field '{field}' must be a positive integer, "
            rf"got {re.escape(repr(bad))}$",
        ):
            TrainingProtocol(**{field: bad})


def test_protocol_learning_rate_dtype_and_device():
    assert TrainingProtocol(lr=1e-12).lr == 1e-12
    for bad in (0.0, -0.1, math.nan):
        with pytest.raises(ValueError, match=rf"^protocol field 'lr' must be positive, got {bad!r}$"):
            TrainingProtocol(lr=bad)
    assert (
        TrainingProtocol().torch_dtype == torch.float32
        and TrainingProtocol(dtype="float64").torch_dtype == torch.float64
    )
    for bad in ("float16", "double", "Float32"):
        with pytest.raises(ValueError, match=rf"^protocol field 'dtype' must be 'float32' or 'float64', got '{bad}'$"):
            TrainingProtocol(dtype=bad)
    for fine in ("cpu", "cuda", "cuda:1", "cpu:0"):
        assert TrainingProtocol(device=fine).device == fine  # nothing is allocated when a protocol is made
    for bad in ("tpu", "mps", "gpu:0", ""):
        with pytest.raises(ValueError, match=rf"^protocol field 'device' must be 'cpu' or 'cuda', got '{bad}'$"):
            TrainingProtocol(device=bad)


def test_protocol_defaults_and_dict():
    protocol = TrainingProtocol()
    assert protocol.to_dict() == {
        "hidden": 64,
        "depth": 2,
        "steps": 50,
        "batch_size": 128,
        "lr": 3e-2,
        "warmup": 5,
        "final_lr_fraction": 0.1,
        "n_train": 1024,
        "n_eval": 512,
        "dtype": "float32",
        "device": "cpu",
        "adam_eps": 1e-8,
    }
    assert TrainingProtocol(**TrainingProtocol(hidden=3, lr=0.5).to_dict()) == TrainingProtocol(hidden=3, lr=0.5)


@given(st.integers(1, 80), st.integers(0, 12), st.floats(1e-4, 1.0), st.floats(0.0, 1.0, allow_subnormal=False))
@settings(max_examples=80, deadline=None)
def test_learning_rates_warm_up_linearly_then_follow_a_cosine_to_the_floor(steps, warmup, lr, floor):
    rates = TrainingProtocol(steps=steps, warmup=warmup, lr=lr, final_lr_fraction=floor).learning_rates()
    assert len(rates) == steps
    warm = min(warmup, steps)
    assert rates[:warm] == pytest.approx([lr * (s + 1) / warmup for s in range(warm)])
    decay = steps - warm  # steps after the warm-up: a half cosine from lr down to lr·floor
    for i, rate in enumerate(rates[warm:]):
        progress = i / (decay - 1) if decay > 1 else 0.0
        assert rate == pytest.approx(lr * (floor + (1 - floor) * (1 + math.cos(math.pi * progress)) / 2))
    if decay >= 1:
        assert rates[warm] == pytest.approx(lr)  # the peak right after the warm-up
    if decay >= 2:
        assert rates[-1] == pytest.approx(lr * floor)  # the floor at the last step
    assert all(a >= b - 1e-15 for a, b in zip(rates[warm:], rates[warm + 1 :]))
    assert all(0 < r <= lr * (1 + 1e-12) for r in rates) or floor == 0.0


# --------------------------------------------------------------------------------------------
# Parameters and initial weights
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_parameter_shapes_are_a_weight_and_a_bias_per_layer(depth):
    shapes = parameter_shapes(4, 2, TrainingProtocol(hidden=3, depth=depth))
    expected = [(4, 2, 3), (4, 1, 3)] + [(4, 3, 3), (4, 1, 3)] * (depth - 1) + [(4, 3, 1), (4, 1, 1)]
    assert shapes == expected


def test_initial_weights_are_uniform_over_plus_minus_one_over_root_fan_in():
    """As nn.Linear: weights and biases of a layer uniform in ±1/√fan_in (fan_in of that layer)."""
    protocol = TrainingProtocol(hidden=400, depth=2)
    params = init_model(1, 1, protocol, seed=3)
    assert all(p.dtype == torch.float64 for p in params)
    assert [tuple(p.shape) for p in params] == [(1, 400), (1, 400), (400, 400), (1, 400), (400, 1), (1, 1)]
    for layer, fan_in in enumerate((1, 400)):
        bound = 1 / math.sqrt(fan_in)
        for p in params[2 * layer : 2 * layer + 2]:
            assert p.abs().max() <= bound
            assert p.max() > 0.95 * bound and p.min() < -0.95 * bound  # the whole range is used
            assert abs(float(p.mean())) < 0.15 * bound  # centred on zero
    assert params[4].abs().max() <= 1 / 20 and params[5].abs().max() <= 1 / 20
    assert params[4].max() > 0.9 / 20 and params[4].min() < -0.9 / 20


def test_initial_weights_depend_on_the_seed_only_and_padding_adds_zero_rows():
    protocol = TrainingProtocol(hidden=8)
    plain, padded = init_model(2, 2, protocol, seed=5), init_model(2, 6, protocol, seed=5)
    assert tuple(plain[0].shape) == (2, 8) and tuple(padded[0].shape) == (6, 8)
    assert torch.equal(padded[0][:2], plain[0]) and torch.equal(padded[0][2:], torch.zeros(4, 8))
    for a, b in zip(plain[1:], padded[1:]):
        assert torch.equal(a, b)
    other = init_model(2, 2, protocol, seed=6)
    assert all(not torch.equal(a, b) for a, b in zip(plain, other))


def test_split_parameters_lay_the_flat_vector_out_in_order():
    protocol = TrainingProtocol(hidden=3, depth=1)
    shapes = parameter_shapes(2, 2, protocol)
    flat = torch.arange(sum(math.prod(s) for s in shapes), dtype=torch.float64)
    views = split_parameters(flat, 2, 2, protocol)
    torch.testing.assert_close(torch.cat([v.reshape(-1) for v in views]), flat)
    flat[0] = -1.0  # views, not copies
    assert views[0][0, 0, 0] == -1.0
    assert views[1][0, 0, 0] == 12.0 and views[2][0, 0, 0] == 18.0 and views[3][1, 0, 0] == 25.0


# --------------------------------------------------------------------------------------------
# The workload
# --------------------------------------------------------------------------------------------

AFFINE = formula("2*x + 1", id={"x": [0, 1]}, ood={"x": [1, 2]}, name="affine")  # standardised y = standardised x


def test_a_workload_is_task_major_padded_and_drawn_from_generate():
    suite = Suite("w", (AFFINE, polynomial(dim=3, seed=1)), (4, 7))
    protocol = TrainingProtocol(steps=3, batch_size=5, n_train=20, n_eval=6, hidden=4, dtype="float64")
    workload = build_workload(suite, protocol)
    assert workload.labels == [("affine", 4), ("affine", 7), ("poly3d-s1", 4), ("poly3d-s1", 7)]
    assert workload.models == 4 and workload.protocol is protocol
    assert workload.families == ["formula", "formula", "polynomial", "polynomial"] and workload.in_dims == [1, 1, 3, 3]
    assert tuple(workload.batches_x.shape) == (3, 4, 5, 3) and tuple(workload.batches_y.shape) == (3, 4, 5, 1)
    assert tuple(workload.x_id.shape) == (4, 6, 3) and tuple(workload.y_ood.shape) == (4, 6, 1)
    assert workload.init.dtype == torch.float64 and workload.x_ood.dtype == torch.float64
    for m, (task, seed) in enumerate([(AFFINE, 4), (AFFINE, 7)]):
        data = generate(task, seed, 20, 6)
        for split in ("x_id", "x_ood"):
            assert torch.equal(getattr(workload, split)[m, :, :1], getattr(data, split))
            assert torch.equal(getattr(workload, split)[m, :, 1:], torch.zeros(6, 2))  # padding
        assert torch.equal(workload.y_id[m], data.y_id) and torch.equal(workload.y_ood[m], data.y_ood)
        # minibatches are rows of the training points, inputs and targets of the same rows
        assert torch.isin(workload.batches_x[:, m, :, 0], data.x_train[:, 0]).all()
        torch.testing.assert_close(workload.batches_y[:, m, :, 0], workload.batches_x[:, m, :, 0])
    assert (
        TrainingProtocol().dtype == "float32"
        and build_workload(suite, TrainingProtocol(steps=2, n_train=20, n_eval=6)).init.dtype == torch.float32
    )


def test_a_models_batches_and_weights_do_not_depend_on_the_rest_of_the_suite():
    protocol = TrainingProtocol(steps=4, batch_size=8, n_train=32, n_eval=8, hidden=4, dtype="float64")
    other = polynomial(dim=1, seed=9)
    together = build_workload(Suite("a", (other, AFFINE), (0, 1)), protocol)
    alone = build_workload(Suite("b", (AFFINE,), (0, 1)), protocol)
    assert torch.equal(together.batches_x[:, 2:], alone.batches_x)
    both = split_parameters(together.init, 4, 1, protocol)
    single = split_parameters(alone.init, 2, 1, protocol)
    for a, b in zip(both, single):
        assert torch.equal(a[2:], b)
    assert not torch.equal(together.batches_x[:, 2], together.batches_x[:, 3])  # seeds differ
    assert not torch.equal(both[0][2], both[0][3])


# --------------------------------------------------------------------------------------------
# Activations applied per model and per example, watched calls, the forward pass, the error
# --------------------------------------------------------------------------------------------


def _centre(h):
    return h - h.mean()


def test_per_model_activation_sees_each_models_slice_alone():
    h = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(0))
    out = per_model_activation(_centre)(h)
    torch.testing.assert_close(out, h - h.mean(dim=(1, 2), keepdim=True))


@pytest.mark.parametrize("traceable", [True, False])
def test_per_example_activation_sees_each_examples_hidden_vector_alone(traceable):
    def scale_by_max(h):  # .item() is beyond vmap: the loop gives the same result
        return h / h.abs().max().item()

    activation = _centre if traceable else scale_by_max
    h = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(1))
    out = per_example_activation(activation)(h)
    assert out.shape == h.shape
    expected = h - h.mean(dim=-1, keepdim=True) if traceable else h / h.abs().amax(dim=-1, keepdim=True)
    torch.testing.assert_close(out, expected)


@given(st.integers(1, 10_000))
def test_check_steps_are_the_first_the_middle_and_the_last(steps):
    assert check_steps(steps) == {0, steps // 2, steps - 1}


def test_a_watched_call_returns_the_activations_output_and_reports_it():
    seen = []
    h = torch.randn(2, 3, requires_grad=True)
    out = watched(torch.tanh, lambda *args: seen.append(args), "here")(h)
    torch.testing.assert_close(out, torch.tanh(h))
    ((inp, output, where, modified),) = seen
    assert torch.equal(inp, h.detach()) and not inp.requires_grad and output is out and where == "here"
    assert modified is False
    leaf = torch.randn(2, 3)
    watched(lambda x: x.mul_(2), lambda *args: seen.append(args), "there")(leaf)
    assert seen[-1][2:] == ("there", True)


def test_forward_is_the_stacked_mlps_written_out():
    protocol = TrainingProtocol(hidden=4, depth=2)
    generator = torch.Generator().manual_seed(2)
    params = [torch.randn(s, generator=generator, dtype=torch.float64) for s in parameter_shapes(3, 2, protocol)]
    x = torch.randn(3, 5, 2, generator=generator, dtype=torch.float64)
    expected = []
    for m in range(3):
        h = x[m]
        for layer in (0, 2):
            h = torch.sin(h @ params[layer][m] + params[layer + 1][m])
        expected.append(h @ params[4][m] + params[5][m])
    torch.testing.assert_close(forward(params, x, torch.sin), torch.stack(expected))


@given(st.integers(1, 4), st.integers(2, 12), st.integers(0, 2**16))
@settings(max_examples=40, deadline=None)
def test_normalised_error_is_the_mse_over_the_targets_variance(models, points, seed):
    generator = torch.Generator().manual_seed(seed)
    prediction = torch.randn(models, points, 1, generator=generator, dtype=torch.float64)
    target = torch.randn(models, points, 1, generator=generator, dtype=torch.float64) * 3 + 1
    error = normalised_error(prediction, target)
    p, t = prediction.numpy()[..., 0], target.numpy()[..., 0]
    np.testing.assert_allclose(error.numpy(), ((p - t) ** 2).mean(axis=1) / t.var(axis=1), rtol=1e-12)
    mean_prediction = target.mean(dim=1, keepdim=True).expand_as(target)
    torch.testing.assert_close(normalised_error(mean_prediction, target), torch.ones(models, dtype=torch.float64))
    assert normalised_error(target, target).abs().max() == 0


# --------------------------------------------------------------------------------------------
# Training: which models failed, and how a batch-dependent activation is scored
# --------------------------------------------------------------------------------------------


def test_only_the_models_that_overflow_are_reported(mixed_suite):
    workload = build_workload(mixed_suite, TrainingProtocol(steps=3, n_train=64, n_eval=16, batch_size=8, hidden=8))

    def overflows_on_models_3_and_6(h):
        scale = torch.ones(h.shape[0], 1, 1)
        scale[[3, 6]] = 1e30
        return torch.tanh(h) * scale

    result = train_ensemble(overflows_on_models_3_and_6, workload)
    assert result.non_finite == [3, 6]
    finite = [m for m in range(workload.models) if m not in (3, 6)]
    assert torch.isfinite(result.losses[:, finite]).all() and torch.isfinite(result.ood_error[finite]).all()
    assert tuple(result.losses.shape) == (3, workload.models) and result.losses.device.type == "cpu"


def test_a_batch_dependent_activation_is_scored_one_example_at_a_time_if_asked(mixed_suite):
    protocol = TrainingProtocol(steps=2, n_train=64, n_eval=16, batch_size=8, hidden=8)
    workload = build_workload(mixed_suite, protocol)
    shapes = []

    def centred_tanh(h):
        shapes.append(tuple(h.shape))
        return torch.tanh(h - h.mean(dim=-2, keepdim=True)) if h.dim() >= 2 and h.shape[-2] > 1 else torch.tanh(h)

    train_ensemble(centred_tanh, workload, pointwise=False, per_example=True)
    assert shapes[0] == (8, 8)  # training: one model's batch at a time
    assert (1, 8) in shapes  # scoring: one example at a time, as a batch of one
    assert (workload.models, 8, 8) not in shapes and (16, 8) not in shapes


class _BreaksOneModel:
    """tanh, except NaN for model `model` in one pass: "train" (a training forward), "id" or "ood" (a scoring
    forward). Knows the model either from the stacked tensor's first axis (the ensemble) or by counting the
    calls of `train_per_model`, which trains and scores one model after another."""

    def __init__(self, model: int, where: str, protocol: TrainingProtocol, stacked: bool):
        self.model, self.where, self.protocol, self.stacked = model, where, protocol, stacked
        self.training_calls = self.scoring_calls = 0

    def __call__(self, h):
        out = torch.tanh(h)
        if torch.is_grad_enabled():
            current = self.training_calls // (self.protocol.steps * self.protocol.depth)
            self.training_calls += 1
            where = "train"
        else:
            current = self.scoring_calls // (2 * self.protocol.depth)
            where = "id" if self.scoring_calls % (2 * self.protocol.depth) < self.protocol.depth else "ood"
            self.scoring_calls += 1
        if where != self.where:
            return out
        if self.stacked:
            mask = torch.zeros(h.shape[0], *([1] * (h.dim() - 1)), dtype=torch.bool)
            mask[self.model] = True
            return torch.where(mask, torch.full_like(out, math.nan), out)
        return out * math.nan if current == self.model else out


@pytest.mark.parametrize("where", ["train", "id", "ood"])
@pytest.mark.parametrize("trainer", [train_ensemble, train_per_model])
def test_a_model_is_reported_when_any_of_its_numbers_is_not_finite(mixed_suite, where, trainer):
    protocol = TrainingProtocol(steps=3, n_train=64, n_eval=16, batch_size=8, hidden=8)
    workload = build_workload(mixed_suite, protocol)
    if trainer is train_ensemble:
        result = train_ensemble(_BreaksOneModel(3, where, protocol, stacked=True), workload)
    else:
        result = train_per_model(_BreaksOneModel(3, where, protocol, stacked=False), workload)
    assert result.non_finite == [3]
    others = [m for m in range(workload.models) if m != 3]
    assert torch.isfinite(result.losses[:, others]).all() and torch.isfinite(result.ood_error[others]).all()
    assert torch.isfinite(result.id_error[others]).all()


def test_a_models_batches_and_weights_are_seeded_by_its_task_name_and_seed():
    """Reproducible in every process and version: batch indices from torch's generator seeded with
    stable_seed("batches", task, seed), initial weights from init_model seeded with stable_seed("init", task, seed)."""
    protocol = TrainingProtocol(steps=3, batch_size=4, n_train=16, n_eval=4, hidden=4, dtype="float64")
    suite = Suite("w", (AFFINE, polynomial(dim=1, seed=9)), (0, 5))
    workload = build_workload(suite, protocol)
    layers = split_parameters(workload.init, workload.models, 1, protocol)
    for m, (task, seed) in enumerate((t, s) for t in suite.tasks for s in suite.seeds):
        index = torch.randint(
            16, (3, 4), generator=torch.Generator().manual_seed(stable_seed("batches", task.name, seed))
        )
        assert torch.equal(workload.batches_x[:, m], generate(task, seed, 16, 4).x_train[index])
        for got, expected in zip(layers, init_model(1, 1, protocol, stable_seed("init", task.name, seed))):
            assert torch.equal(got[m], expected)


def test_learning_rates_with_two_steps_after_the_warm_up():
    assert TrainingProtocol(steps=3, warmup=1, lr=1.0, final_lr_fraction=0.5).learning_rates() == pytest.approx(
        [1.0, 1.0, 0.5]
    )
