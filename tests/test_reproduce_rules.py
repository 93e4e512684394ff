"""The reproduction's verdict rules and statistics (`actmine.reproduce.rules`).

Each rule is checked at its boundaries (exactly 0, just either side, missing and empty inputs) with
the exact verdict it must give and the number its explanation must name; the statistics against
scipy's references.
"""

import itertools
import json
import math
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from actmine import reproduce
from actmine.reproduce import rules
from actmine.reproduce.rules import (
    LAB_SECONDS_LIMIT,
    NOT_CHECKABLE,
    NOT_REPRODUCED,
    REPRODUCED,
    _ci_text,
    _pearson,
    average_ranks,
    load_validity,
    mean_ci,
    paired_ci,
    rule_all_beat,
    rule_alpha,
    rule_batch_statistics,
    rule_below_zero,
    rule_best,
    rule_no_failures,
    rule_not_above_zero,
    rule_probe,
    rule_seconds,
    rule_validity,
    short,
    spearman,
    spearman_p_value,
    t_quantile_975,
)

TINY = 1e-9
VERDICTS = {REPRODUCED, NOT_REPRODUCED, NOT_CHECKABLE}
finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)
small_ints = st.integers(min_value=-3, max_value=3)  # few values: many ties
eighths = st.integers(min_value=-8000, max_value=8000).map(lambda v: v / 8)  # exact sums, no cancellation


def ci(low, high, mean=None):
    return {"mean": (low + high) / 2 if mean is None else mean, "low": low, "high": high}


def test_the_package_re_exports_the_rules_where_they_always_were():
    for name in (
        "REPRODUCED",
        "NOT_REPRODUCED",
        "NOT_CHECKABLE",
        "t_quantile_975",
        "mean_ci",
        "paired_ci",
        "average_ranks",
        "_pearson",
        "spearman",
        "spearman_p_value",
        "_ci_text",
        "rule_all_beat",
        "rule_below_zero",
        "rule_not_above_zero",
        "rule_alpha",
        "rule_batch_statistics",
        "rule_probe",
        "rule_best",
        "rule_validity",
        "load_validity",
        "rule_seconds",
        "rule_no_failures",
        "short",
    ):
        assert getattr(reproduce, name) is getattr(rules, name), name
    assert len(VERDICTS) == 3 and LAB_SECONDS_LIMIT == 10.0
    assert short("gelu_sinc_perturbation") == "GSP" and short("search_winner") == "search winner"
    assert short("my_function") == "my_function"


# -- Student's t ------------------------------------------------------------------------------------


@pytest.mark.parametrize("df", range(1, 31))
def test_t_quantile_table_is_scipys_to_three_decimals(df):
    assert t_quantile_975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=5.1e-4)
    assert t_quantile_975(df) == round(t_quantile_975(df), 3)  # a table value, not the expansion


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=31, max_value=10**7))
def test_t_quantile_expansion_beyond_the_table_matches_scipy(df):
    assert t_quantile_975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=2e-4)


@pytest.mark.parametrize("df", [31, 40, 60, 100])
def test_t_quantile_expansion_is_cornish_fisher_to_the_second_term(df):
    """What the two-term expansion leaves out is, to a few percent, its third term (Abramowitz & Stegun
    26.7.5): a check of both coefficients, finer than the expansion's 1e-4 accuracy."""
    z = stats.norm.ppf(0.975)
    third = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)
    assert stats.t.ppf(0.975, df) - t_quantile_975(df) == pytest.approx(third, rel=0.05)


def test_t_quantile_decreases_across_the_table_boundary_towards_the_normal_quantile():
    values = [t_quantile_975(df) for df in range(1, 200)]
    assert all(a > b for a, b in zip(values, values[1:]))
    assert t_quantile_975(30) == 2.042 and t_quantile_975(31) == pytest.approx(2.0395, abs=2e-4)
    assert t_quantile_975(10**12) == pytest.approx(stats.norm.ppf(0.975), abs=1e-9)


@pytest.mark.parametrize("df", [0, -1, -30])
def test_t_quantile_needs_a_degree_of_freedom(df):
    with pytest.raises(ValueError, match="^the t distribution needs at least one degree of freedom$"):
        t_quantile_975(df)


# -- intervals --------------------------------------------------------------------------------------


