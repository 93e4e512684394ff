"""Several candidates' ensembles as one batched model (cross-candidate batches).

`train_ensemble` already stacks the M models of one candidate's evaluation along the model axis.
`train_stacked` goes one level further: K candidates, each with its own workload (its own tasks,
seeds, data and initial weights, the same protocol), become one workload of M₁ + … + M_K models,
trained by one `train_ensemble` call. Candidate k's models are the slice k of the model axis, and
the activation applied there is candidate k's own, so every model computes exactly what it would in
its candidate's own call: the matrix products and Adam are per model already, and the loss is the
sum of the per-model losses. What is shared is the work of the call itself: one matrix product per
layer instead of K, one Adam step, one loss, K times fewer operator dispatches.

Trusted activations only (library functions, compiled references): the K candidates share one
process, so an untrusted candidate must keep its own sandboxed worker (`actmine.candidate.sandbox`).
`benchmarks/bench_stacked.py` measures whether stacking pays, per K and per workload: on a CPU it
does not (0.70–0.89× the speed of one call per candidate for K = 2–8; docs/lab.md), so the lab
trains one candidate per call and nothing calls this module yet.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from .ensemble import Activation, TrainResult, Workload, split_parameters, train_ensemble


def stack_workloads(workloads: Sequence[Workload]) -> tuple[Workload, list[slice]]:
    """One workload holding every model of `workloads` (same protocol), and each one's slice of it.

    Inputs are zero-padded to the widest input, as `build_workload` pads tasks within one workload
    (a padded column's weights start at zero and receive zero gradient, so nothing changes)."""
    if not workloads:
        raise ValueError("stacking needs at least one workload")
    protocol = workloads[0].protocol
    if any(w.protocol != protocol for w in workloads):
        raise ValueError("stacked workloads must share one training protocol")
    width = max(w.batches_x.shape[-1] for w in workloads)
    slices, start = [], 0
    for w in workloads:
        slices.append(slice(start, start + w.models))
        start += w.models

    def padded(x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (0, width - x.shape[-1]))

    # the flat initial parameters are laid out layer by layer: stack each layer's models, then flatten
    layers = [split_parameters(w.init, w.models, w.batches_x.shape[-1], protocol) for w in workloads]
    first = [F.pad(params[0], (0, 0, 0, width - params[0].shape[1])) for params in layers]
    stacked_layers = [torch.cat(first)] + [
        torch.cat([params[i] for params in layers]) for i in range(1, len(layers[0]))
    ]
    return (
        Workload(
            labels=[label for w in workloads for label in w.labels],
            families=[family for w in workloads for family in w.families],
            in_dims=[d for w in workloads for d in w.in_dims],
            batches_x=torch.cat([padded(w.batches_x) for w in workloads], dim=1),
            batches_y=torch.cat([w.batches_y for w in workloads], dim=1),
            x_id=torch.cat([padded(w.x_id) for w in workloads]),
            y_id=torch.cat([w.y_id for w in workloads]),
            x_ood=torch.cat([padded(w.x_ood) for w in workloads]),
            y_ood=torch.cat([w.y_ood for w in workloads]),
            init=torch.cat([p.reshape(-1) for p in stacked_layers]),
            protocol=protocol,
        ),
        slices,
    )


def sliced_activation(activations: Sequence[Activation], slices: Sequence[slice]) -> Activation:
    """Candidate k's activation on slice k of the model axis (the first), the results joined."""
    if len(activations) == 1:
        return activations[0]

    def apply(h: torch.Tensor) -> torch.Tensor:
        return torch.cat([act(h[part]) for act, part in zip(activations, slices)])

    return apply


def train_sliced(activations: Sequence[Activation], workload: Workload, slices: Sequence[slice]) -> list[TrainResult]:
    """Train a stacked workload (`stack_workloads`), slice k with `activations[k]`; one result per slice."""
    if len(activations) != len(slices):
        raise ValueError(f"{len(activations)} activations for {len(slices)} slices")
    result = train_ensemble(sliced_activation(activations, slices), workload)
    return [
        TrainResult(
            losses=result.losses[:, part],
            id_error=result.id_error[part],
            ood_error=result.ood_error[part],
            non_finite=[m - part.start for m in result.non_finite if part.start <= m < part.stop],
        )
        for part in slices
    ]


def train_stacked(activations: Sequence[Activation], workloads: Sequence[Workload]) -> list[TrainResult]:
    """Train candidate k's models of `workloads[k]` with `activations[k]`, all in one batched model.

    Returns one `TrainResult` per candidate, as `train_ensemble(activations[k], workloads[k])` would
    (equal up to float rounding of the larger products). Pointwise activations only: a
    batch-statistics activation must see its own models' batch, which `train_ensemble` arranges."""
    if len(activations) != len(workloads):
        raise ValueError(f"{len(activations)} activations for {len(workloads)} workloads")
    return train_sliced(activations, *stack_workloads(workloads))
