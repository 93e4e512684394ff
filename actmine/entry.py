"""The `actmine` command (pyproject's console script): `actmine.cli` loaded under a Ctrl-C guard.

Loading the command line imports torch and the rest of the package (a second or two on 2 cores). A
Ctrl-C in that time used to print a page of traceback from inside torch's import and end the process
by the signal; here it is the line and exit status of a Ctrl-C anywhere else (`cli.main`). A
current directory that was deleted made torch's oneMKL stop with "FATAL ERROR: Cannot load
libtorch_cpu.so"; it is checked first and named. Only light modules are imported before the guard.
"""

from __future__ import annotations

import os
import signal
import sys

from .stop_signals import exit_status

EXIT_USAGE = 2  # commands.common.EXIT_USAGE (argparse's), not imported: that module loads torch


def main() -> int:
    try:
        os.getcwd()
    except FileNotFoundError:  # torch's oneMKL cannot load its library then: a "FATAL ERROR" and no hint
        print(
            "actmine: error: the current directory no longer exists (it was deleted or moved); "
            "cd to a directory that exists and run the command again",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        from .cli import main as run
    except KeyboardInterrupt:
        print("actmine: interrupted", file=sys.stderr)
        return exit_status(signal.SIGINT)
    return run()