def test_mean_ci_by_hand():
    # mean 2.5, sd = sqrt(5/3), half = t(3) * sd / 2 = 3.182 * 1.290994 / 2
    ci_ = mean_ci([1, 2, 3, 4])
    assert ci_["mean"] == 2.5 and ci_["n"] == 4
    assert ci_["sd"] == pytest.approx(math.sqrt(5 / 3))
    assert ci_["half"] == pytest.approx(2.053972, abs=1e-6)
    assert (ci_["low"], ci_["high"]) == pytest.approx((0.446028, 4.553972), abs=1e-6)


def test_mean_ci_below_two_values_has_no_interval():
    assert mean_ci([]) == {"mean": None, "low": None, "high": None, "half": None, "sd": None, "n": 0}
    assert mean_ci([0.7]) == {"mean": 0.7, "low": None, "high": None, "half": None, "sd": None, "n": 1}
    two = mean_ci([1.0, 3.0])  # the smallest sample with an interval: sd = sqrt(2), t(1) = 12.706
    assert two["n"] == 2 and two["sd"] == pytest.approx(math.sqrt(2))
    assert two["half"] == pytest.approx(12.706 * math.sqrt(2) / math.sqrt(2))
    assert mean_ci([5, 5, 5]) == {"mean": 5.0, "low": 5.0, "high": 5.0, "half": 0.0, "sd": 0.0, "n": 3}


@settings(max_examples=50, deadline=None)
@given(st.lists(eighths, min_size=2, max_size=60))
def test_mean_ci_matches_scipys_t_interval(values):
    ci_ = mean_ci(values)
    n = len(values)
    mean = sum(values) / n
    sd = statistics.stdev(values)  # exact arithmetic: the reference for the sample sd
    assert ci_["n"] == n and ci_["mean"] == pytest.approx(mean, abs=1e-9)
    assert ci_["sd"] == pytest.approx(sd, rel=1e-9, abs=1e-9)
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    assert ci_["half"] == pytest.approx(half, rel=3e-4, abs=1e-9)  # the table's rounding
    assert ci_["low"] == pytest.approx(mean - ci_["half"], abs=1e-9)
    assert ci_["high"] == pytest.approx(mean + ci_["half"], abs=1e-9)
    assert ci_["low"] <= ci_["mean"] <= ci_["high"]


def test_paired_ci_uses_the_differences_a_minus_b():
    # differences [1, 2, 2]: mean 5/3, sd = sqrt(1/3), half = 4.303 * sqrt(1/3) / sqrt(3) = 4.303 / 3
    ci_ = paired_ci([1, 2, 3], [0, 0, 1])
    assert ci_["mean"] == pytest.approx(5 / 3) and ci_["half"] == pytest.approx(4.303 / 3)
    assert paired_ci([0, 0, 1], [1, 2, 3])["mean"] == pytest.approx(-5 / 3)
    assert paired_ci([], [])["n"] == 0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(finite, finite), min_size=0, max_size=20))
def test_paired_ci_is_the_interval_of_the_differences(pairs):
    a, b = [x for x, _ in pairs], [y for _, y in pairs]
    assert paired_ci(a, b) == mean_ci([x - y for x, y in pairs])


def test_paired_ci_refuses_unpaired_values():
    with pytest.raises(ValueError, match=r"^paired values of different lengths \(2 and 1\)$"):
        paired_ci([1, 2], [1])


# -- ranks and Spearman -----------------------------------------------------------------------------


def test_average_ranks_by_hand():
    assert average_ranks([10, 20, 20, 30]) == [1, 2.5, 2.5, 4]
    assert average_ranks([3, 3, 3]) == [2, 2, 2]
    assert average_ranks([30, 10, 20]) == [3, 1, 2]
    assert average_ranks([]) == []


@settings(max_examples=50, deadline=None)
@given(st.lists(small_ints, min_size=0, max_size=12))
def test_average_ranks_match_scipys_rankdata_with_ties(values):
    assert average_ranks(values) == list(stats.rankdata(values, method="average"))


