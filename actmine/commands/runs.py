"""`actmine report`, `serve` and `export`: the commands that read run directories of `actmine search`.

A run directory is checked here before any work (`_existing_run`), and a damaged or too-new
database is a usage error (`_readable_run`), so each of these fails with one line and exit 2.
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager
from pathlib import Path

from ..run_files import DATABASE
from ..targets import UsageError
from ..terminal import terminal_text


def cmd_report(args: argparse.Namespace) -> int:
    run_dir = _existing_run(args.run_dir)
    from ..report.html import write_report

    baseline = _existing_run(args.baseline) if args.baseline else None
    with _readable_run():
        path = write_report(run_dir, out=args.out, top=args.top, baseline=baseline)
    print(terminal_text(f"report written to {path}"))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """A live web viewer of runs on 127.0.0.1 until Ctrl-C (docs/serve.md)."""
    from ..serve import ServeError, serve

    try:
        serve(args.run_dirs or _runs_under("runs"), port=args.port, host=args.host)
    except ServeError as exc:
        raise UsageError(str(exc)) from None
    return 0


def _runs_under(folder: str) -> list[str]:
    """The run directories directly inside `folder` (those holding a programs.sqlite), sorted."""
    return sorted(str(path.parent) for path in Path(folder).glob(f"*/{DATABASE}"))


def cmd_export(args: argparse.Namespace) -> int:
    run_dir = _existing_run(args.run_dir)
    from ..report.export import export_pack

    with _readable_run():
        path = export_pack(run_dir, args.top, args.out)
    print(
        terminal_text(
            f"exported the top {args.top} programs of {run_dir} to {path}; use them with "
            f"actmine.activations.load_pack({str(path)!r}) or actmine.activations.get('{path}:NAME')"
        )
    )
    return 0


@contextmanager
def _readable_run():
    """A damaged or too-new database (or no scored program), a database the disk cannot read now,
    or an output that cannot be written: one line, exit 2."""
    import sqlite3

    from ..evolve.database import DatabaseError
    from ..evolve.database_file import read_failure_message
    from ..language.files import ProgramFileError

    try:
        yield
    except DatabaseError as exc:
        raise UsageError(str(exc)) from None
    except ProgramFileError as exc:  # programs a search could not have recorded (a database edited by hand)
        raise UsageError(f"cannot write the program file: {exc}") from None
    except sqlite3.Error as exc:  # a table or column missing (edited, damaged), or a full disk
        raise UsageError(read_failure_message(exc)) from None
    except OSError as exc:  # the output: a directory in its place, a full disk, no permission
        raise UsageError(
            f"cannot write {exc.filename or 'the output'} ({exc.strerror or exc}); give another --out"
        ) from None


def _existing_run(run_dir: str) -> str:
    if not (Path(run_dir) / DATABASE).is_file():
        raise UsageError(
            f"{run_dir!r} is not a run directory (no programs.sqlite); give the --run-dir of an `actmine search`"
        )
    return run_dir
