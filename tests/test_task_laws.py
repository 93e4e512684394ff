"""The laws of the task families, read off the drawn tasks, and the lab's suites pinned.

test_tasks.py checks each family's fields and errors; these tests check what the docstrings promise
about the *draws* (they fill the documented ranges, monomials have the documented orders and
variables, the linear part its scale), that a formula is numbers and functions and never code, and
that the default suites `lab` and `lab-heldout` draw the same targets in every version (cached
reference numbers and every published figure depend on them).

To change the lab's suites on purpose: `python tests/test_task_laws.py --pin`, and say so in CHANGELOG.md.
"""

from __future__ import annotations

import json
import math
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from actmine.lab import tasks as T
from actmine.lab.tasks import SuiteError

PINNED = Path(__file__).with_name("data") / "lab_suites.json"
FRACTIONS = (0.25, 0.5, 0.75)


# --------------------------------------------------------------------------------------------
# The default suites do not change silently
# --------------------------------------------------------------------------------------------


def _fingerprint(task: T.Task) -> list[str]:
    """The target at three points on the diagonal of the ID box and three of the OOD box."""
    points = [[lo + f * (hi - lo) for lo, hi in box] for box in (task.id_box, task.ood_box) for f in FRACTIONS]
    return [f"{v:.9g}" for v in task.target(np.array(points))]


def _suites_now() -> dict:
    return {
        suite.name: {
            "seeds": list(suite.seeds),
            "tasks": {t.name: {"family": t.family, "at": _fingerprint(t)} for t in suite.tasks},
        }
        for suite in (T.lab_suite(), T.lab_heldout_suite())
    }


def test_the_default_suites_draw_the_pinned_targets():
    pinned = json.loads(PINNED.read_text())
    now = _suites_now()
    assert list(now) == list(pinned)
    for suite in pinned:
        assert now[suite]["seeds"] == pinned[suite]["seeds"]
        assert list(now[suite]["tasks"]) == list(pinned[suite]["tasks"]), suite
        for name, expected in pinned[suite]["tasks"].items():
            got = now[suite]["tasks"][name]
            assert got["family"] == expected["family"], name
            np.testing.assert_allclose(
                [float(v) for v in got["at"]],
                [float(v) for v in expected["at"]],
                rtol=1e-7,
                atol=1e-12,
                err_msg=f"{suite}: {name}",
            )


def test_every_default_task_rebuilds_from_its_dict_through_its_family():
    for suite in (T.lab_suite(), T.lab_heldout_suite()):
        for task in suite.tasks:
            assert task.family in T.FAMILIES, task.name
            again = T.build_task(json.loads(json.dumps(task.to_dict())))
            assert (again.name, again.family, again.id_box, again.ood_box) == (
                task.name,
                task.family,
                task.id_box,
                task.ood_box,
            )
            assert _fingerprint(again) == _fingerprint(task), task.name


# --------------------------------------------------------------------------------------------
# Draws fill the documented laws
# --------------------------------------------------------------------------------------------

TERM = r"([\d.]+)·sin\(2π·([\d.]+)·x \+ ([\d.]+)\)"


def test_harmonic_description_is_the_terms_joined_by_plus():
    task = T.harmonic(seed=4, n_terms=3)
    assert re.fullmatch(rf"{TERM}( \+ {TERM})*", task.description), task.description
    assert T.harmonic().spec == T.harmonic(seed=0).spec and T.harmonic().name == "harmonic-s0"


def test_harmonic_draws_spread_over_the_whole_documented_ranges():
    """Phases uniform in [0, 2π), amplitudes in [0.5, 1.5], frequencies in the given range: over 1,000
    draws the extremes come near both ends and the mean sits in the middle."""
    terms = np.array(
        [
            [float(v) for v in m]
            for seed in range(200)
            for m in re.findall(TERM, T.harmonic(seed=seed, n_terms=5, frequencies=(0.2, 0.7)).description)
        ]
    )
    amplitude, frequency, phase = terms.T
    assert len(terms) == 1000
    for values, low, high in ((phase, 0.0, 2 * math.pi), (amplitude, 0.5, 1.5), (frequency, 0.2, 0.7)):
        width = high - low
        assert low - 0.005 <= values.min() < low + 0.02 * width
        assert high - 0.02 * width < values.max() <= high + 0.005
        assert abs(values.mean() - (low + high) / 2) < 0.05 * width


