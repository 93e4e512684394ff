"""Real-data extrapolation benchmarks on data that ship inside installed packages (offline).

==========  ===========  =====================================================  ======================
name        metric       data                                                   what is extrapolated
==========  ===========  =====================================================  ======================
series      nmse_score   five series bundled with statsmodels: co2, sunspots,   the last 20 % of each
                         nile, elnino, macrodata's realgdp                      series, in time
diabetes    nmse_score   scikit-learn's bundled diabetes data (442 patients)    the upper 30 % of a
                                                                                feature (bmi, s5, bp)
==========  ===========  =====================================================  ======================

Every fit is a small MLP (two hidden layers, ``make_activation()`` after each) trained with Adam on
minibatches (a cosine-decayed learning rate) on the *training range* only, with inputs and targets
standardised by the training part's statistics, and scored on points beyond that range by the
**normalised test MSE**: the test MSE divided by the variance of the test targets (1 is as good as
predicting the test mean, which the model never saw).

* ``series``: per series, the first ``train_fraction`` (80 %) of the points train, the rest test;
  two models per series: ``trend`` (standardised time index → value: extrapolating a function of
  one variable beyond its training interval, as the lab does) and ``ar`` (the last ``lags`` = 8
  values → the next one: one-step-ahead forecasts whose inputs leave the training range when the
  series does).
* ``diabetes``: for each shift feature the patients are sorted by it; those below its
  ``train_fraction`` (70 %) quantile train, the others (ties at the cut included) test, so every
  test patient's feature lies above every training patient's: a covariate shift. Input: the ten
  features; target: disease progression after one year.

**The score.** A benchmark makes several fits (series × models, or shift features); their test
nMSEs are clipped to [`NMSE_FLOOR`, `NMSE_CEILING`] and combined by the *geometric* mean, so that
every fit counts the same whatever its scale (an arithmetic mean would be the worst series' error),
and the score is ``1 − geometric_mean / NMSE_CEILING``, in [0, 1], higher is better. The runner's
log-ratio against ReLU, ln((1 − score) ÷ (1 − score_ReLU)), is then *exactly* ln(gm_act ÷
gm_ReLU), the mean over fits of ln(nMSE_act ÷ nMSE_ReLU): −0.1 is about 10 % less test error than
ReLU. A fit whose training diverged (a non-finite loss or prediction) counts as the ceiling.
The per-fit numbers are in ``details``.

Data loading needs statsmodels (``series``) or scikit-learn (``diabetes``), imported only when
needed: importing this module never fails for want of either, and ``check_data`` names the package
to install. ``data_dir`` is not used: the data ship with those packages.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .base import ActivationFactory, BenchmarkScore, DatasetMissing, register_benchmark
from .limits import JobBudget
from .training import _cosine_schedule, _resolve_device, _seeded

__all__ = [
    "DIABETES_FEATURES",
    "Diabetes",
    "NMSE_CEILING",
    "NMSE_FLOOR",
    "DEFAULT_SERIES_FITS",
    "SERIES",
    "SERIES_MODELS",
    "Series",
    "Split",
    "ar_split",
    "diabetes_split",
    "load_diabetes",
    "load_series",
    "nmse_score",
    "regression_mlp",
    "trend_split",
]

NMSE_CEILING = 100.0  # a fit's test nMSE counts as at most this (100 × worse than the test mean)
NMSE_FLOOR = 1e-4  # ... and at least this (the runner floors 1 − score at 1e-6 = 1e-4 / 100)
SERIES_MODELS = ("trend", "ar")


# -- the data -----------------------------------------------------------------------------------


def _statsmodels_datasets() -> Any:
    """``statsmodels.datasets``; `DatasetMissing` (which package to install) when it is absent."""
    try:
        import statsmodels.datasets as datasets
    except ImportError as err:
        raise DatasetMissing(
            "the series benchmark reads the time series bundled with statsmodels "
            "(statsmodels.datasets: co2, sunspots, nile, elnino, macrodata), but statsmodels is "
            "not installed: pip install statsmodels"
        ) from err
    return datasets


def _co2(datasets: Any) -> np.ndarray:
    # Weekly Mauna Loa readings (1958-2001) with 59 missing weeks: monthly means, and the few
    # months without any reading interpolated, so that one step is always one month.
    weekly = datasets.co2.load_pandas().data["co2"]
    return weekly.resample("MS").mean().interpolate(limit_direction="both").to_numpy()


def _elnino(datasets: Any) -> np.ndarray:
    # One row per year (1950-2010), one column per month: read row by row, one month per step.
    table = datasets.elnino.load_pandas().data
    return table.drop(columns="YEAR").to_numpy().reshape(-1)


SERIES: dict[str, Callable[[Any], np.ndarray]] = {
    "co2": _co2,  # 526 months
    "sunspots": lambda d: d.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(),  # 309 years
    "nile": lambda d: d.nile.load_pandas().data["volume"].to_numpy(),  # 100 years
    "elnino": _elnino,  # 732 months
    "realgdp": lambda d: d.macrodata.load_pandas().data["realgdp"].to_numpy(),  # 203 quarters
}


def load_series(name: str) -> np.ndarray:
    """The bundled series ``name`` (a key of `SERIES`) as a 1-D float64 array in time order."""
    if name not in SERIES:
        raise ValueError(f"unknown series {name!r}; known: {', '.join(SERIES)}")
    values = np.asarray(SERIES[name](_statsmodels_datasets()), dtype=np.float64)
    if values.ndim != 1 or not np.isfinite(values).all():
        raise ValueError(f"the bundled series {name!r} is not a finite 1-D array")
    return values


def _sklearn_load_diabetes() -> Any:
    try:
        from sklearn.datasets import load_diabetes as sklearn_load_diabetes
    except ImportError as err:
        raise DatasetMissing(
            "the diabetes benchmark reads the diabetes data bundled with scikit-learn "
            "(sklearn.datasets.load_diabetes), but scikit-learn is not installed: "
            "pip install scikit-learn"
        ) from err
    return sklearn_load_diabetes


def load_diabetes() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(features (442, 10), target (442,), feature names) of scikit-learn's bundled copy."""
    data = _sklearn_load_diabetes()()
    return (
        np.asarray(data.data, dtype=np.float64),
        np.asarray(data.target, dtype=np.float64),
        list(data.feature_names),
    )