def test_pearson_by_hand():
    assert _pearson([0, 1, 0, 1], [0, 1, 0, 1]) == pytest.approx(1.0)  # a spread of exactly 1 is not 0
    assert _pearson([0, 1, 0, 1], [1, 0, 1, 0]) == pytest.approx(-1.0)
    assert _pearson([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    assert _pearson([1, 2, 3], [2, 2, 2]) is None and _pearson([2, 2, 2], [1, 2, 3]) is None


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(small_ints, st.integers(min_value=-50, max_value=50)), min_size=2, max_size=15))
def test_pearson_matches_scipy_or_is_none_for_a_constant_side(pairs):
    x, y = [a for a, _ in pairs], [b for _, b in pairs]
    r = _pearson(x, y)
    if len(set(x)) == 1 or len(set(y)) == 1:
        assert r is None
    elif r is not None:  # a side whose spread underflows to 0 is constant as far as floats can tell
        assert r == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-6)


def test_spearman_with_ties_by_hand():
    # ranks x = [1, 2.5, 2.5, 4], y = [1, 3, 2, 4]: cov 4.5, var 4.5 and 5 → 4.5 / sqrt(22.5) = 3 / sqrt(10)
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(3 / math.sqrt(10))
    assert spearman([1, 2, 3, 4, 5], [50, 40, 30, 20, 10]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)  # three pairs: the fewest it ranks
    assert spearman([1, 2, 3], [5, 5, 5]) is None and spearman([4, 4, 4], [1, 2, 3]) is None
    assert spearman([1, 2], [1, 2]) is None and spearman([], []) is None
    with pytest.raises(ValueError, match="^x and y must have the same length$"):
        spearman([1, 2, 3], [1, 2])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(small_ints, small_ints), min_size=3, max_size=12))
def test_spearman_matches_scipys_spearmanr_with_ties(pairs):
    x, y = [a for a, _ in pairs], [b for _, b in pairs]
    rho = spearman(x, y)
    if len(set(x)) == 1 or len(set(y)) == 1:
        assert rho is None
    else:
        assert rho == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-9)


def exact_p_value(x, y):
    """The one-sided permutation p-value by brute force: scipy's ranks, numpy's correlation of every order."""
    rx, ry = stats.rankdata(x), stats.rankdata(y)
    orders = ry[np.array(list(itertools.permutations(range(len(y)))))]
    rhos = np.array([np.corrcoef(rx, order)[0, 1] for order in orders])
    return float(np.mean(rhos >= np.corrcoef(rx, ry)[0, 1] - 1e-9))


def test_spearman_p_value_exact_by_hand():
    assert spearman_p_value([1, 2, 3, 4], [1, 2, 3, 4]) == pytest.approx(1 / 24)  # only the identity
    assert spearman_p_value([1, 2, 3, 4], [4, 3, 2, 1]) == 1.0  # every order reaches it
    # a tie in x: the identity and the swap of the tied pair reach ρ (the tolerance counts float noise)
    assert spearman_p_value([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(2 / 24)
    assert spearman_p_value([1, 2, 3], [1, 1, 1]) is None and spearman_p_value([1, 2], [1, 2]) is None


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(small_ints, small_ints), min_size=3, max_size=6))
def test_spearman_p_value_is_exact_up_to_eight_pairs(pairs):
    x, y = [a for a, _ in pairs], [b for _, b in pairs]
    p = spearman_p_value(x, y)
    if spearman(x, y) is None:
        assert p is None
    else:
        assert p == pytest.approx(exact_p_value(x, y))
        assert 0 < p <= 1 and (p * math.factorial(len(x))) == pytest.approx(round(p * math.factorial(len(x))))


def test_spearman_p_value_at_eight_pairs_is_exact_and_at_nine_sampled():
    eight = list(range(8))
    assert spearman_p_value(eight, eight) == pytest.approx(1 / math.factorial(8))  # enumerated, not drawn
    nine = list(range(9))
    # drawn: the observed order counts once, so ρ = 1 gives 1 / (draws + 1); ρ = -1 is reached by all
    assert spearman_p_value(nine, nine, permutations=100) == pytest.approx(1 / 101)
    assert spearman_p_value(nine, nine[::-1], permutations=100) == 1.0
    assert spearman_p_value(nine, nine) == pytest.approx(1 / 20_001)  # 20,000 draws by default


