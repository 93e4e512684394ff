"""The local executor: a pool of job processes on this machine, ``workers`` at a time, each job in
its own confined child process (`job_process.run_in_subprocess`), each pinned to one GPU with
``device="cuda"``.

Takes plain jobs and hands back results through a callback, so that it can later become one job
system with ``actmine.executors`` without the runner changing.
"""

from __future__ import annotations

import concurrent.futures
import os
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .job_process import _answer, run_in_subprocess
from .jobs import TransferJob, TransferResult, _failed


def _visible_gpus() -> list[str]:
    """The GPUs this process may hand to jobs: CUDA_VISIBLE_DEVICES' entries (as many as torch
    counts), else the device indices."""
    import torch

    count = torch.cuda.device_count()
    listed = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return listed[:count] if listed else [str(i) for i in range(count)]


def run_job_pool(jobs: Sequence[TransferJob], data_dir: str, device: str, workers: int | None,
                 gpus: Sequence[str], limits: Mapping[str, Mapping[str, Any]],
                 on_result: Callable[[TransferResult], None]) -> None:
    """Each job in its own confined child process (`run_in_subprocess`), ``workers`` at a time.

    A job that hangs, exceeds a limit or kills its process fails alone; the others go on. With
    ``gpus`` (the visible GPUs, for ``device="cuda"``) each running job has one GPU to itself (slot
    i of the ``workers`` gets ``gpus[i]``, round robin). ``limits``: per benchmark
    (`TransferLimits.resolve`). Interrupted (Ctrl-C), the running jobs' processes are killed and
    nothing more is started.
    """
    workers = max(1, min(workers or len(gpus) or os.cpu_count() or 1, len(jobs)))
    threads = 1 if device == "cpu" else max(1, (os.cpu_count() or 1) // workers)
    slots: queue.SimpleQueue[str | None] = queue.SimpleQueue()
    for i in range(workers):
        slots.put(gpus[i % len(gpus)] if gpus else None)
    cancelled = threading.Event()

    def run_one(job: TransferJob) -> TransferResult | None:
        gpu = slots.get()
        try:
            if cancelled.is_set():
                return None
            return _answer(job, run_in_subprocess(job.to_dict(), data_dir, device, threads, gpu,
                                                  limits.get(job.benchmark), cancelled))
        finally:
            slots.put(gpu)

    pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="actmine-transfer")
    try:
        futures = {pool.submit(run_one, job): job for job in jobs}
        for future in concurrent.futures.as_completed(futures):
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - e.g. no process could be started
                result = _failed(futures[future], "executor_error", f"{type(exc).__name__}: {exc}")
            if result is not None:
                on_result(result)
    finally:
        cancelled.set()  # interrupted: the running jobs' processes are killed; otherwise all are done
        pool.shutdown(wait=True, cancel_futures=True)
