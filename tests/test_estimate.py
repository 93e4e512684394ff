"""Tests of actmine.lab.estimate: `Estimate.of` against a reference computation, its confidence
bounds, and `paired_interval` (the mean of per-(task, seed) differences with its cluster bootstrap)."""

from __future__ import annotations

import math
import statistics
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actmine.lab.estimate import (
    OBJECTIVES,
    TASK_SCORE_BOUND,
    WINNER_RULES,
    Estimate,
    family_mean_fitness,
    paired_interval,
    bounded_estimate,
    softmin_estimate,
    softmin_fitness,
    worst_family_fitness,
)
from actmine.lab.fitness import Evaluation, TaskScore

FINITE = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
SCORE = st.floats(min_value=-5.0, max_value=5.0, allow_nan=False, allow_infinity=False)


# --------------------------------------------------------------------------------------------
# Estimate
# --------------------------------------------------------------------------------------------


@given(st.lists(FINITE, min_size=1, max_size=40))
def test_estimate_is_the_mean_and_the_standard_error_of_the_mean(scores):
    estimate = Estimate.of(scores)
    assert estimate.n == len(scores)
    assert estimate.mean == pytest.approx(statistics.fmean(scores), rel=1e-9, abs=1e-6)
    expected_se = statistics.stdev(scores) / math.sqrt(len(scores)) if len(scores) > 1 else 0.0
    assert estimate.se == pytest.approx(expected_se, rel=1e-6, abs=1e-6)
    assert estimate.se >= 0


def test_estimate_of_known_numbers_and_a_single_score():
    estimate = Estimate.of([1.0, 2.0, 3.0, 4.0])
    # sample sd of 1..4 is sqrt(5/3); se = sd / 2
    assert (estimate.mean, estimate.n) == (2.5, 4)
    assert estimate.se == pytest.approx(math.sqrt(5 / 3) / 2)
    single = Estimate.of([0.7])
    assert (single.mean, single.se, single.n) == (0.7, 0.0, 1)  # one task: no spread is known
    assert Estimate.of(iter([1.0, 3.0])).mean == 2.0  # any iterable of scores


@pytest.mark.parametrize(
    "scores, match",
    [([], "at least one"), ([0.1, math.nan], "finite"), ([math.inf], "finite"), ([-math.inf, 1.0], "finite")],
)
def test_estimate_refuses_no_scores_and_non_finite_scores(scores, match):
    with pytest.raises(ValueError, match=match):
        Estimate.of(scores)


@given(st.lists(SCORE, min_size=1, max_size=20), st.floats(min_value=0.0, max_value=5.0))
def test_confidence_bounds_are_mean_minus_and_plus_z_standard_errors(scores, z):
    estimate = Estimate.of(scores)
    assert estimate.lcb(z) == pytest.approx(estimate.mean - z * estimate.se)
    assert estimate.ucb(z) == pytest.approx(estimate.mean + z * estimate.se)
    assert estimate.lcb(z) <= estimate.mean <= estimate.ucb(z)
    assert estimate.lcb(0.0) == estimate.mean == estimate.ucb(0.0)


def test_a_lucky_single_round_has_a_lower_bound_below_a_confirmed_one():
    """Why selection ranks by the lower bound: a high but noisy mean loses to a steady one."""
    noisy = Estimate.of([1.5, -0.9, 1.2, -0.6])
    steady = Estimate.of([0.2, 0.25, 0.3, 0.22, 0.28, 0.24, 0.26, 0.25])
    assert noisy.mean > steady.mean and noisy.lcb(1.0) < steady.lcb(1.0)


# --------------------------------------------------------------------------------------------
# paired_interval
# --------------------------------------------------------------------------------------------


def _scores(tasks: int, seeds: int, seed: int = 0, scale: float = 0.5) -> dict[str, list[float]]:
    rng = np.random.default_rng(seed)
    return {f"t{i}": list(rng.normal(0.0, scale, seeds)) for i in range(tasks)}


