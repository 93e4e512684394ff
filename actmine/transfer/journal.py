"""A run's journal, ``OUT/results.jsonl``: one result per line, appended as each job ends. Read
back (`_read_done`, `_resume`) it lets a rerun into the same ``out`` skip the jobs already done
ok; `end_partial_line` repairs the half-written last line of a run killed mid-write.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from .jobs import TransferJob, TransferResult


def _read_done(path: Path, notify: Callable[[str], None]) -> dict[str, TransferResult]:
    done: dict[str, TransferResult] = {}
    if not path.is_file():
        return done
    bad = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            result = TransferResult.from_dict(json.loads(line))
        except (ValueError, TypeError):
            bad += 1
            continue
        if result.ok and result.key:
            done[result.key] = result
    if bad:
        notify(f"{path}: ignored {bad} unreadable line(s)")
    return done


def end_partial_line(path: Path) -> None:
    """End ``path`` with a newline when its last line was cut short (a run killed mid-write)."""
    if path.is_file() and path.stat().st_size:
        with path.open("rb") as stream:
            stream.seek(-1, os.SEEK_END)
            cut = stream.read(1) != b"\n"
        if cut:
            with path.open("a", encoding="utf-8") as stream:
                stream.write("\n")


def _resume(
    jobs: Sequence[TransferJob], out: Path, journal: Path, notify: Callable[[str], None]
) -> tuple[dict[str, TransferResult], list[TransferJob]]:
    """The results of ``jobs`` already done ok in ``journal`` (by key) and the jobs left to run,
    so that a rerun into the same ``out`` picks up where an interrupted one stopped."""
    done = _read_done(journal, notify)
    end_partial_line(journal)  # an interrupted run's half-written last line: the next record starts afresh
    results = {job.key: done[job.key] for job in jobs if job.key in done}
    todo = [job for job in jobs if job.key not in results]
    if results:
        notify(f"resuming {out}: {len(results)} of {len(jobs)} jobs already done, {len(todo)} to run")
    return results, todo