def test_spearman_p_value_sampling_is_seeded_and_near_the_reference():
    x = list(range(10))
    y = [1, 0, 4, 2, 9, 3, 7, 5, 8, 6]  # ρ ≈ 0.7: p about 0.02
    p = spearman_p_value(x, y, permutations=400)
    assert p == spearman_p_value(x, y, permutations=400, seed=0)  # a fixed generator, seed 0
    assert p * 401 == pytest.approx(round(p * 401))  # hits ÷ (draws + 1)
    assert p == pytest.approx(stats.spearmanr(x, y, alternative="greater").pvalue, abs=0.04)
    assert len({spearman_p_value(x, y, permutations=400, seed=s) for s in range(4)}) > 1
    assert spearman_p_value(x, [-v for v in y], permutations=400) > 0.9  # one-sided: ρ < 0 is not evidence


# -- interval text ----------------------------------------------------------------------------------


def test_ci_text():
    assert _ci_text(None) == "—" and _ci_text({}) == "—" and _ci_text({"mean": None, "low": 1}) == "—"
    assert _ci_text({"mean": 0.5, "low": None, "high": None}) == "+0.500"
    assert _ci_text(ci(-0.25, 0.75)) == "+0.250 [-0.250, +0.750]"
    assert _ci_text(ci(-0.25, 0.75), digits=1) == "+0.2 [-0.2, +0.8]"


# -- rule: every function beats the reference --------------------------------------------------------


def test_all_beat_when_every_interval_lies_below_zero():
    assert rule_all_beat({"a": ci(-0.5, -0.1), "b": ci(-0.3, -TINY)}) == (REPRODUCED, "every 95% interval lies below 0")


@pytest.mark.parametrize(
    "interval, label",
    [
        (ci(-0.3, 0.0), "not significantly better"),  # the upper end at exactly 0 is not below it
        (ci(-0.3, 0.2), "not significantly better"),
        (ci(0.0, 0.2), "not significantly better"),  # the lower end at exactly 0 is not above it
        (ci(TINY, 0.2), "significantly worse"),
    ],
)
def test_all_beat_refuted_by_one_function_that_does_not_beat_it(interval, label):
    verdict, why = rule_all_beat({"gelu_sine": ci(-0.5, -0.1), "gmtu": interval})
    assert verdict == NOT_REPRODUCED and why == f"{label}: GMTU"


def test_all_beat_names_the_worse_and_the_tied_functions():
    verdict, why = rule_all_beat(
        {"a": ci(-0.5, -0.1), "b": ci(-0.3, 0.2), "c": ci(0.1, 0.4), "d": ci(0.2, 0.3), "e": ci(-0.1, 0.1)}
    )
    assert verdict == NOT_REPRODUCED and why == "significantly worse: c, d; not significantly better: b, e"


def test_all_beat_without_every_interval_is_not_checkable_unless_one_loses():
    assert rule_all_beat({"a": ci(-0.5, -0.1), "turbulent": None}) == (NOT_CHECKABLE, "no interval for Turbulent")
    one_seed = {"mean": -0.2, "low": None, "high": None}
    assert rule_all_beat({"a": ci(-0.5, -0.1), "b": one_seed}) == (NOT_CHECKABLE, "no interval for b")
    assert rule_all_beat({"a": one_seed, "b": None}) == (NOT_CHECKABLE, "no interval for a, b")
    assert rule_all_beat({"a": ci(0.1, 0.5), "b": None}) == (NOT_REPRODUCED, "significantly worse: a")
    assert rule_all_beat({}) == (NOT_CHECKABLE, "no interval for any function")


# -- rules: one interval against zero ---------------------------------------------------------------


@pytest.mark.parametrize(
    "interval, verdict, phrase",
    [
        (ci(-0.2, -0.01), REPRODUCED, "the 95% interval [-0.200, -0.010] lies below 0"),
        (ci(-0.2, -0.0004), REPRODUCED, "lies below 0"),
        (ci(-0.2, 0.0), NOT_REPRODUCED, "the 95% interval [-0.200, +0.000] includes 0"),
        (ci(-0.2, 0.1), NOT_REPRODUCED, "[-0.200, +0.100] includes 0 (no significant difference)"),
        (ci(0.0, 0.1), NOT_REPRODUCED, "includes 0"),
        (ci(0.001, 0.1), NOT_REPRODUCED, "the 95% interval [+0.001, +0.100] lies above 0 (worse than ReLU)"),
    ],
)
def test_below_zero_at_its_boundaries(interval, verdict, phrase):
    got, why = rule_below_zero(interval)
    assert got == verdict and phrase in why


