"""Tests of the program database's estimates (schema 4): unsettled programs stay out of every grid
and ranking until confirmed, grids rank by score, scored rounds and validations are stored and
survive reopening, and a schema-3 file migrates with one round per older ok program."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actmine.evolve.database import MIGRATIONS, SCHEMA_VERSION, ProgramDatabase, ProgramRecord, source_key

SOURCE = "def activation_function(x):\n    return torch.relu(x)\n"
CELL = "gp2.gn1.sc0.b0.fl0"
TASKS = [
    {
        "name": "a",
        "family": "poly",
        "ood_error": 0.1,
        "id_error": 0.01,
        "log_ratio": -0.2,
        "seed_log_ratios": [-0.1, -0.3],
    }
]


def record(
    run_id: int,
    index: int,
    fitness: float = 0.0,
    *,
    score: float | None = None,
    settled: bool = True,
    island: int = 0,
    cell: str | None = CELL,
    **fields,
) -> ProgramRecord:
    return ProgramRecord(
        run_id=run_id,
        proposal_index=index,
        source=f"{SOURCE}# {index}\n",
        fitness=fitness,
        score=score,
        settled=settled,
        island=island,
        cell=cell,
        **fields,
    )


def settle(
    db: ProgramDatabase, program_id: int, *, fitness: float, score: float, settled: bool = True, rounds: int = 2
) -> None:
    """update_estimate with the numbers that matter here and plausible others."""
    db.update_estimate(
        program_id,
        fitness=fitness,
        ood_log_ratio=-fitness,
        family_log_ratios={"poly": -fitness},
        tasks=TASKS,
        fitness_se=max(0.0, fitness - score),
        score=score,
        rounds=rounds,
        settled=settled,
    )


@pytest.fixture
def path(tmp_path):
    return tmp_path / "search.db"


@pytest.fixture
def db(path):
    with ProgramDatabase(path) as database:
        yield database


@pytest.fixture
def run(db):
    return db.create_run({"islands": 2}, seed=3)


def test_estimate_fields_round_trip(db, run):
    original = record(run, 0, 0.4, score=0.25, fitness_se=0.15, rounds=3, settled=False)
    db.add_program(original)
    back = db.get(original.id)
    assert back == original
    assert (back.fitness_se, back.score, back.rounds, back.settled) == (0.15, 0.25, 3, False)
    plain = record(run, 1, 0.1)
    db.add_program(plain)
    assert db.get(plain.id).settled is True and db.get(plain.id).rounds == 1  # the defaults
    with pytest.raises(ValueError, match="^score must be finite, got nan$"):
        db.add_program(record(run, 2, 0.1, score=float("nan")))
    with pytest.raises(ValueError, match="^fitness_se must be finite, got inf$"):
        db.add_program(record(run, 2, 0.1, fitness_se=float("inf")))
    assert db.count(run) == 2


# --------------------------------------------------------------------------------------------
# Unsettled programs and the grid
# --------------------------------------------------------------------------------------------


def test_an_unsettled_program_is_in_no_grid_ranking_or_migration_until_settled(db, run):
    waiting = record(run, 0, 0.8, score=0.8, settled=False)
    db.add_program(waiting)
    assert db.top(run, 10) == [] and db.best(run) is None
    assert db.elites(run, 0) == [] and db.grid(run, 0) == {}
    assert db.move_to_island(run, waiting.id, to_island=1) is False and db.grid(run, 1) == {}
    assert [p.id for p in db.unsettled(run)] == [waiting.id]
    assert [p.id for p in db.programs(run)] == [waiting.id]  # it is stored, just not ranked

    settle(db, waiting.id, fitness=0.7, score=0.6, settled=False)  # a confirmation round, still waiting
    assert db.top(run, 10) == [] and db.grid(run, 0) == {}
    assert db.get(waiting.id).rounds == 2 and db.get(waiting.id).fitness == 0.7

    settle(db, waiting.id, fitness=0.7, score=0.5, rounds=3)
    assert db.unsettled(run) == [] and db.grid(run, 0) == {CELL: waiting.id}
    assert [p.id for p in db.top(run, 10)] == [waiting.id] and db.best(run).id == waiting.id
    assert [p.id for p in db.elites(run, 0)] == [waiting.id]
    stored = db.get(waiting.id)
    assert (stored.fitness, stored.score, stored.rounds, stored.settled) == (0.7, 0.5, 3, True)
    assert stored.tasks == TASKS and stored.family_log_ratios == {"poly": -0.7}
    assert db.move_to_island(run, waiting.id, to_island=1) is True


def test_a_lucky_round_does_not_displace_the_incumbent_once_pooled(db, run):
    incumbent = record(run, 0, 0.35, score=0.3)
    db.add_program(incumbent)
    lucky = record(run, 1, 0.95, score=0.9, settled=False)  # a great first sample, waiting for confirmation
    db.add_program(lucky)
    assert db.grid(run, 0) == {CELL: incumbent.id} and db.best(run).id == incumbent.id
    settle(db, lucky.id, fitness=0.2, score=0.1, rounds=3)  # the fresh samples pool it down
    assert db.grid(run, 0) == {CELL: incumbent.id}
    assert [p.id for p in db.top(run, 5)] == [incumbent.id, lucky.id] and db.best(run).id == incumbent.id
    # a program that confirms higher than the incumbent does take the cell
    strong = record(run, 2, 0.6, score=0.6, settled=False)
    db.add_program(strong)
    settle(db, strong.id, fitness=0.5, score=0.4)
    assert db.grid(run, 0) == {CELL: strong.id}
    assert [p.id for p in db.top(run, 5)] == [strong.id, incumbent.id, lucky.id]


def test_an_incumbent_whose_pooled_score_falls_can_be_displaced_by_what_it_beat_before(db, run):
    first = record(run, 0, 0.5, score=0.5)
    db.add_program(first)
    weaker = db.add_program(record(run, 1, 0.3, score=0.3))
    assert db.grid(run, 0) == {CELL: first.id} and db.get(weaker).score == 0.3
    settle(db, first.id, fitness=0.15, score=0.1)  # the grid's stored score follows the program
    row = db._conn.execute("SELECT fitness FROM elites WHERE program_id = ?", (first.id,)).fetchone()
    assert row == (0.1,)
    second = record(run, 2, 0.2, score=0.2)
    db.add_program(second)
    assert db.grid(run, 0) == {CELL: second.id}


def test_grids_and_rankings_use_the_score_and_fall_back_to_the_fitness(db, run):
    noisy = record(run, 0, 0.9, score=0.05)  # high mean, wide interval
    steady = record(run, 1, 0.4, score=0.35)
    legacy = record(run, 2, 0.2, cell="gp0.gn0.sc0.b0.fl0")  # no score: ranked by fitness
    for program in (noisy, steady, legacy):
        db.add_program(program)
    assert [p.id for p in db.top(run, 10)] == [steady.id, legacy.id, noisy.id]
    assert db.grid(run, 0) == {CELL: steady.id, "gp0.gn0.sc0.b0.fl0": legacy.id}
    assert [p.id for p in db.elites(run, 0)] == [steady.id, legacy.id]


@given(st.lists(st.tuples(st.floats(-2, 2), st.floats(0, 1), st.booleans()), min_size=1, max_size=12))
@settings(max_examples=30, deadline=None)
def test_top_is_the_settled_programs_by_score(tmp_path_factory, programs):
    with ProgramDatabase(tmp_path_factory.mktemp("top") / "search.db") as db:
        run = db.create_run({})
        ids = []
        for index, (fitness, se, settled) in enumerate(programs):
            ids.append(db.add_program(record(run, index, fitness, score=fitness - se, fitness_se=se, settled=settled)))
        settled_ids = [i for i, (_, _, s) in zip(ids, programs) if s]
        score = {i: f - se for i, (f, se, _) in zip(ids, programs)}
        expected = sorted(settled_ids, key=lambda i: (-score[i], i))
        assert [p.id for p in db.top(run, len(programs))] == expected
        assert [p.id for p in db.unsettled(run)] == [i for i in ids if i not in settled_ids]
        grid = db.grid(run, 0)
        if settled_ids:  # the cell holds the first settled program of the highest score
            assert grid == {CELL: expected[0]}
        else:
            assert grid == {}


# --------------------------------------------------------------------------------------------
# Scored rounds
# --------------------------------------------------------------------------------------------


def test_evaluations_round_trip_count_by_kind_and_survive_reopening(path, db, run):
    program = record(run, 0, 0.3, settled=False)
    db.add_program(program)
    other = record(run, 1, 0.1)
    db.add_program(other)
    db.add_evaluation(run, program.id, 0, "search", 0.3, TASKS, seconds=1.5, created_at=10.0)
    db.add_evaluation(run, program.id, 2, "pooled", 0.1, [], seconds=0.0, created_at=12.0)
    db.add_evaluation(run, program.id, 1, "confirm", 0.2, TASKS + TASKS, seconds=2.5, created_at=11.0)
    db.add_evaluation(run, other.id, 0, "search", 0.1, TASKS, created_at=13.0)
    expected = [
        {"round": 0, "kind": "search", "fitness": 0.3, "tasks": TASKS, "seconds": 1.5, "created_at": 10.0},
        {"round": 1, "kind": "confirm", "fitness": 0.2, "tasks": TASKS + TASKS, "seconds": 2.5, "created_at": 11.0},
        {"round": 2, "kind": "pooled", "fitness": 0.1, "tasks": [], "seconds": 0.0, "created_at": 12.0},
    ]
    assert db.evaluations(program.id) == expected  # in round order
    assert db.evaluation_counts(run) == {"search": 2, "confirm": 1, "pooled": 1}
    assert db.evaluations(10_000) == [] and db.evaluation_counts(run + 1) == {}
    db.close()
    with ProgramDatabase(path) as resumed:  # a resumed controller sees them
        assert resumed.evaluations(program.id) == expected
        assert [p.id for p in resumed.unsettled(run)] == [program.id]
        resumed.add_evaluation(run, program.id, 3, "confirm", 0.25, TASKS)
        assert [e["round"] for e in resumed.evaluations(program.id)] == [0, 1, 2, 3]
    with ProgramDatabase(path, readonly=True) as reader:
        assert len(reader.evaluations(program.id)) == 4


def test_a_round_is_recorded_once(db, run):
    program = record(run, 0, 0.3)
    db.add_program(program)
    db.add_evaluation(run, program.id, 0, "search", 0.3, TASKS)
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        db.add_evaluation(run, program.id, 0, "confirm", 0.9, [])
    assert [(e["kind"], e["fitness"]) for e in db.evaluations(program.id)] == [("search", 0.3)]  # unchanged
    db.add_evaluation(run, program.id, 1, "confirm", 0.2, TASKS)  # still usable
    assert db.evaluation_counts(run) == {"search": 1, "confirm": 1}


def test_evaluations_refuse_non_finite_fitness_and_unknown_programs(db, run):
    program = record(run, 0, 0.3)
    db.add_program(program)
    with pytest.raises(ValueError, match="^fitness must be finite, got nan$"):
        db.add_evaluation(run, program.id, 0, "search", float("nan"), TASKS)
    with pytest.raises(sqlite3.IntegrityError):  # foreign keys are on
        db.add_evaluation(run, 10_000, 0, "search", 0.1, TASKS)
    assert db.evaluation_counts(run) == {}


# --------------------------------------------------------------------------------------------
# Validations
# --------------------------------------------------------------------------------------------


def test_validations_round_trip_in_order_and_survive_reopening(path, db, run):
    a, b = record(run, 0, 0.3), record(run, 1, 0.5)
    db.add_program(a)
    db.add_program(b)
    result = {"tasks": [{"name": "v-1", "log_ratio": -0.1}], "note": "<b>untrusted</b>"}
    db.add_validation(run, a.id, 10, 0.3, 0.05, 0.1, result, created_at=5.0)
    db.add_validation(run, b.id, 20, 0.5, None, None, {}, created_at=6.0)
    expected = [
        {
            "program_id": a.id,
            "evaluated": 10,
            "search_fitness": 0.3,
            "search_se": 0.05,
            "fitness": 0.1,
            "result": result,
            "created_at": 5.0,
        },
        {
            "program_id": b.id,
            "evaluated": 20,
            "search_fitness": 0.5,
            "search_se": None,
            "fitness": None,
            "result": {},
            "created_at": 6.0,
        },
    ]
    assert db.validations(run) == expected
    assert db.validations(run + 1) == []
    with pytest.raises(ValueError, match="^fitness must be finite, got inf$"):
        db.add_validation(run, a.id, 30, 0.3, 0.05, float("inf"), {})
    assert len(db.validations(run)) == 2
    db.close()
    with ProgramDatabase(path, readonly=True) as reader:
        assert reader.validations(run) == expected


# --------------------------------------------------------------------------------------------
# Migration 3 -> 4
# --------------------------------------------------------------------------------------------


def _schema_3_file(path) -> None:
    """A file as the previous release wrote it: schema 3, built by its own (append-only) migration
    steps, with an ok program holding a cell, a failed one and a duplicate."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    for step in MIGRATIONS[:3]:
        step(conn)
    conn.execute("INSERT INTO runs VALUES (1, 10.0, 10.0, 5, '{}', '{}', 'running')")
    columns = (
        "run_id, proposal_index, parent_ids, island, generation, source, rationale, mutator, status, fitness, "
        "family_log_ratios, tasks, descriptors, probes, timings, cell, seconds, created_at, source_hash, "
        "duplicate_of"
    )
    rows = [
        (
            1,
            0,
            "[]",
            0,
            0,
            SOURCE,
            "r",
            "llm",
            "ok",
            0.2,
            '{"poly": 0.2}',
            '[{"name": "a", "log_ratio": 0.2}]',
            "{}",
            "{}",
            "{}",
            CELL,
            1.25,
            11.0,
            source_key(SOURCE),
            None,
        ),
        (
            1,
            1,
            "[1]",
            0,
            1,
            "bad(",
            "r",
            "llm",
            "failed",
            None,
            "{}",
            "[]",
            "{}",
            "{}",
            "{}",
            None,
            0.5,
            12.0,
            source_key("bad("),
            None,
        ),
        (
            1,
            2,
            "[1]",
            1,
            1,
            SOURCE,
            "r",
            "llm",
            "duplicate",
            0.2,
            "{}",
            "[]",
            "{}",
            "{}",
            "{}",
            CELL,
            0.0,
            13.0,
            source_key(SOURCE),
            1,
        ),
        (
            1,
            3,
            "[1]",
            1,
            1,
            SOURCE + "# b\n",
            "r",
            "llm",
            "ok",
            -0.4,
            "{}",
            '[{"name": "b"}]',
            "{}",
            "{}",
            "{}",
            CELL,
            2.0,
            14.0,
            source_key(SOURCE + "# b\n"),
            None,
        ),
    ]
    conn.executemany(f"INSERT INTO programs ({columns}) VALUES ({', '.join('?' * 20)})", rows)
    conn.execute("INSERT INTO elites VALUES (1, 0, ?, 1, 0.2)", (CELL,))
    conn.execute("INSERT INTO elites VALUES (1, 1, ?, 4, -0.4)", (CELL,))
    conn.execute("PRAGMA user_version = 3")
    conn.execute("COMMIT")
    conn.close()


