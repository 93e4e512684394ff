"""The program database: round-trips, atomic writes (a writer killed mid-insert), a read-only
reader beside a writer, WAL, migration from a hand-made v1 file, dedup, elites, queries."""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actmine.evolve.database import (
    BLEND_MUTATOR,
    MIGRATIONS,
    SCHEMA_VERSION,
    DatabaseError,
    ProgramDatabase,
    ProgramRecord,
    normalise_source,
    source_key,
)
from actmine.evolve.database_file import refuse_foreign
from actmine.evolve.mutators import Parent, Proposal
from actmine.lab.fitness import Evaluation, TaskScore

REPO = Path(__file__).resolve().parents[1]
SOURCE = "def activation_function(x):\n    return torch.relu(x)\n"


def record(
    run_id: int,
    index: int,
    fitness: float | None = 0.0,
    *,
    status: str = "ok",
    island: int = 0,
    cell: str | None = "gp2.gn1.sc0.b0.fl0",
    source: str | None = None,
    **fields,
) -> ProgramRecord:
    return ProgramRecord(
        run_id=run_id,
        proposal_index=index,
        source=source or f"{SOURCE}# {index}\n",
        fitness=fitness,
        status=status,
        island=island,
        cell=cell,
        **fields,
    )


@pytest.fixture
def db(tmp_path):
    with ProgramDatabase(tmp_path / "search.db") as database:
        yield database


@pytest.fixture
def run(db):
    return db.create_run({"islands": 2}, seed=7, versions={"torch": "2.x"})


# --------------------------------------------------------------------------------------------
# Schema, round-trips
# --------------------------------------------------------------------------------------------


def test_new_file_has_current_schema_in_wal_mode(db):
    assert db.schema_version() == SCHEMA_VERSION == len(MIGRATIONS) == 4
    assert db.journal_mode() == "wal"
    tables = {row[0] for row in db._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"runs", "programs", "elites", "llm_calls", "heldout", "program_parents"} <= tables
    indexes = {row[0] for row in db._conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"programs_fingerprint", "programs_fitness", "programs_island", "programs_source_hash"} <= indexes


#: sha256 of the schema that migration steps 1 to 4 create (`_schema_text`). The steps are shipped:
#: files in the wild were made by them, so they must never change (append a step instead). If this
#: fails, a shipped step was edited; print `_schema_text(4)` to see what it makes now.
SCHEMA_4_SHA256 = "abda59557f525807a7835aeb47b41eb270700e82742de9e771e1b4622629a339"


def _schema_text(steps: int) -> str:
    """Every table and index that the first `steps` migration steps create, as SQLite stores them."""
    connection = sqlite3.connect(":memory:")
    for step in MIGRATIONS[:steps]:
        step(connection)
    rows = connection.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY type, name"
    ).fetchall()
    connection.close()
    return "\n".join(f"{kind} {name} {table}: {sql}" for kind, name, table, sql in rows)


def test_shipped_migration_steps_never_change(db):
    assert hashlib.sha256(_schema_text(4).encode()).hexdigest() == SCHEMA_4_SHA256, _schema_text(4)
    stored = db._conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY type, name"
    ).fetchall()
    assert "\n".join(f"{kind} {name} {table}: {sql}" for kind, name, table, sql in stored) == _schema_text(4)
    columns = [row[1] for row in db._conn.execute("PRAGMA table_info(programs)")]
    assert columns[-7:] == [
        "source_hash",
        "original_answer",
        "normalisation_changes",
        "fitness_se",
        "score",
        "rounds",
        "settled",
    ]  # each later step appends its columns


def test_every_field_round_trips(db, run):
    parent = db.add_program(record(run, 0, 0.1))
    original = ProgramRecord(
        run_id=run,
        proposal_index=1,
        parent_ids=[parent, parent],
        island=3,
        generation=4,
        source="def activation_function(x):\n    return x * torch.sigmoid(1.702 * x)  # ünïcode ✓\n",
        rationale="sharper gate",
        mutator="llm",
        model="some-model",
        status="ok",
        failure_stage=None,
        failure_code=None,
        failure_message=None,
        fitness=0.25,
        ood_log_ratio=-0.25,
        family_log_ratios={"periodic": -0.5, "poly": 0.125},
        tasks=[{"name": "sin", "family": "periodic", "ood_error": 0.3, "id_error": 0.01, "log_ratio": -0.5}],
        fingerprint="abc123",
        descriptors={"growth_pos": 1.0, "bounded": False, "sign_changes": 1},
        probes={"pointwise": True, "flops_per_element": 9.5, "ops": {"mul": 2}, "nested": [1, {"a": None}]},
        timings={"probes": 0.5, "train": 3.25},
        cell="gp2.gn1.sc1.b0.fl1",
        duplicate_of=None,
        seconds=3.75,
        created_at=1234.5,
        original_answer="Sharper.\n```python\nfrom typing import Any\ndef activation_function(x: Any):"
        "\n    return x * torch.sigmoid(1.702 * x)\n```\n<script>",
        normalisation_changes=["dropped `from typing import Any`"],
    )
    program_id = db.add_program(original)
    assert original.id == program_id
    assert db.get(program_id) == original
    failed = ProgramRecord(
        run_id=run,
        proposal_index=2,
        source="oops",
        status="failed",
        failure_stage="probes",
        failure_code="non_finite",
        failure_message="NaN at 0",
        mutator="symbolic",
        parent_ids=[program_id],
        created_at=99.0,
    )
    db.add_program(failed)
    assert db.get(failed.id) == failed
    dup = ProgramRecord.duplicate(
        Proposal(
            "def activation_function(x):\n    return x*torch.sigmoid(1.702*x)\n",
            "same thing",
            "llm",
            original_answer="the answer",
            normalisation_changes=("a change",),
        ),
        original,
        run_id=run,
        proposal_index=3,
        parent_ids=[parent],
        island=1,
        generation=1,
    )
    db.add_program(dup)
    back = db.get(dup.id)
    assert back == dup and back.status == "duplicate" and back.duplicate_of == program_id
    assert back.original_answer == "the answer" and back.normalisation_changes == ["a change"]
    assert failed.original_answer is None and failed.normalisation_changes == []  # other mutators: none
    assert back.fitness == original.fitness and back.cell == original.cell
    assert db.get(10_000) is None
    assert db.get(2**63) is None and db.get(-(2**70)) is None  # past SQLite's integers: no row, no OverflowError
    assert db.get_many([dup.id, 10_000, parent]) == [dup, db.get(parent)]
    assert db.by_proposal(run, 1) == original
    # JSON columns are JSON text in the file
    raw = db._conn.execute("SELECT parent_ids, probes FROM programs WHERE id = ?", (program_id,)).fetchone()
    assert json.loads(raw[0]) == [parent, parent] and json.loads(raw[1])["ops"] == {"mul": 2}


def _evaluation(ok: bool = True) -> Evaluation:
    probes = {
        "pointwise": True,
        "flops_per_element": 8.0,
        "backward_flops_per_element": 12.0,
        "saved_bytes_per_element": 4,
        "fingerprint": "f00d",
        "descriptors": {
            "value_at_0": 0.0,
            "slope_at_0": 0.5,
            "growth_pos": 1.0,
            "growth_neg": 0.0,
            "sign_changes": 1,
            "bounded": False,
            "monotone": False,
            "mean_curvature": 0.2,
        },
        "ops": {"mul": 3},
    }
    if not ok:
        evaluation = Evaluation("candidate", ok=False, probes=probes, seconds=1.5, timings={"probes": 0.5})
        return evaluation.fail("screen", "screen_failed", "did not learn")
    tasks = [
        TaskScore("a", "poly", 0.1, 0.01, -0.2),
        TaskScore("b", "poly", 0.2, 0.02, -0.4),
        TaskScore("c", "periodic", 0.3, 0.03, 0.3),
    ]
    return Evaluation(
        "candidate",
        ok=True,
        fitness=0.1,
        ood_log_ratio=-0.1,
        tasks=tasks,
        probes=probes,
        seconds=2.5,
        stage="done",
        timings={"probes": 0.5, "train": 2.0},
    )


def test_from_evaluation_and_to_parent(db, run):
    proposal = Proposal(SOURCE, "start from relu", "symbolic", None)
    rec = ProgramRecord.from_evaluation(
        _evaluation(), proposal, run_id=run, proposal_index=0, parent_ids=[], island=1, generation=0, cell=None
    )
    assert rec.status == "ok" and rec.fitness == 0.1 and rec.fingerprint == "f00d"
    assert rec.family_log_ratios == pytest.approx({"periodic": 0.3, "poly": -0.3})
    assert rec.cell == "gp2.gn1.sc1.b0.fl1"  # computed from the probes
    assert rec.tasks[0] == {
        "name": "a",
        "family": "poly",
        "ood_error": 0.1,
        "id_error": 0.01,
        "log_ratio": -0.2,
        "seed_log_ratios": [],
    }
    assert rec.failure_code is None and rec.seconds == 2.5
    db.add_program(rec)
    assert db.get(rec.id) == rec
    parent = rec.to_parent()
    assert parent == Parent(
        source=SOURCE, fitness=0.1, rationale="start from relu", family_log_ratios=rec.family_log_ratios, id=rec.id
    )

    failed = ProgramRecord.from_evaluation(
        _evaluation(ok=False),
        Proposal("x", "y", "random"),
        run_id=run,
        proposal_index=1,
        parent_ids=[rec.id],
        island=1,
        generation=1,
        cell=None,
    )
    assert (failed.status, failed.failure_stage, failed.failure_code, failed.failure_message) == (
        "failed",
        "screen",
        "screen_failed",
        "did not learn",
    )
    assert failed.cell is None and failed.fitness is None and failed.family_log_ratios == {}
    db.add_program(failed)
    assert db.get(failed.id) == failed and db.elites(run, 1) == [rec]