@pytest.mark.parametrize("interval", [None, {}, {"mean": -0.2, "low": None, "high": None}])
def test_below_zero_without_an_interval_is_not_checkable(interval):
    assert rule_below_zero(interval) == (NOT_CHECKABLE, "not measured")


@pytest.mark.parametrize(
    "interval, verdict, number",
    [
        (ci(-0.3, -0.1), REPRODUCED, "-0.300"),
        (ci(-0.3, 0.2), REPRODUCED, "-0.300"),
        (ci(0.0, 0.2), REPRODUCED, "+0.000"),  # touching 0 is not above it
        (ci(0.002, 0.2), NOT_REPRODUCED, "+0.002"),
    ],
)
def test_not_above_zero_at_its_boundaries(interval, verdict, number):
    got, why = rule_not_above_zero(interval)
    assert got == verdict and number in why
    assert ("does not lie above 0" in why) == (verdict == REPRODUCED)


def test_not_above_zero_without_an_interval_is_not_checkable():
    assert rule_not_above_zero({"mean": 0.1, "low": None, "high": None}) == (NOT_CHECKABLE, "one seed: no interval")
    assert rule_not_above_zero(None) == (NOT_CHECKABLE, "not measured")
    assert rule_not_above_zero({"mean": None, "low": None, "high": None}) == (NOT_CHECKABLE, "not measured")


# -- rule: GELUSine's α ------------------------------------------------------------------------------

ALPHAS = [0, 0.05, 0.1, 0.2, 0.5]


@pytest.mark.parametrize("optimum", [0.05, 0.1, 0.2])
def test_alpha_reproduced_when_the_optimum_lies_in_the_near_range_inclusive(optimum):
    means = [0.0 if a != optimum else -0.3 for a in ALPHAS]
    means[2] = min(means[2], -0.1)
    verdict, why = rule_alpha(ALPHAS, means, None)
    assert verdict == REPRODUCED and why == f"the grid optimum α* = {optimum:g} lies in [0.05, 0.2]"


@pytest.mark.parametrize("vs", [ci(-0.1, 0.2), ci(0.0, 0.2), ci(-0.2, 0.0), ci(0.0, 0.0)])
def test_alpha_reproduced_when_target_is_not_significantly_worse_than_a_far_optimum(vs):
    verdict, why = rule_alpha(ALPHAS, [0.0, -0.1, -0.15, -0.1, -0.3], vs)
    assert verdict == REPRODUCED and "α* = 0.5" in why and "α = 0.1 is not significantly worse" in why


@pytest.mark.parametrize("vs", [ci(TINY, 0.2), ci(0.05, 0.2)])
def test_alpha_refuted_when_target_is_significantly_worse(vs):
    verdict, why = rule_alpha(ALPHAS, [0.0, -0.1, -0.15, -0.1, -0.3], vs)
    assert (verdict, why) == (NOT_REPRODUCED, "the grid optimum is α* = 0.5 and α = 0.1 is significantly worse")


@pytest.mark.parametrize("vs", [None, {"mean": 0.1, "low": None, "high": None}, ci(-0.2, -TINY)])
def test_alpha_refuted_when_the_optimum_is_far_and_no_interval_saves_it(vs):
    assert rule_alpha(ALPHAS, [0.0, -0.1, -0.15, -0.1, -0.3], vs) == (NOT_REPRODUCED, "the grid optimum is α* = 0.5")


def test_alpha_refuted_when_plain_gelu_is_best_even_within_noise():
    assert rule_alpha(ALPHAS, [-0.3, -0.1, -0.15, -0.1, 0.3], ci(-0.1, 0.4)) == (
        NOT_REPRODUCED,
        "α = 0 (plain GELU) is best",
    )
    assert rule_alpha(ALPHAS, [-0.3, -0.1, -0.15, -0.1, 0.3], ci(0.0, 0.4)) == (
        NOT_REPRODUCED,
        "α = 0 (plain GELU) is best",
    )  # touching 0: not significantly worse
    assert rule_alpha(ALPHAS, [-0.3, -0.1, -0.15, -0.1, 0.3], ci(0.1, 0.4)) == (
        NOT_REPRODUCED,
        "α = 0 (plain GELU) is best and α = 0.1 is significantly worse",
    )
    assert rule_alpha([0, 0.01, 0.1], [-0.1, -0.2, 0.0], None) == (NOT_REPRODUCED, "the grid optimum is α* = 0.01")


