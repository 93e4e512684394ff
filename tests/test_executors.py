"""Executors: the local sandbox pool and a Dask cluster give the same answers, with the same limits.

The Dask tests run a real LocalCluster (2 worker processes) and check that it listens on the
loopback interface only and that its workers start with the allocator settings.
"""

import concurrent.futures
import contextlib
import os
import shutil
import signal
import subprocess
import time

import psutil
import pytest

from actmine.candidate.sandbox import WORKER_ENV, SandboxLimits
from actmine.executors import (
    DaskExecutor,
    Executor,
    LocalExecutor,
    make_executor,
    worker_busy_sandboxes,
    worker_sandbox_pids,
)
from actmine.lab.ensemble import TrainingProtocol
from actmine.lab.fitness import Lab
from actmine.lab.tasks import Suite, feynman, polynomial
from worker_loss import LOSS_LIMITS, SLOW_GOOD, wait_ended

GOOD = "def activation_function(x):\n    return torch.tanh(x)\n"
IMPORT_OS = "import os\n\ndef activation_function(x):\n    return x\n"
BUSY_LOOP = (
    "def activation_function(x):\n    total = 0.0\n    for i in range(10000):\n"
    "        for j in range(10000):\n            for k in range(10000):\n"
    "                total = total + 1.0\n    return x + total\n"
)
LIMITS = SandboxLimits(timeout_s=5, cpu_s=3, memory_mb=3072)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    suite = Suite("t", (polynomial(dim=1, seed=0), feynman("I.14.3")), (0,))
    lab = Lab(
        suite, protocol=TrainingProtocol(steps=20, n_train=256, n_eval=128), cache_dir=tmp_path_factory.mktemp("cache")
    )
    lab.reference  # trained once, here
    return lab


@pytest.fixture(scope="module")
def in_process(lab):
    """The trusted candidate evaluated in this process: what both executors must reproduce."""
    evaluation = lab.evaluate_source(GOOD, name="tanh")
    assert evaluation.ok
    return evaluation


@pytest.fixture(scope="module")
def local():
    with LocalExecutor(workers=2, limits=LIMITS) as executor:
        yield executor.start()


@pytest.fixture(scope="module")
def dask():
    with DaskExecutor(workers=2, limits=LIMITS) as executor:
        yield executor


def process_tree(root: psutil.Process) -> list[psutil.Process]:
    return [root, *root.children(recursive=True)]


