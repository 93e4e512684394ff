"""Shared by the worker-loss tests of the sandbox pool and the Dask executor: a slow but good
candidate (seconds of evaluation, so that a test can kill its worker mid-evaluation), the limits
they run under, and a wait for a process to end."""

from __future__ import annotations

import time

import psutil

from actmine.candidate.sandbox import SandboxLimits

SLOW_GOOD = (
    "def activation_function(x):\n    total = 0.0\n    for i in range(10000):\n"
    "        for j in range(10):\n            total = total + 1.0\n    return torch.tanh(x) + 0.0 * total\n"
)
LOSS_LIMITS = SandboxLimits(timeout_s=120, cpu_s=60, memory_mb=3072)


def wait_ended(pid: int, timeout_s: float = 15) -> bool:
    """Whether process `pid` ends (or is only a zombie, dead but not yet reaped) within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False
