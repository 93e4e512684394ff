"""Scratch directories: removed by their owner, and by the next start when their owners were killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from actmine import scratch
from actmine.candidate.sandbox import SandboxPool
from actmine.scratch import WORKER_PREFIX, ScratchDirectory, sweep

# A process that makes a scratch directory, starts a child holding its lock (as a pool's worker
# does), says both pids and the path, and waits to be killed.
OWNER = """
import subprocess, sys, time
from actmine.scratch import ScratchDirectory
directory = ScratchDirectory(sys.argv[1])
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], pass_fds=(directory.lock_fd,),
                         start_new_session=True)
print(child.pid, directory.path, flush=True)
time.sleep(600)
"""


@pytest.fixture()
def temporary(tmp_path, monkeypatch):
    """The temporary directory of this process and its children: `tmp_path`."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def kill(pid: int) -> None:
    """SIGKILL a process that is not our child, and wait until it has closed its files: it is gone, or
    a zombie whose other threads have ended too (a leader thread shows Z before they have)."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                zombie = stat.read().rsplit(")", 1)[1].split()[0] == "Z"
            if zombie and len(os.listdir(f"/proc/{pid}/task")) <= 1:
                return
        except FileNotFoundError:
            return
        time.sleep(0.02)


def test_a_directory_is_swept_only_once_every_owner_is_gone(temporary):
    owner = subprocess.Popen([sys.executable, "-c", OWNER, "actmine-test-"], stdout=subprocess.PIPE, text=True)
    child_pid, path = owner.stdout.readline().split()
    owner.kill()  # SIGKILL: it removes nothing
    owner.wait()
    assert os.path.isdir(path)
    assert sweep("actmine-test-") == [] and os.path.isdir(path)  # its child still holds the lock
    kill(int(child_pid))
    assert sweep("actmine-test-") == [path] and not os.path.exists(path)


def test_sweep_leaves_live_fresh_foreign_and_non_directories_alone(temporary):
    live = ScratchDirectory("actmine-test-")  # held by this process
    fresh = temporary / "actmine-test-fresh"  # no lock yet (being made, or an older version's, just now)
    fresh.mkdir()
    old = temporary / "actmine-test-old"  # no lock, older than the grace: an older version's, killed
    old.mkdir()
    (old / "kernel.so").write_bytes(b"x")
    stale = time.time() - scratch.UNLOCKED_GRACE_S - 60
    os.utime(old, (stale, stale))
    other = temporary / "someone-else-old"
    other.mkdir()
    os.utime(other, (stale, stale))
    (temporary / "actmine-test-file").write_text("not a directory")
    assert sweep("actmine-test-") == [str(old)]
    assert os.path.isdir(live.path) and fresh.is_dir() and other.is_dir()
    assert (temporary / "actmine-test-file").is_file()
    live.remove()
    live.remove()  # idempotent
    assert not os.path.exists(live.path)


def test_a_pool_sweeps_what_a_killed_pool_and_its_worker_left(temporary):
    # A pool's process and its worker both SIGKILLed (an out-of-memory killer, a CI runner ending
    # everything): nobody removed the worker's directory; the next pool does, before its first worker.
    owner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from actmine.candidate.sandbox import SandboxPool\n"
            "pool = SandboxPool(1); pool.start(); print(*pool.worker_pids(), flush=True)\n"
            "import time; time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    (worker,) = owner.stdout.readline().split()
    kill(int(worker))
    owner.kill()
    owner.wait()
    (left,) = [p for p in temporary.iterdir() if p.name.startswith(WORKER_PREFIX)]
    assert (left / scratch.LOCK_NAME).is_file()
    scratch._swept.clear()  # as in a new process
    with SandboxPool(1) as pool:
        pool.start()
        (mine,) = [p for p in temporary.iterdir() if p.name.startswith(WORKER_PREFIX)]
        assert mine != left and not left.exists()
    assert not [p for p in temporary.iterdir() if p.name.startswith(WORKER_PREFIX)]
