"""The checked program representation, the one interpreter (torch and sympy back-ends) and the
bounded sympy formula step (`actmine.report.formula`, `actmine.report.simplify`)."""

from __future__ import annotations

import ast
import math
import os
import sys
import textwrap

import mpmath
import pytest
import sympy as sp
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actmine.candidate.source import compile_candidate
from actmine.language import ops
from actmine.language.interpreter import (
    EvaluationError,
    Evaluable,
    SympyBackend,
    Unsupported,
    evaluate,
    interpreted_op,
    run,
    sympy_of,
)
from actmine.language.program import Program, ProgramError, parse_program, render_program
from actmine.report.formula import safe_function, simplified_formula, simplified_formulas, sympy_expression
from actmine.report.simplify import _rebuild, simplify_to_latex

X = sp.Symbol("x", real=True)


def src(body: str) -> str:
    return f"def activation_function(x):\n    return {body}\n"


# ---- the representation --------------------------------------------------------------------------


def test_program_reads_constants_helpers_and_locals_and_renders():
    source = textwrap.dedent('''\
        """A docstring."""
        SCALE = 1.702

        def gate(t, s):
            """Helpers may have docstrings."""
            z = s * t
            return torch.sigmoid(z)

        def activation_function(x):
            g = gate(x, SCALE)
            g += 0.5
            return x * g
        ''')
    program = parse_program(source)
    assert program.param == "x" and [t for t, _ in program.setup] == ["SCALE", "gate"]
    assert ast.unparse(program.body[1][1]) == "g + 0.5"  # `g += 0.5` read as a rebinding
    assert program.helpers["gate"].params == ("t", "s")
    assert render_program(ast.parse("x * 2", mode="eval").body) == "def activation_function(x):\n    return x * 2\n"


@pytest.mark.parametrize(
    "source, why",
    [
        ("def activation_function(x):\n    for i in range(2):\n        x = x + 1\n    return x\n", "assignments"),
        ("def activation_function(x):\n    y = y + x\n    return y\n", "before assigning"),
        ("def activation_function(x):\n    x += 1\n    return x\n", "in place"),
        ("def activation_function(x):\n    y = x\n    y *= 2\n    return x + y\n", "in place"),
        ("def activation_function(x, k=2):\n    return x\n", "positional"),
        ("def activation_function(x):\n    return (y := x)\n", "NamedExpr"),
        ("def activation_function(x):\n    return (lambda t: t)(x)\n", "Lambda"),
        ("import os\ndef activation_function(x):\n    return x\n", "Import"),
        ("def f(x):\n    return x\n", "no `def activation_function"),
        ("def activation_function(x):\n    return x\ndef activation_function(x):\n    return x\n", "twice"),
        ("not python (", "not valid Python"),
    ],
)
def test_programs_outside_the_subset_are_refused_with_the_reason(source, why):
    with pytest.raises(ProgramError, match=why):
        parse_program(source)
    assert Program.from_module(ast.parse(source)) is None if why != "not valid Python" else True


# ---- the torch back-end --------------------------------------------------------------------------

GRID = torch.linspace(-4, 4, 33, dtype=torch.float64)


def test_torch_backend_matches_the_compiled_program():
    source = (
        "SCALE = 1.702\n\ndef gate(t, s):\n    z = s * t\n    return torch.sigmoid(z)\n\n"
        "def activation_function(x):\n    g = gate(x, SCALE)\n    g += 0.25\n"
        "    return x * g + 0.1 * x.clamp(min=0).square() + torch.where(x > 1, x, math.pi * x)\n"
    )
    program = parse_program(source, Evaluable)
    torch.testing.assert_close(program(GRID), compile_candidate(source)(GRID))


@pytest.mark.parametrize(
    "text, error",
    [
        ("torch.zeros(1000000)", Unsupported),  # a constructor of a size the program picks
        ("torch.sum(x)", Unsupported),  # reductions are out of the interpreter's scope
        ("F.gelu(x, inplace=True)", Unsupported),  # a keyword the op does not take
        ("x.numpy()", Unsupported),
        ("open('f')", Unsupported),
        ("x[0]", Unsupported),
        ("math.floor(1e12) * math.floor(1e12) * x", Unsupported),  # integers are bounded too
        ("math.sin(x)", EvaluationError),  # as Python would fail on a tensor
        ("x if x > 0 else -x", EvaluationError),
    ],
)
def test_torch_backend_refuses_what_it_does_not_model(text, error):
    with pytest.raises(error):
        evaluate(ast.parse(text, mode="eval").body, {"x": GRID})


def test_helper_recursion_and_work_are_bounded():
    recursive = "def f(t):\n    return f(t) + f(t)\n\ndef activation_function(x):\n    return f(x)\n"
    with pytest.raises(Unsupported):
        run(parse_program(recursive), GRID)
    doubling = "".join(f"def h{k + 1}(t):\n    return h{k}(t) + h{k}(t)\n" for k in range(30))
    with pytest.raises(Unsupported, match="too many steps"):
        run(parse_program("def h0(t):\n    return t\n" + doubling + src("h30(x)")), GRID)
    deep = src("+".join(["x"] * 400))
    with pytest.raises(Unsupported, match="nested too deeply"):
        run(parse_program(deep), GRID)


