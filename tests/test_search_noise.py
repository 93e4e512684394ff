"""Noise-aware selection in the search: the confirmation rule, confirmation rounds and pooling in the
controller, the task split of a pools-mode run, resume with rounds still owed, and fixed-suite rounds.

The controller-level tests drive `Search._record` and `Search._finish_round` with synthesized
evaluations (scores chosen by the test, so that "lucky" and "good" are known) on a real database and
real labs; nothing is trained there. One test (`test_resume_gives_an_unsettled_program_its_rounds`)
runs a real, tiny pools-mode search. Pools are small (6 + 4 search tasks, 20 steps) and built once
per module into the session's temporary cache (tests/conftest.py sets ACTMINE_CACHE_DIR).
"""

from __future__ import annotations

import contextlib
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from actmine.api import open_run
from actmine.candidate.loader import load_program_file
from actmine.candidate.source import compile_candidate
from actmine.config import Config, ConfigError
from actmine.evolve.blend import aligned_signs, partner_name
from actmine.evolve.confirmation import ConfirmationRule
from actmine.evolve.controller import HELDOUT, Search, SearchState, _Pending, _Round
from actmine.evolve.database import ProgramDatabase
from actmine.evolve.mutators import Proposal
from actmine.evolve.search_tasks import SEED_SHIFT, SearchTasks
from actmine.lab.estimate import WINNER_RULES, Estimate, bounded_estimate, references_fitness, softmin_estimate
from actmine.lab.ensemble import train_ensemble
from actmine.lab.fitness import Evaluation, Lab, TaskScore
from actmine.lab.pools import REFERENCES
from search_runs import write_tiny_config

CONFIRM_ROUNDS = 2
TOP = 2
POOLS_CONFIG = {
    "search": {
        "budget": 3,
        "time_limit": 0,
        "islands": 1,
        "heldout_top": TOP,
        "initial_programs": ["relu", "gelu", "silu"],
    },
    "executor": {"workers": 2},
    "lab": {"suite": None, "heldout_suite": None, "steps": 20},
    "tasks": {
        "search": [{"generator": "polynomial", "size": 6}, {"generator": "harmonic", "size": 4}],
        "sample": 4,
        "validation": [
            {"generator": "polynomial", "size": 3, "start": 1_000_000},
            {"generator": "harmonic", "size": 2, "start": 1_000_000},
        ],
        "test": {"feynman": [{"generator": "feynman", "size": 4, "seeds": [0]}]},
        "confirm_rounds": CONFIRM_ROUNDS,
        "lcb_z": 1.0,
        # a fresh sample per proposal, where pooling by fingerprint adds tasks (shared samples:
        # test_shared_samples_pair_every_program_and_pool_nothing)
        "shared_samples": False,
        # the tests below choose each program's task scores to mean "lucky" or "good"; GELU's control
        # variate would shift them by GELU's offsets (its own tests: section 5)
        "control_beta": 0.0,
    },
    "sandbox": {"timeout_s": 60, "cpu_s": 60, "memory_mb": 3072},
}
# A probe result `selection.cell_of` accepts (gelu-like: one dip, unbounded, ~8 flops).
DESCRIPTORS = {
    "value_at_0": 0.0,
    "slope_at_0": 0.5,
    "growth_pos": 1.0,
    "growth_neg": 0.0,
    "sign_changes": 1,
    "bounded": False,
    "monotone": False,
    "mean_curvature": 0.2,
}


@pytest.fixture(scope="module")
def config() -> Config:
    return Config.from_dict(POOLS_CONFIG)


@pytest.fixture(scope="module")
def tasks(config) -> SearchTasks:
    """The run's labs (pools built once per module; later builds read the session's cache)."""
    return SearchTasks.from_config(config, progress=False)


@pytest.fixture()
def controller(config, tasks, tmp_path):
    """A Search with its labs and an open database, as `_run` prepares them (no executor, no mutator)."""
    search = Search(config, tmp_path / "run", live=False)
    search.tasks = tasks
    database, run_id = search._open()
    yield search, database, run_id, SearchState(budget=config.search.budget)
    database.close()


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def probes(fingerprint: str) -> dict:
    return {
        "pointwise": True,
        "flops_per_element": 8.0,
        "backward_flops_per_element": 12.0,
        "saved_bytes_per_element": 4,
        "fingerprint": fingerprint,
        "descriptors": dict(DESCRIPTORS),
        "ops": {"mul": 1},
    }


def scored(lab: Lab, fitnesses: list[float], fingerprint: str) -> Evaluation:
    """An ok evaluation on the lab's tasks with per-task fitness `fitnesses` (log-ratio = −fitness)."""
    names = lab.suite.tasks
    assert len(fitnesses) == len(names)
    task_scores = [TaskScore(t.name, t.family, 0.1, 0.01, -f, (-f,)) for t, f in zip(names, fitnesses)]
    mean = float(np.mean(fitnesses))
    return Evaluation(
        "candidate",
        ok=True,
        fitness=mean,
        ood_log_ratio=-mean,
        tasks=task_scores,
        probes=probes(fingerprint),
        seconds=1.0,
        stage="done",
    )


def pending(index: int, source: str | None = None, mutator: str = "symbolic") -> _Pending:
    source = source or f"def activation_function(x):\n    return torch.relu(x) + {index}.0 * x\n"
    return _Pending(Proposal(source, f"proposal {index}", mutator), index, [], 0, 1, 0.0)


def queued(search: Search, program_id: int) -> list[_Round]:
    return [job for job in search._rounds if job.program_id == program_id]


def take_round(search: Search, program_id: int) -> _Round | None:
    """The program's queued round, removed from the queue as the loop does when it submits it."""
    jobs = queued(search, program_id)
    if not jobs:
        return None
    search._rounds.remove(jobs[0])
    return jobs[0]


