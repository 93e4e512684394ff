"""Process jobs: the job system's second kind of work, beside the search's evaluations.

A **job** is a function that runs one piece of work in a confined process of its own and returns
the answer as text: ``run(*args, slot=Slot, cancelled=Event | None) -> str`` (the transfer's
`run_in_subprocess`: a fresh process per job, its rlimits, wall clock, scrubbed environment and
network namespace). A **job pool** runs jobs ``workers`` at a time and hands back a
`concurrent.futures.Future` of each answer; `close` stops what runs (the jobs' processes are
killed) and starts nothing more. A job slot says where a job runs: the threads it may use and the
one GPU it sees.

The pools are made by the executor registry (`executors.make_job_pool`: each executor class's
``job_pool``), so that the search, the transfer runner and the validity study choose from the same
names: `LocalJobPool` (threads here, each waiting on one job's process; slot i pinned to GPU i,
round robin) and `DaskJobPool` (each job a Dask task on a running cluster or a LocalCluster on
127.0.0.1; the Dask worker works out its own slot; with ``device="cuda"`` every task asks for the
worker resource ``GPU=1``).

Evaluations of the search take seconds and run in long-lived sandboxed workers (`SandboxPool`, no
process start per candidate); jobs take minutes to days and each gets a fresh process.
"""

from __future__ import annotations

import concurrent.futures
import os
import queue
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol as TypingProtocol

from ..candidate.sandbox import check_local_workers
from .base import ExecutorLost
from .dask_setup import (
    ClusterUnavailable,
    close_quietly,
    connect,
    local_cluster,
    lost_scheduler_message,
    scheduler_connected,
)

DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class Slot:
    """Where one job runs: the threads it may use and the one GPU it sees (None: the CPU, or the
    GPUs its worker already sees)."""

    threads: int = 1
    gpu: str | None = None


class JobPool(TypingProtocol):
    """Runs jobs, at most `capacity` at once; `close` kills what runs and is idempotent."""

    capacity: int

    def submit(self, run: Callable[..., str], *args) -> concurrent.futures.Future:
        """``run(*args, slot=…, cancelled=…)`` on a free slot; the Future's result is its text."""

    def close(self) -> None:
        """Stop every job and everything this pool started."""


def visible_gpus() -> list[str]:
    """The GPUs this process may hand to jobs: CUDA_VISIBLE_DEVICES' entries (as many as torch
    counts), else the device indices."""
    import torch

    count = torch.cuda.device_count()
    listed = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return listed[:count] if listed else [str(i) for i in range(count)]


