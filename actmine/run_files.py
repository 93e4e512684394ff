"""The files of a search's run directory, named in one place (docs/architecture.md, "Run directory"):
a file's path is `run_dir / NAME`. A leaf module: the search that writes these files, and the
report, the viewer, the API and the commands that read them, all import it.
"""

from __future__ import annotations

import os
from pathlib import Path

from .yaml_text import UnreadableFile, read_small_text

DATABASE = "programs.sqlite"  # the whole state of the run (resume reads only it and the config)
CONFIG_SNAPSHOT = "config.yaml"  # the resolved config the run was started with
BEST_PROGRAM = "best_activation.py"  # the validation's winner as a generated program file
HELDOUT = "heldout.json"  # {winner, validation, test, comparisons}
REPORT = "report.html"  # written at the end of a search, or by `actmine report`
LOCK_FILE = ".controller.lock"  # held by the one controller of the directory


def stored_config(run_dir: str | os.PathLike) -> Path | None:
    """The config a run in `run_dir` was made with (its CONFIG_SNAPSHOT), where `run_dir` holds a run;
    else None. A search given no config resumes from it, so that the same command continues a run
    after an upgrade changed a default (overrides apply on top; `Config.resume_conflicts` still
    refuses what may not change)."""
    stored = Path(run_dir) / CONFIG_SNAPSHOT
    return stored if (Path(run_dir) / DATABASE).is_file() and stored.is_file() else None


#: heldout.json of a default run is about a megabyte; more than this is not a file a search wrote
MAX_RESULTS_BYTES = 64 * 2**20


def read_run_text(path: str | os.PathLike, max_bytes: int | None = None) -> str | None:
    """The UTF-8 text of a file a search wrote into its run directory, or None where it is not one
    to read (`read_small_text`'s refusals: not a regular file -- a FIFO would block the reader for
    ever, /dev/zero fill its memory --, larger than ``max_bytes`` (default `MAX_RESULTS_BYTES`),
    unreadable or not UTF-8). Readers fall back to the database, which holds everything the files do."""
    try:
        return read_small_text(path, MAX_RESULTS_BYTES if max_bytes is None else max_bytes)
    except UnreadableFile:
        return None
