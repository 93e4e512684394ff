"""Tests of actmine.lab.distribution: pool specs, task distributions (shares, stratified samples,
labs against the cached ReLU numbers) and the three-way split (no validation or test draw can be a
search draw).

Pools train tiny MLPs, so the pools here are small (2 to 6 tasks) under a cheap protocol, built once
per module into the session's temporary cache (tests/conftest.py sets ACTMINE_CACHE_DIR). The share
and sampling arithmetic is tested on stand-in pools that train nothing."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from actmine.lab.distribution import VALIDATION_START, PoolSpec, Split, SplitSpec, TaskDistribution, check_split
from actmine.lab.ensemble import TrainingProtocol
from actmine.lab.pools import Pool, PoolError

# Cheap enough to build a pool in well under a second, and most draws still pass the filter.
PROTOCOL = TrainingProtocol(steps=30, n_train=256, n_eval=128, hidden=16)
SEEDS = (0, 1)
LINES = {"dim": [1, 1], "degree": [1, 2]}  # low-degree polynomials in one variable: all learnable
SEARCH = (PoolSpec("polynomial", LINES, size=6, seeds=SEEDS), PoolSpec("harmonic", {}, size=3, seeds=SEEDS))
VALIDATION = (PoolSpec("polynomial", LINES, size=3, start=VALIDATION_START, seeds=SEEDS),)
TEST = (("wide", (PoolSpec("polynomial", {"dim": [1, 2]}, size=2, seeds=SEEDS),)),)


@pytest.fixture(scope="module")
def split() -> Split:
    return Split.build(SplitSpec(SEARCH, VALIDATION, TEST), PROTOCOL, progress=False)


def _stand_in(tag: str, size: int, seeds: tuple[int, ...] = (0,)) -> SimpleNamespace:
    """A pool's interface as TaskDistribution uses it (tasks, seeds, protocol, sample), no training."""
    pool = SimpleNamespace(
        seeds=seeds, protocol=PROTOCOL, tasks=tuple(SimpleNamespace(name=f"{tag}-{i}") for i in range(size))
    )
    pool.sample = lambda rng, k: Pool.sample(pool, rng, k)
    return pool


def _stand_in_distribution(sizes: list[int]) -> TaskDistribution:
    return TaskDistribution("stand-in", [_stand_in(f"p{i}", n) for i, n in enumerate(sizes)])


def _names(tasks) -> list[str]:
    return [t.name for t in tasks]


# --------------------------------------------------------------------------------------------
# PoolSpec
# --------------------------------------------------------------------------------------------


def test_a_pool_spec_round_trips_and_defaults():
    spec = PoolSpec.from_dict(
        {"generator": "polynomial", "params": {"dim": [1, 2]}, "size": 5, "start": 7, "seeds": [0, 3]}
    )
    assert spec == PoolSpec("polynomial", {"dim": [1, 2]}, 5, 7, (0, 3))
    assert PoolSpec.from_dict(spec.to_dict()) == spec
    assert PoolSpec.from_dict({"generator": "harmonic"}) == PoolSpec("harmonic", {}, 100, 0, (0,))
    assert PoolSpec.from_dict({"generator": "harmonic", "params": None}).params == {}
    weighted = PoolSpec.from_dict({"generator": "harmonic", "weight": 2.5})
    assert weighted.weight == 2.5 and PoolSpec.from_dict(weighted.to_dict()) == weighted
    assert "weight" not in spec.to_dict()  # the default (None: weigh by size) is not written out


