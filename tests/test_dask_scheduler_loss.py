"""A Dask cluster whose scheduler dies: the executor says so (`ExecutorLost`) instead of settling the
evaluations in flight as failures, a search stops without recording them, and the same command
resumes it on a restarted cluster to a gap-free run. Real `dask scheduler` / `dask worker`
processes on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from search_runs import programs_so_far, write_tiny_config
from test_transfer_runner import TinyBenchmark
from worker_loss import LOSS_LIMITS, SLOW_GOOD

from actmine.commands.search import _stopped_by_machine
from actmine.config import Config
from actmine.evolve.controller import Search
from actmine.executors import DaskExecutor, ExecutorLost
from actmine.lab.ensemble import TrainingProtocol
from actmine.lab.fitness import Lab
from actmine.lab.tasks import Suite, polynomial
from actmine.transfer import base

DASK = str(Path(sys.executable).with_name("dask"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Cluster:
    """A scheduler and one single-threaded worker as separate processes, on a fixed loopback port."""

    def __init__(self, port: int, scratch: Path, python_path: str | None = None):
        self.address = f"tcp://127.0.0.1:{port}"
        # killed processes leave their scratch space behind: in the test's directory, not TMPDIR
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        quiet["env"] = dict(os.environ, DASK_TEMPORARY_DIRECTORY=str(scratch))
        if python_path:  # what the worker's jobs import (a test's benchmark)
            quiet["env"]["PYTHONPATH"] = os.pathsep.join(filter(None, [python_path, os.environ.get("PYTHONPATH")]))
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
        # not the client's 120 s of reconnecting (a bound far from both, so a busy machine cannot fail it)
        assert time.monotonic() - started < 60
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


def _transfer(cluster_address: str, data_dir: Path, out: Path, capsys) -> tuple[int, str, str]:
    from actmine.cli import main

    code = main(
        ["transfer", "--activations", "gelu,silu", "--benchmarks", "tiny", "--seeds", "3", "--epochs", "10"]
        + ["--executor", "dask", "--scheduler", cluster_address, "--data-dir", str(data_dir), "--out", str(out)]
        + ["--timeout", "60", "--quiet"]
    )
    stdout, stderr = capsys.readouterr()
    return code, stdout, stderr


def _journal(out: Path) -> list[dict]:
    path = out / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def test_a_transfer_stops_on_a_lost_scheduler_keeps_what_finished_and_resumes(tmp_path, capsys):
    """The job pool's side (transfer, validate): a job cancelled because the scheduler died is not
    the job's failure, nor a Ctrl-C's cancellation (which the runner skips): before, the transfer
    skipped every job in flight and after, wrote a summary of what was left, and said exit 0."""
    base.register_benchmark(TinyBenchmark)
    try:
        data_dir = tmp_path / "data"
        (data_dir / "tiny").mkdir(parents=True)
        (data_dir / "tiny" / "READY").touch()
        out = tmp_path / "out"
        port = free_port()
        tests = str(Path(__file__).parent)
        first = Cluster(port, tmp_path, python_path=tests)

        def kill_the_scheduler_once_a_job_is_recorded() -> None:
            deadline = time.monotonic() + 120
            while not _journal(out) and time.monotonic() < deadline:
                time.sleep(0.1)
            first.kill_scheduler()

        try:
            threading.Thread(target=kill_the_scheduler_once_a_job_is_recorded, daemon=True).start()
            code, _, stderr = _transfer(first.address, data_dir, out, capsys)
        finally:
            first.stop()
        assert code == 1, stderr
        last = stderr.strip().splitlines()[-1]
        assert "Dask scheduler at tcp://127.0.0.1" in last and "run the same command again to resume" in last
        assert "Traceback" not in stderr
        recorded = _journal(out)
        total = 2 * 3 + 3  # gelu, silu and ReLU (added as the reference), three seeds
        assert 1 <= len(recorded) < total and all(r["ok"] for r in recorded)  # no job recorded as lost
        assert not (out / "results.json").exists()  # no summary of a part

        second = Cluster(port, tmp_path, python_path=tests)
        try:
            code, stdout, stderr = _transfer(second.address, data_dir, out, capsys)
        finally:
            second.stop()
        assert code == 0, stderr
        jobs = json.loads((out / "results.json").read_text())["jobs"]
        assert len(jobs) == total and all(j["ok"] for j in jobs)
        assert f"({len(recorded)} from an earlier run)" in stdout
    finally:
        base._BENCHMARKS.pop("tiny", None)
