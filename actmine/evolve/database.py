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

import ast
import hashlib
import json
import math
import os
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from ..faults import fault_point
from .cells import cell_of
from .mutators.base import Parent, Proposal
from .runlock import unwritable_reason

if TYPE_CHECKING:  # pragma: no cover
    from ..lab.fitness import Evaluation

STATUSES = ("ok", "failed", "duplicate")
BUSY_TIMEOUT_MS = 30_000


class DatabaseError(RuntimeError):
    """The file is not a usable program database (too new, not migrated, damaged, not writable, written
    to read-only)."""


# --------------------------------------------------------------------------------------------
# Source normalisation (cheap dedup before evaluation)
# --------------------------------------------------------------------------------------------

def normalise_source(source: str) -> str:
    """Program text with comments, blank lines and formatting removed: `ast.unparse(ast.parse(s))`.

    Text that does not parse is only stripped of trailing whitespace and blank lines. Idempotent.
    The result depends on the Python version (ast.unparse's style), so dedup by source is exact
    only within one interpreter version; dedup by fingerprint does not have that limit.
    """
    try:
        return ast.unparse(ast.parse(source)).strip()
    except Exception:  # SyntaxError, RecursionError, MemoryError, ValueError (NUL bytes) ...
        lines = [line.rstrip() for line in source.replace("\r\n", "\n").split("\n")]
        return "\n".join(line for line in lines if line).strip()


def source_key(source: str) -> str:
    """sha256 of the normalised source: the value of `programs.source_hash`."""
    return hashlib.sha256(normalise_source(source).encode("utf-8", "surrogatepass")).hexdigest()


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------

