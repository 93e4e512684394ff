"""Tests of actmine.lab.tasks: the task families, data generation and suites."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import subprocess
import sys
from importlib import resources

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actmine.lab import tasks as T
from actmine.lab.tasks import SuiteError

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _sample(box, n, seed=0):
    rng = np.random.default_rng(seed)
    low = np.array([lo for lo, _ in box])
    high = np.array([hi for _, hi in box])
    return low + (high - low) * rng.random((n, len(box)))


def _raw_csv_rows():
    """The packaged CSV read independently of the loader: {filename: (n_variables column, [(name, lo, hi)])}."""
    text = resources.files("actmine.data").joinpath("FeynmanEquations.csv").read_text(encoding="utf-8-sig")
    rows = {}
    for row in csv.reader(text.splitlines()):
        if not row or not row[0].strip() or row[0] == "Filename":
            continue
        variables = [(row[i].strip(), float(row[i + 1]), float(row[i + 2]))
                     for i in range(5, len(row) - 2, 3) if row[i].strip()]
        rows[row[0].strip()] = (row[4].strip(), variables)
    return rows


# --------------------------------------------------------------------------------------------
# generate: determinism and standardisation
# --------------------------------------------------------------------------------------------

def _as_np(data: T.TaskData):
    return {k: getattr(data, k).numpy() for k in ("x_train", "y_train", "x_id", "y_id", "x_ood", "y_ood")}


def test_generate_shapes_and_dtype():
    task = T.polynomial(dim=3, seed=1)
    data = T.generate(task, 0, 100, 40)
    assert data.x_train.shape == (100, 3) and data.y_train.shape == (100, 1)
    assert data.x_id.shape == (40, 3) and data.y_id.shape == (40, 1)
    assert data.x_ood.shape == (40, 3) and data.y_ood.shape == (40, 1)
    assert all(t.dtype == torch.float64 for t in dataclasses.astuple(data))


def test_generate_is_deterministic_per_task_and_seed():
    task = T.harmonic(seed=3)
    first = T.generate(task, 5, 64, 32)
    # An unequal Task (different description) with the same name and spec misses the cache and must
    # still draw exactly the same points: the data depend on (name, spec, seed) only.
    twin = dataclasses.replace(task, description="another description")
    assert twin != task
    second = T.generate(twin, 5, 64, 32)
    assert second is not first
    for a, b in zip(dataclasses.astuple(first), dataclasses.astuple(second)):
        assert torch.equal(a, b)


def test_generate_differs_across_seeds():
    task = T.polynomial(dim=1, seed=0)
    a, b = T.generate(task, 0, 64, 32), T.generate(task, 1, 64, 32)
    assert not torch.allclose(a.x_train, b.x_train)
    assert not torch.allclose(a.x_ood, b.x_ood)


def test_generate_is_the_same_in_another_process():
    code = ("from actmine.lab import tasks as T; d = T.generate(T.harmonic(seed=1), 2, 16, 8); "
            "print(repr(d.x_train.sum().item()), repr(d.y_ood.sum().item()))")
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    data = T.generate(T.harmonic(seed=1), 2, 16, 8)
    assert out.stdout.split() == [repr(data.x_train.sum().item()), repr(data.y_ood.sum().item())]


def test_generate_does_not_mix_up_tasks_that_differ_only_in_spec():
    # n-D polynomials with an explicit shared name and different seeds compare equal as Tasks
    # (same name, boxes and description text) but are different functions.
    tasks = [T.polynomial(dim=20, seed=s, degree=2, n_terms=(3, 6), name="shared") for s in range(6)]
    x = _sample(tasks[0].id_box, 50)
    for i in range(len(tasks)):
        for j in range(i):
            if not np.allclose(tasks[i].target(x), tasks[j].target(x)):
                a, b = T.generate(tasks[i], 0, 64, 16), T.generate(tasks[j], 0, 64, 16)
                assert not torch.allclose(a.y_train, b.y_train)


def _reconstruct(x_std, x_train, box):
    """Raw inputs from standardised ones, with the affine map pinned by the training extremes.

    With many uniform training points the raw minimum and maximum lie within a fraction of a
    percent of the box edges, so raw = lo + (x - min) * (hi - lo) / (max - min) per column.
    """
    lo = np.array([b[0] for b in box])
    hi = np.array([b[1] for b in box])
    mn, mx = x_train.min(0), x_train.max(0)
    return lo + (x_std - mn) * (hi - lo) / (mx - mn)


@FAST
@given(task_seed=st.integers(0, 50), data_seed=st.integers(0, 1000), dim=st.sampled_from([1, 3]))
def test_standardisation_uses_training_statistics_only(task_seed, data_seed, dim):
    task = T.polynomial(dim=dim, seed=task_seed)
    d = _as_np(T.generate(task, data_seed, 2000, 500))
    for key in ("x_train", "y_train"):
        np.testing.assert_allclose(d[key].mean(0), 0.0, atol=1e-9)
        np.testing.assert_allclose(d[key].std(0), 1.0, atol=1e-9)
    # ID and OOD inputs go through the training map: reconstructed raw points fall in their boxes.
    width = np.array([hi - lo for lo, hi in task.id_box])
    tol = 0.01 * width
    raw_id = _reconstruct(d["x_id"], d["x_train"], task.id_box)
    raw_ood = _reconstruct(d["x_ood"], d["x_train"], task.id_box)
    assert np.all(raw_id >= np.array([b[0] for b in task.id_box]) - tol)
    assert np.all(raw_id <= np.array([b[1] for b in task.id_box]) + tol)
    assert np.all(raw_ood >= np.array([b[0] for b in task.ood_box]) - tol)
    assert np.all(raw_ood <= np.array([b[1] for b in task.ood_box]) + tol)
    # Not re-standardised: the OOD cube [0.5, 1]^d sits ~3.5 training std above the ID mean.
    assert np.all(d["x_ood"].mean(0) > 2.5)
    assert np.all(np.abs(d["x_id"].mean(0)) < 0.3)


def test_targets_use_the_same_training_map_on_every_split():
    # y = 2x + 1 standardised with the training statistics of y equals x standardised with those of
    # x, exactly, on every split: any split standardised on its own would break the equality only
    # for x or only for y.
    task = T.formula("2*x + 1", id={"x": [-1, 1]}, ood={"x": [1, 4]}, name="affine")
    d = _as_np(T.generate(task, 0, 300, 100))
    for split in ("train", "id", "ood"):
        np.testing.assert_allclose(d[f"y_{split}"][:, 0], d[f"x_{split}"][:, 0], atol=1e-12)
    assert d["x_ood"].mean() > 2.0  # OOD x in [1, 4] vs ID mean 0, std ~0.58


def test_generate_rejects_a_constant_target():
    task = T.formula("0*x + 3", id={"x": [0, 1]}, ood={"x": [1, 2]}, name="flat")
    with pytest.raises(SuiteError, match="'flat'.*constant"):
        T.generate(task, 0, 32, 8)


# --------------------------------------------------------------------------------------------
# polynomial
# --------------------------------------------------------------------------------------------

def test_polynomial_default_boxes():
    task = T.polynomial()
    assert task.family == "polynomial" and task.input_dim == 1
    assert task.id_box == ((0.0, 0.5),)
    assert task.ood_box == ((0.5, 1.0),)


def _grid_values(task, start=-1.0, stop=2.0, n=31):
    x = np.linspace(start, stop, n)[:, None]
    return task.target(x)


@FAST
@given(seed=st.integers(0, 10_000))
def test_polynomial_1d_has_degree_between_2_and_5(seed):
    y = _grid_values(T.polynomial(dim=1, seed=seed))
    scale = max(1.0, np.abs(y).max())
    # A polynomial of degree <= 5 has a vanishing 6th finite difference on an equally spaced grid.
    assert np.abs(np.diff(y, n=6)).max() < 1e-9 * scale
    # Degree >= 2 (the default range starts at 2): the 2nd difference is not identically zero.
    assert np.abs(np.diff(y, n=2)).max() > 1e-6
    assert np.std(y) > 1e-6


def test_polynomial_fixed_degree_is_exact():
    y = _grid_values(T.polynomial(dim=1, seed=7, degree=3))
    d3 = np.diff(y, n=3)
    assert np.abs(np.diff(y, n=4)).max() < 1e-9 * np.abs(y).max()
    assert np.abs(d3).min() > 1e-6  # the 3rd difference of a cubic is a nonzero constant
    np.testing.assert_allclose(d3, d3[0], rtol=1e-6)


def test_polynomial_target_is_determined_by_seed():
    x = _sample(((0.0, 1.0),), 64)
    same = [T.polynomial(dim=1, seed=11).target(x) for _ in range(2)]
    np.testing.assert_array_equal(same[0], same[1])
    others = [T.polynomial(dim=1, seed=s).target(x) for s in range(12, 16)]
    for other in others:
        assert not np.allclose(same[0], other)


def test_polynomial_nd():
    task = T.polynomial(dim=20, seed=0, degree=2, n_terms=(3, 6))
    assert task.input_dim == 20 and len(task.variables) == 20
    assert task.id_box == ((0.0, 0.5),) * 20
    assert task.ood_box == ((0.5, 1.0),) * 20
    # degree 2: along any line the target is a quadratic in the line parameter.
    rng = np.random.default_rng(0)
    for _ in range(3):
        start, direction = rng.random(20), rng.normal(size=20)
        t = np.linspace(-1, 1, 15)[:, None]
        y = task.target(start + t * direction)
        assert np.abs(np.diff(y, n=3)).max() < 1e-9 * max(1.0, np.abs(y).max())
        assert np.std(y) > 1e-6
    x = _sample(task.id_box, 32)
    assert not np.allclose(task.target(x), T.polynomial(dim=20, seed=1, degree=2, n_terms=(3, 6)).target(x))
    np.testing.assert_array_equal(task.target(x), T.polynomial(dim=20, seed=0, degree=2, n_terms=(3, 6)).target(x))


@pytest.mark.parametrize("kwargs, field", [
    ({"dim": 0}, "dim"),
    ({"degree": 0}, "degree"),
    ({"degree": [5, 2]}, "degree"),
    ({"dim": 2, "n_terms": "many"}, "n_terms"),
    ({"id_range": [0.5, 0.5]}, "id_range"),
    ({"ood_range": [1.0]}, "ood_range"),
])
def test_polynomial_bad_arguments_name_the_field(kwargs, field):
    with pytest.raises(SuiteError, match=f"'p'.*'{field}'"):
        T.polynomial(name="p", **kwargs)


# --------------------------------------------------------------------------------------------
# harmonic
# --------------------------------------------------------------------------------------------

@FAST
@given(seed=st.integers(0, 10_000), n_terms=st.integers(1, 5))
def test_harmonic_is_a_bounded_zero_mean_sum_of_sines(seed, n_terms):
    task = T.harmonic(seed=seed, n_terms=n_terms)
    assert task.input_dim == 1
    # OOD lies beyond the ID interval.
    assert task.ood_box[0][0] >= task.id_box[0][1]
    x = np.linspace(-500, 500, 200_001)[:, None]
    y = task.target(x)
    assert np.all(np.isfinite(y))
    assert np.abs(y).max() <= 1.5 * n_terms + 1e-12  # amplitudes in [0.5, 1.5]
    # Sines with frequencies >= 0.2 average out over a long interval: no constant or trend term.
    assert abs(y.mean()) < 0.02
    assert np.std(y) > 0.1


@FAST
@given(seed=st.integers(0, 10_000))
def test_harmonic_single_term_is_one_sinusoid(seed):
    task = T.harmonic(seed=seed, n_terms=1)
    h = 0.1
    x = np.arange(-20, 20, h)[:, None]
    y = task.target(x)
    # a·sin(ωx + φ) satisfies y(x+h) + y(x−h) = 2 cos(ωh) y(x) exactly.
    lhs, mid = y[2:] + y[:-2], y[1:-1]
    c = (lhs @ mid) / (2 * mid @ mid)
    np.testing.assert_allclose(lhs, 2 * c * mid, atol=1e-9)
    frequency = math.acos(c) / (2 * math.pi * h)
    assert 0.2 - 1e-9 <= frequency <= 0.7 + 1e-9
    assert 0.5 - 1e-3 <= np.abs(y).max() <= 1.5 + 1e-12  # 40 units cover >= 8 periods


def test_harmonic_seed_determines_target():
    x = np.linspace(0, 3, 50)[:, None]
    np.testing.assert_array_equal(T.harmonic(seed=4).target(x), T.harmonic(seed=4).target(x))
    assert not np.allclose(T.harmonic(seed=4).target(x), T.harmonic(seed=5).target(x))


def test_harmonic_bad_arguments():
    with pytest.raises(SuiteError, match="'h'.*'n_terms'"):
        T.harmonic(n_terms=0, name="h")
    with pytest.raises(SuiteError, match="'h'.*'frequencies'"):
        T.harmonic(frequencies=[1.0, 0.5], name="h")


# --------------------------------------------------------------------------------------------
# feynman
# --------------------------------------------------------------------------------------------

def test_feynman_has_100_equations_with_variables_from_the_name_columns():
    equations = T.feynman_equations()
    raw = _raw_csv_rows()
    assert len(equations) == 100 == len(raw)
    for filename, (_, variables) in raw.items():
        assert equations[filename].variables == tuple(variables), filename


def test_feynman_quirky_rows():
    equations = T.feynman_equations()
    raw = _raw_csv_rows()
    quirky = ("I.18.12", "I.18.14", "I.38.12", "II.37.1", "III.10.19", "III.19.51")
    for filename in quirky:
        count_column, variables = raw[filename]
        assert int(count_column) != len(variables), filename  # the column really is wrong here
        assert len(equations[filename].variables) == len(variables), filename
        assert T.feynman(filename).input_dim == len(variables)
    assert [v for v, _, _ in equations["I.18.12"].variables] == ["r", "F", "theta"]
    assert T.feynman("I.18.12").variables == ("r", "F", "theta")
    # Nowhere else does the column disagree with the names.
    others = [f for f, (n, v) in raw.items() if int(n) != len(v)]
    assert sorted(others) == sorted(quirky)


def _at(task, **values):
    point = np.array([[values[v] for v in task.variables]])
    return float(task.target(point)[0])


def test_feynman_names_that_sympy_reserves_parse_as_symbols():
    cases = {
        # I is sympy's imaginary unit, E_n would otherwise be fine, Gamma/beta/lambd are functions
        "II.13.17": ({"epsilon": 1.5, "c": 2.0, "I": 3.0, "r": 1.25},
                     lambda epsilon, c, I, r: 1 / (4 * math.pi * epsilon * c ** 2) * 2 * I / r),
        "III.8.54": ({"E_n": 1.3, "t": 2.1, "h": 3.7},
                     lambda E_n, t, h: math.sin(E_n * t / (h / (2 * math.pi))) ** 2),
        "I.30.5": ({"lambd": 1.0, "d": 2.0, "n": 3.0}, lambda lambd, d, n: math.asin(lambd / (n * d))),
        "I.47.23": ({"Gamma": 1.7, "pr": 2.2, "rho": 1.1}, lambda Gamma, pr, rho: math.sqrt(Gamma * pr / rho)),
        "III.17.37": ({"beta": 1.5, "alpha": 2.5, "theta": 0.7},
                      lambda beta, alpha, theta: beta * (1 + alpha * math.cos(theta))),
    }
    for equation, (point, closed_form) in cases.items():
        task = T.feynman(equation)
        assert set(task.variables) == set(point)
        assert _at(task, **point) == pytest.approx(closed_form(**point), rel=1e-12), equation


def test_formula_with_sympy_names_as_variables():
    names = ["gamma", "beta", "E", "I", "S", "N", "Q", "E_n", "lambd", "Gamma"]
    task = T.formula("gamma**2 + beta*E - I/S + N*Q + E_n*lambd - Gamma",
                     id={n: [1, 2] for n in names}, ood={n: [2, 3] for n in names}, name="names")
    p = dict(zip(names, [1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9, 1.05]))
    expected = p["gamma"] ** 2 + p["beta"] * p["E"] - p["I"] / p["S"] + p["N"] * p["Q"] \
        + p["E_n"] * p["lambd"] - p["Gamma"]
    assert _at(task, **p) == pytest.approx(expected, rel=1e-12)


def test_feynman_gaussian_matches_closed_form():
    task = T.feynman("I.6.2a")
    assert task.family == "feynman" and task.variables == ("theta",)
    theta = np.linspace(-4, 4, 41)
    expected = np.exp(-theta ** 2 / 2) / math.sqrt(2 * math.pi)
    np.testing.assert_allclose(task.target(theta[:, None]), expected, rtol=1e-12)


def test_feynman_boxes_split_the_listed_range_in_half():
    for filename, (_, variables) in _raw_csv_rows().items():
        task = T.feynman(filename)
        assert task.variables == tuple(v for v, _, _ in variables)
        for (name, lo, hi), id_range, ood_range in zip(variables, task.id_box, task.ood_box):
            mid = lo + (hi - lo) / 2
            assert id_range == pytest.approx((lo, mid)), (filename, name)
            assert ood_range == pytest.approx((mid, hi)), (filename, name)


def test_feynman_id_fraction_moves_the_split():
    task = T.feynman("I.6.2a", id_fraction=0.25)  # theta in [1, 3]
    assert task.id_box == ((1.0, 1.5),) and task.ood_box == ((1.5, 3.0),)
    with pytest.raises(SuiteError, match="'id_fraction'"):
        T.feynman("I.6.2a", id_fraction=1.0)


def test_feynman_unknown_equation_suggests_close_matches():
    with pytest.raises(SuiteError, match=r"'equation'.*I\.6\.2"):
        T.feynman("I.6.2z")


def test_feynman_targets_are_finite_on_both_boxes():
    finite = set()
    for filename in T.feynman_equations():
        try:
            T.generate(T.feynman(filename), 0, 256, 256)
        except SuiteError:
            continue
        finite.add(filename)
    assert len(finite) >= 90
    assert set(T.LAB_FEYNMAN) <= finite


# --------------------------------------------------------------------------------------------
# formula
# --------------------------------------------------------------------------------------------

def test_formula_user_expression():
    task = T.formula("exp(-x/3)*sin(2*x) + y", id={"x": [0, 3], "y": [0, 1]}, ood={"x": [3, 6], "y": [1, 2]},
                     name="mine")
    assert task.family == "formula" and task.variables == ("x", "y")
    assert task.id_box == ((0.0, 3.0), (0.0, 1.0)) and task.ood_box == ((3.0, 6.0), (1.0, 2.0))
    x = _sample(task.ood_box, 20)
    np.testing.assert_allclose(task.target(x), np.exp(-x[:, 0] / 3) * np.sin(2 * x[:, 0]) + x[:, 1], rtol=1e-12)
    data = T.generate(task, 0, 128, 64)
    assert torch.isfinite(data.y_ood).all()


def test_formula_default_name_and_constant_broadcast():
    task = T.formula("x - x + 2", id={"x": [0, 1]}, ood={"x": [1, 2]})
    assert "x - x + 2" in task.name
    np.testing.assert_array_equal(task.target(np.zeros((5, 1))), np.full(5, 2.0))


@pytest.mark.parametrize("kwargs, pattern", [
    ({"expression": "sin(x", "id": {"x": [0, 1]}, "ood": {"x": [1, 2]}}, "'expression'.*parsed"),
    ({"expression": "x +* 2", "id": {"x": [0, 1]}, "ood": {"x": [1, 2]}}, "'expression'.*parsed"),
    ({"expression": "x*y", "id": {"x": [0, 1]}, "ood": {"x": [1, 2]}}, "'expression'.*y"),
    ({"expression": "", "id": {"x": [0, 1]}, "ood": {"x": [1, 2]}}, "'expression'"),
    ({"expression": "x", "id": {"x": [0, 1]}, "ood": {"y": [1, 2]}}, "'ood'"),
    ({"expression": "x", "id": {}, "ood": {}}, "'id'"),
    ({"expression": "x", "id": {"x": [1, 0]}, "ood": {"x": [1, 2]}}, r"'id\.x'.*low < high"),
    ({"expression": "x", "id": {"x": [0, 1]}, "ood": {"x": [2, 2]}}, r"'ood\.x'.*low < high"),
    ({"expression": "x", "id": {"x": [0, "a"]}, "ood": {"x": [1, 2]}}, r"'id\.x'"),
])
def test_formula_errors_name_task_and_field(kwargs, pattern):
    with pytest.raises(SuiteError, match=f"'bad'.*{pattern}"):
        T.formula(name="bad", **kwargs)


@pytest.mark.parametrize("expression, id_range, ood_range, split", [
    ("log(x)", [-1, 0], [0.5, 1], "ID"),
    ("sqrt(x)", [0, 1], [-1, -0.5], "OOD"),
    ("log(x - 1)", [0, 2], [2, 3], "ID"),
])
def test_formula_non_finite_target_names_task_and_box(expression, id_range, ood_range, split):
    task = T.formula(expression, id={"x": id_range}, ood={"x": ood_range}, name="undefined")
    with pytest.raises(SuiteError, match=f"'undefined'.*not finite.*{split} box"):
        T.generate(task, 0, 256, 64)


# --------------------------------------------------------------------------------------------
# Suites
# --------------------------------------------------------------------------------------------

def test_lab_suite_covers_the_families():
    suite = T.lab_suite()
    assert suite.name == "lab"
    assert suite.families == ["feynman", "formula", "harmonic", "polynomial"]
    assert len(suite.tasks) >= 12 and len(suite.seeds) >= 3
    names = [t.name for t in suite.tasks]
    assert len(set(names)) == len(names)
    feynman_dims = [t.input_dim for t in suite.tasks if t.family == "feynman"]
    assert len(feynman_dims) >= 8
    assert min(feynman_dims) == 1 and max(feynman_dims) == 5
    assert set(range(1, 6)) <= set(feynman_dims)
    for task in suite.tasks:
        data = T.generate(task, suite.seeds[0], 64, 32)
        assert torch.isfinite(data.y_train).all() and torch.isfinite(data.y_ood).all(), task.name


def _assert_same_tasks(a: T.Suite, b: T.Suite):
    assert a.name == b.name and a.seeds == b.seeds and len(a.tasks) == len(b.tasks)
    for s, t in zip(a.tasks, b.tasks):
        assert (s.name, s.family, s.variables, s.id_box, s.ood_box) == (t.name, t.family, t.variables, t.id_box, t.ood_box)
        for box in (s.id_box, s.ood_box):
            x = _sample(box, 32, seed=3)
            np.testing.assert_array_equal(s.target(x), t.target(x), err_msg=s.name)


def test_suite_round_trips_through_a_dict_and_json():
    suite = T.lab_suite()
    _assert_same_tasks(suite, T.Suite.from_dict(suite.to_dict()))
    _assert_same_tasks(suite, T.Suite.from_dict(json.loads(json.dumps(suite.to_dict()))))


SUITE_DATA = {
    "name": "mine",
    "seeds": [0, 1],
    "tasks": [
        {"family": "polynomial", "dim": 1, "seed": 4},
        {"family": "harmonic", "seed": 2, "n_terms": 2},
        {"family": "feynman", "equation": "I.6.2a"},
        {"family": "formula", "name": "wave", "expression": "sin(2*x) + y",
         "id": {"x": [0, 1], "y": [0, 1]}, "ood": {"x": [1, 2], "y": [1, 2]}},
    ],
}

SUITE_TOML = """
name = "mine"
seeds = [0, 1]

