"""Data-parallel training under ``torchrun`` (the ImageNet benchmark): whether this process was
launched by it, the process group's set-up and tear-down, and summing numbers across ranks.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch


def _launched_distributed() -> bool:
    """True under ``torchrun`` (it sets RANK and WORLD_SIZE for every process)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 or "RANK" in os.environ


@contextlib.contextmanager
def _process_group(device: torch.device) -> Iterator[tuple[int, int, torch.device]]:
    """(rank, world size, this process's device); sets up torch.distributed when launched by
    torchrun (NCCL on CUDA, gloo on CPU, addresses from the environment) and tears down what it
    set up.  A process group the caller already initialised is used as it is."""
    import torch.distributed as dist

    already = dist.is_available() and dist.is_initialized()
    if not already and not _launched_distributed():
        yield 0, 1, device
        return
    if device.type == "cuda":
        # One GPU per process: torchrun's LOCAL_RANK says which.
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not already:
        if device.type == "cuda":
            # device_id binds the NCCL communicator to this process's GPU up front.
            dist.init_process_group(backend="nccl", device_id=device)
        else:
            dist.init_process_group(backend="gloo")
    try:
        yield dist.get_rank(), dist.get_world_size(), device
    finally:
        if not already:
            dist.destroy_process_group()


def _all_reduce_sum(values: list[float], device: torch.device, world_size: int) -> list[float]:
    if world_size == 1:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()