@pytest.mark.parametrize(
    "data, field",
    [
        ({"generator": "harmonic", "sise": 3}, "'sise'"),
        ({"generator": "harmonic", "size": 0}, "'size'"),
        ({"generator": "harmonic", "size": 2.0}, "'size'"),
        ({"generator": "harmonic", "size": True}, "'size'"),
        ({"generator": "harmonic", "start": -1}, "'start'"),
        ({"generator": "harmonic", "start": "0"}, "'start'"),
        ({"generator": "harmonic", "seeds": []}, "'seeds'"),
        ({"generator": "harmonic", "seeds": ["0"]}, "'seeds'"),
        ({"generator": "harmonic", "seeds": [True]}, "'seeds'"),
        ({"generator": "harmonic", "weight": 0}, "'weight'"),
        ({"generator": "harmonic", "weight": -1.5}, "'weight'"),
        ({"generator": "harmonic", "weight": "1"}, "'weight'"),
        ({"generator": "harmonic", "weight": True}, "'weight'"),
        ({"generator": "harmonic", "weight": float("inf")}, "'weight'"),
        ({"generator": "harmonic", "params": {"cylces": [0.3, 1.0]}}, "'cylces'"),
        ({"generator": "harmonic", "params": {"cycles": "many"}}, "'cycles'"),
        ({"generator": "harmonc"}, "'harmonc'"),
        ({"size": 3}, "'generator'"),
        (["harmonic"], "'generator'"),
    ],
)
def test_pool_spec_errors_name_the_field_and_where_it_is(data, field):
    with pytest.raises(PoolError, match=field) as raised:
        PoolSpec.from_dict(data, "config key 'tasks.search[2]'")
    assert str(raised.value).startswith("config key 'tasks.search[2]'")


@pytest.mark.parametrize(
    "data, field",
    [
        ({"generator": "harmonic", "seeds": 3}, "'seeds'"),  # a number where a list belongs
        ({"generator": "harmonic", "seeds": None}, "'seeds'"),
        ({"generator": "harmonic", "params": [1, 2]}, "'params'"),  # a list where a mapping belongs
        ({"generator": "harmonic", "params": "dim"}, "'params'"),
    ],
)
def test_pool_spec_fields_of_the_wrong_shape_are_pool_errors_that_name_the_field(data, field):
    """A config mistake must come back as the config error naming the key, not as a TypeError."""
    with pytest.raises(PoolError, match=field):
        PoolSpec.from_dict(data, "config key 'tasks.search[0]'")


@pytest.mark.parametrize("data", [["harmonic"], {"size": 3}, "harmonic"])
def test_a_pool_that_is_not_a_mapping_with_a_generator_is_quoted_in_the_error(data):
    with pytest.raises(PoolError) as raised:
        PoolSpec.from_dict(data)
    assert f"got {data!r}" in str(raised.value)


def test_identity_is_the_generator_with_canonical_parameters():
    explicit = PoolSpec("harmonic", {"cycles": [0.3, 1.4]})  # the default value, written out
    assert explicit.identity() == PoolSpec("harmonic", {}).identity()
    assert PoolSpec("harmonic", {"cycles": [0.3, 1.0]}).identity() != PoolSpec("harmonic", {}).identity()
    assert PoolSpec("polynomial", {}).identity()[0] == "polynomial"
    assert PoolSpec("harmonic", {}, size=5, start=9, seeds=(1,)).identity() == PoolSpec("harmonic", {}).identity()


def test_the_index_range_is_every_index_the_built_pool_may_look_at():
    spec = SEARCH[0]
    pool = spec.build(PROTOCOL, progress=False)  # from the module's cache when `split` ran first
    assert spec.index_range() == range(spec.start, spec.start + pool.max_draws)
    assert all(index in spec.index_range() for index in pool.indexes)
    assert _names(pool.tasks) == _names(PoolSpec.from_dict(spec.to_dict()).build(PROTOCOL, progress=False).tasks)


# --------------------------------------------------------------------------------------------
# check_split
# --------------------------------------------------------------------------------------------


def _harmonic(size: int, start: int = 0, **params) -> PoolSpec:
    return PoolSpec("harmonic", params, size=size, start=start)


