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
"""

from __future__ import annotations

import ast
import math
import random
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch

from actmine.candidate.probes import ProbeBudget, measure_cost, probe_points
from actmine.language import ops as language_ops
from actmine.language.ops import TRANSCENDENTAL_WEIGHT
from actmine.language.interpreter import (SCALAR_LIMIT, EvaluationError, Evaluable, Unsupported, evaluate,  # noqa: F401
                                          spelling_of)
from actmine.language.program import Helper, render_program  # noqa: F401  (re-exported)

PARAM = "x"
ENTRY_POINT = "activation_function"
SIGNIFICANT_DIGITS = 4
RELU_SOURCE = "def activation_function(x):\n    return torch.relu(x)\n"

Path = tuple[tuple[str, int | None], ...]


# ------------------------------------------------------------------------------------------------
# Spelling helpers
# ------------------------------------------------------------------------------------------------

def spelling_node(spelling: str) -> ast.expr:
    """`"torch.nn.functional.gelu"` -> the attribute chain `torch.nn.functional.gelu`."""
    parts = spelling.split(".")
    node: ast.expr = ast.Name(parts[0], ast.Load())
    for part in parts[1:]:
        node = ast.Attribute(node, part, ast.Load())
    return node


def call(spelling: str, *args: ast.expr) -> ast.Call:
    return ast.Call(spelling_node(spelling), list(args), [])


def name(identifier: str = PARAM) -> ast.Name:
    return ast.Name(identifier, ast.Load())


def binop(left: ast.expr, op: ast.operator, right: ast.expr) -> ast.BinOp:
    return ast.BinOp(left, op, right)


def mul(left: ast.expr, right: ast.expr) -> ast.BinOp:
    return ast.BinOp(left, ast.Mult(), right)


def add(left: ast.expr, right: ast.expr) -> ast.BinOp:
    return ast.BinOp(left, ast.Add(), right)


def snippet(node: ast.AST, limit: int = 60) -> str:
    """Source of a node on one line, shortened to `limit` characters."""
    text = " ".join(ast.unparse(node).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


# ------------------------------------------------------------------------------------------------
# Constants
# ------------------------------------------------------------------------------------------------

def round_sig(value: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    """`value` rounded to `digits` significant digits (-0.0 becomes 0.0)."""
    if value == 0 or not math.isfinite(value):
        return 0.0 if value == 0 else value
    return float(f"{value:.{digits}g}") + 0.0


def make_const(value: float | int) -> ast.expr:
    """A numeric literal; a negative one as `-c` (a `UnaryOp`), which is how Python parses it."""
    if value < 0:
        return ast.UnaryOp(ast.USub(), ast.Constant(-value))
    return ast.Constant(value + 0 if isinstance(value, int) else value + 0.0)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def const_value(node: ast.AST) -> float | int | None:
    """The value of a numeric literal, signed ones (`-0.5`, `+2`) included; None otherwise."""
    if isinstance(node, ast.Constant) and _is_number(node.value):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = const_value(node.operand)
        if inner is not None:
            return -inner if isinstance(node.op, ast.USub) else inner
    return None


def nice_number(rng: random.Random, low: float, high: float, round_values: Sequence[float],
                p_round: float = 0.35, digits: int = 2) -> float:
    """A positive number: one of `round_values` with probability `p_round`, else log-uniform in
    [low, high] rounded to `digits` significant digits."""
    if round_values and rng.random() < p_round:
        return rng.choice(list(round_values))
    value = round_sig(math.exp(rng.uniform(math.log(low), math.log(high))), digits)
    return int(value) if value.is_integer() else value


# ------------------------------------------------------------------------------------------------
# The operator set
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Unary:
    """A unary function a mutator may introduce."""

    key: str          # short name: "tanh"
    spelling: str     # source spelling of the call: "torch.tanh" ("" for templates)
    kind: str         # "rectifier", "saturating", "periodic" or "bump"
    bounded: bool     # |f| is bounded

    def apply(self, arg: ast.expr) -> ast.expr:
        if self.key == "gaussian":   # exp(-e²): the one template that is not a plain call
            return call("torch.exp", ast.UnaryOp(ast.USub(), call("torch.square", arg)))
        return call(self.spelling, arg)

    @property
    def label(self) -> str:
        return self.spelling or "exp(-(·)²)"


UNARIES: tuple[Unary, ...] = (
    Unary("relu", "torch.relu", "rectifier", False),
    Unary("gelu", "F.gelu", "rectifier", False),
    Unary("silu", "F.silu", "rectifier", False),
    Unary("softplus", "F.softplus", "rectifier", False),
    Unary("mish", "F.mish", "rectifier", False),
    Unary("elu", "F.elu", "rectifier", False),
    Unary("leaky_relu", "F.leaky_relu", "rectifier", False),
    Unary("abs", "torch.abs", "rectifier", False),
    Unary("tanh", "torch.tanh", "saturating", True),
    Unary("sigmoid", "torch.sigmoid", "saturating", True),
    Unary("erf", "torch.erf", "saturating", True),
    Unary("atan", "torch.atan", "saturating", True),
    Unary("softsign", "F.softsign", "saturating", True),
    Unary("sin", "torch.sin", "periodic", True),
    Unary("cos", "torch.cos", "periodic", True),
    Unary("sinc", "torch.sinc", "bump", True),
)
GAUSSIAN = Unary("gaussian", "", "bump", True)
UNARY_BY_SPELLING: dict[str, Unary] = {u.spelling: u for u in UNARIES}
for _unary in UNARIES:   # the operator set is part of the one language table: a typo fails here, not silently
    _op = language_ops.op_of(_unary.spelling)
    if _op is None or _op.kind != "elementwise" or _op.arity != 1:
        raise ValueError(f"Unary {_unary.key!r}: `{_unary.spelling}` is not a one-tensor elementwise op of "
                         "actmine.language.ops.OPS; add it there or fix the spelling")
#: The calls that `swap_unary` may replace and `simplify` may unwrap: every tensor spelling of the
#: language's one-tensor elementwise ops (`actmine.language.ops.unary_elementwise`), so spellings of
#: the same function under other names (`torch.special.expit`, `torch.nn.functional.gelu`) count too.
RECOGNIZED_UNARY_SPELLINGS: frozenset[str] = frozenset(
    spelling for op in language_ops.unary_elementwise() for spelling in op.spellings
    if not spelling.startswith("math."))


@dataclass(frozen=True)
class Perturbation:
    """A bounded family g(b·x): perturbation terms are a·g(b·x), modulating gates 1 + a·g(b·x)."""

    key: str
    label: str        # "periodic", "gaussian", ...
    purpose: str      # why one would add it, for rationales
    weight: float     # how often it is drawn

    def build(self, x: ast.expr, b: float) -> ast.expr:
        """g(b·x), |g| <= 1: sin, cos, sinc, tanh of b·x, the rational bump b·x/(1 + (b·x)²) (at most
        1/2) and, for `gaussian`, exp(-b·x²) (b is then the coefficient of x²)."""
        if self.key in ("sin", "cos", "sinc", "tanh"):
            return call(f"torch.{self.key}", scaled(b, x))
        if self.key == "gaussian":
            return call("torch.exp", mul(mul(make_const(-b), clone(x)), clone(x)))
        if self.key == "rational":
            return ast.BinOp(scaled(b, x), ast.Div(),
                             add(ast.Constant(1), mul(mul(ast.Constant(round_sig(b * b)), clone(x)), clone(x))))
        raise ValueError(self.key)

    def sample_b(self, rng: random.Random) -> float:
        if self.key == "gaussian":
            return nice_number(rng, 0.1, 3.0, (0.1, 0.2, 0.5, 1))
        return nice_number(rng, 0.5, 3.0, (0.5, 1, 1, 1.5, 2, 3))


PERTURBATIONS: dict[str, Perturbation] = {p.key: p for p in (
    Perturbation("sin", "periodic", "to let the network represent oscillations beyond the training range", 0.3),
    Perturbation("cos", "periodic", "to give the function an even oscillation that persists beyond the "
                 "training range", 0.1),
    Perturbation("gaussian", "gaussian bump", "to reshape the function near the origin while leaving the "
                 "tails unchanged", 0.2),
    Perturbation("rational", "rational bump", "to bend the function near the origin with an odd bump that "
                 "decays like 1/x", 0.15),
    Perturbation("sinc", "sinc ripple", "to ripple the function near the origin, fading away from it", 0.15),
    Perturbation("tanh", "saturating step", "to shift the two tails apart by a bounded step", 0.1),
)}


def sample_perturbation(rng: random.Random) -> Perturbation:
    families = list(PERTURBATIONS.values())
    return rng.choices(families, weights=[p.weight for p in families])[0]


def sample_amplitude(rng: random.Random) -> float:
    """a for a·g(b·x): in [0.05, 0.5], negative one time in four."""
    a = nice_number(rng, 0.05, 0.5, (0.05, 0.1, 0.1, 0.2, 0.25, 0.5))
    return -a if rng.random() < 0.25 else a


def scaled(b: float, x: ast.expr) -> ast.expr:
    """b·x, or x itself when b is 1."""
    return clone(x) if b == 1 else mul(make_const(b), clone(x))


#: Gates g(x) that multiply an expression: (key, weight).
GATES: tuple[tuple[str, float], ...] = (("modulation", 0.5), ("sigmoid", 0.25), ("tanh", 0.25))


def build_gate(key: str, x: ast.expr, rng: random.Random) -> tuple[ast.expr, str]:
    """A gate expression in x and a description of it."""
    if key == "sigmoid":
        b = nice_number(rng, 0.5, 3.0, (1, 1.702, 2))
        gate = call("torch.sigmoid", scaled(b, x))
        return gate, f"a sigmoid gate {snippet(gate)}"
    if key == "tanh":
        b = nice_number(rng, 0.5, 3.0, (0.7979, 1, 2))
        gate = mul(ast.Constant(0.5), add(ast.Constant(1), call("torch.tanh", scaled(b, x))))
        return gate, f"a tanh gate {snippet(gate)}"
    family = sample_perturbation(rng)
    a = sample_amplitude(rng)
    term = mul(make_const(abs(a)), family.build(x, family.sample_b(rng)))
    gate = ast.BinOp(ast.Constant(1), ast.Sub() if a < 0 else ast.Add(), term)
    return gate, f"a {family.label} modulation {snippet(gate)}"


# ------------------------------------------------------------------------------------------------
# Walking, counting, replacing
# ------------------------------------------------------------------------------------------------

def count_nodes(node: ast.AST) -> int:
    """Expression nodes in `node` (see the module docstring for the convention)."""
    if const_value(node) is not None:
        return 1
    if isinstance(node, ast.Call):
        return 1 + sum(count_nodes(a) for a in node.args) + sum(count_nodes(k.value) for k in node.keywords)
    return 1 + sum(count_nodes(child) for child in ast.iter_child_nodes(node)
                   if isinstance(child, ast.expr))


def expression_depth(node: ast.AST) -> int:
    """Nesting depth of an expression (a leaf has depth 0; `torch.tanh(x)` 1)."""
    if const_value(node) is not None or isinstance(node, (ast.Name, ast.Constant)):
        return 0
    children: list[ast.AST]
    if isinstance(node, ast.Call):
        children = list(node.args) + [k.value for k in node.keywords]
    else:
        children = [c for c in ast.iter_child_nodes(node) if isinstance(c, ast.expr)]
    return 1 + max((expression_depth(c) for c in children), default=0)


def names_in(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def depends_on(node: ast.AST, tensor_names: set[str] | frozenset[str]) -> bool:
    return any(isinstance(n, ast.Name) and n.id in tensor_names for n in ast.walk(node))


def _children(node: ast.AST) -> Iterator[tuple[str, int | None, ast.AST]]:
    """The value positions of an expression that the mutators descend into."""
    if const_value(node) is not None:
        return
    if isinstance(node, ast.BinOp):
        yield "left", None, node.left
        yield "right", None, node.right
    elif isinstance(node, ast.UnaryOp):
        yield "operand", None, node.operand
    elif isinstance(node, ast.Call):
        for i, arg in enumerate(node.args):
            if not isinstance(arg, ast.Starred):
                yield "args", i, arg
    elif isinstance(node, ast.IfExp):
        yield "body", None, node.body
        yield "orelse", None, node.orelse


def walk_paths(root: ast.AST, path: Path = ()) -> Iterator[tuple[Path, ast.AST]]:
    """Every (path, node) reachable through `_children`, the root first."""
    yield path, root
    for field, index, child in _children(root):
        yield from walk_paths(child, path + ((field, index),))


def subexpressions(root: ast.expr, tensor_names: set[str] | frozenset[str]) -> list[tuple[Path, ast.expr]]:
    """The tensor-valued subexpressions of `root` (calls, arithmetic, names that depend on the
    input), with their paths; constants, scalar-only parts and a call's function are left out."""
    return [(path, node) for path, node in walk_paths(root)
            if isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Call, ast.Name)) and const_value(node) is None
            and depends_on(node, tensor_names)]