@dataclass
class ProgramRecord:
    """One proposal and what became of it.

    status: "ok" (evaluated and scored), "failed" (refused or failed at `failure_stage` with
    `failure_code`), "duplicate" (same source or fingerprint as program `duplicate_of`; it carries
    the original's numbers for information but never enters a grid, `top` or `best`).

    `source` is the program as checked and evaluated (for an LLM proposal, the normalised one; for
    an answer without a program, the raw answer). `original_answer` is the LLM's whole answer as it
    came (None for other mutators), and `normalisation_changes` what the normaliser changed in it.
    Both are untrusted text, shown for debugging prompts, never run.
    """

    run_id: int
    proposal_index: int
    source: str
    id: int | None = None
    parent_ids: list[int] = field(default_factory=list)
    island: int = 0
    generation: int = 0
    rationale: str = ""
    mutator: str = ""
    model: str | None = None
    status: str = "ok"
    failure_stage: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    fitness: float | None = None
    ood_log_ratio: float | None = None
    family_log_ratios: dict[str, float] = field(default_factory=dict)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    fingerprint: str | None = None
    descriptors: dict[str, Any] = field(default_factory=dict)
    probes: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    cell: str | None = None
    duplicate_of: int | None = None
    seconds: float = 0.0
    created_at: float = field(default_factory=time.time)
    original_answer: str | None = None
    normalisation_changes: list[str] = field(default_factory=list)
    # The estimate (schema 4): `fitness` is the mean over every task the program was scored on (all
    # its rounds, see `evaluations`), `fitness_se` its standard error, `score` the lower confidence
    # bound selection ranks by, `rounds` how many samples were pooled. `settled` is False while a
    # program waits for confirmation rounds: it is then in no grid, `top` or `best`.
    fitness_se: float | None = None
    score: float | None = None
    rounds: int = 1
    settled: bool = True

    @classmethod
    def from_evaluation(cls, evaluation: "Evaluation", proposal: Proposal, *, run_id: int, proposal_index: int,
                        parent_ids: Sequence[int] = (), island: int = 0, generation: int = 0,
                        cell: str | None = None, duplicate_of: int | None = None,
                        created_at: float | None = None) -> "ProgramRecord":
        """A record of an evaluated proposal: "ok" or "failed" from the evaluation, "duplicate"
        when `duplicate_of` is given. For an ok evaluation without a `cell`, the cell is computed
        from its probes by `cells.cell_of`."""
        probes = dict(evaluation.probes or {})
        descriptors = dict(probes.get("descriptors") or {})
        error = evaluation.error or {}
        if duplicate_of is not None:
            status = "duplicate"
        else:
            status = "ok" if evaluation.ok else "failed"
        if cell is None and evaluation.ok and descriptors:
            cell = cell_of(descriptors, probes)
        family = evaluation.family_log_ratios()
        return cls(
            run_id=run_id, proposal_index=proposal_index, source=proposal.source, parent_ids=list(parent_ids),
            island=island, generation=generation, rationale=proposal.rationale, mutator=proposal.mutator,
            model=proposal.model, status=status,
            failure_stage=(error.get("stage") or evaluation.stage) if not evaluation.ok else None,
            failure_code=error.get("code") if not evaluation.ok else None,
            failure_message=error.get("message") if not evaluation.ok else None,
            fitness=evaluation.fitness, ood_log_ratio=evaluation.ood_log_ratio, family_log_ratios=family,
            tasks=[t.to_dict() for t in evaluation.tasks], fingerprint=probes.get("fingerprint"),
            descriptors=descriptors, probes=probes, timings=dict(evaluation.timings), cell=cell,
            duplicate_of=duplicate_of, seconds=float(evaluation.seconds),
            created_at=time.time() if created_at is None else created_at,
            original_answer=proposal.original_answer, normalisation_changes=list(proposal.normalisation_changes))

    @classmethod
    def duplicate(cls, proposal: Proposal, original: "ProgramRecord", *, run_id: int, proposal_index: int,
                  parent_ids: Sequence[int] = (), island: int = 0, generation: int = 0,
                  seconds: float = 0.0, created_at: float | None = None) -> "ProgramRecord":
        """A "duplicate" record of `proposal` (not evaluated, or evaluated only as far as the
        fingerprint) that copies the original's scores and descriptors for information."""
        if original.id is None:
            raise ValueError("the original must be a stored program (with an id)")
        return cls(
            run_id=run_id, proposal_index=proposal_index, source=proposal.source, parent_ids=list(parent_ids),
            island=island, generation=generation, rationale=proposal.rationale, mutator=proposal.mutator,
            model=proposal.model, status="duplicate", fitness=original.fitness,
            ood_log_ratio=original.ood_log_ratio, family_log_ratios=dict(original.family_log_ratios),
            tasks=[dict(t) for t in original.tasks], fingerprint=original.fingerprint,
            descriptors=dict(original.descriptors), probes=dict(original.probes), cell=original.cell,
            duplicate_of=original.id, seconds=seconds, created_at=time.time() if created_at is None else created_at,
            original_answer=proposal.original_answer, normalisation_changes=list(proposal.normalisation_changes))

    def to_parent(self) -> Parent:
        return Parent(source=self.source, fitness=self.fitness, rationale=self.rationale,
                      family_log_ratios=dict(self.family_log_ratios), id=self.id)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunRecord:
    """A row of `runs`; fields read as attributes or as keys (`run.status`, `run["status"]`)."""

    id: int
    created_at: float
    updated_at: float
    seed: int | None
    config: dict[str, Any]
    versions: dict[str, Any]
    status: str

    def __getitem__(self, key: str) -> Any:
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------------
# Schema and migrations
# --------------------------------------------------------------------------------------------

