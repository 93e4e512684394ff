"""What runs inside a job's child process: the job itself (`execute_job`: build the benchmark,
compile the activation, seed, train, score) and the child's side of the JSON-lines protocol
(`_job_main`, started by `job_process`'s bootstrap).

This is the only module that runs untrusted candidate code, and only in the confined child; the
parent never calls `execute_job`.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..scratch import remove_own_directory
from .base import DatasetMissing, UnknownBenchmarkError, registered_benchmark
from .jobs import TransferJob, TransferResult, _failed


def _import_object(path: str) -> Any:
    module, _, qualname = path.partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _benchmark_class(job: TransferJob) -> type:
    if job.benchmark_class:
        return _import_object(job.benchmark_class)
    benchmark = registered_benchmark(job.benchmark)
    if benchmark is None:
        raise UnknownBenchmarkError(f"unknown benchmark {job.benchmark!r} in this process")
    return benchmark


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
            return _failed(
                job,
                "memory_limit",
                f"the job ran out of memory{_memory_limit_note()}: {type(exc).__name__}: {exc}",
                metric,
                elapsed(),
            ).to_dict()
        return _failed(job, "job_error", f"{type(exc).__name__}: {exc}", metric, elapsed()).to_dict()
    value = getattr(score, "score", None)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return _failed(
            job,
            "bad_answer",
            f"{type(benchmark).__name__}.run returned {score!r}, not a BenchmarkScore",
            metric,
            elapsed(),
        ).to_dict()
    metric = str(getattr(score, "metric", "") or metric)
    if not math.isfinite(value):
        return _failed(job, "non_finite", f"the {metric or 'score'} is {value}", metric, elapsed()).to_dict()
    details = _finite(json.loads(json.dumps(getattr(score, "details", None) or {}, default=_jsonable)))
    return TransferResult(
        activation=job.activation,
        benchmark=job.benchmark,
        seed=job.seed,
        ok=True,
        score=value,
        metric=metric,
        details=details,
        seconds=round(elapsed(), 3),
        options=dict(job.options),
        key=job.key,
    ).to_dict()


def _job_main(network_isolated: bool = False, limits: Mapping[str, Any] | None = None) -> None:
    """A job process started by `run_in_subprocess` (after `_CHILD_BOOTSTRAP`).

    TrainingProtocol, JSON lines on the process's original stdout: first ``{"hello": true, "pid",
    "network_isolated", "memory_mb", "cpu_s"}`` (how this process is confined, as the lab's worker
    says in its hello), then, after one request line on stdin (``{"job", "data_dir", "device",
    "threads"}``), the job's result. Prints of the job go to stderr, which the parent reads (`job_process._StderrTail`: never the terminal). The process ends when stdin
    closes (whoever started it is gone: nobody would read the answer).
    """
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # the job's own prints go to stderr
    sys.stdout = sys.stderr
    limits = dict(limits or {})
    protocol.write(
        json.dumps(
            {
                "hello": True,
                "pid": os.getpid(),
                "network_isolated": bool(network_isolated),
                "memory_mb": limits.get("memory_mb") or None,
                "cpu_s": limits.get("cpu_s") or None,
            }
        )
        + "\n"
    )
    protocol.flush()
    request = json.loads(sys.stdin.readline())

    def watch() -> None:
        sys.stdin.read()
        remove_own_directory()  # the parent that would have removed it is gone
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
    import torch

    torch.set_num_threads(max(1, int(request["threads"])))
    answer = json.dumps(
        execute_job(request["job"], request["data_dir"], request["device"]), allow_nan=False, default=str
    )
    protocol.write(answer + "\n")
    protocol.flush()
    sys.stderr.flush()
    # Now, without the interpreter's shutdown: nothing is left to do, and a shutdown could wait on
    # `watch`'s read of stdin (or on threads the job left behind).
    os._exit(0)
