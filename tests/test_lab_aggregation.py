"""The lab's score aggregated from known errors, checked against the formulas written out in numpy.

No model is trained here: a `Lab` is given a ReLU reference (`use_reference`) and a candidate's
`TrainResult` built from chosen per-(task, seed) OOD and ID errors, on a suite with several tasks per
family and seeds that disagree, so that every aggregation rule of fitness.py's docstring matters:

- per seed, the log-ratio ln(max(error, 1e-8) ÷ max(ReLU's error, 1e-8)), unclipped;
- per task, the mean of its seeds' log-ratios, then clipped to ±`log_ratio_clip` (the mean is
  clipped, not each seed), and the geometric mean over seeds of its OOD and ID errors;
- `ood_log_ratio`, the mean over tasks; per family, the geometric mean of its tasks' errors and the
  arithmetic mean of its tasks' log-ratios (`Evaluation.by_family`).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from actmine.lab.ensemble import TrainResult
from actmine.lab.fitness import ERROR_FLOOR, Evaluation, Lab, geometric_mean
from actmine.lab.tasks import Suite, formula, harmonic, polynomial

FLOOR = 1e-8  # the documented error floor, written out (not imported) so that a changed constant shows
SEEDS = (0, 1, 2)


def _suite() -> Suite:
    """Three polynomial tasks, two harmonic, one formula, three seeds: 18 models, task-major."""
    tasks = (
        polynomial(dim=1, seed=0),
        polynomial(dim=1, seed=1),
        polynomial(dim=2, seed=2),
        harmonic(seed=0),
        harmonic(seed=1),
        formula("x**2 + x", id={"x": [0, 1]}, ood={"x": [1, 2]}, name="square"),
    )
    return Suite("aggregation", tasks, SEEDS)


SUITE = _suite()
TASKS, MODELS = len(SUITE.tasks), len(SUITE.tasks) * len(SEEDS)
FAMILY_OF_TASK = [task.family for task in SUITE.tasks]


def _lab(relu_ood, clip: float = 3.0, relu_id=None) -> Lab:
    """A lab on SUITE scoring against the given ReLU OOD errors (one per model, task-major)."""
    lab = Lab(SUITE, log_ratio_clip=clip, cache_dir="/nonexistent-never-written")
    relu_ood = torch.as_tensor(np.asarray(relu_ood, dtype=float))
    relu_id = torch.full_like(relu_ood, 0.01) if relu_id is None else torch.as_tensor(np.asarray(relu_id, dtype=float))
    lab.use_reference(TrainResult(torch.zeros(1, MODELS), relu_id, relu_ood, []))
    return lab


def _result(ood, id_=None) -> TrainResult:
    ood = torch.as_tensor(np.asarray(ood, dtype=float))
    id_error = torch.full_like(ood, 0.02) if id_ is None else torch.as_tensor(np.asarray(id_, dtype=float))
    return TrainResult(torch.zeros(1, MODELS), id_error, ood, [])


# --------------------------------------------------------------------------------------------
# The reference computation: fitness.py's docstrings, in numpy
# --------------------------------------------------------------------------------------------


def _expected(candidate_ood, candidate_id, relu_ood, clip):
    """(ood_log_ratio, per-task log-ratios, per-task OOD errors, per-task ID errors, per-seed log-ratios)."""

    def log_floored(values):
        return np.log(np.maximum(np.asarray(values, dtype=float), FLOOR)).reshape(TASKS, len(SEEDS))

    per_seed = log_floored(candidate_ood) - log_floored(relu_ood)
    per_task = np.clip(per_seed.mean(axis=1), -clip, clip)
    return (
        per_task.mean(),
        per_task,
        np.exp(log_floored(candidate_ood).mean(axis=1)),
        np.exp(log_floored(candidate_id).mean(axis=1)),
        per_seed,
    )


def _expected_families(task_ood, task_id, task_log_ratio):
    families = {}
    for family in sorted(set(FAMILY_OF_TASK)):
        rows = [i for i, f in enumerate(FAMILY_OF_TASK) if f == family]
        families[family] = {
            "ood_error": float(np.exp(np.mean(np.log(np.maximum(task_ood[rows], FLOOR))))),
            "id_error": float(np.exp(np.mean(np.log(np.maximum(task_id[rows], FLOOR))))),
            "log_ratio": float(np.mean(task_log_ratio[rows])),
        }
    return families


# errors from far below the floor to far above ReLU's, and exact zeros (a perfect fit)
ERROR = st.one_of(st.just(0.0), st.floats(min_value=-30.0, max_value=8.0).map(math.exp))
ERRORS = st.lists(ERROR, min_size=MODELS, max_size=MODELS)


@given(ERRORS, ERRORS, ERRORS, st.sampled_from([0.25, 1.0, 3.0, 50.0]))
@settings(max_examples=60, deadline=None)
def test_score_follows_the_documented_aggregation(candidate_ood, candidate_id, relu_ood, clip):
    lab = _lab(relu_ood, clip=clip)
    ratio, tasks = lab.score(_result(candidate_ood, candidate_id))
    mean, per_task, ood, id_, per_seed = _expected(candidate_ood, candidate_id, relu_ood, clip)
    assert [t.name for t in tasks] == [t.name for t in SUITE.tasks]
    assert [t.family for t in tasks] == FAMILY_OF_TASK
    assert [t.log_ratio for t in tasks] == pytest.approx(list(per_task), abs=1e-9)
    assert ratio == pytest.approx(mean, abs=1e-9)
    assert [t.ood_error for t in tasks] == pytest.approx(list(ood), rel=1e-9)
    assert [t.id_error for t in tasks] == pytest.approx(list(id_), rel=1e-9)
    for task, seeds in zip(tasks, per_seed):  # kept per seed and unclipped
        assert task.seed_log_ratios == pytest.approx(list(seeds), abs=1e-9)
    assert all(-clip <= t.log_ratio <= clip for t in tasks)

    evaluation = Evaluation("candidate", ok=True, fitness=-ratio, ood_log_ratio=ratio, tasks=tasks)
    families = evaluation.by_family()
    expected = _expected_families(ood, id_, per_task)
    assert list(families) == list(expected)
    for family, values in expected.items():
        assert families[family] == pytest.approx(values, rel=1e-9, abs=1e-12), family
    assert evaluation.family_log_ratios() == pytest.approx({f: v["log_ratio"] for f, v in expected.items()})


# --------------------------------------------------------------------------------------------
# The same rules on hand-made numbers, where two plausible rules disagree
# --------------------------------------------------------------------------------------------


def _per_seed_ratios(log_ratios_by_task) -> tuple[np.ndarray, np.ndarray]:
    """ReLU errors of 1e-2 everywhere and candidate errors with the given per-seed log-ratios."""
    relu = np.full(MODELS, 1e-2)
    return relu, relu * np.exp(np.asarray(log_ratios_by_task, dtype=float).reshape(MODELS))


def test_the_clip_applies_to_each_tasks_mean_not_to_each_seed():
    # task 0: seeds 5, −3, 1 → mean 1 (inside ±3); clipping each seed first would give 1/3.
    # task 1: seeds 4, 4, −4 → mean 4/3; per seed clipping: 2/3. task 2: 9, 9, 9 → mean 9 → 3.
    rows = [[5, -3, 1], [4, 4, -4], [9, 9, 9], [0, 0, 0], [-7, -7, -1], [0.5, 0.25, 0.0]]
    relu, candidate = _per_seed_ratios(rows)
    ratio, tasks = _lab(relu).score(_result(candidate))
    expected = [1.0, 4 / 3, 3.0, 0.0, -3.0, 0.25]
    assert [t.log_ratio for t in tasks] == pytest.approx(expected, abs=1e-9)
    assert ratio == pytest.approx(sum(expected) / 6, abs=1e-9)
    assert tasks[0].seed_log_ratios == pytest.approx((5, -3, 1), abs=1e-9)  # unclipped per seed


@pytest.mark.parametrize("clip", [0.5, 1.0, 3.0])
def test_the_clip_bound_is_symmetric_and_the_labs_own(clip):
    """A task mean just inside, exactly at and beyond ±clip."""
    means = [clip - 0.01, clip, clip + 2.0, -(clip - 0.01), -clip, -(clip + 2.0)]
    relu, candidate = _per_seed_ratios([[m] * len(SEEDS) for m in means])
    _, tasks = _lab(relu, clip=clip).score(_result(candidate))
    assert [t.log_ratio for t in tasks] == pytest.approx(
        [clip - 0.01, clip, clip, -(clip - 0.01), -clip, -clip], abs=1e-9
    )


def test_the_default_clip_is_three():
    assert Lab(SUITE, cache_dir="/nonexistent-never-written").log_ratio_clip == 3.0


def test_a_task_exploding_on_one_seed_only_is_its_mean_then_clipped():
    """Mixed seeds on the exploding task: the mean of ln(1e6), 0, 0 is ln(1e6)/3 ≈ 4.6 → 3."""
    rows = [[math.log(1e6), 0, 0]] + [[math.log(1.2)] * 3] * 5
    relu, candidate = _per_seed_ratios(rows)
    ratio, tasks = _lab(relu).score(_result(candidate))
    assert tasks[0].log_ratio == pytest.approx(3.0)
    assert ratio == pytest.approx((3.0 + 5 * math.log(1.2)) / 6)


def test_a_family_error_is_the_geometric_mean_of_its_task_errors():
    # polynomial tasks at 1e-2, 1 and 1e2 (each the same on every seed): geometric mean 1, not 33.67
    ood = np.repeat([1e-2, 1.0, 1e2, 0.5, 0.02, 0.3], len(SEEDS))
    id_ = np.repeat([1e-4, 1e-2, 1.0, 0.1, 0.4, 0.3], len(SEEDS))
    _, tasks = _lab(np.full(MODELS, 0.1)).score(_result(ood, id_))
    families = Evaluation("c", ok=True, fitness=0.0, tasks=tasks).by_family()
    assert list(families) == ["formula", "harmonic", "polynomial"]  # sorted by name
    assert families["polynomial"]["ood_error"] == pytest.approx(1.0)
    assert families["polynomial"]["id_error"] == pytest.approx(1e-2)
    assert families["harmonic"]["ood_error"] == pytest.approx(0.1)  # sqrt(0.5 · 0.02)
    assert families["harmonic"]["id_error"] == pytest.approx(0.2)  # sqrt(0.1 · 0.4)
    assert families["formula"] == pytest.approx({"ood_error": 0.3, "id_error": 0.3, "log_ratio": math.log(3.0)})
    # the family log-ratio is the arithmetic mean of its tasks' (clipped) log-ratios: ln 0.1, ln 10, ln 1000 → 3
    assert families["polynomial"]["log_ratio"] == pytest.approx((math.log(0.1) + math.log(10) + 3.0) / 3)
    assert families["harmonic"]["log_ratio"] == pytest.approx((math.log(5.0) + math.log(0.2)) / 2)


def test_a_tasks_error_is_the_geometric_mean_over_its_seeds():
    ood = np.full(MODELS, 0.5)
    ood[:3] = [1e-3, 1e-1, 10.0]  # task 0: geometric 1e-1, arithmetic 3.37
    id_ = np.full(MODELS, 0.5)
    id_[3:6] = [0.04, 1.0, 0.25]  # task 1: geometric 0.2154…
    _, tasks = _lab(np.full(MODELS, 0.5)).score(_result(ood, id_))
    assert tasks[0].ood_error == pytest.approx(0.1)
    assert tasks[1].id_error == pytest.approx(0.01 ** (1 / 3))
    assert tasks[0].log_ratio == pytest.approx(math.log(0.1 / 0.5))


# --------------------------------------------------------------------------------------------
# The error floor
# --------------------------------------------------------------------------------------------


def test_the_error_floor_is_1e_8_on_both_sides_of_the_ratio():
    assert ERROR_FLOOR == FLOOR
    relu = np.full(MODELS, 1e-6)
    relu[3:6] = 0.0  # ReLU perfect on task 1: its error counts as 1e-8
    candidate = np.full(MODELS, 1e-6)
    candidate[:3] = 0.0  # a perfect candidate on task 0: ln(1e-8 / 1e-6)
    candidate[3:6] = 1e-6  # ln(1e-6 / 1e-8) = ln 100
    candidate[6:9] = 1e-9  # below the floor: as 1e-8
    candidate[9:12] = 2e-8  # above it: as itself
    ratio, tasks = _lab(relu, clip=50.0).score(_result(candidate, np.zeros(MODELS)))
    assert tasks[0].log_ratio == pytest.approx(math.log(1e-2))
    assert tasks[1].log_ratio == pytest.approx(math.log(100.0))
    assert tasks[2].log_ratio == pytest.approx(math.log(1e-2))
    assert tasks[3].log_ratio == pytest.approx(math.log(2e-2))
    assert tasks[0].ood_error == pytest.approx(FLOOR) and tasks[2].ood_error == pytest.approx(FLOOR)
    assert tasks[3].ood_error == pytest.approx(2e-8)
    assert all(t.id_error == pytest.approx(FLOOR) for t in tasks)
    assert math.isfinite(ratio)


def test_a_perfect_candidate_against_a_perfect_reference_is_a_tie():
    ratio, tasks = _lab(np.zeros(MODELS)).score(_result(np.zeros(MODELS)))
    assert ratio == 0.0 and all(t.log_ratio == 0.0 for t in tasks)


def test_relu_against_itself_scores_exactly_zero():
    relu = np.exp(np.linspace(-20, 3, MODELS))
    ratio, tasks = _lab(relu).score(_result(relu))
    assert ratio == 0.0 and all(t.seed_log_ratios == (0.0,) * 3 for t in tasks)


@given(st.lists(ERROR, min_size=1, max_size=8))
def test_geometric_mean_floors_each_value(values):
    expected = math.exp(sum(math.log(max(v, FLOOR)) for v in values) / len(values))
    assert geometric_mean(values) == pytest.approx(expected, rel=1e-12)
    assert min(max(v, FLOOR) for v in values) * (1 - 1e-12) <= geometric_mean(values)
    assert geometric_mean(values) <= max(max(v, FLOOR) for v in values) * (1 + 1e-12)


def test_geometric_mean_of_known_values():
    assert geometric_mean([4.0, 9.0]) == pytest.approx(6.0)
    assert geometric_mean([0.0, 1e-4]) == pytest.approx(math.sqrt(1e-8 * 1e-4))
    assert geometric_mean([2.5]) == pytest.approx(2.5)


# --------------------------------------------------------------------------------------------
# The reference a lab scores against
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(MODELS - 1,), (MODELS + 1,), (MODELS, 1), (len(SEEDS),)])
def test_a_reference_of_the_wrong_size_is_refused(shape):
    lab = Lab(SUITE, cache_dir="/nonexistent-never-written")
    wrong = TrainResult(torch.zeros(1), torch.ones(shape), torch.ones(shape), [])
    with pytest.raises(ValueError, match=f"the workload {MODELS} models"):
        lab.use_reference(wrong)


def test_a_reference_follows_the_seeds_the_lab_was_given():
    lab = Lab(SUITE, seeds=2, cache_dir="/nonexistent-never-written")
    assert lab.suite.seeds == (0, 1)
    lab.use_reference(TrainResult(torch.zeros(1), torch.ones(TASKS * 2), torch.ones(TASKS * 2), []))
    ratio, tasks = lab.score(TrainResult(torch.zeros(1), torch.ones(TASKS * 2), torch.full((TASKS * 2,), math.e), []))
    assert ratio == pytest.approx(1.0) and all(len(t.seed_log_ratios) == 2 for t in tasks)


def test_log_ratios_are_per_model_and_unclipped():
    relu = np.full(MODELS, 0.1)
    candidate = relu * np.exp(np.linspace(-10, 10, MODELS))
    per_model = _lab(relu).log_ratios(torch.as_tensor(candidate))
    assert per_model.dtype == torch.float64
    np.testing.assert_allclose(per_model.numpy(), np.linspace(-10, 10, MODELS), atol=1e-9)
