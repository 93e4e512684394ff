"""Where evaluations run: one small interface, two engines.

An `Executor` takes a candidate's source text and a `Lab` and returns a
`concurrent.futures.Future` whose result is always an `Evaluation` (a refused or failed one
rather than an exception). Candidates are untrusted code: whatever the engine, they only ever run
inside a `SandboxPool` worker process, with its rlimits, wall-clock timeout and network isolation.

- `LocalExecutor` (the default): a `SandboxPool` on this machine.
- `DaskExecutor`: a Dask cluster, either an existing one (`scheduler="tcp://host:8786"`) or a
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

import concurrent.futures
import json
import logging
import os
import threading
import time
import uuid
import weakref
from dataclasses import asdict
from typing import Any, Collection, Protocol as TypingProtocol, runtime_checkable

from .candidate.sandbox import LOSS_RETRIES, WORKER_ENV, SandboxLimits, SandboxPool
from .lab.fitness import Evaluation, Lab

log = logging.getLogger(__name__)

EXECUTORS = ("local", "dask")
# Variables a Dask worker process must have from its first instruction (see the module docstring).
DASK_WORKER_ENV = {k: WORKER_ENV[k] for k in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "OMP_NUM_THREADS",
                                              "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
PLUGIN_NAME = "actmine-sandbox"


@runtime_checkable
class Executor(TypingProtocol):
    """Runs evaluations; at most `capacity` at once."""

    capacity: int

    def submit(self, source: str, lab: Lab, name: str = "candidate",
               skip_fingerprints: Collection[str] = ()) -> concurrent.futures.Future:
        """Evaluate `source` on `lab`; the Future's result is an `Evaluation` (never an exception).

        `skip_fingerprints`: functions already evaluated (a duplicate stops after the probes).
        """

    def close(self) -> None:
        """Stop everything this executor started; idempotent."""


def failed_evaluation(lab: Lab, name: str, code: str, message: str, stage: str = "sandbox") -> Evaluation:
    evaluation = Evaluation(activation=name, ok=False, workload=lab.workload_summary())
    return evaluation.fail(stage, code, message)


# -- local -----------------------------------------------------------------------------------------

class LocalExecutor:
    """Evaluations in a `SandboxPool` on this machine (`workers` sandboxed processes)."""

    def __init__(self, workers: int | None = None, limits: SandboxLimits | None = None):
        self.pool = SandboxPool(workers, limits)
        self.capacity = self.pool.workers
        self.limits = self.pool.limits
        self._closed = False

    def start(self) -> "LocalExecutor":
        """Start every sandbox worker now rather than on first use."""
        self.pool.start()
        return self

    def submit(self, source: str, lab: Lab, name: str = "candidate",
               skip_fingerprints: Collection[str] = ()) -> concurrent.futures.Future:
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


# -- on a Dask worker ---------------------------------------------------------------------------------
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

    from .lab.ensemble import TrainResult

    key = json.dumps({"spec": spec, "reference": reference}, sort_keys=True)
    with _worker_lock:
        lab = _labs.get(key)
        if lab is None:
            lab = Lab.from_spec(spec)
            lab.use_reference(TrainResult(torch.empty(0), torch.tensor(reference["id_error"]),
                                          torch.tensor(reference["ood_error"]), []))
            _labs[key] = lab
            while len(_labs) > MAX_CACHED_LABS:   # a search samples new tasks every round: keep the latest
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


def evaluate_on_worker(source: str, name: str, spec: dict[str, Any], reference: dict[str, list[float]],
                       limits: dict[str, Any], skip_fingerprints: list[str] = (),
                       retries: int = LOSS_RETRIES) -> dict[str, Any]:
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


# -- Dask -----------------------------------------------------------------------------------------

class _Submission:
    """One candidate submitted to a DaskExecutor: its task's arguments, its Future, its attempts."""

    def __init__(self, arguments: tuple, result: concurrent.futures.Future, lab: Lab, name: str):
        self.arguments = arguments
        self.result = result
        self.lab = lab
        self.name = name
        self.task = None              # the Dask future of the current attempt
        self.losses: list[str] = []   # why each earlier attempt's worker was lost

    def settle(self, evaluation: Evaluation) -> None:
        try:
            self.result.set_result(evaluation)
        except concurrent.futures.InvalidStateError:
            pass  # the caller cancelled it, or close() failed it first


