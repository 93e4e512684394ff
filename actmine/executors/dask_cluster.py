"""The `dask` executor: evaluations on a Dask cluster, each in a sandboxed grandchild of a Dask worker
(see `actmine.executors` for retries, lost workers and the workers' environment)."""

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
from typing import Collection

from ..candidate.sandbox import LOSS_RETRIES, SandboxLimits
from ..lab.fitness import Evaluation, Lab
from .base import ExecutorLost, failed_evaluation, register_executor
from .dask_setup import close_quietly, connect, local_cluster, lost_scheduler_message, scheduler_connected
from .job_pool import DaskJobPool
from .dask_worker import (
    DASK_WORKER_ENV,
    PLUGIN_NAME,
    SandboxTeardown,
    evaluate_on_worker,
    getenv,
    lost_worker,
)

log = logging.getLogger("actmine.executors")
CAPACITY_TIMEOUT_S = 10.0  # asking the scheduler for its workers' threads


class _Submission:
    """One candidate submitted to a DaskExecutor: its task's arguments, its Future, its attempts."""

    def __init__(self, arguments: tuple, result: concurrent.futures.Future, lab: Lab, name: str):
        self.arguments = arguments
        self.result = result
        self.lab = lab
        self.name = name
        self.task = None  # the Dask future of the current attempt
        self.losses: list[str] = []  # why each earlier attempt's worker was lost

    def settle(self, evaluation: Evaluation) -> None:
        try:
            self.result.set_result(evaluation)
        except concurrent.futures.InvalidStateError:
            pass  # the caller cancelled it, or close() failed it first

    def fail(self, error: Exception) -> None:
        try:
            self.result.set_exception(error)
        except concurrent.futures.InvalidStateError:
            pass


@register_executor
class DaskExecutor:
    """Evaluations on a Dask cluster, each in a sandboxed grandchild of a Dask worker.

    `scheduler`: the address of an existing cluster's scheduler (with `workers`, wait until that
    many workers have joined). Without it, start a `LocalCluster` of `workers` single-threaded
    worker processes (default: one per core) bound to 127.0.0.1, no dashboard.
    """

    name = "dask"

    @classmethod
    def from_config(cls, workers: int | None, limits: SandboxLimits | None, scheduler: str | None) -> "DaskExecutor":
        return cls(scheduler=scheduler, workers=workers, limits=limits)

    @staticmethod
    def job_pool(
        workers: int | None, scheduler: str | None, device: str, notify=None, at_most: int | None = None
    ) -> DaskJobPool:
        """Process jobs as Dask tasks (`DaskJobPool`; ``at_most`` is the cluster's business)."""
        return DaskJobPool(workers, device, scheduler, notify)

    def __init__(
        self,
        scheduler: str | None = None,
        workers: int | None = None,
        limits: SandboxLimits | None = None,
        start_timeout_s: float = 120.0,
    ):
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
                self.client = connect(scheduler, workers, start_timeout_s)
            else:
                self.cluster = local_cluster(workers or os.cpu_count() or 1, DASK_WORKER_ENV)
                self.client = Client(self.cluster, set_as_default=False)
            self.client.register_plugin(SandboxTeardown(), name=PLUGIN_NAME)
        except BaseException:
            self.close()
            raise
        self.start_seconds = time.perf_counter() - started
        self._capacity = self._count_threads()

    def _count_threads(self) -> int:
        # bounded: a scheduler that just died is only noticed by the client's reconnection, 120 s later
        return int(sum(self.client.nthreads(callback_timeout=CAPACITY_TIMEOUT_S).values()))

    @property
    def capacity(self) -> int:
        """Total threads of the cluster's workers (asked of the scheduler; the last value once
        closed or while the scheduler is lost, which `submit` reports)."""
        if not self._closed and not self._scheduler_lost():
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

    def submit(
        self, source: str, lab: Lab, name: str = "candidate", skip_fingerprints: Collection[str] = ()
    ) -> concurrent.futures.Future:
        if self._closed:
            raise RuntimeError("the executor is closed")
        self._check_scheduler()
        spec, reference = self._lab_payload(lab)
        submission = _Submission(
            (source, name, spec, reference, asdict(self.limits), sorted(skip_fingerprints)),
            concurrent.futures.Future(),
            lab,
            name,
        )

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
            submission.settle(
                failed_evaluation(
                    submission.lab,
                    submission.name,
                    "executor_error",
                    f"could not submit to the Dask cluster: {type(exc).__name__}: {exc}",
                )
            )
            return
        submission.task = task
        with self._lock:
            self._pending[key] = submission

        def finished(task) -> None:
            with self._lock:
                self._pending.pop(key, None)
            if submission.result.done():  # cancelled by the caller, or failed by close()
                return
            if task.status == "cancelled" and self._scheduler_lost():
                # Dask cancels every task when the client loses its scheduler: not the candidate's doing
                submission.fail(ExecutorLost(self._lost_message(f"while evaluating {submission.name}")))
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

    def _scheduler_lost(self) -> bool:
        return not self._closed and not scheduler_connected(self.client)

    def _check_scheduler(self) -> None:
        if self._scheduler_lost():
            raise ExecutorLost(self._lost_message("before a new evaluation could start"))

    def _lost_message(self, when: str) -> str:
        return lost_scheduler_message(self.client, when, "the evaluations in flight are not recorded")

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
                        lab,
                        name,
                        "worker_lost",
                        f"the Dask worker evaluating the candidate died mid-evaluation (killed, or its nanny or "
                        f"machine gone), on each of its {max(1, len(losses))} attempt(s); the last: {exc}",
                    )
                return failed_evaluation(
                    lab, name, "executor_error", f"the Dask task failed: {type(exc).__name__}: {exc}"
                )
        except Exception as exc:  # cancelled meanwhile, client closed, lost worker...
            return failed_evaluation(lab, name, "executor_error", f"the Dask task failed: {type(exc).__name__}: {exc}")
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
            submission.settle(
                failed_evaluation(
                    submission.lab,
                    submission.name,
                    "executor_error",
                    "the executor was closed before the evaluation finished",
                )
            )
        close_quietly(self.client, self.cluster)

    def __enter__(self) -> "DaskExecutor":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.scheduler_address if self.client is not None and not self._closed else "closed"
        return f"DaskExecutor({where}, capacity={self._capacity if self._closed else self.capacity})"
