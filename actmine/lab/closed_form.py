"""Pointwise activations whose derivative the lab applies itself, so that training needs no autograd.

A `ClosedForm` writes f(x) into a buffer it is given and multiplies a gradient by f'(x) in place:
ReLU here (`RELU`), a candidate's compiled kernel in `actmine.candidate.fused`. `closed_form`
finds an activation's; `actmine.lab.ensemble.train_ensemble` then trains it with its backward pass
written out (`train_closed_form`), to the bit what autograd computes. ReLU's evaluation of the
`lab` workload on a 2-core Xeon: 0.24 s with autograd, 0.18 s in closed form, against 0.13 s for
its matrix products alone (docs/lab.md, "Training without autograd").
"""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

import torch

from ..activations import classic

__all__ = ["ClosedForm", "closed_form", "RELU"]


@runtime_checkable
class ClosedForm(Protocol):
    """A pointwise activation as the closed-form training uses it (one object per activation).

    `in_place`: `forward_into` may be given `out` = x itself (saves a buffer's worth of memory
    traffic per call); the training does so except where a check must see the input."""

    in_place: bool

    def takes(self, like: torch.Tensor) -> bool:
        """Whether tensors of this dtype and device go through `forward_into` / `backward_into`."""
        ...

    def forward_into(self, x: torch.Tensor, out: torch.Tensor, slope: torch.Tensor) -> None:
        """Write f(x) into `out` and whatever `backward_into` needs of x into `slope` (same shape,
        contiguous); change x only where `out` is x (`in_place`)."""
        ...

    def backward_into(self, grad: torch.Tensor, out: torch.Tensor, slope: torch.Tensor) -> None:
        """grad ← grad · f'(x), in place, from what `forward_into` wrote."""
        ...


class _ReLU:
    """max(x, 0); its backward passes the gradient where the output is positive (autograd's own
    kernel for it, so nothing of `slope` is used)."""

    in_place = True

    def takes(self, like: torch.Tensor) -> bool:
        return like.device.type == "cpu"

    def forward_into(self, x: torch.Tensor, out: torch.Tensor, slope: torch.Tensor) -> None:
        torch.clamp_min(x, 0, out=out)

    def backward_into(self, grad: torch.Tensor, out: torch.Tensor, slope: torch.Tensor) -> None:
        torch.ops.aten.threshold_backward.grad_input(grad, out, 0, grad_input=grad)


RELU = _ReLU()


def closed_form(activation: Callable[[torch.Tensor], torch.Tensor], like: torch.Tensor) -> ClosedForm | None:
    """The closed form of `activation` for tensors like `like`, or None (autograd trains it).

    ReLU itself has one: `torch.relu`, `F.relu` (the lab's reference), the library's `relu` and a
    library `ReLU` module without hooks (the benchmarks' and commands' ReLU); so has any object
    with a `closed_form` attribute that is a `ClosedForm` taking such tensors (a compiled kernel)."""
    if any(activation is relu for relu in _RELUS) or (type(activation) is classic.ReLU and not _hooked(activation)):
        form: object = RELU
    else:
        form = getattr(activation, "closed_form", None)
    return form if isinstance(form, ClosedForm) and form.takes(like) else None


_RELUS = (torch.relu, torch.nn.functional.relu, classic.relu)


def _hooked(module: torch.nn.Module) -> bool:
    """Whether calling `module` runs more than its `forward`: hooks of its own or global ones,
    forward or backward (a hook table this torch does not have counts as a hook)."""
    from torch.nn.modules import module as torch_module

    tables = [getattr(module, name, None) for name in _HOOKS] + [
        getattr(torch_module, f"_global{name}", None) for name in _HOOKS
    ]
    return any(table is None or len(table) for table in tables)


_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
