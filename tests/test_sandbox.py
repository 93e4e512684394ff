"""Hostile and broken candidates: every one refused with its reason, the pool survives, nothing leaks.

The corpus lives in tests/candidates/: each file starts with `# expect: CODE` (or `CODE|CODE`
where the kernel decides which limit fires first; `ok` for a candidate that must evaluate).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from actmine import activations
from actmine.candidate import worker as worker_module
from actmine.candidate.probes import MESSAGE_LIMIT
from actmine.candidate.sandbox import (
    MAX_ANSWER_BYTES,
    SandboxLimits,
    SandboxPool,
    WorkerLost,
    _Worker,
    worker_environment,
)
from actmine.lab.ensemble import TrainingProtocol
from actmine.lab.fitness import Lab
from actmine.lab.tasks import Suite, feynman, polynomial
from actmine.scratch import WORKER_PREFIX, ScratchDirectory
from worker_loss import LOSS_LIMITS, SLOW_GOOD, wait_ended

CORPUS = Path(__file__).parent / "candidates"
LIMITS = SandboxLimits(timeout_s=20, cpu_s=6, memory_mb=3072, max_tasks_per_worker=20)


def expected_codes(path: Path) -> set[str]:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} lacks its '# expect:' header"
    return set(first.removeprefix("# expect: ").split("|"))


@pytest.fixture(scope="module")
def small_lab(tmp_path_factory):
    suite = Suite("sandbox-test", (polynomial(dim=1, seed=0), feynman("I.14.3")), (0,))
    return Lab(
        suite, protocol=TrainingProtocol(steps=20, n_train=256, n_eval=128), cache_dir=tmp_path_factory.mktemp("cache")
    )


@pytest.fixture(scope="module")
def pool():
    with SandboxPool(workers=2, limits=LIMITS) as pool:
        yield pool.start()


def torch_state():
    return (
        torch.get_num_threads(),
        torch.get_default_dtype(),
        torch.is_grad_enabled(),
        torch.random.get_rng_state().clone(),
    )


def test_corpus_is_large_and_covers_the_reason_codes():
    files = sorted(CORPUS.glob("*.py"))
    assert len(files) >= 30
    codes = set().union(*(expected_codes(f) for f in files))
    assert {
        "import",
        "dunder",
        "forbidden_builtin",
        "torch_forbidden",
        "module_alias",
        "attribute_assignment",
        "unbounded_loop",
        "forbidden_statement",
        "missing_function",
        "syntax_error",
        "too_long",
        "timeout",
        "memory_limit",
        "runtime_error",
        "bad_shape",
        "bad_output",
        "non_finite",
        "batch_dependent",
        "over_flop_budget",
        "modifies_input",
        "inconsistent_function",
    } <= codes


def test_pool_survives_the_whole_corpus_then_evaluates_a_good_candidate(pool, small_lab, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a candidate that escaped would write here or in the worker's directory
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-canary")
    # torch sets a few variables of its own on first use (TORCHINDUCTOR_CACHE_DIR): let it, first
    reference = small_lab.evaluate(activations.get("gelu_sine"), name="gelu_sine")
    environment_before = dict(os.environ)
    state_before = torch_state()

    futures = {
        path: (time.monotonic(), pool.submit(path.read_text(), small_lab, path.name))
        for path in sorted(CORPUS.glob("*.py"))
    }
    failures = []
    for path, (started, future) in futures.items():
        evaluation = future.result(timeout=300)  # the caller never hangs
        code = "ok" if evaluation.ok else evaluation.error["code"]
        if code not in expected_codes(path):
            failures.append(f"{path.name}: expected {expected_codes(path)}, got {code}: {evaluation.error}")
        if not evaluation.ok:
            assert evaluation.error["message"] and evaluation.error["stage"] == evaluation.stage
            assert len(evaluation.error["message"]) < MESSAGE_LIMIT + 80  # huge_exception_message.py
    assert not failures, "\n".join(failures)

    # no side effect observable in this process
    assert list(tmp_path.iterdir()) == []
    assert dict(os.environ) == environment_before
    after = torch_state()
    assert after[:3] == state_before[:3] and torch.equal(after[3], state_before[3])

    # and the pool still evaluates a good candidate, with the registry function's numbers
    good = pool.evaluate(
        "def activation_function(x):\n    return F.gelu(x, approximate='tanh') + 0.1 * torch.sin(x)\n",
        small_lab,
        "gelu_sine.py",
    )
    assert good.ok and reference.ok
    assert good.fitness == pytest.approx(reference.fitness, abs=1e-6)
    assert [t.ood_error for t in good.tasks] == pytest.approx([t.ood_error for t in reference.tasks], rel=1e-5)
    assert good.stage == "done" and set(good.timings) == {"policy", "probes", "screen", "train"}


def test_timeouts_are_enforced_within_their_limit(small_lab):
    limits = SandboxLimits(timeout_s=3, cpu_s=100, memory_mb=3072)
    with SandboxPool(workers=1, limits=limits) as pool:
        pool.start()
        started = time.monotonic()
        evaluation = pool.evaluate((CORPUS / "busy_loop.py").read_text(), small_lab, "busy")
        assert evaluation.error["code"] == "timeout" and evaluation.stage == "sandbox"
        assert time.monotonic() - started < 3 + 5
        assert pool.evaluate("def activation_function(x):\n    return torch.relu(x)\n", small_lab).ok


def test_cpu_limit_kills_the_worker_and_it_is_replaced(small_lab):
    limits = SandboxLimits(timeout_s=60, cpu_s=2, memory_mb=3072)
    with SandboxPool(workers=1, limits=limits) as pool:
        evaluation = pool.evaluate((CORPUS / "busy_loop.py").read_text(), small_lab, "busy")
        assert evaluation.error["code"] == "cpu_limit"
        assert pool.evaluate("def activation_function(x):\n    return torch.tanh(x)\n", small_lab).ok


def test_workers_are_recycled_after_n_tasks(small_lab):
    limits = SandboxLimits(timeout_s=60, cpu_s=60, memory_mb=3072, max_tasks_per_worker=2)
    with SandboxPool(workers=1, limits=limits) as pool:
        pids = []
        for _ in range(3):
            assert pool.evaluate("def activation_function(x):\n    return torch.relu(x)\n", small_lab).ok
            pids.append(pool.worker_pids())
        assert len(pids[0]) == 1 and pids[1] == []  # retired right after its second request...
        assert len(pids[2]) == 1 and pids[2] != pids[0]  # ...and a fresh worker took the third


def test_worker_environment_has_no_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    env = worker_environment(str(tmp_path), LIMITS)
    assert "OPENAI_API_KEY" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    assert env["HOME"] == str(tmp_path) and env["OMP_NUM_THREADS"] == "1"


def test_worker_has_no_network_where_the_kernel_allows(tmp_path):
    """The isolation itself, checked in a child: after it, even loopback is unreachable."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    script = (
        f"from actmine.candidate.worker import isolate_network\n"
        f"import socket\nisolated = isolate_network()\n"
        f"try:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2); reached = True\n"
        f"except OSError:\n    reached = False\nprint(isolated, reached)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    server.close()
    isolated, reached = done.stdout.split()
    if isolated == "False":
        pytest.skip("this kernel does not allow network namespaces; the static policy is the barrier")
    assert reached == "False"


