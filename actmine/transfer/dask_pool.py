"""The Dask executor: each job is a Dask task whose worker runs the job in a confined child process
of its own (`job_process.run_in_subprocess`, as locally), on ``scheduler``'s cluster or on a
LocalCluster started for the run; with ``device="cuda"`` each task asks for the resource ``GPU=1``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .inputs import TransferInputError
from .job_process import _answer, run_in_subprocess
from .jobs import TransferJob, TransferResult, _failed
from .process_pool import _visible_gpus

# -- Dask: each job in a fresh child process of the Dask worker --------------------------------
# Dask workers are daemonic processes, which multiprocessing does not let have children; the job
# process is the same confined subprocess as locally (`run_in_subprocess`).

def run_on_dask_worker(job: dict[str, Any], data_dir: str, device: str, pin_by_worker_name: bool,
                       limits: Mapping[str, Any] | None = None) -> str:
    """The Dask task: run the job in a confined child process of this Dask worker, under ``limits``
    (`run_in_subprocess`, as locally); JSON text back.

    ``pin_by_worker_name`` (a LocalCluster started by the runner, whose workers are named 0, 1, …):
    worker i gives its jobs GPU i of those visible. Otherwise the job keeps the worker's
    CUDA_VISIBLE_DEVICES.
    """
    threads, gpu = 1, None
    try:
        from distributed import get_worker

        worker = get_worker()
        if device != "cpu":
            threads = max(1, (os.cpu_count() or 1) // max(1, int(worker.state.nthreads)))
        if pin_by_worker_name and device == "cuda" and isinstance(worker.name, int):
            visible = _visible_gpus()
            gpu = visible[worker.name % len(visible)] if visible else None
    except (ImportError, ValueError, AttributeError):
        pass
    return run_in_subprocess(job, data_dir, device, threads, gpu, limits)


def _run_dask(jobs: Sequence[TransferJob], data_dir: str, device: str, workers: int | None, scheduler: str | None,
              limits: Mapping[str, Mapping[str, Any]], on_result: Callable[[TransferResult], None],
              notify: Callable[[str], None]) -> None:
    import dask
    from distributed import Client, as_completed

    from ..executors import DaskExecutor

    cluster = client = None
    try:
        if scheduler:
            try:
                client = Client(scheduler, timeout=60, set_as_default=False)
                if workers:
                    client.wait_for_workers(workers, timeout=120)
            except Exception as exc:  # noqa: BLE001 - unreachable scheduler, timeout
                raise TransferInputError(f"--scheduler {scheduler}: cannot use the Dask cluster there: "
                                         f"{type(exc).__name__}: {exc}") from None
            if device == "cuda":
                offered = [w for w, info in client.scheduler_info(n_workers=-1)["workers"].items()
                           if (info.get("resources") or {}).get("GPU", 0) >= 1]
                if not offered:
                    raise TransferInputError(f"--device cuda: no worker of the Dask cluster at {scheduler} offers the "
                                             "resource GPU; start each worker with `--resources GPU=1` (one per GPU)")
        else:
            count = workers or (len(_visible_gpus()) if device == "cuda" else os.cpu_count() or 1)
            settings = {"distributed.worker.resources": {"GPU": 1}} if device == "cuda" else {}
            with dask.config.set(settings):
                cluster = DaskExecutor._local_cluster(count)
            client = Client(cluster, set_as_default=False)
            notify(f"started a local Dask cluster of {count} workers at {cluster.scheduler_address}")
        resources = {"GPU": 1} if device == "cuda" else None
        futures = {}
        for job in jobs:
            task = client.submit(run_on_dask_worker, job.to_dict(), data_dir, device, cluster is not None,
                                 dict(limits.get(job.benchmark) or {}), key=f"actmine-transfer-{uuid.uuid4().hex}", pure=False, resources=resources)
            futures[task.key] = (task, job)
        for task in as_completed([t for t, _ in futures.values()], loop=client.loop):
            job = futures[task.key][1]
            try:
                result = _answer(job, task.result())
            except Exception as exc:  # noqa: BLE001 - a lost worker, a cancelled task
                result = _failed(job, "executor_error", f"the Dask task failed: {type(exc).__name__}: {exc}")
            on_result(result)
    finally:
        for closing in (client, cluster):
            if closing is not None:
                try:
                    closing.close()
                except Exception:  # noqa: BLE001 - best effort
                    pass
