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

This module is the driver (`run_transfer`: check, plan, resume, run, summarise, write). The steps
live in modules of their own, each re-exported here: ``inputs`` (resolving and checking the
input), ``limits`` (job budgets), ``job_process`` and ``child`` (a job's confined process, the
parent's and the child's side of its protocol; `run_jobs` hands them to the job system's pools,
``actmine.executors.job_pool``), ``journal`` (``results.jsonl`` and resuming) and ``report``
(table, CSV, figure).
"""

from __future__ import annotations

import concurrent.futures
import json
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic_files import write_text_atomically
from ..terminal import progress_bar, progress_text, terminal_text
from .base import DatasetMissing as DatasetMissing
from .child import _job_main as _job_main, execute_job as execute_job
from .inputs import (
    ActivationSpec as ActivationSpec,
    TransferInputError as TransferInputError,
    _class_path as _class_path,
    _resolve_activations,
    check_benchmarks as check_benchmarks,
    default_data_dir as default_data_dir,
    parse_options as parse_options,
    resolve_activation as resolve_activation,
)
from .job_process import _answer, run_in_subprocess as run_in_subprocess
from .jobs import TransferJob as TransferJob, TransferResult as TransferResult, _failed, _printable as _printable
from .journal import _read_done as _read_done, _resume, end_partial_line as end_partial_line
from .limits import (
    DEFAULT_BUDGET as DEFAULT_BUDGET,
    JOB_BUDGETS as JOB_BUDGETS,
    JobBudget as JobBudget,
    TransferLimits as TransferLimits,
    job_budget as job_budget,
)
from .report import _csv_text, plot_log_ratios as plot_log_ratios, results_table as results_table
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
    "run_jobs",
    "run_transfer",
    "summarise",
]


def run_jobs(
    jobs: Sequence[TransferJob],
    data_dir: str,
    device: str,
    limits: Mapping[str, Mapping[str, Any]],
    on_result: Callable[[TransferResult], None],
    executor: str = "local",
    workers: int | None = None,
    scheduler: str | None = None,
    notify: Callable[[str], None] = lambda message: None,
) -> None:
    """Every job on the job system's pool ``executor`` (`actmine.executors.make_job_pool`), each in
    its own confined process (`run_in_subprocess`, under ``limits[job.benchmark]``); each result goes
    to ``on_result`` as it arrives, a job lost by the pool as a failed result (``executor_error``).
    Interrupted (Ctrl-C), the running jobs' processes are killed and nothing more is started. A pool
    that lost its cluster (`ExecutorLost`: a Dask scheduler died) stops the run: the jobs in flight
    are not recorded, so that the same command runs them again."""
    # imported here, not above: every job's own process imports this package, and need not load Dask
    from ..executors import ClusterUnavailable, ExecutorLost, make_job_pool

    try:
        pool = make_job_pool(executor, workers, scheduler, device, notify, at_most=len(jobs))
    except (ClusterUnavailable, ValueError) as exc:
        raise TransferInputError(str(exc)) from None
    try:
        futures = {
            pool.submit(run_in_subprocess, job.to_dict(), data_dir, device, limits.get(job.benchmark)): job
            for job in jobs
        }
        for future in concurrent.futures.as_completed(futures):
            job = futures[future]
            try:
                result = _answer(job, future.result())
            except concurrent.futures.CancelledError:
                continue
            except ExecutorLost:
                raise  # the cluster, not the job: nothing more can run, and a rerun resumes
            except Exception as exc:  # noqa: BLE001 - a lost Dask worker, no process could be started
                result = _failed(
                    job, "executor_error", f"the job was lost by the {executor} executor: {type(exc).__name__}: {exc}"
                )
            on_result(result)
    finally:
        pool.close()


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


class _Progress:
    """A rich progress bar on a terminal's stderr; elsewhere one line per finished job."""

    def __init__(self, total: int, enabled: bool, console: Any = None):
        from rich.console import Console

        self.total, self.done, self.enabled = total, 0, enabled
        self.console = console or Console(stderr=True)
        self.bar = None
        if enabled and self.console.is_terminal:
            self.bar = progress_bar("transfer", self.console)
            self.task = self.bar.add_task("", total=total)
            self.bar.start()

    def advance(self, result: TransferResult) -> None:
        self.done += 1
        what = f"{result.activation} on {result.benchmark} seed {result.seed}"
        if result.ok:
            outcome = f"{result.metric or 'score'} {result.score:.4f} ({result.seconds:.1f} s)"
        else:
            outcome = f"failed [{result.error['code']}] {result.error['message']}"
        line = terminal_text(f"[{self.done}/{self.total}] {what}: {outcome}", keep_newlines=False)
        if self.bar is not None:
            self.bar.update(self.task, advance=1, description=progress_text(what))
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