def confirm(
    search: Search, database, run_id: int, state, program_id: int, fitnesses: list[float], fingerprint: str
) -> int:
    """Answer every round the program asks for with `fitnesses` per task; the number of rounds fed."""
    fed = 0
    while (job := take_round(search, program_id)) is not None:
        assert fed < CONFIRM_ROUNDS, "more rounds than the rule's cap"
        search._finish_round(database, run_id, job, scored(job.lab, fitnesses, fingerprint), state)
        fed += 1
    return fed


def rows(database, program_id: int) -> list[tuple[int, str]]:
    return [(r["round"], r["kind"]) for r in database.evaluations(program_id)]


def settled_program(search, database, run_id, state, index: int, fitnesses: list[float]) -> int:
    """A program recorded and confirmed to the end with the same per-task scores every round."""
    fingerprint = f"fp-{index}"
    lab = search.tasks.lab_for(index, 0)
    record = search._record(database, run_id, pending(index), scored(lab, fitnesses, fingerprint), state)
    confirm(search, database, run_id, state, record.id, fitnesses, fingerprint)
    assert database.get(record.id).settled
    return record.id


# --------------------------------------------------------------------------------------------
# 1. the rule
# --------------------------------------------------------------------------------------------

FINITE = st.floats(-5, 5, allow_nan=False)
ESTIMATES = st.builds(Estimate, FINITE, st.floats(0, 2, allow_nan=False), st.integers(1, 200))
BARS = st.lists(st.one_of(st.none(), FINITE), max_size=4)
RULES = st.builds(
    ConfirmationRule, st.integers(0, 4), st.floats(0, 3, allow_nan=False), st.one_of(st.just(1.0), st.floats(0.05, 1.0))
)


@settings(max_examples=300, deadline=None)
@given(RULES, ESTIMATES, BARS, st.integers(1, 8))
def test_the_rule_asks_for_a_round_iff_the_projected_score_beats_the_lowest_bar_within_the_cap(
    rule, estimate, bars, done
):
    relevant = [b for b in bars if b is not None]
    # the score it would have after all its rounds if its mean held: se shrinks as √(tasks done / all
    # tasks), the first round `first_share` of a later one (racing; 1: every round the same size)
    tasks_done = rule.first_share + done - 1
    projected = estimate.mean - rule.z * estimate.se * math.sqrt(tasks_done / (rule.first_share + rule.rounds))
    expected = done <= rule.rounds and bool(relevant) and projected > min(relevant)
    assert rule.needs_round(estimate, done, bars) is expected


@settings(max_examples=200, deadline=None)
@given(RULES, ESTIMATES, BARS, st.integers(0, 8))
def test_past_the_cap_or_without_a_bar_a_program_settles(rule, estimate, bars, extra):
    assert not rule.needs_round(estimate, rule.rounds + 1 + extra, bars + [-math.inf])
    assert not rule.needs_round(estimate, 1, [None] * len(bars))
    assert not rule.needs_round(estimate, 1, [])


@settings(max_examples=200, deadline=None)
@given(RULES, ESTIMATES, st.data())
def test_a_list_that_is_not_full_confirms_every_program_within_the_cap(rule, estimate, data):
    done = data.draw(st.integers(1, rule.rounds)) if rule.rounds >= 1 else None
    if done is not None:
        assert rule.needs_round(estimate, done, [-math.inf])
    assert not rule.needs_round(estimate, rule.rounds + 1, [-math.inf])


@settings(max_examples=100, deadline=None)
@given(RULES, ESTIMATES)
def test_the_score_is_the_lower_confidence_bound(rule, estimate):
    assert rule.score(estimate) == pytest.approx(estimate.mean - rule.z * estimate.se)
    assert rule.score(estimate) <= estimate.mean


# --------------------------------------------------------------------------------------------
# 2. a lucky candidate is not promoted
# --------------------------------------------------------------------------------------------


def test_programs_are_confirmed_while_the_top_list_is_not_full(controller):
    search, database, run_id, state = controller
    lab = search.tasks.lab_for(0, 0)
    first = search._record(database, run_id, pending(0), scored(lab, [0.2, 0.22, 0.18, 0.2], "fp-0"), state)
    stored = database.get(first.id)
    assert not stored.settled and stored.rounds == 1 and database.top(run_id, 10) == []
    [job] = queued(search, first.id)
    assert (job.kind, job.round) == ("confirm", 1)
    assert [t.name for t in job.lab.suite.tasks] == [t.name for t in search.tasks.lab_for(0, 1).suite.tasks]
    assert confirm(search, database, run_id, state, first.id, [0.2, 0.21, 0.19, 0.2], "fp-0") == CONFIRM_ROUNDS
    stored = database.get(first.id)
    assert stored.settled and stored.rounds == 1 + CONFIRM_ROUNDS
    assert rows(database, first.id) == [(0, "search"), (1, "confirm"), (2, "confirm")]
    assert [p.id for p in database.top(run_id, 10)] == [first.id]
    assert database.evaluation_counts(run_id) == {"search": 1, "confirm": 2}


