"""`actmine transfer` and `actmine validate`: real models trained with each activation.

The work is in `actmine.transfer` and `actmine.validity`; here only the options turned into their
settings, the usage errors, the interruption message and the printed tables.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from ..executors.base import ExecutorLost
from ..targets import UsageError
from ..targets import console as _console
from ..stop_signals import exit_status
from ..terminal import terminal_text
from .common import EXIT_REFUSED, _comma_list


def _stopped_by_cluster(exc: Exception, kept: str) -> int:
    """One line for work whose Dask cluster was lost (`ExecutorLost`): what happened, what is kept,
    how to resume; exit 1 (the machine, not the input)."""
    print(
        terminal_text(f"actmine: error: {exc}; {kept}: run the same command again to resume"),
        file=sys.stderr,
    )
    return 1


def cmd_transfer(args: argparse.Namespace) -> int:
    from ..transfer.base import DatasetMissing
    from ..transfer.runner import TransferInputError, TransferLimits, parse_options, results_table, run_transfer

    if args.epochs is not None and args.epochs < 1:
        raise UsageError("--epochs must be at least 1")
    errors = _console(stderr=True)
    try:
        limits = TransferLimits(timeout_s=args.timeout, cpu_s=args.cpu_time, memory_mb=args.memory_mb)
        run = run_transfer(
            _comma_list(args.activations),
            _comma_list(args.benchmarks),
            args.seeds,
            options=parse_options(args.option),
            epochs=args.epochs,
            data_dir=args.data_dir,
            device=args.device,
            executor=args.executor,
            workers=args.workers,
            scheduler=args.scheduler,
            limits=limits,
            out=args.out,
            progress=not args.quiet,
            notify=lambda message: errors.print(message, markup=False, highlight=False),
            console=errors,
        )
    except (TransferInputError, DatasetMissing) as exc:
        raise UsageError(str(exc)) from None
    except KeyboardInterrupt:
        print(
            f"actmine: interrupted; finished jobs are in {args.out}/results.jsonl: run the same command "
            "again to resume",
            file=sys.stderr,
        )
        return exit_status(signal.SIGINT)
    except ExecutorLost as exc:
        return _stopped_by_cluster(exc, f"finished jobs are in {args.out}/results.jsonl")
    console = _console()
    seeds = f"{len(run.seeds)} seed" + ("s" if len(run.seeds) != 1 else "")
    console.print(results_table(run.rows, title=f"transfer: mean ± std over {seeds} (log-ratio vs ReLU)"))
    console.print(
        "log-ratio: mean over seeds of ln(error / ReLU's error), error = 1 − score; negative beats ReLU.",
        markup=False,
        highlight=False,
    )
    failed = [r for r in run.results if not r.ok]
    console.print(
        f"{len(run.results) - len(failed)} of {len(run.results)} jobs scored"
        + (f" ({run.resumed} from an earlier run)" if run.resumed else "")
        + f" in {run.seconds:.1f} s; written: "
        + ", ".join(str(run.files[k]) for k in ("json", "csv", "figure")),
        markup=False,
        highlight=False,
    )
    return EXIT_REFUSED if failed else 0


def cmd_validate(args: argparse.Namespace) -> int:
    """The validity study: the work is `actmine.validity.run_validity`; here only options and output."""
    import actmine.validity as validity
    from ..reproduce import Progress

    settings = validity.Settings(
        benchmarks=tuple(_comma_list(args.benchmarks)),
        seeds=args.seeds,
        random=args.random,
        random_pool=args.random_pool,
        random_seed=args.random_seed,
        runs=tuple(args.runs),
        functions=tuple(args.functions) if args.functions else None,
        lab_suites=tuple(_comma_list(args.lab_suites)) if args.lab_suites else None,
        executor=args.executor,
        workers=args.workers,
        scheduler=args.scheduler,
        options=tuple(args.option),
        data_dir=args.data_dir,
        replicates=args.replicates,
    )
    try:
        document = validity.run_validity(
            settings, args.out, progress=Progress(_console(stderr=True), enabled=not args.quiet)
        )
    except validity.ValidityInputError as exc:
        raise UsageError(str(exc)) from None
    except ExecutorLost as exc:
        return _stopped_by_cluster(exc, f"the finished lab scores and transfer jobs are saved in {args.out}/")
    except KeyboardInterrupt:
        print(
            terminal_text(
                f"actmine: interrupted; the finished lab scores and transfer jobs are saved in "
                f"{args.out}/: run the same command again to resume"
            ),
            file=sys.stderr,
        )
        return exit_status(signal.SIGINT)
    console = _console()
    console.print(validity.summary_table(document))
    cost = document["cost"]
    plots = ", ".join(document["files"]["plots"].values())
    console.print(
        terminal_text(
            f"report: {os.path.join(args.out, 'validity.md')}; numbers: validity.json; plots: "
            f"{plots}; compute {cost['cpu_seconds']:.0f} s in all, this run "
            f"{cost['wall_seconds']:.0f} s"
        ),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    return 0
