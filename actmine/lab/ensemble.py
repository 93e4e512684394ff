"""Many tiny MLPs trained as one batched model.

A candidate is scored on every (task, seed) pair of a suite; each pair is one small MLP. Instead of
M separate models (M optimisers, M·layers small matmuls, M× the Python overhead) all M networks are
stacked: the weights of layer l form one tensor of shape (M, fan_in, fan_out), the forward pass is
`torch.baddbmm` over the model axis, and a single Adam updates one flat parameter tensor. Adam is
elementwise, so one Adam over the stacked parameters is exactly M independent Adams; the loss is
the sum of the per-model mean-squared errors, so each model receives exactly its own gradient.

Tasks of different input width are zero-padded to the widest: a padded input column is zero, so
its weights receive zero gradient, Adam leaves them at their initial zero, and the padded model
computes exactly what the unpadded one would (nothing is trained twice, nothing leaks).

`train_per_model` is the slow, obvious reference (one `nn.Module` and one Adam per MLP): the tests
check that the ensemble reproduces it, and `benchmarks/bench_fitness.py` measures against it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from .closed_form import ClosedForm, closed_form
from .tasks import Suite, TaskData, generate, stable_seed

Activation = Callable[[torch.Tensor], torch.Tensor]
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # Adam's settings on both training paths (torch's defaults)


@dataclass(frozen=True)
class TrainingProtocol:
    """How every MLP of the lab is trained and scored (docs/lab.md explains each default)."""

    hidden: int = 64  # width of each hidden layer
    depth: int = 2  # number of hidden layers (each followed by the activation)
    steps: int = 50  # optimiser steps, as in the paper
    batch_size: int = 128  # minibatch drawn from the ID training points, as in the paper
    lr: float = 3e-2  # Adam's peak learning rate
    warmup: int = 5  # linear warm-up steps, then cosine decay to lr·final_lr_fraction
    final_lr_fraction: float = 0.1
    n_train: int = 1024  # ID training points per (task, seed)
    n_eval: int = 512  # held-out ID points and OOD points per (task, seed)
    dtype: str = "float32"
    device: str = "cpu"
    adam_eps: float = ADAM_EPS  # Adam's ε; larger values damp its first, sign-like steps

    def __post_init__(self) -> None:
        for name in ("hidden", "depth", "steps", "batch_size", "n_train", "n_eval"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"protocol field {name!r} must be a positive integer, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"protocol field 'lr' must be positive, got {self.lr!r}")
        if not (self.adam_eps > 0 and math.isfinite(self.adam_eps)):
            raise ValueError(f"protocol field 'adam_eps' must be positive and finite, got {self.adam_eps!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"protocol field 'dtype' must be 'float32' or 'float64', got {self.dtype!r}")
        if self.device.split(":")[0] not in ("cpu", "cuda"):
            raise ValueError(f"protocol field 'device' must be 'cpu' or 'cuda', got {self.device!r}")

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    def learning_rates(self) -> list[float]:
        """The learning rate of each step: linear warm-up, then cosine decay."""
        rates = []
        for step in range(self.steps):
            if step < self.warmup:
                rates.append(self.lr * (step + 1) / self.warmup)
            else:
                progress = (step - self.warmup) / max(1, self.steps - self.warmup - 1)
                floor = self.final_lr_fraction
                rates.append(self.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))))
        return rates

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Workload:
    """Everything an ensemble trains on, independent of the activation (built once per suite).

    M = tasks × seeds models; D = widest input. `batches_x[s]` is step s's minibatch of every model,
    gathered in advance so that the training loop does no indexing or allocation of its own.
    """

    labels: list[tuple[str, int]]  # (task name, seed) of each model
    families: list[str]
    in_dims: list[int]
    batches_x: torch.Tensor  # (steps, M, B, D)
    batches_y: torch.Tensor  # (steps, M, B, 1)
    x_id: torch.Tensor  # (M, n_eval, D)
    y_id: torch.Tensor  # (M, n_eval, 1)
    x_ood: torch.Tensor
    y_ood: torch.Tensor
    init: torch.Tensor  # (P,) flat initial parameters of all models
    protocol: TrainingProtocol

    @property
    def models(self) -> int:
        return len(self.labels)


def parameter_shapes(models: int, in_dim: int, protocol: TrainingProtocol) -> list[tuple[int, ...]]:
    """Shapes of the stacked parameters: per layer a weight (M, fan_in, fan_out) and a bias (M, 1, fan_out)."""
    widths = [in_dim] + [protocol.hidden] * protocol.depth + [1]
    shapes = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        shapes += [(models, fan_in, fan_out), (models, 1, fan_out)]
    return shapes


def init_model(in_dim: int, padded_dim: int, protocol: TrainingProtocol, seed: int) -> list[torch.Tensor]:
    """One MLP's initial parameters, as PyTorch's nn.Linear draws them: U(−1/√fan_in, 1/√fan_in).

    Drawn from a generator seeded only by (task, seed), so every candidate starts from the same
    weights as ReLU does. Weights of padded input columns are zero.
    """
    generator = torch.Generator().manual_seed(seed)
    widths = [in_dim] + [protocol.hidden] * protocol.depth + [1]
    params = []
    for layer, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        bound = 1.0 / math.sqrt(fan_in)
        weight = (torch.rand(fan_in, fan_out, generator=generator, dtype=torch.float64) * 2 - 1) * bound
        bias = (torch.rand(1, fan_out, generator=generator, dtype=torch.float64) * 2 - 1) * bound
        if layer == 0 and padded_dim > in_dim:
            weight = torch.cat([weight, weight.new_zeros(padded_dim - in_dim, fan_out)])
        params += [weight, bias]
    return params


def build_workload(suite: Suite, protocol: TrainingProtocol) -> Workload:
    """Generate every (task, seed) dataset, the minibatch schedule and the initial weights."""
    pairs = [(task, seed) for task in suite.tasks for seed in suite.seeds]
    width = max(task.input_dim for task in suite.tasks)
    dtype = protocol.torch_dtype

    def pad(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(x, (0, width - x.shape[1]))

    datasets: list[TaskData] = [generate(task, seed, protocol.n_train, protocol.n_eval) for task, seed in pairs]
    batch_x, batch_y, per_model_init = [], [], []
    for (task, seed), data in zip(pairs, datasets):
        generator = torch.Generator().manual_seed(stable_seed("batches", task.name, seed))
        index = torch.randint(protocol.n_train, (protocol.steps, protocol.batch_size), generator=generator)
        batch_x.append(pad(data.x_train)[index])  # (steps, B, D)
        batch_y.append(data.y_train[index])
        per_model_init.append(init_model(task.input_dim, width, protocol, stable_seed("init", task.name, seed)))
    # Stack layer by layer, then flatten into the single parameter vector the optimiser updates.
    stacked = [torch.stack([p[i] for p in per_model_init]) for i in range(len(per_model_init[0]))]
    init = torch.cat([p.reshape(-1) for p in stacked])

    def stack(tensors: Sequence[torch.Tensor], dim: int = 0) -> torch.Tensor:
        return torch.stack(list(tensors), dim=dim).to(device=protocol.device, dtype=dtype)

    return Workload(
        labels=[(task.name, seed) for task, seed in pairs],
        families=[task.family for task, _ in pairs],
        in_dims=[task.input_dim for task, _ in pairs],
        batches_x=stack(batch_x, dim=1),
        batches_y=stack(batch_y, dim=1),
        x_id=stack([pad(d.x_id) for d in datasets]),
        y_id=stack([d.y_id for d in datasets]),
        x_ood=stack([pad(d.x_ood) for d in datasets]),
        y_ood=stack([d.y_ood for d in datasets]),
        init=init.to(device=protocol.device, dtype=dtype),
        protocol=protocol,
    )


def split_parameters(flat: torch.Tensor, models: int, in_dim: int, protocol: TrainingProtocol) -> list[torch.Tensor]:
    """Views of the flat parameter vector with the stacked shapes (no copies)."""
    views, offset = [], 0
    for shape in parameter_shapes(models, in_dim, protocol):
        size = math.prod(shape)
        views.append(flat[offset : offset + size].view(shape))
        offset += size
    return views


def per_model_activation(activation: Activation) -> Activation:
    """Apply a non-pointwise activation to each model's slice on its own.

    A batch-statistics activation sees the whole tensor it is given; in the stacked ensemble that
    would mix the statistics of all models. Applied per model it sees what a lone MLP would see.
    """

    def apply(h: torch.Tensor) -> torch.Tensor:
        return torch.stack([activation(h[m]) for m in range(h.shape[0])])

    return apply


def per_example_activation(activation: Activation) -> Activation:
    """Apply a non-pointwise activation to each example's hidden vector on its own.

    This is how a batch-statistics activation behaves when a trained model is used on one input
    at a time; `torch.func.vmap` vectorises it, with a plain loop for code vmap cannot trace.
    """

    def apply(h: torch.Tensor) -> torch.Tensor:
        rows = h.reshape(-1, 1, h.shape[-1])
        try:
            out = torch.func.vmap(activation)(rows)
        except Exception:  # vmap does not support every op; the loop gives the same result
            out = torch.stack([activation(row) for row in rows])
        return out.reshape(h.shape)

    return apply


#: Called as check(input, output, where, modified_in_place) after each watched call.
CallCheck = Callable[[torch.Tensor, object, str, bool], None]


def check_steps(steps: int) -> frozenset[int]:
    """The training steps whose activation calls a `CallCheck` watches: the first, the middle and the last."""
    return frozenset({0, steps // 2, steps - 1})


def watched(activation: Activation, check: CallCheck, where: str) -> Activation:
    """`activation`, with every call handed to `check` (its input, output, and whether the call
    changed its input in place) after it ran.

    The training call itself is unchanged (same input, same autograd graph) and nothing is copied:
    an in-place change is seen by the tensor's version counter, which every in-place operation on a
    tensor or any view of it increments (the policy refuses `.data` and `set_`, which would not).
    """

    def apply(h: torch.Tensor) -> torch.Tensor:
        version = h._version
        out = activation(h)
        check(h.detach(), out, where, h._version != version)
        return out

    return apply


def forward(params: Sequence[torch.Tensor], x: torch.Tensor, activation: Activation) -> torch.Tensor:
    """The stacked MLPs on x of shape (M, B, D); returns (M, B, 1)."""
    h = x
    for layer in range(0, len(params) - 2, 2):
        h = activation(torch.baddbmm(params[layer + 1], h, params[layer]))
    return torch.baddbmm(params[-1], h, params[-2])


@dataclass
class TrainResult:
    """Per-model outcome of training: losses (steps, M), normalised ID and OOD errors (M,), and the
    models whose loss, gradients, parameters or outputs stopped being finite."""

    losses: torch.Tensor
    id_error: torch.Tensor
    ood_error: torch.Tensor
    non_finite: list[int]


def normalised_error(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE divided by the variance of the targets, per model: 1.0 = predicting the mean."""
    mse = (prediction - target).pow(2).mean(dim=(1, 2))
    return mse / target.var(dim=(1, 2), unbiased=False)