def test_invalid_records_are_refused_and_leave_nothing(db, run):
    with pytest.raises(ValueError):
        db.add_program(record(run, 0, None))  # ok without fitness
    with pytest.raises(ValueError):
        db.add_program(record(run, 0, math.nan))
    with pytest.raises(ValueError):
        db.add_program(record(run, 0, 0.1, status="weird"))
    with pytest.raises(ValueError):
        db.add_program(record(run, 0, 0.1, status="duplicate"))  # duplicate_of missing
    db.add_program(record(run, 0, 0.1))
    with pytest.raises(sqlite3.IntegrityError):  # proposal_index is unique per run
        db.add_program(record(run, 0, 0.9, cell="gp0.gn0.sc0.b0.fl0", parent_ids=[1]))
    assert db.count(run) == 1 and len(db.elites(run, 0)) == 1
    assert db._conn.execute("SELECT COUNT(*) FROM program_parents").fetchone()[0] == 0
    with pytest.raises(ValueError):  # a half-done insert is rolled back
        db.add_program(record(run, 1, 0.7, cell="gp1.gn1.sc0.b0.fl0", parent_ids=[1, "x"]))
    assert db.count(run) == 1 and db.by_proposal(run, 1) is None
    with pytest.raises(RuntimeError):  # a failing group rolls back entirely
        with db.transaction():
            db.add_program(record(run, 1, 0.5, cell="gp3.gn1.sc0.b0.fl0"))
            raise RuntimeError("crash")
    assert db.count(run) == 1 and len(db.elites(run, 0)) == 1 and db.max_proposal_index(run) == 0
    with db.transaction():  # a nested failure undoes only its own part
        db.add_program(record(run, 1, 0.5, cell="gp3.gn1.sc0.b0.fl0"))
        with pytest.raises(sqlite3.IntegrityError):
            db.add_program(record(run, 1, 0.7, cell="gp1.gn1.sc0.b0.fl0", parent_ids=[1]))
        with pytest.raises(ValueError):  # fails after the programs row went in
            db.add_program(record(run, 2, 0.7, cell="gp1.gn1.sc0.b0.fl0", parent_ids=[1, "x"]))
        db.update_run(run, status="grouped")
    assert db.count(run) == 2 and len(db.elites(run, 0)) == 2 and db.get_run(run).status == "grouped"
    assert db._conn.execute("SELECT COUNT(*) FROM program_parents").fetchone()[0] == 0


# --------------------------------------------------------------------------------------------
# Elites, queries
# --------------------------------------------------------------------------------------------


def test_elite_replacement_rules(db, run):
    cell = "gp2.gn1.sc0.b0.fl0"
    first = db.add_program(record(run, 0, 0.1, cell=cell))
    assert [e.id for e in db.elites(run, 0)] == [first]
    worse = db.add_program(record(run, 1, 0.05, cell=cell))
    equal = db.add_program(record(run, 2, 0.1, cell=cell))
    assert [e.id for e in db.elites(run, 0)] == [first]  # worse and equal do not replace
    better = db.add_program(record(run, 3, 0.3, cell=cell))
    assert [e.id for e in db.elites(run, 0)] == [better]
    db.add_program(record(run, 4, 5.0, status="failed", cell=cell, failure_stage="train", failure_code="x"))
    db.add_program(record(run, 5, 5.0, status="duplicate", cell=cell, duplicate_of=better))
    db.add_program(record(run, 6, 5.0, cell=None))  # ok but no cell: stored, not in a grid
    assert [e.id for e in db.elites(run, 0)] == [better]
    other = db.add_program(record(run, 7, 0.01, cell="gp0.gn1.sc3.b1.fl1"))
    on_island_1 = db.add_program(record(run, 8, -1.0, cell=cell, island=1))
    assert [e.id for e in db.elites(run, 0)] == [better, other]  # fitness descending
    assert db.grid(run, 0) == {cell: better, "gp0.gn1.sc3.b1.fl1": other}
    assert [e.id for e in db.elites(run, 1)] == [on_island_1]
    assert db.islands(run) == [0, 1]
    for stored, fitness in ((worse, 0.05), (equal, 0.1)):  # stored, just not in the grid
        assert db.get(stored).fitness == fitness and stored not in db.grid(run, 0).values()
    # migrate: into another island's grid in its own cell, only if better
    assert db.move_to_island(run, better, 1) is True
    assert db.grid(run, 1) == {cell: better}
    assert db.move_to_island(run, first, 1) is False  # worse than the occupant
    assert db.move_to_island(run, better, 1) is False  # already there
    assert db.move_to_island(run, 5, 1) is False  # a failed program never enters
    assert db.get(better).island == 0  # the program keeps its origin
    run2 = db.create_run({}, seed=1)
    with pytest.raises(ValueError):
        db.move_to_island(run2, better, 1)


def test_top_and_best_ordering(db, run):
    fitnesses = [0.1, 0.5, -0.2, 0.5, 0.3]
    ids = [
        db.add_program(record(run, i, f, island=i % 2, cell=f"gp{i % 4}.gn1.sc0.b0.fl0"))
        for i, f in enumerate(fitnesses)
    ]
    db.add_program(record(run, 5, None, status="failed", failure_stage="policy", failure_code="p"))
    db.add_program(record(run, 6, 9.0, status="duplicate", duplicate_of=ids[0]))
    assert [r.id for r in db.top(run, 10)] == [ids[1], ids[3], ids[4], ids[0], ids[2]]  # ties: earlier first
    assert [r.id for r in db.top(run, 2)] == [ids[1], ids[3]]
    assert [r.id for r in db.top(run, 10, island=0)] == [ids[4], ids[0], ids[2]]
    assert db.best(run).id == ids[1]
    other = db.create_run({}, seed=2)
    assert db.best(other) is None and db.top(other, 3) == []
    db.add_program(record(other, 0, 100.0))
    assert db.best(run).id == ids[1]  # runs are separate
    # the scores alone, in the same order (the controller's confirmation bar reads only these)
    for k in (0, 2, 10):
        assert db.top_scores(run, k) == [(r.id, r.fitness) for r in db.top(run, k)]
    db._conn.execute("UPDATE programs SET score = -0.1 WHERE id = ?", (ids[4],))  # a lower bound below its mean
    assert db.top_scores(run, 10) == [(r.id, r.score if r.score is not None else r.fitness) for r in db.top(run, 10)]
    assert [i for i, _ in db.top_scores(run, 10)] == [ids[1], ids[3], ids[0], ids[4], ids[2]]
    db._conn.execute("UPDATE programs SET fitness = 'high', score = NULL WHERE id = ?", (ids[2],))
    with pytest.raises(DatabaseError, match=rf"program {ids[2]}, field 'score': a str where float belongs"):
        db.top_scores(run, 10)


def test_a_final_checks_blend_is_never_the_searchs(db, run):
    """A resumed run's search must not see the previous check's blend (mutator "blend", no cell):
    not in top/best, so never a parent, an inspiration or the confirmation bar."""
    from actmine.evolve.selection import sample_inspirations, sample_parent

    ids = [db.add_program(record(run, i, f, cell=f"gp{i}.gn1.sc0.b0.fl0")) for i, f in enumerate([0.1, 0.3, 0.2])]
    blend = db.add_program(record(run, 3, 5.0, cell=None, mutator=BLEND_MUTATOR, parent_ids=[ids[1]]))
    assert [r.id for r in db.top(run, 10)] == [ids[1], ids[2], ids[0]]
    assert db.best(run).id == ids[1] and db.get(blend).fitness == 5.0  # stored, but not the search's
    rng = random.Random(0)
    parents = {sample_parent(db, run, 0, rng, exploitation=0.0, exploration=0.0).id for _ in range(50)}
    assert parents == set(ids)  # the global fallback draws from `top`: every search program, no blend
    assert blend not in {r.id for r in sample_inspirations(db, run, 1, None, 5, rng)}


def test_dedup_lookups(db, run):
    failed = db.add_program(
        record(
            run,
            0,
            None,
            status="failed",
            fingerprint="fp1",
            failure_stage="probes",
            failure_code="zero_gradient",
            source="def activation_function(x):\n    return 0*x\n",
        )
    )
    ok = db.add_program(record(run, 1, 0.2, fingerprint="fp1", source=SOURCE))
    dup = db.add_program(record(run, 2, 0.2, status="duplicate", duplicate_of=ok, fingerprint="fp2", source="z"))
    assert db.by_fingerprint("fp1").id == failed  # the earliest non-duplicate
    assert db.by_fingerprint("fp2") is None  # duplicates are never originals
    assert db.by_fingerprint("nope") is None
    reformatted = "# a comment\ndef activation_function( x ):\n\n    return torch.relu( x )   # same\n"
    assert normalise_source(reformatted) == normalise_source(SOURCE) == normalise_source(normalise_source(SOURCE))
    assert db.by_source(reformatted).id == ok
    assert db.by_source(normalise_source(SOURCE)).id == ok
    assert db.by_source("def activation_function(x):\n    return torch.tanh(x)\n") is None
    assert db.by_source("z") is None and db.get(dup).source == "z"  # a duplicate's source is no original
    broken = "def activation_function(x:\n   return x   \n\n"
    assert normalise_source(broken) == "def activation_function(x:\n   return x"
    bad = db.add_program(
        record(run, 3, None, status="failed", source=broken, failure_stage="policy", failure_code="syntax_error")
    )
    assert db.by_source(broken + "\n\n").id == bad
    assert source_key(broken) != source_key(SOURCE)
    other = db.create_run({})
    assert db.by_fingerprint("fp1", run_id=other) is None and db.by_source(SOURCE, run_id=other) is None
    assert db.by_fingerprint("fp1", run_id=run).id == failed and db.by_source(SOURCE, run_id=run).id == ok