# ---- the two back-ends agree ---------------------------------------------------------------------

_DISCONTINUOUS = {
    "sign",
    "sgn",
    "floor",
    "ceil",
    "round",
    "trunc",
    "frac",
    "hardshrink",
    "threshold",
    "floor_divide",
    "fmod",
    "remainder",
    "copysign",
    "heaviside",
    "polygamma",
    "zeta",
    "gammainc",
    "gammaincc",
}  # kinks where float rounding picks the branch, or odd domains


def _formula_ops(arity: int) -> list[tuple[str, str | None]]:
    """(spelling, method) of the table's interpreted elementwise ops of `arity` whose formula
    builds and evaluates in mpmath."""
    found = []
    for entry in ops.OPS:
        if (
            interpreted_op(entry) is None
            or entry.kind != "elementwise"
            or entry.arity != arity
            or entry.sympy is None
            or entry.name in _DISCONTINUOUS
        ):
            continue
        spelling = next((s for s in entry.spellings if not s.startswith("math.")), None)
        if spelling is None:
            continue
        args = "x" if arity == 1 else "x, 0.5 * x + 0.25"
        try:
            expr = sympy_of(parse_program(src(f"{spelling}({args})")))
            sp.lambdify(X, expr, modules="mpmath")(mpmath.mpf("0.37"))
        except Exception:
            continue
        found.append((spelling, entry.method if entry.method in ops.METHODS else None))
    return found


UNARY_OPS = _formula_ops(1)
BINARY_OPS = _formula_ops(2)
NICE = [-1.5, -0.5, 0.25, 0.7, 1.0, 2.0, 3.0]
POINTS = [-2.7, -1.3, -0.45, 0.35, 0.8, 1.9, 3.3]


def test_the_random_programs_cover_the_table():
    assert len(UNARY_OPS) >= 60 and len(BINARY_OPS) >= 10


@st.composite
def expressions(draw, depth: int = 3) -> str:
    """A random expression in x (every subexpression depends on x)."""
    if depth == 0 or draw(st.integers(0, 4)) == 0:
        c, d = draw(st.sampled_from(NICE)), draw(st.sampled_from(NICE))
        return draw(st.sampled_from(["x", f"({c} * x + {d})"]))
    kind = draw(st.sampled_from(["unary", "unary", "method", "arith", "power", "binary"]))
    a = draw(expressions(depth - 1))
    if kind in ("unary", "method"):
        spelling, method = draw(st.sampled_from(UNARY_OPS))
        return f"({a}).{method}()" if kind == "method" and method else f"{spelling}({a})"
    if kind == "power":
        return f"({a}) ** {draw(st.sampled_from([2, 3, 0.5]))}"
    b = draw(expressions(depth - 1))
    if kind == "arith":
        return f"({a}) {draw(st.sampled_from(['+', '-', '*', '/']))} ({b})"
    spelling, _ = draw(st.sampled_from(BINARY_OPS))
    return f"{spelling}({a}, {b})"


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * (1 + abs(b))


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(expressions())
def test_torch_and_sympy_backends_agree_on_random_programs(text):
    program = parse_program(src(text))
    try:
        formula = sympy_of(program)
        values = run(program, torch.tensor(POINTS, dtype=torch.float64))
    except (Unsupported, EvaluationError):
        return  # a tower of exponentials, a huge tree: refused, which is what the bounds are for
    function = sp.lambdify(X, formula, modules="mpmath")
    for point, value in zip(POINTS, values.tolist()):
        try:
            expected = function(mpmath.mpf(point))
        except (ZeroDivisionError, ValueError, TypeError, OverflowError):
            continue
        if isinstance(expected, mpmath.mpc):
            if abs(expected.imag) > 1e-12:
                continue
            expected = expected.real
        expected = float(expected)
        if math.isfinite(value) and math.isfinite(expected) and abs(expected) < 1e12:
            assert _close(value, expected), (text, point, value, expected, formula)


# ---- bounded formulas ----------------------------------------------------------------------------

CHAIN = "".join(f"    y{k + 1} = torch.sin(y{k}) + y{k} * y{k}\n" for k in range(40))

HOSTILE = [
    src("x ** 10 ** 10 ** 10"),
    src("x ** 1e9"),
    src("torch.pow(torch.pow(torch.pow(x, 1e5), 1e5), 1e5)"),
    src("torch.float_power(x, 123456789.0)"),
    src("math.pow(10.0, 300.0) * x"),
    src("x.pow(1e6)"),
    src("x.pow(x.pow(x.pow(x.pow(x))))"),
    src("torch.exp(torch.exp(torch.exp(torch.exp(x))))"),
    src("torch.exp2(torch.exp2(torch.exp2(torch.exp2(x))))"),
    src("torch.exp(torch.exp(torch.exp(100.0))) * x"),
    src("torch.square(" * 8 + "x" + ")" * 8),
    src("+".join(["torch.sin(x)"] * 3000)),
    f"def activation_function(x):\n    y0 = torch.tanh(x)\n{CHAIN}    return y40\n",
]