def test_migration_from_schema_3_gives_old_programs_one_round_and_score_equal_to_fitness(path):
    _schema_3_file(path)
    with ProgramDatabase(path) as db:
        assert db.schema_version() == SCHEMA_VERSION == 4
        ok, failed, duplicate, other = db.programs(1)
        for program in (ok, other):
            assert (program.score, program.fitness_se, program.rounds, program.settled) == (
                program.fitness,
                None,
                1,
                True,
            )
        assert ok.score == 0.2 and other.score == -0.4
        assert failed.settled and failed.score is None
        assert db.evaluations(ok.id) == [
            {
                "round": 0,
                "kind": "search",
                "fitness": 0.2,
                "tasks": [{"name": "a", "log_ratio": 0.2}],
                "seconds": 1.25,
                "created_at": 11.0,
            }
        ]
        assert db.evaluations(other.id)[0]["fitness"] == -0.4 and len(db.evaluations(other.id)) == 1
        assert db.evaluations(failed.id) == [] and db.evaluations(duplicate.id) == []
        assert db.evaluation_counts(1) == {"search": 2}
        assert db.unsettled(1) == [] and db.validations(1) == []
        assert [p.id for p in db.top(1, 10)] == [ok.id, other.id] and db.best(1).id == ok.id
        assert db.grid(1, 0) == {CELL: ok.id} and db.grid(1, 1) == {CELL: other.id}  # grids kept
        # the migrated file takes new rounds after the old one
        db.add_evaluation(1, ok.id, 1, "confirm", 0.1, [])
        with pytest.raises(sqlite3.IntegrityError):
            db.add_evaluation(1, ok.id, 0, "search", 0.1, [])
        new = record(1, 4, 0.5, score=0.45)
        db.add_program(new)
        assert db.grid(1, 0) == {CELL: new.id}
        assert db._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with ProgramDatabase(path) as reopened:  # reopening does not migrate twice
        assert reopened.evaluation_counts(1) == {"search": 2, "confirm": 1}
    with ProgramDatabase(path, readonly=True) as reader:
        assert len(reader.evaluations(1)) == 2