def train_ensemble(
    activation: Activation,
    workload: Workload,
    pointwise: bool = True,
    per_example: bool = False,
    check: CallCheck | None = None,
) -> TrainResult:
    """Train all M models of the workload at once with `activation` and score them.

    `pointwise=False` trains a batch-dependent activation on each model's batch separately;
    `per_example=True` then scores it one example at a time (see `per_example_activation`).
    `check` (untrusted candidates: `actmine.candidate.probes.TrainingCheck`) watches the
    activation's calls at `check_steps` and in the OOD scoring pass, and raises to stop the
    training when the candidate computes something other than what its probes saw.

    A pointwise activation with a closed form (ReLU, a candidate's compiled kernel) trains without
    autograd (`actmine.lab.closed_form`), with the same result to the bit.
    """
    protocol = workload.protocol
    form = closed_form(activation, workload.init) if pointwise and not per_example else None
    if form is not None:
        return train_closed_form(activation, form, workload, check)
    act = activation if pointwise else per_model_activation(activation)
    scoring_act = per_example_activation(activation) if per_example else act
    watch = check_steps(protocol.steps) if check is not None else frozenset()
    models, in_dim = workload.models, workload.batches_x.shape[-1]
    # Separate leaf tensors (not views of one flat tensor: slicing a leaf costs a full-size
    # zero-fill and copy per view in the backward pass); the fused Adam updates all of them in
    # one kernel per step.
    params = [p.clone().requires_grad_(True) for p in split_parameters(workload.init, models, in_dim, protocol)]
    optimizer = torch.optim.Adam(params, lr=protocol.lr, betas=ADAM_BETAS, eps=protocol.adam_eps, fused=True)
    losses = torch.empty(protocol.steps, models, dtype=workload.init.dtype, device=workload.init.device)
    for step, lr in enumerate(protocol.learning_rates()):
        optimizer.param_groups[0]["lr"] = lr
        step_act = watched(act, check, f"at training step {step}") if step in watch else act
        prediction = forward(params, workload.batches_x[step], step_act)
        loss = (prediction - workload.batches_y[step]).pow(2).mean(dim=(1, 2))
        loss.sum().backward()
        losses[step] = loss.detach()
        optimizer.step()
        optimizer.zero_grad()
    return score_trained(params, workload, losses, scoring_act, check)