def test_counts_children_and_failures(db, run):
    root = db.add_program(record(run, 0, 0.0))
    child = db.add_program(record(run, 1, 0.1, parent_ids=[root]))
    db.add_program(record(run, 2, 0.1, parent_ids=[root, child]))
    db.add_program(
        record(
            run, 3, None, status="failed", parent_ids=[child, child], failure_stage="probes", failure_code="non_finite"
        )
    )
    db.add_program(record(run, 7, None, status="failed", failure_stage="probes", failure_code="non_finite"))
    db.add_program(record(run, 5, None, status="failed", failure_stage="screen", failure_code="screen_failed"))
    db.add_program(record(run, 6, None, status="failed", failure_stage="policy", failure_code="forbidden_name"))
    assert db.children_count(root) == 2 and db.children_count(child) == 2 and db.children_count(999) == 0
    assert db.children_counts([root, child, 999]) == {root: 2, child: 2, 999: 0}
    assert db.failures_by_reason(run) == {
        ("probes", "non_finite"): 2,
        ("screen", "screen_failed"): 1,
        ("policy", "forbidden_name"): 1,
    }
    assert db.count(run) == 7 and db.count(run, "failed") == 4 and db.count(run, "ok") == 3
    assert db.max_proposal_index(run) == 7
    assert db.max_proposal_index(db.create_run({})) == -1
    assert [p.proposal_index for p in db.programs(run, status="ok")] == [0, 1, 2]
    assert len(db.programs(run)) == 7 and db.programs(run, island=5) == []


def test_runs_llm_calls_and_heldout(db):
    assert db.latest_run() is None
    first = db.create_run({"a": 1}, seed=3, versions={"python": "3.11"})
    second = db.create_run({"b": [1, 2]}, seed=None)
    latest = db.latest_run()
    assert latest.id == second and latest.config == {"b": [1, 2]} and latest.status == "running"
    assert latest["id"] == second and latest["status"] == "running" and latest.to_dict()["seed"] is None
    with pytest.raises(KeyError):
        latest["nope"]
    before = db.get_run(first)
    assert (before.seed, before.config, before.versions) == (3, {"a": 1}, {"python": "3.11"})
    time.sleep(0.01)
    db.update_run(first, config={"a": 2}, status="finished")
    after = db.get_run(first)
    assert after.config == {"a": 2} and after.status == "finished" and after.updated_at > before.updated_at
    assert after.created_at == before.created_at  # only updated_at moves
    assert [r.id for r in db.runs()] == [first, second]
    with pytest.raises(KeyError):
        db.update_run(999, status="x")
    program = db.add_program(record(first, 0, 0.1))
    call = db.add_llm_call(
        first,
        "model-x",
        program_id=program,
        prompt_tokens=100,
        completion_tokens=20,
        latency_s=1.5,
        cost=0.001,
        outcome="ok",
    )
    db.add_llm_call(first, "model-x", outcome="error", error="timeout")
    calls = db.llm_calls(first)
    assert [c["id"] for c in calls] == [call, call + 1]
    assert calls[0]["program_id"] == program and calls[0]["prompt_tokens"] == 100 and calls[1]["error"] == "timeout"
    db.add_heldout(first, "suite-b", program, {"fitness": 0.2, "tasks": [1]})
    db.add_heldout(first, "relu", None, {"fitness": 0.0})
    assert [(h["name"], h["program_id"], h["result"]) for h in db.heldout(first)] == [
        ("suite-b", program, {"fitness": 0.2, "tasks": [1]}),
        ("relu", None, {"fitness": 0.0}),
    ]
    assert db.heldout(second) == []


# --------------------------------------------------------------------------------------------
# Readers, migration
# --------------------------------------------------------------------------------------------


def test_readonly_reader_sees_only_committed_rows(tmp_path):
    path = tmp_path / "search.db"
    with ProgramDatabase(path) as writer:
        run = writer.create_run({})
        writer.add_program(record(run, 0, 0.1))
        with ProgramDatabase(path, readonly=True) as reader:
            assert reader.journal_mode() == "wal" and reader.count(run) == 1
            with writer.transaction():
                writer.add_program(record(run, 1, 0.9, cell="gp0.gn0.sc0.b0.fl0"))
                writer.add_program(record(run, 2, 0.5, cell="gp1.gn0.sc0.b0.fl0"))
                assert writer.count(run) == 3
                assert reader.count(run) == 1 and len(reader.elites(run, 0)) == 1  # not committed yet
                assert reader.best(run).proposal_index == 0
            assert reader.count(run) == 3 and reader.best(run).proposal_index == 1
            assert len(reader.elites(run, 0)) == 3
            for write in (
                lambda: reader.create_run({}),
                lambda: reader.add_program(record(run, 9, 1.0)),
                lambda: reader.update_run(run, status="x"),
            ):
                with pytest.raises(DatabaseError):
                    write()
            with pytest.raises(sqlite3.OperationalError):  # the connection itself is read-only
                reader._conn.execute(
                    "INSERT INTO runs (created_at, updated_at, config, versions, status) VALUES (0, 0, '{}', '{}', 'x')"
                )
        writer.add_program(record(run, 3, 0.0))
    with ProgramDatabase(path, readonly=True) as reader:  # after the writer closed
        assert reader.count(run) == 4
    with pytest.raises(DatabaseError):
        ProgramDatabase(tmp_path / "missing.db", readonly=True)
    assert not (tmp_path / "missing.db").exists()


V1_SCHEMA = """
CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL, updated_at REAL NOT NULL,
    seed INTEGER, config TEXT NOT NULL, versions TEXT NOT NULL, status TEXT NOT NULL);
CREATE TABLE programs (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER NOT NULL REFERENCES runs(id),
    proposal_index INTEGER NOT NULL, parent_ids TEXT NOT NULL, island INTEGER NOT NULL, generation INTEGER NOT NULL,
    source TEXT NOT NULL, rationale TEXT NOT NULL, mutator TEXT NOT NULL, model TEXT,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'duplicate')), failure_stage TEXT, failure_code TEXT,
    failure_message TEXT, fitness REAL, ood_log_ratio REAL, family_log_ratios TEXT NOT NULL, tasks TEXT NOT NULL,
    fingerprint TEXT, descriptors TEXT NOT NULL, probes TEXT NOT NULL, timings TEXT NOT NULL, cell TEXT,
    duplicate_of INTEGER REFERENCES programs(id), seconds REAL NOT NULL, created_at REAL NOT NULL,
    UNIQUE (run_id, proposal_index));
CREATE INDEX programs_fingerprint ON programs(fingerprint);
CREATE INDEX programs_fitness ON programs(run_id, status, fitness);
CREATE INDEX programs_island ON programs(run_id, island);
CREATE TABLE elites (run_id INTEGER NOT NULL REFERENCES runs(id), island INTEGER NOT NULL, cell TEXT NOT NULL,
    program_id INTEGER NOT NULL REFERENCES programs(id), fitness REAL NOT NULL, PRIMARY KEY (run_id, island, cell));
CREATE TABLE llm_calls (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER NOT NULL REFERENCES runs(id),
    program_id INTEGER REFERENCES programs(id), model TEXT, prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0, latency_s REAL NOT NULL DEFAULT 0, cost REAL NOT NULL DEFAULT 0,
    outcome TEXT NOT NULL, error TEXT, created_at REAL NOT NULL);
CREATE INDEX llm_calls_run ON llm_calls(run_id);
CREATE TABLE heldout (run_id INTEGER NOT NULL REFERENCES runs(id), name TEXT NOT NULL,
    program_id INTEGER REFERENCES programs(id), result TEXT NOT NULL, created_at REAL NOT NULL);
CREATE INDEX heldout_run ON heldout(run_id);
"""


def _make_v1(path: Path) -> None:
    """A version-1 file as the first release wrote it: no source_hash, no program_parents."""
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA)
    conn.execute("INSERT INTO runs VALUES (1, 10.0, 10.0, 5, '{\"islands\": 1}', '{}', 'running')")
    rows = [
        (1, 0, "[]", SOURCE, "ok", 0.2, "gp2.gn1.sc0.b0.fl0"),
        (2, 1, "[1]", "def activation_function(x):\n    return torch.tanh(x)  # v1\n", "ok", 0.1, "gp0.gn1.sc0.b1.fl1"),
        (3, 2, "[1, 2]", "garbage(", "failed", None, None),
    ]
    for pid, index, parents, source, status, fitness, cell in rows:
        conn.execute(
            "INSERT INTO programs (id, run_id, proposal_index, parent_ids, island, generation, source, "
            "rationale, mutator, status, fitness, family_log_ratios, tasks, descriptors, probes, timings, "
            "cell, seconds, created_at) VALUES (?, 1, ?, ?, 0, 0, ?, 'r', 'm', ?, ?, '{}', '[]', '{}', "
            "'{}', '{}', ?, 1.0, 11.0)",
            (pid, index, parents, source, status, fitness, cell),
        )
    conn.execute("INSERT INTO elites VALUES (1, 0, 'gp2.gn1.sc0.b0.fl0', 1, 0.2)")
    conn.execute("INSERT INTO elites VALUES (1, 0, 'gp0.gn1.sc0.b1.fl1', 2, 0.1)")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()


