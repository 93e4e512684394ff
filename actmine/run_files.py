"""The files of a search's run directory, named in one place (docs/architecture.md, "Run directory"):
a file's path is `run_dir / NAME`. A leaf module: the search that writes these files, and the
report, the viewer, the API and the commands that read them, all import it.
"""

from __future__ import annotations

DATABASE = "programs.sqlite"  # the whole state of the run (resume reads only it and the config)
CONFIG_SNAPSHOT = "config.yaml"  # the resolved config the run was started with
BEST_PROGRAM = "best_activation.py"  # the validation's winner as a generated program file
HELDOUT = "heldout.json"  # {winner, validation, test, comparisons}
REPORT = "report.html"  # written at the end of a search, or by `actmine report`
LOCK_FILE = ".controller.lock"  # held by the one controller of the directory
