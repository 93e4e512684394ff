"""The Dask worker's side of the `dask` executor: per worker process, one `SandboxPool` per limits
and the labs rebuilt from their specs; `evaluate_on_worker` is the task every submission runs.
Also what the executor and the tests ask of a worker (its sandboxes' pids, which are busy), and
the plugin that closes a worker's pools when the worker closes."""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from ..candidate.sandbox import LOSS_RETRIES, WORKER_ENV, SandboxLimits, SandboxPool
from ..lab.fitness import Lab

# Variables a Dask worker process must have from its first instruction (see `actmine.executors`).
DASK_WORKER_ENV = {
    k: WORKER_ENV[k]
    for k in (
        "MALLOC_TRIM_THRESHOLD_",
        "MALLOC_MMAP_THRESHOLD_",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
    )
}
PLUGIN_NAME = "actmine-sandbox"

# Per Dask worker process: one SandboxPool per limits, and the labs rebuilt from their specs.

_pools: dict[SandboxLimits, SandboxPool] = {}
_labs: dict[str, Lab] = {}
_worker_lock = threading.Lock()


def _worker_threads() -> int:
    try:
        from distributed import get_worker

        return max(1, int(get_worker().state.nthreads))
    except (ImportError, ValueError, AttributeError):
        return 1


def _worker_pool(limits: SandboxLimits) -> SandboxPool:
    with _worker_lock:
        pool = _pools.get(limits)
        if pool is None:
            # One sandboxed process per Dask worker thread (a LocalCluster has one thread per worker).
            pool = _pools[limits] = SandboxPool(workers=_worker_threads(), limits=limits)
        return pool


#: Labs (built workloads) a Dask worker keeps; the oldest is dropped first.
MAX_CACHED_LABS = 4


def _worker_lab(spec: dict[str, Any], reference: dict[str, list[float]]) -> Lab:
    import torch

    from ..lab.ensemble import TrainResult

    key = json.dumps({"spec": spec, "reference": reference}, sort_keys=True)
    with _worker_lock:
        lab = _labs.get(key)
        if lab is None:
            lab = Lab.from_spec(spec)
            lab.use_reference(
                TrainResult(
                    torch.empty(0), torch.tensor(reference["id_error"]), torch.tensor(reference["ood_error"]), []
                )
            )
            _labs[key] = lab
            while len(_labs) > MAX_CACHED_LABS:  # a search samples new tasks every round: keep the latest
                _labs.pop(next(iter(_labs)))
        return lab


def close_worker_pools() -> None:
    """Stop this process's sandbox pools (a Dask worker's teardown)."""
    with _worker_lock:
        pools = list(_pools.values())
        _pools.clear()
        _labs.clear()
    for pool in pools:
        pool.close()


def evaluate_on_worker(
    source: str,
    name: str,
    spec: dict[str, Any],
    reference: dict[str, list[float]],
    limits: dict[str, Any],
    skip_fingerprints: list[str] = (),
    retries: int = LOSS_RETRIES,
) -> dict[str, Any]:
    """The Dask task: evaluate in this worker's sandbox pool, answer with plain data."""
    lab = _worker_lab(spec, reference)
    pool = _worker_pool(SandboxLimits(**limits))
    return pool.evaluate(source, lab, name, skip_fingerprints, retries=retries).to_dict()


def getenv(variable: str) -> str | None:
    """`os.environ.get` by reference (cloudpickle would ship `os.environ.get` with this process's environ)."""
    return os.environ.get(variable)


def worker_sandbox_pids() -> list[int]:
    """The sandboxed processes of this Dask worker (for tests and diagnostics)."""
    with _worker_lock:
        pools = list(_pools.values())
    return sorted(pid for pool in pools for pid in pool.worker_pids())


def worker_busy_sandboxes() -> dict[int, str]:
    """This Dask worker's sandboxed processes evaluating a candidate now: pid → candidate name."""
    with _worker_lock:
        pools = list(_pools.values())
    return {pid: name for pool in pools for pid, name in pool.busy_workers().items()}


def lost_worker(exc: BaseException | None) -> bool:
    """Whether a Dask task failed because the worker running it died (not because the task raised)."""
    try:
        from distributed import KilledWorker
    except ImportError:  # pragma: no cover - distributed is a dependency
        return False
    return isinstance(exc, KilledWorker)


try:
    from distributed.diagnostics.plugin import WorkerPlugin as _WorkerPlugin
except ImportError:  # pragma: no cover - distributed is a dependency
    _WorkerPlugin = object


class SandboxTeardown(_WorkerPlugin):
    """Closes a Dask worker's sandbox pools when the worker closes.

    (A Dask worker process ends with os._exit, so atexit would not run. Were the worker killed
    outright, its sandboxed children still end: they read EOF on their request pipe.)
    """

    name = PLUGIN_NAME
    # Registered by every executor that connects; a re-registration must not tear down (close the
    # pools of) a plugin that another client's evaluations are using.
    idempotent = True

    def teardown(self, worker) -> None:
        close_worker_pools()