def test_migration_from_a_hand_made_v1_file(tmp_path):
    path = tmp_path / "old.db"
    _make_v1(path)
    with pytest.raises(DatabaseError, match="migrate"):  # a reader never migrates
        ProgramDatabase(path, readonly=True)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 1
    with ProgramDatabase(path) as db:
        assert db.schema_version() == SCHEMA_VERSION and db.journal_mode() == "wal"
        assert [p.id for p in db.programs(1)] == [1, 2, 3]
        assert db.by_source("def activation_function(x): return torch.relu(x)").id == 1  # backfilled hashes
        assert db.by_source("def activation_function(x):\n    return torch.tanh(x)\n").id == 2
        assert db.by_source("garbage(").id == 3
        assert db.children_count(1) == 2 and db.children_count(2) == 1 and db.children_count(3) == 0  # backfilled
        assert [e.id for e in db.elites(1, 0)] == [1, 2]
        new = db.add_program(record(1, 3, 0.5, parent_ids=[2]))
        assert db.children_count(2) == 2 and db.best(1).id == new
        assert db._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with ProgramDatabase(path) as db:  # reopening is a no-op
        assert db.schema_version() == SCHEMA_VERSION and db.count(1) == 4
    with ProgramDatabase(path, readonly=True) as reader:
        assert reader.count(1) == 4


def test_migration_from_version_2_keeps_rows_and_adds_the_original_answer(tmp_path):
    """A file as the previous release wrote it (schema 2, built by its own migration steps, which are
    append-only) opens with the new code: its rows read with no original answer, new rows carry one."""
    path = tmp_path / "v2.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    for step in MIGRATIONS[:2]:
        step(conn)
    conn.execute("INSERT INTO runs VALUES (1, 10.0, 10.0, 5, '{}', '{}', 'running')")
    conn.execute(
        "INSERT INTO programs (run_id, proposal_index, parent_ids, island, generation, source, rationale, "
        "mutator, status, fitness, family_log_ratios, tasks, descriptors, probes, timings, cell, seconds, "
        "created_at, source_hash) VALUES (1, 0, '[]', 0, 0, ?, 'r', 'llm', 'ok', 0.2, '{}', '[]', '{}', "
        "'{}', '{}', 'gp2.gn1.sc0.b0.fl0', 1.0, 11.0, ?)",
        (SOURCE, source_key(SOURCE)),
    )
    conn.execute("PRAGMA user_version = 2")
    conn.execute("COMMIT")
    conn.close()
    with pytest.raises(DatabaseError, match="migrate"):
        ProgramDatabase(path, readonly=True)
    with ProgramDatabase(path) as db:
        assert db.schema_version() == SCHEMA_VERSION == 4
        old = db.programs(1)[0]
        assert old.source == SOURCE and old.original_answer is None and old.normalisation_changes == []
        answer = "Here.\n```python\nfrom typing import Optional\ndef activation_function(x):\n    return x\n```"
        new = db.add_program(
            record(1, 1, 0.3, original_answer=answer, normalisation_changes=["dropped `from typing import Optional`"])
        )
        assert db.get(new).original_answer == answer
        assert db.by_source(SOURCE).id == old.id  # the old row still dedups
    with ProgramDatabase(path, readonly=True) as reader:
        assert reader.get(new).normalisation_changes == ["dropped `from typing import Optional`"]
        assert reader.best(1).id == new


def test_a_newer_file_is_refused(tmp_path):
    path = tmp_path / "future.db"
    ProgramDatabase(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(DatabaseError, match="newer"):
        ProgramDatabase(path)
    with pytest.raises(DatabaseError):
        ProgramDatabase(path, readonly=True)


# --------------------------------------------------------------------------------------------
# A writer killed mid-insert leaves whole programs or nothing
# --------------------------------------------------------------------------------------------

MAKE = r"""
import random
from actmine.evolve.database import ProgramRecord

CELLS = ["gp%d.gn1.sc0.b0.fl%d" % (a, b) for a in range(2) for b in range(2)]

def make(run_id, i):
    rng = random.Random(i)
    status = "ok" if i % 5 else "failed"
    return ProgramRecord(
        run_id=run_id, proposal_index=i, source="def activation_function(x):\n    return x  # %d\n" % i
        + "#" + "x" * (50_000 + i % 997) + "\n",
        parent_ids=[rng.randrange(1, i + 1) for _ in range(i % 3)] if i else [], island=i % 2, generation=i % 7,
        rationale="r%d" % i, mutator="m", status=status,
        failure_stage=None if status == "ok" else "train", failure_code=None if status == "ok" else "non_finite",
        fitness=round(rng.uniform(-1, 1), 6) if status == "ok" else None,
        tasks=[{"name": "t%d" % j, "log_ratio": j * 0.5} for j in range(50)],
        probes={"blob": ["p%d" % j for j in range(2000)], "i": i}, descriptors={"i": i},
        timings={"train": i * 0.5}, cell=rng.choice(CELLS) if status == "ok" else None,
        fingerprint="fp%d" % i, seconds=1.0, created_at=1000.0 + i)
"""

WRITER = (
    MAKE
    + r"""
import sys
from actmine.evolve.database import ProgramDatabase

db = ProgramDatabase(sys.argv[1])
run = db.latest_run().id if db.latest_run() else db.create_run({"kill": True}, seed=0)
i = db.max_proposal_index(run) + 1
while True:
    db.add_program(make(run, i))
    if i % 10 == 0:
        db.move_to_island(run, db.elites(run, i % 2)[0].id, 1 - i % 2) if db.elites(run, i % 2) else None
    print(i, flush=True)
    i += 1
"""
)


def _check_consistent(path: Path, make) -> int:
    with ProgramDatabase(path) as db:
        conn = db._conn
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        run = db.latest_run().id
        programs = db.programs(run)
        # a prefix of proposals, each complete and exactly what was written
        assert [p.proposal_index for p in programs] == list(range(len(programs)))
        for program in programs:
            expected = make(run, program.proposal_index)
            expected.id = program.id
            assert program == expected
            links = conn.execute(
                "SELECT parent_id FROM program_parents WHERE child_id = ? ORDER BY position", (program.id,)
            ).fetchall()
            assert [row[0] for row in links] == program.parent_ids
        assert (
            conn.execute(
                "SELECT COUNT(*) FROM program_parents WHERE child_id NOT IN (SELECT id FROM programs)"
            ).fetchone()[0]
            == 0
        )
        # each grid cell holds an ok program of the run at its own cell, with its fitness, and is at least
        # as fit as every ok program evaluated on that island in that cell (migrants may be fitter)
        by_id = {p.id: p for p in programs}
        for island in (0, 1):
            grid = db.grid(run, island)
            for cell, program_id in grid.items():
                elite = by_id[program_id]
                assert elite.status == "ok" and elite.cell == cell
                stored = conn.execute(
                    "SELECT fitness FROM elites WHERE run_id = ? AND island = ? AND cell = ?", (run, island, cell)
                ).fetchone()[0]
                assert stored == elite.fitness
            for program in programs:
                if program.status == "ok" and program.island == island:
                    assert program.cell in grid and by_id[grid[program.cell]].fitness >= program.fitness
                    home_best = max(
                        (p for p in programs if p.status == "ok" and p.island == island and p.cell == program.cell),
                        key=lambda p: (p.fitness, -p.id),
                    )
                    occupant = by_id[grid[program.cell]]
                    assert occupant.island != island or occupant.id == home_best.id
        return len(programs)


def test_a_killed_writer_leaves_whole_programs_or_nothing(tmp_path):
    path = tmp_path / "killed.db"
    namespace: dict = {}
    exec(MAKE, namespace)
    rng = random.Random(0)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    total = 0
    for round_ in range(3):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=env,
        )
        try:
            target = total + 15 + rng.randrange(10)
            while True:
                line = writer.stdout.readline()
                assert line, f"the writer stopped: {writer.stderr.read()}"
                if int(line) >= target:
                    break
            time.sleep(rng.uniform(0, 0.01))  # somewhere inside a later insert
            writer.send_signal(signal.SIGKILL)
        finally:
            writer.kill()
            writer.wait()
            writer.stdout.close()
            writer.stderr.close()
        assert writer.returncode == -signal.SIGKILL
        count = _check_consistent(path, namespace["make"])
        assert count > target
        total = count
    with ProgramDatabase(path) as db:  # and the search resumes where it stopped
        run = db.latest_run().id
        db.add_program(namespace["make"](run, db.max_proposal_index(run) + 1))
    assert _check_consistent(path, namespace["make"]) == total + 1


# --------------------------------------------------------------------------------------------
# Start-up checks: a file a writer cannot use is refused before anything is written
# --------------------------------------------------------------------------------------------