def _direct_mean(a, b, clip):
    """The statistic written out: per common task each function's mean over seeds, clipped (the lab's
    per-task log-ratio), their difference; then the mean over tasks."""

    def clipped_mean(values):
        return min(clip, max(-clip, sum(values) / len(values)))

    per_task = [clipped_mean(a[name]) - clipped_mean(b[name]) for name in a if name in b]
    return sum(per_task) / len(per_task)


def test_identical_functions_differ_by_exactly_nothing():
    a = _scores(6, 3)
    result = paired_interval(a, {k: list(v) for k, v in a.items()}, resamples=200)
    assert (result["mean"], result["low"], result["high"]) == (0.0, 0.0, 0.0)
    assert (result["tasks"], result["seeds"]) == (6, 3)


@given(st.floats(min_value=-2.5, max_value=2.5, allow_nan=False))
@settings(max_examples=25, deadline=None)
def test_a_constant_shift_is_the_mean_and_a_tight_interval(shift):
    b = _scores(5, 3, seed=1)
    a = {name: [v + shift for v in values] for name, values in b.items()}
    # no clipping at work (each function's task mean is clipped, as the lab's scores are)
    result = paired_interval(a, b, resamples=100, clip=100.0)
    assert result["mean"] == pytest.approx(shift, abs=1e-9)
    assert result["low"] == pytest.approx(shift, abs=1e-9) and result["high"] == pytest.approx(shift, abs=1e-9)


def test_the_interval_contains_the_mean_and_narrows_with_more_tasks():
    b = _scores(8, 3, seed=2)
    a = {
        name: [v + 0.3 + noise for v, noise in zip(values, np.random.default_rng(5).normal(0, 0.4, 3))]
        for name, values in b.items()
    }
    few = paired_interval(a, b, resamples=500)
    assert few["low"] < few["mean"] < few["high"]
    more_b = _scores(80, 3, seed=2)
    rng = np.random.default_rng(5)
    more_a = {name: [v + 0.3 + rng.normal(0, 0.4) for v in values] for name, values in more_b.items()}
    more = paired_interval(more_a, more_b, resamples=500)
    assert more["low"] < more["mean"] < more["high"]
    assert more["high"] - more["low"] < few["high"] - few["low"]
    assert more["low"] < 0.3 < more["high"]  # the true shift is covered with 80 tasks


@given(
    st.dictionaries(
        st.sampled_from([f"t{i}" for i in range(8)]),
        st.lists(st.tuples(SCORE, SCORE), min_size=1, max_size=4),
        min_size=1,
        max_size=8,
    ),
    st.floats(min_value=0.5, max_value=10.0),
)
@settings(max_examples=60, deadline=None)
def test_the_mean_is_the_difference_of_the_lab_scores_over_common_tasks(pairs, clip):
    a = {name: [x for x, _ in values] for name, values in pairs.items()}
    b = {name: [y for _, y in values] for name, values in pairs.items()}
    result = paired_interval(a, b, clip=clip, resamples=50)
    assert result["mean"] == pytest.approx(_direct_mean(a, b, clip), abs=1e-9)
    assert result["tasks"] == len(pairs) and result["seeds"] == max(len(v) for v in pairs.values())
    assert -2 * clip - 1e-9 <= result["low"] <= result["high"] <= 2 * clip + 1e-9
    if clip >= 10.0 or all(abs(x - y) < clip for values in pairs.values() for x, y in values):
        # no clipping at work: the bootstrap is centred on the mean, which its 95% interval holds
        assert result["low"] - 1e-9 <= result["mean"] <= result["high"] + 1e-9


