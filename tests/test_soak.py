"""A short soak: a real `actmine search` process (the LLM mutator against the scripted server on
127.0.0.1, sandboxed workers) sampled from /proc by `benchmarks/soak.py`'s sampler. Its open fds and
threads stay flat after the warm-up, and nothing is left behind: no zombie, no worker alive after
the controller exited. The 1,000-evaluation version with the memory slopes is the benchmark."""

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chat_server import ChatServer

SOAK_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "soak.py"
spec = importlib.util.spec_from_file_location("soak", SOAK_PATH)
soak = importlib.util.module_from_spec(spec)
sys.modules["soak"] = soak  # its dataclasses look their module up while they are made
spec.loader.exec_module(soak)

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="the sampler reads /proc (Linux)")


def test_held_levels_drop_short_spikes_and_keep_steps():
    series = [(i, float(i), v) for i, v in enumerate([3.0, 9.0, 3.0, 3.0, 7.0, 7.0, 7.0, 7.0])]
    assert [v for _, _, v in soak.held(series, 3)] == [3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 7.0, 7.0]
    assert soak.held(series, 1) == series


def test_slope_and_envelope_measure_what_they_say():
    assert soak.slope_per_100([(0, 10.0), (100, 12.0), (200, 14.0)]) == pytest.approx(2.0)
    assert soak.slope_per_100([(5, 1.0), (5, 2.0)]) == 0.0
    # a saw-tooth of replaced workers: its envelope is each worker's peak
    series = [(e, float(e), 100.0 + e % 50) for e in range(0, 200, 10)]
    assert {v for _, _, v in soak.envelope(series, 50)[5:]} == {140.0}


def _rows(values):
    return [
        {
            "phase": "p",
            "seconds": float(i),
            "evaluations": i,
            "role": "controller",
            "pid": 1,
            "rss_kb": 1024 * v,
            "fds": v,
            "threads": v,
            "state": "S",
        }
        for i, v in enumerate(values)
    ]


def test_figures_flag_growth_and_pass_a_flat_curve():
    flat = _rows([5, 40, 12, 13, 12, 13, 12, 12, 13, 12, 12, 13, 12, 13, 12, 12])
    leaking = _rows([5, 40] + [12 + i // 2 for i in range(14)])  # one fd per two evaluations
    for metric in ("fds", "threads"):
        assert soak.figures(flat, "p", "controller", metric, warmup=2, budget=100).ok
        assert not soak.figures(leaking, "p", "controller", metric, warmup=2, budget=100).ok
    # a transient: one sample 5 above the level, late in the run (as in a CI run of the short soak)
    spike = _rows([5, 40, 12, 13, 12, 13, 12, 12, 13, 12, 12, 13, 18, 13, 12, 12])
    lasting = _rows([5, 40, 12, 13, 12, 13, 12, 12, 13, 12, 12, 13, 18, 18, 18, 18])  # the same level, held
    for metric in ("fds", "threads"):
        found = soak.figures(spike, "p", "controller", metric, warmup=2, budget=100)
        assert found.ok and found.second_half_max == 13 and found.end == 12, found.line()
        assert not soak.figures(lasting, "p", "controller", metric, warmup=2, budget=100).ok
    rss = soak.figures(_rows([5, 300] + [300 + i for i in range(14)]), "p", "controller", "rss_kb", 2, 100)
    assert rss.slope == pytest.approx(100.0) and not rss.ok  # 1 MiB per evaluation
    assert rss.start == 5 and rss.warm == 300 and rss.end == 313


def test_the_sampler_sees_a_child_its_fds_threads_and_its_zombie(tmp_path):
    child = subprocess.Popen(
        [sys.executable, "-c", "import os, sys, time; r, w = os.pipe(); print(1, flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        child.stdout.readline()
        assert child.pid in soak.descendants(os.getpid())
        alive = soak.sample_process(child.pid)
        assert alive.threads == 1 and alive.fds >= 5 and alive.rss_kb > 0 and alive.state in "RS"
        child.kill()
        deadline = time.monotonic() + 10
        while soak.sample_process(child.pid).state != "Z" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert soak.sample_process(child.pid).state == "Z"  # dead, not yet waited for
    finally:
        child.kill()
        child.wait()
    assert soak.sample_process(child.pid) is None


def test_a_workers_own_child_is_a_helper_not_a_worker():
    # a sandbox worker runs gcc for a fused kernel: its fds are not the worker's
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys; p = subprocess.Popen(['sleep', '60']); "
            "print(p.pid, flush=True); sys.stdin.readline(); p.kill(); p.wait()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        grandchild = int(child.stdout.readline())
        found = dict((pid, role) for role, pid in soak.roles_below(os.getpid()))
        assert found[child.pid] == "worker" and found[grandchild] == "helper"
    finally:
        child.stdin.close()
        child.wait(timeout=10)


def test_short_soak_stays_flat_and_leaves_nothing_behind(tmp_path):
    budget = 60
    with ChatServer(soak.scripted_answers(2 * budget)) as server:
        config = soak.soak_config(
            tmp_path, budget, workers=2, steps=10, mutator=soak.llm_mutator(server.base_url), max_tasks_per_worker=20
        )
        result = soak.run_phase("llm", config, tmp_path / "run", budget, interval=0.2, timeout=300)
        requests = len(server.requests)
    assert result.returncode == 0, result.stderr
    assert requests >= 20  # the model was called over HTTP all along
    assert len(result.workers_seen) >= 3  # workers were replaced during the run (20 tasks each)
    evaluated = {row["evaluations"] for row in result.rows}
    assert max(evaluated) == budget
    for role in ("controller", "worker"):
        for metric in ("fds", "threads"):
            found = soak.figures(result.rows, "llm", role, metric, warmup=15, budget=budget)
            assert found is not None and found.samples >= 3, (role, metric)
            assert found.ok, found.line()
    assert result.lasting_zombies == []  # every ended worker was waited for
    assert result.workers_left == []  # every sandbox worker ended with its controller
