"""The transfer summary (`actmine.transfer.summary`): per-seed log-ratios against ReLU at the error
floor and the clip, and `summarise`'s rows (mean ± sample std, pairing by common seeds, replaced
and failed results, bounded or unbounded benchmarks), each against numbers worked out by hand here."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actmine.transfer import runner
from actmine.transfer.runner import TransferResult
from actmine.transfer.summary import ERROR_FLOOR, LOG_RATIO_CLIP, REFERENCE, _mean_std, log_ratio, summarise


def result(
    activation: str, seed: int, score: float | None, benchmark: str = "b", ok: bool = True, metric: str = "accuracy"
) -> TransferResult:
    if not ok:
        return TransferResult(
            activation, benchmark, seed, ok=False, metric=metric, error={"code": "job_error", "message": "boom"}
        )
    return TransferResult(activation, benchmark, seed, ok=True, score=score, metric=metric)


def by_cell(rows):
    return {(r["activation"], r["benchmark"]): r for r in rows}


def test_the_constants():
    assert (REFERENCE, ERROR_FLOOR, LOG_RATIO_CLIP) == ("relu", 1e-6, 3.0)
    # the runner's names are the summary's (existing imports keep working)
    assert (runner.log_ratio, runner.summarise) == (log_ratio, summarise)
    assert (runner.ERROR_FLOOR, runner.LOG_RATIO_CLIP, runner.REFERENCE) == (ERROR_FLOOR, LOG_RATIO_CLIP, REFERENCE)


# ---- log_ratio ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "score, reference, expected",
    [
        (0.9, 0.8, math.log(0.1 / 0.2)),  # half ReLU's error: −ln 2, better
        (0.8, 0.9, math.log(0.2 / 0.1)),  # twice ReLU's error: +ln 2, worse
        (0.7, 0.7, 0.0),
        (0.0, 0.5, math.log(1.0 / 0.5)),  # score 0: error 1
        (0.5, 0.0, math.log(0.5 / 1.0)),
    ],
)
def test_bounded_log_ratio_is_the_log_of_the_error_ratio(score, reference, expected):
    assert log_ratio(score, reference) == pytest.approx(expected, abs=1e-12)
    assert log_ratio(score, reference, bounded=True) == pytest.approx(expected, abs=1e-12)


def test_bounded_errors_are_floored():
    # a perfect score's error is ERROR_FLOOR = 1e-6, not 0: against an error of 4e-6 that is −ln 4
    assert log_ratio(1.0, 1.0 - 4e-6) == pytest.approx(-math.log(4.0), rel=1e-6)
    assert log_ratio(1.0 - 4e-6, 1.0) == pytest.approx(math.log(4.0), rel=1e-6)
    # errors below the floor count as the floor: two perfect (or better than perfect) scores tie
    assert log_ratio(1.0, 1.0) == 0.0
    assert log_ratio(1.0 - 0.5e-6, 1.0 - 2e-6) == pytest.approx(-math.log(2.0), rel=1e-6)
    assert log_ratio(1.5, 1.0 - 2e-6) == pytest.approx(-math.log(2.0), rel=1e-6)
    # exactly at the floor
    assert log_ratio(1.0 - 1e-6, 1.0 - 3e-6) == pytest.approx(-math.log(3.0), rel=1e-6)


def test_bounded_log_ratio_is_clipped_at_three():
    assert log_ratio(1.0, 0.9) == -LOG_RATIO_CLIP  # ln(1e-6 / 0.1) = −11.5
    assert log_ratio(0.9, 1.0) == LOG_RATIO_CLIP
    assert log_ratio(0.0, 0.999) == LOG_RATIO_CLIP  # ln(1 / 0.001) = 6.9
    # just inside the clip: untouched
    inside = 1.0 - 0.01 * math.exp(2.9)  # error 0.01·e^2.9 against 0.01
    assert log_ratio(inside, 0.99) == pytest.approx(2.9)
    assert log_ratio(0.99, inside) == pytest.approx(-2.9)
    beyond = 1.0 - 0.01 * math.exp(3.1)
    assert log_ratio(beyond, 0.99) == 3.0 and log_ratio(0.99, beyond) == -3.0


def test_unbounded_log_ratio_is_minus_the_log_of_the_score_ratio():
    assert log_ratio(4.0, 2.0, bounded=False) == pytest.approx(-math.log(2.0))  # twice ReLU's: better
    assert log_ratio(2.0, 4.0, bounded=False) == pytest.approx(math.log(2.0))
    assert log_ratio(0.5, 0.5, bounded=False) == 0.0
    assert log_ratio(30.0, 2.0, bounded=False) == pytest.approx(-math.log(15.0))  # −2.71: inside the clip
    assert log_ratio(100.0, 1.0, bounded=False) == -3.0  # −4.6: clipped
    assert log_ratio(1.0, 100.0, bounded=False) == 3.0


@pytest.mark.parametrize("score, reference", [(0.0, 1.0), (1.0, 0.0), (-1.0, 2.0), (2.0, -1.0), (0.0, 0.0)])
def test_unbounded_log_ratio_is_nan_for_non_positive_scores(score, reference):
    assert math.isnan(log_ratio(score, reference, bounded=False))


def test_a_tiny_positive_unbounded_score_is_clipped_not_nan():
    assert log_ratio(1e-300, 1.0, bounded=False) == 3.0


@settings(max_examples=200, deadline=None)
@given(st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_bounded_log_ratio_is_antisymmetric_and_within_the_clip(score, reference):
    value = log_ratio(score, reference)
    assert -LOG_RATIO_CLIP <= value <= LOG_RATIO_CLIP
    assert log_ratio(reference, score) == pytest.approx(-value, abs=1e-9)
    if score > reference:  # a higher score is a smaller error: never worse than ReLU
        assert value <= 0.0


# ---- _mean_std ---------------------------------------------------------------------------------


def test_mean_and_sample_std():
    assert _mean_std([]) == (None, None)
    assert _mean_std([0.25]) == (0.25, None)
    mean, std = _mean_std([1.0, 2.0, 3.0, 4.0])
    # deviations ±1.5, ±0.5: squares sum to 5, divided by n − 1 = 3
    assert mean == 2.5 and std == pytest.approx(math.sqrt(5.0 / 3.0))
    assert _mean_std([2.0, 2.0]) == (2.0, 0.0)
    assert _mean_std([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2.0)))


# ---- summarise ---------------------------------------------------------------------------------


def test_a_row_has_every_key_in_order():
    rows = summarise([result("relu", 0, 0.5), result("relu", 1, 0.75)])
    assert rows == [
        {
            "activation": "relu",
            "benchmark": "b",
            "metric": "accuracy",
            "n": 2,
            "failed": 0,
            "mean": 0.625,
            "std": pytest.approx(0.125 * math.sqrt(2.0)),
            "log_ratio_vs_relu": 0.0,
            "log_ratio_std": 0.0,
        }
    ]
    assert list(rows[0]) == [
        "activation",
        "benchmark",
        "metric",
        "n",
        "failed",
        "mean",
        "std",
        "log_ratio_vs_relu",
        "log_ratio_std",
    ]


def test_pairs_only_the_seeds_both_scored():
    rows = summarise(
        [
            result("relu", 0, 0.9),
            result("relu", 1, 0.8),
            result("relu", 2, 0.6),
            result("gelu", 1, 0.9),
            result("gelu", 2, 0.8),
            result("gelu", 3, 0.1),
        ]
    )
    relu, gelu = rows
    # GELU's raw statistics use all three of its seeds: mean 0.6, deviations 0.3, 0.2, −0.5
    assert gelu["n"] == 3 and gelu["mean"] == pytest.approx(0.6)
    assert gelu["std"] == pytest.approx(math.sqrt((0.09 + 0.04 + 0.25) / 2))
    # the log-ratio only seeds 1 and 2: ln(0.1 / 0.2) and ln(0.2 / 0.4), both −ln 2
    assert gelu["log_ratio_vs_relu"] == pytest.approx(-math.log(2.0))
    assert gelu["log_ratio_std"] == pytest.approx(0.0, abs=1e-12)
    assert relu["log_ratio_vs_relu"] == 0.0 and relu["n"] == 3


def test_the_log_ratio_mean_and_std_over_seeds():
    rows = summarise([result("relu", 0, 0.9), result("relu", 1, 0.8), result("silu", 0, 0.95), result("silu", 1, 0.6)])
    # seed 0: ln(0.05 / 0.1) = −ln 2; seed 1: ln(0.4 / 0.2) = ln 2
    silu = by_cell(rows)["silu", "b"]
    assert silu["log_ratio_vs_relu"] == pytest.approx(0.0, abs=1e-12)
    assert silu["log_ratio_std"] == pytest.approx(math.sqrt(2.0) * math.log(2.0))


def test_no_common_seed_or_no_relu_gives_none():
    rows = by_cell(
        summarise([result("relu", 0, 0.9, "b1"), result("gelu", 1, 0.8, "b1"), result("gelu", 0, 0.7, "b2")])
    )
    assert rows["gelu", "b1"]["log_ratio_vs_relu"] is None and rows["gelu", "b1"]["log_ratio_std"] is None
    assert rows["gelu", "b1"]["mean"] == 0.8 and rows["gelu", "b1"]["std"] is None
    assert rows["gelu", "b2"]["log_ratio_vs_relu"] is None and rows["gelu", "b2"]["n"] == 1


def test_the_reference_of_another_benchmark_is_not_used():
    rows = by_cell(
        summarise(
            [
                result("relu", 0, 0.5, "b1"),
                result("relu", 0, 0.9, "b2"),
                result("gelu", 0, 0.75, "b1"),
                result("gelu", 0, 0.8, "b2"),
            ]
        )
    )
    assert rows["gelu", "b1"]["log_ratio_vs_relu"] == pytest.approx(math.log(0.25 / 0.5))
    assert rows["gelu", "b2"]["log_ratio_vs_relu"] == pytest.approx(math.log(0.2 / 0.1))


def test_one_common_seed_has_no_std():
    rows = by_cell(summarise([result("relu", 0, 0.9), result("gelu", 0, 0.8), result("gelu", 1, 0.7)]))
    gelu = rows["gelu", "b"]
    assert gelu["log_ratio_vs_relu"] == pytest.approx(math.log(2.0)) and gelu["log_ratio_std"] is None
    assert rows["relu", "b"]["std"] is None and rows["relu", "b"]["log_ratio_std"] is None
    assert gelu["std"] == pytest.approx(0.1 / math.sqrt(2.0))


def test_a_later_result_replaces_an_earlier_one():
    rows = summarise([result("relu", 0, 0.5), result("relu", 0, 0.7)])
    assert rows[0]["n"] == 1 and rows[0]["mean"] == 0.7 and rows[0]["failed"] == 0
    # a failure replaced by a success (a resumed run's retry), and the reverse
    rows = by_cell(
        summarise(
            [
                result("relu", 0, 0.8),
                result("gelu", 0, None, ok=False),
                result("gelu", 0, 0.9),
                result("tanh", 0, 0.9),
                result("tanh", 0, None, ok=False),
            ]
        )
    )
    assert (rows["gelu", "b"]["n"], rows["gelu", "b"]["failed"]) == (1, 0)
    assert rows["gelu", "b"]["log_ratio_vs_relu"] == pytest.approx(math.log(0.5))
    assert (rows["tanh", "b"]["n"], rows["tanh", "b"]["failed"]) == (0, 1)
    assert rows["tanh", "b"]["mean"] is None and rows["tanh", "b"]["log_ratio_vs_relu"] is None


def test_failed_results_are_counted_not_scored():
    rows = by_cell(
        summarise(
            [
                result("relu", 0, 0.9),
                result("relu", 1, None, ok=False),
                result("relu", 2, 0.7),
                result("gelu", 0, 0.8),
                result("gelu", 1, 0.95),
                result("gelu", 2, None, ok=False),
            ]
        )
    )
    relu, gelu = rows["relu", "b"], rows["gelu", "b"]
    assert (relu["n"], relu["failed"], relu["mean"]) == (2, 1, pytest.approx(0.8))
    assert (gelu["n"], gelu["failed"], gelu["mean"]) == (2, 1, pytest.approx(0.875))
    # seed 1: ReLU failed; seed 2: GELU failed; only seed 0 pairs: ln(0.2 / 0.1)
    assert gelu["log_ratio_vs_relu"] == pytest.approx(math.log(2.0)) and gelu["log_ratio_std"] is None


def test_an_activation_that_failed_everywhere():
    rows = summarise(
        [
            result("relu", 0, 0.9),
            result("bad", 0, None, ok=False, metric=""),
            result("bad", 1, None, ok=False, metric=""),
        ]
    )
    assert rows[1] == {
        "activation": "bad",
        "benchmark": "b",
        "metric": "",
        "n": 0,
        "failed": 2,
        "mean": None,
        "std": None,
        "log_ratio_vs_relu": None,
        "log_ratio_std": None,
    }


def test_the_metric_is_the_first_one_named():
    rows = summarise([result("relu", 0, None, ok=False, metric=""), result("relu", 1, 0.5, metric="auc")])
    assert rows[0]["metric"] == "auc"


def test_rows_come_in_order_of_first_appearance():
    rows = summarise(
        [
            result("tanh", 0, 0.5, "b2"),
            result("relu", 0, 0.5, "b1"),
            result("tanh", 1, 0.5, "b2"),
            result("relu", 0, 0.5, "b2"),
            result("gelu", 0, 0.5, "b1"),
        ]
    )
    assert [(r["activation"], r["benchmark"]) for r in rows] == [
        ("tanh", "b2"),
        ("relu", "b1"),
        ("relu", "b2"),
        ("gelu", "b1"),
    ]
    assert summarise([]) == []


def test_seeds_are_summarised_in_seed_order():
    # the same scores in any arrival order give the same statistics
    forward = summarise([result("relu", s, 0.1 * (s + 1)) for s in range(4)])
    backward = summarise([result("relu", s, 0.1 * (s + 1)) for s in reversed(range(4))])
    assert forward == backward


def test_bounded_is_decided_per_benchmark_over_every_activation():
    rows = by_cell(
        summarise(
            [
                # b_acc: accuracies in [0, 1]: error ratios
                result("relu", 0, 0.8, "b_acc"),
                result("gelu", 0, 0.9, "b_acc"),
                # b_reward: one score above 1 (another activation's): scores ratios for everyone on it
                result("relu", 0, 0.5, "b_reward"),
                result("gelu", 0, 0.8, "b_reward"),
                result("tanh", 0, 1.5, "b_reward"),
            ]
        )
    )
    assert rows["gelu", "b_acc"]["log_ratio_vs_relu"] == pytest.approx(math.log(0.1 / 0.2))
    assert rows["gelu", "b_reward"]["log_ratio_vs_relu"] == pytest.approx(-math.log(0.8 / 0.5))
    assert rows["tanh", "b_reward"]["log_ratio_vs_relu"] == pytest.approx(-math.log(1.5 / 0.5))


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 0, 1), (1, 2, 0), (2, 1, 0)])
def test_boundedness_does_not_depend_on_the_order_of_the_results(order):
    results = [result("relu", 0, 0.5), result("gelu", 0, 0.8), result("tanh", 0, 1.5)]
    rows = by_cell(summarise([results[i] for i in order]))
    assert rows["gelu", "b"]["log_ratio_vs_relu"] == pytest.approx(-math.log(0.8 / 0.5))


def test_scores_of_exactly_zero_and_one_are_bounded():
    rows = by_cell(
        summarise(
            [
                result("relu", 0, 1.0, "top"),
                result("gelu", 0, 0.5, "top"),
                result("relu", 0, 0.0, "bottom"),
                result("gelu", 0, 0.5, "bottom"),
            ]
        )
    )
    # bounded: ln(0.5 / 1e-6) clipped to 3 (unbounded would be −ln 0.5 = 0.69)
    assert rows["gelu", "top"]["log_ratio_vs_relu"] == 3.0
    # bounded: ln(0.5 / 1) = −ln 2 (unbounded would be NaN: no ratio at all)
    assert rows["gelu", "bottom"]["log_ratio_vs_relu"] == pytest.approx(-math.log(2.0))


def test_a_negative_score_makes_the_benchmark_unbounded_and_its_seed_unpaired():
    rows = by_cell(
        summarise([result("relu", 0, 2.0), result("relu", 1, 3.0), result("gelu", 0, -1.0), result("gelu", 1, 6.0)])
    )
    gelu = rows["gelu", "b"]
    # seed 0: −ln(−1 / 2) is NaN and left out; seed 1: −ln(6 / 3)
    assert gelu["log_ratio_vs_relu"] == pytest.approx(-math.log(2.0)) and gelu["log_ratio_std"] is None
    assert gelu["n"] == 2 and gelu["mean"] == 2.5


def test_failed_results_do_not_decide_boundedness():
    rows = by_cell(summarise([result("relu", 0, 0.8), result("gelu", 0, 0.9), result("tanh", 0, None, ok=False)]))
    assert rows["gelu", "b"]["log_ratio_vs_relu"] == pytest.approx(math.log(0.1 / 0.2))


def test_mappings_are_validated_results():
    rows = summarise([result("relu", 0, 0.8).to_dict(), result("gelu", 0, 0.9).to_dict()])
    assert rows == summarise([result("relu", 0, 0.8), result("gelu", 0, 0.9)])
    with pytest.raises(ValueError, match="finite score"):
        summarise([{"activation": "relu", "benchmark": "b", "seed": 0, "ok": True, "score": math.nan}])
    with pytest.raises(ValueError, match="lacks"):
        summarise([{"activation": "relu", "benchmark": "b"}])


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(st.integers(0, 5), st.floats(0.01, 0.99), min_size=1),
    st.dictionaries(st.integers(0, 5), st.floats(0.01, 0.99), min_size=1),
)
def test_summarise_agrees_with_a_direct_computation(relu_scores, act_scores):
    rows = by_cell(
        summarise(
            [result("relu", s, v) for s, v in relu_scores.items()]
            + [result("act", s, v) for s, v in act_scores.items()]
        )
    )
    act = rows["act", "b"]
    values = [act_scores[s] for s in sorted(act_scores)]
    assert act["n"] == len(values) and act["mean"] == pytest.approx(sum(values) / len(values))
    common = sorted(set(relu_scores) & set(act_scores))
    ratios = [max(-3.0, min(3.0, math.log((1 - act_scores[s]) / (1 - relu_scores[s])))) for s in common]
    if ratios:
        assert act["log_ratio_vs_relu"] == pytest.approx(sum(ratios) / len(ratios))
    else:
        assert act["log_ratio_vs_relu"] is None
    assert (act["log_ratio_std"] is None) == (len(ratios) < 2)