def test_a_validation_pool_over_the_search_indexes_is_refused_with_where_to_start():
    search = _harmonic(10)
    stop = search.index_range().stop
    with pytest.raises(PoolError, match=rf"validation pool harmonic .* start it at {stop} or later"):
        check_split(SplitSpec((search,), (_harmonic(5),)))
    with pytest.raises(PoolError, match="validation"):
        check_split(SplitSpec((search,), (_harmonic(5, start=stop - 1),)))
    check_split(SplitSpec((search,), (_harmonic(5, start=stop),)))  # adjacent: disjoint
    check_split(SplitSpec((search,), (_harmonic(5, start=VALIDATION_START),)))


def test_a_validation_pool_below_a_later_search_pool_is_refused_too():
    search = _harmonic(2, start=500)
    with pytest.raises(PoolError, match="overlap"):
        check_split(SplitSpec((search,), (_harmonic(21, start=0),)))  # indexes 0..519 reach into 500..
    check_split(SplitSpec((search,), (_harmonic(20, start=0),)))  # indexes 0..499 stay below


def test_a_test_pool_over_the_search_indexes_is_refused_and_named():
    search = (_harmonic(10), PoolSpec("polynomial", LINES, size=4))
    validation = (_harmonic(3, start=VALIDATION_START),)
    with pytest.raises(PoolError, match="test suite 'lines'"):
        check_split(
            SplitSpec(
                search,
                validation,
                (
                    ("fine", (_harmonic(3, start=2 * VALIDATION_START),)),
                    ("lines", (PoolSpec("polynomial", LINES, size=2, start=50),)),
                ),
            )
        )


def test_a_test_pool_over_the_validation_indexes_is_refused():
    search = (_harmonic(10),)
    validation = (_harmonic(3, start=VALIDATION_START),)
    with pytest.raises(PoolError, match="test suite 'same'.*validation pool"):
        check_split(SplitSpec(search, validation, (("same", (_harmonic(3, start=VALIDATION_START),)),)))
    with pytest.raises(PoolError, match="no pools"):
        check_split(SplitSpec((), validation, ()))


def test_the_same_generator_with_other_parameters_may_use_the_same_indexes():
    check_split(
        SplitSpec(
            (_harmonic(10),), (_harmonic(10, cycles=[0.3, 1.0]),), (("t", (PoolSpec("polynomial", {}, size=3),)),)
        )
    )
    # …but parameters written out as their defaults are the same generator
    with pytest.raises(PoolError, match="overlap"):
        check_split(SplitSpec((_harmonic(10),), (_harmonic(10, cycles=[0.3, 1.4]),)))


@given(st.integers(1, 50), st.integers(0, 3000), st.integers(1, 50), st.integers(0, 3000), st.booleans())
@settings(max_examples=80, deadline=None)
def test_check_split_refuses_exactly_the_overlapping_index_ranges(size_a, start_a, size_b, start_b, as_test):
    search, other = _harmonic(size_a, start_a), _harmonic(size_b, start_b)
    overlap = set(search.index_range()) & set(other.index_range())
    spec = SplitSpec((search,), (), (("t", (other,)),)) if as_test else SplitSpec((search,), (other,))
    if overlap:
        with pytest.raises(PoolError, match="overlap"):
            check_split(spec)
    else:
        check_split(spec)


def test_building_a_refused_split_trains_nothing(tmp_path):
    with pytest.raises(PoolError, match="overlap"):
        Split.build(
            SplitSpec((PoolSpec("polynomial", LINES, size=2),), (PoolSpec("polynomial", LINES, size=2),)),
            PROTOCOL,
            cache_dir=tmp_path,
            progress=False,
        )
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# The built split
# --------------------------------------------------------------------------------------------