def get_at(root: ast.AST, path: Path) -> ast.AST:
    node = root
    for field, index in path:
        node = getattr(node, field) if index is None else getattr(node, field)[index]
    return node


def replace_at(root: ast.expr, path: Path, new: ast.expr) -> ast.expr:
    """A copy of `root` with the node at `path` replaced by (a copy of) `new`."""
    if not path:
        return clone(new)
    root = clone(root)
    parent = get_at(root, path[:-1])
    field, index = path[-1]
    if index is None:
        setattr(parent, field, clone(new))
    else:
        getattr(parent, field)[index] = clone(new)
    return root


def clone(node: Any) -> Any:
    """A deep copy of an AST (without source positions): much faster than `copy.deepcopy`."""
    if isinstance(node, ast.AST):
        new = node.__class__()
        for field in node._fields:
            setattr(new, field, clone(getattr(node, field, None)))
        return new
    if isinstance(node, list):
        return [clone(item) for item in node]
    return node


def rename(node: ast.AST, old: str, new: str) -> ast.AST:
    """A copy of `node` with every `Name` `old` renamed to `new`."""
    node = clone(node)
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and n.id == old:
            n.id = new
    return node


#: Calls whose argument's sign matters (a flipped sign could overflow or leave the domain).
_SIGN_SENSITIVE_CALLS = frozenset(f"torch.{n}" for n in (
    "exp", "expm1", "exp2", "sinh", "cosh", "sqrt", "rsqrt", "log", "log1p", "log2", "log10", "reciprocal",
    "pow", "float_power"))
