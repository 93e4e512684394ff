"""The stop signals: Ctrl-C, SIGTERM and SIGHUP handled alike, what nohup asks kept, nothing
installed outside the main thread, and the shell's exit status."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

from actmine.stop_signals import STOP_SIGNALS, exit_status, handling_stop_signals


def _handler(signum, frame):  # noqa: ARG001
    pass


def test_each_stop_signal_gets_the_handler_and_the_previous_ones_come_back():
    before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    try:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        with handling_stop_signals(_handler):
            assert all(signal.getsignal(sig) is _handler for sig in STOP_SIGNALS)
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_DFL
        assert all(signal.getsignal(sig) == before[sig] for sig in (signal.SIGINT, signal.SIGTERM))
    finally:
        for sig, old in before.items():
            signal.signal(sig, old)


def test_a_sighup_that_nohup_ignores_stays_ignored_and_an_ignored_sigint_does_not():
    """`nohup actmine search …` must outlive its terminal; a script's background job inherits an
    ignored SIGINT, and Ctrl-C must still stop the search."""
    before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    try:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with handling_stop_signals(_handler):
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            assert signal.getsignal(signal.SIGINT) is _handler
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        for sig, old in before.items():
            signal.signal(sig, old)


def test_outside_the_main_thread_nothing_is_installed():
    """`actmine.search()` from a notebook's thread: signal.signal would raise ValueError there."""
    seen = []

    def body():
        with handling_stop_signals(_handler):
            seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen and seen[0] is not _handler


def test_the_exit_status_is_128_plus_the_signal():
    assert exit_status(signal.SIGINT) == 130 and exit_status(signal.SIGTERM) == 143
    assert exit_status(signal.SIGHUP) == 129 and exit_status(None) == 130


def test_ctrl_c_while_the_command_loads_is_one_line_and_130(tmp_path):
    """The console script (`actmine.entry:main`, as its generated wrapper calls it), interrupted while
    torch is still being imported: the one line of any Ctrl-C, not a traceback from inside torch."""
    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["actmine"] == "actmine.entry:main"
    wrapper = "import sys; from actmine.entry import main; sys.exit(main())"
    process = subprocess.Popen(
        [sys.executable, "-c", wrapper, "search", "--run-dir", str(tmp_path / "run"), "--quiet"],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # not ignored, as in a terminal
    )
    maps, deadline = Path(f"/proc/{process.pid}/maps"), time.monotonic() + 60
    while time.monotonic() < deadline and "libtorch" not in maps.read_text():
        time.sleep(0.005)  # torch's library is mapped: its import has a second or so to go
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].endswith("interrupted"), err


def test_a_deleted_current_directory_is_named_not_a_fatal_error_from_torch(tmp_path):
    """torch's oneMKL cannot load its library from a deleted directory ("Intel oneMKL FATAL ERROR")."""
    from actmine.commands.common import EXIT_USAGE
    from actmine.entry import EXIT_USAGE as ENTRY_EXIT_USAGE

    assert ENTRY_EXIT_USAGE == EXIT_USAGE
    gone = tmp_path / "gone"
    gone.mkdir()
    wrapper = (
        "import os, sys; os.chdir(sys.argv[1]); os.rmdir(sys.argv[1]); from actmine.entry import main; sys.exit(main())"
    )
    result = subprocess.run(
        [sys.executable, "-c", wrapper, str(gone), "list"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == EXIT_USAGE, result.stderr
    assert "the current directory no longer exists" in result.stderr and "FATAL" not in result.stderr