def _hashes(directory: Path) -> dict[str, str]:
    """{name: sha256} of every file in the directory: "nothing changed" also means "nothing added"."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def _filled(path: Path, programs: int = 40) -> bytes:
    """A cleanly closed database with a run and some programs (several pages of b-tree)."""
    with ProgramDatabase(path) as db:
        run = db.create_run({"islands": 1})
        for index in range(programs):
            db.add_program(record(run, index, float(index), cell=f"c{index % 7}", probes={"curve": list(range(60))}))
    return path.read_bytes()


def _refused(path: Path, *expected: str) -> str:
    """Open for writing: it must raise DatabaseError with all of `expected` and change no file."""
    before = _hashes(path.parent)
    with pytest.raises(DatabaseError) as refused:
        ProgramDatabase(path)
    message = str(refused.value)
    assert all(text in message for text in expected), message
    assert "\n" not in message and str(path) in message
    assert _hashes(path.parent) == before
    return message


def test_a_newer_file_is_refused_before_anything_is_written(tmp_path):
    path = tmp_path / "programs.sqlite"
    _filled(path)
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()
    message = _refused(path, f"schema version {SCHEMA_VERSION + 1}", "newer actmine", f"up to {SCHEMA_VERSION}")
    assert "Nothing was changed" in message


def test_another_programs_database_is_refused_not_taken_over(tmp_path):
    # before, a writer migrated it: actmine's eight tables were added beside the other program's data
    path = tmp_path / "programs.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE invoices (id, amount)")
        connection.execute('CREATE TABLE "\x1b[2Jclients" (id)')
        connection.execute("INSERT INTO invoices VALUES (1, 99.5)")
    connection.close()
    message = _refused(path, "an SQLite database of another program", "invoices", "not an actmine run")
    assert "\x1b" not in message and "\\x1b[2Jclients" in message  # its names escaped
    with pytest.raises(DatabaseError, match="another program") as refused:  # readers say the same,
        ProgramDatabase(path, readonly=True)
    assert "migrate" not in str(refused.value)  # not "open it once read-write to migrate it"
    with sqlite3.connect(path) as connection:
        assert [r[0] for r in connection.execute("SELECT name FROM sqlite_master ORDER BY name")] == [
            "\x1b[2Jclients",
            "invoices",
        ]
    connection.close()


def test_a_run_in_a_read_only_directory_reads_after_its_last_writer_left(tmp_path):
    """chmod 555 on a finished run, or a copy of programs.sqlite alone: no -wal or -shm file beside it,
    and SQLite's read-only mode would have to create the -shm file to read a WAL database ("attempt to
    write a readonly database" from report, export, serve and the API). It is read as immutable."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with ProgramDatabase(run_dir / "programs.sqlite") as database:
        database.create_run({"budget": 3}, seed=5, status="finished")
    assert sorted(p.name for p in run_dir.iterdir()) == ["programs.sqlite"]  # the last writer took -wal, -shm
    read = (
        "from actmine.evolve.database import ProgramDatabase\n"
        f"with ProgramDatabase({str(run_dir / 'programs.sqlite')!r}, readonly=True) as db:\n"
        "    print(db.latest_run()['status'])\n"
    )
    as_owner = []  # root passes permission bits; without these capabilities it obeys them as an owner does
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: the directory's permissions would not apply")
        caps = "-dac_override,-dac_read_search"
        as_owner = ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]
    run_dir.chmod(0o555)
    try:
        result = subprocess.run([*as_owner, sys.executable, "-c", read], capture_output=True, text=True, timeout=60)
    finally:
        run_dir.chmod(0o755)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["finished"]
    assert sorted(p.name for p in run_dir.iterdir()) == ["programs.sqlite"]  # and nothing was written


def test_a_reader_racing_the_first_migration_is_not_told_the_run_is_another_programs(tmp_path):
    """A reader (report, serve, the API) that reads `user_version` 0 of a run a search is creating,
    then its tables once the first migration committed (tables and version at once), read in two
    statements: the run is the search's, not another program's."""
    path = tmp_path / "programs.sqlite"
    ProgramDatabase(path).close()  # migrated: the search committed between the reader's two reads
    connection = sqlite3.connect(path)
    try:
        refuse_foreign(path, connection, 0)  # the version the reader had read before the commit
    finally:
        connection.close()


@pytest.mark.parametrize(
    "content",
    [b"", b"search:\n  budget: 3\n", b"\x89PNG\r\n\x1a\n" + bytes(200), b"SQLite format 3\x00" + bytes(20)],
    ids=["empty", "yaml", "png", "short-header"],
)
def test_a_file_that_is_not_a_database_is_refused(tmp_path, content):
    path = tmp_path / "programs.sqlite"
    path.write_bytes(content)
    if not content:  # SQLite's own empty database (a controller killed before its first commit)
        with ProgramDatabase(path) as db:
            assert db.schema_version() == SCHEMA_VERSION
        return
    message = _refused(path, "is not a usable program database", f"mv {path} {path}.broken")
    with pytest.raises(DatabaseError, match="not a usable program database"):  # readers say the same
        ProgramDatabase(path, readonly=True)
    assert "Nothing was changed" in message


_TRUNCATED_SOURCE: dict[str, bytes] = {}


@settings(max_examples=25, deadline=None)
@given(fraction=st.floats(0.0, 1.0, exclude_max=True), offset=st.integers(1, 4096))
def test_a_truncated_file_is_refused_at_any_length(fraction, offset):
    """Cut anywhere (a crash while copying, a full disk): refused, never half-read, never changed."""
    with tempfile.TemporaryDirectory() as directory:
        if "data" not in _TRUNCATED_SOURCE:
            _TRUNCATED_SOURCE["data"] = _filled(Path(directory) / "source.sqlite", programs=60)
        data = _TRUNCATED_SOURCE["data"]
        length = max(1, min(len(data) - 1, int(fraction * len(data)) + offset - 1))
        path = Path(directory) / "run" / "programs.sqlite"
        path.parent.mkdir()
        path.write_bytes(data[:length])
        _refused(path, "is not a usable program database")


