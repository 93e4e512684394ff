"""The runs `actmine serve` shows, each read read-only: a served run, one snapshot of its state, one program.

The database is opened read-only for each request (`ProgramDatabase(path, readonly=True)`, as the
report and `actmine.api` do), so a run that a search is writing is read as far as it has committed.
A `Snapshot` is everything a run's pages need that changes while it runs, read in one opening, and
its `version` tells the pages when their pictures must be redrawn.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..api import Run, open_run
from ..run_files import DATABASE
from ..evolve.database import ProgramDatabase, ProgramRecord, RunRecord
from ..report.html import final_results
from .pages import text

TOP = 10  # programs in a run's top list (compare page)


@dataclass(frozen=True)
class ServedRun:
    """One run the viewer shows: its URL key (its position on the command line), a display name
    (the directory's name) and the `actmine.api.Run` handle it is read through."""

    key: str
    name: str
    run: Run

    @property
    def run_dir(self) -> Path:
        return self.run.run_dir

    @property
    def path_text(self) -> str:
        """The run directory's path as pages show it (`pages.text`: control characters visible)."""
        return text(str(self.run.run_dir))

    def database(self) -> ProgramDatabase:
        """The run's database, read-only (a fresh snapshot of what the search has committed)."""
        return ProgramDatabase(self.run.run_dir / DATABASE, readonly=True)


def served_runs(run_dirs: Sequence[str | Path]) -> list[ServedRun]:
    """The latest run of each directory (`actmine.api.open_run`: FileNotFoundError for a directory
    without a run, DatabaseError for a damaged or newer database), keyed "0", "1", …; names are
    the directories' names, numbered where two are alike."""
    runs = [open_run(run_dir) for run_dir in run_dirs]
    # a directory's name is free text: shown as `pages.text` shows any (control and bidirectional
    # characters visible) in every title, heading, link and JSON field that carries it
    names = [text(run.run_dir.resolve().name or str(run.run_dir)) for run in runs]
    repeated = {name for name, n in Counter(names).items() if n > 1}
    return [
        ServedRun(str(i), f"{name} ({i})" if name in repeated else name, run)
        for i, (name, run) in enumerate(zip(names, runs))
    ]


@dataclass(frozen=True)
class Snapshot:
    """Everything a run's pages need that changes while it runs, read in one go."""

    served: ServedRun
    run: RunRecord
    records: list[ProgramRecord]
    top: list[ProgramRecord]
    failures: dict[tuple[str | None, str | None], int]
    llm_calls: list[dict[str, Any]]
    validations: list[dict[str, Any]]
    rounds: dict[str, int]
    results: dict[str, Any]

    @property
    def version(self) -> str:
        """Changes whenever anything shown changes (a program, a round, a validation, the status,
        the end-of-run results): pictures are redrawn only then."""
        state = [
            len(self.records),
            sum(self.rounds.values()),
            len(self.validations),
            self.run.status,
            len(self.llm_calls),
            len(self.results["validation"]),
            len(self.results["test"]),
        ]
        return hashlib.sha256(json.dumps(state, default=str).encode()).hexdigest()[:16]


def read_snapshot(served: ServedRun) -> Snapshot:
    """The run's current state, from one read-only opening of its database."""
    run_id = served.run.run_id
    with served.database() as db:
        return Snapshot(
            served=served,
            run=db.get_run(run_id),
            records=db.programs(run_id),
            top=db.top(run_id, TOP),
            failures=db.failures_by_reason(run_id),
            llm_calls=db.llm_calls(run_id),
            validations=db.validations(run_id),
            rounds=db.evaluation_counts(run_id),
            results=final_results(served.run_dir, db, run_id),
        )


def get_program(served: ServedRun, db: ProgramDatabase, program_id: int) -> ProgramRecord | None:
    """The program if it belongs to this run (ids are global to the database file)."""
    record = db.get(int(program_id))
    return record if record is not None and record.run_id == served.run.run_id else None


def config_value(config: Any, *keys: str) -> Any:
    """config[k1][k2]… or None where a level is missing or not a dict (the config is data from the database)."""
    for key in keys:
        if not isinstance(config, Mapping):
            return None
        config = config.get(key)
    return config


def mutator_kind(served: ServedRun) -> str | None:
    """The run's `mutator.kind` (symbolic, random, llm), None where its config does not say."""
    with served.database() as db:
        kind = config_value(db.get_run(served.run.run_id).config, "mutator", "kind")
    return kind if isinstance(kind, str) else None