def test_alpha_not_checkable_without_the_target_scored():
    assert rule_alpha([0, 0.2], [0.0, -0.1], None) == (NOT_CHECKABLE, "α = 0.1 or the grid was not scored")
    assert rule_alpha(ALPHAS, [0.0, -0.1, None, -0.2, 0.1], ci(-1, 1))[0] == NOT_CHECKABLE
    assert rule_alpha(ALPHAS, [None] * 5, None)[0] == NOT_CHECKABLE
    assert rule_alpha([], [], None)[0] == NOT_CHECKABLE


def test_alpha_other_target_and_range():
    assert rule_alpha([0.1, 0.3, 0.6], [0.0, -0.2, -0.1], None, target=0.3, near=(0.3, 0.3)) == (
        REPRODUCED,
        "the grid optimum α* = 0.3 lies in [0.3, 0.3]",
    )
    assert rule_alpha([0.1, 0.3, 0.6], [0.0, -0.2, -0.1], None, target=0.6)[0] == NOT_REPRODUCED
    assert rule_alpha([0.1, 0.3], [0.0, -0.2], None, target=0.5) == (
        NOT_CHECKABLE,
        "α = 0.5 or the grid was not scored",
    )


# -- rules: batch statistics and the probe -----------------------------------------------------------


@pytest.mark.parametrize(
    "wins, fails, verdict, why",
    [
        (True, True, REPRODUCED, "it wins the lab and fails downstream"),
        (True, False, NOT_REPRODUCED, "it wins the lab but does not fail downstream"),
        (True, None, NOT_CHECKABLE, "it wins the lab; downstream was not run"),
        (False, True, NOT_REPRODUCED, "it does not win our lab even with batch statistics"),
        (False, False, NOT_REPRODUCED, "it does not win our lab even with batch statistics"),
        (False, None, NOT_REPRODUCED, "it does not win our lab even with batch statistics"),
        (None, True, NOT_CHECKABLE, "the batch-statistics function was not scored"),
        (None, None, NOT_CHECKABLE, "the batch-statistics function was not scored"),
    ],
)
def test_batch_statistics_every_case(wins, fails, verdict, why):
    assert rule_batch_statistics(wins, fails) == (verdict, why)


EXPECTED = {"relu": True, "turbulent": False, "gelu": True}


def test_probe_reproduced_when_it_flags_exactly_the_batch_dependent_functions():
    assert rule_probe({"relu": True, "turbulent": False, "gelu": True, "extra": False}, EXPECTED) == (
        REPRODUCED,
        "flagged Turbulent; every other function passed as pointwise",
    )


def test_probe_names_every_flagged_function():
    expected = {"relu": True, "turbulent": False, "batch_norm_like": False}
    assert rule_probe(dict(expected), expected) == (
        REPRODUCED,
        "flagged Turbulent, batch_norm_like; every other function passed as pointwise",
    )


@pytest.mark.parametrize(
    "flags, wrong",
    [
        ({"relu": True, "turbulent": True, "gelu": True}, "Turbulent"),  # missed
        ({"relu": True, "turbulent": False, "gelu": False}, "GELU"),  # a false alarm
        ({"relu": False, "turbulent": True, "gelu": True}, "ReLU, Turbulent"),
    ],
)
def test_probe_refuted_by_a_misclassified_function(flags, wrong):
    assert rule_probe(flags, EXPECTED) == (NOT_REPRODUCED, f"misclassified: {wrong}")


def test_probe_not_checkable():
    assert rule_probe({"relu": True, "turbulent": False}, EXPECTED) == (NOT_CHECKABLE, "not every function was probed")
    assert rule_probe({"relu": True, "turbulent": None, "gelu": True}, EXPECTED)[0] == NOT_CHECKABLE
    assert rule_probe({"relu": True}, {}) == (NOT_CHECKABLE, "not every function was probed")
    assert rule_probe({"relu": True, "gelu": True}, {"relu": True, "gelu": True}) == (
        NOT_CHECKABLE,
        "no batch-dependent function among those probed",
    )
    # a false alarm among pointwise-only functions is a mistake, not "nothing to flag"
    assert rule_probe({"relu": True, "gelu": False}, {"relu": True, "gelu": True}) == (
        NOT_REPRODUCED,
        "misclassified: GELU",
    )


# -- rule: the best downstream -----------------------------------------------------------------------


