"""Tests of actmine.lab.expression_tasks: the random-expression generator and its closed grammar."""

from __future__ import annotations

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actmine.lab.expression_tasks import (
    GROUP_FUNCTIONS,
    OPERATOR_GROUPS,
    DrawnExpression,
    ExpressionError,
    ExpressionGenerator,
    _Redraw,
    compile_expression,
    functions_of,
)
from actmine.lab.generators import GeneratorError, boxes_disjoint, generator_names, get_generator
from actmine.lab.tasks import Suite, build_task, generate

FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _points(box, n=256, seed=0):
    rng = np.random.default_rng(seed)
    low, high = np.array([b[0] for b in box]), np.array([b[1] for b in box])
    return low + (high - low) * rng.random((n, len(box)))


def test_registered_and_drawn_through_the_registry():
    assert "expression" in generator_names()
    task = get_generator("expression").draw(0)
    assert task.family == "expression" and task.spec["generator"] == "expression" and task.spec["index"] == 0


def test_draws_are_deterministic_in_params_and_index():
    a, b = ExpressionGenerator(), get_generator("expression", dims=[1, 5])
    for index in (0, 7, 123_456):
        first, second = a.draw(index), b.draw(index)
        assert (first.name, first.description, first.id_box, first.ood_box) == (
            second.name,
            second.description,
            second.id_box,
            second.ood_box,
        )
        x = _points(first.id_box)
        np.testing.assert_array_equal(first.target(x), second.target(x))


def test_different_indexes_params_and_seeds_draw_different_tasks():
    generator = ExpressionGenerator()
    drawn = [generator.draw(i) for i in range(40)]
    assert len({t.description for t in drawn}) == len({t.name for t in drawn}) == 40
    other_seed = ExpressionGenerator(seed=1).draw(0)
    assert other_seed.description != drawn[0].description and other_seed.name != drawn[0].name


def test_a_drawn_task_is_rebuilt_from_its_spec():
    for index in (0, 3, 11):
        task = get_generator("expression", depth=3, operators=["periodic", "kinked", "bump"]).draw(index)
        rebuilt = build_task(task.to_dict())
        assert (rebuilt.name, rebuilt.description, rebuilt.id_box) == (task.name, task.description, task.id_box)
        x = _points(task.ood_box)
        np.testing.assert_array_equal(rebuilt.target(x), task.target(x))


def test_a_suite_file_entry_draws_expressions():
    suite = Suite.from_dict({"name": "s", "tasks": [{"generator": "expression", "params": {"dims": 2}, "count": 3}]})
    assert [t.input_dim for t in suite.tasks] == [2, 2, 2]
    assert len({t.name for t in suite.tasks}) == 3


@FAST
@given(
    index=st.integers(0, 10**7),
    low=st.integers(1, 5),
    extra=st.integers(0, 2),
    depth=st.integers(1, 3),
    operators=st.sets(st.sampled_from(tuple(OPERATOR_GROUPS)), min_size=1),
)
def test_every_draw_passes_the_domain_checks_and_keeps_to_its_operators(index, low, extra, depth, operators):
    generator = ExpressionGenerator(dims=[low, min(5, low + extra)], depth=depth, operators=sorted(operators))
    drawn = generator.expression(index)
    task = generator.draw(index)
    assert low <= task.input_dim <= min(5, low + extra)
    # boxes: disjoint, OOD beyond the ID interval in every coordinate
    assert boxes_disjoint(task.id_box, task.ood_box)
    for (id_lo, id_hi), (ood_lo, ood_hi) in zip(task.id_box, task.ood_box):
        assert id_lo < id_hi and ood_lo < ood_hi and (ood_lo >= id_hi or ood_hi <= id_lo)
    # finite on both boxes (random points and the lab's own data), not constant, not exploding
    for box in (task.id_box, task.ood_box):
        assert np.all(np.isfinite(task.target(_points(box, seed=index % 97))))
    data = generate(task, 0, 128, 64)
    assert float(data.y_ood.abs().max()) <= ExpressionGenerator.MAX_STANDARDISED * 1.5
    # held-out operator groups are really absent: not recorded, and none of their functions written
    assert set(drawn.groups) <= operators
    written = functions_of(drawn.text)
    for group in set(OPERATOR_GROUPS) - operators:
        assert not written & GROUP_FUNCTIONS.get(group, frozenset()), (group, drawn.text)


