"""One way to write a file that others may be reading: a temporary file beside it, then a rename.

The rename is atomic on POSIX, so a reader sees the old file or the new one, never half of either;
a writer killed mid-write leaves a stray `.NAME.PID.tmp` and the old file intact. The temporary
is named for this process, so two processes writing the same file (two workers filling one cache
entry) never write into each other's temporary. A leaf module: every layer may use it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


def write_text_atomically(path: str | Path, text: str, before_replace: Callable[[], None] | None = None) -> Path:
    """Write `text` (UTF-8) to `path` atomically, creating its directory; `before_replace` runs
    between the write and the rename (a crash test's fault point). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        if before_replace is not None:
            before_replace()
        os.replace(temporary, path)
    except OSError as exc:  # a full disk, a directory where the file should be: the temporary goes too
        temporary.unlink(missing_ok=True)
        if exc.filename == str(temporary):
            exc.filename = str(path)  # the error names the file the caller asked for
        if exc.filename2 == str(path):
            exc.filename, exc.filename2 = str(path), None  # os.replace(temporary, path)
        raise
    return path


def write_cache_file(path: str | Path, text: str) -> bool:
    """`write_text_atomically` for a cache, which only saves work: a cache directory that is
    read-only or full is not an error (the entry is computed again next time). Whether it was written."""
    try:
        write_text_atomically(path, text)
        return True
    except OSError:
        return False