[[tasks]]
family = "polynomial"
dim = 1
seed = 4

[[tasks]]
family = "harmonic"
seed = 2
n_terms = 2

[[tasks]]
family = "feynman"
equation = "I.6.2a"

[[tasks]]
family = "formula"
name = "wave"
expression = "sin(2*x) + y"
id = { x = [0, 1], y = [0, 1] }
ood = { x = [1, 2], y = [1, 2] }
"""


def _expected_suite():
    return T.Suite("mine", (
        T.polynomial(dim=1, seed=4), T.harmonic(seed=2, n_terms=2), T.feynman("I.6.2a"),
        T.formula("sin(2*x) + y", id={"x": [0, 1], "y": [0, 1]}, ood={"x": [1, 2], "y": [1, 2]}, name="wave"),
    ), (0, 1))


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".toml", ".json"])
def test_load_suite_files(tmp_path, suffix):
    path = tmp_path / f"suite{suffix}"
    if suffix == ".toml":
        path.write_text(SUITE_TOML)
    elif suffix == ".json":
        path.write_text(json.dumps(SUITE_DATA))
    else:
        path.write_text(yaml.safe_dump(SUITE_DATA, sort_keys=False))
    suite = T.load_suite_file(path)
    _assert_same_tasks(suite, _expected_suite())
    _assert_same_tasks(T.get_suite(str(path)), _expected_suite())


def test_suite_seed_count_and_default_name(tmp_path):
    path = tmp_path / "counted.yaml"
    path.write_text(yaml.safe_dump({"seeds": 4, "tasks": [{"family": "harmonic"}]}))
    suite = T.load_suite_file(path)
    assert suite.seeds == (0, 1, 2, 3)
    assert suite.name == "counted"
    assert suite.with_seeds(2).seeds == (0, 1)


def _write_yaml_with_second_task(tmp_path, task, **top):
    data = {"name": "broken", "seeds": [0], **top,
            "tasks": [{"family": "harmonic", "name": "fine"}, task]}
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("task, fragments", [
    ({"family": "polynomal", "name": "oops"}, ["task 2", "'oops'", "'family'", "polynomal"]),
    ({"name": "oops", "dim": 1}, ["task 2", "'oops'", "'family'"]),
    ({"family": "polynomial", "name": "oops", "dgree": 3}, ["task 2", "'oops'", "dgree"]),
    ({"family": "feynman", "name": "oops"}, ["task 2", "'oops'", "missing", "equation"]),
    ({"family": "formula", "name": "oops", "id": {"x": [0, 1]}, "ood": {"x": [1, 2]}},
     ["task 2", "'oops'", "missing", "expression"]),
    ({"family": "harmonic", "name": "oops", "id_range": [2, 1]}, ["task 2", "'oops'", "'id_range'"]),
    ({"family": "polynomial", "name": "oops", "ood_range": "wide"}, ["task 2", "'oops'", "'ood_range'"]),
    ({"family": "feynman", "name": "oops", "equation": "I.99.99"}, ["task 2", "'oops'", "'equation'"]),
    ({"family": "formula", "name": "oops", "expression": "x*z", "id": {"x": [0, 1]}, "ood": {"x": [1, 2]}},
     ["task 2", "'oops'", "'expression'", "z"]),
])
def test_malformed_task_errors_name_task_and_field(tmp_path, task, fragments):
    path = _write_yaml_with_second_task(tmp_path, task)
    with pytest.raises(SuiteError) as info:
        T.load_suite_file(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_unnamed_task_error_names_its_index_and_default_name(tmp_path):
    path = _write_yaml_with_second_task(tmp_path, {"family": "polynomial", "seed": 3, "id_range": [1, 1]})
    with pytest.raises(SuiteError, match=r"task 2.*'poly1d-s3'.*'id_range'"):
        T.load_suite_file(path)


@pytest.mark.parametrize("seeds", ["three", [0, "a"], [0, True], 1.5])
def test_wrong_seeds_type(tmp_path, seeds):
    path = _write_yaml_with_second_task(tmp_path, {"family": "harmonic", "name": "also-fine"}, seeds=seeds)
    with pytest.raises(SuiteError, match="'seeds'"):
        T.load_suite_file(path)


@pytest.mark.parametrize("data, field", [
    ({"name": "s", "tasks": [{"family": "harmonic"}], "sedes": [0]}, "sedes"),
    ({"name": "s", "tasks": []}, "'tasks'"),
    ({"name": "s", "tasks": {"family": "harmonic"}}, "'tasks'"),
    ({"name": "s", "seeds": 0, "tasks": [{"family": "harmonic"}]}, "'seeds'"),
    ({"name": "s", "tasks": [{"family": "harmonic"}, {"family": "harmonic"}]}, "unique"),
    ([1, 2], "top level"),
])
def test_malformed_suite_level(data, field):
    with pytest.raises(SuiteError, match=field):
        T.Suite.from_dict(data)


@pytest.mark.parametrize("name, text, kind", [
    ("bad.yaml", "name: s\ntasks: [\n  {family: harmonic\n", "YAML"),
    ("bad.toml", "name = \"s\"\n[[tasks]\nfamily = 1\n", "TOML"),
    ("bad.json", '{"name": "s", "tasks": [}', "JSON"),
])
def test_invalid_syntax(tmp_path, name, text, kind):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SuiteError, match=f"not valid {kind}") as info:
        T.load_suite_file(path)
    assert str(path) in str(info.value)


def test_unsupported_or_missing_file(tmp_path):
    (tmp_path / "suite.txt").write_text("name: s")
    with pytest.raises(SuiteError, match=r"\.yaml"):
        T.load_suite_file(tmp_path / "suite.txt")
    with pytest.raises(SuiteError, match="does not exist"):
        T.get_suite(str(tmp_path / "absent.yaml"))


def test_get_suite():
    assert T.get_suite("lab").name == "lab"
    suite = T.lab_suite()
    assert T.get_suite(suite) is suite
    with pytest.raises(SuiteError, match="'nope'") as info:
        T.get_suite("nope")
    for known in T.SUITES:
        assert known in str(info.value)