def _migrate_0_to_1(conn: sqlite3.Connection) -> None:
    """The first schema."""
    # one statement at a time: executescript would COMMIT the migration's transaction
    for statement in (
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            seed INTEGER,
            config TEXT NOT NULL,
            versions TEXT NOT NULL,
            status TEXT NOT NULL)""",
        """CREATE TABLE programs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id INTEGER NOT NULL REFERENCES runs(id),
            proposal_index INTEGER NOT NULL,
            parent_ids TEXT NOT NULL,
            island INTEGER NOT NULL,
            generation INTEGER NOT NULL,
            source TEXT NOT NULL,
            rationale TEXT NOT NULL,
            mutator TEXT NOT NULL,
            model TEXT,
            status TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'duplicate')),
            failure_stage TEXT,
            failure_code TEXT,
            failure_message TEXT,
            fitness REAL,
            ood_log_ratio REAL,
            family_log_ratios TEXT NOT NULL,
            tasks TEXT NOT NULL,
            fingerprint TEXT,
            descriptors TEXT NOT NULL,
            probes TEXT NOT NULL,
            timings TEXT NOT NULL,
            cell TEXT,
            duplicate_of INTEGER REFERENCES programs(id),
            seconds REAL NOT NULL,
            created_at REAL NOT NULL,
            UNIQUE (run_id, proposal_index))""",
        "CREATE INDEX programs_fingerprint ON programs(fingerprint)",
        "CREATE INDEX programs_fitness ON programs(run_id, status, fitness)",
        "CREATE INDEX programs_island ON programs(run_id, island)",
        """CREATE TABLE elites (
            run_id INTEGER NOT NULL REFERENCES runs(id),
            island INTEGER NOT NULL,
            cell TEXT NOT NULL,
            program_id INTEGER NOT NULL REFERENCES programs(id),
            fitness REAL NOT NULL,
            PRIMARY KEY (run_id, island, cell))""",
        """CREATE TABLE llm_calls (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id INTEGER NOT NULL REFERENCES runs(id),
            program_id INTEGER REFERENCES programs(id),
            model TEXT,
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            latency_s REAL NOT NULL DEFAULT 0,
            cost REAL NOT NULL DEFAULT 0,
            outcome TEXT NOT NULL,
            error TEXT,
            created_at REAL NOT NULL)""",
        "CREATE INDEX llm_calls_run ON llm_calls(run_id)",
        """CREATE TABLE heldout (
            run_id INTEGER NOT NULL REFERENCES runs(id),
            name TEXT NOT NULL,
            program_id INTEGER REFERENCES programs(id),
            result TEXT NOT NULL,
            created_at REAL NOT NULL)""",
        "CREATE INDEX heldout_run ON heldout(run_id)",
    ):
        conn.execute(statement)


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """Cheap dedup and lineage: `programs.source_hash` (sha256 of the normalised source, indexed)
    and the `program_parents` link table behind `children_count`, both filled for existing rows."""
    conn.execute("ALTER TABLE programs ADD COLUMN source_hash TEXT")
    conn.execute("""CREATE TABLE program_parents (
        child_id INTEGER NOT NULL REFERENCES programs(id),
        parent_id INTEGER NOT NULL,
        position INTEGER NOT NULL,
        PRIMARY KEY (child_id, position))""")
    conn.execute("CREATE INDEX program_parents_parent ON program_parents(parent_id)")
    rows = conn.execute("SELECT id, source, parent_ids FROM programs").fetchall()
    for program_id, source, parent_ids in rows:
        conn.execute("UPDATE programs SET source_hash = ? WHERE id = ?", (source_key(source), program_id))
        conn.executemany("INSERT INTO program_parents (child_id, parent_id, position) VALUES (?, ?, ?)",
                         [(program_id, int(p), i) for i, p in enumerate(json.loads(parent_ids or "[]"))])
    conn.execute("CREATE INDEX programs_source_hash ON programs(source_hash)")


def _migrate_2_to_3(conn: sqlite3.Connection) -> None:
    """LLM answers as they came: `programs.original_answer` (the model's whole answer; NULL for older
    rows and other mutators) and `programs.normalisation_changes` (JSON list of what the normaliser
    changed to make `source`; '[]' for older rows)."""
    conn.execute("ALTER TABLE programs ADD COLUMN original_answer TEXT")
    conn.execute("ALTER TABLE programs ADD COLUMN normalisation_changes TEXT NOT NULL DEFAULT '[]'")


def _migrate_3_to_4(conn: sqlite3.Connection) -> None:
    """Fitness as an estimate: `programs.fitness_se`, `score` (the selection's lower bound), `rounds`
    and `settled`; the `evaluations` table (one row per scored round, older programs get their one
    round from their own row) and `validations` (the best's validation score over the run). Elites
    now hold the score; for older rows score = fitness (one round, no standard error known)."""
    conn.execute("ALTER TABLE programs ADD COLUMN fitness_se REAL")
    conn.execute("ALTER TABLE programs ADD COLUMN score REAL")
    conn.execute("ALTER TABLE programs ADD COLUMN rounds INTEGER NOT NULL DEFAULT 1")
    conn.execute("ALTER TABLE programs ADD COLUMN settled INTEGER NOT NULL DEFAULT 1")
    conn.execute("UPDATE programs SET score = fitness")
    conn.execute("""CREATE TABLE evaluations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        program_id INTEGER NOT NULL REFERENCES programs(id),
        round INTEGER NOT NULL,
        kind TEXT NOT NULL,
        fitness REAL NOT NULL,
        tasks TEXT NOT NULL,
        seconds REAL NOT NULL,
        created_at REAL NOT NULL,
        UNIQUE (program_id, round))""")
    conn.execute("CREATE INDEX evaluations_program ON evaluations(program_id)")
    conn.execute("INSERT INTO evaluations (run_id, program_id, round, kind, fitness, tasks, seconds, created_at) "
                 "SELECT run_id, id, 0, 'search', fitness, tasks, seconds, created_at FROM programs "
                 "WHERE status = 'ok'")
    conn.execute("""CREATE TABLE validations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        program_id INTEGER NOT NULL REFERENCES programs(id),
        evaluated INTEGER NOT NULL,
        search_fitness REAL,
        search_se REAL,
        fitness REAL,
        result TEXT NOT NULL,
        created_at REAL NOT NULL)""")
    conn.execute("CREATE INDEX validations_run ON validations(run_id)")


#: MIGRATIONS[i] takes the schema from version i to i + 1. Append only; never edit a shipped step.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_migrate_0_to_1, _migrate_1_to_2, _migrate_2_to_3,
                                                          _migrate_3_to_4]
SCHEMA_VERSION = len(MIGRATIONS)


# --------------------------------------------------------------------------------------------
# The database
# --------------------------------------------------------------------------------------------

_JSON_FIELDS = ("parent_ids", "family_log_ratios", "tasks", "descriptors", "probes", "timings",
                "normalisation_changes")
_COLUMNS = tuple(f.name for f in fields(ProgramRecord) if f.name != "id")


def _selection_score(record: "ProgramRecord") -> float:
    """What grids and `top` rank a program by: its score (lower confidence bound), else its fitness."""
    return float(record.score if record.score is not None else record.fitness)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _finite_or_none(value: Any, what: str) -> float | None:
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value):  # SQLite would store NaN as NULL: refuse rather than lose it
        raise ValueError(f"{what} must be finite, got {value!r}")
    return value


# --------------------------------------------------------------------------------------------
# Startup checks: what a writer refuses before it writes anything
# --------------------------------------------------------------------------------------------

SQLITE_MAGIC = b"SQLite format 3\x00"   # the first 16 bytes of every SQLite 3 database file


def _newer_message(path: Path, version: int) -> str:
    return (f"{path} has schema version {version}: a newer actmine wrote it (this one reads versions up to "
            f"{SCHEMA_VERSION}). Nothing was changed; use that newer actmine with this run, or give another --run-dir")


def _corrupt_message(path: Path, detail: str) -> str:
    return (f"{path} is not a usable program database ({detail}). Nothing was changed. To start over in this "
            f"directory, move it aside with its -wal and -shm files (e.g. `mv {path} {path}.broken`); to save "
            "what is readable, run `sqlite3 FILE .recover` on a copy; or give another --run-dir")


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    """SQLite's verdict on the file itself ("file is not a database", "database disk image is
    malformed"), as opposed to an operational failure (locked, busy, cannot open, out of memory)."""
    text = str(exc)
    return not isinstance(exc, sqlite3.OperationalError) or "malformed" in text or "not a database" in text