def test_clipping_applies_to_each_tasks_mean_not_to_each_seed():
    a = {"big": [10.0, -2.0], "small": [0.5, 0.5]}
    b = {"big": [0.0, 0.0], "small": [0.0, 0.0]}
    result = paired_interval(a, b, clip=3.0, resamples=100)
    # per task: mean(10, −2) = 4 → 3; 0.5. Clipping each seed first would give (3 − 2)/2 = 0.5 for "big".
    assert result["mean"] == pytest.approx((3.0 + 0.5) / 2)
    wide = paired_interval(a, b, clip=100.0, resamples=100)
    assert wide["mean"] == pytest.approx((4.0 + 0.5) / 2)


def test_tasks_scored_by_only_one_side_are_ignored():
    a, b = _scores(5, 3, seed=3), _scores(5, 3, seed=4)
    alone = paired_interval(a, b, resamples=300, seed=9)
    a_more = dict(a, only_in_a=[100.0, 100.0, 100.0])
    b_more = dict(b, only_in_b=[-100.0, 5.0])  # different seeds, too: never looked at
    assert paired_interval(a_more, b_more, resamples=300, seed=9) == alone


@pytest.mark.parametrize(
    "a, b, match",
    [
        ({"t": [0.1, 0.2]}, {"t": [0.1]}, "different seeds"),
        ({"t": []}, {"t": []}, "different seeds"),
        ({"t": [0.1]}, {"u": [0.1]}, "no task"),
        ({}, {}, "no task"),
    ],
)
def test_mismatched_seeds_and_nothing_in_common_are_refused(a, b, match):
    with pytest.raises(ValueError, match=match):
        paired_interval(a, b, resamples=10)


def test_the_bootstrap_is_deterministic_for_a_seed():
    a, b = _scores(7, 3, seed=5), _scores(7, 3, seed=6)
    first = paired_interval(a, b, resamples=300, seed=1)
    assert paired_interval(a, b, resamples=300, seed=1) == first
    other = paired_interval(a, b, resamples=300, seed=2)
    assert other["mean"] == first["mean"]  # the point estimate uses no randomness
    assert (other["low"], other["high"]) != (first["low"], first["high"])


def test_tasks_with_different_seed_counts_are_compared_over_their_own_seeds():
    """A task scored on one seed next to tasks on three: no padding value leaks into any mean."""
    a = {"one": [1.0], "three": [0.0, 0.3, 0.6]}
    b = {"one": [0.0], "three": [0.0, 0.0, 0.0]}
    result = paired_interval(a, b, resamples=400, seed=0)
    assert result["mean"] == pytest.approx((1.0 + 0.3) / 2)
    assert result["seeds"] == 3
    # every bootstrap value is a mean of "one" (1.0) and/or "three" (means of 0, .3, .6): within [0, 1]
    assert 0.0 <= result["low"] <= result["mean"] <= result["high"] <= 1.0


# --------------------------------------------------------------------------------------------
# Per-seed log-ratios travel with the task scores (what paired intervals are computed from)
# --------------------------------------------------------------------------------------------


@given(st.lists(st.floats(min_value=-3.0, max_value=3.0, allow_nan=False), max_size=5))
def test_seed_log_ratios_round_trip_through_an_evaluation_record(seed_log_ratios):
    task = TaskScore("t", "poly", 0.1, 0.01, 0.2, tuple(seed_log_ratios))
    evaluation = Evaluation("candidate", ok=True, fitness=0.2, ood_log_ratio=-0.2, tasks=[task], stage="done")
    data = evaluation.to_dict()
    assert data["tasks"][0]["seed_log_ratios"] == list(seed_log_ratios)
    back = Evaluation.from_dict(data)
    assert back.tasks[0] == task and back.tasks[0].seed_log_ratios == tuple(seed_log_ratios)