def test_a_lucky_first_sample_does_not_enter_the_top_list_and_a_good_one_does(controller):
    search, database, run_id, state = controller
    a = settled_program(search, database, run_id, state, 0, [0.2, 0.22, 0.18, 0.2])
    b = settled_program(search, database, run_id, state, 1, [0.1, 0.12, 0.08, 0.1])
    assert [p.id for p in database.top(run_id, 10)] == [a, b]
    bar = database.get(b).score
    assert bar < 0.1

    # below the last place: settles at once, no round
    low = search._record(
        database, run_id, pending(2), scored(search.tasks.lab_for(2, 0), [0.0, 0.05, -0.05, 0.0], "fp-2"), state
    )
    assert database.get(low.id).settled and database.get(low.id).rounds == 1 and not queued(search, low.id)

    # far above the last place on its first sample: unsettled, in no list or grid, a round queued
    lucky = search._record(
        database, run_id, pending(3), scored(search.tasks.lab_for(3, 0), [1.0, 1.1, 0.9, 1.0], "fp-3"), state
    )
    stored = database.get(lucky.id)
    assert not stored.settled and stored.fitness == pytest.approx(1.0)
    assert lucky.id not in [p.id for p in database.top(run_id, 10)]
    assert database.best(run_id).id == a
    assert lucky.id not in database.grid(run_id, 0).values()
    [job] = queued(search, lucky.id)
    assert (job.kind, job.round) == ("confirm", 1)
    assert database.unsettled(run_id) == [stored]

    # its further samples are poor: it settles below the bar, out of the top list
    fed = confirm(search, database, run_id, state, lucky.id, [-1.0, -1.1, -0.9, -1.0], "fp-3")
    stored = database.get(lucky.id)
    assert stored.settled and 1 <= fed <= CONFIRM_ROUNDS and stored.rounds == 1 + fed
    assert stored.fitness < 0.1 and stored.score < bar
    assert [p.id for p in database.top(run_id, TOP)] == [a, b]
    assert rows(database, lucky.id) == [(0, "search")] + [(r, "confirm") for r in range(1, fed + 1)]
    assert database.unsettled(run_id) == []

    # a genuinely good program: confirmed to the cap, then first in the list
    good = search._record(
        database, run_id, pending(4), scored(search.tasks.lab_for(4, 0), [1.0, 1.1, 0.9, 1.0], "fp-4"), state
    )
    assert not database.get(good.id).settled
    assert confirm(search, database, run_id, state, good.id, [1.0, 1.05, 0.95, 1.0], "fp-4") == CONFIRM_ROUNDS
    stored = database.get(good.id)
    assert stored.settled and stored.rounds == 1 + CONFIRM_ROUNDS and stored.score > database.get(a).score
    assert [p.id for p in database.top(run_id, TOP)] == [good.id, a]
    assert rows(database, good.id) == [(0, "search"), (1, "confirm"), (2, "confirm")]
    # one cell for all of them (the same descriptors): it holds the best score
    assert set(database.grid(run_id, 0).values()) == {good.id}


@pytest.fixture()
def racing(config, tmp_path):
    """As `controller`, with racing: first rounds of 2 tasks, confirmation rounds of 4."""
    race = config.with_overrides({"tasks.first_sample": 2})
    search = Search(race, tmp_path / "run", live=False)
    search.tasks = SearchTasks.from_config(race, progress=False)
    database, run_id = search._open()
    yield search, database, run_id, SearchState(budget=race.search.budget)
    database.close()


def test_racing_settles_a_program_after_its_small_first_round_or_confirms_it_on_full_rounds(racing):
    search, database, run_id, state = racing
    assert search.rule.first_share == pytest.approx(0.5)
    assert [len(search.tasks.lab_for(7, r).suite.tasks) for r in range(3)] == [2, 4, 4]
    listed = []
    for index, level in enumerate((0.2, 0.1)):  # the top list (TOP = 2), each confirmed on full rounds
        record = search._record(
            database,
            run_id,
            pending(index),
            scored(search.tasks.lab_for(index, 0), [level, level + 0.02], f"fp-{index}"),
            state,
        )
        assert (
            confirm(
                search, database, run_id, state, record.id, [level, level + 0.01, level - 0.01, level], f"fp-{index}"
            )
            == CONFIRM_ROUNDS
        )
        listed.append(record.id)
    assert [p.id for p in database.top(run_id, TOP)] == listed
    bar = database.get(listed[1]).score

    # a program its two tasks put well below the last place: settled after them, nothing more trained
    low = search._record(database, run_id, pending(2), scored(search.tasks.lab_for(2, 0), [-0.3, -0.2], "fp-2"), state)
    assert database.get(low.id).settled and not queued(search, low.id)
    assert [len(row["tasks"]) for row in database.evaluations(low.id)] == [2]

    # a lucky pair of tasks: confirmed on rounds of the full sample, where its luck does not hold
    lucky = search._record(database, run_id, pending(3), scored(search.tasks.lab_for(3, 0), [1.0, 1.2], "fp-3"), state)
    assert not database.get(lucky.id).settled
    [job] = queued(search, lucky.id)
    assert (job.kind, job.round, len(job.lab.suite.tasks)) == ("confirm", 1, 4)
    confirm(search, database, run_id, state, lucky.id, [-0.5, -0.4, -0.6, -0.5], "fp-3")
    stored = database.get(lucky.id)
    assert stored.settled and stored.score < bar and [p.id for p in database.top(run_id, TOP)] == listed


def test_a_first_sample_below_two_is_refused():
    with pytest.raises(ConfigError, match="tasks.first_sample"):
        Config.from_dict({"tasks": {"first_sample": 1}})
    assert Config.from_dict({}).tasks.first_sample is None


def test_a_failed_confirmation_round_settles_the_program_with_its_estimate(controller):
    search, database, run_id, state = controller
    program = search._record(
        database, run_id, pending(0), scored(search.tasks.lab_for(0, 0), [0.3, 0.3, 0.2, 0.4], "fp-0"), state
    )
    job = take_round(search, program.id)
    failure = Evaluation("candidate", ok=False).fail("train", "timeout", "lost")
    search._finish_round(database, run_id, job, failure, state)
    stored = database.get(program.id)
    assert stored.settled and stored.rounds == 1 and stored.fitness == pytest.approx(0.3)
    assert not queued(search, program.id) and rows(database, program.id) == [(0, "search")]


# --------------------------------------------------------------------------------------------
# 3. pooling by fingerprint
# --------------------------------------------------------------------------------------------