# --------------------------------------------------------------------------------------------
# Estimates at their edges
# --------------------------------------------------------------------------------------------


def test_a_new_estimate_follows_the_program_into_every_grid(db, run):
    program = record(run, 0, 0.5, score=0.5)
    db.add_program(program)
    assert db.move_to_island(run, program.id, 1) is True and db.grid(run, 1) == {CELL: program.id}
    settle(db, program.id, fitness=0.3, score=0.2, rounds=4)
    stored = db._conn.execute(
        "SELECT island, fitness FROM elites WHERE program_id = ? ORDER BY island", (program.id,)
    ).fetchall()
    assert stored == [(0, 0.2), (1, 0.2)]  # the migrant copy too
    row = db._conn.execute("SELECT rounds, settled, fitness_se FROM programs WHERE id = ?", (program.id,)).fetchone()
    assert row == (4, 1, pytest.approx(0.1))
    settle(db, program.id, fitness=0.3, score=0.25, rounds=5, settled=False)
    assert db._conn.execute("SELECT settled FROM programs WHERE id = ?", (program.id,)).fetchone() == (0,)
    assert db.unsettled_count(run) == 1 and db.unsettled_count(run + 1) == 0


def test_settling_offers_only_ok_programs_with_a_cell(db, run):
    no_cell = record(run, 0, 0.5, score=0.5, settled=False, cell=None)
    failed = record(run, 1, 0.5, score=0.5, settled=False, status="failed", failure_stage="train", failure_code="x")
    for program in (no_cell, failed):
        db.add_program(program)
        settle(db, program.id, fitness=0.9, score=0.9)
    assert db.grid(run, 0) == {} and db.elites(run, 0) == []
    settle(db, 10_000, fitness=0.9, score=0.9)  # an unknown program: nothing happens
    assert db.grid(run, 0) == {} and db.get(10_000) is None
    assert [p.id for p in db.top(run, 5)] == [no_cell.id]  # settled and ok: ranked, just in no cell