def _hessian(task: T.Task, dim: int) -> np.ndarray:
    """The Hessian of a quadratic target by central differences (exact up to rounding)."""
    h, at = 0.5, np.full(dim, 0.1)
    eye = np.eye(dim) * h
    f = lambda p: float(task.target(p[None, :])[0])  # noqa: E731
    return np.array(
        [
            [
                (f(at + eye[i] + eye[j]) - f(at + eye[i] - eye[j]) - f(at - eye[i] + eye[j]) + f(at - eye[i] - eye[j]))
                / (4 * h * h)
                for j in range(dim)
            ]
            for i in range(dim)
        ]
    )


def test_polynomial_monomials_of_a_degree_two_draw_are_all_quadratic():
    """degree=2: every monomial has order exactly 2, so one monomial is never linear (or constant)."""
    for seed in range(20):
        task = T.polynomial(dim=3, seed=seed, degree=2, n_terms=1)
        assert np.abs(_hessian(task, 3)).max() > 1e-3, seed


def test_polynomial_monomials_draw_every_variable():
    """Variables are drawn with replacement from all d of them: over draws each one is in some monomial."""
    involved = np.zeros(3, dtype=bool)
    for seed in range(30):
        involved |= np.abs(_hessian(T.polynomial(dim=3, seed=seed, degree=2, n_terms=1), 3)).max(axis=1) > 1e-6
    assert involved.all(), involved


def test_polynomial_linear_part_has_unit_expected_squared_norm_in_any_dimension():
    """The gradient at 0 is the linear part (monomials of order ≥ 2 are flat there): N(0, 1/d) each."""
    for dim in (2, 8):
        eps = 1e-6
        norms = []
        for seed in range(200):
            task = T.polynomial(dim=dim, seed=seed, degree=3, n_terms=4)
            grad = (task.target(np.eye(dim) * eps) - task.target(np.zeros((1, dim)))) / eps
            norms.append(float(np.sum(grad**2)))
        assert 0.8 < np.mean(norms) < 1.25, (dim, np.mean(norms))


def test_a_numpy_integer_seed_draws_the_same_task_as_the_int():
    for family in (T.polynomial, T.harmonic):
        a, b = family(seed=np.int64(3)), family(seed=3)
        assert a.spec == b.spec and type(a.spec["seed"]) is int
        assert _fingerprint(a) == _fingerprint(b)
        T.generate(a, 0, 8, 8)  # the cache key is plain JSON
    for bad in (1.5, "3", True, None):
        with pytest.raises(SuiteError, match=r"field 'seed' must be an integer"):
            T.polynomial(seed=bad)


# --------------------------------------------------------------------------------------------
# A formula is numbers, variables and functions, never code
# --------------------------------------------------------------------------------------------

HOSTILE = [
    "x.__class__",
    "x.__class__.__mro__[-1].__subclasses__()",
    "__import__('os').system('true')",
    "(lambda: x)()",
    "[x for x in ()]",
    "x if x else 1",
    "'x'",
    "Symbol('y')",
    "exp(x, evaluate=False)",
    "sin(*[x])",
    "x[0]",
    "1j * x",
    "x @ x",
]


@pytest.mark.parametrize("expression", HOSTILE)
def test_a_formula_that_is_more_than_arithmetic_is_refused_before_parsing(expression, monkeypatch):
    def no_parse(*args, **kwargs):
        raise AssertionError("sympy's parser (eval) was reached")

    monkeypatch.setattr(T.sympy, "parse_expr", no_parse)
    with pytest.raises(
        SuiteError, match=r"^task 'f': field 'expression' (uses .* which is not allowed|is not a formula)"
    ):
        T.formula(expression, id={"x": [0, 1]}, ood={"x": [1, 2]}, name="f")


@pytest.mark.parametrize(
    "expression, why",
    [
        ("x**(9**9**9**9)", "raises to the power 3.87"),  # sympy computed 9**9**9 exactly: the CLI hung
        ("x + 1e308 * 10", "beyond"),
        ("2**(10**6) * x", "raises to the power 1e\\+06, above 1000"),
        ("x**(-(9**9))", "raises to the power -3.87"),
        ("x**Rational(10**7, 3)", "raises to the power 3.33"),
        ("1" + "0" * 400 + " * x", "holds a number beyond"),
        ("((10**300)**2) * x", "beyond"),
        ("1" + "+1" * 100_000 + " + x", "nested too deeply"),
    ],
)
def test_a_formula_whose_constants_sympy_cannot_compute_is_refused_before_parsing(expression, why, monkeypatch):
    monkeypatch.setattr(T.sympy, "parse_expr", lambda *a, **k: pytest.fail("sympy's parser was reached"))
    with pytest.raises(SuiteError, match=rf"^task 'f': field 'expression' .*({why})"):
        T.formula(expression, id={"x": [0, 1]}, ood={"x": [1, 2]}, name="f")