def _expected(database, program_id: int) -> Estimate:
    """The pooled estimate written out: each task once, at its mean over the rounds that scored it."""
    per_task: dict[str, list[float]] = {}
    for row in database.evaluations(program_id):
        for task in row["tasks"]:
            per_task.setdefault(task["name"], []).append(-task["log_ratio"])
    return Estimate.of([sum(v) / len(v) for v in per_task.values()])


def test_the_same_function_found_again_is_pooled_into_the_original(controller):
    search, database, run_id, state = controller
    original = search._record(
        database, run_id, pending(0), scored(search.tasks.lab_for(0, 0), [0.3, 0.2, 0.4, 0.3], "same"), state
    )
    assert [j.round for j in queued(search, original.id)] == [1]

    # found again by another proposal (another source, the same fingerprint) while a round is owed, on
    # a sample with tasks the original has not seen (tiny pools: some proposals draw the same sample)
    first = set(_names(search.tasks.lab_for(0, 0)))
    other = next(i for i in range(1, 100) if set(_names(search.tasks.lab_for(i, 0))) != first)
    again = scored(search.tasks.lab_for(other, 0), [0.1, 0.0, 0.2, 0.1], "same")
    duplicate = search._record(database, run_id, pending(1), again, state)
    assert duplicate.status == "duplicate" and duplicate.duplicate_of == original.id
    assert database.get(duplicate.id).duplicate_of == original.id
    stored = database.get(original.id)
    assert rows(database, original.id) == [(0, "search"), (1, "pooled")]
    expected = _expected(database, original.id)
    # every task once: the two samples may share tasks (tiny pools), a shared one counts at its mean
    assert expected.n == len({t["name"] for t in stored.tasks}) and expected.n > 4
    assert (stored.fitness, stored.fitness_se, stored.rounds) == (
        pytest.approx(expected.mean),
        pytest.approx(expected.se),
        2,
    )
    assert stored.score == pytest.approx(expected.lcb(1.0))
    assert len(stored.tasks) == 8 and not stored.settled
    assert len(queued(search, original.id)) == 1  # the round already owed, not a second one

    # the owed round comes back under the number it was queued with; it is stored after the pooled one
    job = take_round(search, original.id)
    assert job.round == 1
    search._finish_round(database, run_id, job, scored(job.lab, [0.25, 0.35, 0.3, 0.3], "same"), state)
    assert rows(database, original.id) == [(0, "search"), (1, "pooled"), (2, "confirm")]
    stored = database.get(original.id)
    assert stored.settled and stored.rounds == 3  # 1 + CONFIRM_ROUNDS rounds: settled by the cap
    assert stored.fitness == pytest.approx(_expected(database, original.id).mean)

    # found once more after it settled: pooled again, still settled, re-ranked by the new estimate
    seen = {t["name"] for t in database.get(original.id).tasks}
    fresh = next(i for i in range(other + 1, 200) if not set(_names(search.tasks.lab_for(i, 0))) <= seen)
    search._record(
        database, run_id, pending(fresh), scored(search.tasks.lab_for(fresh, 0), [0.3, 0.3, 0.3, 0.3], "same"), state
    )
    stored = database.get(original.id)
    expected = _expected(database, original.id)
    assert expected.n == len({t["name"] for t in stored.tasks}) and len(stored.tasks) == 16
    assert stored.rounds == 4 and stored.settled
    assert (stored.fitness, stored.fitness_se) == (pytest.approx(expected.mean), pytest.approx(expected.se))
    per_task = {}  # per family: the mean over its tasks, each task at its mean over rounds
    for t in stored.tasks:
        per_task.setdefault((t["family"], t["name"]), []).append(t["log_ratio"])
    assert stored.family_log_ratios == pytest.approx(
        {
            f: float(np.mean([np.mean(v) for (family, _), v in per_task.items() if family == f]))
            for f in {family for family, _ in per_task}
        }
    )
    assert [p.id for p in database.top(run_id, 10)] == [original.id]  # duplicates never rank
    assert database.evaluation_counts(run_id) == {"search": 1, "pooled": 2, "confirm": 1}
    assert [p.status for p in database.programs(run_id)] == ["ok", "duplicate", "duplicate"]


@contextlib.contextmanager
def _search_under(objective: str, config: Config, tasks, tmp_path):
    """A search under `tasks.objective: objective` with its open database and run, and the lab of
    proposal 0's first round."""
    search = Search(config.with_overrides({"tasks.objective": objective}), tmp_path / "run", live=False)
    search.tasks = tasks
    database, run_id = search._open()
    try:
        yield search, database, run_id, search.tasks.lab_for(0, 0)
    finally:
        database.close()


def _record_all(search, database, run_id: int, lab, score_lists: list[list[float]]) -> list:
    """Record one program per list of per-task fitness scores on `lab`; their stored records."""
    state = SearchState(budget=len(score_lists) + 1)
    ids = [
        search._record(database, run_id, pending(i), scored(lab, scores, f"fp-{i}"), state).id
        for i, scores in enumerate(score_lists)
    ]
    return [database.get(program_id) for program_id in ids]


def test_the_softmin_objective_ranks_a_one_family_loser_below_a_balanced_program(config, tasks, tmp_path):
    """`tasks.objective: softmin`: the fitness is the softmin over families of the pooled task scores
    (the winner rule's aggregate), so a program that loses one family ranks below one that loses none
    even when its mean over tasks is higher."""
    with _search_under("softmin", config, tasks, tmp_path) as (search, database, run_id, lab):
        families = [t.family for t in lab.suite.tasks]
        assert len(set(families)) == 2, families  # the sample holds both families of the search side
        loser = [-0.4 if f == "polynomial" else 1.5 for f in families]  # loses the polynomials only
        balanced = [0.2] * len(families)
        assert np.mean(loser) > np.mean(balanced)  # the mean would prefer it
        stored = _record_all(search, database, run_id, lab, [loser, balanced])
        for record, scores in zip(stored, (loser, balanced)):
            by_family: dict[str, list[float]] = {}
            for family, score in zip(families, scores):
                by_family.setdefault(family, []).append(score)
            expected = softmin_estimate(by_family)
            assert (record.fitness, record.fitness_se) == (pytest.approx(expected.mean), pytest.approx(expected.se))
            assert record.score == pytest.approx(expected.lcb(1.0))
        assert stored[0].fitness < stored[1].fitness


