"""One controller per run directory: an advisory lock held for the controller process's life.

Two controllers writing one `programs.sqlite` break the run (both pick the same next proposal
index; the second dies on the UNIQUE constraint), and users start a second one easily: a
`kill -9` that hit a `timeout`/`nohup` wrapper or a lost terminal leaves the real controller
running. So `Search.run` takes `RunLock(run_dir)` before it builds anything or opens the
database, and a second controller on the directory stops at once with `RunLocked`, whose message
names the directory and the holder (pid, host, start time, command) and says how to proceed.

Why `flock` on `RUN_DIR/.controller.lock`:
- The kernel drops the lock when the last descriptor of its open file goes away, so a controller
  killed by SIGKILL never leaves a stale lock, and nothing has to guess whether a pid in a file
  is still alive (pids are reused; hosts differ on shared file systems).
- The lock belongs to the controller process itself: a wrapper (`timeout`, `nohup`, a shell)
  that started it holds nothing, and killing the wrapper leaves the lock with the controller,
  where it belongs while the controller writes.
- Children must not keep it alive after the controller dies. The file is opened with
  `O_CLOEXEC`, so programs the controller starts (sandbox workers, Dask's spawned workers, any
  `subprocess`) drop it at `exec`; a child forked without `exec` (multiprocessing's `fork`
  method) closes its inherited copy right after the fork (`os.register_at_fork`). Closing a copy
  never unlocks the parent's lock; only the last copy's close does.
- The file is never deleted: unlinking a lock file races with a process that has just opened it
  (both would "hold" a lock, on different inodes).

The holder writes its identity into the file only after it holds the lock, and empties it on a
clean release; readers look at the file only when they could not take the lock, so they never
report a dead holder. Readers of the run (`actmine report`, `actmine export`, `actmine serve`) open
the database read-only (`ProgramDatabase(path, readonly=True)`) beside the writer and never hold the
lock; to tell a live "running" run from one whose controller was killed (SIGKILL, out of memory, a
machine that went down: nothing marked it "interrupted"), they probe it (`controller_holds`): a
shared lock taken and dropped at once, which `acquire` waits out (`ACQUIRE_TRIES`).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..run_files import LOCK_FILE

# Descriptors of the locks this process holds; a forked child closes its copies (see the module doc).
_HELD: set[int] = set()

# `acquire` tries this many times, ACQUIRE_PAUSE_S apart, before it calls the lock held: a reader's
# probe (`controller_holds`) holds a shared lock for microseconds, a controller for the run's life.
ACQUIRE_TRIES = 10
ACQUIRE_PAUSE_S = 0.02


def _close_inherited_locks() -> None:
    for fd in list(_HELD):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


os.register_at_fork(after_in_child=_close_inherited_locks)


class RunDirError(RuntimeError):
    """The run directory cannot be created or written (a read-only file system, no permission, a
    path through a regular file, a file system without locks)."""


class RunLocked(RuntimeError):
    """Another controller holds the run directory. `holder` is what it wrote (None while it is
    still writing it, or when the file was unreadable)."""

    def __init__(self, run_dir: Path, holder: "Holder | None"):
        self.run_dir = run_dir
        self.holder = holder
        super().__init__(self._message())

    def _message(self) -> str:
        where = str(self.run_dir)
        if self.holder is None:
            return (
                f"another actmine search is running on {where} (it holds {where}/{LOCK_FILE}; its pid is not "
                "written yet); wait for it to finish, or stop it, then run this command again"
            )
        pid = self.holder.pid
        host = "" if self.holder.host == socket.gethostname() else f" on host {self.holder.host}"
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.holder.started))
        return (
            f"another actmine search is running on {where}: pid {pid}{host}, started {started} "
            f"({' '.join(self.holder.command)}). Only one controller may write a run: wait for it to "
            f"finish, or stop it (`kill -INT {pid}` stops it cleanly, like Ctrl-C in its terminal) and run "
            f"this command again to resume. `actmine report {where}` reads the run while it runs"
        )


@dataclass(frozen=True)
class Holder:
    """Who holds a run directory's lock, as the holder wrote it."""

    pid: int
    host: str
    started: float
    command: tuple[str, ...]

    @classmethod
    def of_this_process(cls) -> "Holder":
        return cls(pid=os.getpid(), host=socket.gethostname(), started=time.time(), command=tuple(sys.argv))

    def to_json(self) -> str:
        return (
            json.dumps(
                {"pid": self.pid, "host": self.host, "started": self.started, "command": list(self.command)}, indent=1
            )
            + "\n"
        )

    @classmethod
    def from_json(cls, text: str) -> "Holder | None":
        """The holder in the file's text, None when the text is not a complete record."""
        try:
            data: Any = json.loads(text)
            holder = cls(
                pid=int(data["pid"]),
                host=str(data["host"]),
                started=float(data["started"]),
                command=tuple(str(part) for part in data["command"]),
            )
            time.localtime(holder.started)  # a time the message can show (not inf, not 1e300)
            return holder
        except (ValueError, KeyError, TypeError, OverflowError, OSError):
            return None


