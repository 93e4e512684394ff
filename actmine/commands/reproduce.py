"""`actmine reproduce`: the options checked and turned into settings, then the verdict table.

Every option is checked before hours of work start (in option order, so the first bad option is
the one named); the work itself is `actmine.reproduce.run_reproduce`.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
from typing import Sequence

import torch

import actmine.activations as activations

from ..lab.tasks import SuiteError
from ..stop_signals import exit_status
from ..targets import UsageError
from ..targets import console as _console
from .common import _comma_list


def _reproduce_seed_counts(args: argparse.Namespace) -> dict:
    """--seeds and --transfer-seeds, checked: the lab's confidence intervals need two seeds or more."""
    changes: dict = {}
    if args.seeds is not None:
        if args.seeds < 2:
            raise UsageError("--seeds must be at least 2: the confidence intervals need two seeds or more")
        changes["seeds"] = args.seeds
    if args.transfer_seeds is not None:
        if args.transfer_seeds < 1:
            raise UsageError("--transfer-seeds must be at least 1")
        changes["transfer_seeds"] = args.transfer_seeds
    return changes


def _reproduce_suites(args: argparse.Namespace) -> dict:
    """--suite and --heldout-suite, loaded once here so that a bad one is a usage error before any work starts."""
    from ..lab.tasks import get_suite

    changes: dict = {}
    for option, key in ((args.suite, "suite"), (args.heldout_suite, "heldout_suite")):
        if option is not None:
            try:
                get_suite(option)
            except (SuiteError, ValueError, OSError) as exc:
                raise UsageError(f"--{key.replace('_', '-')}: {exc}") from None
            changes[key] = option
    return changes


def _reproduce_functions(text: str) -> tuple[str, ...]:
    """--functions as canonical registry names, ReLU first: every comparison of the paper is against it."""
    names = []
    for name in _comma_list(text):
        try:
            names.append(activations.info(name).name)
        except activations.UnknownActivationError as exc:
            raise UsageError(f"--functions: {exc}") from None
    return tuple(dict.fromkeys(["relu"] + names))


def _reproduce_alphas(text: str) -> tuple[float, ...]:
    """--alphas as sorted distinct finite numbers ≥ 0 (the weights of the alpha sweep)."""
    try:
        alphas = sorted({float(a) for a in _comma_list(text)})
    except ValueError:
        raise UsageError(f"--alphas: expected comma-separated numbers, got {text!r}") from None
    if not alphas or any(not math.isfinite(a) or a < 0 for a in alphas):
        raise UsageError("--alphas: give one or more finite numbers ≥ 0, e.g. 0,0.05,0.1,0.2")
    return tuple(alphas)


def _reproduce_benchmarks(text: str) -> dict:
    """--benchmarks: exactly the named ones, so the optional (data-dependent) benchmarks are dropped."""
    from ..transfer.base import list_benchmarks

    known = list_benchmarks()
    chosen = [b.lower() for b in _comma_list(text)]
    unknown = [b for b in chosen if b not in known]
    if unknown or not chosen:
        raise UsageError(f"--benchmarks: unknown {', '.join(unknown) or 'none given'}; known: {', '.join(known)}")
    return {"benchmarks": tuple(chosen), "optional_benchmarks": ()}


def _reproduce_transfer_options(options: Sequence[str], defaults: dict) -> dict:
    """--transfer-option values merged over the settings' own per-benchmark options (the options win)."""
    from ..transfer.runner import TransferInputError, parse_options

    try:
        parsed = parse_options(options)
    except TransferInputError as exc:
        raise UsageError(str(exc)) from None
    merged = {b: dict(o) for b, o in defaults.items()}
    for benchmark, values in parsed.items():
        merged.setdefault(benchmark, {}).update(values)
    return merged