def test_a_function_known_only_as_a_failure_is_not_pooled(controller):
    search, database, run_id, state = controller
    failed = Evaluation("candidate", ok=False, probes=probes("bad")).fail("screen", "screen_failed", "no")
    first = search._record(database, run_id, pending(0), failed, state)
    assert first.status == "failed"
    duplicate = search._record(
        database, run_id, pending(1), scored(search.tasks.lab_for(1, 0), [0.1] * 4, "bad"), state
    )
    assert duplicate.status == "duplicate" and duplicate.duplicate_of == first.id
    assert database.evaluations(first.id) == [] and database.evaluation_counts(run_id) == {}


# --------------------------------------------------------------------------------------------
# 4. the split
# --------------------------------------------------------------------------------------------


def _names(lab: Lab) -> list[str]:
    return [t.name for t in lab.suite.tasks]


def test_the_sides_of_the_split_share_no_task(tasks):
    searched = {t.name for t in tasks.split.search.tasks}
    validation = set(_names(tasks.validation))
    assert validation == {t.name for t in tasks.split.validation.tasks} and len(validation) == 5
    assert set(tasks.tests) == {"feynman"} and tasks.unseen_tests() == ["feynman"]
    assert not searched & validation
    for lab in tasks.tests.values():
        assert _names(lab) and not searched & set(_names(lab)) and not validation & set(_names(lab))
    assert tasks.mode == "pools"


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 6))
def test_every_round_samples_the_search_side_only_and_the_same_round_the_same_tasks(tasks, index, round):
    lab = tasks.lab_for(index, round)
    names = _names(lab)
    assert len(names) == len(set(names)) == 4
    assert set(names) <= {t.name for t in tasks.split.search.tasks}
    assert not set(names) & set(_names(tasks.validation))
    assert all(not set(names) & set(_names(test)) for test in tasks.tests.values())
    # stratified: both search generators in every sample
    assert {n.split("-")[0] for n in names} == {"polynomial", "harmonic"}
    assert _names(tasks.lab_for(index, round)) == names


def test_rounds_and_runs_draw_fresh_samples(tasks, config):
    for index in range(20):
        samples = {tuple(sorted(_names(tasks.lab_for(index, r)))) for r in range(4)}
        assert len(samples) > 1, f"proposal {index}: four rounds drew one sample"
    by_round = [tuple(sorted(_names(tasks.lab_for(i, 0)))) for i in range(20)]
    assert len(set(by_round)) > 5
    other = SearchTasks.from_config(config.with_overrides({"search.seed": 1}), progress=False)
    assert [tuple(sorted(_names(other.lab_for(i, 0)))) for i in range(20)] != by_round


def test_shared_samples_pair_every_program_and_pool_nothing(config, tmp_path):
    shared = config.with_overrides({"tasks.shared_samples": True})
    tasks = SearchTasks.from_config(shared, progress=False)
    for round in range(3):  # round r is one sample for every proposal; rounds differ
        assert len({tuple(_names(tasks.lab_for(i, round))) for i in range(30)}) == 1
    assert len({tuple(_names(tasks.lab_for(0, r))) for r in range(3)}) == 3
    search = Search(shared, tmp_path / "run", live=False)
    search.tasks = tasks
    database, run_id = search._open()
    original = search._record(
        database, run_id, pending(0), scored(tasks.lab_for(0, 0), [0.3, 0.2, 0.4, 0.3], "same"), SearchState(budget=10)
    )
    # the same function from another proposal scored the same tasks again: a duplicate, not a new sample
    again = search._record(
        database, run_id, pending(1), scored(tasks.lab_for(1, 0), [0.3, 0.2, 0.4, 0.3], "same"), SearchState(budget=10)
    )
    assert again.duplicate_of == original.id
    assert rows(database, original.id) == [(0, "search")]
    database.close()


# --------------------------------------------------------------------------------------------
# 5. resume with rounds still owed
# --------------------------------------------------------------------------------------------

UNSETTLED_SOURCE = "def activation_function(x):\n    return F.leaky_relu(x, 0.2)\n"