def test_best_first_second_and_last():
    values = {"relu": 0.0, "gelu_sinc_perturbation": -0.3, "gelu": -0.1}
    assert rule_best(values, "gelu_sinc_perturbation") == (REPRODUCED, "GSP is first of 3")
    assert rule_best(values, "gelu") == (NOT_REPRODUCED, "GELU is 2th of 3; best: GSP")
    assert rule_best(values, "relu") == (NOT_REPRODUCED, "ReLU is 3th of 3; best: GSP")


def test_best_needs_the_target_and_a_competitor_scored():
    message = (NOT_CHECKABLE, "GSP or its competitors were not scored downstream")
    assert rule_best({"gelu_sinc_perturbation": -0.3, "gelu": None}, "gelu_sinc_perturbation") == message
    assert rule_best({"gelu_sinc_perturbation": None, "gelu": -0.1, "relu": 0.0}, "gelu_sinc_perturbation") == message
    assert rule_best({}, "gelu_sinc_perturbation") == message
    assert rule_best({"a": 0.0, "b": 1e-12}, "a") == (REPRODUCED, "a is first of 2")  # two: decidable
    assert rule_best({"a": 1e-12, "b": 0.0}, "a") == (NOT_REPRODUCED, "a is 2th of 2; best: b")
    assert rule_best({"a": -0.0, "b": None, "c": 0.5}, "a") == (REPRODUCED, "a is first of 2")


# -- rule: the validity study ------------------------------------------------------------------------

CELL = {"rho": 0.5, "low": 0.01, "high": 0.8, "n": 24}


@pytest.mark.parametrize(
    "low, verdict", [(0.01, REPRODUCED), (TINY, REPRODUCED), (0.0, NOT_REPRODUCED), (-0.01, NOT_REPRODUCED)]
)
def test_validity_at_zero(low, verdict):
    got, why = rule_validity({**CELL, "low": low})
    assert got == verdict
    assert why.startswith(f"ρ = +0.50 [{low:+.2f}, +0.80] over 24 functions: the 95% interval ")
    assert why.endswith("lies above 0" if verdict == REPRODUCED else "does not lie above 0")


def test_validity_needs_four_functions_and_an_interval():
    assert rule_validity({**CELL, "n": 4})[0] == REPRODUCED and "over 4 functions" in rule_validity({**CELL, "n": 4})[1]
    for cell in (
        None,
        {},
        {**CELL, "n": 3},
        {**CELL, "n": None},
        {k: v for k, v in CELL.items() if k != "n"},
        {**CELL, "rho": None},
        {**CELL, "low": None, "high": None},
    ):
        assert rule_validity(cell) == (
            NOT_CHECKABLE,
            "needs the validity study (`actmine validate`, at least 4 "
            "functions with an interval): the quick digits correlation of part 5 "
            "cannot decide it",
        ), cell
    assert rule_validity({**CELL, "rho": -0.4, "low": -0.7, "high": -0.1, "n": 30}) == (
        NOT_REPRODUCED,
        "ρ = -0.40 [-0.70, -0.10] over 30 functions: the 95% interval does not lie above 0",
    )


# -- the validity study's file -----------------------------------------------------------------------


def write(path, document):
    path.write_text(json.dumps(document) if not isinstance(document, str) else document, encoding="utf-8")
    return path


POOLED = {"rho": 0.3, "low": 0.02, "high": 0.6, "n": 26}
CELLS = {
    "series": {"rho": 0.41, "low": 0.05, "high": 0.7, "n": 26},
    "diabetes": {"rho": 0.1, "low": -0.3, "high": 0.45, "n": 26},
}


def test_load_validity_reads_the_pooled_cell_and_the_study(tmp_path):
    path = write(
        tmp_path / "validity.json",
        {
            "benchmarks": ["diabetes", "series"],
            "seeds": [0, 1],
            "labs": ["lab"],
            "correlations": {"per_benchmark": CELLS, "pooled": POOLED},
        },
    )
    assert load_validity(path) == {
        "path": str(path),
        "overall": POOLED,
        "per_benchmark": CELLS,
        "benchmarks": ["diabetes", "series"],
        "seeds": [0, 1],
        "lab_suites": ["lab"],
    }
    assert load_validity(str(path))["overall"] == POOLED