def listening(process: psutil.Process) -> list[tuple[str, int]]:
    connections = getattr(process, "net_connections", None) or process.connections
    try:
        return [(c.laddr.ip, c.laddr.port) for c in connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    except psutil.NoSuchProcess:
        return []


# -- the interface -------------------------------------------------------------------------------


def test_make_executor_names_the_options():
    with pytest.raises(ValueError, match="unknown executor .ray.; choose one of: dask, local"):
        make_executor("ray", 2, LIMITS)
    with pytest.raises(ValueError, match="dask"):
        make_executor("local", 2, LIMITS, scheduler="tcp://127.0.0.1:8786")
    executor = make_executor("local", 3, LIMITS)
    assert isinstance(executor, LocalExecutor) and isinstance(executor, Executor) and executor.capacity == 3
    executor.close()
    executor.close()  # idempotent
    with pytest.raises(RuntimeError):
        executor.submit(GOOD, None, "late")


# -- local ---------------------------------------------------------------------------------------


def test_local_evaluates_a_good_candidate_and_refuses_a_hostile_one(local, lab, in_process):
    good = local.submit(GOOD, lab, "tanh").result(timeout=60)
    assert good.ok and good.fitness == pytest.approx(in_process.fitness, abs=1e-6)
    hostile = local.submit(IMPORT_OS, lab, "import_os").result(timeout=60)
    assert not hostile.ok and hostile.error["code"] == "import" and hostile.stage == "policy"


def test_local_concurrent_submissions_up_to_capacity_all_complete(local, lab, in_process):
    futures = [local.submit(GOOD, lab, f"tanh-{i}") for i in range(local.capacity)]
    done, pending = concurrent.futures.wait(futures, timeout=60)
    assert not pending
    for i, future in enumerate(futures):
        evaluation = future.result()
        assert evaluation.ok and evaluation.activation == f"tanh-{i}"
        assert evaluation.fitness == pytest.approx(in_process.fitness, abs=1e-6)


# -- Dask ----------------------------------------------------------------------------------------


def test_dask_executor_gives_the_same_fitness_as_local_and_in_process(dask, local, lab, in_process):
    assert isinstance(dask, Executor) and dask.capacity == 2
    futures = [dask.submit(GOOD, lab, f"tanh-{i}") for i in range(dask.capacity)]
    on_local = local.submit(GOOD, lab, "tanh").result(timeout=60)
    for future in futures:
        evaluation = future.result(timeout=120)
        assert isinstance(future, concurrent.futures.Future)
        assert evaluation.ok and evaluation.stage == "done", evaluation.error
        assert evaluation.fitness == pytest.approx(on_local.fitness, abs=1e-6)
        assert evaluation.fitness == pytest.approx(in_process.fitness, abs=1e-6)
        assert [t.name for t in evaluation.tasks] == [t.name for t in in_process.tasks]
    # The candidate ran in a sandboxed child of each Dask worker, not in the worker itself.
    sandboxes = dask.client.run(worker_sandbox_pids)
    worker_pids = dask.client.run(os.getpid)
    assert sum(len(pids) for pids in sandboxes.values()) >= 1
    for address, pids in sandboxes.items():
        for pid in pids:
            assert psutil.Process(pid).ppid() == worker_pids[address]


def test_dask_refuses_a_busy_loop_and_its_workers_survive(dask, lab, in_process):
    pids_before = dask.client.run(os.getpid)
    hostile = dask.submit(BUSY_LOOP, lab, "busy_loop").result(timeout=60)
    assert not hostile.ok and hostile.error["code"] in {"timeout", "cpu_limit"}, hostile.error
    assert hostile.stage == "sandbox"
    assert dask.client.run(os.getpid) == pids_before  # the Dask workers themselves were not harmed
    futures = [dask.submit(GOOD, lab, "tanh") for _ in range(dask.capacity)]
    for future in futures:
        evaluation = future.result(timeout=120)
        assert evaluation.ok and evaluation.fitness == pytest.approx(in_process.fitness, abs=1e-6)


def test_dask_executor_connects_to_an_existing_cluster_and_leaves_it_running(dask, lab, in_process):
    running = dask.submit(GOOD, lab, "on-first-client")
    sandboxes = dask.client.run(worker_sandbox_pids)
    with make_executor("dask", 2, LIMITS, scheduler=dask.scheduler_address) as remote:
        assert remote.cluster is None and remote.capacity == dask.capacity
        evaluation = remote.submit(GOOD, lab, "tanh").result(timeout=60)
        assert evaluation.ok and evaluation.fitness == pytest.approx(in_process.fitness, abs=1e-6)
    # Closing a client that connected does not close the cluster, nor its workers' sandboxes.
    evaluation = running.result(timeout=60)
    assert evaluation.ok, evaluation.error
    assert dask.submit(GOOD, lab, "after").result(timeout=60).ok
    assert dask.client.run(worker_sandbox_pids) == sandboxes  # the same sandboxed processes, still serving


def test_both_executors_pass_on_the_fingerprints_to_skip(dask, local, lab, in_process):
    seen = [in_process.probes["fingerprint"]]
    for executor in (local, dask):
        evaluation = executor.submit(GOOD, lab, "again", skip_fingerprints=seen).result(timeout=60)
        assert not evaluation.ok and evaluation.error["code"] == "duplicate" and evaluation.stage == "probes"


def test_dask_task_errors_become_failed_evaluations(dask, lab):
    class BrokenSpec(Lab):
        def to_spec(self):
            return {"suite": "not a suite"}

    broken = BrokenSpec(lab.suite, protocol=lab.protocol, cache_dir=lab.cache_dir)
    evaluation = dask.submit(GOOD, broken, "broken").result(timeout=60)
    assert not evaluation.ok and evaluation.stage == "sandbox"
    assert evaluation.error["code"] == "executor_error" and "failed" in evaluation.error["message"]


def test_local_cluster_listens_on_loopback_only(dask):
    assert dask.scheduler_address.startswith("tcp://127.0.0.1:")
    me = psutil.Process()
    worker_pids = set(dask.client.run(os.getpid).values())
    tree = process_tree(me)
    assert worker_pids <= {p.pid for p in tree}
    sockets = {p.pid: listening(p) for p in tree}
    # The scheduler (and nannies) in this process, and each worker, listen; all on 127.0.0.1.
    assert sockets[me.pid] and all(sockets[pid] for pid in worker_pids)
    addresses = {ip for found in sockets.values() for ip, _ in found}
    assert addresses == {"127.0.0.1"}, sockets
    if shutil.which("ss"):  # the kernel's own view, as a cross-check
        table = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, timeout=10).stdout
        ours = [line for line in table.splitlines() if any(f"pid={pid}," in line for pid in sockets)]
        assert ours and all(line.split()[3].startswith("127.0.0.1:") for line in ours), table


def test_dask_workers_start_with_the_allocator_settings(dask):
    trim = dask.client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
    assert set(trim.values()) == {WORKER_ENV["MALLOC_TRIM_THRESHOLD_"]}
    assert dask.worker_environ("MALLOC_TRIM_THRESHOLD_") == trim
    assert set(dask.worker_environ("OMP_NUM_THREADS").values()) == {"1"}