def test_resume_gives_an_unsettled_program_its_rounds(config, tasks, tmp_path):
    run_dir = tmp_path / "run"
    # an earlier controller recorded a lucky first sample and stopped before confirming it
    first = Search(config, run_dir, live=False)
    first.tasks = tasks
    database, run_id = first._open()
    lab = tasks.lab_for(0, 0)
    lucky = first._record(
        database, run_id, pending(0, UNSETTLED_SOURCE), scored(lab, [1.5, 1.4, 1.6, 1.5], "fake"), SearchState(budget=3)
    )
    assert not database.get(lucky.id).settled
    before = database.evaluations(lucky.id)
    database.update_run(run_id, status="interrupted")
    database.close()

    summary = Search(config.with_overrides({"search.budget": 3}), run_dir, live=False).run()
    assert not summary["interrupted"] and summary["evaluated"] == 3

    with ProgramDatabase(run_dir / "programs.sqlite", readonly=True) as db:
        assert db.latest_run()["id"] == run_id
        program = db.get(lucky.id)
        evaluations = db.evaluations(lucky.id)
        assert evaluations[0] == before[0]  # the earlier row is kept as it was
        later = evaluations[1:]
        assert later and all(r["kind"] == "confirm" for r in later)
        assert [r["round"] for r in later] == list(range(1, len(later) + 1))
        assert len(later) <= CONFIRM_ROUNDS
        assert {t["name"] for t in later[0]["tasks"]} == set(_names(tasks.lab_for(0, 1)))
        assert program.settled and program.rounds == len(evaluations)
        assert program.fitness == pytest.approx(_expected(db, lucky.id).mean)
        assert db.unsettled(run_id) == []
        ok_ids = {p.id for p in db.programs(run_id, status="ok")}
        # the validation's candidates: the top list, and the run's seeds besides
        top = [p.id for p in db.top(run_id, TOP + 1) if p.mutator != "blend"][:TOP]  # a blend is no candidate
        expected_candidates = set(top) | {
            p.id for p in db.programs(run_id, status="ok") if p.mutator == "seed" and p.settled
        }

    final = json.loads((run_dir / HELDOUT).read_text())
    assert set(final) == {"winner", "winner_chosen_by", "winner_rule", "blend", "validation", "test", "comparisons"}
    assert final["winner_chosen_by"] == "validation"
    blended = (final["blend"] or {}).get("program_id")  # the choice blended with GELU (its own test below)
    candidates = [r for r in final["validation"] if r["program_id"] not in (None, blended)]
    assert {r["program_id"] for r in candidates} == expected_candidates and expected_candidates <= ok_ids
    scored_rows = [r for r in candidates if r["heldout_fitness"] is not None]
    rule = WINNER_RULES[final["winner_rule"]]
    chosen = max(scored_rows, key=lambda r: rule(r["heldout_fitness"], r["families"]))
    assert (final["blend"]["chosen"], final["winner"]) == (chosen["program_id"], blended or chosen["program_id"])
    assert [r["program_id"] for r in final["validation"] if r["winner"]] == [final["winner"]]
    assert {r["name"] for r in final["validation"] if r["program_id"] is None} == set(Search.REFERENCES)

    tests = final["test"]
    assert {r["suite"] for r in tests} == {"feynman"}
    assert {r["name"] for r in tests} == {f"program {final['winner']}", *Search.REFERENCES}
    assert all(set(r["tasks"]) == set(_names(tasks.tests["feynman"])) for r in tests if r["fitness"] is not None)
    comparisons = final["comparisons"]
    assert {c["against"] for c in comparisons} == set(Search.REFERENCES)
    assert all(
        c["suite"] == "feynman" and c["program_id"] == final["winner"] and c["low"] <= c["mean"] <= c["high"]
        for c in comparisons
    )


def test_the_references_rule_is_given_the_references_validation_rows(config, tmp_path):
    """`search.winner_rule: references` ranks each candidate by how far it beats the hardest library
    reference on its hardest family: the final check must hand the rule the references' own rows."""
    run_dir = tmp_path / "run"
    rule_config = config.with_overrides(
        {"search.initial_programs": ["relu", "silu", "elu"], "search.budget": 3, "search.winner_rule": "references"}
    )
    Search(rule_config, run_dir, live=False).run()
    final = json.loads((run_dir / HELDOUT).read_text())
    assert final["winner_rule"] == "references"
    known = {r["name"]: r["families"] for r in final["validation"] if r["program_id"] is None and r["families"]}
    assert set(known) == set(Search.REFERENCES)
    scored = [r for r in final["validation"] if r["program_id"] is not None and r["heldout_fitness"] is not None]
    assert scored and all(r["winner_score"] == pytest.approx(references_fitness(r["families"], known)) for r in scored)
    # against the references a candidate scores no higher than against ReLU alone (the softmin rule)
    assert any(r["winner_score"] < WINNER_RULES["softmin"](r["heldout_fitness"], r["families"]) - 1e-9 for r in scored)
    blended = (final["blend"] or {}).get("program_id")
    chosen = max((r for r in scored if r["program_id"] != blended), key=lambda r: r["winner_score"])
    assert final["blend"]["chosen"] == chosen["program_id"]


# --------------------------------------------------------------------------------------------
# 5b. the winner: the validation's choice blended with GELU (search.winner_blend)
# --------------------------------------------------------------------------------------------


