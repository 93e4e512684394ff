"""What one forward and backward pass of a candidate costs per input element: weighted elementwise
operations (counted by a dispatch-mode operator counter: torch's FlopCounterMode counts only
matmuls and convolutions, zero for elementwise ops) and the bytes it saves for its backward pass.
The probes compare both with the search's budget (`probes.ProbeBudget`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from actmine.language import ops as _language

from .probe_calls import Activation, ProbeFailure, _call, _shape_text, exception_code

# The weights come from the one table of the candidate language (`actmine.language.ops.OPS`): each
# op names the aten kernels it dispatches and what they weigh per element.
# Kernels that move no data or only allocate it (views, allocations): they cost nothing per element.
# Copies and dtype conversions (clone, _to_copy, copy_, lift_fresh_copy) are not among them: they
# move every element and weigh 1 per element of their output.
_FREE_OPS: frozenset[str] = _language.FREE_ATEN
# Kernels that evaluate a transcendental function (a polynomial or rational approximation in libm,
# many multiply-adds each), forward and fused backward (gelu_backward, ...).
_TRANSCENDENTAL_OPS: frozenset[str] = _language.TRANSCENDENTAL_ATEN
TRANSCENDENTAL_WEIGHT = _language.TRANSCENDENTAL_WEIGHT

# Size of the random input on which cost and memory are measured.
COST_SIZE = 4096


class _OperationCounter(TorchDispatchMode):
    """Counts weighted elements of every aten op dispatched while active.

    An op costs max(elements of its tensor inputs, elements of its tensor outputs), times
    TRANSCENDENTAL_WEIGHT for a transcendental function: an elementwise op its output size, a
    reduction (sum, mean, std, ...) the size of what it reads, not its scalar result. Views and
    allocations (_FREE_OPS) are free; a fused kernel (e.g. tanh_backward) counts once.
    """

    def __init__(self) -> None:
        super().__init__()
        self.elements = 0.0
        self.ops: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 (torch's signature)
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = func.overloadpacket.__name__.rstrip("_")
        if name not in _FREE_OPS:
            leaves, _ = tree_flatten((args, kwargs, out))
            size = max((leaf.numel() for leaf in leaves if isinstance(leaf, torch.Tensor)), default=0)
            if size:
                weight = TRANSCENDENTAL_WEIGHT if name in _TRANSCENDENTAL_OPS else 1
                self.elements += weight * size
                self.ops[name] = self.ops.get(name, 0) + 1
        return out


@dataclass(frozen=True)
class Cost:
    """What one forward and backward pass of the activation costs, per input element."""

    flops_per_element: float  # forward, weighted elementwise ops
    backward_flops_per_element: float  # backward, weighted elementwise ops
    saved_bytes_per_element: float  # distinct storages saved for backward, the input's excluded
    ops: dict[str, int]  # forward ops by name


def measure_cost(
    activation: Activation,
    size: int = COST_SIZE,
    dtype: torch.dtype = torch.float32,
    shape: tuple[int, ...] | None = None,
) -> Cost:
    """Forward and backward operation counts and saved bytes on a random input of `size` elements
    (a 1-D tensor), or of the given `shape` (which then sets the size).

    Saved bytes: every tensor that autograd keeps for the backward pass goes through a
    `saved_tensors_hooks` pack hook, which records the `untyped_storage().nbytes()` of its storage;
    a storage saved twice (or by two views) counts once, and the input's own storage is not
    counted (it is kept alive by the previous layer anyway). ReLU saves its output (4 B/element
    in float32), GELU only its input (0).
    """
    generator = torch.Generator().manual_seed(2)
    shape = tuple(shape) if shape is not None else (size,)
    size = math.prod(shape)
    # drawn in the probe's dtype: a float64 draw of a training-sized tensor costs more than the probe
    x = torch.randn(shape, generator=generator, dtype=dtype).requires_grad_(True)
    input_storage = x.untyped_storage().data_ptr()
    storages: dict[Any, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        try:
            storage = tensor.untyped_storage()
            key: Any = storage.data_ptr()
            nbytes = storage.nbytes()
        except Exception:  # a tensor without a plain storage (a subclass): count its elements
            key, nbytes = ("id", id(tensor)), tensor.numel() * tensor.element_size()
        if key != input_storage:
            storages[key] = nbytes
        return tensor

    forward = _OperationCounter()
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        with forward:
            y = _call(activation, x, f"while measuring its cost on {_shape_text(shape)} elements")
    backward = _OperationCounter()
    if y.requires_grad:
        seed = torch.ones_like(y)
        try:
            with backward:
                torch.autograd.grad(y, x, seed, allow_unused=True)
        except Exception as exc:
            raise ProbeFailure(
                exception_code(exc), f"the backward pass raised {type(exc).__name__} while measuring its cost: {exc}"
            ) from None
    return Cost(
        flops_per_element=forward.elements / size,
        backward_flops_per_element=backward.elements / size,
        saved_bytes_per_element=sum(storages.values()) / size,
        ops=forward.ops,
    )


def flops_per_element(activation: Activation, size: int = COST_SIZE) -> tuple[float, dict[str, int]]:
    """Weighted elementwise operations per input element for the forward pass, and the ops by name."""
    cost = measure_cost(activation, size)
    return cost.flops_per_element, cost.ops


def backward_flops_per_element(activation: Activation, size: int = COST_SIZE) -> float:
    """Weighted elementwise operations per input element for the backward pass."""
    return measure_cost(activation, size).backward_flops_per_element


def saved_bytes_per_element(activation: Activation, dtype: torch.dtype = torch.float32, size: int = COST_SIZE) -> float:
    """Bytes saved for the backward pass per input element, the input's own storage excluded."""
    return measure_cost(activation, size, dtype).saved_bytes_per_element
