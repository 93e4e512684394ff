"""Tests of actmine.lab.pools: the learnability filter, reproducible pools and their reference cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from actmine.lab import pools as pools_module
from actmine.lab.ensemble import TrainingProtocol
from actmine.lab.pools import LEARNABLE_ID_ERROR, Pool, PoolError, is_learnable, measure
from actmine.lab.tasks import build_task, formula

# Small enough to train in a fraction of a second; the filter's rule is the same as the lab's.
PROTOCOL = TrainingProtocol(steps=30, n_train=256, n_eval=128)
SMALL = {"dims": [1, 2], "depth": 1, "n_terms": [1, 2]}


@pytest.fixture()
def trainings(monkeypatch):
    """Counts the batched trainings the pools module runs."""
    calls = []
    real = pools_module.train_ensemble

    def counting(activation, workload, *args, **kwargs):
        calls.append(workload.models)
        return real(activation, workload, *args, **kwargs)

    monkeypatch.setattr(pools_module, "train_ensemble", counting)
    return calls


def _pool(cache_dir, size=3, start=0, **options):
    options.setdefault("seeds", (0, 1))
    return Pool(
        "expression",
        SMALL,
        size=size,
        start=start,
        protocol=PROTOCOL,
        cache_dir=cache_dir,
        chunk_size=4,
        progress=False,
        **options,
    )


def test_the_filter_keeps_a_learnable_task_and_drops_a_high_frequency_one(trainings):
    line = formula("0.5*x + 1", id={"x": [0, 1]}, ood={"x": [1, 2]}, name="line")
    noise = formula("sin(2*pi*15*x)", id={"x": [0, 1]}, ood={"x": [1, 2]}, name="fifteen-periods")
    kept, dropped = measure([line, noise], seeds=(0, 1), protocol=PROTOCOL, indexes=[10, 11])
    assert (kept.status, kept.index, dropped.status, dropped.index) == ("kept", 10, "unlearnable", 11)
    assert trainings == [4, 4]  # one batched training per reference activation, both tasks × both seeds
    assert kept.reference.worst_id_error() < LEARNABLE_ID_ERROR <= dropped.reference.worst_id_error()
    for reference in (kept.reference, dropped.reference):
        assert set(reference.id_error) == set(reference.ood_error) == {"relu", "gelu"}
        assert all(len(v) == 2 for v in reference.ood_error.values())
    assert is_learnable(dropped.reference, threshold=1.5) and not is_learnable(kept.reference, threshold=1e-9)


def test_a_target_the_lab_cannot_draw_data_for_is_rejected_not_trained(trainings):
    flat = formula("0*x + 3", id={"x": [0, 1]}, ood={"x": [1, 2]}, name="flat")
    (draw,) = measure([flat], seeds=(0,), protocol=PROTOCOL)
    assert draw.status == "data_failed" and "constant" in draw.message and trainings == []


def test_a_pool_is_the_first_learnable_draws_and_every_kept_task_is_learnable(tmp_path):
    pool = _pool(tmp_path, size=4)
    assert len(pool.tasks) == 4 and list(pool.indexes) == sorted(pool.indexes)
    assert [t.spec["index"] for t in pool.tasks] == list(pool.indexes)
    looked = [d.index for d in pool.draws]
    assert looked == list(range(looked[-1] + 1)) and looked[-1] == pool.indexes[-1]  # none skipped, none extra
    for task in pool.tasks:
        reference = pool.reference(task)
        assert reference.index == task.spec["index"] and reference.seeds == (0, 1)
        assert reference.worst_id_error() < LEARNABLE_ID_ERROR
    for draw in pool.draws:
        assert (draw.status == "kept") == (draw.index in pool.indexes)
    assert pool.learnable_fraction == len(pool.tasks) / len(pool.draws)
    # starting later gives the same draws from there on
    later = _pool(tmp_path, size=2, start=pool.indexes[1])
    assert [t.name for t in later.tasks] == [t.name for t in pool.tasks[1:3]]


def test_pools_are_reproducible_and_a_second_build_trains_nothing(tmp_path, trainings):
    first = _pool(tmp_path / "a")
    assert first.trainings >= 1 and len(trainings) == 2 * first.trainings
    trainings.clear()
    again = _pool(tmp_path / "a")
    assert trainings == [] and again.trainings == 0
    elsewhere = _pool(tmp_path / "b")  # recomputed from scratch in another cache
    assert len(trainings) == 2 * elsewhere.trainings >= 2
    for pool in (again, elsewhere):
        assert [t.name for t in pool.tasks] == [t.name for t in first.tasks]
        assert [t.description for t in pool.tasks] == [t.description for t in first.tasks]
        for task in first.tasks:
            for activation in ("relu", "gelu"):
                np.testing.assert_allclose(
                    pool.reference(task.name).ood_error[activation],
                    first.reference(task).ood_error[activation],
                    rtol=1e-6,
                )


def test_a_bigger_pool_reuses_the_cached_draws_of_a_smaller_one(tmp_path, trainings):
    small = _pool(tmp_path, size=2)
    cached = set(json.loads(small.cache_path.read_text())["draws"])
    trainings.clear()
    bigger = _pool(tmp_path, size=5)
    assert [t.name for t in bigger.tasks[:2]] == [t.name for t in small.tasks]
    added = set(json.loads(bigger.cache_path.read_text())["draws"]) - cached
    trained = sum(trainings) // 2 // 2  # models of both activations ÷ 2 ÷ 2 seeds = tasks trained now
    assert trained == len(added) and all(int(i) > max(small.indexes) for i in added)


def test_the_cache_key_separates_protocols_seeds_and_params(tmp_path):
    base = _pool(tmp_path, size=1)
    assert _pool(tmp_path, size=1, seeds=(0,)).cache_path != base.cache_path
    other_protocol = Pool(
        "expression",
        SMALL,
        size=1,
        protocol=TrainingProtocol(steps=31, n_train=256, n_eval=128),
        cache_dir=tmp_path,
        progress=False,
        seeds=(0, 1),
        chunk_size=2,
    )
    other_params = Pool(
        "expression",
        {**SMALL, "seed": 1},
        size=1,
        protocol=PROTOCOL,
        cache_dir=tmp_path,
        progress=False,
        seeds=(0, 1),
        chunk_size=2,
    )
    assert len({base.cache_path, other_protocol.cache_path, other_params.cache_path}) == 3
    assert base.cache_path.parent == tmp_path and base.cache_path.name.startswith("pool-expression-")


def test_a_stricter_threshold_reuses_the_cache(tmp_path, trainings):
    loose = _pool(tmp_path, size=3)
    trainings.clear()
    best = min(loose.tasks, key=lambda t: loose.reference(t).worst_id_error())
    strict = _pool(tmp_path, size=1, threshold=loose.reference(best).worst_id_error() * 1.0001)
    # the filter is applied to the cached numbers: the strict pool is found among the cached draws
    assert trainings == [] and strict.trainings == 0
    assert [t.name for t in strict.tasks] == [best.name]


def test_a_damaged_cache_is_recomputed(tmp_path, trainings):
    pool = _pool(tmp_path, size=2)
    pool.cache_path.write_text("{not json")
    trainings.clear()
    again = _pool(tmp_path, size=2)
    assert again.trainings >= 1 and [t.name for t in again.tasks] == [t.name for t in pool.tasks]
    assert set(json.loads(pool.cache_path.read_text())["draws"]) >= {str(i) for i in again.indexes}


def test_sampling_is_deterministic_distinct_and_from_the_pool(tmp_path):
    pool = _pool(tmp_path, size=5)
    sample = pool.sample(np.random.default_rng(3), 3)
    assert [t.name for t in sample] == [t.name for t in pool.sample(3, 3)]
    assert len({t.name for t in sample}) == 3 and {t.name for t in sample} <= {t.name for t in pool.tasks}
    with pytest.raises(PoolError, match="sample size"):
        pool.sample(0, 6)
    with pytest.raises(KeyError, match="not in pool"):
        pool.reference("expression-99999")


def test_a_lab_over_pool_tasks_scores_against_the_cached_relu_without_training_it(tmp_path, trainings):
    pool = _pool(tmp_path, size=4)
    tasks = pool.sample(1, 3)
    lab = pool.lab(tasks, screen_max_id_error=None)
    trainings.clear()
    evaluation = lab.evaluate(torch.relu, name="relu")
    assert evaluation.ok and trainings == []  # pools_module trained nothing: ReLU came from the cache
    assert [t.name for t in evaluation.tasks] == [t.name for t in tasks]
    assert all(abs(t.log_ratio) < 1e-4 for t in evaluation.tasks)  # ReLU against its cached self


def test_a_pool_that_cannot_be_filled_says_why(tmp_path):
    with pytest.raises(PoolError, match=r"only \d+ learnable draws in indexes 0\.\.1 .*raise max_draws"):
        _pool(tmp_path, size=5, max_draws=2)


@pytest.mark.parametrize(
    "bad, match",
    [({"size": 0}, "size"), ({"start": -1}, "start"), ({"seeds": ()}, "seeds"), ({"threshold": 0}, "threshold")],
)
def test_bad_pool_options_are_refused(tmp_path, bad, match):
    with pytest.raises(PoolError, match=match):
        _pool(tmp_path, **bad)


@pytest.mark.parametrize("generator, params", [("polynomial", {"dim": [1, 2]}), ("harmonic", {}), ("feynman", {})])
def test_the_other_generators_make_pools_too(tmp_path, generator, params):
    pool = Pool(
        generator, params, size=2, protocol=PROTOCOL, seeds=(0,), cache_dir=tmp_path, chunk_size=3, progress=False
    )
    assert len(pool.tasks) == 2 and {t.family for t in pool.tasks} == {pool.generator.family}
    for task in pool.tasks:
        assert build_task(task.to_dict()).name == task.name
        assert pool.reference(task).worst_id_error() < LEARNABLE_ID_ERROR
