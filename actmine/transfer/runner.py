"""Transfer runs: (activation × benchmark × seed) jobs, executed in child processes, summarised.

A transfer run trains every benchmark's model from scratch once per activation and seed and reports,
per benchmark, the raw score (mean ± sample std over seeds) and the log-ratio against ReLU's:

    log_ratio = mean over seeds of clip(ln(error_act / error_relu), ±3),   error = 1 − score

(paired by seed: the same seed gives the same data order and initial weights; scores outside
[0, 1] use −ln(score_act / score_relu) instead; errors are floored at 1e-6). Negative beats ReLU,
the sign of the lab's `ood_log_ratio`.

The parent (this process) does everything that needs no untrusted code and no training:

1. resolves each activation: a registry name (trusted), or a program: a candidate ``.py`` file or
   an exported pack's entry (``pack.py:name``). A program is read as data
   (`read_candidate_reference`; a pack is never imported), checked with the static policy
   (`check_source`) here, refused before any job starts, and only compiled (`compile_candidate`)
   in the job's child process;
2. resolves each benchmark and its options (checked against the constructor's signature) and calls
   its ``check_data``: a :class:`~actmine.transfer.base.DatasetMissing` stops the run before any
   job starts; and the limits of its jobs (`TransferLimits`, `job_budget`);
3. runs every job in a fresh child process of its own (`run_in_subprocess`): the sandbox's scrubbed
   environment, its own temporary directory, no network where the kernel permits a network
   namespace, an address-space limit (not for CUDA), a CPU-time limit, and a wall-clock timeout
   after which the parent kills the job's process group. Locally ``workers`` jobs run at once
   (one per core, or per GPU with ``device="cuda"``, each pinned to one GPU); on a Dask cluster
   each job is a task whose Dask worker runs the same child process (with ``device="cuda"`` every
   job asks for the worker resource ``GPU=1``);
4. appends each result to ``OUT/results.jsonl`` as it arrives (a rerun with the same ``out``
   skips the jobs already done ok), then writes ``results.json``, ``summary.csv`` and
   ``transfer.png``.

A job never crashes the run: whatever goes wrong in it (an exception, a limit, a dead process, a
lost Dask worker) becomes a failed :class:`TransferResult` with ``error = {code, message}``, and
the other jobs go on. Children answer with JSON lines that the parent validates
(`TransferResult.from_dict`); never pickle.
"""

from __future__ import annotations

import ast
import concurrent.futures
import csv
import importlib
import inspect
import io
import json
import math
import os
import queue
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import _BENCHMARKS, DatasetMissing, UnknownBenchmarkError, list_benchmarks
from .jobs import TransferJob, TransferResult, _printable  # noqa: F401  (defined here before: re-exported)
from .summary import ERROR_FLOOR, LOG_RATIO_CLIP, REFERENCE, log_ratio, summarise

__all__ = [
    "ActivationSpec",
    "DEFAULT_BUDGET",
    "ERROR_FLOOR",
    "JOB_BUDGETS",
    "JobBudget",
    "LOG_RATIO_CLIP",
    "REFERENCE",
    "TransferInputError",
    "TransferJob",
    "TransferLimits",
    "TransferResult",
    "TransferRun",
    "default_data_dir",
    "execute_job",
    "job_budget",
    "log_ratio",
    "parse_options",
    "plot_log_ratios",
    "resolve_activation",
    "results_table",
    "run_in_subprocess",
    "run_transfer",
    "summarise",
]

EXECUTORS = ("local", "dask")
SUMMARY_COLUMNS = ("activation", "benchmark", "metric", "n", "mean", "std", "log_ratio_vs_relu", "log_ratio_std")
# Variables a job's child keeps besides the sandbox's allow-list (`sandbox.worker_environment`):
# the GPU runtime's settings and the data directory. Nothing that carries credentials.
CHILD_ENV_KEEP = ("LD_LIBRARY_PATH", "ACTMINE_DATA_DIR")
CHILD_ENV_PREFIXES = ("CUDA_", "NVIDIA_", "PYTORCH_")


class TransferInputError(ValueError):
    """Bad input to a transfer run (unknown activation or benchmark, bad option, refused candidate
    file, no GPU): raised in the parent before any job starts; the CLI's exit status 2."""


def default_data_dir() -> Path:
    """``$ACTMINE_DATA_DIR``, else ``~/.cache/actmine/data``."""
    return Path(os.environ.get("ACTMINE_DATA_DIR") or Path.home() / ".cache" / "actmine" / "data").expanduser()


# ------------------------------------------------------------------------------------------------
# Jobs and results
# ------------------------------------------------------------------------------------------------

def _failed(job: TransferJob, code: str, message: str, metric: str = "", seconds: float = 0.0,
            sandbox: Mapping[str, Any] | None = None) -> TransferResult:
    return TransferResult(activation=job.activation, benchmark=job.benchmark, seed=job.seed, ok=False,
                          metric=metric, seconds=round(seconds, 3),
                          error={"code": code, "message": _printable(message)},
                          options=dict(job.options), key=job.key, sandbox=dict(sandbox or {}))


# ------------------------------------------------------------------------------------------------
# Limits of a job's process
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class JobBudget:
    """The default limits of one benchmark's jobs (`TransferLimits` with ``None`` uses these).

    Wall clock: ``base_s`` (process start, data loading, evaluation) plus ``seconds_per_unit[device]``
    for each unit of training, ``units(benchmark)`` (an epoch by default; the benchmark instance
    carries its options). Address space: ``memory_mb`` (CPU jobs only: RLIMIT_AS breaks CUDA).
    Upper bounds of real runs, several times what the recipes take, since a limit is there to end
    a hang or a runaway, not to race a slow machine. A benchmark class may carry its own as the
    class attribute ``job_budget``.
    """

    seconds_per_unit: Mapping[str, float]
    memory_mb: int
    base_s: float = 900.0
    units: Callable[[Any], float] = lambda benchmark: float(getattr(benchmark, "epochs", 1) or 1)

    def timeout_s(self, benchmark: Any, device: str) -> float:
        per_unit = self.seconds_per_unit.get(device, max(self.seconds_per_unit.values()))
        return float(round(self.base_s + per_unit * self.units(benchmark)))


def _fraction(benchmark: Any, attribute: str, full: int) -> float:
    """The share of the full training set a ``limit_train``/``max_train`` option keeps."""
    limit = getattr(benchmark, attribute, None)
    return min(1.0, limit / full) if isinstance(limit, int) and limit > 0 else 1.0


