"""Where work runs: the job system. One registry, two engines, two kinds of work.

The kinds: the search's **evaluations** (`base.Executor`: seconds each, in long-lived sandboxed
workers) and **process jobs** (`job_pool.JobPool`: the transfer's and the validity study's jobs,
minutes to days each, a fresh confined process per job). An engine is one class in the registry
(`register_executor`) with ``from_config`` (an `Executor`) and ``job_pool`` (a `JobPool`); the
search, `actmine transfer`, `validate` and `reproduce` all choose among `executor_names()`, and
Dask clusters are started or joined in one place (`dask_setup`).

An `Executor` takes a candidate's source text and a `Lab` and returns a
`concurrent.futures.Future` whose result is always an `Evaluation` (a refused or failed one
rather than an exception). Candidates are untrusted code: whatever the engine, they only ever run
inside a `SandboxPool` worker process, with its rlimits, wall-clock timeout and network isolation.

- `LocalExecutor` (`local.py`, the default): a `SandboxPool` on this machine.
- `DaskExecutor` (`dask_cluster.py`; the worker side in `dask_worker.py`): a Dask cluster, either an existing one (`scheduler="tcp://host:8786"`) or a
  `LocalCluster` that listens on 127.0.0.1 only. Each Dask worker process keeps its own
  `SandboxPool`, so a candidate runs in a sandboxed grandchild of the Dask worker; the worker
  sends back `Evaluation.to_dict()` (plain data) and this process rebuilds it with the validating
  `Evaluation.from_dict`. The lab travels as `lab.to_spec()` plus ReLU's reference errors
  (computed here, once): workers never train the reference themselves.

Lost workers cost at most the candidates they held. A sandboxed process lost mid-evaluation is
retried once on a fresh one by its `SandboxPool` (local or on a Dask worker). A Dask worker lost
mid-evaluation (killed, its nanny or machine gone) is retried here, once, on whichever worker
the scheduler picks, with no further sandbox retry; lost again, the candidate fails with
`worker_lost` (stage `sandbox`) and the run goes on (a nanny restarts the lost worker). So that
this is the only retry, our LocalCluster's scheduler allows no silent re-run of a task whose
worker died (`allowed_failures=0`); a cluster of your own reschedules such a task
`distributed.scheduler.allowed-failures` times (default 3) before this retry: set it to 0 there
for the same accounting.

Worker environment (LocalCluster): glibc reads `MALLOC_TRIM_THRESHOLD_` when a process starts,
so it must be in the environment *before* the Dask worker is spawned; the nanny applies
`distributed.nanny.pre-spawn-environ` exactly then (`distributed.nanny.environ` and the nanny's
`env=` are applied after the spawn, too late for malloc). We set that config while the cluster
starts. For an existing cluster, start its workers with e.g.
`DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON__MALLOC_TRIM_THRESHOLD_=268435456`; the sandboxed
grandchildren that train set their own environment either way (`sandbox.WORKER_ENV`).
"""

from __future__ import annotations

from ..plugins import import_modules
from ..candidate.sandbox import SandboxLimits
from .base import EXECUTORS, Executor, ExecutorLost, failed_evaluation, register_executor
from .dask_setup import ClusterUnavailable
from .job_pool import DaskJobPool, JobPool, LocalJobPool, Slot, visible_gpus
from .dask_cluster import DaskExecutor
from .dask_worker import (
    DASK_WORKER_ENV,
    PLUGIN_NAME,
    SandboxTeardown,
    close_worker_pools,
    evaluate_on_worker,
    getenv,
    lost_worker,
    worker_busy_sandboxes,
    worker_sandbox_pids,
)
from .local import LocalExecutor

__all__ = [
    "DASK_WORKER_ENV",
    "EXECUTORS",
    "PLUGIN_NAME",
    "ClusterUnavailable",
    "DaskExecutor",
    "DaskJobPool",
    "Executor",
    "ExecutorLost",
    "JobPool",
    "LocalExecutor",
    "LocalJobPool",
    "SandboxTeardown",
    "Slot",
    "close_worker_pools",
    "evaluate_on_worker",
    "executor_names",
    "failed_evaluation",
    "getenv",
    "lost_worker",
    "make_executor",
    "job_pool_names",
    "make_job_pool",
    "register_executor",
    "visible_gpus",
    "worker_busy_sandboxes",
    "worker_sandbox_pids",
]


def _discover() -> None:
    """Import every module of this package: each engine registers its class."""
    import_modules(__name__, __path__)


def executor_names() -> list[str]:
    """The registered executors' names, sorted (the config's and the CLI's choices)."""
    _discover()
    return sorted(EXECUTORS)


def _registered(kind: str):
    _discover()
    if kind not in EXECUTORS:
        raise ValueError(f"unknown executor {kind!r}; choose one of: {', '.join(sorted(EXECUTORS))}")
    return EXECUTORS[kind]


def make_executor(
    kind: str, workers: int | None = None, limits: SandboxLimits | None = None, scheduler: str | None = None
) -> Executor:
    """The executor registered as `kind` (`"local"`: a `LocalExecutor`; `"dask"`: a `DaskExecutor` on
    `scheduler`, else a LocalCluster), built by its `from_config`."""
    return _registered(kind).from_config(workers, limits, scheduler)


def make_job_pool(
    kind: str,
    workers: int | None = None,
    scheduler: str | None = None,
    device: str = "cpu",
    notify=None,
    at_most: int | None = None,
) -> JobPool:
    """The process-job pool of the executor registered as `kind` (its ``job_pool``): `LocalJobPool`
    for ``"local"``, `DaskJobPool` for ``"dask"``. An executor without one runs evaluations only."""
    engine = _registered(kind)
    if not hasattr(engine, "job_pool"):
        raise ValueError(
            f"the executor {kind!r} runs the search's evaluations only, not process jobs "
            f"(transfer, validate); choose one of: {', '.join(job_pool_names())}"
        )
    return engine.job_pool(workers, scheduler, device, notify, at_most)


def job_pool_names() -> list[str]:
    """The registered executors that also run process jobs, sorted (the transfer's choices)."""
    _discover()
    return sorted(name for name, engine in EXECUTORS.items() if hasattr(engine, "job_pool"))
