"""Run untrusted candidates in killable worker processes.

`SandboxPool` keeps long-lived workers (`actmine.candidate.worker`), one per core by default, each
single-threaded. A request is the candidate's source text and the lab's configuration; the answer is
the evaluation as plain JSON. The pool enforces, per request:

- a wall-clock timeout: a worker that does not answer in time is killed and replaced;
- a CPU-time limit (RLIMIT_CPU, set by the worker before each request) and an address-space limit
  (RLIMIT_AS): a worker that exceeds them dies or reports `memory_limit`, and is replaced;
- a fresh worker after `max_tasks_per_worker` requests (default 200), to bound leaks;
- an answer of at most MAX_ANSWER_BYTES: a worker that writes a longer line is killed
  (`answer_too_large`) before the parent holds more of it.

A worker lost for a reason none of those limits explains — SIGKILLed from outside (an operator, the
system's out-of-memory killer), crashed, or gone — costs at most the candidate it held: the
candidate is tried once more on a fresh worker (`LOSS_RETRIES`), and if that worker is lost too
it fails with the second loss's code (`worker_lost` for a SIGKILL). A candidate that kills its own
worker every time is therefore run at most twice, and keeps its own code: a limit's code
(`LIMIT_CODES`) is never retried, since the limit fired because of what the candidate did.

A worker starts with a scrubbed environment (an allow-list: no API keys or other secrets), its own
temporary working directory (deleted with it) and, where the kernel permits, no network. The
caller never hangs and never sees an exception from a candidate: every outcome is an `Evaluation`,
refused ones with a reason code and the stage that refused them.
"""

from __future__ import annotations

import json
import os
import queue
import selectors
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Collection

from ..lab.fitness import Evaluation, Lab
from ..scratch import WORKER_PREFIX, ScratchDirectory

# Environment variables a worker may inherit: locale, and the numeric libraries' settings (on some
# processors OPENBLAS_CORETYPE is needed for correct results). Everything else — API keys above
# all — stays in the parent.
ENV_ALLOW = (
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "MKL_DEBUG_CPU_TYPE",
    "ATEN_CPU_CAPABILITY",
)
# Without these, glibc returns freed tensor memory to the system and faults it back in at every
# step; small-tensor training then runs measurably slower.
WORKER_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MALLOC_TRIM_THRESHOLD_": str(256 * 1024 * 1024),
    "MALLOC_MMAP_THRESHOLD_": str(64 * 1024 * 1024),
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONNOUSERSITE": "1",
    "PYTHONHASHSEED": "0",
}

# The longest answer line the parent reads from a worker. A real evaluation is a few tens of KB
# (its error message is capped at probes.MESSAGE_LIMIT characters in the worker).
MAX_ANSWER_BYTES = 1 << 20
ANSWER_GRACE_S = 1.0  # past the deadline, how long the rest of an answer that has begun may take


@dataclass(frozen=True)
class SandboxLimits:
    """Per-request limits of a worker (configuration only)."""

    timeout_s: float = 300.0  # wall clock for one evaluation, start to answer
    cpu_s: float = 300.0  # CPU seconds for one evaluation
    memory_mb: int = 4096  # address space of a worker (torch alone maps ~1 GB)
    max_tasks_per_worker: int = 200  # then the worker is replaced (a fresh one costs ~2 s: docs/lab.md)
    start_timeout_s: float = 120.0  # for a new worker to import torch and say hello

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"sandbox limit {name!r} must be positive, got {value!r}")


# Losses that a limit of the candidate's request explains (the candidate's own doing): never retried.
LIMIT_CODES = frozenset({"timeout", "cpu_limit", "answer_too_large"})
# How many times a candidate is tried again after losing its worker to anything else.
LOSS_RETRIES = 1


