"""Real-data extrapolation benchmarks (actmine/transfer/realdata.py): the loaders read the files
bundled with statsmodels and scikit-learn, the splits put every test point beyond the training range
and standardise by the training part only, the score's log-ratio against ReLU is the log-ratio of
the test errors, ReLU learns the training range under the calibrated options, runs are
deterministic per seed, a missing package is a clear `DatasetMissing`, and one job runs through
the real transfer runner in a child process."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torch import nn

from actmine import activations
from actmine.transfer import base
from actmine.transfer.base import BenchmarkScore, DatasetMissing, get_benchmark
from actmine.transfer.realdata import (
    DEFAULT_SERIES_FITS,
    NMSE_CEILING,
    NMSE_FLOOR,
    SERIES,
    Diabetes,
    Series,
    ar_split,
    diabetes_split,
    load_diabetes,
    load_series,
    nmse_score,
    regression_mlp,
    trend_split,
)
from actmine.transfer.runner import (
    TransferJob,
    TransferLimits,
    TransferResult,
    execute_job,
    log_ratio,
    run_transfer,
)

# Length, first and last value of each bundled series as the loaders return them (co2: monthly
# means of the weekly readings, March 1958 to December 2001; elnino: read row by row).
BUNDLED = {
    "co2": (526, 316.1, 371.02),
    "sunspots": (309, 5.0, 2.9),
    "nile": (100, 1120.0, 740.0),
    "elnino": (732, 23.11, 22.07),
    "realgdp": (203, 2710.349, 12990.341),
}


def act(name: str):
    return lambda: activations.get(name)


# -- the loaders read the real bundled files ----------------------------------------------------


@pytest.mark.parametrize("name", list(BUNDLED))
def test_bundled_series_load_in_time_order_without_gaps(name):
    values = load_series(name)
    length, first, last = BUNDLED[name]
    assert values.shape == (length,) and values.dtype == np.float64
    assert np.isfinite(values).all()
    assert values[0] == pytest.approx(first) and values[-1] == pytest.approx(last)


def test_every_registered_series_is_checked_above():
    assert set(SERIES) == set(BUNDLED)
    with pytest.raises(ValueError, match="unknown series 'gdp'"):
        load_series("gdp")


def test_bundled_diabetes_loads_with_its_feature_names():
    features, target, names = load_diabetes()
    assert features.shape == (442, 10) and target.shape == (442,)
    assert np.isfinite(features).all() and np.isfinite(target).all()
    assert names == ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    assert target[:3].tolist() == [151.0, 75.0, 141.0]


# -- the splits ----------------------------------------------------------------------------------

series_values = arrays(
    np.float64, st.integers(30, 120), elements=st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
)
fractions = st.floats(0.5, 0.9)


@settings(max_examples=40, deadline=None)
@given(series_values, fractions)
def test_trend_split_tests_only_later_times_standardised_by_the_training_part(values, fraction):
    split = trend_split(values, fraction)
    n_train = int(math.floor(len(values) * fraction))
    assert split.train_index.tolist() == list(range(n_train))
    assert split.test_index.tolist() == list(range(n_train, len(values)))
    assert split.x_test.min() > split.x_train.max()  # the test lies beyond in time
    assert split.x_train.mean() == pytest.approx(0, abs=1e-9)
    assert split.x_train.std() == pytest.approx(1)
    # no leakage: what comes after the training part changes nothing of the training data
    changed = values.copy()
    changed[n_train:] = changed[n_train:] * 7 + 100
    other = trend_split(changed, fraction)
    assert np.array_equal(other.x_train, split.x_train) and np.array_equal(other.y_train, split.y_train)


@settings(max_examples=40, deadline=None)
@given(series_values, fractions, st.integers(1, 12))
def test_ar_split_predicts_each_value_from_the_lags_before_it(values, fraction, lags):
    n_train = int(math.floor(len(values) * fraction))
    split = ar_split(values, lags, fraction)
    assert split.x_train.shape == (n_train - lags, lags) and split.x_test.shape == (len(values) - n_train, lags)
    assert split.train_index.max() < n_train <= split.test_index.min()  # targets split by time
    # rows are the standardised values just before the target, standardised by the training part
    mean, std = values[:n_train].mean(), values[:n_train].std() or 1.0
    scaled = (values - mean) / std
    for x, y, target in [
        (split.x_train, split.y_train, split.train_index),
        (split.x_test, split.y_test, split.test_index),
    ]:
        assert np.allclose(y[:, 0], scaled[target])
        assert np.allclose(x, np.stack([scaled[t - lags : t] for t in target]))
    changed = values.copy()
    changed[n_train:] += 50.0
    assert np.array_equal(ar_split(changed, lags, fraction).x_train, split.x_train)


def test_splits_refuse_impossible_settings():
    values = np.arange(20.0)
    with pytest.raises(ValueError, match="train_fraction"):
        trend_split(values, 1.0)
    with pytest.raises(ValueError, match="lags"):
        ar_split(values, lags=16, train_fraction=0.8)


@pytest.mark.parametrize("feature", ["bmi", "s5", "bp"])
def test_diabetes_split_trains_below_the_quantile_and_tests_above(feature):
    features, target, names = load_diabetes()
    column = names.index(feature)
    split = diabetes_split(features, target, column, 0.7)
    train, test = features[split.train_index, column], features[split.test_index, column]
    assert train.max() < test.min()  # no test row inside the range
    assert sorted([*split.train_index, *split.test_index]) == list(range(442))
    assert 0.65 < len(train) / 442 <= 0.7
    assert np.allclose(split.x_train.mean(axis=0), 0, atol=1e-9) and np.allclose(split.y_train.mean(), 0)
    assert split.x_test[:, column].min() > split.x_train[:, column].max()


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, (60, 3), elements=st.integers(0, 6).map(float)), fractions)
def test_diabetes_split_keeps_ties_at_the_cut_together(features, fraction):
    # Integer features: many ties, some at the cut. No value is on both sides.
    target = features.sum(axis=1)
    column = np.sort(features[:, 1])
    if column[int(math.floor(60 * fraction))] == column[0]:
        with pytest.raises(ValueError, match="no row lies below the cut"):
            diabetes_split(features, target, 1, fraction)  # the cut is the lowest value
        return
    split = diabetes_split(features, target, 1, fraction)
    train, test = features[split.train_index, 1], features[split.test_index, 1]
    assert len(train) and len(test) and train.max() < test.min()
    assert len(train) <= math.floor(60 * fraction)


# -- the score ------------------------------------------------------------------------------------


def test_nmse_score_is_one_minus_the_clipped_geometric_mean_over_the_ceiling():
    score, geometric_mean = nmse_score([0.5, 2.0, 0.125])
    assert geometric_mean == pytest.approx(0.5)
    assert score == pytest.approx(1 - 0.5 / NMSE_CEILING)
    assert nmse_score([1e9, 1e9])[0] == 0.0  # at the ceiling: the worst score
    assert nmse_score([NMSE_CEILING] * 3) == (0.0, NMSE_CEILING)  # exactly, never an ulp below 0
    assert nmse_score([0.0])[1] == pytest.approx(NMSE_FLOOR)
    with pytest.raises(ValueError):
        nmse_score([])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(1e-3, 50), min_size=1, max_size=8), st.lists(st.floats(1e-3, 50), min_size=1, max_size=8))
def test_the_runners_log_ratio_is_the_mean_log_ratio_of_test_errors(errors, reference_errors):
    score, gm = nmse_score(errors)
    reference, gm_reference = nmse_score(reference_errors)
    expected = max(-3.0, min(3.0, math.log(gm / gm_reference)))
    assert 0.0 <= score <= 1.0
    assert log_ratio(score, reference) == pytest.approx(expected, abs=1e-6)


# -- the model, training, determinism ----------------------------------------------------------------


def test_both_hidden_layers_use_the_plugged_activation():
    made = []

    def factory():
        made.append(nn.Softsign())
        return made[-1]

    model = regression_mlp(8, 16, factory)
    assert len(made) == 2 and not any(isinstance(m, nn.ReLU) for m in model.modules())
    assert model(torch.zeros(3, 8)).shape == (3, 1)


def test_relu_learns_the_training_range_under_the_calibrated_options():
    # Two series fits at the default steps (about a second each): ReLU's training nMSE is below
    # 0.05, and its extrapolation is better than predicting the test mean.
    result = Series(fits=["co2/ar", "realgdp/trend"]).run(nn.ReLU, 0, None, "cpu")
    assert isinstance(result, BenchmarkScore) and result.metric == "nmse_score"
    for fit in result.details["fits"].values():
        assert fit["train_nmse"] < 0.05 and fit["test_nmse"] < 1.0 and not fit["diverged"]
    # diabetes is noisy: ReLU reaches the linear model's training error (~0.6, R² ≈ 0.4) and
    # stops before memorising the noise.
    diabetes = Diabetes().run(nn.ReLU, 0, None, "cpu")
    assert all(0.4 < fit["train_nmse"] < 0.62 for fit in diabetes.details["fits"].values())
    assert diabetes.details["test_nmse_geomean"] < 1.0
    json.dumps(result.details), json.dumps(diabetes.details)


SMALL_SERIES = dict(fits=["nile/ar", "realgdp/trend"], steps=40)


def test_same_seed_same_score_other_seed_or_activation_another():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = Series(**SMALL_SERIES).run(nn.ReLU, 3, None, "cpu")
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is left alone
    b = Series(**SMALL_SERIES).run(nn.ReLU, 3, None, "cpu")
    c = Series(**SMALL_SERIES).run(nn.ReLU, 4, None, "cpu")
    d = Series(**SMALL_SERIES).run(act("tanh"), 3, None, "cpu")
    assert a.score == b.score and a.details["fits"] == b.details["fits"]
    assert c.score != a.score and d.score != a.score
    e, f = (Diabetes(steps=20).run(factory, 3, None, "cpu") for factory in (nn.ReLU, act("tanh")))
    assert e.score != f.score and e.score == Diabetes(steps=20).run(nn.ReLU, 3, None, "cpu").score


def test_a_fit_does_not_depend_on_the_other_fits():
    alone = Series(fits=["realgdp/trend"], steps=40).run(nn.ReLU, 0, None, "cpu")
    together = Series(**SMALL_SERIES).run(nn.ReLU, 0, None, "cpu")
    assert alone.details["fits"]["realgdp/trend"] == together.details["fits"]["realgdp/trend"]
    assert set(together.details["test_nmse_geomean_by_model"]) == {"ar", "trend"}


def test_a_diverging_activation_scores_the_ceiling_for_its_fits():
    class Exploding(nn.Module):
        def forward(self, x):
            return torch.exp(80 * x)  # overflows to inf at once

    result = Series(fits=["nile/trend"], steps=5).run(Exploding, 0, None, "cpu")
    assert result.details["diverged"] == 1 and result.score == 0.0
    assert result.details["fits"]["nile/trend"]["test_nmse"] == NMSE_CEILING


# -- options, registration, missing packages ----------------------------------------------------


def test_registered_and_found_by_name_with_options():
    assert base._BENCHMARKS["series"] is Series and base._BENCHMARKS["diabetes"] is Diabetes
    series = get_benchmark("series", steps=10, fits=["sunspots/trend"])
    assert isinstance(series, Series) and series.fits == ("sunspots/trend",) and series.steps == 10
    assert Series().fits == DEFAULT_SERIES_FITS and Series().series_names() == list(BUNDLED)
    assert isinstance(get_benchmark("Diabetes"), Diabetes)
    with pytest.raises(ValueError, match="unknown fit 'co2/arma'"):
        Series(fits=["co2/arma"])
    with pytest.raises(ValueError, match="repeats"):
        Series(fits=["co2/ar", "co2/ar"])
    with pytest.raises(ValueError, match=r"unknown features \['weight'\]; known: age, sex, bmi"):
        Diabetes(features=["weight"])
    with pytest.raises(ValueError, match="give at least one feature"):
        Diabetes(features=[])
    assert Diabetes(features="bp").features == ("bp",)


def test_without_statsmodels_series_is_a_clear_dataset_missing(monkeypatch):
    Series().check_data(Path("."))
    monkeypatch.setitem(sys.modules, "statsmodels.datasets", None)  # the import fails
    with pytest.raises(DatasetMissing, match="pip install statsmodels"):
        Series().check_data(Path("."))
    # and a job reports it as such, in its result, instead of raising
    job = TransferJob("relu", "series", 0, {"fits": ["nile/ar"], "steps": 5})
    done = TransferResult.from_dict(execute_job(job, Path("."), "cpu"))
    assert done.error["code"] == "dataset_missing" and "pip install statsmodels" in done.error["message"]


def test_without_sklearn_diabetes_is_a_clear_dataset_missing(monkeypatch):
    Diabetes().check_data(Path("."))
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(DatasetMissing, match="pip install scikit-learn"):
        Diabetes().check_data(Path("."))


def test_job_limits_follow_the_amount_of_training():
    default = TransferLimits().resolve(Series(), "series", "cpu")
    longer = TransferLimits().resolve(Series(steps=10_000), "series", "cpu")
    assert default["memory_mb"] == 4096 and default["timeout_s"] < longer["timeout_s"]
    assert TransferLimits().resolve(Diabetes(), "diabetes", "cpu")["timeout_s"] < default["timeout_s"]


# -- through the real job runner ------------------------------------------------------------------


def test_one_job_runs_in_a_child_process_and_matches_the_in_process_score(tmp_path):
    options = {"fits": ["nile/ar"], "steps": 30}
    run = run_transfer(
        ["relu"],
        ["series"],
        [2],
        options={"series": options},
        data_dir=tmp_path,
        out=tmp_path / "out",
        workers=1,
        progress=False,
        notify=lambda message: None,
    )
    (job,) = run.results
    assert job.ok, job.error
    assert job.benchmark == "series" and job.metric == "nmse_score" and job.sandbox["memory_mb"] == 4096
    in_process = Series(**options).run(nn.ReLU, 2, tmp_path, "cpu")
    assert job.score == pytest.approx(in_process.score, rel=0, abs=1e-12)  # the same seed, CPU fp32
    assert job.details["fits"]["nile/ar"]["n_train"] == 72
    document = json.loads((tmp_path / "out" / "results.json").read_text())
    assert document["summary"][0]["log_ratio_vs_relu"] == 0.0