# Sizes (docs/transfer.md): digits runs about a second per epoch on one busy core (measured: 12
# epochs in 11 s, 10 s more to start the process and import torch and scikit-learn); the others are
# estimates from their recipes: cifar10 (ResNet-20, 50k images) ~10-20 s per epoch on a GPU and
# minutes per epoch on one core; imagenet (ResNet-50, 1.28M images) ~1-2 h per epoch on one GPU;
# clrs ~7 s per algorithm at its default 300 steps on one core (measured: docs/transfer.md, "CLRS: settings
# and power"; the budget keeps room for the longer algorithms); molhiv (GIN, 33k graphs) about a minute
# per epoch on a GPU. Memory: a job process maps 0.6-1.1 GB before it trains (measured: torch, and
# scikit-learn for digits); CIFAR-10 in memory is 0.7 GB, a CPU ResNet-20 step well under 1 GB;
# ImageNet's loader workers are processes of their own, each with this limit.
JOB_BUDGETS: dict[str, JobBudget] = {
    "digits": JobBudget({"cpu": 10.0, "cuda": 10.0}, memory_mb=4096, base_s=300.0),
    "cifar10": JobBudget({"cpu": 3600.0, "cuda": 300.0}, memory_mb=16384,
                         units=lambda b: b.epochs * _fraction(b, "limit_train", 50_000)),
    "imagenet": JobBudget({"cpu": 7 * 86400.0, "cuda": 6 * 3600.0}, memory_mb=65536, base_s=3600.0,
                          units=lambda b: b.epochs * _fraction(b, "limit_train", 1_281_167)),
    "clrs": JobBudget({"cpu": 3600.0, "cuda": 1800.0}, memory_mb=16384,
                      units=lambda b: len(b.algorithms) * b.train_steps / 300),
    "molhiv": JobBudget({"cpu": 1800.0, "cuda": 300.0}, memory_mb=16384,
                        units=lambda b: b.epochs * _fraction(b, "max_train", 32_901)),
}
# A benchmark registered elsewhere, without a ``job_budget``: an hour per epoch.
DEFAULT_BUDGET = JobBudget({"cpu": 3600.0, "cuda": 3600.0}, memory_mb=16384)


def job_budget(benchmark: Any, name: str) -> JobBudget:
    """The benchmark's own ``job_budget``, the built-in one for its name, else `DEFAULT_BUDGET`."""
    own = getattr(benchmark, "job_budget", None)
    return own if isinstance(own, JobBudget) else JOB_BUDGETS.get(name, DEFAULT_BUDGET)


@dataclass(frozen=True)
class TransferLimits:
    """Limits of every job's process (configuration only); ``None``: the benchmark's default
    (`job_budget`), ``0``: no limit.

    Attributes:
        timeout_s: wall clock of one job, start to answer; the parent kills the job's process group.
        cpu_s: CPU seconds of the job's process (RLIMIT_CPU; SIGXCPU ends it). Default: the
            timeout times the threads the job may use (1 on CPU; the cores with ``cuda``).
        memory_mb: address space of the job's process (RLIMIT_AS). Never applied to ``cuda``
            jobs: CUDA maps far more virtual memory than it uses and fails under RLIMIT_AS.

    The job's process also leaves the network (a network namespace, where the kernel permits one)
    and gets the sandbox's scrubbed environment and its own temporary directory: these are not
    configurable.
    """

    timeout_s: float | None = None
    cpu_s: float | None = None
    memory_mb: int | None = None

    def __post_init__(self) -> None:
        for name in ("timeout_s", "cpu_s", "memory_mb"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value) or value < 0):
                raise TransferInputError(f"the job limit {name} must be a number ≥ 0 (0: no limit), got {value!r}")

    def resolve(self, benchmark: Any, name: str, device: str) -> dict[str, Any]:
        """``{timeout_s, cpu_s, memory_mb}`` for the jobs of ``benchmark`` (an instance, with its
        options) on ``device``; ``None`` where there is no limit."""
        budget = job_budget(benchmark, name)
        timeout = budget.timeout_s(benchmark, device) if self.timeout_s is None else (self.timeout_s or None)
        threads = 1 if device == "cpu" else (os.cpu_count() or 1)
        cpu = (timeout * threads if timeout else None) if self.cpu_s is None else (self.cpu_s or None)
        memory = budget.memory_mb if self.memory_mb is None else (int(self.memory_mb) or None)
        return {"timeout_s": timeout, "cpu_s": cpu, "memory_mb": None if device == "cuda" else memory}


# ------------------------------------------------------------------------------------------------
# In the child process
# ------------------------------------------------------------------------------------------------

def _import_object(path: str) -> Any:
    module, _, qualname = path.partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _benchmark_class(job: TransferJob) -> type:
    if job.benchmark_class:
        return _import_object(job.benchmark_class)
    key = job.benchmark.strip().lower()
    if key not in _BENCHMARKS:
        list_benchmarks()
    if key not in _BENCHMARKS:
        raise UnknownBenchmarkError(f"unknown benchmark {job.benchmark!r} in this process")
    return _BENCHMARKS[key]


class _CandidateFailure(Exception):
    pass


def _activation_factory(job: TransferJob) -> Callable[[], Any]:
    import torch

    import actmine.activations as activations
    from ..candidate.probes import exception_code
    from ..candidate.source import CandidateError, compile_candidate
    from ..language.files import split_program_reference

    if job.source is not None:
        try:
            function = compile_candidate(job.source, f"{job.activation}.py")
        except CandidateError as exc:
            raise _CandidateFailure(f"[{exc.code}] {exc}") from None

        def make() -> torch.nn.Module:
            return activations.ActivationFromCallable(function)
    else:
        reference = job.reference or job.activation
        if split_program_reference(reference) is not None:  # programs travel as source, checked
            raise _CandidateFailure(f"{reference!r} names a program file: give it as the job's source")

        def make() -> torch.nn.Module:
            return activations.get(reference)

    # One look before the benchmark builds a model: a clear message rather than a shape error deep
    # inside a network.
    probe = torch.linspace(-3.0, 3.0, 13).reshape(1, 13)
    try:
        with torch.no_grad():
            out = make()(probe)
    except Exception as exc:
        if exception_code(exc) == "memory_limit":
            raise  # the job's limit, reported as such by execute_job
        raise _CandidateFailure(f"the activation raised on a test input: {type(exc).__name__}: {exc}") from None
    if not isinstance(out, torch.Tensor) or out.shape != probe.shape:
        got = f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
        raise _CandidateFailure(f"the activation must return a tensor of its input's shape, got {got}")
    return make


def _jsonable(value: Any) -> Any:
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return item()
        except (ValueError, RuntimeError):
            pass
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    return str(value)


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (results are strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _memory_limit_note() -> str:
    """Where the job's memory ended: its address-space limit (RLIMIT_AS), when it has one."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return ""
    return f" (its address-space limit is {soft // (1024 * 1024)} MB; raise it with --memory-mb, 0 for none)"


def execute_job(job: TransferJob | Mapping[str, Any], data_dir: str | Path, device: str) -> dict[str, Any]:
    """Run one job in this process and return its result as plain data; never raises for the job.

    Runs untrusted candidate code: called in a job's child process, not in the parent.
    """
    import random

    import numpy as np
    import torch

    from ..candidate.probes import exception_code

    if not isinstance(job, TransferJob):
        job = TransferJob.from_dict(job)
    started = time.perf_counter()
    metric = ""

    def elapsed() -> float:
        return time.perf_counter() - started

    try:
        cls = _benchmark_class(job)
        metric = str(getattr(cls, "metric", "") or "")
        benchmark = cls(**job.options)
        make_activation = _activation_factory(job)
        random.seed(job.seed)
        np.random.seed(job.seed % 2**32)
        torch.manual_seed(job.seed)
        score = benchmark.run(make_activation, job.seed, Path(data_dir), device)
    except _CandidateFailure as exc:
        return _failed(job, "candidate", str(exc), metric, elapsed()).to_dict()
    except DatasetMissing as exc:
        return _failed(job, "dataset_missing", str(exc), metric, elapsed()).to_dict()
    except (Exception, SystemExit) as exc:  # the job fails, the run goes on
        if exception_code(exc) == "memory_limit":
            return _failed(job, "memory_limit", f"the job ran out of memory{_memory_limit_note()}: "
                                                f"{type(exc).__name__}: {exc}", metric, elapsed()).to_dict()
        return _failed(job, "job_error", f"{type(exc).__name__}: {exc}", metric, elapsed()).to_dict()
    value = getattr(score, "score", None)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return _failed(job, "bad_answer", f"{type(benchmark).__name__}.run returned {score!r}, not a "
                                          "BenchmarkScore", metric, elapsed()).to_dict()
    metric = str(getattr(score, "metric", "") or metric)
    if not math.isfinite(value):
        return _failed(job, "non_finite", f"the {metric or 'score'} is {value}", metric, elapsed()).to_dict()
    details = _finite(json.loads(json.dumps(getattr(score, "details", None) or {}, default=_jsonable)))
    return TransferResult(activation=job.activation, benchmark=job.benchmark, seed=job.seed, ok=True, score=value,
                          metric=metric, details=details, seconds=round(elapsed(), 3), options=dict(job.options),
                          key=job.key).to_dict()


def _child_environment(home: str) -> dict[str, str]:
    """The sandbox's scrubbed environment (allow-list, HOME/TMPDIR in a scratch directory) plus
    the GPU runtime's variables; PYTHONPATH keeps what this process had."""
    from ..candidate.sandbox import SandboxLimits, worker_environment

    env = worker_environment(home, SandboxLimits())
    env.pop("ACTMINE_WORKER_LIMITS", None)
    env.update({k: v for k, v in os.environ.items() if k in CHILD_ENV_KEEP or k.startswith(CHILD_ENV_PREFIXES)})
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], os.environ["PYTHONPATH"]])
    return env