def test_dask_close_fails_pending_work_and_stops_every_process(lab):
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    environment = dict(os.environ)
    with DaskExecutor(workers=1, limits=LIMITS) as executor:
        # The nannies (in this process) write the workers' settings into os.environ to spawn them;
        # this process's environment is restored.
        assert {k: v for k, v in os.environ.items() if k != "__DASK_PARENT_PID"} == {
            k: v for k, v in environment.items() if k != "__DASK_PARENT_PID"
        }
        assert executor.capacity == 1
        future = executor.submit(BUSY_LOOP, lab, "busy_loop")
        started = {p.pid for p in me.children(recursive=True)} - before
        assert started  # the Dask worker process (and, soon, its sandbox)
    evaluation = future.result(timeout=30)  # the caller never waits forever
    assert not evaluation.ok and evaluation.error["code"] == "executor_error"
    executor.close()  # idempotent
    with pytest.raises(RuntimeError):
        executor.submit(GOOD, lab, "late")
    gone, alive = psutil.wait_procs([psutil.Process(pid) for pid in started if psutil.pid_exists(pid)], timeout=15)
    assert not alive, [p.cmdline() for p in alive]


# -- losing a Dask worker --------------------------------------------------------------------------
# A Dask worker process killed mid-evaluation costs at most the candidate it held: the executor
# retries it once (the scheduler itself does not), then fails it with `worker_lost`; the nanny
# restarts the worker and other work goes on.

# A good candidate that takes a few seconds to evaluate, so a kill sent as soon as its sandbox is
# busy lands mid-evaluation.


def started_processes(me: psutil.Process, before: set[int]) -> list[psutil.Process]:
    """The processes under `me` not in `before`, less multiprocessing's resource tracker (one per
    process, started with the first spawned child and kept for the process's life)."""
    started = []
    for process in me.children(recursive=True):
        try:
            if process.pid not in before and "multiprocessing.resource_tracker" not in " ".join(process.cmdline()):
                started.append(process)
        except psutil.NoSuchProcess:
            pass
    return started


def kill_busy_dask_worker(
    executor: DaskExecutor, spare: set[int] = frozenset(), timeout_s: float = 120, sig: int = signal.SIGKILL
) -> tuple[int, int]:
    """Send `sig` to the Dask worker (not one of `spare`) whose sandbox is evaluating: (worker pid, sandbox pid)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        # (the scheduler's worker identities carry no pid in this Dask version: ask the workers)
        pids = executor.client.run(os.getpid, on_error="ignore")
        busy = executor.client.run(worker_busy_sandboxes, on_error="ignore")
        for address, sandboxes in busy.items():
            if sandboxes and pids.get(address) not in spare:
                os.kill(pids[address], sig)
                return pids[address], next(iter(sandboxes))
        time.sleep(0.02)
    raise AssertionError("no Dask worker's sandbox became busy")


def test_a_dask_worker_that_stops_answering_is_declared_lost_and_its_candidate_runs_elsewhere(lab, monkeypatch):
    """SIGSTOP: the worker neither dies nor answers (a hung or swapped-out machine). Its heartbeats
    stop, the scheduler drops it after WORKER_TTL_S, and the candidate's one retry runs elsewhere
    (Dask's default is five minutes of waiting)."""
    from actmine.executors import dask_setup

    monkeypatch.setattr(dask_setup, "WORKER_TTL_S", 5)
    with DaskExecutor(workers=2, limits=LOSS_LIMITS) as executor:
        future = executor.submit(SLOW_GOOD, lab, "slow")
        stopped, _ = kill_busy_dask_worker(executor, sig=signal.SIGSTOP)
        try:
            evaluation = future.result(timeout=90)
            assert evaluation.ok, evaluation.error
        finally:
            with contextlib.suppress(ProcessLookupError):  # the nanny restarts the worker it lost
                os.kill(stopped, signal.SIGKILL)


def test_a_dask_worker_killed_mid_evaluation_costs_at_most_its_candidate(lab, in_process):
    """Killed once: the candidate finishes on another worker; other work goes on, the killed worker's
    sandbox ends, and close() stops everything."""
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    with DaskExecutor(workers=2, limits=LOSS_LIMITS) as executor:
        future = executor.submit(SLOW_GOOD, lab, "slow")
        worker, sandbox = kill_busy_dask_worker(executor)
        other = executor.submit(GOOD, lab, "other")
        evaluation = future.result(timeout=120)
        assert evaluation.ok, evaluation.error  # finished on another worker
        assert other.result(timeout=120).fitness == pytest.approx(in_process.fitness, abs=1e-6)
        assert wait_ended(sandbox)  # the killed worker's sandbox did not run on, orphaned

        # (Killing both attempts end to end -- `worker_lost` after 2 attempts -- passed under load but
        # not reliably on an idle machine: the second kill sometimes misses the retry. The rule itself
        # is tested on SandboxPool in test_sandbox.py.)
        assert executor.submit(GOOD, lab, "after").result(timeout=120).ok  # the nanny restarted it
        started = started_processes(me, before)
    gone, alive = psutil.wait_procs(started, timeout=15)
    assert not alive, [p.cmdline() for p in alive]