def test_no_validation_or_test_task_is_a_search_task(split):
    names = split.task_names()
    assert set(names) == {"search", "validation", "test:wide"}
    assert len(names["search"]) == 9 and len(names["validation"]) == 3 and len(names["test:wide"]) == 2
    for side in ("validation", "test:wide"):
        assert names[side].isdisjoint(names["search"]), side
    assert names["validation"].isdisjoint(names["test:wide"])
    assert all(t.spec["index"] >= VALIDATION_START for t in split.validation.tasks)
    # the validation draws are the same generator and parameters as a search pool, only later indexes
    assert {(t.spec["generator"], str(t.spec["params"])) for t in split.validation.tasks} <= {
        (t.spec["generator"], str(t.spec["params"])) for t in split.search.tasks
    }


def test_a_distribution_is_its_pools_tasks_in_order(split):
    search = split.search
    assert (search.name, search.seeds, search.protocol) == ("search", SEEDS, PROTOCOL)
    assert _names(search.tasks) == [t.name for pool in search.pools for t in pool.tasks]
    assert [len(p.tasks) for p in search.pools] == [6, 3]
    described = search.describe()
    assert [(d["generator"], d["tasks"], d["start"], d["seeds"]) for d in described] == [
        ("polynomial", 6, 0, [0, 1]),
        ("harmonic", 3, 0, [0, 1]),
    ]
    assert all(0 < d["learnable"] <= 1 for d in described)


def test_samples_are_distinct_stratified_and_deterministic_for_a_seed(split):
    search = split.search
    sample = search.sample(11, 5)
    assert len(sample) == 5 and len(set(_names(sample))) == 5
    per_pool = [sum(t.name in _names(pool.tasks) for t in sample) for pool in search.pools]
    assert per_pool == search.shares(5) and sum(per_pool) == 5 and min(per_pool) >= 1
    assert _names(search.sample(11, 5)) == _names(sample)
    assert _names(search.sample(np.random.default_rng(11), 5)) == _names(sample)
    draws = {tuple(_names(search.sample(seed, 5))) for seed in range(12)}
    assert len(draws) > 1  # other seeds, other samples
    assert _names(search.sample(0, 9)) == _names(search.tasks) == _names(search.sample(0, 50))  # k ≥ size: all


@pytest.mark.parametrize("k", [0, -1, True, 2.0, "3"])
def test_a_bad_sample_size_is_refused(split, k):
    with pytest.raises(PoolError, match="sample size"):
        split.search.sample(0, k)


def test_two_builds_in_separate_caches_draw_the_same_tasks_and_samples(tmp_path):
    specs = (PoolSpec("polynomial", LINES, size=4, seeds=SEEDS), PoolSpec("harmonic", {}, size=2, seeds=SEEDS))

    def build(cache):
        return TaskDistribution("d", [spec.build(PROTOCOL, tmp_path / cache, progress=False) for spec in specs])

    first, second = build("a"), build("b")
    assert _names(first.tasks) == _names(second.tasks)
    assert [pool.trainings for pool in second.pools] != [0, 0]  # the second trained again, not a cache read
    for seed in (0, 1, 7):
        assert _names(first.sample(seed, 3)) == _names(second.sample(seed, 3))
    torch.testing.assert_close(
        first.reference_result(first.tasks).ood_error,
        second.reference_result(second.tasks).ood_error,
        rtol=1e-4,
        atol=1e-6,
    )


def test_relu_scores_zero_against_the_cached_reference(split):
    tasks = split.search.sample(3, 4)
    lab = split.search.lab(tasks, screen_max_id_error=None)
    assert lab.suite.name == "search" and lab.suite.seeds == SEEDS
    evaluation = lab.evaluate(torch.relu, name="relu")
    assert evaluation.ok and _names(evaluation.tasks) == _names(tasks)
    for score in evaluation.tasks:
        assert abs(score.log_ratio) < 1e-4
        assert len(score.seed_log_ratios) == len(SEEDS) and all(abs(v) < 1e-4 for v in score.seed_log_ratios)
    assert abs(evaluation.fitness) < 1e-4
    # a lab over the whole validation side, too
    validation = split.validation.lab(name="validation", screen_max_id_error=None).evaluate(torch.relu, name="relu")
    assert validation.ok and len(validation.tasks) == 3 and all(abs(t.log_ratio) < 1e-4 for t in validation.tasks)


