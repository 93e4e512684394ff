"""The limits of a job's process: each benchmark's default budget (`JobBudget`, `JOB_BUDGETS`)
and the run's configuration (`TransferLimits`), resolved per benchmark and device into the
``{timeout_s, cpu_s, memory_mb}`` that `run_in_subprocess` enforces.

Configuration only, importable by benchmark modules (a benchmark may carry its own ``job_budget``)
without importing the runner.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .inputs import TransferInputError


@dataclass(frozen=True)
class JobBudget:
    """The default limits of one benchmark's jobs (`TransferLimits` with ``None`` uses these).

    Wall clock: ``base_s`` (process start, data loading, evaluation) plus ``seconds_per_unit[device]``
    for each unit of training, ``units(benchmark)`` (an epoch by default; the benchmark instance
    carries its options). Address space: ``memory_mb`` (CPU jobs only: RLIMIT_AS breaks CUDA).
    Upper bounds of real runs, several times what the recipes take, since a limit is there to end
    a hang or a runaway, not to race a slow machine. A benchmark class may carry its own as the
    class attribute ``job_budget``.
    """

    seconds_per_unit: Mapping[str, float]
    memory_mb: int
    base_s: float = 900.0
    units: Callable[[Any], float] = lambda benchmark: float(getattr(benchmark, "epochs", 1) or 1)

    def timeout_s(self, benchmark: Any, device: str) -> float:
        per_unit = self.seconds_per_unit.get(device, max(self.seconds_per_unit.values()))
        return float(round(self.base_s + per_unit * self.units(benchmark)))


def _fraction(benchmark: Any, attribute: str, full: int) -> float:
    """The share of the full training set a ``limit_train``/``max_train`` option keeps."""
    limit = getattr(benchmark, attribute, None)
    return min(1.0, limit / full) if isinstance(limit, int) and limit > 0 else 1.0


# Sizes (docs/transfer.md): digits runs about a second per epoch on one busy core (measured: 12
# epochs in 11 s, 10 s more to start the process and import torch and scikit-learn); the others are
# estimates from their recipes: cifar10 (ResNet-20, 50k images) ~10-20 s per epoch on a GPU and
# minutes per epoch on one core; imagenet (ResNet-50, 1.28M images) ~1-2 h per epoch on one GPU;
# clrs ~7 s per algorithm at its default 300 steps on one core (measured: docs/transfer.md, "CLRS: settings
# and power"; the budget keeps room for the longer algorithms); molhiv (GIN, 33k graphs) about a minute
# per epoch on a GPU. Memory: a job process maps 0.6-1.1 GB before it trains (measured: torch, and
# scikit-learn for digits); CIFAR-10 in memory is 0.7 GB, a CPU ResNet-20 step well under 1 GB;
# ImageNet's loader workers are processes of their own, each with this limit.
JOB_BUDGETS: dict[str, JobBudget] = {
    "digits": JobBudget({"cpu": 10.0, "cuda": 10.0}, memory_mb=4096, base_s=300.0),
    "cifar10": JobBudget(
        {"cpu": 3600.0, "cuda": 300.0}, memory_mb=16384, units=lambda b: b.epochs * _fraction(b, "limit_train", 50_000)
    ),
    "imagenet": JobBudget(
        {"cpu": 7 * 86400.0, "cuda": 6 * 3600.0},
        memory_mb=65536,
        base_s=3600.0,
        units=lambda b: b.epochs * _fraction(b, "limit_train", 1_281_167),
    ),
    "clrs": JobBudget(
        {"cpu": 3600.0, "cuda": 1800.0}, memory_mb=16384, units=lambda b: len(b.algorithms) * b.train_steps / 300
    ),
    "molhiv": JobBudget(
        {"cpu": 1800.0, "cuda": 300.0}, memory_mb=16384, units=lambda b: b.epochs * _fraction(b, "max_train", 32_901)
    ),
}
# A benchmark registered elsewhere, without a ``job_budget``: an hour per epoch.
DEFAULT_BUDGET = JobBudget({"cpu": 3600.0, "cuda": 3600.0}, memory_mb=16384)


def job_budget(benchmark: Any, name: str) -> JobBudget:
    """The benchmark's own ``job_budget``, the built-in one for its name, else `DEFAULT_BUDGET`."""
    own = getattr(benchmark, "job_budget", None)
    return own if isinstance(own, JobBudget) else JOB_BUDGETS.get(name, DEFAULT_BUDGET)


@dataclass(frozen=True)
class TransferLimits:
    """Limits of every job's process (configuration only); ``None``: the benchmark's default
    (`job_budget`), ``0``: no limit.

    Attributes:
        timeout_s: wall clock of one job, start to answer; the parent kills the job's process group.
        cpu_s: CPU seconds of the job's process (RLIMIT_CPU; SIGXCPU ends it). Default: the
            timeout times the threads the job may use (1 on CPU; the cores with ``cuda``).
        memory_mb: address space of the job's process (RLIMIT_AS). Never applied to ``cuda``
            jobs: CUDA maps far more virtual memory than it uses and fails under RLIMIT_AS.

    The job's process also leaves the network (a network namespace, where the kernel permits one)
    and gets the sandbox's scrubbed environment and its own temporary directory: these are not
    configurable.
    """

    timeout_s: float | None = None
    cpu_s: float | None = None
    memory_mb: int | None = None

    def __post_init__(self) -> None:
        for name in ("timeout_s", "cpu_s", "memory_mb"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0
            ):
                raise TransferInputError(f"the job limit {name} must be a number ≥ 0 (0: no limit), got {value!r}")

    def resolve(self, benchmark: Any, name: str, device: str) -> dict[str, Any]:
        """``{timeout_s, cpu_s, memory_mb}`` for the jobs of ``benchmark`` (an instance, with its
        options) on ``device``; ``None`` where there is no limit."""
        budget = job_budget(benchmark, name)
        timeout = budget.timeout_s(benchmark, device) if self.timeout_s is None else (self.timeout_s or None)
        threads = 1 if device == "cpu" else (os.cpu_count() or 1)
        cpu = (timeout * threads if timeout else None) if self.cpu_s is None else (self.cpu_s or None)
        memory = budget.memory_mb if self.memory_mb is None else (int(self.memory_mb) or None)
        return {"timeout_s": timeout, "cpu_s": cpu, "memory_mb": None if device == "cuda" else memory}
