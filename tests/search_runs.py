"""Helpers for tests (and benchmarks) that run real searches: a tiny config, `actmine search` as a
subprocess, and a run directory's recorded programs.

Shared by tests/test_search.py, tests/test_crash_stress.py, the benchmark tests and benchmarks/crash_stress.py, so that
every end-to-end search uses the same small suite and starts the command the same way.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from actmine.evolve.database import DatabaseError, ProgramDatabase

SMALL_SUITE = {
    "name": "tiny",
    "seeds": [0],
    "tasks": [
        {"family": "polynomial", "dim": 1, "seed": 0},
        {"family": "harmonic", "seed": 1},
        {"family": "feynman", "equation": "I.14.3"},
    ],
}
#: A config of the pools mode small enough for a test: two search generators, a validation pool and
#: one test suite (a few seconds to build from an empty cache).
SMALL_POOLS = {
    "search": {"budget": 4, "initial_programs": ["relu"]},
    "lab": {"suite": None, "heldout_suite": None, "steps": 20},
    "tasks": {
        "search": [{"generator": "polynomial", "size": 6}, {"generator": "harmonic", "size": 4}],
        "sample": 4,
        "validation": [{"generator": "polynomial", "size": 2, "start": 1_000_000}],
        "test": {"feynman": [{"generator": "feynman", "size": 2, "seeds": [0]}]},
    },
}

HELDOUT_SUITE = {
    "name": "tiny-heldout",
    "seeds": [7],
    "tasks": [{"family": "polynomial", "dim": 1, "seed": 9}, {"family": "feynman", "equation": "I.25.13"}],
}


def write_tiny_config(directory: Path, **sections: dict[str, Any]) -> Path:
    """A config for a fast search (from ReLU alone; 3 small tasks, 1 seed, 20 steps, 2 workers, 2 islands) written to
    `directory/config.yaml`, with its suite files beside it. `sections` update the config's
    sections key by key, e.g. `search={"budget": 30}`."""
    (directory / "tiny.yaml").write_text(yaml.safe_dump(SMALL_SUITE))
    (directory / "heldout.yaml").write_text(yaml.safe_dump(HELDOUT_SUITE))
    config = {
        "search": {
            "budget": 16,
            "time_limit": 0,
            "islands": 2,
            "migration_interval": 5,
            "heldout_top": 2,
            "initial_programs": ["relu"],
        },
        "executor": {"workers": 2},
        "lab": {
            "suite": str(directory / "tiny.yaml"),
            "heldout_suite": str(directory / "heldout.yaml"),
            "training_seeds": 1,
            "steps": 20,
        },
        "sandbox": {"timeout_s": 60, "cpu_s": 60, "memory_mb": 3072},
    }
    for name, values in sections.items():
        config.setdefault(name, {}).update(values)
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _signals_as_in_a_terminal() -> None:
    """In the child: SIGINT and SIGHUP at their defaults, whatever the test runner inherited (a CI
    job started under `nohup` ignores SIGHUP, and actmine keeps an ignored SIGHUP ignored)."""
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def run_cli(config_file: Path, run_dir: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`actmine search` in its own session (so `os.killpg` reaches it and its workers), quiet,
    stdout and stderr piped, its stop signals as in a terminal."""
    exe = Path(sys.executable).with_name("actmine")
    return subprocess.Popen(
        [str(exe), "search", "--config", str(config_file), "--run-dir", str(run_dir), "--quiet", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=env,
        preexec_fn=_signals_as_in_a_terminal,
    )


def programs(run_dir: Path) -> list:
    """The latest run's programs in insertion order ([] when there is no run yet)."""
    with ProgramDatabase(run_dir / "programs.sqlite", readonly=True) as db:
        run = db.latest_run()
        return db.programs(run["id"]) if run else []


def programs_so_far(run_dir: Path) -> list:
    """`programs` while a search may be starting: [] until its database file exists and has its
    schema (a reader can open the file in the moment between its creation and the first migration)."""
    if not (run_dir / "programs.sqlite").exists():
        return []
    try:
        return programs(run_dir)
    except DatabaseError as exc:
        if "schema version 0," in str(exc):
            return []
        raise