class DaskExecutor:
    """Evaluations on a Dask cluster, each in a sandboxed grandchild of a Dask worker.

    `scheduler`: the address of an existing cluster's scheduler (with `workers`, wait until that
    many workers have joined). Without it, start a `LocalCluster` of `workers` single-threaded
    worker processes (default: one per core) bound to 127.0.0.1, no dashboard.
    """

    def __init__(self, scheduler: str | None = None, workers: int | None = None,
                 limits: SandboxLimits | None = None, start_timeout_s: float = 120.0):
        from distributed import Client

        self.limits = limits or SandboxLimits()
        self.cluster = None
        self.client = None
        self._closed = False
        self._lock = threading.Lock()
        # Dask futures must stay referenced until they finish (else Dask forgets the task).
        self._pending: dict[str, _Submission] = {}
        self._specs: weakref.WeakKeyDictionary[Lab, tuple[dict, dict]] = weakref.WeakKeyDictionary()
        started = time.perf_counter()
        try:
            if scheduler:
                self.client = Client(scheduler, timeout=start_timeout_s, set_as_default=False)
                if workers:
                    self.client.wait_for_workers(workers, timeout=start_timeout_s)
            else:
                self.cluster = self._local_cluster(workers or os.cpu_count() or 1)
                self.client = Client(self.cluster, set_as_default=False)
            self.client.register_plugin(SandboxTeardown(), name=PLUGIN_NAME)
        except BaseException:
            self.close()
            raise
        self.start_seconds = time.perf_counter() - started
        self._capacity = self._count_threads()

    @staticmethod
    def _local_cluster(workers: int):
        import dask
        from distributed import LocalCluster

        pre_spawn = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **DASK_WORKER_ENV}
        # The nannies run in this process and write pre-spawn-environ into os.environ before
        # spawning; keep this (controller) process's environment as it was.
        saved = {k: os.environ.get(k) for k in (*pre_spawn, "PYTHONHASHSEED")}
        try:
            with dask.config.set({"distributed.nanny.pre-spawn-environ": pre_spawn}):
                return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                    scheduler_port=0, dashboard_address=None, worker_dashboard_address=None,
                                    # no dashboard; the scheduler's HTTP routes (health, metrics) on a
                                    # free port of 127.0.0.1 rather than the default :8787
                                    scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0",
                                                      # a task whose worker died is retried by
                                                      # DaskExecutor, once, not by the scheduler
                                                      "allowed_failures": 0},
                                    silence_logs=logging.ERROR)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def _count_threads(self) -> int:
        return int(sum(self.client.nthreads().values()))

    @property
    def capacity(self) -> int:
        """Total threads of the cluster's workers (asked of the scheduler; last value once closed)."""
        if not self._closed:
            try:
                self._capacity = self._count_threads()
            except Exception:  # the scheduler went away: keep the last known value
                pass
        return self._capacity

    @property
    def scheduler_address(self) -> str:
        return self.client.scheduler.address

    def worker_environ(self, variable: str) -> dict[str, str | None]:
        """`variable` in each Dask worker's environment, by worker address."""
        return self.client.run(getenv, variable)

    def _lab_payload(self, lab: Lab) -> tuple[dict, dict]:
        # Computed once per Lab object (the reference may train ReLU, in this trusted process).
        with self._lock:
            cached = self._specs.get(lab)
            if cached is not None:
                return cached
        reference = lab.reference
        spec = json.loads(json.dumps(lab.to_spec()))
        payload = {"id_error": reference.id_error.tolist(), "ood_error": reference.ood_error.tolist()}
        with self._lock:
            self._specs[lab] = (spec, payload)
        return spec, payload

    def submit(self, source: str, lab: Lab, name: str = "candidate",
               skip_fingerprints: Collection[str] = ()) -> concurrent.futures.Future:
        if self._closed:
            raise RuntimeError("the executor is closed")
        spec, reference = self._lab_payload(lab)
        submission = _Submission((source, name, spec, reference, asdict(self.limits), sorted(skip_fingerprints)),
                                 concurrent.futures.Future(), lab, name)

        def cancelled(future: concurrent.futures.Future) -> None:
            if future.cancelled() and submission.task is not None:
                submission.task.cancel()

        submission.result.add_done_callback(cancelled)
        self._launch(submission)
        return submission.result

    def _launch(self, submission: "_Submission") -> None:
        """Submit one attempt of `submission` to the cluster; its end settles or retries it."""
        key = f"actmine-evaluate-{uuid.uuid4().hex}"
        # A retry here spends the candidate's one retry: its sandbox pool must not retry it again.
        retries = max(0, LOSS_RETRIES - len(submission.losses))
        try:
            task = self.client.submit(evaluate_on_worker, *submission.arguments, retries, key=key, pure=False)
        except Exception as exc:
            submission.settle(failed_evaluation(submission.lab, submission.name, "executor_error",
                                                f"could not submit to the Dask cluster: {type(exc).__name__}: {exc}"))
            return
        submission.task = task
        with self._lock:
            self._pending[key] = submission

        def finished(task) -> None:
            with self._lock:
                self._pending.pop(key, None)
            if submission.result.done():  # cancelled by the caller, or failed by close()
                return
            try:
                exc = task.exception(timeout=60) if task.status == "error" else None
            except Exception:  # the client went away meanwhile: _collect says so
                exc = None
            if lost_worker(exc):
                submission.losses.append(str(exc))
                if len(submission.losses) <= LOSS_RETRIES and not self._closed:
                    log.warning("a Dask worker was lost while evaluating %r; retrying it once", submission.name)
                    self._launch(submission)
                    return
            submission.settle(self._collect(task, submission.lab, submission.name, submission.losses))

        task.add_done_callback(finished)

    @staticmethod
    def _collect(task, lab: Lab, name: str, losses: list[str] = ()) -> Evaluation:
        """The Evaluation of a finished Dask task: its validated answer, else a failure."""
        try:
            if task.status == "finished":
                answer = task.result(timeout=60)
            elif task.status == "cancelled":
                return failed_evaluation(lab, name, "executor_error", "the Dask task was cancelled")
            else:
                exc = task.exception(timeout=60)
                if lost_worker(exc):
                    return failed_evaluation(
                        lab, name, "worker_lost",
                        f"the Dask worker evaluating the candidate died mid-evaluation (killed, or its nanny or "
                        f"machine gone), on each of its {max(1, len(losses))} attempt(s); the last: {exc}")
                return failed_evaluation(lab, name, "executor_error",
                                         f"the Dask task failed: {type(exc).__name__}: {exc}")
        except Exception as exc:  # cancelled meanwhile, client closed, lost worker...
            return failed_evaluation(lab, name, "executor_error",
                                     f"the Dask task failed: {type(exc).__name__}: {exc}")
        try:
            return Evaluation.from_dict(answer)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            return failed_evaluation(lab, name, "bad_worker_answer", f"the Dask worker's answer was malformed: {exc}")

    def close(self) -> None:
        """Cancel what is pending, close the client and, if we started it, the cluster (idempotent)."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            pending = list(self._pending.values())
            self._pending.clear()
            self._specs.clear()
        for submission in pending:
            try:
                submission.task.cancel()
            except Exception:
                pass
            # the caller never waits forever
            submission.settle(failed_evaluation(submission.lab, submission.name, "executor_error",
                                                "the executor was closed before the evaluation finished"))
        if self.client is not None:
            try:
                self.client.close()
            except Exception as exc:  # pragma: no cover - best effort
                log.warning("closing the Dask client: %s", exc)
        if self.cluster is not None:
            try:
                self.cluster.close()
            except Exception as exc:  # pragma: no cover - best effort
                log.warning("closing the Dask cluster: %s", exc)

    def __enter__(self) -> "DaskExecutor":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.scheduler_address if self.client is not None and not self._closed else "closed"
        return f"DaskExecutor({where}, capacity={self._capacity if self._closed else self.capacity})"


def make_executor(kind: str, workers: int | None = None, limits: SandboxLimits | None = None,
                  scheduler: str | None = None) -> Executor:
    """`"local"`: a `LocalExecutor`; `"dask"`: a `DaskExecutor` (on `scheduler`, else a LocalCluster)."""
    if kind == "local":
        if scheduler:
            raise ValueError("a scheduler address needs the 'dask' executor")
        return LocalExecutor(workers, limits)
    if kind == "dask":
        return DaskExecutor(scheduler=scheduler, workers=workers, limits=limits)
    raise ValueError(f"unknown executor {kind!r}; choose one of: {', '.join(EXECUTORS)}")