# -- splits: training range and beyond ---------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """One regression problem, standardised by the training part's statistics only.

    ``train_index``/``test_index``: the original positions (time steps, or rows of the table) of
    the targets, for checks and reports.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    train_index: np.ndarray
    test_index: np.ndarray


def _standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """``train`` and ``others`` shifted and scaled by ``train``'s mean and std (per column)."""
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return [(a - mean) / std for a in (train, *others)]


def _train_length(n: int, train_fraction: float) -> int:
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    return int(math.floor(n * train_fraction))


def trend_split(values: np.ndarray, train_fraction: float = 0.8) -> Split:
    """Time index → value: the first ``train_fraction`` of the points train, the rest test."""
    n_train = _train_length(len(values), train_fraction)
    index = np.arange(len(values), dtype=np.float64)
    t_train, t_test = _standardise(index[:n_train, None], index[n_train:, None])
    y_train, y_test = _standardise(values[:n_train, None], values[n_train:, None])
    return Split(t_train, y_train, t_test, y_test, np.arange(n_train), np.arange(n_train, len(values)))


def ar_split(values: np.ndarray, lags: int = 8, train_fraction: float = 0.8) -> Split:
    """The ``lags`` previous values → the next value (one step ahead).

    Training targets are the training part's points from position ``lags`` on (their inputs lie in
    the training part too); test targets are the points after it, each predicted from the true
    values before it (the first few of which are the training part's last).
    """
    n_train = _train_length(len(values), train_fraction)
    if not 1 <= lags < n_train:
        raise ValueError(f"lags must be in [1, {n_train}) for this series, got {lags}")
    (scaled,) = _standardise(values[:n_train, None], values[:, None])[1:]
    scaled = scaled[:, 0]
    windows = np.lib.stride_tricks.sliding_window_view(scaled, lags + 1)  # row k: points k..k+lags
    x, y = windows[:, :lags], windows[:, lags:]
    target_index = np.arange(lags, len(values))
    train = target_index < n_train
    return Split(x[train], y[train], x[~train], y[~train], target_index[train], target_index[~train])


def diabetes_split(features: np.ndarray, target: np.ndarray, column: int, train_fraction: float = 0.7) -> Split:
    """Rows below the ``train_fraction`` quantile of ``features[:, column]`` train, the others test.

    The cut is a value of the feature, and rows equal to it go to the test part, so every test
    row's feature is at least every training row's (strictly above: none straddles the cut).
    """
    order = np.argsort(features[:, column], kind="stable")
    cut = features[order[_train_length(len(order), train_fraction)], column]
    train = features[:, column] < cut
    if not train.any():
        raise ValueError(
            f"no row lies below the cut {cut} of feature {column}: too many ties at its "
            "lowest value for this train_fraction"
        )
    x_train, x_test = _standardise(features[train], features[~train])
    y_train, y_test = _standardise(target[train, None], target[~train, None])
    return Split(x_train, y_train, x_test, y_test, np.flatnonzero(train), np.flatnonzero(~train))


