"""The expression language of the offline mutators: operator set, AST helpers and a cheap screen.

One place for what both offline mutators (`symbolic`, `random`) build expressions from:

- **The operator set.** `UNARIES`: the unary functions a mutator may introduce, each with its
  source spelling (`torch.tanh`, `F.gelu`, ...); all are defined, finite and differentiable
  (almost everywhere) on the whole real line, so wrapping any finite expression in one never
  creates a NaN. `GAUSSIAN` is the one template that is not a plain call (`exp(-e²)`).
  `PERTURBATIONS`: the bounded families `g(b·x)` added as perturbation terms `a·g(b·x)` or used in
  gates `e·(1 + a·g(b·x))`. `GATES`: the gates. Expressions combine them with `+`, `−`, `×`,
  numeric constants and the input; division appears only in guarded forms whose denominator
  cannot vanish (`b·x/(1 + (b·x)²)`, `e/(1 + |e'|)`).
- **AST helpers.** Signed constants (`make_const`, `const_value`), node counting (`count_nodes`),
  the x-dependent subexpressions of an expression and replacing one (`subexpressions`,
  `replace_at`), the editable constants (`constant_sites`), a light `cleanup` (folds `e*1`,
  `e+0`, constant arithmetic, `a + -c*t`), `round_constants` (4 significant digits) and
  `render_program`.
- **A screen.** `evaluate` and `Evaluable` (re-exported from `actmine.language.interpreter`, the
  one interpreter of the candidate language) run an expression tree or a program with the torch
  back-end over the language's table -- they never execute candidate source, so they are safe on
  hostile text: anything outside the table raises `Unsupported` -- and `screen` uses them to check, in-process and in a few
  milliseconds, what `actmine.candidate.probes.run_probes` will check later (finite values and
  gradients on the probe points, a nonzero gradient, the FLOP and memory budget), plus that the
  function is not constant and differs from a reference (its parent). `cost_bound` bounds the cost
  from the expression alone, so that small expressions skip the (slower) cost measurement.

Node count (`count_nodes`): every expression node counts one, except that a call's function name
(`torch.tanh` in `torch.tanh(x)`) is part of the call, and a negative literal `-0.5` is one node.
`torch.tanh(1.5 * x)` has 4 nodes (call, product, constant, x).

Where the parts live: the AST helpers in `expression_nodes`, the operator set in
`expression_operators`, the screen and `cost_bound` in `expression_screen`; this module holds the
constant sites, `cleanup`, rounding and masking, and keeps every name above importable from here.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass

from actmine.candidate.probes import ProbeBudget, measure_cost, probe_points  # noqa: F401  (re-exported)
from actmine.language import ops as language_ops  # noqa: F401  (re-exported)
from actmine.language.interpreter import (  # noqa: F401  (re-exported)
    SCALAR_LIMIT,
    EvaluationError,
    Evaluable,
    Unsupported,
    evaluate,
    spelling_of,
)
from actmine.language.ops import TRANSCENDENTAL_WEIGHT  # noqa: F401  (re-exported)
from actmine.language.program import Helper, render_program  # noqa: F401  (re-exported)

from .expression_nodes import (  # noqa: F401  (re-exported)
    PARAM,
    SIGNIFICANT_DIGITS,
    Path,
    _is_number,
    add,
    binop,
    call,
    clone,
    const_value,
    count_nodes,
    depends_on,
    expression_depth,
    get_at,
    make_const,
    mul,
    name,
    names_in,
    nice_number,
    rename,
    replace_at,
    round_sig,
    snippet,
    spelling_node,
    subexpressions,
    walk_paths,
)
from .expression_operators import (  # noqa: F401  (re-exported)
    GATES,
    GAUSSIAN,
    PERTURBATIONS,
    RECOGNIZED_UNARY_SPELLINGS,
    UNARIES,
    UNARY_BY_SPELLING,
    Perturbation,
    Unary,
    build_gate,
    sample_amplitude,
    sample_perturbation,
    scaled,
)
from .expression_screen import cost_bound, evaluable_program, screen, screen_points, values  # noqa: F401

ENTRY_POINT = "activation_function"
RELU_SOURCE = "def activation_function(x):\n    return torch.relu(x)\n"
# The program representation, the renderer and the torch interpreter live in `actmine.language`
# (one implementation, shared with the report's formulas); these names stay importable from here.
_SCALAR_LIMIT = SCALAR_LIMIT


#: Calls whose argument's sign matters (a flipped sign could overflow or leave the domain).
_SIGN_SENSITIVE_CALLS = frozenset(
    f"torch.{n}"
    for n in (
        "exp",
        "expm1",
        "exp2",
        "sinh",
        "cosh",
        "sqrt",
        "rsqrt",
        "log",
        "log1p",
        "log2",
        "log10",
        "reciprocal",
        "pow",
        "float_power",
    )
)
_MODULE_ROOTS = ("torch", "F", "math")
#: Calls whose arguments after the first are real-valued parameters that may be tuned.
_SCALAR_PARAMETER_CALLS = frozenset(
    [
        f"torch.{n}"
        for n in (
            "clamp",
            "clip",
            "clamp_min",
            "clamp_max",
            "add",
            "sub",
            "subtract",
            "mul",
            "multiply",
            "maximum",
            "minimum",
            "fmax",
            "fmin",
            "lerp",
            "hypot",
            "atan2",
        )
    ]
    + [
        f"{root}.{n}"
        for root in ("F", "torch.nn.functional")
        for n in ("leaky_relu", "elu", "celu", "softplus", "hardtanh", "softshrink", "hardshrink")
    ]
)


@dataclass(frozen=True)
class ConstantSite:
    path: Path
    value: float | int
    protected: bool  # in a denominator, an exponent's base or a sign-sensitive call: keep the sign


def constant_sites(root: ast.expr) -> list[ConstantSite]:
    """The numeric literals of `root` a mutator may change: not exponents (`x ** 2`,
    `torch.pow(x, 2)`), not keyword arguments, not arguments of methods or helper functions, not
    arguments after the first of a torch call unless it takes real parameters (`torch.clamp`,
    `F.leaky_relu`: not dims or sizes), not inside subscripts or comparisons."""
    sites: list[ConstantSite] = []

    def visit(node: ast.AST, path: Path, protected: bool) -> None:
        value = const_value(node)
        if value is not None:
            if not isinstance(value, bool):
                sites.append(ConstantSite(path, value, protected))
            return
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, ast.Pow):
                visit(node.left, path + (("left", None),), True)  # the exponent stays as it is
                return
            visit(node.left, path + (("left", None),), protected)
            visit(
                node.right,
                path + (("right", None),),
                protected or isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)),
            )
        elif isinstance(node, ast.UnaryOp):
            visit(node.operand, path + (("operand", None),), protected)
        elif isinstance(node, ast.Call):
            spelling = spelling_of(node.func) or ""
            if spelling.split(".")[0] not in _MODULE_ROOTS:
                return  # a method or helper call: its arguments may be exponents, dims, counts
            sensitive = protected or spelling in _SIGN_SENSITIVE_CALLS
            for i, arg in enumerate(node.args):
                if i >= 1 and spelling not in _SCALAR_PARAMETER_CALLS:
                    continue  # dims, exponents, sizes
                if not isinstance(arg, ast.Starred):
                    visit(arg, path + (("args", i),), sensitive)
        elif isinstance(node, ast.IfExp):
            visit(node.body, path + (("body", None),), protected)
            visit(node.orelse, path + (("orelse", None),), protected)

    visit(root, (), False)
    return sites


# ------------------------------------------------------------------------------------------------
# Cleanup and rounding
# ------------------------------------------------------------------------------------------------


def _negative_factor(node: ast.expr) -> ast.expr | None:
    """`-c` -> `c`, `-c * t` -> `c * t` (for `a + -c*t` -> `a - c*t`); None if not of that form."""
    value = const_value(node)
    if value is not None:
        return make_const(-value) if value < 0 else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mult, ast.Div)):
        inner = _negative_factor(node.left)
        if inner is not None:
            return ast.BinOp(inner, node.op, node.right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and const_value(node) is None:
        return node.operand
    return None


def _fold(left: float, op: ast.operator, right: float) -> float | None:
    try:
        if isinstance(op, ast.Add):
            value = left + right
        elif isinstance(op, ast.Sub):
            value = left - right
        elif isinstance(op, ast.Mult):
            value = left * right
        elif isinstance(op, ast.Div):
            value = left / right
        else:
            return None
    except (ZeroDivisionError, OverflowError):
        return None
    return value if math.isfinite(value) and abs(value) < 1e12 else None


def cleanup(node: ast.expr) -> ast.expr:
    """Light algebraic cleanup, bottom-up: fold constant arithmetic, `e*1`, `1*e`, `e/1`, `e+0`,
    `0+e`, `e-0`, `--e`, `c*(a*b)` (to `c*a*b`), `c1*(c2*e/d)`, and turn `a + -c*t` into `a - c*t` (and `a - -c*t` into
    `a + c*t`). Returns a new tree; values are unchanged up to float rounding."""
    node = clone(node)
    return _cleanup(node)


def _cleanup(node: ast.expr) -> ast.expr:
    if const_value(node) is not None:
        value = const_value(node)
        return make_const(value) if isinstance(node, ast.UnaryOp) else node
    if isinstance(node, ast.BinOp):
        node.left, node.right = _cleanup(node.left), _cleanup(node.right)
        lv, rv, op = const_value(node.left), const_value(node.right), node.op
        if lv is not None and rv is not None:
            folded = _fold(lv, op, rv)
            if folded is not None:
                return make_const(folded)
        if isinstance(op, ast.Mult):
            if rv == 1:
                return node.left
            if lv == 1:
                return node.right
            if lv is not None and isinstance(node.right, ast.BinOp) and isinstance(node.right.op, ast.Mult):
                # c * (a * b) -> c * a * b, folding c * c2 when a is a constant c2
                return _cleanup(mul(mul(node.left, node.right.left), node.right.right))
            if (
                lv is not None
                and isinstance(node.right, ast.BinOp)
                and isinstance(node.right.op, ast.Div)
                and isinstance(node.right.left, ast.BinOp)
                and isinstance(node.right.left.op, ast.Mult)
                and const_value(node.right.left.left) is not None
            ):  # c1 * (c2 * e / d) -> c1c2 * e / d
                folded = _fold(lv, ast.Mult(), const_value(node.right.left.left))
                if folded is not None:
                    return ast.BinOp(mul(make_const(folded), node.right.left.right), ast.Div(), node.right.right)
        if isinstance(op, ast.Div) and rv == 1:
            return node.left
        if isinstance(op, ast.Add):
            if rv == 0:
                return node.left
            if lv == 0:
                return node.right
        if isinstance(op, ast.Sub):
            if rv == 0:
                return node.left
            if lv == 0:
                return _cleanup(ast.UnaryOp(ast.USub(), node.right))
        if isinstance(op, (ast.Add, ast.Sub)):
            positive = _negative_factor(node.right)
            if positive is not None:
                return ast.BinOp(node.left, ast.Sub() if isinstance(op, ast.Add) else ast.Add(), positive)
        return node
    if isinstance(node, ast.UnaryOp):
        node.operand = _cleanup(node.operand)
        if (
            isinstance(node.op, ast.USub)
            and isinstance(node.operand, ast.UnaryOp)
            and isinstance(node.operand.op, ast.USub)
        ):
            return node.operand.operand
        if isinstance(node.op, ast.UAdd):
            return node.operand
        return node
    if isinstance(node, ast.Call):
        node.args = [arg if isinstance(arg, ast.Starred) else _cleanup(arg) for arg in node.args]
        return node
    if isinstance(node, ast.IfExp):
        node.body, node.orelse = _cleanup(node.body), _cleanup(node.orelse)
    return node


def round_constants(node: ast.AST, digits: int = SIGNIFICANT_DIGITS) -> ast.AST:
    """A copy of `node` with every float literal rounded to `digits` significant digits."""
    node = clone(node)
    for n in ast.walk(node):
        if isinstance(n, ast.Constant) and isinstance(n.value, float):
            n.value = round_sig(n.value, digits)
    return node


def masked_structure(node: ast.AST) -> str:
    """The shape of an expression with every numeric literal (signed or not) replaced by `C` and
    `-` read as `+`: two expressions that differ only in their constants have the same mask."""
    node = clone(node)

    class _Mask(ast.NodeTransformer):
        def visit_UnaryOp(self, n):  # noqa: N802 (ast's naming)
            if const_value(n) is not None:
                return ast.Name("C", ast.Load())
            return self.generic_visit(n)

        def visit_Constant(self, n):  # noqa: N802
            return ast.Name("C", ast.Load()) if _is_number(n.value) else n

        def visit_Sub(self, n):  # noqa: N802
            return ast.Add()

    return ast.dump(_Mask().visit(node))
