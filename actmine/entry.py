"""The `actmine` command (pyproject's console script): `actmine.cli` loaded under a Ctrl-C guard.

Loading the command line imports torch and the rest of the package (a second or two on 2 cores). A
Ctrl-C in that time used to print a page of traceback from inside torch's import and end the process
by the signal; here it is the line and exit status of a Ctrl-C anywhere else (`cli.main`). Only
`stop_signals` (the standard library) is imported before the guard.
"""

from __future__ import annotations

import signal
import sys

from .stop_signals import exit_status


def main() -> int:
    try:
        from .cli import main as run
    except KeyboardInterrupt:
        print("actmine: interrupted", file=sys.stderr)
        return exit_status(signal.SIGINT)
    return run()
