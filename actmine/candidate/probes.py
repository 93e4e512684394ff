"""Cheap checks of an activation before any training.

- shape and dtype: the output has the input's shape and dtype;
- finiteness: finite outputs and gradients on a probe set from tiny to huge magnitudes;
- cost: elementwise operations per input element, counted by a dispatch-mode operator counter
  (torch's FlopCounterMode counts only matmuls and convolutions, zero for elementwise ops), with
  transcendental functions weighted more;
- batch dependence: whether one element's output depends on the other elements of the tensor;
- fingerprint: a hash of the outputs on fixed points, so that two programs that compute the same
  function are recognised as one whatever their source text.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

Activation = Callable[[torch.Tensor], torch.Tensor]

# Operations that move no data or only describe it: they cost nothing per element.
_FREE_OPS = {"view", "_unsafe_view", "reshape", "expand", "alias", "detach", "t", "transpose", "permute",
             "unsqueeze", "squeeze", "select", "slice", "as_strided", "lift_fresh", "_to_copy", "clone",
             "copy_", "empty_like", "zeros_like", "ones_like", "full_like", "scalar_tensor", "lift_fresh_copy"}
# Functions that cost many multiply-adds each (a polynomial or rational approximation in libm).
_TRANSCENDENTAL_OPS = {"exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sin", "cos", "tan", "asin",
                       "acos", "atan", "atan2", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "erf", "erfc",
                       "erfinv", "sigmoid", "pow", "sqrt", "rsqrt", "gelu", "silu", "mish", "softplus", "elu",
                       "selu", "sinc", "lgamma", "digamma", "logit", "log_sigmoid_forward", "reciprocal"}
TRANSCENDENTAL_WEIGHT = 8


class ProbeFailure(Exception):
    """The candidate failed a probe; `code` says which."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class _OperationCounter(TorchDispatchMode):
    """Counts weighted output elements of every aten op dispatched while active."""

    def __init__(self) -> None:
        super().__init__()
        self.elements = 0.0
        self.ops: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 (torch's signature)
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__.rstrip("_")
        if name not in _FREE_OPS and isinstance(out, torch.Tensor):
            weight = TRANSCENDENTAL_WEIGHT if name in _TRANSCENDENTAL_OPS else 1
            self.elements += weight * out.numel()
            self.ops[name] = self.ops.get(name, 0) + 1
        return out


def probe_points(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A grid over [−10, 10], normal samples at scales up to 100, zeros and extreme magnitudes."""
    generator = torch.Generator().manual_seed(0)
    parts = [torch.linspace(-10, 10, 401, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)]
    for scale in (0.01, 1.0, 10.0, 100.0):
        parts.append(torch.randn(64, generator=generator, dtype=torch.float64) * scale)
    parts.append(torch.tensor([1e-30, -1e-30, 1e-6, -1e-6, 1e4, -1e4, 3e4, -3e4], dtype=torch.float64))
    return torch.cat(parts).to(dtype)


def flops_per_element(activation: Activation, size: int = 4096) -> tuple[float, dict[str, int]]:
    """Weighted elementwise operations per input element, for the forward pass."""
    x = torch.randn(size)
    counter = _OperationCounter()
    with torch.no_grad(), counter:
        activation(x)
    return counter.elements / size, counter.ops


def is_pointwise(activation: Activation, atol: float = 1e-5) -> bool:
    """True when each output element depends only on its own input element.

    Compares f on a batch with f on each row alone and with f on a shuffled and a rescaled-others
    batch: a batch-statistics function (mean, std, FFT, roll over the tensor) changes in one of them.
    """
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(8, 32, generator=generator) * 2
    with torch.no_grad():
        y = activation(x)
        alone = torch.cat([activation(x[i:i + 1]) for i in range(len(x))])
        order = torch.randperm(x.shape[1], generator=generator)
        shuffled = activation(x[:, order])[:, torch.argsort(order)]
        changed = x.clone()
        changed[1:] = changed[1:] * 5 + 3
        first_row = activation(changed)[0]
        changed = x.clone()  # the others in the same row: catches row-wise softmax, layer norm
        changed[:, 1:] = changed[:, 1:] * 5 + 3
        first_column = activation(changed)[:, 0]
    return all(torch.allclose(y, other, atol=atol, rtol=1e-4, equal_nan=True) for other in (alone, shuffled)) \
        and torch.allclose(y[0], first_row, atol=atol, rtol=1e-4, equal_nan=True) \
        and torch.allclose(y[:, 0], first_column, atol=atol, rtol=1e-4, equal_nan=True)


def fingerprint(activation: Activation) -> str:
    """A hash of the outputs on fixed points, rounded so that float noise does not split equals."""
    x = torch.linspace(-6, 6, 97, dtype=torch.float64).to(torch.float32)
    with torch.no_grad():
        y = activation(x).double()
    # |v| < 1e-5 (float32 noise around a zero, and -0.0) reads as 0, so that e.g. x*(x>0) == relu
    rounded = [f"{v:.5g}" if abs(v) >= 1e-5 else "0" for v in y.tolist()]
    return hashlib.sha256(",".join(rounded).encode()).hexdigest()[:16]


def run_probes(activation: Activation, dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    """All probes; raises ProbeFailure on the first that the activation fails."""
    x = probe_points(dtype).requires_grad_(True)
    try:
        y = activation(x)
    except Exception as exc:
        raise ProbeFailure("runtime_error", f"the activation raised {type(exc).__name__}: {exc}") from None
    if not isinstance(y, torch.Tensor):
        raise ProbeFailure("bad_output", f"the activation returned {type(y).__name__}, not a torch.Tensor")
    if y.shape != x.shape or y.dtype != x.dtype:
        raise ProbeFailure("bad_shape", f"output {tuple(y.shape)} {y.dtype} differs from input "
                                        f"{tuple(x.shape)} {x.dtype}: return a tensor of the input's shape and dtype")
    if not torch.isfinite(y).all():
        bad = x[~torch.isfinite(y)][:3].tolist()
        raise ProbeFailure("non_finite", f"non-finite output at inputs such as {bad}")
    if not y.requires_grad:
        raise ProbeFailure("no_gradient", "the output does not depend differentiably on the input")
    (gradient,) = torch.autograd.grad(y.sum(), x)
    if not torch.isfinite(gradient).all():
        bad = x[~torch.isfinite(gradient)][:3].tolist()
        raise ProbeFailure("non_finite_gradient", f"non-finite gradient at inputs such as {bad}")
    if not gradient.abs().gt(0).any():
        raise ProbeFailure("zero_gradient", "the gradient is zero everywhere on the probe set")
    flops, ops = flops_per_element(activation)
    return {"pointwise": is_pointwise(activation), "flops_per_element": round(flops, 2),
            "fingerprint": fingerprint(activation), "ops": ops}