def read_holder(run_dir: str | Path, attempts: int = 20) -> Holder | None:
    """Who holds the lock of `run_dir`, as written in its lock file. A holder that has just taken
    the lock may not have written itself yet: try a few times (a short while) before giving up."""
    path = Path(run_dir) / LOCK_FILE
    for attempt in range(attempts):
        try:
            holder = Holder.from_json(path.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            return None
        if holder is not None:
            return holder
        time.sleep(0.05)
    return None


def unwritable_reason(path: Path, error: OSError | None = None) -> str:
    """Why `path` cannot be written, for a message: a read-only file system, or the error's reason."""
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "it is on a read-only file system"
    except OSError:
        pass
    return os.strerror(error.errno) if error is not None and error.errno else "no write permission"


def _unwritable(directory: Path, error: OSError | None = None) -> RunDirError:
    return RunDirError(
        f"the run directory {directory} is not writable ({unwritable_reason(directory, error)}); "
        "nothing was changed. Give a --run-dir you can write to, or copy the run somewhere "
        "writable to resume it"
    )


_BUSY = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)


def _lock_exclusive(fd: int) -> None:
    """flock(LOCK_EX) without waiting for a holder, but past a reader's momentary probe."""
    for attempt in range(ACQUIRE_TRIES):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in _BUSY or attempt == ACQUIRE_TRIES - 1:
                raise
            time.sleep(ACQUIRE_PAUSE_S)


def controller_holds(run_dir: str | Path) -> bool:
    """Whether a controller holds `run_dir`'s lock now, i.e. a search is running on it. False when the
    lock is free or there is no lock file (a run copied from elsewhere); True when it is held, and
    when it cannot be told (a lock file that is a link or not a plain file, a file system without
    locks): then the caller keeps what the database says. Never creates, writes or waits."""
    path = Path(run_dir) / LOCK_FILE
    try:  # O_NONBLOCK: a FIFO planted as the lock file must not hang the reader
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:  # held (EWOULDBLOCK), or a file system without locks: cannot tell
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


class RunLock:
    """The lock of one run directory, held by this process from `acquire()` to `release()` (or the
    process's end, whatever ends it). `with RunLock(run_dir):` takes and releases it.

    `acquire` creates the directory if needed and raises `RunLocked` when another process (or
    another `RunLock` in this one) holds it, `RunDirError` when the directory cannot be created,
    written or locked. It waits out a reader's momentary probe (`controller_holds`; at most
    ACQUIRE_TRIES × ACQUIRE_PAUSE_S, 0.2 s), never a holder."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None
        self._pid: int | None = None  # the process that took it: a forked child must not release it

    @property
    def held(self) -> bool:
        return self._fd is not None and self._pid == os.getpid()

    def acquire(self) -> "RunLock":
        if self.held:
            raise RuntimeError(f"{self.path} is already held by this RunLock")
        try:
            # through a link to a directory not made yet (runs/x -> /big/disk/x), its target is made:
            # mkdir on the link itself fails with "File exists"
            self.run_dir.resolve().mkdir(parents=True, exist_ok=True)
        except (OSError, RuntimeError) as exc:  # a read-only parent, a path through a file, a link loop
            raise RunDirError(
                f"cannot create the run directory {self.run_dir} "
                f"({getattr(exc, 'strerror', None) or exc}); give a --run-dir in a place you can write to"
            ) from None
        if not self.run_dir.is_dir():
            raise RunDirError(f"{self.run_dir} is not a directory; give a --run-dir that is a directory")
        # Checked before the file is opened, so a directory we cannot write is refused before we write
        # anything (root passes permission bits, but not a read-only file system; os.access sees both).
        if not os.access(self.run_dir, os.W_OK | os.X_OK):
            raise _unwritable(self.run_dir)
        try:  # never through a link: a run directory from elsewhere could point the lock at any file
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise RunDirError(
                    f"{self.path} is a symbolic link; remove it (the lock file must be a plain "
                    "file of the run directory) and run this command again"
                ) from None
            raise _unwritable(self.run_dir, exc) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise RunDirError(f"{self.path} is not a regular file; remove it and run this command again")
        try:
            _lock_exclusive(fd)
        except OSError as exc:
            os.close(fd)
            if exc.errno in _BUSY:
                raise RunLocked(self.run_dir, read_holder(self.run_dir)) from None
            raise RunDirError(
                f"cannot lock {self.path} ({exc.strerror or exc}): the file system of the run "
                "directory does not support locks; give a --run-dir on a local disk"
            ) from None
        self._fd, self._pid = fd, os.getpid()
        _HELD.add(fd)
        try:  # identify ourselves, now that nobody else can be writing the file
            os.ftruncate(fd, 0)
            os.pwrite(fd, Holder.of_this_process().to_json().encode("utf-8"), 0)
        except OSError as exc:
            self.release()
            raise _unwritable(self.run_dir, exc) from None
        return self

    def release(self) -> None:
        """Unlock and close (a no-op when not held, or in a forked child of the holder)."""
        if not self.held:
            return
        fd, self._fd, self._pid = self._fd, None, None
        _HELD.discard(fd)
        try:
            os.ftruncate(fd, 0)  # a finished holder leaves no identity behind
        except OSError:
            pass
        finally:
            os.close(fd)  # closing the last descriptor drops the lock

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