@pytest.mark.parametrize("expression", ["x**0.5", "x**(3/2)", "x**Rational(3, 2)", "2**10 * x", "-(x**2)", "x**-1.5"])
def test_ordinary_constant_powers_still_parse(expression):
    T.formula(expression, id={"x": [0.5, 1]}, ood={"x": [1, 2]}, name="f")


def test_xor_gets_a_hint_and_names_outside_the_table_stay_unknown_symbols():
    with pytest.raises(SuiteError, match=r"operator BitXor, which is not allowed \(use \*\* for powers\)"):
        T.formula("x^2", id={"x": [0, 1]}, ood={"x": [1, 2]})
    for name in ("E", "gamma", "I", "S", "Integer", "Symbol"):
        with pytest.raises(
            SuiteError, match=rf"field 'expression' (uses {name}, which are not among|could not be parsed)"
        ):
            T.formula(f"{name}*x + x", id={"x": [0, 1]}, ood={"x": [1, 2]})
    with pytest.raises(SuiteError, match=r"is not a formula of the variables: 'sin'"):
        T.formula("sin", id={"x": [0, 1]}, ood={"x": [1, 2]})


def test_every_function_of_the_table_is_allowed_and_means_numpys():
    x = np.linspace(0.1, 0.9, 7)[:, None]
    for name, reference in (
        ("sin", np.sin),
        ("cos", np.cos),
        ("tan", np.tan),
        ("tanh", np.tanh),
        ("exp", np.exp),
        ("sqrt", np.sqrt),
        ("log", np.log),
        ("ln", np.log),
        ("abs", np.abs),
        ("arcsin", np.arcsin),
        ("arccos", np.arccos),
        ("arctan", np.arctan),
    ):
        task = T.formula(f"{name}(x) * pi", id={"x": [0.1, 0.5]}, ood={"x": [0.5, 0.9]})
        np.testing.assert_allclose(task.target(x), reference(x[:, 0]) * np.pi, rtol=1e-12, err_msg=name)
    assert T.formula("  2*x + 1", id={"x": [0, 1]}, ood={"x": [1, 2]}).target(np.ones((1, 1)))[0] == 3.0


def test_a_non_finite_formula_is_a_suite_error_and_not_a_numpy_warning():
    task = T.formula("log(x - 0.5)", id={"x": [0, 1]}, ood={"x": [1, 2]}, name="half-defined")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(
            SuiteError, match=r"^task 'half-defined': the target is not finite everywhere on its ID box"
        ):
            T.generate(task, 0, 64, 16)


# --------------------------------------------------------------------------------------------
# Suite entries: where an error is, what is allowed, how many draws
# --------------------------------------------------------------------------------------------


def test_build_task_errors_say_where_the_entry_is():
    with pytest.raises(SuiteError, match=r"^suite\.toml, task 3"):
        T.build_task({"generator": "no-such-generator", "index": 0}, where="suite.toml, task 3")
    with pytest.raises(
        SuiteError,
        match=r"^task \('f'\): unknown field\(s\) bogus for family 'formula'; "
        r"allowed: expression, id, ood, name$",
    ):
        T.build_task(
            {
                "family": "formula",
                "name": "f",
                "expression": "x",
                "id": {"x": [0, 1]},
                "ood": {"x": [1, 2]},
                "bogus": 1,
            },
            where="task",
        )


def test_a_generator_entry_may_draw_exactly_the_maximum(monkeypatch):
    monkeypatch.setattr(T, "MAX_DRAWS_PER_ENTRY", 3)
    entry = {"generator": "harmonic", "count": 3}
    assert len(T.expand_generator_entry(entry)) == 3
    with pytest.raises(SuiteError, match=r"4 draws in one entry; at most 3$"):
        T.expand_generator_entry({**entry, "count": 4})


if __name__ == "__main__" and sys.argv[1:] == ["--pin"]:
    PINNED.parent.mkdir(exist_ok=True)
    lines = []
    for suite, data in _suites_now().items():  # one line per task, so that a diff shows which task moved
        tasks = ",\n".join(f"   {json.dumps(name)}: {json.dumps(task)}" for name, task in data["tasks"].items())
        lines.append(f' {json.dumps(suite)}: {{"seeds": {json.dumps(data["seeds"])}, "tasks": {{\n{tasks}\n }}}}')
    PINNED.write_text("{\n" + ",\n".join(lines) + "\n}\n")
    print(f"pinned {PINNED}")