def _not_writable(path: Path, what: str) -> DatabaseError:
    return DatabaseError(f"{what} {path} is not writable ({unwritable_reason(path)}); nothing was changed. Give a "
                         "--run-dir you can write to, or copy the run somewhere writable to resume it")


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
            raise DatabaseError(_corrupt_message(path, f"truncated: {size} bytes is not a whole number of "
                                                       f"{page_size}-byte pages"))
        pages, counter, valid_for = (int.from_bytes(header[i:i + 4], "big") for i in (28, 24, 92))
        if counter == valid_for and pages * page_size > size:   # the count is valid when these agree
            raise DatabaseError(_corrupt_message(path, f"truncated: {size // page_size} of its {pages} pages"))
    return True


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
    except OSError as exc:   # a read-only parent, a path through a regular file, no permission
        raise DatabaseError(f"cannot create the directory {directory} ({exc.strerror or exc}); give a --run-dir "
                            "in a place you can write to") from None
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
    wal, journal = companions[0], companions[2]
    in_use = any(file.exists() and file.stat().st_size > 0 for file in (wal, journal))
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
        problems = [row[0] for row in connection.execute("PRAGMA quick_check(5)").fetchall()]
    except sqlite3.DatabaseError as exc:
        if not _is_corruption(exc):
            raise DatabaseError(f"cannot check {path} ({exc}); try again") from None
        raise DatabaseError(_corrupt_message(path, str(exc))) from None
    finally:
        connection.close()
    if problems != ["ok"]:
        lines = [line.strip() for problem in problems for line in str(problem).splitlines()]
        found = [line for line in lines if line and not line.startswith("***")]   # "*** in database main ***"
        raise DatabaseError(_corrupt_message(path, "PRAGMA quick_check: " + "; ".join(found[:5])))


