"""The signals that ask a command to stop, handled alike: Ctrl-C (SIGINT), SIGTERM (`timeout`,
`kill`, `docker stop`, Slurm at its time limit) and SIGHUP (a closed terminal or ssh session).

Left to their defaults, SIGTERM and SIGHUP end the process at once and silently: a search then
stays marked "running" with no process behind it, and the user sees nothing. Under
`handling_stop_signals(handler)` each of them calls `handler` instead (by default
`raise_interrupt`: a KeyboardInterrupt, as Ctrl-C gives), so the command stops the way it stops
for Ctrl-C and says so in one line; `exit_status` is then the shell's convention, 128 + the signal.

- A SIGHUP that is ignored when we start stays ignored: that is what `nohup` asks for.
- SIGINT is taken even when it was ignored: a script's background job inherits an ignored SIGINT,
  and Python then installs no KeyboardInterrupt of its own, so Ctrl-C would do nothing.
- Only the main thread can set handlers; elsewhere (a notebook's worker thread) nothing is
  installed and the process's own handling applies.

This module depends on nothing else in actmine, so any layer may use it.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

Handler = Callable[[int, Any], None]


def raise_interrupt(signum: int, frame: Any) -> None:  # noqa: ARG001 (a signal handler's signature)
    raise KeyboardInterrupt


def exit_status(signum: int | None) -> int:
    """The exit status of a command that a signal stopped (130 for Ctrl-C, 143 for SIGTERM)."""
    return 128 + int(signum if signum is not None else signal.SIGINT)


@contextmanager
def handling_stop_signals(handler: Handler = raise_interrupt) -> Iterator[None]:
    """`handler` for each stop signal while the block runs; the previous handlers afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}
    for sig in STOP_SIGNALS:
        if sig == signal.SIGHUP and signal.getsignal(sig) == signal.SIG_IGN:
            continue  # nohup
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
