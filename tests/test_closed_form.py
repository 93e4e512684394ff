"""The closed-form training (`actmine.lab.closed_form`) gives autograd's training to the bit."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actmine import activations
from actmine.candidate import fused as fusion
from actmine.candidate.source import compile_candidate
from actmine.evolve.seeds import program
from actmine.lab import closed_form as cf
from actmine.lab import ensemble
from actmine.lab.ensemble import TrainingProtocol, build_workload, train_ensemble, train_per_model


def autograd_relu(x: torch.Tensor) -> torch.Tensor:
    """ReLU as a plain callable: `train_ensemble` trains it with autograd."""
    return torch.relu(x)


def assert_identical(a, b) -> None:
    assert torch.equal(a.losses, b.losses)
    assert torch.equal(a.id_error, b.id_error) and torch.equal(a.ood_error, b.ood_error)
    assert a.non_finite == b.non_finite


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batch=st.integers(1, 40),
    hidden=st.integers(1, 24),
    depth=st.integers(1, 3),
    steps=st.integers(1, 8),
    dtype=st.sampled_from(["float32", "float64"]),
    adam_eps=st.sampled_from([1e-8, 1e-3]),
)
def test_relu_trains_to_the_bit_as_autograd_trains_it(mixed_suite, batch, hidden, depth, steps, dtype, adam_eps):
    protocol = TrainingProtocol(
        steps=steps,
        batch_size=batch,
        hidden=hidden,
        depth=depth,
        dtype=dtype,
        n_train=64,
        n_eval=32,
        warmup=2,
        adam_eps=adam_eps,
    )
    workload = build_workload(mixed_suite, protocol)
    assert cf.closed_form(torch.relu, workload.init) is cf.RELU
    assert_identical(train_ensemble(torch.relu, workload), train_ensemble(autograd_relu, workload))


@pytest.mark.parametrize("adam_eps", [1e-8, 1e-2])
def test_relu_in_closed_form_matches_one_mlp_per_model(mixed_suite, adam_eps):
    """Against the slow reference too (one nn.Module and one torch.optim.Adam per MLP), at Adam's
    default ε and at a larger one, which must change the training."""
    protocol = TrainingProtocol(steps=12, dtype="float64", n_train=256, n_eval=128, adam_eps=adam_eps)
    workload = build_workload(mixed_suite, protocol)
    batched, reference = train_ensemble(torch.relu, workload), train_per_model(torch.relu, workload)
    torch.testing.assert_close(batched.losses, reference.losses, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(batched.ood_error, reference.ood_error, rtol=1e-8, atol=1e-12)
    assert batched.losses[-1].mean() < batched.losses[0].mean()
    if adam_eps != 1e-8:
        default = build_workload(mixed_suite, TrainingProtocol(steps=12, dtype="float64", n_train=256, n_eval=128))
        assert not torch.equal(train_ensemble(torch.relu, default).losses, batched.losses)


def test_a_model_that_overflows_is_reported_as_autograd_reports_it(mixed_suite):
    protocol = TrainingProtocol(steps=6, n_train=64, n_eval=16, batch_size=8, hidden=8, lr=1e30)
    workload = build_workload(mixed_suite, protocol)
    closed, plain = train_ensemble(torch.relu, workload), train_ensemble(autograd_relu, workload)
    assert closed.non_finite and closed.non_finite == plain.non_finite
    torch.testing.assert_close(closed.losses, plain.losses, equal_nan=True, rtol=0, atol=0)


@pytest.mark.skipif(fusion.compiler() is None, reason="no C compiler on this machine")
@pytest.mark.parametrize(
    "expression",
    [
        "F.gelu(1.67 * x) * torch.sigmoid(2 * x) * F.softsign(2 * x) - 0.11 * torch.exp(-0.416 * x * x)",
        "torch.where(x > 0, x, torch.exp(x) - 1) + 0.1 * torch.sin(3 * x)",
        "torch.abs(x) ** 1.5 + torch.clamp(x, min=-1, max=2)",
    ],
)
def test_a_fused_kernel_trains_to_the_bit_as_its_autograd_function_does(mixed_suite, expression, tmp_path):
    source = program(expression)
    fused = fusion.fused_or_reason(source, compile_candidate(source, "candidate"), tmp_path)
    assert isinstance(fused, fusion.FusedActivation), fused
    workload = build_workload(mixed_suite, TrainingProtocol(steps=9, n_train=128, n_eval=64, batch_size=24))
    assert cf.closed_form(fused, workload.init) is fused
    closed = train_ensemble(fused, workload)
    with_autograd = train_ensemble(lambda x: fused(x), workload)  # a plain callable: the `_Kernel` Function
    assert_identical(closed, with_autograd)
    # float64 workloads are not the kernel's: autograd trains the candidate's eager function
    float64 = build_workload(mixed_suite, dataclasses.replace(workload.protocol, dtype="float64"))
    assert cf.closed_form(fused, float64.init) is None


def _recording(calls: list):
    def check(h, output, where, modified_in_place):
        calls.append((where, tuple(h.shape), modified_in_place, torch.equal(output, torch.relu(h))))

    return check


def test_a_call_check_sees_the_calls_it_sees_with_autograd(mixed_suite):
    workload = build_workload(mixed_suite, TrainingProtocol(steps=7, n_train=64, n_eval=32, depth=2))
    closed, plain = [], []
    assert_identical(
        train_ensemble(torch.relu, workload, check=_recording(closed)),
        train_ensemble(autograd_relu, workload, check=_recording(plain)),
    )
    assert [c[:3] for c in closed] == [p[:3] for p in plain]
    assert [where for where, *_ in closed] == (
        ["at training step 0"] * 2
        + ["at training step 3"] * 2
        + ["at training step 6"] * 2
        + ["in the OOD scoring pass"] * 2
    )
    assert all(matches for *_, matches in closed)  # each call's output is f of its input


def test_only_relu_and_closed_form_objects_skip_autograd():
    like = torch.zeros(3)

    class Pretender:
        closed_form = "not a closed form"

    class Declines:
        closed_form = property(lambda self: self)
        in_place = False
        takes = staticmethod(lambda like: False)
        forward_into = backward_into = staticmethod(lambda *args: None)

    assert cf.closed_form(torch.relu, like) is cf.closed_form(torch.nn.functional.relu, like) is cf.RELU
    assert cf.closed_form(autograd_relu, like) is None
    assert cf.closed_form(torch.tanh, like) is None
    assert cf.closed_form(Pretender(), like) is None
    assert cf.closed_form(Declines(), like) is None
    assert cf.closed_form(torch.relu, torch.zeros(3, device="meta")) is None  # CPU only


@pytest.mark.skipif(fusion.compiler() is None, reason="no C compiler on this machine")
def test_the_kernel_writes_only_into_buffers_of_its_own_shape_and_type(tmp_path):
    source = program("torch.tanh(x) * torch.sigmoid(x)")
    fused = fusion.fused_or_reason(source, compile_candidate(source, "candidate"), tmp_path)
    assert isinstance(fused, fusion.FusedActivation), fused
    x = torch.linspace(-3, 3, 64)
    out, slope = torch.empty(64), torch.empty(64)
    fused.forward_into(x, out, slope)
    assert torch.equal(out, fused(x))
    grad = torch.ones(64)
    fused.backward_into(grad, out, slope)
    reference = x.clone().requires_grad_(True)
    (derivative,) = torch.autograd.grad(fused(reference).sum(), reference)
    assert torch.equal(grad, derivative)
    bad = [
        (x, torch.empty(32), slope),  # too small: the loop would write past it
        (x, out, torch.empty(64, dtype=torch.float64)),
        (x.double(), out, slope),
        (torch.linspace(-3, 3, 128)[::2], out, slope),  # not contiguous
    ]
    for args in bad:
        with pytest.raises(ValueError, match="contiguous float32 CPU tensors of one shape"):
            fused.forward_into(*args)


def test_the_module_docstring_formula_is_the_loss_autograd_differentiates(mixed_suite):
    """g_L = (2/B)(h_L − y): the loss's gradient w.r.t. the output, per model, as autograd has it."""
    protocol = TrainingProtocol(steps=1, n_train=64, n_eval=32, batch_size=12)
    workload = build_workload(mixed_suite, protocol)
    output = torch.randn(workload.models, 12, 1, requires_grad=True)
    target = workload.batches_y[0]
    (output - target).pow(2).mean(dim=(1, 2)).sum().backward()
    inverse_n = torch.ones(()) / 12
    assert torch.equal(output.grad, inverse_n * (output.detach() - target).mul(2))


