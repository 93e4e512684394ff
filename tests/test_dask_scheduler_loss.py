"""A Dask cluster whose scheduler dies: the executor says so (`ExecutorLost`) instead of settling the
evaluations in flight as failures, a search stops without recording them, and the same command
resumes it on a restarted cluster to a gap-free run. Real `dask scheduler` / `dask worker`
processes on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from search_runs import programs_so_far, write_tiny_config
from worker_loss import LOSS_LIMITS, SLOW_GOOD

from actmine.commands.search import _stopped_by_machine
from actmine.config import Config
from actmine.evolve.controller import Search
from actmine.executors import DaskExecutor, ExecutorLost
from actmine.lab.ensemble import TrainingProtocol
from actmine.lab.fitness import Lab
from actmine.lab.tasks import Suite, polynomial

DASK = str(Path(sys.executable).with_name("dask"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Cluster:
    """A scheduler and one single-threaded worker as separate processes, on a fixed loopback port."""

    def __init__(self, port: int, scratch: Path):
        self.address = f"tcp://127.0.0.1:{port}"
        # killed processes leave their scratch space behind: in the test's directory, not TMPDIR
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        quiet["env"] = dict(os.environ, DASK_TEMPORARY_DIRECTORY=str(scratch))
        self.scheduler = subprocess.Popen(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], **quiet
        )
        self.worker = subprocess.Popen(
            [DASK, "worker", self.address, "--host", "127.0.0.1", "--nthreads", "1", "--no-dashboard"], **quiet
        )

    def kill_scheduler(self) -> None:
        self.scheduler.kill()
        self.scheduler.wait()

    def stop(self) -> None:
        for process in (self.worker, self.scheduler):
            process.kill()
            process.wait()


@pytest.fixture
def cluster(tmp_path):
    started = Cluster(free_port(), tmp_path)
    yield started
    started.stop()


def test_the_executor_raises_executor_lost_when_its_scheduler_dies(cluster, tmp_path):
    lab = Lab(
        Suite("t", (polynomial(dim=1, seed=0),), (0,)),
        protocol=TrainingProtocol(steps=3000, n_train=256, n_eval=128),
        cache_dir=tmp_path,
    )
    executor = DaskExecutor(scheduler=cluster.address, workers=1, limits=LOSS_LIMITS)
    try:
        assert executor.submit("def activation_function(x):\n    return torch.tanh(x)\n", lab).result(60).ok
        in_flight = executor.submit(SLOW_GOOD, lab, "slow")  # seconds of training: in flight at the kill
        time.sleep(1)
        cluster.kill_scheduler()
        with pytest.raises(ExecutorLost, match="Dask scheduler at tcp://127.0.0.1.*lost while evaluating slow"):
            in_flight.result(timeout=30)  # not a failed Evaluation that a search would record
        started = time.monotonic()
        with pytest.raises(ExecutorLost, match="before a new evaluation could start"):
            executor.submit(SLOW_GOOD, lab, "next")
        assert time.monotonic() - started < 5  # not the client's 120 s of reconnecting
    finally:
        executor.close()
    message = _stopped_by_machine(ExecutorLost("the Dask scheduler at X was lost"), "runs/a")
    assert "resume runs/a" in message and "disk" not in message


def test_a_search_stops_on_a_lost_scheduler_records_nothing_in_flight_and_resumes(tmp_path):
    port = free_port()
    executor = {"kind": "dask", "scheduler": f"tcp://127.0.0.1:{port}", "workers": 1}
    config = Config.load(write_tiny_config(tmp_path, search={"budget": 24}, executor=executor))
    run_dir = tmp_path / "run"

    first = Cluster(port, tmp_path)
    killed_at: list[float] = []

    def kill_the_scheduler_once_two_programs_are_recorded() -> None:
        deadline = time.monotonic() + 120
        while len(programs_so_far(run_dir)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        killed_at.append(time.monotonic())
        first.kill_scheduler()

    try:
        threading.Thread(target=kill_the_scheduler_once_two_programs_are_recorded, daemon=True).start()
        with pytest.raises(ExecutorLost):
            Search(config, run_dir, live=False).run()
        assert time.monotonic() - killed_at[0] < 60  # not the Dask client's 120 s of reconnecting
    finally:
        first.stop()
    recorded = programs_so_far(run_dir)
    assert 2 <= len(recorded) < 24
    assert not [p for p in recorded if p.failure_code in ("executor_error", "worker_lost")]
    second = Cluster(port, tmp_path)
    try:
        summary = Search(config, run_dir, live=False).run()
    finally:
        second.stop()
    recorded = programs_so_far(run_dir)
    assert summary["evaluated"] == 24 and sorted(p.proposal_index for p in recorded) == list(range(24))