_MODULE_ROOTS = ("torch", "F", "math")
#: Calls whose arguments after the first are real-valued parameters that may be tuned.
_SCALAR_PARAMETER_CALLS = frozenset(
    [f"torch.{n}" for n in ("clamp", "clip", "clamp_min", "clamp_max", "add", "sub", "subtract", "mul",
                             "multiply", "maximum", "minimum", "fmax", "fmin", "lerp", "hypot", "atan2")]
    + [f"{root}.{n}" for root in ("F", "torch.nn.functional")
       for n in ("leaky_relu", "elu", "celu", "softplus", "hardtanh", "softshrink", "hardshrink")])


@dataclass(frozen=True)
class ConstantSite:
    path: Path
    value: float | int
    protected: bool   # in a denominator, an exponent's base or a sign-sensitive call: keep the sign


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
                visit(node.left, path + (("left", None),), True)   # the exponent stays as it is
                return
            visit(node.left, path + (("left", None),), protected)
            visit(node.right, path + (("right", None),), protected or isinstance(node.op, (ast.Div, ast.FloorDiv,
                                                                                           ast.Mod)))
        elif isinstance(node, ast.UnaryOp):
            visit(node.operand, path + (("operand", None),), protected)
        elif isinstance(node, ast.Call):
            spelling = spelling_of(node.func) or ""
            if spelling.split(".")[0] not in _MODULE_ROOTS:
                return   # a method or helper call: its arguments may be exponents, dims, counts
            sensitive = protected or spelling in _SIGN_SENSITIVE_CALLS
            for i, arg in enumerate(node.args):
                if i >= 1 and spelling not in _SCALAR_PARAMETER_CALLS:
                    continue   # dims, exponents, sizes
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
            if lv is not None and isinstance(node.right, ast.BinOp) and isinstance(node.right.op, ast.Div) \
                    and isinstance(node.right.left, ast.BinOp) and isinstance(node.right.left.op, ast.Mult) \
                    and const_value(node.right.left.left) is not None:   # c1 * (c2 * e / d) -> c1c2 * e / d
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
        if isinstance(node.op, ast.USub) and isinstance(node.operand, ast.UnaryOp) \
                and isinstance(node.operand.op, ast.USub):
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