class ProgramDatabase:
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
            uri = self.path.resolve().as_uri() + "?mode=ro"
            self._conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        else:
            check_before_opening(self.path)   # refuse what we cannot use before writing anything
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
                if version != SCHEMA_VERSION:
                    raise DatabaseError(f"{self.path} has schema version {version}, this code reads {SCHEMA_VERSION}"
                                        "; open it once read-write to migrate it")
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
            if version > SCHEMA_VERSION:   # `check_before_opening` saw it already, unless it changed since
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

    def create_run(self, config: dict[str, Any], seed: int | None = None,
                   versions: dict[str, Any] | None = None, status: str = "running") -> int:
        now = time.time()
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO runs (created_at, updated_at, seed, config, versions, status) VALUES (?, ?, ?, ?, ?, ?)",
                (now, now, seed, _dumps(config), _dumps(versions or {}), status))
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
        row = self._conn.execute("SELECT id, created_at, updated_at, seed, config, versions, status FROM runs "
                                 "WHERE id = ?", (run_id,)).fetchone()
        return self._run(row) if row else None

    def latest_run(self) -> RunRecord | None:
        row = self._conn.execute("SELECT id, created_at, updated_at, seed, config, versions, status FROM runs "
                                 "ORDER BY id DESC LIMIT 1").fetchone()
        return self._run(row) if row else None

    def runs(self) -> list[RunRecord]:
        rows = self._conn.execute("SELECT id, created_at, updated_at, seed, config, versions, status FROM runs "
                                  "ORDER BY id").fetchall()
        return [self._run(row) for row in rows]

    @staticmethod
    def _run(row: tuple) -> RunRecord:
        return RunRecord(id=row[0], created_at=row[1], updated_at=row[2], seed=row[3], config=json.loads(row[4]),
                         versions=json.loads(row[5]), status=row[6])

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
            cursor = conn.execute(f"INSERT INTO programs ({', '.join(columns)}) "
                                  f"VALUES ({', '.join('?' * len(columns))})", values)
            program_id = int(cursor.lastrowid)
            conn.executemany("INSERT INTO program_parents (child_id, parent_id, position) VALUES (?, ?, ?)",
                             [(program_id, int(p), i) for i, p in enumerate(record.parent_ids)])
            fault_point("db_program_inserted")
            if record.status == "ok" and record.cell is not None and record.settled:
                self._offer_elite(record.run_id, record.island, record.cell, program_id, _selection_score(record))
        record.id = program_id
        return program_id

    def _offer_elite(self, run_id: int, island: int, cell: str, program_id: int, fitness: float) -> bool:
        """Put the program in the cell if it is empty or the program's selection score (`fitness`
        here: the score column of the grid) is strictly higher. Call inside a transaction."""
        row = self._conn.execute("SELECT program_id, fitness FROM elites WHERE run_id = ? AND island = ? AND cell = ?",
                                 (run_id, island, cell)).fetchone()
        if row is not None and row[0] == program_id:
            self._conn.execute("UPDATE elites SET fitness = ? WHERE run_id = ? AND island = ? AND cell = ?",
                               (fitness, run_id, island, cell))
            return False
        if row is not None and not fitness > row[1]:
            return False
        self._conn.execute("INSERT OR REPLACE INTO elites (run_id, island, cell, program_id, fitness) "
                           "VALUES (?, ?, ?, ?, ?)", (run_id, island, cell, program_id, fitness))
        return True

    def move_to_island(self, run_id: int, program_id: int, to_island: int) -> bool:
        """Offer a stored ok program to another island's grid, in its own cell (it takes the cell
        if empty or strictly fitter). Returns whether it took the cell. One transaction."""
        with self.transaction():
            row = self._conn.execute("SELECT run_id, status, cell, COALESCE(score, fitness), settled FROM programs "
                                     "WHERE id = ?", (program_id,)).fetchone()
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
        for name in _JSON_FIELDS:
            data[name] = json.loads(data[name])
        data["settled"] = bool(data["settled"])
        return ProgramRecord(**data)

    def _records(self, sql: str, params: Sequence[Any] = ()) -> list[ProgramRecord]:
        return [self._record(row) for row in self._conn.execute(sql, params).fetchall()]

    def get(self, program_id: int) -> ProgramRecord | None:
        found = self._records(f"{self._SELECT} WHERE id = ?", (program_id,))
        return found[0] if found else None

    def get_many(self, program_ids: Sequence[int]) -> list[ProgramRecord]:
        """The programs with these ids, in the given order (missing ids skipped)."""
        ids = list(dict.fromkeys(int(i) for i in program_ids))
        found: dict[int, ProgramRecord] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
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
        return int(self._conn.execute("SELECT COUNT(*) FROM programs WHERE run_id = ? AND status = ?",
                                      (run_id, status)).fetchone()[0])

    def max_proposal_index(self, run_id: int) -> int:
        """The largest proposal_index recorded in the run, −1 when there is none (so the next
        proposal is always `max_proposal_index(run_id) + 1`)."""
        value = self._conn.execute("SELECT MAX(proposal_index) FROM programs WHERE run_id = ?", (run_id,)).fetchone()[0]
        return -1 if value is None else int(value)

    def top(self, run_id: int, k: int, island: int | None = None) -> list[ProgramRecord]:
        """The k best settled ok programs (duplicates and programs awaiting confirmation excluded)
        by selection score (the lower confidence bound of the fitness), descending, earlier first on
        ties; `island` restricts to programs evaluated on that island (not migrants)."""
        sql, params = f"{self._SELECT} WHERE run_id = ? AND status = 'ok' AND settled = 1", [run_id]
        if island is not None:
            sql += " AND island = ?"
            params.append(island)
        return self._records(sql + " ORDER BY COALESCE(score, fitness) DESC, id ASC LIMIT ?", params + [int(k)])

    def best(self, run_id: int) -> ProgramRecord | None:
        found = self.top(run_id, 1)
        return found[0] if found else None

    def elites(self, run_id: int, island: int) -> list[ProgramRecord]:
        """The programs in the island's grid (one per occupied cell, migrants included), selection
        score descending, earlier first on ties. Each one's `cell` is the cell it occupies."""
        sql = (f"SELECT p.id, {', '.join('p.' + c for c in _COLUMNS)} FROM elites e JOIN programs p "
               "ON p.id = e.program_id WHERE e.run_id = ? AND e.island = ? ORDER BY e.fitness DESC, p.id ASC")
        return self._records(sql, (run_id, island))

    def grid(self, run_id: int, island: int) -> dict[str, int]:
        """The island's grid as {cell: program_id}."""
        rows = self._conn.execute("SELECT cell, program_id FROM elites WHERE run_id = ? AND island = ? ORDER BY cell",
                                  (run_id, island)).fetchall()
        return {cell: program_id for cell, program_id in rows}

    def islands(self, run_id: int) -> list[int]:
        """Islands that have a program or a grid entry in the run."""
        rows = self._conn.execute("SELECT island FROM programs WHERE run_id = ? UNION "
                                  "SELECT island FROM elites WHERE run_id = ? ORDER BY 1", (run_id, run_id)).fetchall()
        return [row[0] for row in rows]

    def children_count(self, program_id: int) -> int:
        """How many programs list this one in their parent_ids."""
        return int(self._conn.execute("SELECT COUNT(DISTINCT child_id) FROM program_parents WHERE parent_id = ?",
                                      (program_id,)).fetchone()[0])

    def children_counts(self, program_ids: Sequence[int]) -> dict[int, int]:
        """`children_count` for many programs at once (0 for those without children)."""
        ids = list(dict.fromkeys(int(i) for i in program_ids))
        counts = dict.fromkeys(ids, 0)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows = self._conn.execute(
                f"SELECT parent_id, COUNT(DISTINCT child_id) FROM program_parents WHERE parent_id IN "
                f"({', '.join('?' * len(chunk))}) GROUP BY parent_id", chunk).fetchall()
            counts.update({parent: int(n) for parent, n in rows})
        return counts

    def failures_by_reason(self, run_id: int) -> dict[tuple[str | None, str | None], int]:
        """{(failure_stage, failure_code): count} over the run's failed programs."""
        rows = self._conn.execute("SELECT failure_stage, failure_code, COUNT(*) FROM programs WHERE run_id = ? "
                                  "AND status = 'failed' GROUP BY failure_stage, failure_code "
                                  "ORDER BY COUNT(*) DESC, failure_stage, failure_code", (run_id,)).fetchall()
        return {(stage, code): int(n) for stage, code, n in rows}

    # ---- estimates: rounds, confirmation, validation over the run ------------------------------

    def add_evaluation(self, run_id: int, program_id: int, round: int, kind: str, fitness: float,
                       tasks: Sequence[dict[str, Any]], seconds: float = 0.0, created_at: float | None = None) -> None:
        """One scored round of a program (`kind`: search, confirm or pooled); its per-task scores."""
        with self.transaction() as conn:
            conn.execute("INSERT INTO evaluations (run_id, program_id, round, kind, fitness, tasks, seconds, "
                         "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (run_id, program_id, int(round), kind, _finite_or_none(fitness, "fitness"),
                          _dumps(list(tasks)), float(seconds), time.time() if created_at is None else created_at))

    def evaluations(self, program_id: int) -> list[dict[str, Any]]:
        """A program's scored rounds in round order: {round, kind, fitness, tasks, seconds, created_at}."""
        rows = self._conn.execute("SELECT round, kind, fitness, tasks, seconds, created_at FROM evaluations "
                                  "WHERE program_id = ? ORDER BY round", (program_id,)).fetchall()
        return [{"round": r, "kind": k, "fitness": f, "tasks": json.loads(t), "seconds": s, "created_at": c}
                for r, k, f, t, s, c in rows]

    def evaluation_counts(self, run_id: int) -> dict[str, int]:
        """How many rounds the run scored, by kind."""
        rows = self._conn.execute("SELECT kind, COUNT(*) FROM evaluations WHERE run_id = ? GROUP BY kind",
                                  (run_id,)).fetchall()
        return {kind: int(n) for kind, n in rows}

    def update_estimate(self, program_id: int, *, fitness: float, ood_log_ratio: float,
                        family_log_ratios: dict[str, float], tasks: Sequence[dict[str, Any]], fitness_se: float,
                        score: float, rounds: int, settled: bool) -> None:
        """A program's pooled estimate after a new round; a settled program is offered to its island's
        grid (and every grid entry it holds takes its new score). One transaction."""
        with self.transaction() as conn:
            conn.execute("UPDATE programs SET fitness = ?, ood_log_ratio = ?, family_log_ratios = ?, tasks = ?, "
                         "fitness_se = ?, score = ?, rounds = ?, settled = ? WHERE id = ?",
                         (_finite_or_none(fitness, "fitness"), _finite_or_none(ood_log_ratio, "ood_log_ratio"),
                          _dumps(family_log_ratios), _dumps(list(tasks)), _finite_or_none(fitness_se, "fitness_se"),
                          _finite_or_none(score, "score"), int(rounds), int(bool(settled)), program_id))
            conn.execute("UPDATE elites SET fitness = ? WHERE program_id = ?", (score, program_id))
            record = self.get(program_id)
            if settled and record is not None and record.status == "ok" and record.cell is not None:
                self._offer_elite(record.run_id, record.island, record.cell, program_id, score)

    def unsettled_count(self, run_id: int) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM programs WHERE run_id = ? AND status = 'ok' "
                                      "AND settled = 0", (run_id,)).fetchone()[0])

    def unsettled(self, run_id: int) -> list[ProgramRecord]:
        """Ok programs still waiting for confirmation rounds, in insertion order."""
        return self._records(f"{self._SELECT} WHERE run_id = ? AND status = 'ok' AND settled = 0 ORDER BY id",
                             (run_id,))

    def add_validation(self, run_id: int, program_id: int, evaluated: int, search_fitness: float | None,
                       search_se: float | None, fitness: float | None, result: dict[str, Any],
                       created_at: float | None = None) -> None:
        """The validation score of the run's best program at the time `evaluated` proposals were recorded."""
        with self.transaction() as conn:
            conn.execute("INSERT INTO validations (run_id, program_id, evaluated, search_fitness, search_se, fitness, "
                         "result, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (run_id, program_id, int(evaluated), _finite_or_none(search_fitness, "search_fitness"),
                          _finite_or_none(search_se, "search_se"), _finite_or_none(fitness, "fitness"),
                          _dumps(result), time.time() if created_at is None else created_at))

    def latest_validation(self, run_id: int) -> dict[str, Any] | None:
        """The run's newest row of `validations`, or None."""
        found = self.validations(run_id, latest=True)
        return found[0] if found else None

    def validations(self, run_id: int, latest: bool = False) -> list[dict[str, Any]]:
        """The run's validations of its best program over time: {program_id, evaluated, search_fitness,
        search_se, fitness, result, created_at}, oldest first."""
        rows = self._conn.execute("SELECT program_id, evaluated, search_fitness, search_se, fitness, result, "
                                  "created_at FROM validations WHERE run_id = ? ORDER BY id"
                                  + (" DESC LIMIT 1" if latest else ""), (run_id,)).fetchall()
        return [{"program_id": p, "evaluated": e, "search_fitness": sf, "search_se": se, "fitness": f,
                 "result": json.loads(r), "created_at": c} for p, e, sf, se, f, r, c in rows]

    # ---- LLM calls and held-out results --------------------------------------------------------

    def add_llm_call(self, run_id: int, model: str | None, *, program_id: int | None = None,
                     prompt_tokens: int = 0, completion_tokens: int = 0, latency_s: float = 0.0,
                     cost: float = 0.0, outcome: str = "ok", error: str | None = None,
                     created_at: float | None = None) -> int:
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO llm_calls (run_id, program_id, model, prompt_tokens, completion_tokens, latency_s, cost, "
                "outcome, error, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, program_id, model, int(prompt_tokens), int(completion_tokens), float(latency_s), float(cost),
                 outcome, error, time.time() if created_at is None else created_at))
            return int(cursor.lastrowid)

    def llm_calls(self, run_id: int) -> list[dict[str, Any]]:
        cursor = self._conn.execute("SELECT id, run_id, program_id, model, prompt_tokens, completion_tokens, latency_s, "
                                    "cost, outcome, error, created_at FROM llm_calls WHERE run_id = ? ORDER BY id",
                                    (run_id,))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    def add_heldout(self, run_id: int, name: str, program_id: int | None, result: dict[str, Any],
                    created_at: float | None = None) -> None:
        """One held-out result (`program_id` None for a reference such as relu); `result` is JSON."""
        with self.transaction() as conn:
            conn.execute("INSERT INTO heldout (run_id, name, program_id, result, created_at) VALUES (?, ?, ?, ?, ?)",
                         (run_id, name, program_id, _dumps(result), time.time() if created_at is None else created_at))

    def clear_heldout(self, run_id: int) -> None:
        """Remove the run's held-out results (before a new check writes its own; one transaction)."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM heldout WHERE run_id = ?", (run_id,))

    def heldout(self, run_id: int) -> list[dict[str, Any]]:
        """The run's held-out results in insertion order: {name, program_id, result, created_at}."""
        rows = self._conn.execute("SELECT name, program_id, result, created_at FROM heldout WHERE run_id = ? "
                                  "ORDER BY rowid", (run_id,)).fetchall()
        return [{"name": name, "program_id": program_id, "result": json.loads(result), "created_at": created_at}
                for name, program_id, result, created_at in rows]