# -- the model and its training -----------------------------------------------------------------


def regression_mlp(inputs: int, width: int, make_activation: ActivationFactory) -> nn.Sequential:
    """Linear → activation → Linear → activation → Linear(1): two fresh ``make_activation()``."""
    return nn.Sequential(
        nn.Linear(inputs, width), make_activation(), nn.Linear(width, width), make_activation(), nn.Linear(width, 1)
    )


def _fit_seed(seed: int, label: str) -> int:
    """A seed for one fit, from the run's seed and the fit's name: a fit's result does not depend
    on which other fits the benchmark makes, or in which order."""
    digest = hashlib.sha256(f"{seed}/{label}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def _nmse(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """MSE of ``model`` on (x, y) ÷ the variance of y; non-finite when the model is."""
    with torch.no_grad():
        error = float(((model(x) - y) ** 2).mean())
    return error / max(float(y.var(unbiased=False)), 1e-12)


@dataclass(frozen=True)
class Training:
    """How every fit of a benchmark trains: Adam, minibatches drawn with replacement, a cosine
    schedule from ``lr`` to 0 over ``steps``."""

    steps: int
    lr: float
    width: int
    batch_size: int

    def fit(self, make_activation: ActivationFactory, split: Split, seed: int, device: torch.device) -> dict[str, Any]:
        """Train one MLP on ``split``'s training part; its train and test nMSE and whether the
        training diverged (then its test nMSE is the ceiling)."""
        x_tr, y_tr, x_te, y_te = (
            torch.as_tensor(a, dtype=torch.float32, device=device)
            for a in (split.x_train, split.y_train, split.x_test, split.y_test)
        )
        generator = torch.Generator().manual_seed(seed)  # the minibatches
        with _seeded(seed, device):  # the initial weights
            model = regression_mlp(x_tr.shape[1], self.width, make_activation).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=self.lr)
        schedule = _cosine_schedule(optimizer, self.steps)
        batch = min(self.batch_size, len(x_tr))
        diverged = False
        for _ in range(self.steps):
            idx = torch.randint(len(x_tr), (batch,), generator=generator).to(device)
            loss = ((model(x_tr[idx]) - y_tr[idx]) ** 2).mean()
            if not torch.isfinite(loss):
                diverged = True  # nothing more to learn from a NaN network
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        model.eval()
        train_nmse, test_nmse = _nmse(model, x_tr, y_tr), _nmse(model, x_te, y_te)
        diverged = diverged or not (math.isfinite(train_nmse) and math.isfinite(test_nmse))
        return {
            "train_nmse": train_nmse if math.isfinite(train_nmse) else None,
            "test_nmse": NMSE_CEILING if diverged else test_nmse,
            "diverged": diverged,
            "n_train": len(x_tr),
            "n_test": len(x_te),
        }


def nmse_score(test_nmses: Sequence[float]) -> tuple[float, float]:
    """(score, geometric mean) of fits' test nMSEs, each clipped to [NMSE_FLOOR, NMSE_CEILING]:
    score = 1 − geometric mean ÷ NMSE_CEILING (see the module's docstring)."""
    if not test_nmses:
        raise ValueError("no fits to score")
    clipped = [min(max(v, NMSE_FLOOR), NMSE_CEILING) for v in test_nmses]
    geometric_mean = math.exp(sum(math.log(v) for v in clipped) / len(clipped))
    # exp(log(x)) can land an ulp outside [floor, ceiling]: a score of -4e-16 would make the
    # runner treat the benchmark's scores as unbounded and change its log-ratio formula.
    geometric_mean = min(max(geometric_mean, NMSE_FLOOR), NMSE_CEILING)
    return 1.0 - geometric_mean / NMSE_CEILING, geometric_mean


def _summarise_fits(
    metric: str, fits: dict[str, dict[str, Any]], training: Training, started: float, extra: dict[str, Any]
) -> BenchmarkScore:
    score, geometric_mean = nmse_score([f["test_nmse"] for f in fits.values()])
    train = [f["train_nmse"] for f in fits.values()]
    return BenchmarkScore(
        score,
        metric,
        {
            "test_nmse_geomean": geometric_mean,
            "train_nmse_max": None if None in train else max(train),
            "diverged": sum(f["diverged"] for f in fits.values()),
            "fits": fits,
            "steps": training.steps,
            "lr": training.lr,
            "width": training.width,
            "batch_size": training.batch_size,
            **extra,
            "seconds": round(time.perf_counter() - started, 3),
        },
    )


def _names(value: str | Sequence[str], known: Sequence[str], what: str) -> tuple[str, ...]:
    """``value`` (one name or several) as a tuple, each one of ``known``."""
    names = (value,) if isinstance(value, str) else tuple(value)
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        problem = f"unknown {what}s {unknown}" if unknown else f"give at least one {what}"
        raise ValueError(f"{problem}; known: {', '.join(known)}")
    return names


# Sizes (docs/transfer.md, measured through `actmine transfer` on one busy core): a fit of 1000
# steps at width 64 trains in about a second; a job process takes ~3 s to start and 1-3 s more to
# import torch's optimiser and statsmodels or scikit-learn. The limit allows 15 s per 1000 steps
# of each fit on top of 5 minutes: it ends a hang, it does not race a slow machine.
def _fit_units(benchmark: Any) -> float:
    return benchmark.fit_count() * benchmark.steps / 1000


REALDATA_BUDGET = JobBudget({"cpu": 15.0, "cuda": 15.0}, memory_mb=4096, base_s=300.0, units=_fit_units)


# -- the benchmarks -----------------------------------------------------------------------------


def _series_fits(fits: str | Sequence[str]) -> tuple[str, ...]:
    """``fits`` as a tuple of ``"series/model"`` labels, each checked against `SERIES` and
    `SERIES_MODELS`."""
    labels = (fits,) if isinstance(fits, str) else tuple(fits)
    if not labels:
        raise ValueError("fits must name at least one series/model pair, e.g. co2/trend")
    for label in labels:
        name, _, model = str(label).partition("/")
        if name not in SERIES or model not in SERIES_MODELS:
            raise ValueError(
                f"unknown fit {label!r}: give series/model with a series among "
                f"{', '.join(SERIES)} and a model among {', '.join(SERIES_MODELS)}"
            )
    if len(set(labels)) != len(labels):
        raise ValueError(f"fits repeats a label: {list(labels)}")
    return labels


# The trend model of sunspots and elnino is left out: from the time index alone a small MLP cannot
# learn their ~24 and ~48 cycles (ReLU's training nMSE stays above 0.8 even at 6000 steps and
# width 128), so its test error would measure underfitting, not extrapolation. Name them in
# ``fits`` to include them anyway.
DEFAULT_SERIES_FITS = (
    "co2/trend",
    "co2/ar",
    "sunspots/ar",
    "nile/trend",
    "nile/ar",
    "elnino/ar",
    "realgdp/trend",
    "realgdp/ar",
)


@register_benchmark
class Series:
    """Time-series extrapolation on the series bundled with statsmodels (see the module docstring).

    Per fit (``fits``: ``"series/model"`` labels, a series of `SERIES` and a model of
    `SERIES_MODELS`; default `DEFAULT_SERIES_FITS`) one MLP trains on the first
    ``train_fraction`` of the series and is scored on the rest; the score combines the fits'
    normalised test MSEs (`nmse_score`). ``details["fits"]["co2/trend"]`` etc. hold each fit's
    ``train_nmse``, ``test_nmse``, ``diverged``, ``n_train``, ``n_test``.

    Options: ``fits``, ``lags`` (8), ``train_fraction`` (0.8), ``steps`` (1000), ``lr`` (3e-3),
    ``width`` (64), ``batch_size`` (32). The defaults are calibrated so that ReLU fits the training
    range (docs/transfer.md, "Real-data extrapolation").
    """

    name = "series"
    metric = "nmse_score"
    job_budget = REALDATA_BUDGET

    def __init__(
        self,
        *,
        fits: Sequence[str] = DEFAULT_SERIES_FITS,
        lags: int = 8,
        train_fraction: float = 0.8,
        steps: int = 1000,
        lr: float = 3e-3,
        width: int = 64,
        batch_size: int = 32,
    ):
        self.fits = _series_fits(fits)
        self.lags = lags
        self.train_fraction = train_fraction
        self.steps = steps
        self.lr = lr
        self.width = width
        self.batch_size = batch_size

    def fit_count(self) -> int:
        return len(self.fits)

    def series_names(self) -> list[str]:
        """The series the fits read, each once, in order of first use."""
        return list(dict.fromkeys(label.partition("/")[0] for label in self.fits))

    def check_data(self, data_dir: Path) -> None:
        for name in self.series_names():
            try:
                load_series(name)
            except DatasetMissing:
                raise
            except (OSError, ValueError) as err:  # a damaged installation without its data files
                raise DatasetMissing(
                    f"statsmodels is installed but its bundled series {name!r} could not be read "
                    f"({err}); reinstall it: pip install --force-reinstall statsmodels"
                ) from err

    def splits(self) -> dict[str, Split]:
        """``{"co2/trend": Split, ...}``: every fit's problem, in the order of ``fits``."""
        values = {name: load_series(name) for name in self.series_names()}
        splits = {}
        for label in self.fits:
            name, _, model = label.partition("/")
            splits[label] = (
                trend_split(values[name], self.train_fraction)
                if model == "trend"
                else ar_split(values[name], self.lags, self.train_fraction)
            )
        return splits

    def run(self, make_activation: ActivationFactory, seed: int, data_dir: Path, device: str) -> BenchmarkScore:
        self.check_data(data_dir)  # data_dir itself is not used: the data ship with statsmodels
        started = time.perf_counter()
        training = Training(self.steps, self.lr, self.width, self.batch_size)
        dev = _resolve_device(device)
        fits = {
            label: training.fit(make_activation, split, _fit_seed(seed, label), dev)
            for label, split in self.splits().items()
        }
        by_model = {}
        for model in SERIES_MODELS:
            errors = [f["test_nmse"] for label, f in fits.items() if label.endswith("/" + model)]
            if errors:
                by_model[model] = nmse_score(errors)[1]
        return _summarise_fits(
            self.metric,
            fits,
            training,
            started,
            {"test_nmse_geomean_by_model": by_model, "lags": self.lags, "train_fraction": self.train_fraction},
        )


DIABETES_FEATURES = ("bmi", "s5", "bp")


@register_benchmark
class Diabetes:
    """Tabular regression under covariate shift: scikit-learn's bundled diabetes data, trained on
    the patients below a feature's ``train_fraction`` quantile and tested on those above it.

    One fit per shift feature (``features``, default bmi, s5 and bp: the three features the
    target depends on most), combined as in `nmse_score`; ``details["fits"]["bmi"]`` etc. hold each
    fit's numbers.

    Options: ``features``, ``train_fraction`` (0.7), ``steps`` (200), ``lr`` (1e-3), ``width``
    (64), ``batch_size`` (32). The data are noisy (a linear model explains about 40 % of the
    training variance), so the defaults are calibrated to stop where ReLU reaches the linear model's training
    error, before it memorises noise (docs/transfer.md, "Real-data extrapolation").
    """

    name = "diabetes"
    metric = "nmse_score"
    job_budget = REALDATA_BUDGET

    def __init__(
        self,
        *,
        features: Sequence[str] = DIABETES_FEATURES,
        train_fraction: float = 0.7,
        steps: int = 200,
        lr: float = 1e-3,
        width: int = 64,
        batch_size: int = 32,
    ):
        self.features = _names(features, ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"), "feature")
        self.train_fraction = train_fraction
        self.steps = steps
        self.lr = lr
        self.width = width
        self.batch_size = batch_size

    def fit_count(self) -> int:
        return len(self.features)

    def check_data(self, data_dir: Path) -> None:
        try:
            load_diabetes()
        except DatasetMissing:
            raise
        except OSError as err:  # a damaged installation without its data files
            raise DatasetMissing(
                f"scikit-learn is installed but its bundled diabetes data could not be read ({err}); "
                "reinstall it: pip install --force-reinstall scikit-learn"
            ) from err

    def splits(self) -> dict[str, Split]:
        """``{"bmi": Split, ...}``: one covariate-shift problem per feature."""
        features, target, names = load_diabetes()
        return {
            name: diabetes_split(features, target, names.index(name), self.train_fraction) for name in self.features
        }

    def run(self, make_activation: ActivationFactory, seed: int, data_dir: Path, device: str) -> BenchmarkScore:
        self.check_data(data_dir)  # data_dir itself is not used: the data ship with scikit-learn
        started = time.perf_counter()
        training = Training(self.steps, self.lr, self.width, self.batch_size)
        dev = _resolve_device(device)
        fits = {
            label: training.fit(make_activation, split, _fit_seed(seed, label), dev)
            for label, split in self.splits().items()
        }
        return _summarise_fits(self.metric, fits, training, started, {"train_fraction": self.train_fraction})