def score_trained(
    params: Sequence[torch.Tensor],
    workload: Workload,
    losses: torch.Tensor,
    scoring_act: Activation,
    check: CallCheck | None = None,
) -> TrainResult:
    """The trained models' ID and OOD errors (one no-grad pass each; `check` watches the OOD
    pass's calls) and which models stopped being finite."""
    with torch.no_grad():
        pred_id = forward(params, workload.x_id, scoring_act)
        pred_ood = forward(
            params,
            workload.x_ood,
            scoring_act if check is None else watched(scoring_act, check, "in the OOD scoring pass"),
        )
        id_error = normalised_error(pred_id, workload.y_id)
        ood_error = normalised_error(pred_ood, workload.y_ood)
        # A non-finite gradient turns Adam's moments and then the parameters non-finite, so
        # checking losses, final parameters and outputs catches gradients too.
        finite = torch.isfinite(losses).all(0) & torch.isfinite(id_error) & torch.isfinite(ood_error)
        finite &= torch.stack([torch.isfinite(p).flatten(1).all(1) for p in params]).all(0)
    non_finite = torch.nonzero(~finite).flatten().tolist()
    return TrainResult(losses.cpu(), id_error.cpu(), ood_error.cpu(), non_finite)


def train_closed_form(
    activation: Activation, form: ClosedForm, workload: Workload, check: CallCheck | None = None
) -> TrainResult:
    """`train_ensemble` for a pointwise activation with a closed form (`actmine.lab.closed_form`):
    the same result to the bit, without autograd.

    The MLP is three batched products with the activation between them, so its backward pass is
    short enough to write out, with every tensor allocated once before the first step and Adam's
    fused kernel called directly:

        forward   h_l = b_l + a_{l-1} W_l,  a_l = f(h_l)            (a_0 = x; no f after the last layer)
        loss      per model: mean over the batch of (h_L − y)²
        backward  g_L = (2/B)(h_L − y);  ∂W_l = a_{l-1}ᵀ g_l,  ∂b_l = Σ_batch g_l
                  g_{l-1} = (g_l W_lᵀ) · f'(h_{l-1})

    These are the operations autograd runs for `train_ensemble`'s loss, in the same order (tests
    compare every loss and error to the bit); what goes is autograd's graph, its allocation of every
    intermediate and gradient, and `torch.optim.Adam`'s per-step bookkeeping.

    `check` sees every activation call of the watched steps (`check_steps`) and of the OOD scoring
    pass, as in `train_ensemble`; the scoring passes call `activation` itself."""
    protocol = workload.protocol
    models, in_dim, batch = workload.models, workload.batches_x.shape[-1], protocol.batch_size
    like = workload.init
    params = [p.clone() for p in split_parameters(workload.init, models, in_dim, protocol)]
    grads = [torch.empty_like(p) for p in params]
    moments = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]
    adam_steps = [torch.zeros((), dtype=torch.float32, device=like.device) for _ in params]
    weights, biases, weight_grads, bias_grads = params[0::2], params[1::2], grads[0::2], grads[1::2]
    widths = [w.shape[2] for w in weights]
    pre = [like.new_empty(models, batch, width) for width in widths]  # h_l
    post = [like.new_empty(models, batch, width) for width in widths[:-1]]  # a_l = f(h_l), unless in place
    slopes = [like.new_empty(models, batch, width) for width in widths[:-1]]
    delta = [like.new_empty(models, batch, width) for width in widths]  # g_l
    residual = like.new_empty(models, batch, widths[-1])
    # the loss's gradient factor as autograd forms it: mean's 1/N in the tensors' dtype
    inverse_n = torch.ones((), dtype=like.dtype, device=like.device) / (batch * widths[-1])
    losses = like.new_empty(protocol.steps, models)
    watch = check_steps(protocol.steps) if check is not None else frozenset()
    for step, lr in enumerate(protocol.learning_rates()):
        inputs = [workload.batches_x[step]]  # a_0 … a_{L-1}
        for layer, (weight, bias) in enumerate(zip(weights, biases)):
            torch.baddbmm(bias, inputs[layer], weight, out=pre[layer])
            if layer < len(post):
                out = pre[layer] if form.in_place and step not in watch else post[layer]
                form.forward_into(pre[layer], out, slopes[layer])
                if step in watch:
                    check(pre[layer], out, f"at training step {step}", False)  # type: ignore[misc]
                inputs.append(out)
        torch.sub(pre[-1], workload.batches_y[step], out=residual)
        torch.mean(residual.pow(2), dim=(1, 2), out=losses[step])
        torch.mul(inverse_n, residual.mul(2), out=delta[-1])
        for layer in reversed(range(len(weights))):
            torch.bmm(inputs[layer].transpose(1, 2), delta[layer], out=weight_grads[layer])
            torch.sum(delta[layer], dim=1, keepdim=True, out=bias_grads[layer])
            if layer:
                torch.bmm(delta[layer], weights[layer].transpose(1, 2), out=delta[layer - 1])
                form.backward_into(delta[layer - 1], inputs[layer], slopes[layer - 1])
        torch._foreach_add_(adam_steps, 1)
        torch._fused_adam_(
            params,
            grads,
            *moments,
            [],
            adam_steps,
            amsgrad=False,
            lr=lr,
            beta1=ADAM_BETAS[0],
            beta2=ADAM_BETAS[1],
            weight_decay=0.0,
            eps=protocol.adam_eps,
            maximize=False,
        )
    return score_trained(params, workload, losses, activation, check)