@pytest.mark.parametrize("name", ["fitness", "ood_log_ratio", "fitness_se", "score"])
def test_an_estimate_with_a_non_finite_number_changes_nothing(db, run, name):
    program = record(run, 0, 0.5, score=0.4, settled=False)
    db.add_program(program)
    numbers = {"fitness": 0.6, "ood_log_ratio": 0.1, "fitness_se": 0.1, "score": 0.5, name: float("nan")}
    with pytest.raises(ValueError, match=f"^{name} must be finite, got nan$"):
        db.update_estimate(program.id, family_log_ratios={}, tasks=[], rounds=2, settled=True, **numbers)
    assert db.get(program.id) == program and db.grid(run, 0) == {}


def test_counts_and_the_unsettled_in_insertion_order(db, run):
    other = db.create_run({})
    ids = [db.add_program(record(run, i, 0.1 * i, score=0.0, settled=i % 2 == 0)) for i in range(5)]
    db.add_program(record(other, 0, 0.1, settled=False))
    db.add_program(record(run, 9, None, status="failed", settled=False, failure_stage="s", failure_code="c"))
    assert [p.id for p in db.unsettled(run)] == [ids[1], ids[3]] and db.unsettled_count(run) == 2
    assert db.unsettled_count(other) == 1


def test_the_default_time_of_rounds_and_validations(db, run):
    import time

    program = record(run, 0, 0.3)
    db.add_program(program)
    before = time.time()
    db.add_evaluation(run, program.id, 0, "search", 1, TASKS)
    db.add_validation(run, program.id, 3.0, 1, 0, -1, {"b": [1], "a": None})
    after = time.time()
    (evaluation,) = db.evaluations(program.id)
    assert before <= evaluation["created_at"] <= after and evaluation["seconds"] == 0.0
    assert evaluation["fitness"] == 1.0 and isinstance(evaluation["fitness"], float)
    validation = db.latest_validation(run)
    assert before <= validation["created_at"] <= after
    assert (validation["evaluated"], validation["search_fitness"], validation["search_se"], validation["fitness"]) == (
        3,
        1.0,
        0.0,
        -1.0,
    )
    raw = db._conn.execute("SELECT result, evaluated FROM validations").fetchone()
    assert raw == ('{"a":null,"b":[1]}', 3)


def test_latest_validation_is_the_newest(db, run):
    a, b = record(run, 0, 0.3), record(run, 1, 0.5)
    db.add_program(a)
    db.add_program(b)
    assert db.latest_validation(run) is None
    db.add_validation(run, a.id, 10, 0.3, 0.05, 0.1, {"n": 1}, created_at=5.0)
    db.add_validation(run, b.id, 20, 0.5, 0.1, 0.2, {"n": 2}, created_at=4.0)  # newer row, older clock
    assert db.latest_validation(run) == {
        "program_id": b.id,
        "evaluated": 20,
        "search_fitness": 0.5,
        "search_se": 0.1,
        "fitness": 0.2,
        "result": {"n": 2},
        "created_at": 4.0,
    }
    assert [v["program_id"] for v in db.validations(run)] == [a.id, b.id]
    assert db.latest_validation(run + 1) is None
    for name, args in (("search_fitness", (float("inf"), 0.1, 0.2)), ("search_se", (0.5, float("nan"), 0.2))):
        with pytest.raises(ValueError, match=f"^{name} must be finite"):
            db.add_validation(run, b.id, 30, *args, {})
    assert len(db.validations(run)) == 2