def test_a_damaged_page_is_found_by_the_quick_check(tmp_path):
    path = tmp_path / "programs.sqlite"
    data = bytearray(_filled(path, programs=80))
    page_size = int.from_bytes(data[16:18], "big")
    leaves = [page for page in range(1, len(data) // page_size) if data[page * page_size] == 13]  # table b-tree leaf
    start = leaves[len(leaves) // 2] * page_size
    data[start + 3 : start + 5] = b"\xff\xff"  # its cell count, far beyond what the page holds
    path.write_bytes(bytes(data))
    message = _refused(path, "is not a usable program database")
    assert "quick_check" in message or "malformed" in message  # SQLite reports some damage as an error


def test_a_file_left_by_a_killed_writer_still_opens(tmp_path):
    """The checks read a database whose last commits are only in its -wal (no false alarm)."""
    path = tmp_path / "programs.sqlite"
    script = (
        "import os, sys\nfrom actmine.evolve.database import ProgramDatabase, ProgramRecord\n"
        "db = ProgramDatabase(sys.argv[1])\nrun = db.create_run({})\n"
        "db.add_program(ProgramRecord(run_id=run, proposal_index=0, source='x', status='failed'))\n"
        "os._exit(0)\n"
    )  # no close, no checkpoint: the rows live in the -wal
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=60)
    assert (tmp_path / "programs.sqlite-wal").stat().st_size > 0
    with ProgramDatabase(path) as db:
        assert db.count(db.latest_run().id) == 1


# --------------------------------------------------------------------------------------------
# Records: every field from an evaluation or an original, JSON round trips
# --------------------------------------------------------------------------------------------


def test_from_evaluation_fills_every_field():
    evaluation = _evaluation()
    proposal = Proposal(
        SOURCE, "sharper", "llm", "model-1", original_answer="the answer", normalisation_changes=("one", "two")
    )
    rec = ProgramRecord.from_evaluation(
        evaluation, proposal, run_id=4, proposal_index=9, parent_ids=(3, 2), island=2, generation=5, created_at=77.0
    )
    assert rec == ProgramRecord(
        run_id=4,
        proposal_index=9,
        source=SOURCE,
        parent_ids=[3, 2],
        island=2,
        generation=5,
        rationale="sharper",
        mutator="llm",
        model="model-1",
        status="ok",
        fitness=0.1,
        ood_log_ratio=-0.1,
        family_log_ratios=evaluation.family_log_ratios(),
        tasks=[t.to_dict() for t in evaluation.tasks],
        fingerprint="f00d",
        descriptors=evaluation.probes["descriptors"],
        probes=evaluation.probes,
        timings={"probes": 0.5, "train": 2.0},
        cell="gp2.gn1.sc1.b0.fl1",
        seconds=2.5,
        created_at=77.0,
        original_answer="the answer",
        normalisation_changes=["one", "two"],
    )
    given_cell = ProgramRecord.from_evaluation(evaluation, proposal, run_id=4, proposal_index=9, cell="mine")
    assert given_cell.cell == "mine" and given_cell.parent_ids == [] and given_cell.island == 0
    assert given_cell.generation == 0 and given_cell.duplicate_of is None
    before = time.time()
    dup = ProgramRecord.from_evaluation(evaluation, proposal, run_id=4, proposal_index=10, duplicate_of=7)
    assert (dup.status, dup.duplicate_of, dup.fitness, dup.failure_stage) == ("duplicate", 7, 0.1, None)
    assert before <= dup.created_at <= time.time()
    no_probes = Evaluation("candidate", ok=True, fitness=0.2, tasks=[], probes={}, seconds=1.0)
    plain = ProgramRecord.from_evaluation(no_probes, proposal, run_id=4, proposal_index=11)
    assert plain.cell is None and plain.fingerprint is None and plain.descriptors == {} and plain.probes == {}


def test_from_evaluation_of_a_failure():
    proposal = Proposal("x", "y", "random")
    coded = Evaluation(
        "candidate",
        ok=False,
        error={"code": "non_finite", "message": "NaN"},
        stage="train",
        probes=_evaluation().probes,
    )
    rec = ProgramRecord.from_evaluation(coded, proposal, run_id=1, proposal_index=0)
    assert (rec.status, rec.failure_stage, rec.failure_code, rec.failure_message) == (
        "failed",
        "train",
        "non_finite",
        "NaN",
    )  # no stage in the error: the last one reached
    assert rec.cell is None and rec.fingerprint == "f00d"  # probes kept, but a failure has no cell
    assert rec.original_answer is None and rec.normalisation_changes == [] and rec.model is None
    staged = Evaluation("candidate", ok=False, error={"stage": "probes", "code": "c", "message": "m"}, stage="train")
    assert ProgramRecord.from_evaluation(staged, proposal, run_id=1, proposal_index=2).failure_stage == "probes"
    # an ok evaluation never gives failure fields, whatever its error says
    odd = Evaluation("candidate", ok=True, fitness=0.2, error={"stage": "probes", "code": "c", "message": "m"})
    rec = ProgramRecord.from_evaluation(odd, proposal, run_id=1, proposal_index=3)
    assert (rec.status, rec.failure_stage, rec.failure_code, rec.failure_message) == ("ok", None, None, None)
    bare = Evaluation("candidate", ok=False, error=None, stage="probes")
    rec = ProgramRecord.from_evaluation(bare, proposal, run_id=1, proposal_index=1)
    assert (rec.status, rec.failure_stage, rec.failure_code, rec.failure_message) == ("failed", "probes", None, None)


def test_duplicate_copies_the_original():
    original = ProgramRecord(
        run_id=1,
        proposal_index=0,
        source=SOURCE,
        id=5,
        fitness=0.3,
        ood_log_ratio=-0.3,
        family_log_ratios={"poly": -0.3},
        tasks=[{"name": "a"}],
        fingerprint="fp",
        descriptors={"bounded": False},
        probes={"flops_per_element": 2.0},
        cell="c",
        mutator="old",
        rationale="old",
        model="old-model",
        generation=9,
        island=3,
    )
    proposal = Proposal(SOURCE + "# again\n", "again", "llm", "m", original_answer="ans", normalisation_changes=("c",))
    dup = ProgramRecord.duplicate(
        proposal,
        original,
        run_id=2,
        proposal_index=8,
        parent_ids=(5,),
        island=1,
        generation=2,
        seconds=0.5,
        created_at=3.0,
    )
    assert dup == ProgramRecord(
        run_id=2,
        proposal_index=8,
        source=SOURCE + "# again\n",
        parent_ids=[5],
        island=1,
        generation=2,
        rationale="again",
        mutator="llm",
        model="m",
        status="duplicate",
        fitness=0.3,
        ood_log_ratio=-0.3,
        family_log_ratios={"poly": -0.3},
        tasks=[{"name": "a"}],
        fingerprint="fp",
        descriptors={"bounded": False},
        probes={"flops_per_element": 2.0},
        cell="c",
        duplicate_of=5,
        seconds=0.5,
        created_at=3.0,
        original_answer="ans",
        normalisation_changes=["c"],
    )
    before = time.time()
    plain = ProgramRecord.duplicate(proposal, original, run_id=2, proposal_index=9)
    assert plain.parent_ids == [] and plain.island == 0 and plain.generation == 0 and plain.seconds == 0.0
    assert before <= plain.created_at <= time.time()
    original.id = None
    with pytest.raises(ValueError, match=r"^the original must be a stored program \(with an id\)$"):
        ProgramRecord.duplicate(proposal, original, run_id=2, proposal_index=10)


def test_to_dict_is_every_field(db, run):
    rec = record(run, 0, 0.5, parent_ids=[1], probes={"a": [1, {"b": None}]})
    as_dict = rec.to_dict()
    assert list(as_dict) == [
        "run_id",
        "proposal_index",
        "source",
        "id",
        "parent_ids",
        "island",
        "generation",
        "rationale",
        "mutator",
        "model",
        "status",
        "failure_stage",
        "failure_code",
        "failure_message",
        "fitness",
        "ood_log_ratio",
        "family_log_ratios",
        "tasks",
        "fingerprint",
        "descriptors",
        "probes",
        "timings",
        "cell",
        "duplicate_of",
        "seconds",
        "created_at",
        "original_answer",
        "normalisation_changes",
        "fitness_se",
        "score",
        "rounds",
        "settled",
    ]
    assert ProgramRecord(**json.loads(json.dumps(as_dict))) == rec  # JSON and back
    db.add_program(rec)
    assert db.get(rec.id).to_dict() == {**as_dict, "id": rec.id}


@settings(max_examples=12, deadline=None)
@given(
    data=st.fixed_dictionaries(
        {
            "parent_ids": st.lists(st.integers(1, 10**6), max_size=4),
            "family_log_ratios": st.dictionaries(st.text(max_size=8), st.floats(-5, 5), max_size=3),
            "probes": st.recursive(
                st.none() | st.booleans() | st.integers(-(10**9), 10**9) | st.text(max_size=10),
                lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                max_leaves=8,
            ),
            "rationale": st.text(max_size=30),
            "source": st.text(min_size=1, max_size=40),
            "fitness": st.floats(-1e6, 1e6),
            "seconds": st.floats(0, 1e4),
            "settled": st.booleans(),
            "normalisation_changes": st.lists(st.text(max_size=10), max_size=3),
            "rounds": st.integers(1, 50),
        }
    )
)
def test_any_record_round_trips(tmp_path_factory, data):
    data = {**data, "probes": {"value": data["probes"]}}
    with ProgramDatabase(tmp_path_factory.mktemp("trip") / "search.db") as database:
        run_id = database.create_run({})
        original = ProgramRecord(run_id=run_id, proposal_index=0, cell="c", **data)
        database.add_program(original)
        assert database.get(original.id) == original
        assert database.programs(run_id) == [original] and database.by_proposal(run_id, 0) == original


# --------------------------------------------------------------------------------------------
# Plumbing: connection settings, transactions, fault points
# --------------------------------------------------------------------------------------------


def _pragma(database: ProgramDatabase, name: str):
    return database._conn.execute(f"PRAGMA {name}").fetchone()[0]


def test_connection_settings_of_writers_and_readers(db):
    assert (_pragma(db, "busy_timeout"), _pragma(db, "foreign_keys"), _pragma(db, "synchronous")) == (30_000, 1, 1)
    with ProgramDatabase(db.path, readonly=True) as reader:
        assert (_pragma(reader, "busy_timeout"), _pragma(reader, "foreign_keys")) == (30_000, 1)
        assert reader.readonly is True and db.readonly is False and reader.path == db.path
        with pytest.raises(DatabaseError, match=f"^{db.path} is open read-only$"):
            with reader.transaction():
                pass


def test_missing_file_for_a_reader(tmp_path):
    with pytest.raises(DatabaseError, match=f"^no program database at {tmp_path / 'none.db'}$"):
        ProgramDatabase(tmp_path / "none.db", readonly=True)


def test_transactions_nest_and_commit_once(db, run, monkeypatch):
    import actmine.evolve.database as database_module

    points: list[str] = []
    monkeypatch.setattr(database_module, "fault_point", points.append)
    db.add_program(record(run, 0, 0.1))
    assert points == ["db_program_inserted", "db_commit"]
    points.clear()
    with db.transaction():
        with db.transaction():
            db.add_program(record(run, 1, 0.1))
            with pytest.raises(KeyError):
                with db.transaction():  # a failure two levels down
                    db.add_program(record(run, 2, 0.1))
                    raise KeyError("inner")
            db.add_program(record(run, 3, 0.1))
        with db.transaction():  # a second nested block after the first
            db.add_program(record(run, 4, 0.1))
        assert db._conn.in_transaction
    assert points.count("db_commit") == 1 and not db._conn.in_transaction
    assert [p.proposal_index for p in db.programs(run)] == [0, 1, 3, 4]
    points.clear()
    with pytest.raises(ZeroDivisionError):
        with db.transaction():
            db.add_program(record(run, 5, 0.1))
            1 / 0
    assert not db._conn.in_transaction and db.by_proposal(run, 5) is None
    with db.transaction():  # after a rollback: a fresh BEGIN … COMMIT
        db.add_program(record(run, 5, 0.1))
    assert points[-1] == "db_commit" and db.by_proposal(run, 5) is not None


# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------


def test_runs_keep_what_they_were_given(db):
    before = time.time()
    first = db.create_run({"b": 1, "a": [2, {"d": 0, "c": 1}]})
    got = db.get_run(first)
    assert (got.seed, got.versions, got.status) == (None, {}, "running")
    assert before <= got.created_at == got.updated_at <= time.time()
    raw = db._conn.execute("SELECT config, versions FROM runs WHERE id = ?", (first,)).fetchone()
    assert raw == ('{"a":[2,{"c":1,"d":0}],"b":1}', "{}")  # compact JSON with sorted keys
    second = db.create_run({}, seed=0, versions={"torch": "2"}, status="finished")
    got = db.get_run(second)
    assert (got.seed, got.versions, got.status, got["seed"]) == (0, {"torch": "2"}, "finished", 0)
    assert got.to_dict() == {
        "id": second,
        "created_at": got.created_at,
        "updated_at": got.updated_at,
        "seed": 0,
        "config": {},
        "versions": {"torch": "2"},
        "status": "finished",
    }
    assert db.get_run(second + 1) is None
    with pytest.raises(KeyError, match="^'nope'$"):
        got["nope"]
    db.update_run(first, status="stopped")
    assert db.get_run(first).config == {"b": 1, "a": [2, {"d": 0, "c": 1}]}  # only the status changed
    db.update_run(first, config={"c": 3})
    assert db.get_run(first).status == "stopped" and db.get_run(first).config == {"c": 3}
    db.update_run(first)  # only the time
    assert db.get_run(first).updated_at >= db.get_run(first).created_at
    with pytest.raises(KeyError, match="no run 999"):
        db.update_run(999)
    assert [r.id for r in db.runs()] == [first, second] and db.latest_run().id == second


# --------------------------------------------------------------------------------------------
# Programs: what is refused, what is stored, grids
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field_name, value",
    [("ood_log_ratio", math.inf), ("seconds", math.nan), ("fitness", -math.inf), ("score", math.nan)],
)
def test_non_finite_numbers_are_refused_by_name(db, run, field_name, value):
    with pytest.raises(ValueError, match=f"^{field_name} must be finite, got {value!r}$"):
        db.add_program(record(run, 0, 0.1, **{field_name: value}) if field_name != "fitness" else record(run, 0, value))
    assert db.count(run) == 0


def test_refusal_messages(db, run):
    with pytest.raises(ValueError, match=r"^status must be one of \('ok', 'failed', 'duplicate'\), got 'weird'$"):
        db.add_program(record(run, 0, 0.1, status="weird"))
    with pytest.raises(ValueError, match="^an ok program needs a fitness$"):
        db.add_program(record(run, 0, None))
    with pytest.raises(ValueError, match="^a duplicate needs duplicate_of$"):
        db.add_program(record(run, 0, 0.1, status="duplicate"))
    failed = db.add_program(record(run, 0, 0.7, status="failed", failure_stage="train", failure_code="x"))
    assert db.get(failed).fitness == 0.7 and db.grid(run, 0) == {}  # a failure may carry a number, never a cell


def test_what_the_programs_row_holds(db, run):
    parent = db.add_program(record(run, 0, 0.1))
    child = record(run, 1, 0.2, parent_ids=(parent, parent), settled=False, family_log_ratios={"z": 1.0, "a": 2.0})
    db.add_program(child)
    row = db._conn.execute(
        "SELECT parent_ids, settled, source_hash, family_log_ratios FROM programs WHERE id = ?", (child.id,)
    ).fetchone()
    assert row == (f"[{parent},{parent}]", 0, source_key(child.source), '{"a":2.0,"z":1.0}')
    assert db.get(child.id).parent_ids == [parent, parent] and db.get(child.id).settled is False
    links = db._conn.execute(
        "SELECT parent_id, position FROM program_parents WHERE child_id = ? ORDER BY position", (child.id,)
    ).fetchall()
    assert links == [(parent, 0), (parent, 1)]
    assert db.children_count(parent) == 1  # one child, listed twice


def test_elites_break_ties_by_age_and_a_reoffer_updates_the_score(db, run):
    first = db.add_program(record(run, 0, 0.5, cell="c1"))
    second = db.add_program(record(run, 1, 0.5, cell="c2"))
    third = db.add_program(record(run, 2, 0.7, cell="c3"))
    assert [e.id for e in db.elites(run, 0)] == [third, first, second]
    assert [e.cell for e in db.elites(run, 0)] == ["c3", "c1", "c2"]
    assert [r.id for r in db.top(run, 3)] == [third, first, second]
    # an occupant offered its own cell again keeps it and takes its (new) score
    db.update_estimate(
        first,
        fitness=0.9,
        ood_log_ratio=0.0,
        family_log_ratios={},
        tasks=[],
        fitness_se=0.0,
        score=0.9,
        rounds=2,
        settled=True,
    )
    assert db.move_to_island(run, first, 0) is False
    stored = db._conn.execute("SELECT fitness FROM elites WHERE program_id = ?", (first,)).fetchall()
    assert stored == [(0.9,)] and [e.id for e in db.elites(run, 0)] == [first, third, second]


def test_migrate_refusals(db, run):
    ok = db.add_program(record(run, 0, 0.5))
    failed = db.add_program(record(run, 1, 0.9, status="failed", failure_stage="train", failure_code="x"))
    no_cell = db.add_program(record(run, 2, 0.9, cell=None))
    duplicate = db.add_program(record(run, 3, 0.9, status="duplicate", duplicate_of=ok))
    for program in (failed, no_cell, duplicate):
        assert db.move_to_island(run, program, 1) is False
    assert db.grid(run, 1) == {}
    with pytest.raises(KeyError, match="no program 999"):
        db.move_to_island(run, 999, 1)
    other = db.create_run({})
    with pytest.raises(ValueError, match=f"^program {ok} belongs to run {run}, not {other}$"):
        db.move_to_island(other, ok, 1)
    assert db.move_to_island(run, ok, 4) is True and db.islands(run) == [0, 4]  # a grid entry makes an island


def test_lookups_in_chunks_keep_the_given_order(db, run):
    ids = [db.add_program(record(run, i, 0.1)) for i in range(3)]
    for i in range(3):  # children: ids[0] 3, ids[1] 1, ids[2] none
        db.add_program(record(run, 3 + i, None, status="failed", parent_ids=[ids[0]] + ([ids[1]] if i == 0 else [])))
    wanted = [10_000 + i for i in range(1200)]
    wanted[0], wanted[500], wanted[1001] = ids[2], ids[0], ids[1]
    wanted.append(ids[2])  # repeated: once
    assert [r.id for r in db.get_many(wanted)] == [ids[2], ids[0], ids[1]]
    counts = db.children_counts(wanted)
    assert len(counts) == 1200 and counts[ids[0]] == 3 and counts[ids[1]] == 1 and counts[ids[2]] == 0
    assert list(counts)[:1] == [ids[2]] and counts[10_001] == 0
    assert db.get_many([]) == [] and db.children_counts([]) == {}


def test_queries_filter_by_run_status_and_island(db, run):
    other = db.create_run({})
    a = db.add_program(record(run, 0, 0.1, island=1))
    b = db.add_program(record(run, 1, None, status="failed", island=1, failure_stage="s", failure_code="c"))
    c = db.add_program(record(run, 2, 0.3, island=0))
    db.add_program(record(other, 0, 0.9, island=1))
    assert [p.id for p in db.programs(run, island=1)] == [a, b]
    assert [p.id for p in db.programs(run, status="ok", island=1)] == [a]
    assert [p.id for p in db.programs(run, status="ok")] == [a, c]
    assert db.count(run) == 3 and db.count(run, "ok") == 2 and db.count(other) == 1 and db.count(run, "duplicate") == 0
    assert [p.id for p in db.top(run, 1, island=1)] == [a] and [p.id for p in db.top(run, 0)] == []
    assert db.islands(run) == [0, 1] and db.islands(other) == [1] and db.islands(other + 1) == []
    assert db.by_proposal(run, 9) is None and db.by_proposal(other, 0).run_id == other


def test_failures_are_counted_most_common_first(db, run):
    for index, (stage, code) in enumerate([("b", "y"), ("a", "x"), ("b", "y"), ("a", "z"), ("a", "x"), ("a", "x")]):
        db.add_program(record(run, index, None, status="failed", failure_stage=stage, failure_code=code))
    db.add_program(record(run, 10, 0.5))
    assert list(db.failures_by_reason(run).items()) == [(("a", "x"), 3), (("b", "y"), 2), (("a", "z"), 1)]
    assert db.failures_by_reason(run + 1) == {}


# --------------------------------------------------------------------------------------------
# LLM calls and held-out results
# --------------------------------------------------------------------------------------------


def test_llm_call_defaults_and_heldout_clearing(db, run):
    before = time.time()
    call = db.add_llm_call(run, None)
    (got,) = db.llm_calls(run)
    assert got == {
        "id": call,
        "run_id": run,
        "program_id": None,
        "model": None,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "latency_s": 0.0,
        "cost": 0.0,
        "outcome": "ok",
        "error": None,
        "created_at": got["created_at"],
    }
    assert before <= got["created_at"] <= time.time()
    db.add_llm_call(run, "m", prompt_tokens=3.0, completion_tokens=4, latency_s=2, cost=1, created_at=5.0)
    assert db.llm_calls(run)[1] == {
        **got,
        "id": call + 1,
        "model": "m",
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "latency_s": 2.0,
        "cost": 1.0,
        "created_at": 5.0,
    }
    assert db.llm_calls(run + 1) == []
    other = db.create_run({})
    db.add_heldout(run, "b", None, {"z": 1, "a": 2}, created_at=7.0)
    db.add_heldout(run, "a", None, {})
    db.add_heldout(other, "kept", None, {"x": 1})
    assert [h["name"] for h in db.heldout(run)] == ["b", "a"]  # insertion order, not by name
    assert db.heldout(run)[0] == {"name": "b", "program_id": None, "result": {"z": 1, "a": 2}, "created_at": 7.0}
    assert before <= db.heldout(run)[1]["created_at"] <= time.time()
    db.clear_heldout(run)
    assert db.heldout(run) == [] and [h["name"] for h in db.heldout(other)] == ["kept"]


# --------------------------------------------------------------------------------------------
# Source normalisation
# --------------------------------------------------------------------------------------------


def test_normalising_text_that_does_not_parse():
    assert normalise_source("  x(\r\n\r\n   y  \r\n\n") == "x(\n   y"
    assert normalise_source("\n\n") == "" and normalise_source("") == ""
    assert normalise_source("x = 1  # c\n\n\ny=2") == "x = 1\ny = 2"
    surrogate = "f(\ud800"  # not even UTF-8: still a key
    assert source_key(surrogate) == hashlib.sha256(surrogate.encode("utf-8", "surrogatepass")).hexdigest()
    assert source_key(SOURCE) == hashlib.sha256(normalise_source(SOURCE).encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------------
# Start-up checks at their edges: headers, unwritable places, what SQLite reports
# --------------------------------------------------------------------------------------------


def _header(page_size: int = 4096, pages: int = 2, counter: int = 7, valid_for: int = 7) -> bytes:
    """The first 100 bytes of an SQLite file with these header fields (the others zero)."""
    header = bytearray(100)
    header[:16] = b"SQLite format 3\x00"
    header[16:18] = page_size.to_bytes(2, "big")
    header[24:28] = counter.to_bytes(4, "big")
    header[28:32] = pages.to_bytes(4, "big")
    header[92:96] = valid_for.to_bytes(4, "big")
    return bytes(header)


@pytest.mark.parametrize(
    "content, settled, error",
    [
        (_header() + bytes(8192 - 100), True, None),
        (_header(pages=3) + bytes(8192 - 100), False, None),  # not settled: the size is not checked
        (_header(pages=3) + bytes(8192 - 100), True, "truncated: 2 of its 3 pages"),
        (_header(pages=3, valid_for=6) + bytes(8192 - 100), True, None),  # a stale page count is not trusted
        (_header() + bytes(8000 - 100), True, "truncated: 8000 bytes is not a whole number of 4096-byte pages"),
        (_header(page_size=512, pages=1) + bytes(412), True, None),
        (_header(page_size=256, pages=1) + bytes(156), True, "is not a whole number of 256-byte pages"),
        (_header(page_size=1, pages=1) + bytes(65536 - 100), True, None),  # 1 means 65536
        (
            _header(page_size=1, pages=1) + bytes(4096 - 100),
            True,
            "4096 bytes is not a whole number of 65536-byte pages",
        ),
        (_header()[:99], False, "truncated: 99 bytes, less than an SQLite header"),
        (_header(), False, None),  # exactly a header
        (b"SQLite format 2\x00" + bytes(84), False, "not an SQLite database: it starts with b'SQLite format 2\\x00'"),
    ],
)
def test_header_checks(tmp_path, content, settled, error):
    from actmine.evolve.database import _check_header

    path = tmp_path / "programs.sqlite"
    path.write_bytes(content)
    if error is None:
        assert _check_header(path, settled=settled) is True
        if not settled:  # readers: no size checks by default
            assert _check_header(path) is True
    else:
        with pytest.raises(DatabaseError) as refused:
            _check_header(path, settled=settled)
        assert error in str(refused.value) and str(refused.value).startswith(
            f"{path} is not a usable program database ("
        )
    path.write_bytes(b"")
    assert _check_header(path, settled=True) is False and _check_header(path) is False


def test_is_corruption_tells_damage_from_operational_failures():
    from actmine.evolve.database import _is_corruption

    assert _is_corruption(sqlite3.DatabaseError("anything"))
    assert _is_corruption(sqlite3.OperationalError("database disk image is malformed"))
    assert _is_corruption(sqlite3.OperationalError("file is not a database"))
    assert not _is_corruption(sqlite3.OperationalError("database is locked"))
    assert not _is_corruption(sqlite3.OperationalError("unable to open database file"))


def test_a_place_that_cannot_hold_the_database_is_refused(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DatabaseError) as refused:
        ProgramDatabase(blocker / "run" / "programs.sqlite")
    assert (
        str(refused.value) == f"cannot create the directory {blocker / 'run'} (Not a directory); give a --run-dir "
        "in a place you can write to"
    )
    with ProgramDatabase(tmp_path / "a" / "b" / "c" / "programs.sqlite") as deep:  # missing parents are made
        assert deep.schema_version() == SCHEMA_VERSION
    (tmp_path / "adir.sqlite").mkdir()
    with pytest.raises(DatabaseError, match="is not a file; give a --run-dir without anything of that name in it$"):
        ProgramDatabase(tmp_path / "adir.sqlite")
    path = tmp_path / "run" / "programs.sqlite"
    _filled(path, programs=2)
    wal, shm, journal = (path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal"))
    for companion in (wal, shm, journal):
        companion.write_bytes(b"")
    real_access = os.access
    denied: set[str] = set()
    asked: list[tuple[str, int]] = []

    def access(file, mode, **kwargs):
        asked.append((str(file), mode))
        return False if str(file) in denied else real_access(file, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    for refused, what in (
        (path.parent, "the directory"),
        (path, "the database file"),
        (wal, "the database file"),
        (shm, "the database file"),
        (journal, "the database file"),
    ):
        denied.clear()
        denied.add(str(refused))
        with pytest.raises(
            DatabaseError,
            match=f"^{what} {refused} is not writable \\(no write permission\\); nothing "
            "was changed. Give a --run-dir you can write to",
        ):
            ProgramDatabase(path)
    assert (str(path.parent), os.W_OK | os.X_OK) in asked and (str(path), os.R_OK | os.W_OK) in asked
    denied.clear()
    journal.unlink()
    with ProgramDatabase(path) as db:  # an empty -wal is no sign of a writer
        assert db.count(1) == 2


def test_an_empty_wal_does_not_hide_a_cut_file(tmp_path):
    path = tmp_path / "programs.sqlite"
    data = _filled(path)
    path.write_bytes(data[:-100])
    path.with_name(path.name + "-wal").write_bytes(b"")
    _refused(path, "is not a whole number of")


class _FakeConnection:
    """Stands in for the check's read-only connection: answers the version, then the quick check."""

    def __init__(self, version=SCHEMA_VERSION, problems=(("ok",),), error=None):
        self.version, self.problems, self.error, self.closed = version, list(problems), error, False

    def execute(self, sql):
        if self.error is not None:
            raise self.error
        rows = [(self.version,)] if "user_version" in sql else self.problems
        assert "user_version" in sql or sql == "PRAGMA quick_check(5)"
        return type("Cursor", (), {"fetchone": lambda _: rows[0], "fetchall": lambda _: rows})()

    def close(self):
        self.closed = True


@pytest.mark.parametrize(
    "fake, expected",
    [
        (
            _FakeConnection(problems=[("*** in database main ***\nPage 5: btree bad\n\n",), ("row 2 missing",)]),
            "{path} is not a usable program database (PRAGMA quick_check: Page 5: btree bad; row 2 missing). Nothing was "
            "changed.",
        ),
        (
            _FakeConnection(problems=[(f"problem {i}",) for i in range(8)]),
            "(PRAGMA quick_check: problem 0; problem 1; problem 2; problem 3; problem 4). Nothing",
        ),
        (
            _FakeConnection(error=sqlite3.OperationalError("database is locked")),
            "cannot check {path} (database is locked); try again",
        ),
        (
            _FakeConnection(error=sqlite3.DatabaseError("file is not a database")),
            "{path} is not a usable program database (file is not a database)",
        ),
        (_FakeConnection(version=SCHEMA_VERSION + 1), "has schema version 5: a newer actmine wrote it"),
    ],
)
def test_what_the_check_connection_reports(tmp_path, monkeypatch, fake, expected):
    path = tmp_path / "programs.sqlite"
    _filled(path, programs=1)
    opened: list[str] = []

    def connect(database, **kwargs):
        opened.append(database)
        assert kwargs == {"uri": True, "isolation_level": None, "timeout": 30.0}
        return fake

    monkeypatch.setattr(sqlite3, "connect", connect)
    with pytest.raises(DatabaseError) as refused:
        ProgramDatabase(path)
    assert expected.format(path=path) in str(refused.value) and fake.closed
    assert opened == [path.resolve().as_uri() + "?mode=ro&immutable=1"]


def test_a_connection_that_cannot_be_opened_for_the_check(tmp_path, monkeypatch):
    path = tmp_path / "programs.sqlite"
    _filled(path, programs=1)
    path.with_name(path.name + "-wal").write_bytes(b"x")  # a writer's -wal: opened without immutable
    opened: list[str] = []

    def connect(database, **kwargs):
        opened.append(database)
        raise sqlite3.OperationalError("unable to open")

    monkeypatch.setattr(sqlite3, "connect", connect)
    with pytest.raises(DatabaseError, match=f"^cannot open {path} to check it \\(unable to open\\)$"):
        ProgramDatabase(path)
    assert opened == [path.resolve().as_uri() + "?mode=ro"]


def test_messages_name_the_file_the_version_and_what_to_do(tmp_path, monkeypatch):
    import actmine.evolve.database as database_module

    path = tmp_path / "programs.sqlite"
    _filled(path, programs=1)
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 3}")
    connection.close()
    newer = (
        f"{path} has schema version {SCHEMA_VERSION + 3}: a newer actmine wrote it (this one reads versions up to "
        f"{SCHEMA_VERSION}). Nothing was changed; use that newer actmine with this run, or give another --run-dir"
    )
    with pytest.raises(DatabaseError) as refused:
        ProgramDatabase(path, readonly=True)
    assert str(refused.value) == newer
    monkeypatch.setattr(database_module, "check_before_opening", lambda _: None)  # changed after the check
    with pytest.raises(DatabaseError) as refused:
        ProgramDatabase(path)
    assert str(refused.value) == newer
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(_header() + bytes(8192 - 100))
    with pytest.raises(DatabaseError) as refused:
        ProgramDatabase(garbage, readonly=True)
    assert str(refused.value).startswith(f"{garbage} is not a usable program database (file is not a database). ")
    assert str(refused.value).endswith(
        f"(e.g. `mv {garbage} {garbage}.broken`); to save what is readable, run "
        "`sqlite3 FILE .recover` on a copy; or give another --run-dir"
    )


def test_an_old_file_is_read_only_after_migration(tmp_path):
    path = tmp_path / "v1.db"
    _make_v1(path)
    with pytest.raises(DatabaseError) as refused:
        ProgramDatabase(path, readonly=True)
    assert (
        str(refused.value) == f"{path} has schema version 1, this code reads {SCHEMA_VERSION}; open it once "
        "read-write to migrate it"
    )
    with ProgramDatabase(path) as db:
        links = db._conn.execute(
            "SELECT child_id, parent_id, position FROM program_parents ORDER BY child_id, position"
        ).fetchall()
        assert links == [(2, 1, 0), (3, 1, 0), (3, 2, 1)]
        hashes = db._conn.execute("SELECT id, source_hash FROM programs ORDER BY id").fetchall()
        assert hashes == [(p.id, source_key(p.source)) for p in db.programs(1)]
    with pytest.raises(sqlite3.ProgrammingError):  # closed by the with block
        db.count(1)


def test_a_v1_row_with_empty_parent_ids_migrates(tmp_path):
    path = tmp_path / "v1.db"
    _make_v1(path)
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE programs SET parent_ids = '' WHERE id = 2")
    connection.close()
    with ProgramDatabase(path) as db:
        assert db.children_count(1) == 1 and db.children_count(2) == 1


def test_a_score_equal_to_a_program_id_is_still_a_score(db, run):
    """The grid row holds an id and a score side by side: a challenger whose id happens to equal the
    occupant's score is compared by score like any other."""
    occupant = db.add_program(record(run, 0, 2.0, cell="c"))
    assert occupant == 1
    challenger = db.add_program(record(run, 1, 3.0, cell="c"))
    assert challenger == 2 and db.grid(run, 0) == {"c": challenger}
    assert db._conn.execute("SELECT fitness FROM elites").fetchall() == [(3.0,)]
