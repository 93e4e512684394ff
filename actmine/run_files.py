"""The files of a search's run directory, named in one place (docs/architecture.md, "Run directory").

`RunFiles(run_dir)` gives their paths; the names are also module constants for code that only
needs a name. A leaf module: the search that writes these files, and the report, the viewer, the
API and the commands that read them, all import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DATABASE = "programs.sqlite"          # the whole state of the run (resume reads only it and the config)
CONFIG_SNAPSHOT = "config.yaml"       # the resolved config the run was started with
BEST_PROGRAM = "best_activation.py"   # the validation's winner as a generated program file
HELDOUT = "heldout.json"              # {winner, validation, test, comparisons}
REPORT = "report.html"                # written at the end of a search, or by `actmine report`
LOCK_FILE = ".controller.lock"        # held by the one controller of the directory


@dataclass(frozen=True)
class RunFiles:
    """The paths of one run directory's files."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def database(self) -> Path:
        return self.root / DATABASE

    @property
    def config(self) -> Path:
        return self.root / CONFIG_SNAPSHOT

    @property
    def best_program(self) -> Path:
        return self.root / BEST_PROGRAM

    @property
    def heldout(self) -> Path:
        return self.root / HELDOUT

    @property
    def report(self) -> Path:
        return self.root / REPORT

    @property
    def lock(self) -> Path:
        return self.root / LOCK_FILE