# --------------------------------------------------------------------------------------------
# The reference: one module and one optimiser per MLP
# --------------------------------------------------------------------------------------------


class MLP(nn.Module):
    """A plain MLP (Linear → activation → … → Linear) as a user would write it."""

    def __init__(self, in_dim: int, protocol: TrainingProtocol, activation: Activation):
        super().__init__()
        widths = [in_dim] + [protocol.hidden] * protocol.depth + [1]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.layers[-1](x)


def train_per_model(activation: Activation, workload: Workload) -> TrainResult:
    """Train each model of the workload on its own: the slow reference for `train_ensemble`."""
    protocol = workload.protocol
    models, in_dim = workload.models, workload.batches_x.shape[-1]
    stacked = split_parameters(workload.init, models, in_dim, protocol)
    rates = protocol.learning_rates()
    losses = torch.empty(protocol.steps, models, dtype=workload.init.dtype)
    id_errors, ood_errors = [], []
    for m in range(models):
        d = workload.in_dims[m]
        mlp = MLP(d, protocol, activation).to(device=workload.init.device, dtype=workload.init.dtype)
        with torch.no_grad():
            for i, layer in enumerate(mlp.layers):
                weight = stacked[2 * i][m]
                layer.weight.copy_((weight[:d] if i == 0 else weight).T)
                layer.bias.copy_(stacked[2 * i + 1][m, 0])
        optimizer = torch.optim.Adam(mlp.parameters(), lr=protocol.lr, betas=ADAM_BETAS, eps=protocol.adam_eps)
        for step, lr in enumerate(rates):
            optimizer.param_groups[0]["lr"] = lr
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(mlp(workload.batches_x[step, m, :, :d]), workload.batches_y[step, m])
            loss.backward()
            optimizer.step()
            losses[step, m] = loss.detach()
        with torch.no_grad():
            id_errors.append(normalised_error(mlp(workload.x_id[m : m + 1, :, :d]), workload.y_id[m : m + 1]))
            ood_errors.append(normalised_error(mlp(workload.x_ood[m : m + 1, :, :d]), workload.y_ood[m : m + 1]))
    id_error, ood_error = torch.cat(id_errors).cpu(), torch.cat(ood_errors).cpu()
    finite = torch.isfinite(losses).all(0) & torch.isfinite(id_error) & torch.isfinite(ood_error)
    return TrainResult(losses, id_error, ood_error, torch.nonzero(~finite).flatten().tolist())
