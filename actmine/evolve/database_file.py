"""What a program database file must be before anything is written to it (`check_before_opening`):
a writable directory and file, an SQLite database that is whole and passes `PRAGMA quick_check`,
of a schema this actmine knows. Each refusal is a `DatabaseError` that names the file and what to do.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from ..terminal import terminal_text
from .database_schema import SCHEMA_VERSION
from .runlock import unwritable_reason

BUSY_TIMEOUT_MS = 30_000


class DatabaseError(RuntimeError):
    """The file is not a usable program database (too new, not migrated, damaged, not writable, written
    to read-only)."""


SQLITE_MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite 3 database file


def _newer_message(path: Path, version: int) -> str:
    return (
        f"{path} has schema version {version}: a newer actmine wrote it (this one reads versions up to "
        f"{SCHEMA_VERSION}). Nothing was changed; use that newer actmine with this run, or give another --run-dir"
    )


def _corrupt_message(path: Path, detail: str) -> str:
    return (
        f"{path} is not a usable program database ({detail}). Nothing was changed. To start over in this "
        f"directory, move it aside with its -wal and -shm files (e.g. `mv {path} {path}.broken`); to save "
        "what is readable, run `sqlite3 FILE .recover` on a copy; or give another --run-dir"
    )


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    """SQLite's verdict on the file itself ("file is not a database", "database disk image is
    malformed"), as opposed to an operational failure (locked, busy, cannot open, out of memory)."""
    text = str(exc)
    return not isinstance(exc, sqlite3.OperationalError) or "malformed" in text or "not a database" in text


def edited_or_damaged(exc: sqlite3.Error) -> bool:
    """Whether a failure mid-way is the database's own (a table or column missing or changed by
    hand, a malformed page), not the machine's (a full disk, an I/O error, a lock)."""
    damaged = isinstance(exc, sqlite3.DatabaseError) and _is_corruption(exc)
    return damaged or str(exc).startswith(("no such table", "no such column")) or "has no column named" in str(exc)


def read_failure_message(exc: sqlite3.Error) -> str:
    """What to tell a user when reading a run's database failed mid-way: the file edited or damaged
    (a table or column missing, a malformed page), or the machine (a full disk, an I/O error, a
    lock) -- which must not read as "throw the run away"."""
    text = f"{type(exc).__name__}: {exc}"
    if edited_or_damaged(exc):
        return f"the run's database cannot be read ({text}); it was edited or damaged (restore it, or start a new --run-dir)"
    return (
        f"the run's database cannot be read now ({text}); the file may be fine: check the disk (free "
        "space, permissions, errors) and try again"
    )


def _not_writable(path: Path, what: str) -> DatabaseError:
    return DatabaseError(
        f"{what} {path} is not writable ({unwritable_reason(path)}); nothing was changed. Give a "
        "--run-dir you can write to, or copy the run somewhere writable to resume it"
    )


def _check_header(path: Path, settled: bool = False) -> bool:
    """Refuse a file whose first 100 bytes are not an SQLite header (plain reads, no SQLite: a
    connection would create files beside it). False for an empty file (SQLite's empty database).

    `settled` (no -wal or -journal beside it, so the file is the whole database): also refuse a
    size that is not a whole number of pages, or fewer pages than the header counts. SQLite itself
    reads a short last page as zeros, and `quick_check` looks at the b-trees, not at the rows, so a
    file cut inside its last page would otherwise open with rows silently damaged."""
    with open(path, "rb") as handle:
        header = handle.read(100)
        size = os.fstat(handle.fileno()).st_size
    if not header:
        return False
    if not header.startswith(SQLITE_MAGIC):
        raise DatabaseError(_corrupt_message(path, f"not an SQLite database: it starts with {header[:16]!r}"))
    if len(header) < 100:
        raise DatabaseError(_corrupt_message(path, f"truncated: {len(header)} bytes, less than an SQLite header"))
    if settled:
        page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        if page_size < 512 or size % page_size:
            raise DatabaseError(
                _corrupt_message(path, f"truncated: {size} bytes is not a whole number of {page_size}-byte pages")
            )
        pages, counter, valid_for = (int.from_bytes(header[i : i + 4], "big") for i in (28, 24, 92))
        if counter == valid_for and pages * page_size > size:  # the count is valid when these agree
            raise DatabaseError(_corrupt_message(path, f"truncated: {size // page_size} of its {pages} pages"))
    return True