def test_every_variable_enters_the_target():
    generator = ExpressionGenerator(dims=[5, 5], n_terms=[1, 1], depth=1)
    for index in range(20):
        task = generator.draw(index)
        x = _points(task.id_box, n=64)
        for column in range(5):
            moved = x.copy()
            moved[:, column] += 0.1
            assert not np.allclose(task.target(moved), task.target(x)), (index, column, task.description)


def test_the_text_means_the_same_to_sympy():
    generator = ExpressionGenerator()
    for index in range(6):
        task = generator.draw(index)
        symbols = [sympy.Symbol(v) for v in task.variables]
        expr = sympy.sympify(task.description, locals=dict(zip(task.variables, symbols)))
        x = _points(task.id_box, n=32)
        expected = np.real(np.asarray(sympy.lambdify(symbols, expr, "numpy")(*x.T), dtype=complex))
        np.testing.assert_allclose(task.target(x), np.broadcast_to(expected, (32,)), rtol=1e-9, atol=1e-9)


def test_the_domain_checks_redraw_bad_targets():
    generator = ExpressionGenerator()
    rng = np.random.default_rng(0)

    def drawn(text, id_box=((0.0, 1.0),), ood_box=((1.0, 2.0),)):
        return DrawnExpression(text, ("x0",), (), id_box, ood_box, 0)

    for text, reason in (
        ("log(x0 - 0.5)", "not finite on the ID box"),
        ("sqrt(1.5 - x0)", "not finite on the OOD box"),
        ("1/(x0 - 1.5)", "explodes beyond the ID scale"),  # a pole the points miss
        ("0*x0 + 2", "constant on the ID box"),
        ("tanh(40*x0)", "constant on the OOD box"),
        ("exp(12*x0)", "explodes beyond the ID scale"),
    ):
        with pytest.raises(_Redraw, match=reason):
            generator._check(drawn(text), rng)
    generator._check(drawn("sin(3*x0) + x0"), rng)  # a good target passes


def test_redraws_are_bounded_and_explained():
    class Impossible(ExpressionGenerator):
        MIN_STD = 1e12  # no target is ever accepted

    expected = r"no valid target for index 4 in 3 attempts \(.*constant on the ID box ×"
    with pytest.raises(GeneratorError, match=expected):
        Impossible(max_attempts=3).draw(4)


def test_redrawn_indexes_are_still_deterministic():
    generator = ExpressionGenerator(operators=["saturating"], n_terms=[1, 1])
    redrawn = [i for i in range(60) if generator.expression(i).attempt > 0]
    assert redrawn, "saturating pieces are flat beyond the ID box often enough to need redraws"
    again = ExpressionGenerator(operators=["saturating"], n_terms=1)
    assert generator.expression(redrawn[0]) == again.expression(redrawn[0])


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os')",
        "x0.real",
        "x0**x0",
        "x0**0.5",
        "exp(x0, 1)",
        "y + 1",
        "open('f')",
        "x0 if x0 else 1",
        "[x0]",
        "exp(x=x0)",
        "",
        "Max(x0)",
        "True + x0",
    ],
)
def test_the_grammar_refuses_everything_else(text):
    with pytest.raises(ExpressionError):
        compile_expression(text, ("x0",))


def test_the_grammar_computes_what_it_says():
    f = compile_expression("Max(x0 - 0.5, 0) + Abs(x1) * sech(0) - 2*pi/4 + (-1)*x1**2 + atan(1)", ("x0", "x1"))
    x = np.array([[1.0, -2.0], [0.0, 3.0]])
    expected = np.maximum(x[:, 0] - 0.5, 0) + np.abs(x[:, 1]) - np.pi / 2 - x[:, 1] ** 2 + np.pi / 4
    np.testing.assert_allclose(f(x), expected)
    assert functions_of("Max(x0, 1) + sin(x0)") == {"Max", "sin"}


@pytest.mark.parametrize(
    "params, match",
    [
        ({"operators": ["trig"]}, "unknown option 'trig'"),
        ({"operators": []}, "non-empty list"),
        ({"dims": [0, 3]}, "dims"),
        ({"depth": 9}, "depth"),
        ({"colour": 1}, "unknown param 'colour'"),
    ],
)
def test_bad_parameters_say_what_is_allowed(params, match):
    with pytest.raises(GeneratorError, match=match):
        get_generator("expression", **params)


def test_operator_order_does_not_make_another_generator():
    a = get_generator("expression", operators=["kinked", "bump"])
    b = get_generator("expression", operators=["bump", "kinked"])
    assert a.params() == b.params() and a.draw(5).name == b.draw(5).name