def _checked_seeds(
    activations: Sequence[str],
    benchmarks: Sequence[str],
    seeds: int | Sequence[int],
    device: str,
    executor: str,
    scheduler: str | None,
    workers: int | None,
) -> list[int]:
    """The run's seeds, after checking the arguments that need nothing resolved: bad input raises
    `TransferInputError` here, before anything is read or started."""
    if device not in ("cpu", "cuda"):
        raise TransferInputError(f"unknown device {device!r}; choose cpu or cuda")
    from ..executors import job_pool_names

    if executor not in job_pool_names():
        raise TransferInputError(f"unknown executor {executor!r}; choose one of: {', '.join(job_pool_names())}")
    if scheduler and executor != "dask":
        raise TransferInputError("a scheduler address needs the 'dask' executor (--executor dask)")
    if workers is not None and workers < 1:
        raise TransferInputError("workers must be at least 1")
    if executor == "local":
        from ..candidate.sandbox import check_local_workers

        try:
            check_local_workers(workers, "--workers")
        except ValueError as exc:
            raise TransferInputError(str(exc)) from None
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


def _job_limits(
    limits: TransferLimits | None,
    classes: Mapping[str, type],
    options: Mapping[str, Mapping[str, Any]],
    device: str,
    notify: Callable[[str], None],
) -> dict[str, dict[str, Any]]:
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


def _plan_run(
    activations: Sequence[str],
    benchmarks: Sequence[str],
    seeds: list[int],
    options: Mapping[str, Mapping[str, Any]] | None,
    epochs: int | None,
    data_dir: str | Path | None,
    device: str,
    executor: str,
    workers: int | None,
    scheduler: str | None,
    limits: TransferLimits | None,
    notify: Callable[[str], None],
) -> _RunPlan:
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
    jobs = [
        TransferJob(s.name, name, seed, dict(resolved_options[name]), s.source, s.reference, paths[name])
        for name in classes
        for seed in seeds
        for s in specs
    ]
    return _RunPlan(
        specs,
        added_relu,
        data,
        classes,
        resolved_options,
        job_limits,
        seeds,
        jobs,
        device,
        executor,
        workers,
        scheduler,
    )


def _run_jobs(
    todo: list[TransferJob],
    plan: _RunPlan,
    journal: Path,
    results: dict[str, TransferResult],
    bar: _Progress,
    notify: Callable[[str], None],
) -> None:
    """Run ``todo`` on the plan's executor; each result goes into ``results``, is appended to ``journal``
    as it arrives (so an interrupted run loses only the jobs in flight) and advances ``bar``."""
    lock = threading.Lock()  # results arrive on the executor's threads

    def on_result(result: TransferResult) -> None:
        with lock:
            results[result.key] = result
            with journal.open("a", encoding="utf-8") as stream:
                stream.write(json.dumps(result.to_dict(), allow_nan=False) + "\n")
            bar.advance(result)

    if todo:
        run_jobs(
            todo,
            str(plan.data),
            plan.device,
            plan.limits,
            on_result,
            plan.executor,
            plan.workers,
            plan.scheduler,
            notify,
        )


def _in_run_order(results: Mapping[str, TransferResult], plan: _RunPlan) -> list[TransferResult]:
    """The run's results in activation × benchmark × seed order (jobs finish in any order)."""
    order = {
        (s.name, b, seed): i
        for i, (s, b, seed) in enumerate((s, b, seed) for s in plan.specs for b in plan.classes for seed in plan.seeds)
    }
    return sorted(
        (results[job.key] for job in plan.jobs if job.key in results),
        key=lambda r: order[(r.activation, r.benchmark, r.seed)],
    )


