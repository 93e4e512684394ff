"""The worker-lifetime benchmark (benchmarks/bench_worker_life.py), short: which programs it sends and
how it reads a worker's memory; the timing itself belongs to the benchmark."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from actmine.run_files import DATABASE

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_worker_life as bench  # noqa: E402


def _run(tmp_path, rows):
    with sqlite3.connect(tmp_path / DATABASE) as database:
        database.execute(
            "CREATE TABLE programs (id INTEGER PRIMARY KEY, source TEXT, status TEXT, fitness REAL, proposal_index INT)"
        )
        database.executemany(
            "INSERT INTO programs (id, source, status, fitness, proposal_index) VALUES (?, ?, ?, ?, ?)",
            [(i, source, status, 0.1 * i, i) for i, source, status in rows],
        )
    return tmp_path


def test_the_requests_are_the_runs_scored_programs_by_ranking_repeated_to_the_count(tmp_path):
    run = _run(tmp_path, [(1, "a", "ok"), (2, "b", "failed"), (3, "c", "ok"), (4, "d", "duplicate")])
    assert bench.programs(run, 5) == ["a", "c", "a", "c", "a"]


def test_a_run_without_scored_programs_is_refused(tmp_path):
    run = _run(tmp_path, [(1, "a", "failed")])
    with pytest.raises(SystemExit, match="no scored programs"):
        bench.programs(run, 3)


def test_memory_is_read_from_proc_and_a_gone_process_reads_zero():
    resident, virtual = bench.memory_mb(os.getpid())
    assert 0 < resident <= virtual
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert bench.memory_mb(gone.pid) == (0, 0)
