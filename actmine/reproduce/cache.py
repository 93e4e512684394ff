"""Saving each part's result with the settings that produced it, and reusing it on a later run.

Each part's result is written as `OUT/<part>.json` (atomically) as soon as it finishes; a later run
with the same settings reads it back instead of recomputing it, so an interrupted run resumes where
it stopped, and `force` recomputes everything: the parts' saved results and what their own
resuming would reuse (the search's run directories, the transfer's job journal).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from ..atomic_files import write_text_atomically
from .formatting import _duration
from .progress import Progress
from .settings import Settings

PART_FORMAT = 1

_MISSING = object()  # no reusable saved result


def _atomic_write_json(path: Path, data: Any) -> None:
    write_text_atomically(path, json.dumps(data, indent=1, allow_nan=False))


def _jsonable(value: Any) -> Any:
    """Non-finite floats become None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def clear_resumable_state(settings: Settings, out_dir: Path) -> list[Path]:
    """For `--force`: remove what the parts that will run would resume from, and return it.

    A part's saved JSON is ignored under `--force`, but the search part resumes its run directory
    (`OUT/runs/`: a finished search is read back, not run again) and the transfer part its job
    journal (`OUT/transfer/`: every finished job is kept), so without this an earlier version's
    numbers would come back. A part that is skipped keeps its files."""
    removed = []
    for skipped, path in ((settings.skip_search, out_dir / "runs"), (settings.skip_transfer, out_dir / "transfer")):
        if not skipped and path.exists():
            shutil.rmtree(path)
            removed.append(path)
    return removed


class PartStore:
    """Runs the parts of one reproduction in `out_dir`, each reused when its saved settings match;
    records which parts were reused (`resumed`), which computed (`computed`) and their seconds."""

    def __init__(self, settings: Settings, out_dir: Path, force: bool, progress: Progress):
        self.out_dir, self.force, self.progress = out_dir, force, progress
        self.part_seconds: dict[str, float] = {}
        self.resumed: list[str] = []
        self.computed: list[str] = []
        # the settings every part depends on: part of every part's key
        self.common = {
            "format": PART_FORMAT,
            "torch": torch.__version__,
            "suite": settings.suite,
            "heldout_suite": settings.heldout_suite,
            "seeds": settings.seeds,
            "steps": settings.steps,
            "device": settings.device,
        }

    def run(self, name: str, key: Mapping[str, Any], compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Part `name`'s result: the saved one when it was made with the same settings (the common
        ones and ``key``), else ``compute()``'s, saved."""
        path = self.out_dir / f"{name}.json"
        key = json.loads(json.dumps({**self.common, **key}, default=str))
        saved = self._saved_result(name, path, key)
        if saved is not _MISSING:
            return saved
        self.progress.say(f"{name}: running")
        t0 = time.perf_counter()
        result = _jsonable(compute())
        seconds = round(time.perf_counter() - t0, 1)
        _atomic_write_json(
            path,
            {
                "part": name,
                "settings": key,
                "seconds": seconds,
                "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "result": result,
            },
        )
        self.part_seconds[name] = seconds
        self.computed.append(name)
        self.progress.say(f"{name}: done in {_duration(seconds)}, saved {path}")
        return result

    def _saved_result(self, name: str, path: Path, key: Any) -> Any:
        """The result saved in ``path`` when it was made with settings ``key`` (counted as resumed),
        else `_MISSING`."""
        if not self.force and path.is_file():
            try:
                saved = json.loads(path.read_text(encoding="utf-8"))
                seconds = saved.get("seconds", 0.0) if isinstance(saved, dict) else None
                usable = isinstance(saved, dict) and isinstance(saved.get("result"), dict)
                if usable and isinstance(seconds, (int, float)) and saved.get("settings") == key:
                    self.resumed.append(name)
                    self.part_seconds[name] = float(seconds)
                    self.progress.say(f"{name}: reusing {path} (same settings; --force recomputes it)")
                    return saved["result"]
            except (ValueError, KeyError, OSError, RecursionError):
                pass  # unreadable, or not a part's result (`[]`, a hand edit): recomputed
        return _MISSING