def test_an_older_record_without_seed_log_ratios_reads_as_none_and_bad_values_are_refused():
    data = Evaluation("c", ok=True, fitness=0.2, tasks=[TaskScore("t", "poly", 0.1, 0.01, 0.2, (0.1,))]).to_dict()
    del data["tasks"][0]["seed_log_ratios"]
    assert Evaluation.from_dict(data).tasks[0].seed_log_ratios == ()
    for bad in ([math.nan], ["0.1"], [True]):
        data["tasks"][0]["seed_log_ratios"] = bad
        with pytest.raises(ValueError, match="finite number"):
            Evaluation.from_dict(data)


def test_softmin_by_hand_and_its_two_limits():
    families = {"expression": -0.45, "harmonic": -1.02, "polynomial": 0.19}
    # −0.1·ln(mean(exp(l/0.1))) computed by hand: the worst family (+0.19) dominates
    by_hand = -0.1 * math.log((math.exp(-4.5) + math.exp(-10.2) + math.exp(1.9)) / 3)
    assert softmin_fitness(families) == pytest.approx(by_hand)
    assert softmin_fitness(families, temperature=1e-4) == pytest.approx(worst_family_fitness(families), abs=1e-3)
    assert softmin_fitness(families, temperature=1e4) == pytest.approx(family_mean_fitness(families), abs=1e-3)
    assert worst_family_fitness(families) == pytest.approx(-0.19)
    assert family_mean_fitness(families) == pytest.approx((0.45 + 1.02 - 0.19) / 3)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from("abcdef"), st.floats(-3, 3), min_size=1), st.floats(0.01, 10))
def test_softmin_lies_between_the_worst_family_and_the_family_mean(families, temperature):
    value = softmin_fitness(families, temperature)
    assert worst_family_fitness(families) - 1e-9 <= value <= family_mean_fitness(families) + 1e-9
    # making one family worse never raises it (monotone in every family)
    worse = {**families, next(iter(families)): families[next(iter(families))] + 0.5}
    assert softmin_fitness(worse, temperature) <= value + 1e-12


def test_the_winner_rules_rank_a_one_family_loser_below_a_balanced_function():
    """The case the robust rules exist for: the higher mean comes from one family's big gain and
    another family's loss against ReLU; `mean` prefers it, the family rules do not."""
    lopsided = (0.438, {"expression": -0.45, "harmonic": -1.02, "polynomial": 0.19})
    balanced = (0.360, {"expression": -0.37, "harmonic": -0.53, "polynomial": -0.13})
    prefers = {name: rule(*lopsided) > rule(*balanced) for name, rule in WINNER_RULES.items()}
    assert prefers == {"mean": True, "family_mean": True, "maximin": False, "softmin": False, "references": False}
    nothing = (0.1, {})
    assert WINNER_RULES["mean"](*nothing) == 0.1
    assert all(
        WINNER_RULES[name](*nothing) == float("-inf") for name in ("family_mean", "maximin", "softmin", "references")
    )


FAMILY_VALUES = st.floats(-3, 3, allow_nan=False)
FAMILY_NAMES = st.sampled_from(["expression", "harmonic", "polynomial", "feynman"])


@settings(max_examples=200, deadline=None)
@given(
    families=st.dictionaries(FAMILY_NAMES, FAMILY_VALUES, min_size=1),
    references=st.dictionaries(
        st.sampled_from(["gelu", "gelu_sine", "gmtu"]), st.dictionaries(FAMILY_NAMES, FAMILY_VALUES)
    ),
    margin=st.floats(0.01, 1),
)
def test_the_references_rule_is_above_zero_only_for_a_function_better_than_every_reference(
    families, references, margin
):
    rule = WINNER_RULES["references"]
    value = rule(0.0, families, references)
    # ReLU (l_f = 0) is always a reference, so no function scores above its softmin against ReLU
    assert value <= softmin_fitness(families) + 1e-9
    for name, reference in references.items():
        # against itself a reference scores at most 0 (families it lacks compare with ReLU)
        itself = {f: reference.get(f, 0.0) for f in families}
        assert rule(0.0, itself, references) <= 1e-9
    # better than every reference (and ReLU) on every family by `margin`: above 0
    best = {f: min([0.0] + [r.get(f, 0.0) for r in references.values()]) - margin for f in families}
    assert rule(0.0, best, references) > 0
    # with no references it is the softmin rule
    assert rule(0.0, families, {}) == pytest.approx(softmin_fitness(families))