def _reproduce_paths(args: argparse.Namespace) -> dict:
    """--validity and --data-dir, checked before hours of work: the study must be one, the directory must exist."""
    from pathlib import Path

    import actmine.reproduce as reproduce

    changes: dict = {}
    if args.validity is not None:
        if (
            not Path(args.validity).expanduser().is_file()
            or reproduce.load_validity(Path(args.validity).expanduser()) is None
        ):
            raise UsageError(
                f"--validity {args.validity!r} is not a validity study's result: give the validity.json "
                "that `actmine validate --out DIR` wrote"
            )
        changes["validity"] = str(Path(args.validity).expanduser())
    if args.data_dir is not None:
        if not Path(args.data_dir).expanduser().is_dir():
            raise UsageError(f"--data-dir {args.data_dir!r} is not a directory")
        changes["data_dir"] = str(Path(args.data_dir).expanduser())
    return changes


def _reproduce_changes(args: argparse.Namespace, settings) -> dict:
    """The settings the options change, each checked (in option order, so the first bad option is the one named)."""
    changes: dict = {"skip_transfer": args.skip_transfer, "skip_search": args.skip_search, "device": args.device}
    changes.update(_reproduce_seed_counts(args))
    changes.update(_reproduce_suites(args))
    if args.steps is not None:
        changes["steps"] = args.steps
    if args.functions is not None:
        changes["functions"] = _reproduce_functions(args.functions)
    if args.alphas is not None:
        changes["alphas"] = _reproduce_alphas(args.alphas)
    if args.benchmarks is not None:
        changes.update(_reproduce_benchmarks(args.benchmarks))
    if args.transfer_option:
        changes["transfer_options"] = _reproduce_transfer_options(args.transfer_option, settings.transfer_options)
    if args.search_budget is not None:
        changes["search"] = {**settings.search, "search.budget": args.search_budget}
    changes.update(_reproduce_paths(args))
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available to this PyTorch; use --device cpu")
    return changes


def _reproduce_settings(args: argparse.Namespace):
    """The quick or full settings with the options applied; the search part is checked against the config schema."""
    from dataclasses import replace

    import actmine.reproduce as reproduce
    from ..config import Config, ConfigError

    settings = reproduce.quick_settings(args.workers) if args.quick else reproduce.full_settings(args.workers)
    settings = replace(settings, **_reproduce_changes(args, settings))
    try:
        Config().with_overrides({"executor.workers": settings.workers, **settings.search})
    except (ConfigError, ValueError) as exc:
        raise UsageError(f"search settings: {exc}") from None
    return settings


def _print_claims(outcome: dict, out_dir: str) -> None:
    """The verdict table of `actmine reproduce`, then where the report, plots and raw JSON are."""
    import actmine.reproduce as reproduce
    from rich.table import Table

    console = _console()
    table = Table(title="the paper's claims, checked by our lab")
    for column in ("#", "claim", "verdict", "why"):
        table.add_column(column, overflow="fold")
    colours = {reproduce.REPRODUCED: "green", reproduce.NOT_REPRODUCED: "red", reproduce.NOT_CHECKABLE: "yellow"}
    from rich.markup import escape

    for i, claim in enumerate(outcome["claims"], 1):
        table.add_row(str(i), escape(claim.claim), f"[{colours[claim.verdict]}]{claim.verdict}[/]", escape(claim.why))
    console.print(table)
    reused = f"; reused: {', '.join(outcome['resumed'])}" if outcome["resumed"] else ""
    console.print(
        f"report: {outcome['doc']}; plots and raw JSON: {out_dir}/; {outcome['wall_seconds']:.0f} s{reused}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def cmd_reproduce(args: argparse.Namespace) -> int:
    """`actmine reproduce`: the paper's claims checked by our lab (actmine/reproduce/)."""
    import actmine.reproduce as reproduce

    settings = _reproduce_settings(args)
    errors = _console(stderr=True)
    progress = reproduce.Progress(errors, enabled=not args.quiet)
    try:
        outcome = reproduce.run_reproduce(
            settings, out_dir=args.out_dir, doc=args.doc, force=args.force, progress=progress
        )
    except KeyboardInterrupt:
        print(
            f"actmine: interrupted; finished parts are saved in {args.out_dir}/: run the same command again to resume",
            file=sys.stderr,
        )
        return exit_status(signal.SIGINT)
    _print_claims(outcome, args.out_dir)
    return 0