def refuse_foreign(path: Path, connection: sqlite3.Connection, version: int) -> None:
    """Refuse another program's SQLite database: schema version 0 (actmine's first migration sets 1)
    with tables in it. Migrating would add actmine's tables beside the other program's data."""
    if version != 0:
        return
    tables = [
        row[0]
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    # The version was read in an earlier statement: a search creating the file may have committed
    # its first migration (tables and version at once) between the two reads.
    if tables and int(connection.execute("PRAGMA user_version").fetchone()[0]) == 0:
        shown = ", ".join(terminal_text(name[:40], False) for name in tables[:5]) + (", …" if len(tables) > 5 else "")
        raise DatabaseError(
            f"{path} is an SQLite database of another program (tables: {shown}), not an actmine run; "
            "give a --run-dir without a programs.sqlite in it, or move that file away"
        )


def journal_in_use(path: Path) -> bool:
    """Whether a -wal or -journal file beside the database holds changes: a writer has it open (or
    died before a checkpoint), so a reader must not open it `immutable`."""
    companions = (path.with_name(path.name + "-wal"), path.with_name(path.name + "-journal"))
    return any(file.exists() and file.stat().st_size > 0 for file in companions)


def check_before_opening(path: Path) -> None:
    """Refuse, before anything is written, a database file that a writer cannot use: its directory
    not writable (SQLite creates the -wal and -shm files there), the file or its -wal/-shm not
    writable, a file that is not an SQLite database or is damaged (`PRAGMA quick_check`), a file
    from a newer schema. Each raises `DatabaseError` saying what is wrong and what to do; the
    files are left byte-for-byte as they were.

    Why here: opening read-write writes at once (`PRAGMA journal_mode = WAL` rewrites the header
    of a rollback-journal file, the migration transaction creates -wal/-shm), so a refusal after
    opening would already have changed the run. The checks read with a separate read-only
    connection; when no -wal or -journal file exists (no connection has the file open for
    writing; the run lock keeps other controllers away), it opens the file `immutable`, so not
    even -wal/-shm files appear beside a file it refuses.

    A zero-byte file is SQLite's empty database (a controller killed before its first commit
    leaves one) and is used as such. `os.access` is used rather than permission bits because root
    passes any permission but not a read-only file system, and `access` reports both."""
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a read-only parent, a path through a regular file, no permission
        raise DatabaseError(
            f"cannot create the directory {directory} ({exc.strerror or exc}); give a --run-dir "
            "in a place you can write to"
        ) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise _not_writable(directory, "the directory")
    if not path.exists():
        return
    if not path.is_file():
        raise DatabaseError(f"{path} is not a file; give a --run-dir without anything of that name in it")
    companions = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal")]
    for file in [path] + companions:
        if file.exists() and not os.access(file, os.R_OK | os.W_OK):
            raise _not_writable(file, "the database file")
    in_use = journal_in_use(path)
    if not _check_header(path, settled=not in_use):
        return
    uri = path.resolve().as_uri() + ("?mode=ro" if in_use else "?mode=ro&immutable=1")
    try:
        connection = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot open {path} to check it ({exc})") from None
    try:
        version = int(connection.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise DatabaseError(_newer_message(path, version))
        refuse_foreign(path, connection, version)
        problems = [row[0] for row in connection.execute("PRAGMA quick_check(5)").fetchall()]
    except sqlite3.DatabaseError as exc:
        if not _is_corruption(exc):
            raise DatabaseError(f"cannot check {path} ({exc}); try again") from None
        raise DatabaseError(_corrupt_message(path, str(exc))) from None
    finally:
        connection.close()
    if problems != ["ok"]:
        lines = [line.strip() for problem in problems for line in str(problem).splitlines()]
        found = [line for line in lines if line and not line.startswith("***")]  # "*** in database main ***"
        raise DatabaseError(_corrupt_message(path, "PRAGMA quick_check: " + "; ".join(found[:5])))