def test_the_winner_is_the_validations_choice_blended_with_gelu_and_a_resumed_check_keeps_it(config, tasks, tmp_path):
    run_dir = tmp_path / "run"
    blending = config.with_overrides({"search.initial_programs": ["relu", "silu", "elu"], "search.budget": 3})
    assert blending.search.winner_blend == 0.5 and blending.search.blend_reference == "gelu"  # the defaults
    Search(blending, run_dir, live=False).run()
    final = json.loads((run_dir / HELDOUT).read_text())
    blend = final["blend"]
    with ProgramDatabase(run_dir / "programs.sqlite", readonly=True) as db:
        run_id = db.latest_run()["id"]
        record = db.get(final["winner"])
        others = [p for p in db.programs(run_id) if p.id != record.id]
        # the choice: the rule's best among the candidates (the blend's own row is not one)
        rule = WINNER_RULES[final["winner_rule"]]
        candidates = [r for r in final["validation"] if r["program_id"] not in (None, record.id)]
        chosen = max(
            (r for r in candidates if r["heldout_fitness"] is not None),
            key=lambda r: rule(r["heldout_fitness"], r["families"]),
        )
        signs = aligned_signs(db.get(chosen["program_id"]).probes["curve"], "gelu")
        assert blend == {
            "reference": "gelu",
            "partner": partner_name("gelu", signs),
            "weight": 0.5,
            "chosen": chosen["program_id"],
            "program_id": record.id,
            "error": None,
        }
        assert final["winner_chosen_by"] == "validation"
        # a program of the run: the blend of the choice, scored on fresh search rounds, never an elite
        assert (record.mutator, record.parent_ids, record.status, record.settled, record.cell) == (
            "blend",
            [chosen["program_id"]],
            "ok",
            True,
            None,
        )
        assert record.proposal_index == max(p.proposal_index for p in others) + 1
        rounds = db.evaluations(record.id)
        assert [(r["round"], r["kind"]) for r in rounds] == [(0, "search")] + [
            (r, "confirm") for r in range(1, CONFIRM_ROUNDS + 1)
        ]
        for r in rounds:
            assert [t["name"] for t in r["tasks"]] == _names(tasks.lab_for(record.proposal_index, r["round"]))
        assert record.rounds == 1 + CONFIRM_ROUNDS and record.fitness == pytest.approx(_expected(db, record.id).mean)
        x = torch.linspace(-8, 8, 401)
        expected = 0.5 * compile_candidate(db.get(chosen["program_id"]).source)(x) + 0.5 * signs[
            0
        ] * torch.nn.functional.gelu(signs[1] * x)
        torch.testing.assert_close(compile_candidate(record.source)(x), expected, rtol=1e-5, atol=1e-6)
    # the blend is validated beside the others and is the one winner; the tests report on it
    row = next(r for r in final["validation"] if r["program_id"] == record.id)
    assert (
        row["winner"] and row["heldout_fitness"] is not None and row["search_fitness"] == pytest.approx(record.fitness)
    )
    assert [r["program_id"] for r in final["validation"] if r["winner"]] == [record.id]
    assert {r["name"] for r in final["test"]} == {f"program {record.id}", *Search.REFERENCES}
    assert all(c["program_id"] == record.id for c in final["comparisons"])
    best = load_program_file(run_dir / "best_activation.py")["best_activation"]()
    torch.testing.assert_close(best(x), expected, rtol=1e-5, atol=1e-6)
    assert f"blended with {blend['partner']}" in (run_dir / "report.html").read_text()
    assert open_run(run_dir).heldout().blend == blend and open_run(run_dir).heldout().winner == record.id

    # a resumed run checks again: the same choice, the same blend, not a blend of the blend
    Search(blending, run_dir, live=False).run()
    again = json.loads((run_dir / HELDOUT).read_text())
    assert (again["winner"], again["blend"]) == (final["winner"], blend)
    with ProgramDatabase(run_dir / "programs.sqlite", readonly=True) as db:
        assert [p.id for p in db.programs(db.latest_run()["id"]) if p.mutator == "blend"] == [record.id]

    # resumed with a larger budget: the blend is no proposal of the budget's (it once counted as one,
    # so the search made one fewer), and the indexes stay gap-free around it
    larger = blending.with_overrides({"search.budget": blending.search.budget + 2})
    Search(larger, run_dir, live=False).run()
    with ProgramDatabase(run_dir / "programs.sqlite", readonly=True) as db:
        programs = db.programs(db.latest_run()["id"])
    searched = [p for p in programs if p.mutator != "blend"]
    assert len(searched) == larger.search.budget
    assert sorted(p.proposal_index for p in programs) == list(range(len(programs)))


@pytest.mark.parametrize(
    "overrides, error",
    [
        ({"search.initial_programs": ["gelu"]}, "the validation chose gelu itself"),
        ({"search.initial_programs": ["relu"], "search.winner_blend": 0.0}, None),
        # SiLU costs 8 weighted ops per element, its blend with GELU 19: the policy refuses the blend
        ({"search.initial_programs": ["silu"], "probes.max_flops_per_element": 12.0}, "the blend was refused: "),
    ],
)
def test_without_a_blend_the_winner_is_the_validations_choice(config, tmp_path, overrides, error):
    run_dir = tmp_path / "run"
    Search(config.with_overrides({"search.budget": 1, **overrides}), run_dir, live=False).run()
    final = json.loads((run_dir / HELDOUT).read_text())
    assert [r["program_id"] for r in final["validation"] if r["winner"]] == [final["winner"]]
    with ProgramDatabase(run_dir / "programs.sqlite", readonly=True) as db:
        assert db.get(final["winner"]).mutator == "seed"
        blends = [p for p in db.programs(db.latest_run()["id"]) if p.mutator == "blend"]
    if error is None:
        assert final["blend"] is None and not blends
    elif "refused" in error:  # recorded as what it is: a failed program, the reason in heldout.json
        assert [(p.id, p.status, p.failure_code) for p in blends] == [
            (final["blend"]["program_id"], "failed", "over_flop_budget")
        ]
        assert final["blend"]["error"].startswith(error) and blends[0].failure_message in final["blend"]["error"]
    else:
        assert final["blend"]["error"] == error and final["blend"]["program_id"] is None and not blends


# --------------------------------------------------------------------------------------------
# 6. fixed-suite mode
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def suite_tasks(tmp_path_factory) -> SearchTasks:
    directory = tmp_path_factory.mktemp("suite")
    return SearchTasks.from_config(Config.load(write_tiny_config(directory)), progress=False)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 1000), st.integers(1, 5))
def test_a_fixed_suite_confirms_on_shifted_training_seeds(suite_tasks, index, round):
    base = suite_tasks.lab_for(index, 0)
    assert base is suite_tasks.suite_lab and suite_tasks.mode == "suite"
    lab = suite_tasks.lab_for(index, round)
    assert lab.suite.seeds == tuple(s + SEED_SHIFT * round for s in base.suite.seeds)
    assert lab.suite.tasks == base.suite.tasks and lab.protocol == base.protocol
    assert lab.suite.seeds == suite_tasks.lab_for(index + 1, round).suite.seeds  # the index plays no part
    assert suite_tasks.validation is not None and suite_tasks.tests == {}