class WorkerLost(Exception):
    """The worker died or was killed before answering; `code` says why."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def worker_environment(temporary: str, limits: SandboxLimits) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ENV_ALLOW}
    env.update(WORKER_ENV)
    env.update(
        {
            "HOME": temporary,
            "TMPDIR": temporary,
            "ACTMINE_PARENT_PID": str(os.getpid()),
            "ACTMINE_WORKER_LIMITS": json.dumps({"memory_mb": limits.memory_mb}),
        }
    )
    # The worker must import actmine exactly as this process does (a source checkout or an install).
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = package_root
    return env


class _Worker:
    """One worker process and its pipes."""

    def __init__(self, limits: SandboxLimits):
        self.limits = limits
        self.scratch = ScratchDirectory(WORKER_PREFIX)  # swept by a later pool if we are killed
        self.directory = self.scratch.path
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "actmine.candidate.worker"],
                cwd=self.directory,
                env=worker_environment(self.directory, limits),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                pass_fds=(self.scratch.lock_fd,),  # the directory's lock lives as long as the worker too
            )
        except BaseException:
            self.scratch.remove()
            raise
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.process.stdout, selectors.EVENT_READ)
        self.buffer = b""
        self.tasks = 0
        try:
            self.hello = self._read_message(limits.start_timeout_s)
        except WorkerLost as lost:
            self.kill()
            if lost.code == "timeout":  # a slow start is the machine's doing, never the candidate's
                raise WorkerLost(
                    "worker_start_timeout",
                    f"a new worker did not start within {limits.start_timeout_s:g} s (a busy machine? "
                    "raise sandbox.start_timeout_s)",
                ) from None
            raise

    def _read_message(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining > 0:
                if not self.selector.select(remaining):
                    continue
            elif not self.selector.select(ANSWER_GRACE_S if self.buffer else 0.0):
                # Past the deadline an answer already on its way is still read: this process may have
                # been stopped (Ctrl-Z, SIGSTOP) while the worker, in a session of its own, answered.
                self.kill()
                raise WorkerLost(
                    "timeout",
                    f"no answer within {timeout:g} s of wall-clock time; the worker was "
                    "killed (raise sandbox.timeout_s for slow candidates)",
                )
            chunk = os.read(self.process.stdout.fileno(), 1 << 16)
            if not chunk:
                self.process.wait()
                raise WorkerLost(*self._death_reason())
            self.buffer += chunk
            if b"\n" not in self.buffer and len(self.buffer) > MAX_ANSWER_BYTES:
                self.kill()
                raise WorkerLost(
                    "answer_too_large", f"the worker's answer exceeded {MAX_ANSWER_BYTES} bytes; the worker was killed"
                )
        line, self.buffer = self.buffer.split(b"\n", 1)
        if len(line) > MAX_ANSWER_BYTES:
            self.kill()
            raise WorkerLost(
                "answer_too_large", f"the worker's answer exceeded {MAX_ANSWER_BYTES} bytes; the worker was killed"
            )
        try:
            message = json.loads(line)
        except ValueError as exc:  # not JSON: the worker is broken, whatever it was running
            self.kill()
            raise WorkerLost(
                "bad_worker_answer", f"the worker's answer was not JSON ({exc}); the worker was killed"
            ) from None
        if not isinstance(message, dict):
            self.kill()
            raise WorkerLost("bad_worker_answer", "the worker's answer was not a JSON object; the worker was killed")
        return message

    def _death_reason(self) -> tuple[str, str]:
        status = self.process.returncode
        if status is not None and status < 0:
            sig = signal.Signals(-status)
            if sig == signal.SIGXCPU:
                return "cpu_limit", f"the candidate used more than {self.limits.cpu_s:g} s of CPU time"
            if sig == signal.SIGKILL:  # a candidate cannot send signals: this came from outside
                return "worker_lost", (
                    "the worker was killed from outside (SIGKILL: an operator or the system's out-of-memory killer)"
                )
            if sig == signal.SIGSEGV:
                return "worker_crashed", "the worker crashed (SIGSEGV; e.g. a C-level stack overflow)"
            return "worker_died", f"the worker died from signal {sig.name}"
        return "worker_died", f"the worker exited with status {status} before answering"

    def request(self, payload: dict) -> dict:
        self.tasks += 1
        try:
            self.process.stdin.write((json.dumps(payload) + "\n").encode())
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            self.process.wait()
            raise WorkerLost(*self._death_reason()) from None
        return self._read_message(self.limits.timeout_s)

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)  # the worker and anything it started
            except ProcessLookupError:
                pass
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self.selector.close()
        self.scratch.remove()


#: local workers (sandboxed evaluations, transfer jobs) per core at most: each is a process of its
#: own with up to its memory limit; `workers: 100000` would have started one per evaluation in flight
MAX_WORKERS_PER_CORE = 4


def check_local_workers(workers: int | None, what: str = "workers") -> None:
    """Refuse (`ValueError`, saying why and what to do) more local worker processes than
    `MAX_WORKERS_PER_CORE` per core of this machine."""
    most = MAX_WORKERS_PER_CORE * (os.cpu_count() or 1)
    if workers is not None and workers > most:
        raise ValueError(
            f"{what} {workers:,} is more than {MAX_WORKERS_PER_CORE} per core of this machine (at most "
            f"{most} here): each is a process of its own, with up to its memory limit; use the dask "
            "executor to spread work over machines"
        )


class SandboxPool:
    """Evaluate candidate programs in sandboxed worker processes.

    Configuration only at construction; workers start on first use (or `start()`), and are shared
    by every lab configuration. Thread-safe: `evaluate` blocks the calling thread, `submit` returns
    a Future; at most `workers` evaluations run at once.
    """

    def __init__(self, workers: int | None = None, limits: SandboxLimits | None = None):
        check_local_workers(workers)
        self.workers = workers or os.cpu_count() or 1
        self.limits = limits or SandboxLimits()
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._slots = threading.BoundedSemaphore(self.workers)
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._next_id = 0
        self._started = 0
        self._busy: dict[_Worker, str] = {}
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> "SandboxPool":
        """Start every worker now (in parallel), rather than on first use."""
        with ThreadPoolExecutor(self.workers) as starter:
            for worker in starter.map(lambda _: self._spawn(), range(self.workers)):
                self._idle.put(worker)
        return self

    def _spawn(self) -> _Worker:
        worker = _Worker(self.limits)
        with self._lock:
            closed = self._closed
            if not closed:
                self._all.add(worker)
                self._started += 1
        if closed:  # `close` ran while this one started: it must not outlive the pool
            worker.kill()
            raise WorkerLost("worker_lost", "the sandbox pool was closed")
        return worker

    def _retire(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._all.discard(worker)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            workers = list(self._all)
        for worker in workers:
            self._retire(worker)

    def __enter__(self) -> "SandboxPool":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def worker_pids(self) -> list[int]:
        with self._lock:
            return sorted(w.process.pid for w in self._all)

    def busy_workers(self) -> dict[int, str]:
        """The workers evaluating a candidate now (its request sent, no answer yet): pid → candidate name."""
        with self._lock:
            return {w.process.pid: name for w, name in self._busy.items()}

    @property
    def started_workers(self) -> int:
        """How many worker processes this pool has started (replacements included)."""
        with self._lock:
            return self._started

    @property
    def network_isolated(self) -> bool | None:
        """Whether the workers run without network (None before any started)."""
        with self._lock:
            workers = list(self._all)
        return workers[0].hello.get("network_isolated") if workers else None

    # -- evaluation ------------------------------------------------------------------------
    def evaluate(
        self,
        source: str,
        lab: Lab,
        name: str = "candidate",
        skip_fingerprints: Collection[str] = (),
        retries: int = LOSS_RETRIES,
    ) -> Evaluation:
        """Evaluate one program through the whole cascade in a worker; never raises for the candidate.

        `skip_fingerprints`: functions already evaluated; a candidate computing one of them stops
        after the probes with code `duplicate` (see `Lab.evaluate`). `retries`: how many times the
        candidate is tried again, each time on a fresh worker, after losing its worker to a cause
        that is not one of its limits (`LIMIT_CODES`); a caller that already retried it elsewhere
        (a Dask worker lost mid-evaluation) passes 0.
        """
        if self._closed:
            raise RuntimeError("the sandbox pool is closed")
        payload = {
            "source": source,
            "name": name,
            "lab": lab.to_spec(),
            "cpu_seconds": self.limits.cpu_s,
            "skip_fingerprints": sorted(skip_fingerprints),
            "reference": {"id_error": lab.reference.id_error.tolist(), "ood_error": lab.reference.ood_error.tolist()},
        }
        started = time.perf_counter()
        losses: list[WorkerLost] = []
        with self._slots:
            while True:
                try:
                    # After a loss, a fresh worker: one that ran nothing yet gives the candidate's
                    # second attempt nothing to blame but the candidate.
                    worker, answer = self._request(payload, name, fresh=bool(losses))
                    break
                except WorkerLost as lost:
                    losses.append(lost)
                    if lost.code in LIMIT_CODES or len(losses) > retries or self._closed:
                        evaluation = Evaluation(activation=name, ok=False, workload=lab.workload_summary())
                        evaluation.fail("sandbox", lost.code, _loss_message(losses))
                        evaluation.seconds = round(time.perf_counter() - started, 4)
                        return evaluation
            try:
                evaluation = Evaluation.from_dict(answer["evaluation"])
                if answer.get("id") != payload["id"]:
                    raise ValueError("answer to another request")
            except (KeyError, TypeError, ValueError) as exc:
                self._retire(worker)
                evaluation = Evaluation(activation=name, ok=False, workload=lab.workload_summary())
                return evaluation.fail("sandbox", "bad_worker_answer", f"the worker's answer was malformed: {exc}")
            if answer.get("recycle") or worker.tasks >= self.limits.max_tasks_per_worker or self._closed:
                self._retire(worker)
            else:
                self._idle.put(worker)
            return evaluation

    def _request(self, payload: dict, name: str, fresh: bool) -> tuple[_Worker, dict]:
        """Send one request to an idle worker (a new one if `fresh` or none is idle); its answer.

        Raises WorkerLost, having retired the worker, when the worker is lost before answering.
        """
        with self._lock:  # a new id per attempt: an answer can only match the attempt that asked
            self._next_id += 1
            payload["id"] = self._next_id
        worker = None
        if not fresh:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                pass
            if worker is not None and not worker.alive():  # died while idle: it held no candidate
                self._retire(worker)
                worker = None
        if worker is None:
            worker = self._spawn()
        with self._lock:
            self._busy[worker] = name
        try:
            return worker, worker.request(payload)
        except WorkerLost:
            self._retire(worker)
            raise
        except Exception as exc:  # the pipes closed under us (the pool closing), an OS error: a lost worker
            self._retire(worker)
            raise WorkerLost("worker_died", f"the worker was lost ({type(exc).__name__}: {exc})") from None
        finally:
            with self._lock:
                self._busy.pop(worker, None)

    def submit(
        self,
        source: str,
        lab: Lab,
        name: str = "candidate",
        skip_fingerprints: Collection[str] = (),
        retries: int = LOSS_RETRIES,
    ) -> Future:
        """`evaluate` on a background thread; the Future's result is the Evaluation."""
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="actmine-sandbox")
        lab.reference  # computed once, here, before the threads need it
        return self._executor.submit(self.evaluate, source, lab, name, skip_fingerprints, retries)


def _loss_message(losses: list[WorkerLost]) -> str:
    """Why a candidate failed after losing its worker(s): the last loss, and the earlier ones."""
    last = str(losses[-1])
    if len(losses) == 1:
        return last
    earlier = "; ".join(f"{lost} ({lost.code})" for lost in losses[:-1])
    return f"{last}, on the candidate's retry on a fresh worker; before that: {earlier}"
