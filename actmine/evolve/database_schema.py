"""The program database's schema, as append-only migrations: `MIGRATIONS[i]` takes a database from
version i to i + 1 (`PRAGMA user_version`); `ProgramDatabase` runs the missing ones, each with its
version bump, in one transaction when it opens the file.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Callable

from .program_records import source_key


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
        conn.executemany(
            "INSERT INTO program_parents (child_id, parent_id, position) VALUES (?, ?, ?)",
            [(program_id, int(p), i) for i, p in enumerate(json.loads(parent_ids or "[]"))],
        )
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
    conn.execute(
        "INSERT INTO evaluations (run_id, program_id, round, kind, fitness, tasks, seconds, created_at) "
        "SELECT run_id, id, 0, 'search', fitness, tasks, seconds, created_at FROM programs "
        "WHERE status = 'ok'"
    )
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
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _migrate_0_to_1,
    _migrate_1_to_2,
    _migrate_2_to_3,
    _migrate_3_to_4,
]
SCHEMA_VERSION = len(MIGRATIONS)
