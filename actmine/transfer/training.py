"""Training helpers shared by the benchmarks that train with plain PyTorch (``vision``,
``realdata``): seeding the weight initialisation without disturbing the caller's RNG, mixed
precision on CUDA, one optimiser step, the warm-up + cosine schedule, device resolution, progress
lines and in-memory accuracy.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global RNG (weight initialisation) for the body only.

    ``fork_rng`` restores the caller's RNG state afterwards, so running a benchmark in-process
    does not change what the caller draws next.
    """
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _amp(device: torch.device, enabled: bool) -> tuple[Callable[[], Any], Any, str]:
    """(autocast context factory, GradScaler or None, dtype name) for ``device``.

    Mixed precision only on CUDA: bf16 where the GPU has it (no loss scaling needed, same
    exponent range as fp32), fp16 + GradScaler otherwise.  On CPU training stays in fp32, which
    is also what makes CPU runs bit-reproducible.
    """
    if not enabled or device.type != "cuda":
        return contextlib.nullcontext, None, "float32"
    if torch.cuda.is_bf16_supported():
        return (lambda: torch.autocast("cuda", dtype=torch.bfloat16)), None, "bfloat16"
    scaler = torch.amp.GradScaler("cuda")
    return (lambda: torch.autocast("cuda", dtype=torch.float16)), scaler, "float16"


def _backward_step(loss: Tensor, optimizer: torch.optim.Optimizer, scaler: Any) -> None:
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()


def _cosine_schedule(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then cosine decay to zero (Loshchilov & Hutter 2017), stepped per batch."""
    total_steps = max(1, total_steps)
    warmup_steps = min(max(0, warmup_steps), total_steps - 1)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _resolve_device(device: str | torch.device) -> torch.device:
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        # Give the device an index so that generators, DDP and checkpoints agree on it.
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def _log(verbose: bool, message: str) -> None:
    if verbose:
        print(message, file=sys.stderr, flush=True)


@torch.no_grad()
def _accuracy(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    batch_size: int,
    prepare: Callable[[Tensor], Tensor],
    autocast: Callable[[], Any],
) -> float:
    """Top-1 accuracy of ``model`` on in-memory tensors, in eval mode (BatchNorm running stats)."""
    model.eval()
    correct = 0
    for start in range(0, len(x), batch_size):
        with autocast():
            logits = model(prepare(x[start : start + batch_size]))
        correct += int((logits.argmax(1) == y[start : start + batch_size]).sum())
    return correct / max(1, len(x))