# --------------------------------------------------------------------------------------------
# Boundaries: the number types accepted, the defaults, what is refused and what is skipped
# --------------------------------------------------------------------------------------------

REAL_NUMBERS = [
    [1, 2, 4],
    [Fraction(1, 3), Fraction(2, 3), Fraction(5, 2)],
    [10**20, 3 * 10**20],
    [np.float32(0.5), 1.5, np.int64(3)],
]


@pytest.mark.parametrize("scores", REAL_NUMBERS)
def test_an_estimate_takes_any_real_numbers_as_floats(scores):
    """Integers (even beyond 64 bits), fractions and numpy scalars give the estimate of their float values."""
    estimate, as_floats = Estimate.of(scores), Estimate.of([float(s) for s in scores])
    assert (estimate.mean, estimate.se, estimate.n) == pytest.approx((as_floats.mean, as_floats.se, as_floats.n))
    assert type(estimate.mean) is float and type(estimate.se) is float and type(estimate.n) is int


def test_estimate_errors_say_exactly_what_is_wrong():
    with pytest.raises(ValueError, match=r"^an estimate needs at least one score$"):
        Estimate.of([])
    with pytest.raises(ValueError, match=r"^scores must be finite$"):
        Estimate.of([1.0, math.nan])


@pytest.mark.parametrize("values", REAL_NUMBERS)
def test_paired_interval_takes_any_real_numbers_as_floats(values):
    as_floats = [float(v) for v in values]
    zeros = [0] * len(values)
    for a, b in (({"t": values}, {"t": zeros}), ({"t": zeros}, {"t": values})):
        expected = paired_interval(
            {k: [float(v) for v in x] for k, x in a.items()},
            {k: [float(v) for v in x] for k, x in b.items()},
            resamples=50,
            clip=1e30,
        )
        assert paired_interval(a, b, resamples=50, clip=1e30) == pytest.approx(expected)
    assert paired_interval({"t": values}, {"t": zeros}, resamples=50, clip=1e30)["mean"] == pytest.approx(
        sum(as_floats) / len(as_floats)
    )


