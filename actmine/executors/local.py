"""The `local` executor: evaluations in a `SandboxPool` on this machine."""

from __future__ import annotations

import concurrent.futures
from typing import Collection

from ..candidate.sandbox import SandboxLimits, SandboxPool
from ..lab.fitness import Lab
from .base import register_executor
from .job_pool import LocalJobPool


@register_executor
class LocalExecutor:
    """Evaluations in a `SandboxPool` on this machine (`workers` sandboxed processes)."""

    name = "local"

    def __init__(self, workers: int | None = None, limits: SandboxLimits | None = None):
        self.pool = SandboxPool(workers, limits)
        self.capacity = self.pool.workers
        self.limits = self.pool.limits
        self._closed = False

    @classmethod
    def from_config(cls, workers: int | None, limits: SandboxLimits | None, scheduler: str | None) -> "LocalExecutor":
        if scheduler:
            raise ValueError("a scheduler address needs the 'dask' executor")
        return cls(workers, limits)

    @staticmethod
    def job_pool(
        workers: int | None, scheduler: str | None, device: str, notify=None, at_most: int | None = None
    ) -> LocalJobPool:
        """Process jobs on this machine (`LocalJobPool`)."""
        if scheduler:
            raise ValueError("a scheduler address needs the 'dask' executor")
        return LocalJobPool(workers, device, at_most=at_most)

    def start(self) -> "LocalExecutor":
        """Start every sandbox worker now rather than on first use."""
        self.pool.start()
        return self

    def submit(
        self, source: str, lab: Lab, name: str = "candidate", skip_fingerprints: Collection[str] = ()
    ) -> concurrent.futures.Future:
        if self._closed:
            raise RuntimeError("the executor is closed")
        return self.pool.submit(source, lab, name, skip_fingerprints)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.pool.close()

    def __enter__(self) -> "LocalExecutor":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LocalExecutor(workers={self.capacity})"
