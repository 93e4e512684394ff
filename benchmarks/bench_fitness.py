"""How fast is one candidate's lab evaluation? The default suite's workload, three ways, one process.

    python benchmarks/bench_fitness.py [--threads 1 2] [--repeats 5] [--activations relu gelu gelu_sine]

1. batched ensemble      `train_ensemble`: all models stacked, torch.baddbmm, one Adam (what the lab runs);
2. per-model loop        `train_per_model`: one nn.Module and one Adam per MLP (the obvious baseline);
3. matmul-only bound     the same batched matrix products (training forward and backward, and the
                         forward pass of the final evaluation), preallocated, with no activation,
                         loss, optimiser or autograd: no implementation of the protocol can beat it.

Prints, per activation and thread count, the best-of-N seconds per evaluation and the two ratios:
per-model ÷ batched (the speed-up; target ≥ 4× with GELU) and batched ÷ bound (the overhead;
target ≤ 2× with ReLU). Training only: data generation and the ReLU reference are built once.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import torch

from actmine import activations
from actmine.lab.ensemble import (
    TrainingProtocol,
    Workload,
    build_workload,
    split_parameters,
    train_ensemble,
    train_per_model,
)
from actmine.lab.tasks import get_suite


def matmul_only(workload: Workload) -> None:
    """The batched products of one evaluation (training forward and backward, then the forward
    pass over the ID and OOD evaluation points), nothing else."""
    protocol = workload.protocol
    models, in_dim = workload.models, workload.batches_x.shape[-1]
    params = split_parameters(workload.init, models, in_dim, protocol)
    weights, biases = params[0::2], params[1::2]
    batch = protocol.batch_size
    hidden = [torch.empty(models, batch, w.shape[2]) for w in weights]  # layer outputs
    grad_h = [torch.empty_like(h) for h in hidden]
    grad_w = [torch.empty_like(w) for w in weights]
    eval_buffers = [
        [torch.empty(models, x.shape[1], w.shape[2]) for w in weights] for x in (workload.x_id, workload.x_ood)
    ]
    for step in range(protocol.steps):
        x = workload.batches_x[step]
        inputs = [x] + hidden[:-1]
        for layer, (w, b) in enumerate(zip(weights, biases)):
            torch.baddbmm(b, inputs[layer], w, out=hidden[layer])
        grad_h[-1].copy_(hidden[-1])
        for layer in reversed(range(len(weights))):
            torch.bmm(inputs[layer].transpose(1, 2), grad_h[layer], out=grad_w[layer])
            if layer:
                torch.bmm(grad_h[layer], weights[layer].transpose(1, 2), out=grad_h[layer - 1])
    for x, outputs in zip((workload.x_id, workload.x_ood), eval_buffers):
        for layer, (w, b) in enumerate(zip(weights, biases)):
            torch.baddbmm(b, x if layer == 0 else outputs[layer - 1], w, out=outputs[layer])


def best_seconds(functions: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """The fastest of `repeats` runs of each function, after a warm-up of each.

    The runs are interleaved (one of each, then again), so a slow phase of a shared machine hits
    all of them alike; and the minimum is the least noisy estimate of what code costs, since
    noise only ever adds time.
    """
    for fn in functions.values():
        fn()  # warm-up: first-call allocations and kernel selection
    best = {name: float("inf") for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            started = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="lab")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--activations", nargs="+", default=["relu", "gelu", "gelu_sine", "gelu_sinc_perturbation"])
    parser.add_argument(
        "--per-model", action=argparse.BooleanOptionalAction, default=True, help="also time the per-model loop (slow)"
    )
    args = parser.parse_args()

    suite = get_suite(args.suite)
    workload = build_workload(suite, TrainingProtocol())
    print(
        f"workload: {workload.models} models ({len(suite.tasks)} tasks × {len(suite.seeds)} seeds), "
        f"{workload.protocol.steps} steps, batch {workload.protocol.batch_size}, hidden {workload.protocol.hidden}, "
        f"input width {workload.batches_x.shape[-1]}; torch {torch.__version__}"
    )
    header = (
        f"{'threads':>7} {'activation':<24} {'batched s':>10} {'per-model s':>12} {'bound s':>8} "
        f"{'per-model/batched':>18} {'batched/bound':>14}"
    )
    print(header)
    for threads in args.threads:
        torch.set_num_threads(threads)
        functions: dict[str, Callable[[], object]] = {"bound": lambda: matmul_only(workload)}
        for name in args.activations:
            act, pointwise = activations.get(name), activations.is_pointwise(name)
            functions[name] = lambda act=act, pointwise=pointwise: train_ensemble(act, workload, pointwise=pointwise)
        best = best_seconds(functions, args.repeats)
        per_model = (
            best_seconds(
                {name: lambda name=name: train_per_model(activations.get(name), workload) for name in args.activations},
                max(1, args.repeats // 3),
            )
            if args.per_model
            else {}
        )
        for name in args.activations:
            slow = per_model.get(name, float("nan"))
            print(
                f"{threads:>7} {name:<24} {best[name]:>10.3f} {slow:>12.3f} {best['bound']:>8.3f} "
                f"{slow / best[name]:>17.1f}× {best[name] / best['bound']:>13.2f}×"
            )


if __name__ == "__main__":
    main()