@pytest.mark.parametrize("side", ["a", "b"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_score_on_either_side_is_refused_naming_the_task(side, bad):
    good = {"fine": [0.1, 0.2], "t": [0.1, 0.2]}
    broken = {"fine": [0.1, 0.2], "t": [0.1, bad]}
    a, b = (broken, good) if side == "a" else (good, broken)
    with pytest.raises(ValueError, match=r"^task 't': scores must be finite$"):
        paired_interval(a, b, resamples=10)


def test_paired_interval_errors_name_the_task_and_the_seed_counts():
    with pytest.raises(ValueError, match=r"^no task is scored in both$"):
        paired_interval({"t": [0.1]}, {"u": [0.1]}, resamples=10)
    with pytest.raises(ValueError, match=r"^task 't': the two functions have different seeds \(2 and 1\)$"):
        paired_interval({"t": [0.1, 0.2]}, {"t": [0.1]}, resamples=10)


def test_paired_interval_defaults_are_the_labs_clip_2000_resamples_and_seed_0():
    rng = np.random.default_rng(3)
    a = {f"t{i}": list(rng.normal(0.0, 4.0, 2)) for i in range(6)}  # task means beyond ±3: the clip matters
    b = {f"t{i}": list(rng.normal(0.0, 0.5, 2)) for i in range(6)}
    default = paired_interval(a, b)
    assert default == paired_interval(a, b, clip=3.0, resamples=2000, seed=0)
    assert default["mean"] == pytest.approx(_direct_mean(a, b, 3.0))


def test_the_bootstrap_resamples_tasks():
    """Two tasks differing by 0 and 1: a resample holds task 0 twice, each once, or task 1 twice (1/4,
    1/2, 1/4), so the 95% interval runs from 0 to 1; never resampling tasks would give a point."""
    result = paired_interval({"zero": [0.0], "one": [1.0]}, {"zero": [0.0], "one": [0.0]}, resamples=400)
    assert (result["mean"], result["low"], result["high"]) == (0.5, 0.0, 1.0)


def test_the_bootstrap_resamples_seeds_within_a_task_for_both_functions_alike():
    """One task, seeds differing by 0 and 1: resampled seeds give 0, 1/2 or 1. Each function alone
    varies far more across seeds than the difference does; the same seeds for both keep that out."""
    a = {"t": [10.0, -20.0]}
    b = {"t": [10.0, -21.0]}
    result = paired_interval(a, b, resamples=400, clip=100.0)
    assert (result["mean"], result["low"], result["high"]) == (0.5, 0.0, 1.0)
    clipped = paired_interval(a, b, resamples=400)  # resampled means beyond ±3 clip to the same value
    assert clipped["mean"] == 0.0 and clipped["low"] == 0.0 and clipped["high"] <= 1.0


def test_the_interval_is_the_central_95_percent_of_the_bootstrap():
    """Many tasks with independent differences: the bootstrap interval of their mean is close to
    the normal one, mean ± 1.96·sd/√n (a 93% interval would be ~8% narrower on one side, a 99% one ~31% wider)."""
    differences = np.random.default_rng(2).normal(0.0, 1.0, 300)
    a = {f"t{i}": [float(d)] for i, d in enumerate(differences)}
    b = {f"t{i}": [0.0] for i in range(len(differences))}
    result = paired_interval(a, b, resamples=2000, clip=100.0)
    half_width = 1.96 * differences.std() / math.sqrt(len(differences))
    assert result["mean"] == pytest.approx(differences.mean())
    assert result["mean"] - result["low"] == pytest.approx(half_width, rel=0.05)
    assert result["high"] - result["mean"] == pytest.approx(half_width, rel=0.05)


@pytest.mark.parametrize("skipped", [None, math.nan, math.inf, -math.inf])
def test_the_family_rules_skip_families_without_a_finite_score(skipped):
    families = {"a": 0.2, "b": skipped, "c": -0.4}
    assert family_mean_fitness(families) == pytest.approx(0.1)
    assert worst_family_fitness(families) == pytest.approx(-0.2)
    assert softmin_fitness(families) == pytest.approx(softmin_fitness({"a": 0.2, "c": -0.4}))
    nothing = {"b": skipped}
    assert family_mean_fitness(nothing) == worst_family_fitness(nothing) == softmin_fitness(nothing) == -math.inf


@pytest.mark.parametrize(
    "families", [{"a": 1, "b": -2}, {"a": Fraction(1, 5), "b": Fraction(-2, 5)}, {"a": np.float32(0.25), "b": 10**20}]
)
def test_the_family_rules_take_any_real_numbers_as_floats(families):
    as_floats = {k: float(v) for k, v in families.items()}
    for rule in (softmin_fitness, family_mean_fitness, worst_family_fitness):
        assert rule(families) == pytest.approx(rule(as_floats)), rule.__name__


def test_each_resampled_task_keeps_its_own_number_of_seeds():
    """Task "two" (seed differences 0 and 1) beside a three-seed task that differs by 0: a resampled
    "two" is a mean of two draws (0, 1/2 or 1), so the bootstrap values are multiples of 1/4 and the
    top 2.5% starts at 3/4; three draws for "two" would put it at 5/6."""
    a = {"two": [0.0, 1.0], "three": [0.0, 0.0, 0.0]}
    b = {"two": [0.0, 0.0], "three": [0.0, 0.0, 0.0]}
    result = paired_interval(a, b, resamples=2000)
    assert (result["mean"], result["low"], result["high"]) == (0.25, 0.0, 0.75)


# -- the search's objective: softmin over families as an estimate ------------------------------


def _numeric_softmin_se(families: dict[str, list[float]], temperature: float) -> float:
    """The delta method by finite differences: ∂softmin/∂(family mean) times that mean's se."""
    means = {f: -float(np.mean(v)) for f, v in families.items()}
    everything = [x for v in families.values() for x in v]
    total = 0.0
    for family, values in families.items():
        step = 1e-6
        shifted = dict(means, **{family: means[family] + step})
        gradient = (softmin_fitness(shifted, temperature) - softmin_fitness(means, temperature)) / step
        sd = statistics.stdev(values) if len(values) > 1 else statistics.stdev(everything)
        total += (gradient * sd / math.sqrt(len(values))) ** 2
    return math.sqrt(total)


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["expression", "harmonic", "polynomial", "feynman"]),
        st.lists(st.floats(-3, 3), min_size=1, max_size=8),
        min_size=1,
    ),
    st.sampled_from([0.05, 0.1, 1.0]),
)
def test_the_softmin_estimate_is_the_softmin_of_family_means_with_a_delta_method_se(families, temperature):
    if sum(len(v) for v in families.values()) < 2:
        families = {**families, "extra": [0.0, 0.5]}
    estimate = softmin_estimate(families, temperature)
    assert estimate.n == sum(len(v) for v in families.values())
    assert estimate.mean == pytest.approx(
        softmin_fitness({f: -float(np.mean(v)) for f, v in families.items()}, temperature), abs=1e-12
    )
    assert estimate.se == pytest.approx(_numeric_softmin_se(families, temperature), rel=1e-3, abs=1e-6)