# The job process's first statements, run before torch is imported, while the process is still
# single-threaded (unshare(CLONE_NEWUSER) refuses a threaded process): leave the network, cap the
# address space and the CPU time with the lab's worker's own functions, then run `_job_main`.
# argv[1] is the limits as JSON: {"memory_mb": N or null, "cpu_s": S or null}.
_CHILD_BOOTSTRAP = """\
import json, sys
from actmine.candidate.worker import isolate_network, limit_resources, set_cpu_budget
limits = json.loads(sys.argv[1])
isolated = isolate_network()
limit_resources(int(limits.get("memory_mb") or 0))
if limits.get("cpu_s"):
    set_cpu_budget(float(limits["cpu_s"]))
from actmine.transfer.runner import _job_main
_job_main(isolated, limits)
"""


def _job_main(network_isolated: bool = False, limits: Mapping[str, Any] | None = None) -> None:
    """A job process started by `run_in_subprocess` (after `_CHILD_BOOTSTRAP`).

    Protocol, JSON lines on the process's original stdout: first ``{"hello": true, "pid",
    "network_isolated", "memory_mb", "cpu_s"}`` (how this process is confined, as the lab's worker
    says in its hello), then, after one request line on stdin (``{"job", "data_dir", "device",
    "threads"}``), the job's result. Prints of the job go to stderr. The process ends when stdin
    closes (whoever started it is gone: nobody would read the answer).
    """
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # the job's own prints go to stderr
    sys.stdout = sys.stderr
    limits = dict(limits or {})
    protocol.write(json.dumps({"hello": True, "pid": os.getpid(), "network_isolated": bool(network_isolated),
                               "memory_mb": limits.get("memory_mb") or None,
                               "cpu_s": limits.get("cpu_s") or None}) + "\n")
    protocol.flush()
    request = json.loads(sys.stdin.readline())

    def watch() -> None:
        sys.stdin.read()
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
    import torch

    torch.set_num_threads(max(1, int(request["threads"])))
    answer = json.dumps(execute_job(request["job"], request["data_dir"], request["device"]), allow_nan=False,
                        default=str)
    protocol.write(answer + "\n")
    protocol.flush()
    sys.stderr.flush()
    # Now, without the interpreter's shutdown: nothing is left to do, and a shutdown could wait on
    # `watch`'s read of stdin (or on threads the job left behind).
    os._exit(0)


MAX_ANSWER_BYTES = 16 * 1024 * 1024  # a job's answer is a few KB; more is a misbehaving process


def _end_process_group(process: Any) -> None:
    """Kill whatever is left of the job's process group (its DataLoader workers, anything it
    started), then reap the job's process.

    The group is killed while its leader is not yet reaped (alive, or a zombie), so its id cannot
    have been reused by an unrelated process.
    """
    import signal

    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def _exited(process: Any) -> bool:
    """Whether the process has ended, without reaping it (its pid, and so its group id, stay ours)."""
    try:
        return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _read_answer(process: Any, deadline: float | None,
                 cancelled: threading.Event | None) -> tuple[bytes, str | None]:
    """Everything the process writes to stdout until it ends; and why we stopped it, if we did:
    ``timeout`` (past ``deadline``), ``cancelled`` (``cancelled`` was set) or ``too_long``."""
    import selectors

    chunks, size, stop = [], 0, None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while True:
            wait = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if cancelled is not None and cancelled.is_set():
                stop = "cancelled"
            elif wait <= 0:
                stop = "timeout"
            if stop:
                break
            if not selector.select(wait):
                continue
            chunk = os.read(process.stdout.fileno(), 1 << 16)
            if not chunk:
                break  # EOF: the process closed stdout (it is ending)
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                stop = "too_long"
                break
    while stop is None and not _exited(process):  # stdout closed; the process is on its way out
        if cancelled is not None and cancelled.is_set():
            stop = "cancelled"
        elif deadline is not None and time.monotonic() >= deadline:
            stop = "timeout"
        else:
            time.sleep(0.05)
    return b"".join(chunks), stop


def _sandbox_report(hello: Mapping[str, Any], limits: Mapping[str, Any]) -> dict[str, Any]:
    """``TransferResult.sandbox``: what the job's process said it applied, and the parent's timeout."""
    number = lambda v: v if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else None  # noqa: E731
    isolated = hello.get("network_isolated")
    return {"network_isolated": isolated if isinstance(isolated, bool) else None,
            "timeout_s": number(limits.get("timeout_s")),
            "cpu_s": number(hello.get("cpu_s", limits.get("cpu_s"))),
            "memory_mb": number(hello.get("memory_mb", limits.get("memory_mb")))}


def _death(status: int | None, limits: Mapping[str, Any]) -> tuple[str, str]:
    """The reason code and message of a job process that ended without answering."""
    import signal

    if status is not None and status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        if -status == signal.SIGXCPU:
            return "cpu_limit", (f"the job used more than its {limits.get('cpu_s'):g} s of CPU time and was "
                                 "stopped; raise --cpu-time (0: no limit)")
        memory = f" (its address-space limit was {limits['memory_mb']} MB)" if limits.get("memory_mb") else ""
        return "worker_died", (f"the job's process ended with {name} before answering{memory}: killed (e.g. by "
                               "the out-of-memory killer) or a crash in native code")
    return "worker_died", f"the job's process ended with status {status} before answering"