def test_the_bounded_objective_ranks_many_small_gains_above_one_huge_one(config, tasks, tmp_path):
    """`tasks.objective: bounded`: each task's score is clipped to ±1 before the mean, so a program
    that extrapolates one target far better and the rest a little worse ranks below one that is a
    little better on every target, though the plain mean would prefer the first."""
    with _search_under("bounded", config, tasks, tmp_path) as (search, database, run_id, lab):
        n = len(lab.suite.tasks)
        specialist = [2.9] + [-0.3] * (n - 1)
        generalist = [0.1] * n
        assert np.mean(specialist) > np.mean(generalist)  # the mean would prefer the specialist
        stored = _record_all(search, database, run_id, lab, [specialist, generalist])
        for record, scores in zip(stored, (specialist, generalist)):
            expected = bounded_estimate(scores)
            assert (record.fitness, record.fitness_se) == (pytest.approx(expected.mean), pytest.approx(expected.se))
            assert record.score == pytest.approx(expected.lcb(1.0))
            assert record.ood_log_ratio == pytest.approx(-np.mean(scores))  # the plain mean is still recorded
        assert stored[0].fitness < stored[1].fitness


# --------------------------------------------------------------------------------------------
# 5. GELU's cached scores as a control variate (tasks.control_beta)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def controlled(config) -> SearchTasks:
    """The same split with the default control variate on (the pools come from the module's cache)."""
    return SearchTasks.from_config(config.with_overrides({"tasks.control_beta": 0.5}), progress=False)


def test_the_control_offsets_are_gelus_own_scores_centred_on_each_pool(controlled, suite_tasks):
    """Each offset is GELU's score on the task, as GELU really trains there, less GELU's mean over the
    task's pool; over each pool the offsets sum to 0, so subtracting them keeps any estimate's
    expectation. A fixed suite or a beta of 0 has none."""
    distribution = controlled.split.search
    assert set(controlled.control) == {t.name for t in distribution.tasks}
    for pool in distribution.pools:
        assert abs(sum(controlled.control[t.name] for t in pool.tasks)) < 1e-9
    lab = controlled.lab_for(0, 0)
    trained = lab.score(train_ensemble(REFERENCES["gelu"], lab.workload))[1]  # GELU trained now, not read
    scores = {t.name: -t.log_ratio for t in trained}
    for pool in distribution.pools:
        here = [t.name for t in pool.tasks if t.name in scores]
        if len(here) < 2:
            continue
        # the difference of two offsets of one pool is the difference of GELU's trained scores
        a, b = here[:2]
        expected = scores[a] - scores[b]
        assert controlled.control[a] - controlled.control[b] == pytest.approx(expected, abs=1e-4)
    assert controlled.describe()["control"] == {"reference": "gelu", "beta": 0.5}
    assert suite_tasks.control == {} and "control" not in suite_tasks.describe()
    assert (
        SearchTasks.from_config(controlled.config.with_overrides({"tasks.control_beta": 0}), progress=False).control
        == {}
    )


@settings(max_examples=15, deadline=None)
@given(st.sampled_from([0.0, 0.5, 1.0]), st.lists(st.floats(-2, 2, allow_nan=False), min_size=4, max_size=4))
def test_a_programs_fitness_is_its_task_scores_less_beta_times_gelus_offsets(
    config, controlled, tmp_path_factory, beta, fitnesses
):
    """The recorded fitness and its standard error are those of the adjusted task scores; the plain
    mean log-ratio is still recorded as `ood_log_ratio`."""
    search = Search(config.with_overrides({"tasks.control_beta": beta}), tmp_path_factory.mktemp("run"), live=False)
    search.tasks = controlled
    database, run_id = search._open()
    try:
        lab = controlled.lab_for(0, 0)
        record = search._record(database, run_id, pending(0), scored(lab, fitnesses, "fp-0"), SearchState(budget=2))
        adjusted = [f - beta * controlled.control[t.name] for t, f in zip(lab.suite.tasks, fitnesses)]
        expected = Estimate.of(adjusted)
        stored = database.get(record.id)
        assert (stored.fitness, stored.fitness_se) == (pytest.approx(expected.mean), pytest.approx(expected.se))
        assert stored.ood_log_ratio == pytest.approx(-np.mean(fitnesses))
    finally:
        database.close()


def test_with_beta_1_gelu_scores_its_distribution_mean_on_every_sample(config, controlled, tmp_path):
    """At beta = 1 a program that scores exactly as GELU does on every task (GELU itself) has the same
    fitness on any sample: the pools' GELU means at the sample's shares. The tasks' spread that GELU's
    scores explain is gone from the estimate."""
    search = Search(config.with_overrides({"tasks.control_beta": 1.0}), tmp_path / "run", live=False)
    search.tasks = controlled
    database, run_id = search._open()
    try:
        distribution, state = controlled.split.search, SearchState(budget=10)
        lab = distribution.lab(**config.lab_options())
        gelu = {t.name: -t.log_ratio for t in lab.score(distribution.reference_result(distribution.tasks, "gelu"))[1]}
        samples = {tuple(_names(controlled.lab_for(i, 0))): i for i in range(20)}  # distinct samples
        assert len(samples) >= 3
        fitness, plain = [], []
        for index in list(samples.values())[:3]:
            sample = controlled.lab_for(index, 0)
            evaluation = scored(sample, [gelu[t.name] for t in sample.suite.tasks], f"fp-{index}")
            fitness.append(database.get(search._record(database, run_id, pending(index), evaluation, state).id).fitness)
            plain.append(np.mean([gelu[t.name] for t in sample.suite.tasks]))
        assert max(fitness) - min(fitness) < 1e-9
        pools = {t.name: pool for pool in distribution.pools for t in pool.tasks}
        shares = [pools[t.name] for t in controlled.lab_for(0, 0).suite.tasks]
        expected = np.mean([np.mean([gelu[t.name] for t in pool.tasks]) for pool in shares])
        assert fitness[0] == pytest.approx(expected)
        assert max(plain) - min(plain) > 1e-3  # without the control the samples' means differ
    finally:
        database.close()