def _run_document(
    plan: _RunPlan, resumed: int, seconds: float, ordered: Sequence[TransferResult], rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """``results.json``'s content: the run's settings, every job's result and the summary."""
    return {
        "activations": [{"name": s.name, "kind": s.kind, "given": s.given} for s in plan.specs],
        "benchmarks": list(plan.classes),
        "seeds": plan.seeds,
        "options": plan.options,
        "limits": plan.limits,
        "device": plan.device,
        "executor": plan.executor,
        "data_dir": str(plan.data),
        "added_relu": plan.added_relu,
        "resumed": resumed,
        "seconds": seconds,
        "log_ratio": (
            "per benchmark: mean over the seeds both scored of clip(ln(error_act / error_relu), ±3), "
            f"error = 1 − score (floored at {ERROR_FLOOR:g}); for scores outside [0, 1]: "
            "−ln(score_act / score_relu). Negative beats ReLU."
        ),
        "jobs": [r.to_dict() for r in ordered],
        "summary": rows,
    }


def _write_outputs(
    out: Path, journal: Path, document: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]
) -> dict[str, Path]:
    """Write ``results.json``, ``summary.csv`` (each atomically: a reader never sees half a file)
    and ``transfer.png``; the run's files, the journal included."""
    files = {
        "journal": journal,
        "json": out / "results.json",
        "csv": out / "summary.csv",
        "figure": out / "transfer.png",
    }
    write_text_atomically(files["json"], json.dumps(document, indent=2, allow_nan=False))
    write_text_atomically(files["csv"], _csv_text(rows))
    plot_log_ratios(rows, files["figure"])
    return files


def run_transfer(
    activations: Sequence[str],
    benchmarks: Sequence[str] = ("digits",),
    seeds: int | Sequence[int] = 3,
    *,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    epochs: int | None = None,
    data_dir: str | Path | None = None,
    device: str = "cpu",
    executor: str = "local",
    workers: int | None = None,
    scheduler: str | None = None,
    limits: TransferLimits | None = None,
    out: str | Path = "transfer",
    progress: bool = True,
    notify: Callable[[str], None] | None = None,
    console: Any = None,
) -> TransferRun:
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
    plan = _plan_run(
        activations,
        benchmarks,
        seed_list,
        options,
        epochs,
        data_dir,
        device,
        executor,
        workers,
        scheduler,
        limits,
        notify,
    )
    out = Path(out)
    journal, results, resumed = _run_pending_jobs(plan, out, progress, console, notify)
    return _finished_run(plan, out, journal, results, resumed, started)


def _run_pending_jobs(
    plan: _RunPlan, out: Path, progress: bool, console: Any, notify: Callable[[str], None]
) -> tuple[Path, dict[str, TransferResult], int]:
    """Run the plan's jobs not already done ok in ``out``'s journal, behind a progress bar.

    Returns the journal, every job's result (those resumed from the journal included) and how
    many jobs were resumed rather than run."""
    out.mkdir(parents=True, exist_ok=True)
    journal = out / "results.jsonl"
    results, todo = _resume(plan.jobs, out, journal, notify)
    bar = _Progress(len(todo), progress, console)
    try:
        _run_jobs(todo, plan, journal, results, bar, notify)
    finally:
        bar.close()
    return journal, results, len(plan.jobs) - len(todo)


def _finished_run(
    plan: _RunPlan,
    out: Path,
    journal: Path,
    results: Mapping[str, TransferResult],
    resumed: int,
    started: float,
) -> TransferRun:
    """Order and summarise the results, write ``out``'s files and say what the run did; its
    ``seconds`` count from ``started`` (`time.perf_counter`) to the summary, writing left out."""
    ordered = _in_run_order(results, plan)
    rows = summarise(ordered)
    seconds = round(time.perf_counter() - started, 3)
    files = _write_outputs(out, journal, _run_document(plan, resumed, seconds, ordered, rows), rows)
    return TransferRun(
        results=ordered,
        rows=rows,
        activations=[s.name for s in plan.specs],
        benchmarks=list(plan.classes),
        seeds=plan.seeds,
        added_relu=plan.added_relu,
        resumed=resumed,
        seconds=seconds,
        files=files,
    )
