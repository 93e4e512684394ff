"""The activations a user names on the command line or in the Python API, and how they are scored.

A target is a registry name (trusted: runs here) or a program file, `FILE.py` or `PACK.py:NAME`
(untrusted: read as data here and run only in sandboxed workers). A program compiled in this process
(a pack program registered by `load_pack`, `Run.best_module()`, an imported `best_activation.py`) is
untrusted too, whether it is named or passed as an object: its text goes to a sandboxed worker.
`scoring_config` turns the options of `actmine evaluate/compare` into a `Config`, `lab_for` builds
their lab from it, and `evaluate_targets` scores the targets in it. Shared
by `cli.py` and `api.py`, which both sit above this module, so that both score alike and neither
imports the other.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Sequence

import torch

import actmine.activations as activations

from .config import Config, ConfigError
from .candidate.probes import ProbeBudget
from .candidate.sandbox import SandboxLimits, SandboxPool
from .candidate.source import CandidateError, program_source, read_candidate_reference
from .lab.fitness import Evaluation, Lab
from .lab.tasks import SuiteError
from .language.files import split_program_reference
from .terminal import progress_text

__all__ = [
    "Target",
    "UsageError",
    "console",
    "evaluate_targets",
    "lab_for",
    "object_target",
    "pack_members",
    "resolve_target",
    "scoring_config",
]


class UsageError(Exception):
    """Bad input from the user: printed as one clear line, exit status 2."""


@dataclass(frozen=True)
class Target:
    """What the user named: a registry activation (trusted, runs here) or a program file's source
    (untrusted, runs only in a sandboxed worker)."""

    name: str
    module: torch.nn.Module | None = None
    source: str | None = None


def resolve_target(target: str) -> Target:
    """A registry name, or a program given as `FILE.py` or `FILE.py:NAME` (a program of an export
    pack): a program's source is only read here (as data for a generated file), never run in this
    process -- it goes to a sandboxed worker like any candidate."""
    if target.endswith(".py") or os.sep in target or split_program_reference(target) is not None:
        try:
            return Target(target, source=read_candidate_reference(target)[1])
        except CandidateError as exc:
            raise UsageError(f"{exc} [{exc.code}]") from None
    try:
        module = activations.get(target)
    except activations.UnknownActivationError as exc:
        raise UsageError(
            f"{exc}. Give a registry name (see `actmine list`) or a .py file defining activation_function(x)."
        ) from None
    return object_target(module, activations.info(target).name)


def object_target(activation: object, name: str) -> Target:
    """A module or callable to score: trusted code (it runs here), unless it is a candidate program
    compiled in this process (`program_source`: a registered pack program, `Run.best_module()`,
    `best_activation.activation_function`), whose text then goes to a sandboxed worker like a file's."""
    source = program_source(activation)
    if source is not None:
        return Target(name, source=source)
    return Target(name, module=activations.get(activation))


def scoring_config(
    suite: str = "lab",
    *,
    seeds: int | None = None,
    steps: int | None = None,
    max_flops: float = ProbeBudget.max_flops_per_element,
    allow_batch_dependent: bool = False,
    timeout: float = SandboxLimits.timeout_s,
    memory_mb: int = SandboxLimits.memory_mb,
) -> Config:
    """The options of `actmine evaluate`/`compare` (and of `actmine.api`) as overrides of the default
    `Config`: `lab.suite`, `lab.training_seeds` (None: the suite's own), `lab.steps` (None: the config's),
    `probes.*`, and `sandbox.*` (the timeout is wall clock and CPU). The lab (`lab_for`) and the
    sandbox limits (`Config.sandbox_limits`) then come from it, as the search's do. Bad values: UsageError."""
    lab: dict = {"suite": str(suite), "training_seeds": seeds, **({"steps": steps} if steps is not None else {})}
    try:
        return Config.from_dict(
            {
                "lab": lab,
                "probes": {"max_flops_per_element": max_flops, "allow_batch_dependent": allow_batch_dependent},
                "sandbox": {"timeout_s": timeout, "cpu_s": timeout, "memory_mb": memory_mb},
            },
            source="options",
        )
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def lab_for(config: Config, device: str = "cpu") -> Lab:
    """The lab of `actmine evaluate` and `compare` (`Config.build_lab` of `scoring_config`'s config);
    shared with `actmine.api` so that both score alike. Bad values: UsageError."""
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available to this PyTorch; use --device cpu")
    try:
        return config.build_lab(device=device)
    except (SuiteError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def console(stderr: bool = False):
    """A rich console; when output goes to a file or pipe, wide enough for the tables (not 80)."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 160)


def evaluate_targets(
    lab: Lab, targets: Sequence[str | Target], limits: SandboxLimits, show_progress: bool = True
) -> list[Evaluation]:
    """Evaluate each target (a text for `resolve_target`, or a `Target` already resolved), with a
    progress bar on a terminal (when `show_progress`). Programs run in sandboxed workers (several at
    once) under `limits`; the library's activations and the user's own modules run in this process.
    Shared by `actmine evaluate/compare` and `actmine.api`."""
    # fail on a bad name before any training
    resolved = [t if isinstance(t, Target) else resolve_target(t) for t in targets]
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    files = [t for t in resolved if t.source is not None]
    results: dict[int, Evaluation] = {}
    with (
        Progress(
            TextColumn("{task.description}", markup=False),  # names are untrusted text (`progress_text`)
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            transient=True,
            disable=not show_progress or not sys.stderr.isatty(),
            console=console(stderr=True),
        ) as progress,
        SandboxPool(workers=min(len(files), os.cpu_count() or 1) or 1, limits=limits) as pool,
    ):
        bar = progress.add_task("reference: relu", total=len(resolved))
        lab.reference  # computed (or read from the cache) once, before the candidates
        futures = {i: pool.submit(t.source, lab, t.name) for i, t in enumerate(resolved) if t.source is not None}
        for i, target in enumerate(resolved):
            progress.update(bar, description=f"evaluating: {progress_text(target.name)}")
            results[i] = futures[i].result() if i in futures else lab.evaluate(target.module, name=target.name)
            progress.advance(bar)
    return [results[i] for i in range(len(resolved))]


def pack_members(targets: Sequence[str]) -> list[str]:
    """The targets, with a generated program file of several programs (an export pack) given
    alone replaced by each of its programs as `PACK.py:NAME` (read as data, never imported)."""
    from .candidate.source import read_program_file_at

    expanded = []
    for target in targets:
        names: list[str] = []
        if target.endswith(".py"):
            try:
                names = read_program_file_at(target).names
            except CandidateError:
                pass  # not a generated file (or a damaged one): resolve_target says what is wrong
        expanded += [f"{target}:{name}" for name in names] if len(names) > 1 else [target]
    return expanded