@pytest.mark.parametrize("source", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_formulas_are_refused_without_building_them(source):
    assert sympy_expression(source) is None
    assert simplified_formula(source) is None


def test_sympy_bounds_apply_to_every_power_spelling():
    for text in (
        "x ** 65",
        "torch.pow(x, 65)",
        "torch.float_power(x, 65)",
        "x.pow(65)",
        "x.float_power(65)",
        "torch.square(torch.square(torch.square(torch.square(torch.square(torch.square(torch.square(x)))))))",
    ):
        with pytest.raises(Unsupported, match="exponent"):
            sympy_of(parse_program(src(text)))
    assert sympy_of(parse_program(src("torch.pow(x, 64) + math.pow(2.0, 10.0)"))) == X**64 + 1024


@pytest.mark.parametrize("spelling, function", [("gammainc", sp.lowergamma), ("gammaincc", sp.uppergamma)])
def test_a_special_function_is_not_expanded_by_a_large_integer(spelling, function):
    """`lowergamma(n, x)` at an integer n is a sum of n terms that sympy builds at once (n = 10⁵: about
    an hour, in the process of a report or an export); above `MAX_EXPONENT` n reaches it as a float."""
    for n in (3000, 100_000):
        text = f"F.gelu(x) + 0.5 * torch.special.{spelling}(torch.where(x > 0, {n}, {n}), torch.sigmoid(x))"
        expr = sympy_of(parse_program(src(text)))
        (special,) = expr.atoms(function)
        assert special.args[0] == sp.Float(n) and not special.args[0].is_Integer
        assert sp.count_ops(expr) < 40
    small = sympy_of(parse_program(src(f"torch.special.{spelling}(3, x)")))
    assert not small.atoms(function) and small.has(sp.exp)  # a small integer still gives the exact formula


def test_formulas_of_a_batch():
    sources = [
        src("torch.relu(x)"),
        src("F.gelu(x) + 0.1 * torch.sin(x)"),
        HOSTILE[0],
        src("torch.sum(x)"),
        src("torch.relu(x)"),
    ]
    latex = simplified_formulas(sources)
    assert latex[0] == sp.latex(sp.Max(0, X)) == latex[4]
    assert "erf" in latex[1] and "sin" in latex[1]
    assert latex[2] is None and latex[3] is None


def test_safe_function_runs_the_torch_backend():
    source = src("F.silu(x) * 2 + x.tanh()")
    torch.testing.assert_close(safe_function(source)(GRID), compile_candidate(source)(GRID))
    assert safe_function(src("torch.sum(x)")) is None
    assert safe_function(src("1.5"))(GRID).shape == GRID.shape


# ---- the time limit ------------------------------------------------------------------------------

FAKE_CHILD = """\
import json, os, sys, time
with open(sys.argv[1], "a") as pids:
    pids.write(f"{os.getpid()}\\n")
print("ready", flush=True)
for line in sys.stdin:
    text = json.loads(line)["srepr"]
    if text == "hang":
        time.sleep(3600)
    print(json.dumps({"latex": text.upper()}), flush=True)
"""


def test_a_child_that_hangs_is_killed_and_the_rest_go_on(tmp_path):
    script, pids = tmp_path / "child.py", tmp_path / "pids"
    script.write_text(FAKE_CHILD)
    answers = simplify_to_latex(["a", "hang", "b"], timeout_s=1.0, argv=[sys.executable, str(script), str(pids)])
    assert answers == ["A", None, "B"]
    started = [int(p) for p in pids.read_text().split()]
    assert len(started) == 2  # the hung child was replaced for the rest of the batch
    for pid in started:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_child_that_never_starts_gives_no_formulas(tmp_path):
    assert simplify_to_latex(
        ["a", "b"], startup_timeout_s=0.5, argv=[sys.executable, "-c", "import time; time.sleep(3600)"]
    ) == [None, None]


def test_the_real_child_simplifies_and_rebuilds_only_sympy():
    expr = X / 2 * (1 + sp.erf(X / sp.sqrt(2))) + sp.Piecewise((X, X > 0), (sp.Float(0.5) * X, True))
    (latex,) = simplify_to_latex([sp.srepr(expr)])
    assert latex is not None and "erf" in latex
    assert _rebuild(sp.srepr(expr)) == expr
    for hostile in ("__import__('os').system('true')", "Poly('x')", "Symbol.__init__", "eval('1')", "Function('f')"):
        with pytest.raises(ValueError):
            _rebuild(hostile)


def test_sympy_backend_counts_booleans_as_numbers():
    formula = sympy_of(parse_program(src("(x > 1) * x + torch.where(x > 0, x, 0.5 * x)")))
    f = sp.lambdify(X, formula)
    assert f(2.0) == 4.0 and f(0.5) == 0.5 and f(-1.0) == -0.5
    assert isinstance(SympyBackend().number(3), sp.Integer)
