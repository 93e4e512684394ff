"""The job system's process-job pools (`actmine.executors.job_pool`) and the registry that makes them.

The jobs here are plain functions (the pools do not care what a job runs; the transfer's confined
process is tested in test_transfer_runner.py): they report the slot they were given and how many
jobs were running at once.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actmine.executors import (
    EXECUTORS,
    ClusterUnavailable,
    DaskJobPool,
    LocalJobPool,
    Slot,
    executor_names,
    job_pool_names,
    make_job_pool,
    register_executor,
)


class _Meter:
    """Counts the jobs running at once and the slots in use (a slot is never shared)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.running = self.most = 0
        self.in_use: set[int] = set()
        self.shared = False

    def job(self, value: int, pause: float, *, slot: Slot, cancelled: threading.Event | None) -> tuple:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.shared |= id(slot) in self.in_use
            self.in_use.add(id(slot))
        time.sleep(pause)
        with self.lock:
            self.running -= 1
            self.in_use.discard(id(slot))
        return value * 2, slot.threads, slot.gpu


@given(
    workers=st.integers(1, 4), gpus=st.lists(st.sampled_from("0123"), max_size=3, unique=True), jobs=st.integers(1, 9)
)
@settings(max_examples=25, deadline=None)
def test_local_pool_runs_every_job_at_most_capacity_at_once_on_its_own_slot(workers, gpus, jobs):
    meter = _Meter()
    pool = LocalJobPool(workers, "cuda" if gpus else "cpu", gpus=gpus, at_most=jobs)
    try:
        assert pool.capacity == min(workers, jobs)
        futures = [pool.submit(meter.job, i, 0.002) for i in range(jobs)]
        answers = [f.result(timeout=30) for f in futures]
    finally:
        pool.close()
    assert [a[0] for a in answers] == [2 * i for i in range(jobs)]
    assert meter.most <= pool.capacity and not meter.shared
    if gpus:  # slot i is pinned to gpus[i % len(gpus)]: only those GPUs are handed out
        assert {a[2] for a in answers} <= set(gpus[: pool.capacity])
    else:
        assert {a[1:] for a in answers} == {(1, None)}  # a CPU job trains on one thread


def test_local_pool_defaults_to_one_worker_per_gpu_and_shares_the_cores():
    pool = LocalJobPool(None, "cuda", gpus=["3", "5"])
    try:
        answers = [f.result(timeout=30) for f in [pool.submit(_Meter().job, 1, 0.05) for _ in range(2)]]
    finally:
        pool.close()
    assert pool.capacity == 2 and {a[2] for a in answers} == {"3", "5"}
    assert all(a[1] >= 1 for a in answers)


def test_closing_the_local_pool_stops_the_running_job_and_starts_nothing_more():
    started, seen = threading.Event(), []

    def waits_for_cancel(*, slot, cancelled):
        started.set()
        seen.append(cancelled.wait(timeout=30))  # a job's process is killed when this is set
        return "stopped"

    pool = LocalJobPool(1)
    running = pool.submit(waits_for_cancel)
    queued = pool.submit(waits_for_cancel)
    assert started.wait(timeout=30)
    pool.close()
    assert running.result(timeout=30) == "stopped" and seen == [True]
    with pytest.raises(concurrent.futures.CancelledError):
        queued.result(timeout=30)
    with pytest.raises(RuntimeError, match="closed"):
        pool.submit(waits_for_cancel)


def _where(value, *, slot, cancelled):
    return {"value": value, "threads": slot.threads, "gpu": slot.gpu, "cancelled": cancelled}


def test_dask_pool_on_a_running_cluster_and_its_gpu_check(loopback_dask_cluster):
    cluster = loopback_dask_cluster
    pool = make_job_pool("dask", scheduler=cluster.scheduler_address)
    try:
        assert isinstance(pool, DaskJobPool) and pool.capacity == 1
        answers = [f.result(timeout=60) for f in [pool.submit(_where, v) for v in range(3)]]
    finally:
        pool.close()
    assert [a["value"] for a in answers] == [0, 1, 2]
    assert all(a["threads"] == 1 and a["gpu"] is None and a["cancelled"] is None for a in answers)
    # no worker of this cluster offers the resource GPU: refused before anything is submitted
    with pytest.raises(ClusterUnavailable, match="--resources GPU=1"):
        make_job_pool("dask", scheduler=cluster.scheduler_address, device="cuda")
    with pytest.raises(ClusterUnavailable, match="cannot use the Dask cluster at tcp://127.0.0.1:1"):
        DaskJobPool(scheduler="tcp://127.0.0.1:1", workers=1, start_timeout_s=3)


def test_dask_pool_starts_a_loopback_cluster_of_its_own_and_closes_it():
    heard = []
    pool = make_job_pool("dask", workers=1, notify=heard.append)
    try:
        assert pool.cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        assert pool.submit(_where, 7).result(timeout=120)["value"] == 7
    finally:
        cluster = pool.cluster
        pool.close()
    assert heard and "started a local Dask cluster of 1 workers" in heard[0]
    assert cluster.status.name == "closed"


def test_the_registry_makes_the_pools_and_names_the_choices():
    assert set(job_pool_names()) == {"local", "dask"} <= set(executor_names())
    pool = make_job_pool("local", workers=2)
    assert isinstance(pool, LocalJobPool) and pool.capacity == 2
    pool.close()
    with pytest.raises(ValueError, match="unknown executor 'nosuch'; choose one of: dask, local"):
        make_job_pool("nosuch")
    with pytest.raises(ValueError, match="needs the 'dask' executor"):
        make_job_pool("local", scheduler="tcp://127.0.0.1:1")

    @register_executor
    class EvaluationsOnly:  # a plug-in executor without a job pool runs the search only
        name = "evaluations-only"

    try:
        assert "evaluations-only" in executor_names() and "evaluations-only" not in job_pool_names()
        with pytest.raises(ValueError, match="runs the search's evaluations only"):
            make_job_pool("evaluations-only")
    finally:
        del EXECUTORS["evaluations-only"]


def test_the_transfer_and_validate_commands_offer_the_job_pools():
    from actmine.cli import build_parser

    parser = build_parser()
    choices = {}
    for action in parser._subparsers._group_actions[0].choices.items():
        name, sub = action
        for option in sub._actions:
            if "--executor" in option.option_strings:
                choices[name] = sorted(option.choices)
    assert choices["transfer"] == choices["validate"] == job_pool_names()
    assert choices["search"] == executor_names()


def test_a_jobs_own_process_loads_neither_dask_nor_the_search_executors():
    # Every transfer job starts a fresh process that imports actmine.transfer: the job system stays
    # out of it (seconds of imports per job otherwise).
    import subprocess
    import sys

    code = (
        "import sys, actmine.transfer.child, actmine.transfer.job_process; "
        "print(sorted(m for m in ('distributed', 'dask', 'actmine.executors') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stderr