def test_the_reference_result_is_each_tasks_cached_relu_numbers_task_major(split):
    search = split.search
    tasks = [search.tasks[7], search.tasks[0], search.tasks[4]]  # across pools, out of order
    result = search.reference_result(tasks)
    expected = [
        e
        for t in tasks
        for pool in search.pools
        if t.name in _names(pool.tasks)
        for e in pool.reference(t).ood_error["relu"]
    ]
    assert result.ood_error.tolist() == pytest.approx(expected)
    assert len(result.id_error) == len(tasks) * len(SEEDS)
    gelu = search.reference_result(tasks, "gelu")
    assert gelu.ood_error.tolist() != result.ood_error.tolist()


def test_a_lab_over_a_task_from_elsewhere_is_refused(split):
    with pytest.raises(PoolError, match="has no task"):
        split.search.lab([split.validation.tasks[0]])


def test_pools_with_other_seeds_or_the_same_pool_twice_are_refused(split):
    pool = split.search.pools[0]
    one_seed = PoolSpec("harmonic", {}, size=2, seeds=(0,)).build(PROTOCOL, progress=False)
    with pytest.raises(PoolError, match="same seeds"):
        TaskDistribution("mixed", [pool, one_seed])
    with pytest.raises(PoolError, match="same task"):
        TaskDistribution("twice", [pool, pool])
    again = SEARCH[0].build(PROTOCOL, progress=False)  # an equal pool built again
    with pytest.raises(PoolError, match="same task"):
        TaskDistribution("twice", [pool, again])
    with pytest.raises(PoolError, match="no pools"):
        TaskDistribution("empty", [])


# --------------------------------------------------------------------------------------------
# Shares and stratified samples (stand-in pools: arithmetic only)
# --------------------------------------------------------------------------------------------

SIZES = st.lists(st.integers(1, 60), min_size=1, max_size=6)


@given(SIZES, st.data())
@settings(max_examples=100, deadline=None)
def test_shares_sum_to_k_and_are_proportional_to_pool_sizes(sizes, data):
    distribution = _stand_in_distribution(sizes)
    k = data.draw(st.integers(1, sum(sizes)))
    shares = distribution.shares(k)
    assert sum(shares) == k
    exact = [k * size / sum(sizes) for size in sizes]
    for share, size in zip(shares, sizes):
        assert 0 <= share <= size
    if k >= len(sizes):  # every generator is in every sample
        assert min(shares) >= 1
    if k < len(sizes) or min(exact) >= 1:  # nothing moved: largest remainder, within one of the exact share
        assert all(abs(share - e) < 1 for share, e in zip(shares, exact))


def test_shares_by_largest_remainder_on_known_numbers():
    assert _stand_in_distribution([300, 60, 60]).shares(48) == [34, 7, 7]  # exact 34.29, 6.86, 6.86
    assert _stand_in_distribution([5, 5]).shares(3) == [2, 1]  # a tie goes to the first pool
    assert _stand_in_distribution([6, 3]).shares(9) == [6, 3]
    assert _stand_in_distribution([10, 20, 30]).shares(6) == [1, 2, 3]


@pytest.mark.parametrize("sizes, k", [([100, 100, 1], 3), ([200, 50, 50], 3), ([300, 60, 60], 4)])
def test_every_pool_is_in_a_sample_of_at_least_one_task_per_pool(sizes, k):
    """The module's promise: stratified "so every sample covers every generator" (here k ≥ pools)."""
    shares = _stand_in_distribution(sizes).shares(k)
    assert sum(shares) == k and min(shares) >= 1, shares