def test_load_validity_falls_back_to_a_single_benchmark(tmp_path):
    one = {"series": CELLS["series"]}
    study = load_validity(write(tmp_path / "v.json", {"correlations": {"per_benchmark": one}}))
    assert study["overall"] == CELLS["series"] and study["benchmarks"] == ["series"]
    assert study["seeds"] is None and study["lab_suites"] == []
    two = load_validity(write(tmp_path / "v.json", {"correlations": {"per_benchmark": CELLS, "pooled": None}}))
    assert two["overall"] is None and two["benchmarks"] == ["series", "diabetes"]


@pytest.mark.parametrize(
    "pooled",
    [
        {"rho": 0.4, "n": 26},
        {"rho": 0.4, "low": None, "high": 0.6},
        {"rho": "0.4", "low": 0.1, "high": 0.6},
        [0.4, 0.1, 0.6],
    ],
)
def test_load_validity_without_an_interval_has_no_overall_cell(tmp_path, pooled):
    study = load_validity(write(tmp_path / "v.json", {"correlations": {"per_benchmark": CELLS, "pooled": pooled}}))
    assert study is not None and study["overall"] is None


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        json.dumps({"benchmarks": []}),
        json.dumps({"correlations": {}}),
        json.dumps({"correlations": {"per_benchmark": 3}}),
        json.dumps([1, 2]),
    ],
)
def test_load_validity_of_something_else_is_none(tmp_path, content):
    assert load_validity(write(tmp_path / "v.json", content)) is None


def test_load_validity_without_a_file_is_none(tmp_path):
    (tmp_path / "bad.json").write_bytes(b"\xff\xfe{")
    assert load_validity(tmp_path / "bad.json") is None  # not UTF-8
    assert load_validity(None) is None and load_validity("") is None
    assert load_validity(tmp_path / "absent.json") is None and load_validity(tmp_path) is None


# -- rules: seconds and failures ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "seconds, verdict, why",
    [
        (0.0, REPRODUCED, "median 0.0 s < 10 s"),
        (2.5, REPRODUCED, "median 2.5 s < 10 s"),
        (9.99, REPRODUCED, "median 10.0 s < 10 s"),
        (10.0, NOT_REPRODUCED, "median 10.0 s ≥ 10 s"),
        (30.0, NOT_REPRODUCED, "median 30.0 s ≥ 10 s"),
        (None, NOT_CHECKABLE, "not timed"),
    ],
)
def test_seconds_at_the_limit(seconds, verdict, why):
    assert rule_seconds(seconds) == (verdict, why)


def test_seconds_with_another_limit():
    assert rule_seconds(2.0, limit=2.5) == (REPRODUCED, "median 2.0 s < 2.5 s")
    assert rule_seconds(2.5, limit=2.5) == (NOT_REPRODUCED, "median 2.5 s ≥ 2.5 s")


def test_no_failures():
    assert rule_no_failures({"relu": 0, "gelu": 0}) == (REPRODUCED, "all jobs of 2 pointwise functions scored")
    assert rule_no_failures({"relu": 0}) == (REPRODUCED, "all jobs of 1 pointwise functions scored")
    assert rule_no_failures({"relu": 0, "gelu": 2, "gelu_sinc_perturbation": 1}) == (
        NOT_REPRODUCED,
        "failed jobs: GELU (2), GSP (1)",
    )
    assert rule_no_failures(None) == (NOT_CHECKABLE, "downstream was not run")
    assert rule_no_failures({}) == (NOT_CHECKABLE, "downstream was not run")


# -- every rule gives one of the three verdicts -----------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(low=finite, width=st.floats(min_value=0, max_value=10), seconds=st.one_of(st.none(), finite))
def test_every_rule_gives_a_known_verdict_and_a_reason(low, width, seconds):
    interval = ci(low, low + width)
    results = [
        rule_below_zero(interval),
        rule_not_above_zero(interval),
        rule_all_beat({"a": interval}),
        rule_seconds(seconds),
        rule_validity({"rho": low, "low": low, "high": low + width, "n": 5}),
    ]
    for verdict, why in results:
        assert verdict in VERDICTS and why
    assert (rule_below_zero(interval)[0] == REPRODUCED) == (low + width < 0)
    assert (rule_not_above_zero(interval)[0] == REPRODUCED) == (low <= 0)
    assert (rule_all_beat({"a": interval})[0] == REPRODUCED) == (low + width < 0)
