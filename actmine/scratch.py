"""Throw-away directories of child processes, and sweeping the ones a killed process left behind.

A pool gives each child process it starts (a sandboxed lab worker, a transfer job) a private
directory as its cwd, HOME and TMPDIR, and removes it when the child ends. A process killed with
SIGKILL (an operator, the out-of-memory killer, a crashed CI runner) removes nothing, and the child
that outlives it may be busy writing there (a kernel being compiled) when it notices and exits. So:

- `ScratchDirectory(prefix)` makes the directory with an `owner.lock` inside, locked (`flock`) by a
  file descriptor that the caller keeps and passes to its child (`pass_fds`): the lock is held
  while either of them, or a process the child forked with it, is alive.
- `sweep(prefix)` removes every `prefix*` directory in the temporary directory whose lock nobody
  holds -- its owners are gone -- and one without a lock file that is older than `UNLOCKED_GRACE_S`
  (made by an older version, or caught in the microseconds before its lock exists). Pools sweep
  once per process before their first directory, so what a killed run left lasts until the next
  start. Directories of other users cannot be opened and are left alone.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time

__all__ = ["LOCK_NAME", "ScratchDirectory", "TRANSFER_PREFIX", "WORKER_PREFIX", "remove_own_directory", "sweep"]

LOCK_NAME = "owner.lock"
UNLOCKED_GRACE_S = 3600.0
WORKER_PREFIX = "actmine-worker-"  # a sandboxed lab worker's (`candidate.sandbox`)
TRANSFER_PREFIX = "actmine-transfer-"  # a transfer job's process (`transfer.job_process`)
#: The prefixes of this package's scratch directories (`remove_own_directory` removes only these).
PREFIXES = (WORKER_PREFIX, TRANSFER_PREFIX)
_swept: set[tuple[str, str]] = set()


class ScratchDirectory:
    """A fresh private directory (`path`) and the descriptor (`lock_fd`) that holds its lock."""

    def __init__(self, prefix: str):
        if (tempfile.gettempdir(), prefix) not in _swept:
            _swept.add((tempfile.gettempdir(), prefix))
            sweep(prefix)
        self.path = tempfile.mkdtemp(prefix=prefix)
        # Locked under a temporary name, then renamed: a sweeper never sees an unlocked `owner.lock`.
        pending = os.path.join(self.path, LOCK_NAME + ".new")
        self.lock_fd = os.open(pending, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
        os.rename(pending, os.path.join(self.path, LOCK_NAME))

    def remove(self) -> None:
        """Remove the directory, then let go of its lock (idempotent)."""
        shutil.rmtree(self.path, ignore_errors=True)
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
            self.lock_fd = -1


def _owners_gone(directory: str) -> bool:
    """Whether no process holds the directory's lock (or it has none and is older than the grace)."""
    try:
        fd = os.open(os.path.join(directory, LOCK_NAME), os.O_RDWR)
    except FileNotFoundError:
        try:
            return time.time() - os.stat(directory).st_mtime > UNLOCKED_GRACE_S
        except OSError:
            return False
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def sweep(prefix: str, root: str | None = None) -> list[str]:
    """Remove the `prefix*` directories in `root` (default: the temporary directory) whose owners are
    gone; the paths removed."""
    root = root or tempfile.gettempdir()
    try:
        names = [name for name in os.listdir(root) if name.startswith(prefix)]
    except OSError:
        return []
    removed = []
    for name in names:
        path = os.path.join(root, name)
        if os.path.isdir(path) and not os.path.islink(path) and _owners_gone(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def remove_own_directory() -> None:
    """In a child: remove its scratch directory (its TMPDIR, when that is one of `PREFIXES`), as it
    exits because its parent is gone."""
    directory = os.environ.get("TMPDIR", "")
    if os.path.basename(directory).startswith(PREFIXES):
        shutil.rmtree(directory, ignore_errors=True)