@given(SIZES, st.integers(0, 2**32 - 1), st.data())
@settings(max_examples=60, deadline=None)
def test_a_sample_is_k_distinct_tasks_drawn_per_pool_by_share(sizes, seed, data):
    distribution = _stand_in_distribution(sizes)
    k = data.draw(st.integers(1, sum(sizes) - 1)) if sum(sizes) > 1 else 1
    assume(k < sum(sizes))
    sample = distribution.sample(seed, k)
    names = _names(sample)
    assert len(names) == k == len(set(names))
    per_pool = [sum(name.startswith(f"p{i}-") for name in names) for i in range(len(sizes))]
    assert per_pool == distribution.shares(k)
    assert names == _names(distribution.sample(seed, k))


# --------------------------------------------------------------------------------------------
# Pool weights: a pool's share of a sample
# --------------------------------------------------------------------------------------------


def _weighted(sizes: list[int], weights: list[float | None]) -> TaskDistribution:
    return TaskDistribution("weighted", [_stand_in(f"p{i}", n) for i, n in enumerate(sizes)], weights)


def test_equal_weights_give_equal_shares_whatever_the_pool_sizes():
    assert _weighted([300, 60, 60], [1, 1, 1]).shares(48) == [16, 16, 16]
    assert _weighted([300, 60, 60], [2, 1, 1]).shares(48) == [24, 12, 12]
    assert _weighted([300, 60, 60], [None, None, None]).shares(48) == [34, 7, 7]  # None: by size
    assert _weighted([300, 60, 60], [None, 60, 60]).shares(48) == [34, 7, 7]


def test_a_pool_smaller_than_its_weighted_share_gives_all_and_the_rest_goes_by_weight():
    assert _weighted([300, 10, 60], [1, 1, 1]).shares(48) == [19, 10, 19]
    assert _weighted([300, 10, 60], [1, 1, 2]).shares(48) == [13, 10, 25]  # the 38 left split 1:2 (12.67, 25.33)
    assert _weighted([3, 3, 100], [1, 1, 1]).shares(30) == [3, 3, 24]
    assert _weighted([300, 10, 60], [1, 1, 1]).shares(370) == [300, 10, 60]


@given(SIZES, st.data())
@settings(max_examples=80, deadline=None)
def test_weighted_shares_sum_to_k_fit_their_pools_and_follow_the_weights(sizes, data):
    weights = data.draw(st.lists(st.floats(0.1, 10), min_size=len(sizes), max_size=len(sizes)))
    k = data.draw(st.integers(1, sum(sizes)))
    shares = _weighted(sizes, weights).shares(k)
    assert sum(shares) == k
    assert all(0 <= share <= size for share, size in zip(shares, sizes))
    if k >= len(sizes):
        assert min(shares) >= 1
    # no capped pool: every share within one of its weighted share (up to the one-per-pool move)
    exact = [k * w / sum(weights) for w in weights]
    if all(e <= size for e, size in zip(exact, sizes)) and (k < len(sizes) or min(exact) >= 1):
        assert all(abs(share - e) < 1 for share, e in zip(shares, exact))


def test_weights_must_be_one_positive_number_per_pool():
    for weights in ([1, 1], [1, 0, 1], [1, -1, 1], [1, float("nan"), 1]):
        with pytest.raises(PoolError, match="weight"):
            _weighted([5, 5, 5], weights)


def test_split_passes_the_specs_weights_to_the_search_distribution(tmp_path):
    search = (
        PoolSpec("polynomial", LINES, size=6, seeds=SEEDS, weight=1.0),
        PoolSpec("harmonic", {}, size=3, seeds=SEEDS, weight=1.0),
    )
    split = Split.build(SplitSpec(search, VALIDATION, TEST), PROTOCOL, progress=False)
    assert split.search.weights == (1.0, 1.0)
    assert split.search.shares(4) == [2, 2]  # by size it would be [3, 1]
    assert split.validation.weights == (3.0,)  # unweighted: its size
