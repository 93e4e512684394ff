"""The files of a search's run directory, named in one place (docs/architecture.md, "Run directory"):
a file's path is `run_dir / NAME`. A leaf module: the search that writes these files, and the
report, the viewer, the API and the commands that read them, all import it.
"""

from __future__ import annotations

import os
from pathlib import Path

DATABASE = "programs.sqlite"  # the whole state of the run (resume reads only it and the config)
CONFIG_SNAPSHOT = "config.yaml"  # the resolved config the run was started with
BEST_PROGRAM = "best_activation.py"  # the validation's winner as a generated program file
HELDOUT = "heldout.json"  # {winner, validation, test, comparisons}
REPORT = "report.html"  # written at the end of a search, or by `actmine report`
LOCK_FILE = ".controller.lock"  # held by the one controller of the directory


def resume_config_file(config: str | os.PathLike | None, run_dir: str | os.PathLike) -> str | os.PathLike | None:
    """The config file a search starts from: `config` if given; else, where `run_dir` already holds a
    run, the config that run was made with (its CONFIG_SNAPSHOT), so that the same command resumes it
    after an upgrade changed a default; else None (the embedded defaults). Overrides apply on top, and
    a resume still refuses what may not change (`Config.resume_conflicts`)."""
    stored = Path(run_dir) / CONFIG_SNAPSHOT
    if config is None and (Path(run_dir) / DATABASE).is_file() and stored.is_file():
        return stored
    return config