def test_one_family_gives_the_plain_estimate_and_a_far_worse_family_dominates():
    scores = [0.2, 0.5, -0.1, 0.4]
    assert softmin_estimate({"only": scores}) == pytest.approx(Estimate.of(scores))
    # the worst family (mean 0.1) carries almost all of the weight at T = 0.1
    worse, better = [0.0, 0.2], [2.0, 2.4, 2.2]
    estimate = softmin_estimate({"worse": worse, "better": better})
    assert estimate.mean == pytest.approx(0.1 + 0.1 * math.log(2), abs=1e-6)  # −T·ln((e^-1 + ~0)/2)
    assert estimate.se == pytest.approx(statistics.stdev(worse) / math.sqrt(2), rel=1e-6)


def test_a_one_task_family_borrows_the_spread_of_all_tasks():
    families = {"a": [0.0, 1.0, 2.0], "b": [0.5]}
    weights = np.exp(np.array([-1.0, -0.5]) / 0.1 - max(-1.0, -0.5) / 0.1)
    weights /= weights.sum()
    sd_all = statistics.stdev([0.0, 1.0, 2.0, 0.5])
    expected = math.sqrt((weights[0] * 1.0 / math.sqrt(3)) ** 2 + (weights[1] * sd_all) ** 2)
    assert softmin_estimate(families).se == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    "families, match", [({}, "at least one"), ({"a": []}, "at least one"), ({"a": [0.1, math.nan]}, "finite")]
)
def test_the_softmin_estimate_refuses_no_scores_and_non_finite_ones(families, match):
    with pytest.raises(ValueError, match=match):
        softmin_estimate(families)


def test_the_objectives_read_family_score_pairs():
    scores = [("poly", 0.4), ("harm", 1.0), ("poly", 0.0)]
    assert OBJECTIVES["mean"](scores) == Estimate.of([0.4, 1.0, 0.0])
    assert OBJECTIVES["softmin"](scores) == softmin_estimate({"poly": [0.4, 0.0], "harm": [1.0]})


