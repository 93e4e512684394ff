"""Files that are not what their name claims, for the tests of every reader of a path a user or a
run directory gives: a FIFO (reading it blocks for ever), a link to /dev/zero (reading it fills
memory), a directory."""

from __future__ import annotations

import os
from pathlib import Path

KINDS = ("fifo", "dev-zero", "directory")


def make_special(path: Path, kind: str) -> Path:
    """Put a file of `kind` (one of `KINDS`) at `path`, which must not exist; returns `path`."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "directory":
        path.mkdir()
    else:
        raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
    return path