# ------------------------------------------------------------------------------------------------
# The interpreter (one, in actmine.language) and the screen
# ------------------------------------------------------------------------------------------------
# The program representation, the renderer and the torch interpreter live in `actmine.language`
# (one implementation, shared with the report's formulas); these names stay importable from here.
_SCALAR_LIMIT = SCALAR_LIMIT


def evaluable_program(module: ast.Module) -> Evaluable | None:
    """The program as an `Evaluable` (`actmine.language.program`: module-level assignments, helper
    functions and one `def activation_function(x)`, each function made of assignments to names and
    a final return), or None when it is outside that subset."""
    return Evaluable.from_module(module)


_POINTS: torch.Tensor | None = None


def screen_points() -> torch.Tensor:
    """The probe points of `run_probes` (float32), computed once."""
    global _POINTS
    if _POINTS is None:
        _POINTS = probe_points(torch.float32)
    return _POINTS


def values(function: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor | None:
    """The function's float64 values on the screen points, or None if it cannot be evaluated."""
    try:
        with torch.no_grad():
            return function(screen_points().clone()).detach().double()
    except (Unsupported, EvaluationError, RuntimeError, TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None


def screen(function: Callable[[torch.Tensor], torch.Tensor], reference: torch.Tensor | None = None,
           budget: ProbeBudget | None = None, require_nonlinear: bool = False,
           report: dict | None = None) -> str | None:
    """Why `function` (an `Evaluable` or any trusted callable) would fail the probes or be useless,
    or None when it looks fine. Raises `Unsupported` when it cannot be interpreted.

    Checks, on the probe points in float32: it runs, returns a tensor of the input's shape, finite
    values and gradients, a nonzero gradient, not constant on [−10, 10], within the FLOP and
    memory `budget` (default `ProbeBudget()`), different from `reference` (values on the points,
    e.g. the parent's) and, with `require_nonlinear`, not an affine function of x. When it passes
    and `report` is a dict, `report["values"]` gets the float64 values on the points (as `values`
    gives them), `report["flops"]` and `report["saved"]` the cost per element (measured with
    `probes.measure_cost`, or the `cost_bound` when that is already within the budget) and
    `report["exact"]` whether they were measured.
    """
    budget = budget or ProbeBudget()
    x = screen_points().clone().requires_grad_(True)
    try:
        with torch.enable_grad():
            y = function(x)
            if not isinstance(y, torch.Tensor) or y.shape != x.shape or not y.dtype.is_floating_point:
                return "not a float tensor of the input's shape"
            if not torch.isfinite(y).all():
                return "non-finite values"
            if not y.requires_grad:
                return "no gradient"
            (gradient,) = torch.autograd.grad(y.sum(), x, allow_unused=True)
    except EvaluationError as exc:
        return f"raises ({exc})"
    except (RuntimeError, TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
        return f"raises ({type(exc).__name__})"
    if gradient is None or not torch.isfinite(gradient).all():
        return "non-finite or missing gradient"
    if not gradient.abs().gt(0).any():
        return "zero gradient"
    y = y.detach().double()
    grid = y[:401]   # the first 401 probe points are linspace(-10, 10, 401)
    if float(grid.max() - grid.min()) < 1e-4:
        return "constant"
    if require_nonlinear:
        xs = screen_points()[:401].double()
        design = torch.stack([torch.ones_like(xs), xs], 1)
        fit = torch.linalg.lstsq(design, grid.unsqueeze(1)).solution
        if float((design @ fit).squeeze(1).sub(grid).abs().max()) < 1e-3 * (1 + float(grid.abs().max())):
            return "affine"
    if reference is not None and reference.shape == y.shape \
            and float((y - reference).abs().max()) < 1e-6 * (1 + float(reference.abs().max())):
        return "the same function as the parent"
    bound = cost_bound(function) if isinstance(function, Evaluable) else None
    if bound is not None and bound[0] <= budget.max_flops_per_element \
            and bound[1] <= budget.max_saved_bytes_per_element:
        flops, saved, exact = *bound, False   # certainly within the budget: no need to measure
    else:
        exact = True
        try:
            cost = measure_cost(function, size=256)
        except Exception as exc:  # ProbeFailure, or an evaluation error on the cost input
            return f"cost measurement failed ({type(exc).__name__})"
        flops, saved = cost.flops_per_element, cost.saved_bytes_per_element
        if round(flops, 2) > budget.max_flops_per_element:
            return f"over the FLOP budget ({flops:g})"
        if round(saved, 2) > budget.max_saved_bytes_per_element:
            return f"over the memory budget ({saved:g} B)"
    if report is not None:
        report.update(values=y, flops=flops, saved=saved, exact=exact)
    return None


#: spelling -> (weight, kernels) of the calls `cost_bound` models: the language's one-tensor
#: elementwise ops, whose forward cost per element (`weight`, e.g. 8 for torch.tanh, 3 for F.softsign)
#: and number of new tensors (`kernels`) the table states and tests/test_language_ops.py measures.
_CALL_COST: dict[str, tuple[int, int]] = {
    spelling: (op.weight, op.kernels) for op in language_ops.unary_elementwise() for spelling in op.spellings
    if not spelling.startswith("math.")}


def cost_bound(function: Evaluable) -> tuple[float, float] | None:
    """Upper bounds on what `probes.measure_cost` reports (forward FLOPs and saved bytes per element,
    float32), from the expression alone; None when it uses a call or node this does not model.

    A call of a one-tensor elementwise op (`_CALL_COST`) costs its table weight and makes its
    table's number of kernels' new tensors; an arithmetic operator with a tensor operand or a unary
    minus weighs at most `TRANSCENDENTAL_WEIGHT` (8: `**` is a pow) and makes one new tensor;
    autograd can save at most the tensors that exist, 4 bytes each per element.
    """
    tensors = {function.param}
    flops = 0
    made = 0

    def count(node: ast.AST) -> bool:
        nonlocal flops, made
        if const_value(node) is not None or isinstance(node, (ast.Constant, ast.Name)):
            return True
        if not depends_on(node, tensors):
            return True   # Python scalar arithmetic: no tensor operation
        if isinstance(node, ast.BinOp):
            flops, made = flops + TRANSCENDENTAL_WEIGHT, made + 1
            return count(node.left) and count(node.right)
        if isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, ast.UAdd):
                flops, made = flops + TRANSCENDENTAL_WEIGHT, made + 1
            return count(node.operand)
        if isinstance(node, ast.Call) and not node.keywords:
            cost = _CALL_COST.get(spelling_of(node.func) or "")
            if cost is not None:
                flops, made = flops + cost[0], made + cost[1]
                return all(count(arg) for arg in node.args)
        return False

    for target, value in function.body:
        if not count(value):
            return None
        tensors.add(target)
    if function.setup and depends_on(function.expr, {t for t, _ in function.setup}):
        return None   # module-level names are scalars here, but be safe
    if not count(function.expr):
        return None
    return float(flops), 4.0 * made