@pytest.mark.skipif(not Path("/proc/self/ns/net").exists(), reason="network namespaces are read from Linux's /proc")
def test_pool_reports_the_isolation_its_workers_really_have(pool):
    """`network_isolated` says what the kernel did: True exactly when the workers live in another
    network namespace than this process (read from /proc, independently of the workers' own report)."""
    own = os.readlink("/proc/self/ns/net")
    worker_namespaces = [os.readlink(f"/proc/{pid}/ns/net") for pid in pool.worker_pids()]
    assert worker_namespaces, "the started pool has workers"
    assert pool.network_isolated is all(namespace != own for namespace in worker_namespaces)


@pytest.mark.parametrize("name", ["import_os.py", "torch_memory_bomb.py", "wrong_shape.py"])
def test_cli_refuses_corpus_files_with_json_and_non_zero_exit(tmp_path, name):
    suite = tmp_path / "s.yaml"
    suite.write_text("seeds: [0]\ntasks:\n  - {family: polynomial, dim: 1, seed: 0}\n")
    exe = Path(sys.executable).with_name("actmine")
    env = {**os.environ, "ACTMINE_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run(
        [
            str(exe),
            "evaluate",
            str(CORPUS / name),
            "--json",
            "--suite",
            str(suite),
            "--memory-mb",
            "3072",
            "--timeout",
            "30",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    data = json.loads(done.stdout)
    assert done.returncode == 1 and data["ok"] is False
    assert data["error"]["code"] in expected_codes(CORPUS / name) and data["error"]["stage"]


def test_the_parent_reads_no_more_than_max_answer_bytes_from_a_worker(tmp_path):
    """A process that writes a line far longer than any answer (no newline) is killed, not buffered."""
    worker = object.__new__(_Worker)  # the real reader, on a process that floods its pipe
    worker.limits, worker.buffer, worker.tasks = LIMITS, b"", 0
    worker.scratch = ScratchDirectory(WORKER_PREFIX)
    worker.directory = worker.scratch.path
    worker.process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import sys\nsys.stdout.write('x' * {4 * MAX_ANSWER_BYTES})\nsys.stdout.flush()\n"
            "import time\ntime.sleep(60)\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    import selectors

    worker.selector = selectors.DefaultSelector()
    worker.selector.register(worker.process.stdout, selectors.EVENT_READ)
    with pytest.raises(WorkerLost) as info:
        worker._read_message(30)
    assert info.value.code == "answer_too_large"
    assert worker.process.returncode is not None  # killed
    assert len(worker.buffer) <= MAX_ANSWER_BYTES + (1 << 16)
    assert not os.path.exists(worker.directory)  # and its directory removed


def test_worker_state_sees_the_global_rng():
    """A candidate cannot reach torch's RNG through the policy; the worker's check is the second wall."""
    outside = worker_module.torch_state()
    with torch.random.fork_rng():
        torch.manual_seed(1234)  # a known start: the tests before may have left any state, seed 0's too
        baseline = worker_module.torch_state()
        torch.rand(3)
        drawn = worker_module.torch_state()
        torch.manual_seed(0)
        reseeded = worker_module.torch_state()
    assert drawn != baseline and reseeded != baseline and drawn["rng"] != reseeded["rng"]
    assert worker_module.torch_state() == outside  # fork_rng restored it
    change = worker_module.state_change(baseline, drawn)
    assert change.startswith("rng: ") and "threads" not in change


def test_the_lab_leaves_torch_global_state_alone(small_lab):
    """The lab's own work (workload, probes, screen, training, scoring) must not trip the worker's check."""
    baseline = worker_module.torch_state()
    fresh = Lab(small_lab.suite, protocol=small_lab.protocol, cache_dir=small_lab.cache_dir)
    assert fresh.evaluate(activations.get("gelu_sine"), name="gelu_sine").ok
    assert worker_module.torch_state() == baseline


# -- losing workers ----------------------------------------------------------------------------------
# A worker killed from outside (SIGKILL: an operator, the out-of-memory killer) costs at most the
# candidate it held: retried once on a fresh worker, then `worker_lost`.

# A good candidate whose evaluation takes a few seconds (a pure-Python loop on every call), so the
# test's SIGKILL, sent as soon as the pool reports the worker busy, lands mid-evaluation.
GOOD = "def activation_function(x):\n    return torch.tanh(x)\n"


def kill_when_busy(pool: SandboxPool, spare: set[int] = frozenset(), timeout_s: float = 120) -> int:
    """SIGKILL the first worker that evaluates a candidate (not one of `spare`); its pid."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        busy = set(pool.busy_workers()) - set(spare)
        if busy:
            pid = busy.pop()
            os.kill(pid, signal.SIGKILL)
            return pid
        time.sleep(0.005)
    raise AssertionError("no worker became busy")


def test_a_worker_killed_mid_evaluation_costs_one_retry(small_lab):
    with SandboxPool(workers=1, limits=LOSS_LIMITS) as pool:
        future = pool.submit(SLOW_GOOD, small_lab, "slow")
        killed = kill_when_busy(pool)
        evaluation = future.result(timeout=120)
        assert evaluation.ok, evaluation.error  # retried on a fresh worker, and scored
        assert pool.started_workers == 2 and killed not in pool.worker_pids()


def test_a_worker_killed_twice_fails_the_candidate_with_worker_lost_and_the_pool_goes_on(small_lab):
    with SandboxPool(workers=1, limits=LOSS_LIMITS) as pool:
        future = pool.submit(SLOW_GOOD, small_lab, "slow")
        first = kill_when_busy(pool)
        second = kill_when_busy(pool, spare={first})
        evaluation = future.result(timeout=120)
        assert not evaluation.ok and evaluation.stage == "sandbox"
        assert evaluation.error["code"] == "worker_lost"
        assert "SIGKILL" in evaluation.error["message"] and "retry on a fresh worker" in evaluation.error["message"]
        assert pool.started_workers == 2  # tried twice, no more
        assert not {first, second} & set(pool.worker_pids())
        assert pool.evaluate(GOOD, small_lab, "next").ok  # the next candidate, on a replacement
        assert pool.started_workers == 3


def test_a_worker_killed_while_idle_costs_nothing(small_lab):
    with SandboxPool(workers=1, limits=LOSS_LIMITS) as pool:
        pool.start()
        (idle,) = pool.worker_pids()
        os.kill(idle, signal.SIGKILL)
        while psutil.Process(idle).status() != psutil.STATUS_ZOMBIE:  # dead, not yet reaped by the pool
            time.sleep(0.01)
        assert pool.evaluate(GOOD, small_lab, "after").ok
        assert pool.started_workers == 2  # the dead one replaced before the request, not after a loss


def test_a_candidate_that_kills_its_own_worker_is_not_retried_and_keeps_its_code(small_lab):
    """A limit's code (memory, CPU) is the candidate's own doing: no retry, not `worker_lost`."""
    limits = SandboxLimits(timeout_s=60, cpu_s=2, memory_mb=3072)
    with SandboxPool(workers=1, limits=limits) as pool:
        for name, codes in (("torch_memory_bomb.py", {"memory_limit"}), ("busy_loop.py", {"cpu_limit"})):
            before = pool.started_workers
            evaluation = pool.evaluate((CORPUS / name).read_text(), small_lab, name)
            assert evaluation.error["code"] in codes, evaluation.error
            assert pool.started_workers - before <= 1  # one worker for it: never a second attempt
        assert pool.evaluate(GOOD, small_lab, "after").ok


@pytest.mark.parametrize("state", ["busy", "idle"])
def test_a_sandbox_worker_ends_when_its_parent_is_killed(small_lab, state):
    """An orphaned worker (its pool's process SIGKILLed mid-evaluation, or while the worker waits for
    a request and so reads EOF at once) does not run on for nobody, and leaves no directory behind."""
    if state == "busy":
        work = (
            f"pool.submit({(CORPUS / 'busy_loop.py').read_text()!r}, lab, 'busy')\n"
            "while not pool.busy_workers():\n    time.sleep(0.01)\n"
            "print(*pool.busy_workers(), flush=True)\n"
        )
    else:
        work = "pool.start()\nprint(*pool.worker_pids(), flush=True)\n"
    script = (
        "import sys, time\nfrom actmine.candidate.sandbox import SandboxLimits, SandboxPool\n"
        "from actmine.lab.ensemble import TrainingProtocol\nfrom actmine.lab.fitness import Lab\n"
        "from actmine.lab.tasks import Suite, feynman, polynomial\n"
        "suite = Suite('sandbox-test', (polynomial(dim=1, seed=0), feynman('I.14.3')), (0,))\n"
        f"lab = Lab(suite, protocol=TrainingProtocol(steps=20, n_train=256, n_eval=128), cache_dir={str(small_lab.cache_dir)!r})\n"
        "pool = SandboxPool(workers=1, limits=SandboxLimits(timeout_s=600, cpu_s=600, memory_mb=3072))\n"
        + work
        + "time.sleep(600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent
    )
    try:
        worker = int(parent.stdout.readline())
        directory = Path(os.readlink(f"/proc/{worker}/cwd"))
        assert directory.name.startswith("actmine-worker-") and directory.is_dir()
        parent.kill()
        parent.wait(timeout=10)
        assert wait_ended(worker)  # its limits would let it run 600 s
        assert not directory.exists()  # nobody else is left to remove its throw-away directory
    finally:
        parent.kill()
        parent.wait()


def _reader_of(tmp_path, code: str) -> _Worker:
    """The real reader of `_Worker` on a process running `code` in a session of its own, as a worker."""
    import selectors

    worker = object.__new__(_Worker)
    worker.limits, worker.buffer, worker.tasks = LIMITS, b"", 0
    worker.scratch = ScratchDirectory(WORKER_PREFIX)
    worker.directory = worker.scratch.path
    worker.process = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True
    )
    worker.selector = selectors.DefaultSelector()
    worker.selector.register(worker.process.stdout, selectors.EVENT_READ)
    return worker


def test_an_answer_waiting_past_the_deadline_is_read_not_a_timeout(tmp_path):
    """The search stopped by Ctrl-Z (SIGSTOP) for longer than the timeout while its worker, in a
    session of its own, answered: after `fg` the answer is in the pipe and the deadline has passed.
    It is the candidate's answer, not a sandbox timeout recorded against a good program."""
    answered = _reader_of(tmp_path, "import sys, time\nprint('{\"id\": 7}', flush=True)\ntime.sleep(60)\n")
    try:
        assert answered.selector.select(30)  # the answer waits in the pipe
        assert answered._read_message(0) == {"id": 7}  # a deadline already past
    finally:
        answered.kill()
    silent = _reader_of(tmp_path, "import time\ntime.sleep(60)\n")
    with pytest.raises(WorkerLost) as info:  # with nothing waiting, the deadline still holds
        silent._read_message(0.2)
    assert info.value.code == "timeout" and silent.process.returncode is not None