def test_the_softmin_estimate_of_one_score_has_no_spread_and_two_one_task_families_share_theirs():
    assert softmin_estimate({"a": [0.7]}) == Estimate(0.7, 0.0, 1)
    estimate = softmin_estimate({"a": [0.0], "b": [1.0]})
    weights = np.exp(np.array([0.0, -1.0]) / 0.1)
    weights /= weights.sum()
    pooled = statistics.stdev([0.0, 1.0])
    assert estimate.se == pytest.approx(math.sqrt(((weights * pooled) ** 2).sum()), rel=1e-12)


def test_the_softmin_estimate_takes_any_real_numbers_and_extreme_ones_stay_finite():
    exact = softmin_estimate({"a": [Fraction(1, 4), Fraction(3, 4)], "b": [2]})
    assert exact == softmin_estimate({"a": [0.25, 0.75], "b": [2.0]})
    far = softmin_estimate({"loses": [-400.0, -390.0], "wins": [400.0, 410.0]})
    assert math.isfinite(far.mean) and math.isfinite(far.se)
    assert far.mean == pytest.approx(-395.0 + 0.1 * math.log(2), abs=1e-9)


def test_the_softmin_estimate_errors_say_exactly_what_is_wrong():
    with pytest.raises(ValueError) as empty:
        softmin_estimate({"a": []})
    assert str(empty.value) == "an estimate needs at least one score"
    with pytest.raises(ValueError) as infinite:
        softmin_estimate({"a": [0.1, math.inf]})
    assert str(infinite.value) == "scores must be finite"


# -- the search's objective: the bounded mean ----------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=1, max_size=30), st.sampled_from([0.5, 1.0, 3.0]))
def test_the_bounded_estimate_is_the_estimate_of_the_clipped_scores(scores, bound):
    estimate = bounded_estimate(scores, bound)
    clipped = [min(bound, max(-bound, s)) for s in scores]
    assert estimate.n == len(scores)
    assert estimate.mean == pytest.approx(statistics.fmean(clipped), abs=1e-12)
    assert estimate.se == pytest.approx(
        statistics.stdev(clipped) / math.sqrt(len(clipped)) if len(clipped) > 1 else 0.0
    )
    assert -bound <= estimate.mean <= bound
    # within the bound it is the plain estimate
    if all(abs(s) <= bound for s in scores):
        assert estimate == pytest.approx(Estimate.of(scores))


def test_one_huge_win_does_not_outrank_many_small_ones():
    specialist = [3.0] + [-0.1] * 9  # one target extrapolated far better, the rest a little worse
    generalist = [0.15] * 10  # a little better on every target
    assert Estimate.of(specialist).mean > Estimate.of(generalist).mean
    assert bounded_estimate(specialist).mean < bounded_estimate(generalist).mean
    assert bounded_estimate(specialist).mean == pytest.approx((TASK_SCORE_BOUND - 0.9) / 10)


def test_the_bounded_objective_reads_family_score_pairs_and_refuses_what_it_cannot_bound():
    scores = [("poly", 0.4), ("harm", 2.0), ("poly", -1.5)]
    assert OBJECTIVES["bounded"](scores) == Estimate.of([0.4, 1.0, -1.0])
    for bad, message in (
        ([0.1, math.inf], "scores must be finite"),
        ([math.nan], "scores must be finite"),
        ([], "an estimate needs at least one score"),
    ):
        with pytest.raises(ValueError) as refused:
            bounded_estimate(bad)
        assert str(refused.value) == message
    with pytest.raises(ValueError) as refused:
        bounded_estimate([0.1], 0)
    assert str(refused.value) == "the bound must be positive, got 0"


def test_the_bounded_estimate_takes_any_real_numbers():
    assert bounded_estimate([Fraction(1, 4), Fraction(3, 2), -2]) == bounded_estimate([0.25, 1.5, -2.0])