def _job_environment(home: str, gpu: str | None) -> dict[str, str]:
    """The job process's environment: the scrubbed one (`_child_environment`), ``gpu`` as its only
    visible GPU, and a PYTHONPATH that reaches whatever this process can import, since the job
    imports benchmark modules (plug-ins included) by the paths the parent found them at."""
    env = _child_environment(home)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    paths = [env["PYTHONPATH"], *(p for p in sys.path if p and os.path.isdir(p))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def _start_job_process(home: str, gpu: str | None, limits: Mapping[str, Any]) -> Any:
    """Start the job's ``python`` process (`_CHILD_BOOTSTRAP`) in ``home``, in a session and
    process group of its own (so that `_end_process_group` can kill all it starts), told the
    limits it sets on itself (RLIMIT_AS, RLIMIT_CPU); the wall clock stays with the parent."""
    import subprocess

    child_limits = {"memory_mb": limits.get("memory_mb") or None, "cpu_s": limits.get("cpu_s") or None}
    return subprocess.Popen([sys.executable, "-c", _CHILD_BOOTSTRAP, json.dumps(child_limits)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=home,
                            env=_job_environment(home, gpu), start_new_session=True)


def _converse(process: Any, request: Mapping[str, Any], deadline: float | None,
              cancelled: threading.Event | None) -> tuple[bytes, str | None]:
    """Send the job's request, read its answer (`_read_answer`), then end its process group and
    close the pipes, whatever happened: no process of the job outlives this call."""
    try:
        try:
            process.stdin.write((json.dumps(request) + "\n").encode())
            process.stdin.flush()  # stdin stays open meanwhile: the job's lifeline
        except (BrokenPipeError, OSError):
            pass  # it died at once; said by the caller from its exit status
        return _read_answer(process, deadline, cancelled)
    finally:
        _end_process_group(process)
        for stream in (process.stdin, process.stdout):
            try:
                stream.close()
            except OSError:
                pass


def _split_hello(answer: bytes) -> tuple[dict[str, Any], list[str]]:
    """The job process's hello (its first line, saying which confinements it applied; ``{}`` when
    it sent none) and the answer's other non-blank lines."""
    lines = [line for line in answer.decode("utf-8", "replace").splitlines() if line.strip()]
    if lines:
        try:
            first = json.loads(lines[0])
            if isinstance(first, dict) and first.get("hello") is True:
                return first, lines[1:]
        except ValueError:
            pass
    return {}, lines


def _job_failure(stop: str | None, status: int | None, lines: Sequence[str], timeout: float | None,
                 limits: Mapping[str, Any]) -> tuple[str, str] | None:
    """The reason code and message when the job did not answer (stopped by us, or dead), else
    ``None``: the answer is in its last line."""
    if stop == "timeout":
        return "timeout", (f"the job ran longer than its {timeout:g} s of wall-clock time and was "
                           "stopped (its process group killed); raise --timeout (0: no limit)")
    if stop == "cancelled":
        return "executor_error", "the run was interrupted before the job finished"
    if stop == "too_long":
        return "bad_answer", f"the job's process wrote more than {MAX_ANSWER_BYTES} bytes of answer"
    if status != 0 or not lines:
        return _death(status, limits)
    return None


def _with_sandbox(line: str, sandbox: Mapping[str, Any]) -> str:
    """The job's answer line with the parent's ``sandbox`` report in it (the parent's word, not the
    child's); a line that is not JSON goes back as it is, for `_answer` to say what is wrong."""
    try:
        data = json.loads(line)
    except ValueError:
        return line
    if isinstance(data, dict):
        data["sandbox"] = sandbox
    return json.dumps(data, allow_nan=False, default=str)


def run_in_subprocess(job: Mapping[str, Any], data_dir: str, device: str, threads: int = 1,
                      gpu: str | None = None, limits: Mapping[str, Any] | None = None,
                      cancelled: threading.Event | None = None) -> str:
    """Run one job in a fresh, confined ``python`` process; its answer as JSON text.

    The process (see `_CHILD_BOOTSTRAP`, `_job_main`) runs in its own session and process group,
    with the scrubbed environment (`_child_environment`; ``gpu`` as its only visible GPU), its own
    temporary directory as cwd, HOME and TMPDIR (deleted after), no network where the kernel allows
    a network namespace, and ``limits`` (`TransferLimits.resolve`): ``memory_mb`` (RLIMIT_AS) and
    ``cpu_s`` (RLIMIT_CPU) set by the process itself, ``timeout_s`` (wall clock) enforced here by
    killing its process group. Every way the job can end is a `TransferResult` in the text:
    ``timeout``, ``cpu_limit``, ``worker_died``, ``bad_answer``; ``executor_error`` when
    ``cancelled`` was set (the run was interrupted). Never raises for the job.
    """
    limits = dict(limits or {})
    timeout = limits.get("timeout_s") or None
    described = TransferJob.from_dict(job)
    home = tempfile.mkdtemp(prefix="actmine-transfer-")
    started = time.monotonic()
    try:
        process = _start_job_process(home, gpu, limits)
        request = {"job": dict(job), "data_dir": data_dir, "device": device, "threads": threads}
        answer, stop = _converse(process, request, started + timeout if timeout else None, cancelled)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    seconds = time.monotonic() - started
    hello, lines = _split_hello(answer)
    sandbox = _sandbox_report(hello, limits)
    failure = _job_failure(stop, process.returncode, lines, timeout, limits)
    if failure is not None:
        return json.dumps(_failed(described, *failure, seconds=seconds, sandbox=sandbox).to_dict())
    return _with_sandbox(lines[-1], sandbox)


def _answer(job: TransferJob, text: Any) -> TransferResult:
    try:
        result = TransferResult.from_dict(json.loads(text))
        if (result.activation, result.benchmark, result.seed) != (job.activation, job.benchmark, job.seed):
            raise ValueError("the answer is about another job")
        return result
    except (TypeError, ValueError) as exc:
        return _failed(job, "bad_answer", f"the job's process answered with malformed data: {exc}")


def _visible_gpus() -> list[str]:
    import torch

    count = torch.cuda.device_count()
    listed = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return listed[:count] if listed else [str(i) for i in range(count)]


# ------------------------------------------------------------------------------------------------
# Resolving the user's input (parent; nothing untrusted runs here)
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ActivationSpec:
    """A resolved activation: its display ``name``, ``kind`` (``registry``; ``file`` or ``pack``:
    a program), for a registry activation the ``reference`` the child passes to
    ``activations.get``, and for a program its policy-checked ``source`` (compiled only in the child)."""

    name: str
    kind: str
    reference: str | None = None
    source: str | None = None
    given: str = ""


def resolve_activation(text: str) -> ActivationSpec:
    """A registry name (trusted: the child builds it with ``activations.get``), or a program: a
    candidate ``.py`` file or an entry of a generated program file (``PACK.py:NAME``, an export
    pack). A program is untrusted: read here as data (`read_candidate_reference`, never imported
    or run), checked with the static policy, and compiled only in the job's confined process."""
    import actmine.activations as activations
    from ..candidate.source import CandidateError, check_source, read_candidate_reference
    from ..language.files import split_program_reference

    text = text.strip()
    if not text:
        raise TransferInputError("an empty activation name")
    entry = split_program_reference(text) is not None
    if entry or text.endswith(".py") or os.sep in text:
        try:
            name, source = read_candidate_reference(text)
            check_source(source, filename=text)
        except CandidateError as exc:
            raise TransferInputError(f"activation {text!r} refused [{exc.code}]: {exc}") from None
        return ActivationSpec(name, "pack" if entry else "file", source=source, given=text)
    try:
        name = activations.info(text).name
    except activations.UnknownActivationError as exc:
        raise TransferInputError(f"{exc}. Give a registry name (see `actmine list`), a .py file defining "
                                 "activation_function(x), or an exported pack's PACK.py:NAME") from None
    return ActivationSpec(name, "registry", reference=name, given=text)


def _resolve_activations(texts: Sequence[str]) -> tuple[list[ActivationSpec], bool]:
    import actmine.activations as activations

    specs: list[ActivationSpec] = []
    for text in texts:
        spec = resolve_activation(text)
        if any(s.kind == spec.kind and s.reference == spec.reference and s.source == spec.source for s in specs):
            continue  # the same activation twice
        specs.append(spec)
    # Display names must be unique, and a file or pack entry must not pass for a registry activation.
    names = [s.name for s in specs]
    specs = [s if s.kind == "registry" or (names.count(s.name) == 1 and s.name not in activations.REGISTRY)
             else ActivationSpec(s.given, s.kind, s.reference, s.source, s.given) for s in specs]
    if len({s.name for s in specs}) != len(specs):
        raise TransferInputError("two activations have the same name: " + ", ".join(s.given for s in specs))
    added = not any(s.kind == "registry" and s.name == REFERENCE for s in specs)
    if added:
        specs.insert(0, ActivationSpec(REFERENCE, "registry", reference=REFERENCE, given=REFERENCE))
    return specs, added


def check_benchmarks(names: Sequence[str], options: Mapping[str, Mapping[str, Any]] | None = None,
                     epochs: int | None = None, data_dir: str | Path | None = None,
                     ) -> tuple[dict[str, type], dict[str, dict[str, Any]]]:
    """Everything about the benchmarks that can be wrong before a job starts: ``({name: class},
    {name: constructor options})`` for ``names`` (duplicates dropped), or `TransferInputError` (an
    unknown name, an unknown option or a bad value) or `DatasetMissing` (its data are not in
    ``data_dir``, default `default_data_dir()`)."""
    classes = _benchmark_classes(list(dict.fromkeys(b.strip().lower() for b in names)))
    resolved = _benchmark_options(classes, options or {}, epochs)
    data = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    for name, cls in classes.items():
        try:
            cls(**resolved[name]).check_data(data.resolve())
        except DatasetMissing as exc:
            raise DatasetMissing(f"{name}: its data are missing: {exc}") from None
    return classes, resolved


def _benchmark_classes(names: Sequence[str]) -> dict[str, type]:
    classes: dict[str, type] = {}
    for name in names:
        key = name.strip().lower()
        if not key:
            raise TransferInputError("an empty benchmark name")
        if key not in _BENCHMARKS:
            import difflib

            known = list_benchmarks()  # imports the built-in benchmark modules
            if key not in _BENCHMARKS:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise TransferInputError(f"unknown benchmark {name!r}{hint}; known: {', '.join(known) or 'none'}")
        classes[key] = _BENCHMARKS[key]
    return classes


def _class_path(cls: type) -> str:
    """``module:QualName`` of a benchmark class, checked to import back to the same class."""
    path = f"{cls.__module__}:{cls.__qualname__}"
    try:
        # a job's process is a fresh interpreter: the script run as __main__ is not there
        found = _import_object(path) if cls.__module__ != "__main__" else None
    except (ImportError, AttributeError):
        found = None
    if found is not cls:
        raise TransferInputError(f"benchmark class {cls.__qualname__} cannot be imported as {path}: define it at "
                                 "the top level of an importable module so that job processes can load it")
    return path


def _option_names(cls: type) -> tuple[list[str], bool]:
    """The constructor's keyword parameters, and whether it takes **kwargs."""
    parameters = inspect.signature(cls).parameters.values()
    names = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return names, any(p.kind == p.VAR_KEYWORD for p in parameters)


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def parse_options(items: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``["digits.epochs=3", "clrs.algorithms=[bfs, dfs]"]`` → ``{"digits": {"epochs": 3}, ...}``;
    values are YAML (``3`` is an int, ``0.1`` a float, ``true`` a bool, ``none`` a string)."""
    import yaml

    options: dict[str, dict[str, Any]] = {}
    for item in items:
        target, eq, text = item.partition("=")
        benchmark, dot, key = target.strip().partition(".")
        if not (eq and dot and benchmark and key):
            raise TransferInputError(f"--option {item!r}: write BENCHMARK.KEY=VALUE, e.g. digits.epochs=5")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            reason = getattr(exc, "problem", None) or type(exc).__name__
            at = f" at column {where.column + 1}" if where is not None else ""
            raise TransferInputError(f"--option {item!r}: the value is not valid YAML ({reason}{at})") from None
        if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise TransferInputError(f"--option {item!r}: the value must be a number, string, boolean or "
                                     "null (or a list of them)") from None
        options.setdefault(benchmark.strip().lower(), {})[key.strip()] = value
    return options


def _benchmark_options(classes: Mapping[str, type], options: Mapping[str, Mapping[str, Any]],
                       epochs: int | None) -> dict[str, dict[str, Any]]:
    resolved: dict[str, dict[str, Any]] = {name: {} for name in classes}
    for benchmark, values in options.items():
        key = benchmark.strip().lower()
        if key not in classes:
            raise TransferInputError(f"--option {benchmark}.…: {benchmark!r} is not among the benchmarks of this "
                                     f"run ({', '.join(classes)})")
        names, any_key = _option_names(classes[key])
        for option, value in values.items():
            if option not in names and not any_key:
                raise TransferInputError(f"--option {benchmark}.{option}: {key} has no option {option!r}; its "
                                         f"options: {', '.join(names) or 'none'}")
            resolved[key][option] = value
    if epochs is not None:
        takers = [name for name, cls in classes.items() if "epochs" in _option_names(cls)[0]]
        if not takers:
            raise TransferInputError(f"--epochs: none of the benchmarks ({', '.join(classes)}) has an epochs option")
        for name in takers:
            resolved[name].setdefault("epochs", epochs)
    for name, cls in classes.items():  # configuration-only constructors: values are checked here
        try:
            cls(**resolved[name])
        except Exception as exc:  # noqa: BLE001 - a bad option value, reported as bad input
            raise TransferInputError(f"benchmark {name} with options {resolved[name]}: "
                                     f"{type(exc).__name__}: {exc}") from None
    return resolved


# ------------------------------------------------------------------------------------------------
# Summary (`summary`: raw mean ± std, and the log-ratio against ReLU): a table and a figure
# ------------------------------------------------------------------------------------------------

def _cell_text(row: Mapping[str, Any] | None) -> str:
    if row is None:
        return "—"
    if not row["n"]:
        return f"failed ({row['failed']})"
    text = f"{row['mean']:.4f}" + (f" ± {row['std']:.4f}" if row["std"] is not None else "")
    if row["log_ratio_vs_relu"] is not None and row["activation"] != REFERENCE:
        text += f" ({row['log_ratio_vs_relu']:+.3f})"
    if row["failed"]:
        text += f" [{row['failed']} failed]"
    return text


def results_table(rows: Sequence[Mapping[str, Any]], title: str | None = None):
    """A rich Table: rows = activations, columns = benchmarks, cells "mean ± std (log-ratio)"."""
    from rich.table import Table
    from rich.text import Text

    from ..terminal import terminal_text

    activations = list(dict.fromkeys(r["activation"] for r in rows))
    benchmarks = list(dict.fromkeys(r["benchmark"] for r in rows))
    by_cell = {(r["activation"], r["benchmark"]): r for r in rows}
    metrics = {b: next((r["metric"] for r in rows if r["benchmark"] == b and r["metric"]), "") for b in benchmarks}
    title = title or "transfer: score mean ± std over seeds (log-ratio vs ReLU)"
    table = Table(title=title, min_width=len(title) + 4)  # the title on one line
    table.add_column("activation", no_wrap=True)
    for benchmark in benchmarks:
        table.add_column(f"{benchmark} ({metrics[benchmark]})" if metrics[benchmark] else benchmark,
                         justify="right", no_wrap=True)
    for activation in activations:
        # Text, not markup: an activation's name is a file stem or a path the user gave
        table.add_row(Text(terminal_text(activation, keep_newlines=False)),
                      *[_cell_text(by_cell.get((activation, b))) for b in benchmarks])
    return table


def plot_log_ratios(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Grouped bars: per benchmark, one bar per activation (ReLU is the zero line), error bars =
    the std over seeds of the log-ratio. Written as PNG to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benchmarks = list(dict.fromkeys(r["benchmark"] for r in rows))
    activations = [a for a in dict.fromkeys(r["activation"] for r in rows) if a != REFERENCE]
    by_cell = {(r["activation"], r["benchmark"]): r for r in rows}
    fig, ax = plt.subplots(figsize=(min(16.0, max(4.0, 1.5 + 0.5 * len(benchmarks) * max(1, len(activations)))), 3.6))
    width = 0.8 / max(1, len(activations))
    colours = plt.get_cmap("tab10" if len(activations) <= 10 else "tab20")
    for i, activation in enumerate(activations):
        xs, heights, errors = [], [], []
        for j, benchmark in enumerate(benchmarks):
            row = by_cell.get((activation, benchmark))
            if row is None or row["log_ratio_vs_relu"] is None:
                continue
            xs.append(j - 0.4 + width * (i + 0.5))
            heights.append(row["log_ratio_vs_relu"])
            errors.append(row["log_ratio_std"] or 0.0)
        ax.bar(xs, heights, width, yerr=errors, capsize=3, label=activation, color=colours(i % colours.N))
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(benchmarks)), benchmarks)
    ax.set_xlim(-0.6, len(benchmarks) - 0.4)
    ax.set_ylabel("ln(error / ReLU's error)")
    ax.set_title("log-ratio vs ReLU per benchmark (below 0: better than ReLU)")
    if activations:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    else:
        ax.text(0.5, 0.5, "only ReLU: nothing to compare", transform=ax.transAxes, ha="center")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------------
# Executors
# ------------------------------------------------------------------------------------------------

def _run_local(jobs: Sequence[TransferJob], data_dir: str, device: str, workers: int | None,
               limits: Mapping[str, Mapping[str, Any]], on_result: Callable[[TransferResult], None]) -> None:
    """Each job in its own confined child process (`run_in_subprocess`), ``workers`` at a time.

    A job that hangs, exceeds a limit or kills its process fails alone; the others go on. With
    ``device="cuda"`` each running job has one GPU to itself (slot i of the ``workers`` gets the
    i-th visible GPU, round robin). ``limits``: per benchmark (`TransferLimits.resolve`).
    Interrupted (Ctrl-C), the running jobs' processes are killed and nothing more is started.
    """
    gpus = _visible_gpus() if device == "cuda" else []
    workers = max(1, min(workers or len(gpus) or os.cpu_count() or 1, len(jobs)))
    threads = 1 if device == "cpu" else max(1, (os.cpu_count() or 1) // workers)
    slots: queue.SimpleQueue[str | None] = queue.SimpleQueue()
    for i in range(workers):
        slots.put(gpus[i % len(gpus)] if gpus else None)
    cancelled = threading.Event()

    def run_one(job: TransferJob) -> TransferResult | None:
        gpu = slots.get()
        try:
            if cancelled.is_set():
                return None
            return _answer(job, run_in_subprocess(job.to_dict(), data_dir, device, threads, gpu,
                                                  limits.get(job.benchmark), cancelled))
        finally:
            slots.put(gpu)

    pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="actmine-transfer")
    try:
        futures = {pool.submit(run_one, job): job for job in jobs}
        for future in concurrent.futures.as_completed(futures):
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - e.g. no process could be started
                result = _failed(futures[future], "executor_error", f"{type(exc).__name__}: {exc}")
            if result is not None:
                on_result(result)
    finally:
        cancelled.set()  # interrupted: the running jobs' processes are killed; otherwise all are done
        pool.shutdown(wait=True, cancel_futures=True)


# -- Dask: each job in a fresh child process of the Dask worker --------------------------------
# Dask workers are daemonic processes, which multiprocessing does not let have children; the job
# process is the same confined subprocess as locally (`run_in_subprocess`).

def run_on_dask_worker(job: dict[str, Any], data_dir: str, device: str, pin_by_worker_name: bool,
                       limits: Mapping[str, Any] | None = None) -> str:
    """The Dask task: run the job in a confined child process of this Dask worker, under ``limits``
    (`run_in_subprocess`, as locally); JSON text back.

    ``pin_by_worker_name`` (a LocalCluster started by the runner, whose workers are named 0, 1, …):
    worker i gives its jobs GPU i of those visible. Otherwise the job keeps the worker's
    CUDA_VISIBLE_DEVICES.
    """
    threads, gpu = 1, None
    try:
        from distributed import get_worker

        worker = get_worker()
        if device != "cpu":
            threads = max(1, (os.cpu_count() or 1) // max(1, int(worker.state.nthreads)))
        if pin_by_worker_name and device == "cuda" and isinstance(worker.name, int):
            visible = _visible_gpus()
            gpu = visible[worker.name % len(visible)] if visible else None
    except (ImportError, ValueError, AttributeError):
        pass
    return run_in_subprocess(job, data_dir, device, threads, gpu, limits)


def _run_dask(jobs: Sequence[TransferJob], data_dir: str, device: str, workers: int | None, scheduler: str | None,
              limits: Mapping[str, Mapping[str, Any]], on_result: Callable[[TransferResult], None],
              notify: Callable[[str], None]) -> None:
    import dask
    from distributed import Client, as_completed

    from ..executors import DaskExecutor

    cluster = client = None
    try:
        if scheduler:
            try:
                client = Client(scheduler, timeout=60, set_as_default=False)
                if workers:
                    client.wait_for_workers(workers, timeout=120)
            except Exception as exc:  # noqa: BLE001 - unreachable scheduler, timeout
                raise TransferInputError(f"--scheduler {scheduler}: cannot use the Dask cluster there: "
                                         f"{type(exc).__name__}: {exc}") from None
            if device == "cuda":
                offered = [w for w, info in client.scheduler_info(n_workers=-1)["workers"].items()
                           if (info.get("resources") or {}).get("GPU", 0) >= 1]
                if not offered:
                    raise TransferInputError(f"--device cuda: no worker of the Dask cluster at {scheduler} offers the "
                                             "resource GPU; start each worker with `--resources GPU=1` (one per GPU)")
        else:
            count = workers or (len(_visible_gpus()) if device == "cuda" else os.cpu_count() or 1)
            settings = {"distributed.worker.resources": {"GPU": 1}} if device == "cuda" else {}
            with dask.config.set(settings):
                cluster = DaskExecutor._local_cluster(count)
            client = Client(cluster, set_as_default=False)
            notify(f"started a local Dask cluster of {count} workers at {cluster.scheduler_address}")
        resources = {"GPU": 1} if device == "cuda" else None
        futures = {}
        for job in jobs:
            task = client.submit(run_on_dask_worker, job.to_dict(), data_dir, device, cluster is not None,
                                 dict(limits.get(job.benchmark) or {}), key=f"actmine-transfer-{uuid.uuid4().hex}", pure=False, resources=resources)
            futures[task.key] = (task, job)
        for task in as_completed([t for t, _ in futures.values()], loop=client.loop):
            job = futures[task.key][1]
            try:
                result = _answer(job, task.result())
            except Exception as exc:  # noqa: BLE001 - a lost worker, a cancelled task
                result = _failed(job, "executor_error", f"the Dask task failed: {type(exc).__name__}: {exc}")
            on_result(result)
    finally:
        for closing in (client, cluster):
            if closing is not None:
                try:
                    closing.close()
                except Exception:  # noqa: BLE001 - best effort
                    pass


# ------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------

@dataclass
class TransferRun:
    """What `run_transfer` did: every job's result (this run's jobs, resumed ones included, in
    activation × benchmark × seed order), the summary rows and the files written."""

    results: list[TransferResult]
    rows: list[dict[str, Any]]
    activations: list[str]
    benchmarks: list[str]
    seeds: list[int]
    added_relu: bool
    resumed: int
    seconds: float
    files: dict[str, Path]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)


def _read_done(path: Path, notify: Callable[[str], None]) -> dict[str, TransferResult]:
    done: dict[str, TransferResult] = {}
    if not path.is_file():
        return done
    bad = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            result = TransferResult.from_dict(json.loads(line))
        except (ValueError, TypeError):
            bad += 1
            continue
        if result.ok and result.key:
            done[result.key] = result
    if bad:
        notify(f"{path}: ignored {bad} unreadable line(s)")
    return done


def end_partial_line(path: Path) -> None:
    """End ``path`` with a newline when its last line was cut short (a run killed mid-write)."""
    if path.is_file() and path.stat().st_size:
        with path.open("rb") as stream:
            stream.seek(-1, os.SEEK_END)
            cut = stream.read(1) != b"\n"
        if cut:
            with path.open("a", encoding="utf-8") as stream:
                stream.write("\n")


def _atomic_write(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _csv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SUMMARY_COLUMNS)
    for row in rows:
        writer.writerow(["" if row[c] is None else (repr(row[c]) if isinstance(row[c], float) else row[c])
                         for c in SUMMARY_COLUMNS])
    return buffer.getvalue()


class _Progress:
    """A rich progress bar on a terminal's stderr; elsewhere one line per finished job."""

    def __init__(self, total: int, enabled: bool, console: Any = None):
        from rich.console import Console

        self.total, self.done, self.enabled = total, 0, enabled
        self.console = console or Console(stderr=True)
        self.bar = None
        if enabled and self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("transfer"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                TextColumn("{task.description}"), console=self.console, transient=True)
            self.task = self.bar.add_task("", total=total)
            self.bar.start()

    def advance(self, result: TransferResult) -> None:
        from rich.markup import escape

        self.done += 1
        what = f"{result.activation} on {result.benchmark} seed {result.seed}"
        if result.ok:
            outcome = f"{result.metric or 'score'} {result.score:.4f} ({result.seconds:.1f} s)"
        else:
            outcome = f"failed [{result.error['code']}] {result.error['message']}"
        line = f"[{self.done}/{self.total}] {what}: {outcome}"
        if self.bar is not None:
            self.bar.update(self.task, advance=1, description=escape(what))
            if not result.ok:
                self.bar.console.print(line, style="red", markup=False, highlight=False)
        elif self.enabled or not result.ok:
            self.console.print(line, markup=False, highlight=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _notify_on_stderr(message: str) -> None:
    """`run_transfer`'s default ``notify``: one line on stderr, away from the results on stdout."""
    print(message, file=sys.stderr)


def _checked_seeds(activations: Sequence[str], benchmarks: Sequence[str], seeds: int | Sequence[int],
                   device: str, executor: str, scheduler: str | None, workers: int | None) -> list[int]:
    """The run's seeds, after checking the arguments that need nothing resolved: bad input raises
    `TransferInputError` here, before anything is read or started."""
    if device not in ("cpu", "cuda"):
        raise TransferInputError(f"unknown device {device!r}; choose cpu or cuda")
    if executor not in EXECUTORS:
        raise TransferInputError(f"unknown executor {executor!r}; choose one of: {', '.join(EXECUTORS)}")
    if scheduler and executor != "dask":
        raise TransferInputError("a scheduler address needs the 'dask' executor (--executor dask)")
    if workers is not None and workers < 1:
        raise TransferInputError("workers must be at least 1")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list or len(set(seed_list)) != len(seed_list):
        raise TransferInputError(f"seeds must be at least one, without repeats; got {seeds!r}")
    if not activations:
        raise TransferInputError("no activations given")
    if not benchmarks:
        raise TransferInputError("no benchmarks given")
    return seed_list


def _check_cuda(device: str, executor: str, scheduler: str | None) -> None:
    """Refuse ``cuda`` when this PyTorch sees no GPU, unless the jobs run on a remote Dask
    cluster, whose workers' GPUs this process cannot see."""
    if device == "cuda" and not (executor == "dask" and scheduler):
        import torch

        if not torch.cuda.is_available():
            raise TransferInputError("--device cuda: no CUDA device is available to this PyTorch; use --device cpu")


def _job_limits(limits: TransferLimits | None, classes: Mapping[str, type],
                options: Mapping[str, Mapping[str, Any]], device: str,
                notify: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Each benchmark's job limits (`TransferLimits.resolve` on an instance with its options, since
    a budget depends on them, e.g. the epochs); ``notify`` hears of a memory limit cuda ignores."""
    limits = limits if limits is not None else TransferLimits()
    if not isinstance(limits, TransferLimits):
        raise TransferInputError(f"limits must be a TransferLimits, got {type(limits).__name__}")
    resolved = {name: limits.resolve(cls(**options[name]), name, device) for name, cls in classes.items()}
    if device == "cuda" and limits.memory_mb:
        notify("--memory-mb is not applied to cuda jobs: CUDA fails under an address-space limit")
    return resolved


@dataclass(frozen=True)
class _RunPlan:
    """Everything `run_transfer` resolved and checked before any job starts, and its jobs
    (benchmark × seed × activation)."""

    specs: list[ActivationSpec]
    added_relu: bool
    data: Path
    classes: dict[str, type]
    options: dict[str, dict[str, Any]]
    limits: dict[str, dict[str, Any]]
    seeds: list[int]
    jobs: list[TransferJob]
    device: str
    executor: str
    workers: int | None
    scheduler: str | None


def _plan_run(activations: Sequence[str], benchmarks: Sequence[str], seeds: list[int],
              options: Mapping[str, Mapping[str, Any]] | None, epochs: int | None,
              data_dir: str | Path | None, device: str, executor: str, workers: int | None,
              scheduler: str | None, limits: TransferLimits | None, notify: Callable[[str], None]) -> _RunPlan:
    """Resolve the activations, benchmarks, options and limits, and list the jobs; raises
    `TransferInputError` or `DatasetMissing` before any job starts, so that bad input costs nothing."""
    specs, added_relu = _resolve_activations(activations)
    data = Path(data_dir).expanduser().resolve() if data_dir is not None else default_data_dir().resolve()
    classes, resolved_options = check_benchmarks(benchmarks, options, epochs, data)  # DatasetMissing: nothing started
    paths = {name: _class_path(cls) for name, cls in classes.items()}
    _check_cuda(device, executor, scheduler)
    job_limits = _job_limits(limits, classes, resolved_options, device, notify)
    if added_relu:
        notify(f"added {REFERENCE} to the activations: it is the reference of the log-ratios")
    jobs = [TransferJob(s.name, name, seed, dict(resolved_options[name]), s.source, s.reference, paths[name])
            for name in classes for seed in seeds for s in specs]
    return _RunPlan(specs, added_relu, data, classes, resolved_options, job_limits, seeds, jobs, device, executor,
                    workers, scheduler)


def _resume(jobs: Sequence[TransferJob], out: Path, journal: Path,
            notify: Callable[[str], None]) -> tuple[dict[str, TransferResult], list[TransferJob]]:
    """The results of ``jobs`` already done ok in ``journal`` (by key) and the jobs left to run,
    so that a rerun into the same ``out`` picks up where an interrupted one stopped."""
    done = _read_done(journal, notify)
    end_partial_line(journal)   # an interrupted run's half-written last line: the next record starts afresh
    results = {job.key: done[job.key] for job in jobs if job.key in done}
    todo = [job for job in jobs if job.key not in results]
    if results:
        notify(f"resuming {out}: {len(results)} of {len(jobs)} jobs already done, {len(todo)} to run")
    return results, todo


def _run_jobs(todo: list[TransferJob], plan: _RunPlan, journal: Path, results: dict[str, TransferResult],
              bar: _Progress, notify: Callable[[str], None]) -> None:
    """Run ``todo`` on the plan's executor; each result goes into ``results``, is appended to ``journal``
    as it arrives (so an interrupted run loses only the jobs in flight) and advances ``bar``."""
    lock = threading.Lock()  # results arrive on the executor's threads

    def on_result(result: TransferResult) -> None:
        with lock:
            results[result.key] = result
            with journal.open("a", encoding="utf-8") as stream:
                stream.write(json.dumps(result.to_dict(), allow_nan=False) + "\n")
            bar.advance(result)

    if todo and plan.executor == "local":
        _run_local(todo, str(plan.data), plan.device, plan.workers, plan.limits, on_result)
    elif todo:
        _run_dask(todo, str(plan.data), plan.device, plan.workers, plan.scheduler, plan.limits, on_result, notify)


def _in_run_order(results: Mapping[str, TransferResult], plan: _RunPlan) -> list[TransferResult]:
    """The run's results in activation × benchmark × seed order (jobs finish in any order)."""
    order = {(s.name, b, seed): i for i, (s, b, seed) in enumerate(
        (s, b, seed) for s in plan.specs for b in plan.classes for seed in plan.seeds)}
    return sorted((results[job.key] for job in plan.jobs if job.key in results),
                  key=lambda r: order[(r.activation, r.benchmark, r.seed)])


def _run_document(plan: _RunPlan, resumed: int, seconds: float,
                  ordered: Sequence[TransferResult], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``results.json``'s content: the run's settings, every job's result and the summary."""
    return {
        "activations": [{"name": s.name, "kind": s.kind, "given": s.given} for s in plan.specs],
        "benchmarks": list(plan.classes), "seeds": plan.seeds, "options": plan.options, "limits": plan.limits,
        "device": plan.device,
        "executor": plan.executor, "data_dir": str(plan.data), "added_relu": plan.added_relu, "resumed": resumed,
        "seconds": seconds,
        "log_ratio": ("per benchmark: mean over the seeds both scored of clip(ln(error_act / error_relu), ±3), "
                      f"error = 1 − score (floored at {ERROR_FLOOR:g}); for scores outside [0, 1]: "
                      "−ln(score_act / score_relu). Negative beats ReLU."),
        "jobs": [r.to_dict() for r in ordered],
        "summary": rows,
    }


def _write_outputs(out: Path, journal: Path, document: Mapping[str, Any],
                   rows: Sequence[Mapping[str, Any]]) -> dict[str, Path]:
    """Write ``results.json``, ``summary.csv`` (each atomically: a reader never sees half a file)
    and ``transfer.png``; the run's files, the journal included."""
    files = {"journal": journal, "json": out / "results.json", "csv": out / "summary.csv",
             "figure": out / "transfer.png"}
    _atomic_write(files["json"], json.dumps(document, indent=2, allow_nan=False))
    _atomic_write(files["csv"], _csv_text(rows))
    plot_log_ratios(rows, files["figure"])
    return files


def run_transfer(activations: Sequence[str], benchmarks: Sequence[str] = ("digits",),
                 seeds: int | Sequence[int] = 3, *, options: Mapping[str, Mapping[str, Any]] | None = None,
                 epochs: int | None = None, data_dir: str | Path | None = None, device: str = "cpu",
                 executor: str = "local", workers: int | None = None, scheduler: str | None = None,
                 limits: TransferLimits | None = None, out: str | Path = "transfer", progress: bool = True,
                 notify: Callable[[str], None] | None = None, console: Any = None) -> TransferRun:
    """Train every (activation × benchmark × seed) job and write ``out``'s files.

    Args:
        activations: registry names, candidate ``.py`` files, exported ``pack.py:name`` entries.
            ReLU is added (and ``notify`` told) when missing: it is the reference.
        benchmarks: registered benchmark names.
        seeds: a count N (seeds 0..N-1) or the seeds themselves.
        options: ``{benchmark: {constructor keyword: value}}`` (see `parse_options`).
        epochs: ``epochs=`` for every benchmark whose constructor has it (``options`` win).
        data_dir: where the datasets are (default `default_data_dir()`).
        device: ``"cpu"`` or ``"cuda"`` (local: one process per GPU, each pinned to one; Dask: each
            job needs the worker resource ``GPU=1``).
        executor: ``"local"`` (``workers`` jobs at once, default one per core or per GPU, each in
            its own process) or ``"dask"`` (``scheduler``'s cluster, else a LocalCluster on 127.0.0.1).
        limits: the wall-clock, CPU-time and address-space limits of each job's process (default:
            each benchmark's `job_budget`); a job that exceeds one fails alone (``timeout``,
            ``cpu_limit``, ``memory_limit``).
        out: the output directory; jobs already done ok in its ``results.jsonl`` are not rerun.
        progress: show a progress bar (stderr, on a terminal) or one line per job.
        notify: receives one-line messages (ReLU added, jobs resumed); default: stderr.

    Raises (before any job starts): `TransferInputError` for bad input, `DatasetMissing` when a
    benchmark's data is not in ``data_dir``.
    """
    started = time.perf_counter()
    notify = notify if notify is not None else _notify_on_stderr
    seed_list = _checked_seeds(activations, benchmarks, seeds, device, executor, scheduler, workers)
    plan = _plan_run(activations, benchmarks, seed_list, options, epochs, data_dir, device, executor, workers,
                     scheduler, limits, notify)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    journal = out / "results.jsonl"
    results, todo = _resume(plan.jobs, out, journal, notify)
    bar = _Progress(len(todo), progress, console)
    try:
        _run_jobs(todo, plan, journal, results, bar, notify)
    finally:
        bar.close()

    ordered = _in_run_order(results, plan)
    rows = summarise(ordered)
    seconds = round(time.perf_counter() - started, 3)
    resumed = len(plan.jobs) - len(todo)
    files = _write_outputs(out, journal, _run_document(plan, resumed, seconds, ordered, rows), rows)
    return TransferRun(results=ordered, rows=rows, activations=[s.name for s in plan.specs],
                       benchmarks=list(plan.classes), seeds=seed_list, added_relu=plan.added_relu,
                       resumed=resumed, seconds=seconds, files=files)