def test_the_adam_constants_are_torchs_defaults():
    defaults = torch.optim.Adam([torch.zeros(1, requires_grad=True)]).defaults
    assert defaults["betas"] == ensemble.ADAM_BETAS and defaults["eps"] == ensemble.ADAM_EPS
    assert defaults["weight_decay"] == 0 and not defaults["amsgrad"]


def test_the_librarys_relu_has_the_closed_form_unless_hooks_would_be_skipped():
    like = torch.zeros(3)
    module = activations.get("relu")
    assert cf.closed_form(module, like) is cf.closed_form(activations.relu, like) is cf.RELU
    handle = module.register_forward_hook(lambda *args: None)
    try:
        assert cf.closed_form(module, like) is None  # the hook runs on every call: autograd keeps it
    finally:
        handle.remove()
    handle = module.register_full_backward_hook(lambda *args: None)
    try:
        assert cf.closed_form(module, like) is None  # a backward hook sees the gradient autograd computes
    finally:
        handle.remove()
    global_handle = torch.nn.modules.module.register_module_forward_pre_hook(lambda *args: None)
    try:
        assert cf.closed_form(module, like) is None
    finally:
        global_handle.remove()
    assert cf.closed_form(module, like) is cf.RELU
    assert cf.closed_form(activations.get("leaky_relu"), like) is None
