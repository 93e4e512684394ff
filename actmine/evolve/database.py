"""The program database: every proposal the search made, its score, and each island's MAP-Elites grid.

One SQLite file in WAL mode. The controller is the only writer; reports open the same file with
`ProgramDatabase(path, readonly=True)` while a search runs and see only committed data (WAL gives
each read a consistent snapshot).

Every write method is one transaction: `add_program` inserts the program, its parent links and
(for an "ok" program) its island's elite update together, so a writer killed at any instant leaves
either the whole program or nothing. `transaction()` lets a caller group several writes into one
(nested calls join the outer transaction).

Tables (schema version `SCHEMA_VERSION`, kept in `PRAGMA user_version`):

- runs: one search each (seed, config and library versions as JSON, status).
- programs: one row per proposal, ok, failed or duplicate (see `ProgramRecord`); unique
  (run_id, proposal_index), so a resumed controller can never record a proposal twice.
- program_parents: (child_id, parent_id, position), one row per entry of `parent_ids`, for
  `children_count` (added by migration 2).
- elites: (run_id, island, cell) -> program_id, fitness: each island's MAP-Elites grid.
- llm_calls, heldout: LLM usage and the end-of-run validation and test results (`heldout` rows
  carry `split`: "validation" or "test" in their JSON).
- evaluations (migration 4): one row per round a program was scored on (round 0 is its proposal's
  evaluation; later rounds are confirmations on fresh task samples, or a same-function program's
  evaluation pooled into it): the per-task scores the program's estimate is computed from.
- validations (migration 4): the current best's validation score over the run (the generalisation gap).

Migration 3 added `programs.original_answer` (an LLM's whole answer, as it came) and
`programs.normalisation_changes` (JSON list of what the normaliser changed to make `source`); rows
written before it read as None and [].

Start-up checks (`check_before_opening`, run before a writer writes anything): a directory or file
that cannot be written, a file that is not an SQLite database, is cut short or fails `PRAGMA
quick_check`, and a file from a newer schema are refused with a `DatabaseError` that names the file
and what to do, leaving every file as it was. Readers (`readonly=True`) refuse a file that is not a
database or is from a newer schema with the same messages.

Schema changes are append-only functions in `MIGRATIONS`; `MIGRATIONS[i]` takes a database from
version i to i + 1 and runs, with the version bump, in one transaction when the file is opened.
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..faults import fault_point

# The database's parts; every name stays importable from here.
from .database_file import (
    BUSY_TIMEOUT_MS,
    DatabaseError,
    _check_header,
    _corrupt_message,
    _is_corruption,
    _newer_message,
    check_before_opening,
    journal_in_use,
    refuse_foreign,
)
from .database_schema import MIGRATIONS as MIGRATIONS, SCHEMA_VERSION as SCHEMA_VERSION
from .database_results import ResultTables
from .database_rows import typed_record, typed_value
from .runlock import controller_holds
from .program_records import (
    BLEND_MUTATOR as BLEND_MUTATOR,
    ProgramRecord as ProgramRecord,
    RunRecord as RunRecord,
    _dumps,
    _finite_or_none,
    normalise_source as normalise_source,
    source_key as source_key,
)

STATUSES = ("ok", "failed", "duplicate")

_JSON_FIELDS = ("parent_ids", "family_log_ratios", "tasks", "descriptors", "probes", "timings", "normalisation_changes")
_COLUMNS = tuple(f.name for f in fields(ProgramRecord) if f.name != "id")


def _selection_score(record: "ProgramRecord") -> float:
    """What grids and `top` rank a program by: its score (lower confidence bound), else its fitness."""
    return float(record.score if record.score is not None else record.fitness)


def _may_be_written(path: Path) -> bool:
    """Whether a writer may have the database open or open it while we read: its directory is
    writable, or a -wal or -journal file holds changes. Otherwise (a read-only run directory whose
    -wal and -shm files went with the last writer) SQLite's read-only mode would still need to create
    the -shm file beside it and fails ("attempt to write a readonly database"); such a file can be
    read as immutable."""
    return journal_in_use(path) or os.access(path.parent, os.W_OK)


class ProgramDatabase(ResultTables):
    """The search's SQLite store. `ProgramDatabase(path)` creates or migrates the file;
    `ProgramDatabase(path, readonly=True)` opens an existing, current file without ever writing.

    A connection belongs to the thread that opened it (sqlite3's default check)."""

    def __init__(self, path: str | Path, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        if readonly:
            if not self.path.is_file():
                raise DatabaseError(f"no program database at {self.path}")
            _check_header(self.path)
            uri = self.path.resolve().as_uri() + ("?mode=ro" if _may_be_written(self.path) else "?mode=ro&immutable=1")
            self._conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        else:
            check_before_opening(self.path)  # refuse what we cannot use before writing anything
            self._conn = sqlite3.connect(str(self.path), isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        self._depth = 0
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._conn.execute("PRAGMA foreign_keys = ON")
            if readonly:
                try:
                    version = self.schema_version()
                except sqlite3.DatabaseError as exc:
                    if not _is_corruption(exc):
                        raise
                    raise DatabaseError(_corrupt_message(self.path, str(exc))) from None
                if version > SCHEMA_VERSION:
                    raise DatabaseError(_newer_message(self.path, version))
                refuse_foreign(self.path, self._conn, version)
                if version != SCHEMA_VERSION:
                    raise DatabaseError(
                        f"{self.path} has schema version {version}, this code reads {SCHEMA_VERSION}"
                        "; open it once read-write to migrate it"
                    )
            else:
                mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() != "wal":
                    raise DatabaseError(f"could not put {self.path} in WAL mode (got {mode!r})")
                self._conn.execute("PRAGMA synchronous = NORMAL")  # WAL: durable across process crashes
                self._upgrade_schema()
        except BaseException:
            self._conn.close()
            raise

    # ---- plumbing ---------------------------------------------------------------------------

    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def journal_mode(self) -> str:
        return str(self._conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()

    def _upgrade_schema(self) -> None:
        with self.transaction():  # BEGIN IMMEDIATE: two processes opening a new file cannot both migrate
            version = self.schema_version()
            if version > SCHEMA_VERSION:  # `check_before_opening` saw it already, unless it changed since
                raise DatabaseError(_newer_message(self.path, version))
            for step in range(version, SCHEMA_VERSION):
                MIGRATIONS[step](self._conn)
                self._conn.execute(f"PRAGMA user_version = {step + 1}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE … COMMIT, ROLLBACK on any exception).

        Nested uses join the outermost transaction as a SAVEPOINT: an exception inside a nested
        block undoes that block's writes (and propagates); nothing is durable until the outermost
        block commits. So a caller can group several writes, e.g. `add_program` and `update_run`,
        into one atomic step."""
        if self.readonly:
            raise DatabaseError(f"{self.path} is open read-only")
        if self._depth:
            name = f"nested_{self._depth}"
            self._conn.execute(f"SAVEPOINT {name}")
            self._depth += 1
            try:
                yield self._conn
            except BaseException:
                self._conn.execute(f"ROLLBACK TO {name}")
                self._conn.execute(f"RELEASE {name}")
                raise
            finally:
                self._depth -= 1
            self._conn.execute(f"RELEASE {name}")
            return
        self._conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self._conn
        except BaseException:
            self._depth = 0
            self._conn.execute("ROLLBACK")
            raise
        self._depth = 0
        fault_point("db_commit")
        self._conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "ProgramDatabase":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- runs -------------------------------------------------------------------------------

    def create_run(
        self,
        config: dict[str, Any],
        seed: int | None = None,
        versions: dict[str, Any] | None = None,
        status: str = "running",
    ) -> int:
        now = time.time()
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO runs (created_at, updated_at, seed, config, versions, status) VALUES (?, ?, ?, ?, ?, ?)",
                (now, now, seed, _dumps(config), _dumps(versions or {}), status),
            )
            return int(cursor.lastrowid)

    def update_run(self, run_id: int, config: dict[str, Any] | None = None, status: str | None = None) -> None:
        with self.transaction() as conn:
            if config is not None:
                conn.execute("UPDATE runs SET config = ? WHERE id = ?", (_dumps(config), run_id))
            if status is not None:
                conn.execute("UPDATE runs SET status = ? WHERE id = ?", (status, run_id))
            cursor = conn.execute("UPDATE runs SET updated_at = ? WHERE id = ?", (time.time(), run_id))
            if cursor.rowcount != 1:
                raise KeyError(f"no run {run_id}")

    def get_run(self, run_id: int) -> RunRecord | None:
        row = self._conn.execute(
            "SELECT id, created_at, updated_at, seed, config, versions, status FROM runs WHERE id = ?", (run_id,)
        ).fetchone()
        return self._run(row) if row else None

    def latest_run(self) -> RunRecord | None:
        row = self._conn.execute(
            "SELECT id, created_at, updated_at, seed, config, versions, status FROM runs ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return self._run(row) if row else None

    def runs(self) -> list[RunRecord]:
        rows = self._conn.execute(
            "SELECT id, created_at, updated_at, seed, config, versions, status FROM runs ORDER BY id"
        ).fetchall()
        return [self._run(row) for row in rows]

    def _run(self, row: tuple) -> RunRecord:
        data = dict(zip(("id", "created_at", "updated_at", "seed", "config", "versions", "status"), row))
        if self.readonly and data["status"] == "running" and not controller_holds(self.path.parent):
            # nobody holds the directory's lock: the controller was killed (SIGKILL, out of memory, a
            # machine that went down) before it could say so. Readers see what a signal would have left.
            data["status"] = "interrupted"
        return typed_record(RunRecord, data, ("config", "versions"), self.path, f"run {data['id']}")

    # ---- programs ---------------------------------------------------------------------------

    def add_program(self, record: ProgramRecord) -> int:
        """Insert a program, its parent links and, if it is "ok" with a cell, its island's elite
        update (it takes the cell when the cell is empty or its fitness is strictly higher than
        the occupant's), all in one transaction. Sets and returns `record.id`."""
        if record.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {record.status!r}")
        fitness = _finite_or_none(record.fitness, "fitness")
        if record.status == "ok" and fitness is None:
            raise ValueError("an ok program needs a fitness")
        if record.status == "duplicate" and record.duplicate_of is None:
            raise ValueError("a duplicate needs duplicate_of")
        values = []
        for name in _COLUMNS:
            value = getattr(record, name)
            if name in _JSON_FIELDS:
                value = _dumps(list(value) if name == "parent_ids" else value)
            elif name in ("fitness", "ood_log_ratio", "seconds", "fitness_se", "score"):
                value = _finite_or_none(value, name)
            elif name == "settled":
                value = int(bool(value))
            values.append(value)
        columns = _COLUMNS + ("source_hash",)
        values.append(source_key(record.source))
        with self.transaction() as conn:
            cursor = conn.execute(
                f"INSERT INTO programs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", values
            )
            program_id = int(cursor.lastrowid)
            conn.executemany(
                "INSERT INTO program_parents (child_id, parent_id, position) VALUES (?, ?, ?)",
                [(program_id, int(p), i) for i, p in enumerate(record.parent_ids)],
            )
            fault_point("db_program_inserted")
            if record.status == "ok" and record.cell is not None and record.settled:
                self._offer_elite(record.run_id, record.island, record.cell, program_id, _selection_score(record))
        record.id = program_id
        return program_id

    def _offer_elite(self, run_id: int, island: int, cell: str, program_id: int, fitness: float) -> bool:
        """Put the program in the cell if it is empty or the program's selection score (`fitness`
        here: the score column of the grid) is strictly higher. Call inside a transaction."""
        row = self._conn.execute(
            "SELECT program_id, fitness FROM elites WHERE run_id = ? AND island = ? AND cell = ?",
            (run_id, island, cell),
        ).fetchone()
        if row is not None and row[0] == program_id:
            self._conn.execute(
                "UPDATE elites SET fitness = ? WHERE run_id = ? AND island = ? AND cell = ?",
                (fitness, run_id, island, cell),
            )
            return False
        if row is not None and not fitness > row[1]:
            return False
        self._conn.execute(
            "INSERT OR REPLACE INTO elites (run_id, island, cell, program_id, fitness) VALUES (?, ?, ?, ?, ?)",
            (run_id, island, cell, program_id, fitness),
        )
        return True

    def move_to_island(self, run_id: int, program_id: int, to_island: int) -> bool:
        """Offer a stored ok program to another island's grid, in its own cell (it takes the cell
        if empty or strictly fitter). Returns whether it took the cell. One transaction."""
        with self.transaction():
            row = self._conn.execute(
                "SELECT run_id, status, cell, COALESCE(score, fitness), settled FROM programs WHERE id = ?",
                (program_id,),
            ).fetchone()
            if row is None:
                raise KeyError(f"no program {program_id}")
            if row[0] != run_id:
                raise ValueError(f"program {program_id} belongs to run {row[0]}, not {run_id}")
            if row[1] != "ok" or row[2] is None or not row[4]:
                return False
            return self._offer_elite(run_id, to_island, row[2], program_id, row[3])

    _SELECT = f"SELECT id, {', '.join(_COLUMNS)} FROM programs"

    def _record(self, row: tuple) -> ProgramRecord:
        data = dict(zip(("id",) + _COLUMNS, row))
        data["settled"] = bool(data["settled"]) if isinstance(data["settled"], int) else data["settled"]
        return typed_record(ProgramRecord, data, _JSON_FIELDS, self.path, f"program {data['id']}")

    def _records(self, sql: str, params: Sequence[Any] = ()) -> list[ProgramRecord]:
        return [self._record(row) for row in self._conn.execute(sql, params).fetchall()]

    def get(self, program_id: int) -> ProgramRecord | None:
        if not -(2**63) <= program_id < 2**63:  # no such row: SQLite's integers end there (not an OverflowError)
            return None
        found = self._records(f"{self._SELECT} WHERE id = ?", (program_id,))
        return found[0] if found else None

    def get_many(self, program_ids: Sequence[int]) -> list[ProgramRecord]:
        """The programs with these ids, in the given order (missing ids skipped)."""
        ids = list(dict.fromkeys(int(i) for i in program_ids))
        found: dict[int, ProgramRecord] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for record in self._records(f"{self._SELECT} WHERE id IN ({', '.join('?' * len(chunk))})", chunk):
                found[record.id] = record
        return [found[i] for i in ids if i in found]

    def by_proposal(self, run_id: int, proposal_index: int) -> ProgramRecord | None:
        found = self._records(f"{self._SELECT} WHERE run_id = ? AND proposal_index = ?", (run_id, proposal_index))
        return found[0] if found else None

    def by_fingerprint(self, fingerprint: str, run_id: int | None = None) -> ProgramRecord | None:
        """The earliest non-duplicate (ok or failed) program with this fingerprint, in `run_id`
        if given, else in any run."""
        sql = f"{self._SELECT} WHERE fingerprint = ? AND status != 'duplicate'"
        params: list[Any] = [fingerprint]
        if run_id is not None:
            sql += " AND run_id = ?"
            params.append(run_id)
        found = self._records(sql + " ORDER BY id LIMIT 1", params)
        return found[0] if found else None

    def by_source(self, source: str, run_id: int | None = None) -> ProgramRecord | None:
        """The earliest non-duplicate program whose normalised source equals `source`'s (the
        argument is normalised here, so raw or normalised text both work)."""
        sql = f"{self._SELECT} WHERE source_hash = ? AND status != 'duplicate'"
        params: list[Any] = [source_key(source)]
        if run_id is not None:
            sql += " AND run_id = ?"
            params.append(run_id)
        found = self._records(sql + " ORDER BY id LIMIT 1", params)
        return found[0] if found else None

    def programs(self, run_id: int, status: str | None = None, island: int | None = None) -> list[ProgramRecord]:
        """A run's programs in insertion order, optionally of one status and/or island."""
        sql, params = f"{self._SELECT} WHERE run_id = ?", [run_id]
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        if island is not None:
            sql += " AND island = ?"
            params.append(island)
        return self._records(sql + " ORDER BY id", params)

    def count(self, run_id: int, status: str | None = None) -> int:
        if status is None:
            return int(self._conn.execute("SELECT COUNT(*) FROM programs WHERE run_id = ?", (run_id,)).fetchone()[0])
        return int(
            self._conn.execute(
                "SELECT COUNT(*) FROM programs WHERE run_id = ? AND status = ?", (run_id, status)
            ).fetchone()[0]
        )

    def proposal_count(self, run_id: int) -> int:
        """The run's programs that count against its budget: all but a final check's blends, which
        take the next index but are no proposal of the search's (a finished run resumed with a
        larger budget makes all of its new proposals)."""
        sql = "SELECT COUNT(*) FROM programs WHERE run_id = ? AND mutator != ?"
        return int(self._conn.execute(sql, (run_id, BLEND_MUTATOR)).fetchone()[0])

    def max_proposal_index(self, run_id: int) -> int:
        """The largest proposal_index recorded in the run, −1 when there is none (so the next
        proposal is always `max_proposal_index(run_id) + 1`)."""
        value = self._conn.execute("SELECT MAX(proposal_index) FROM programs WHERE run_id = ?", (run_id,)).fetchone()[0]
        return -1 if value is None else int(value)

    def top(self, run_id: int, k: int, island: int | None = None) -> list[ProgramRecord]:
        """The k best settled ok programs of the search (duplicates, programs awaiting confirmation
        and a final check's blends excluded) by selection score (the lower confidence bound of the
        fitness), descending, earlier first on ties; `island` restricts to programs evaluated on that
        island (not migrants). A blend is the final check's, never the search's: were it here, a
        resumed run would mutate it, confirm against it and validate it as a candidate."""
        sql, params = self._top_query(self._SELECT, run_id, k, island)
        return self._records(sql, params)

    def top_scores(self, run_id: int, k: int) -> list[tuple[int, float]]:
        """(id, selection score) of `top(run_id, k)`'s programs, in its order, without reading
        the records (the controller asks after every evaluation: a record's JSON is most of it)."""
        sql, params = self._top_query("SELECT id, COALESCE(score, fitness) FROM programs", run_id, k, None)
        rows = self._conn.execute(sql, params).fetchall()
        return [(i, typed_value(score, float, self.path, f"program {i}", "score")) for i, score in rows]

    def _top_query(self, select: str, run_id: int, k: int, island: int | None) -> tuple[str, list[Any]]:
        sql = f"{select} WHERE run_id = ? AND status = 'ok' AND settled = 1 AND mutator != ?"
        params: list[Any] = [run_id, BLEND_MUTATOR]
        if island is not None:
            sql += " AND island = ?"
            params.append(island)
        return sql + " ORDER BY COALESCE(score, fitness) DESC, id ASC LIMIT ?", params + [int(k)]

    def best(self, run_id: int) -> ProgramRecord | None:
        found = self.top(run_id, 1)
        return found[0] if found else None

    def elites(self, run_id: int, island: int) -> list[ProgramRecord]:
        """The programs in the island's grid (one per occupied cell, migrants included), selection
        score descending, earlier first on ties. Each one's `cell` is the cell it occupies."""
        sql = (
            f"SELECT p.id, {', '.join('p.' + c for c in _COLUMNS)} FROM elites e JOIN programs p "
            "ON p.id = e.program_id WHERE e.run_id = ? AND e.island = ? ORDER BY e.fitness DESC, p.id ASC"
        )
        return self._records(sql, (run_id, island))

    def grid(self, run_id: int, island: int) -> dict[str, int]:
        """The island's grid as {cell: program_id}."""
        rows = self._conn.execute(
            "SELECT cell, program_id FROM elites WHERE run_id = ? AND island = ? ORDER BY cell", (run_id, island)
        ).fetchall()
        return {cell: program_id for cell, program_id in rows}

    def islands(self, run_id: int) -> list[int]:
        """Islands that have a program or a grid entry in the run."""
        rows = self._conn.execute(
            "SELECT island FROM programs WHERE run_id = ? UNION SELECT island FROM elites WHERE run_id = ? ORDER BY 1",
            (run_id, run_id),
        ).fetchall()
        return [row[0] for row in rows]

    def children_count(self, program_id: int) -> int:
        """How many programs list this one in their parent_ids."""
        return int(
            self._conn.execute(
                "SELECT COUNT(DISTINCT child_id) FROM program_parents WHERE parent_id = ?", (program_id,)
            ).fetchone()[0]
        )

    def children_counts(self, program_ids: Sequence[int]) -> dict[int, int]:
        """`children_count` for many programs at once (0 for those without children)."""
        ids = list(dict.fromkeys(int(i) for i in program_ids))
        counts = dict.fromkeys(ids, 0)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = self._conn.execute(
                f"SELECT parent_id, COUNT(DISTINCT child_id) FROM program_parents WHERE parent_id IN "
                f"({', '.join('?' * len(chunk))}) GROUP BY parent_id",
                chunk,
            ).fetchall()
            counts.update({parent: int(n) for parent, n in rows})
        return counts

    def failures_by_reason(self, run_id: int) -> dict[tuple[str | None, str | None], int]:
        """{(failure_stage, failure_code): count} over the run's failed programs."""
        rows = self._conn.execute(
            "SELECT failure_stage, failure_code, COUNT(*) FROM programs WHERE run_id = ? "
            "AND status = 'failed' GROUP BY failure_stage, failure_code "
            "ORDER BY COUNT(*) DESC, failure_stage, failure_code",
            (run_id,),
        ).fetchall()
        return {(stage, code): int(n) for stage, code, n in rows}

    # ---- estimates: rounds, confirmation, validation over the run ------------------------------