def _job_threads(device: str, workers: int) -> int:
    """A CPU job trains on one thread; a GPU job's data pipeline shares the cores among the workers."""
    return 1 if device == "cpu" else max(1, (os.cpu_count() or 1) // max(1, workers))


class LocalJobPool:
    """``workers`` jobs at once on this machine (default: one per GPU with ``device="cuda"``, else
    one per core; ``at_most`` caps it, e.g. at the number of jobs). With ``gpus`` (default: the
    visible ones, for cuda) slot i gets ``gpus[i % len(gpus)]``."""

    def __init__(
        self,
        workers: int | None = None,
        device: str = "cpu",
        gpus: Sequence[str] | None = None,
        at_most: int | None = None,
    ):
        check_local_workers(workers, "--workers")
        if gpus is None:
            gpus = visible_gpus() if device == "cuda" else []
        self.capacity = max(1, min(workers or len(gpus) or os.cpu_count() or 1, at_most or 1 << 30))
        threads = _job_threads(device, self.capacity)
        self._slots: queue.SimpleQueue[Slot] = queue.SimpleQueue()
        for i in range(self.capacity):
            self._slots.put(Slot(threads, gpus[i % len(gpus)] if gpus else None))
        self._cancelled = threading.Event()
        self._threads = concurrent.futures.ThreadPoolExecutor(self.capacity, thread_name_prefix="actmine-job")

    def submit(self, run: Callable[..., str], *args) -> concurrent.futures.Future:
        if self._cancelled.is_set():
            raise RuntimeError("the job pool is closed")
        return self._threads.submit(self._on_a_slot, run, args)

    def _on_a_slot(self, run: Callable[..., str], args: tuple) -> str:
        slot = self._slots.get()
        try:
            if self._cancelled.is_set():
                raise concurrent.futures.CancelledError("the job pool was closed before the job started")
            return run(*args, slot=slot, cancelled=self._cancelled)
        finally:
            self._slots.put(slot)

    def close(self) -> None:
        """Kill the running jobs' processes (their ``cancelled`` is set), start nothing more, wait."""
        self._cancelled.set()
        self._threads.shutdown(wait=True, cancel_futures=True)


def run_on_dask_worker(run: Callable[..., str], args: tuple, device: str, pin_by_worker_name: bool) -> str:
    """The Dask task of one job: its slot from this Dask worker, then ``run`` (its own confined process).

    ``pin_by_worker_name`` (a LocalCluster started by the pool, whose workers are named 0, 1, …):
    worker i gives its jobs GPU i of those visible. Otherwise the job keeps the worker's
    CUDA_VISIBLE_DEVICES.
    """
    slot = Slot()
    try:
        from distributed import get_worker

        worker = get_worker()
        gpu = None
        if pin_by_worker_name and device == "cuda" and isinstance(worker.name, int):
            visible = visible_gpus()
            gpu = visible[worker.name % len(visible)] if visible else None
        slot = Slot(_job_threads(device, int(worker.state.nthreads)), gpu)
    except (ImportError, ValueError, AttributeError):
        pass
    return run(*args, slot=slot, cancelled=None)


class DaskJobPool:
    """Jobs as Dask tasks: on the cluster at ``scheduler`` (with ``workers``: once that many have
    joined), else on a LocalCluster of ``workers`` processes (default: one per GPU with cuda, one per
    core otherwise) started here and closed by `close`. ``notify`` hears that a cluster was started;
    ``start_timeout_s`` bounds the wait for a running scheduler and its workers.
    Raises `ClusterUnavailable` when the cluster cannot be used (no worker offers a GPU for cuda)."""

    def __init__(
        self,
        workers: int | None = None,
        device: str = "cpu",
        scheduler: str | None = None,
        notify: Callable[[str], None] | None = None,
        start_timeout_s: float = 120.0,
    ):
        from distributed import Client

        self.device = device
        self.cluster = self.client = None
        self._resources = {"GPU": 1} if device == "cuda" else None
        self._lock = threading.Lock()
        self._tasks: dict[str, object] = {}  # Dask forgets a task whose future is not referenced
        try:
            if scheduler:
                self.client = connect(scheduler, workers, start_timeout_s)
                self._check_gpus(scheduler)
            else:
                count = workers or (len(visible_gpus()) if device == "cuda" else os.cpu_count() or 1)
                self.cluster = local_cluster(count, resources=self._resources)
                self.client = Client(self.cluster, set_as_default=False)
                if notify is not None:
                    notify(f"started a local Dask cluster of {count} workers at {self.cluster.scheduler_address}")
        except BaseException:
            self.close()
            raise
        self.capacity = max(1, int(sum(self.client.nthreads().values())))

    def _check_gpus(self, scheduler: str) -> None:
        if self.device != "cuda":
            return
        offered = [
            w
            for w, info in self.client.scheduler_info(n_workers=-1)["workers"].items()
            if (info.get("resources") or {}).get("GPU", 0) >= 1
        ]
        if not offered:
            raise ClusterUnavailable(
                f"--device cuda: no worker of the Dask cluster at {scheduler} offers the "
                "resource GPU; start each worker with `--resources GPU=1` (one per GPU)"
            )

    def submit(self, run: Callable[..., str], *args) -> concurrent.futures.Future:
        """The Future of ``run``'s answer. A job the cluster lost with its scheduler ends in
        `ExecutorLost` (never a cancellation, which is what `close` does to a job); with the
        scheduler already lost, `submit` raises it."""
        if self.client is None:
            raise RuntimeError("the job pool is closed")
        if not scheduler_connected(self.client):
            raise ExecutorLost(self._lost_message("before a new job could start"))
        result: concurrent.futures.Future = concurrent.futures.Future()
        key = f"actmine-job-{uuid.uuid4().hex}"
        task = self.client.submit(
            run_on_dask_worker,
            run,
            args,
            self.device,
            self.cluster is not None,
            key=key,
            pure=False,
            resources=self._resources,
        )
        with self._lock:
            self._tasks[key] = task

        def finished(task) -> None:
            with self._lock:
                self._tasks.pop(key, None)
            if task.status == "cancelled" and self.client is not None and not scheduler_connected(self.client):
                # Dask cancels every task when the client loses its scheduler: not the job's doing
                result.set_exception(ExecutorLost(self._lost_message("while a job ran")))
                return
            try:
                result.set_result(task.result(timeout=60))
            except BaseException as exc:  # noqa: BLE001 - a lost worker, a cancelled task
                if not result.done():
                    result.set_exception(exc)

        task.add_done_callback(finished)
        return result

    def _lost_message(self, when: str) -> str:
        return lost_scheduler_message(self.client, when, "the jobs in flight have no result")

    def close(self) -> None:
        """Cancel the tasks still pending and close the client and the cluster started here."""
        with self._lock:
            tasks, self._tasks = list(self._tasks.values()), {}
        for task in tasks:
            try:
                task.cancel()
            except Exception:  # noqa: BLE001 - the client is going away anyway
                pass
        close_quietly(self.client, self.cluster)
        self.client = self.cluster = None
