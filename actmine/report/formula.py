"""Candidate programs as formulas: ast → sympy (LaTeX) and ast → a safe torch callable.

A candidate's source is untrusted text, so nothing here ever `exec`s or `eval`s it. The source is
parsed with `ast`; `activation_function` must be a sequence of simple local assignments
(`name = expression`) followed by one `return expression`; module-level helper functions of the
same shape are inlined where they are called. Each expression may use `x`, the locals, numbers,
`math.pi`/`math.e`, `+ − × / **`, unary minus and calls of a fixed table of element-wise functions
(`torch.relu`, `F.gelu`, `torch.sin`, … or the same as tensor methods, `x.sin()`). Anything else
makes the functions below return None.

- `simplified_formula(source)`: the sympy-simplified expression as LaTeX, or None.
- `sympy_expression(source)`: the sympy expression (unsimplified), or None.
- `safe_function(source)`: a `Tensor → Tensor` callable that interprets the same restricted ast
  with torch (differentiable, for plots), or None. Only the table's functions can be reached and
  every number becomes a float tensor, so the interpretation cannot hang or touch anything else.
"""

from __future__ import annotations

import ast
import math
from typing import Any, Callable

import sympy as sp
import torch
import torch.nn.functional as F

__all__ = ["simplified_formula", "sympy_expression", "safe_function", "FormulaError"]

ENTRY = "activation_function"
MAX_NODES = 400          # larger expressions are not worth simplifying (and may be slow)
SIMPLIFY_MAX_OPS = 80


class FormulaError(ValueError):
    """The source is outside the subset this module understands."""


# --------------------------------------------------------------------------------------------
# The table: name -> (torch implementation, sympy implementation); each takes (args, kwargs)
# --------------------------------------------------------------------------------------------

def _kw(kwargs: dict, name: str, default: Any) -> Any:
    return kwargs.get(name, default)


def _sp_gelu(a, kw):
    approximate = _kw(kw, "approximate", "none")
    if approximate == "tanh":
        return a / 2 * (1 + sp.tanh(sp.sqrt(2 / sp.pi) * (a + sp.Float(0.044715) * a ** 3)))
    return a / 2 * (1 + sp.erf(a / sp.sqrt(2)))


def _sp_softplus(a, kw):
    beta = _kw(kw, "beta", 1)
    return sp.log(1 + sp.exp(beta * a)) / beta


def _sp_elu(a, kw):
    alpha = _kw(kw, "alpha", 1)
    return sp.Piecewise((a, a > 0), (alpha * (sp.exp(a) - 1), True))


def _sp_leaky(a, kw, *rest):
    slope = rest[0] if rest else _kw(kw, "negative_slope", sp.Float(0.01))
    return sp.Piecewise((a, a >= 0), (slope * a, True))


def _sp_clamp(a, kw, *rest):
    low = rest[0] if len(rest) > 0 else kw.get("min")
    high = rest[1] if len(rest) > 1 else kw.get("max")
    if low is not None:
        a = sp.Max(a, low)
    if high is not None:
        a = sp.Min(a, high)
    return a


_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772, 1.0507009873554805


def _unary(torch_fn: Callable, sympy_fn: Callable) -> tuple[Callable, Callable]:
    return (lambda args, kw: torch_fn(args[0]), lambda args, kw: sympy_fn(args[0]))


OPS: dict[str, tuple[Callable, Callable]] = {
    "relu": _unary(torch.relu, lambda a: sp.Max(0, a)),
    "sin": _unary(torch.sin, sp.sin), "cos": _unary(torch.cos, sp.cos), "tan": _unary(torch.tan, sp.tan),
    "tanh": _unary(torch.tanh, sp.tanh), "sinh": _unary(torch.sinh, sp.sinh), "cosh": _unary(torch.cosh, sp.cosh),
    "exp": _unary(torch.exp, sp.exp), "log": _unary(torch.log, sp.log), "sqrt": _unary(torch.sqrt, sp.sqrt),
    "abs": _unary(torch.abs, sp.Abs), "sign": _unary(torch.sign, sp.sign),
    "atan": _unary(torch.atan, sp.atan), "arctan": _unary(torch.atan, sp.atan),
    "asinh": _unary(torch.asinh, sp.asinh), "arcsinh": _unary(torch.asinh, sp.asinh),
    "erf": _unary(torch.erf, sp.erf), "erfc": _unary(torch.erfc, sp.erfc),
    "sigmoid": _unary(torch.sigmoid, lambda a: 1 / (1 + sp.exp(-a))),
    "silu": _unary(F.silu, lambda a: a / (1 + sp.exp(-a))),
    "mish": _unary(F.mish, lambda a: a * sp.tanh(sp.log(1 + sp.exp(a)))),
    "sinc": _unary(torch.sinc, lambda a: sp.sinc(sp.pi * a)),  # torch.sinc is the normalised sinc
    "square": _unary(torch.square, lambda a: a ** 2),
    "log1p": _unary(torch.log1p, lambda a: sp.log(1 + a)), "expm1": _unary(torch.expm1, lambda a: sp.exp(a) - 1),
    "rsqrt": _unary(torch.rsqrt, lambda a: 1 / sp.sqrt(a)), "reciprocal": _unary(torch.reciprocal, lambda a: 1 / a),
    "neg": _unary(torch.neg, lambda a: -a),
    "selu": _unary(F.selu, lambda a: _SELU_SCALE * sp.Piecewise((a, a > 0), (_SELU_ALPHA * (sp.exp(a) - 1), True))),
    "gelu": (lambda args, kw: F.gelu(args[0], approximate=str(kw.get("approximate", "none"))),
             lambda args, kw: _sp_gelu(args[0], kw)),
    "softplus": (lambda args, kw: F.softplus(args[0], beta=float(kw.get("beta", 1.0))),
                 lambda args, kw: _sp_softplus(args[0], kw)),
    "elu": (lambda args, kw: F.elu(args[0], alpha=float(kw.get("alpha", 1.0))),
            lambda args, kw: _sp_elu(args[0], kw)),
    "leaky_relu": (lambda args, kw: F.leaky_relu(args[0], float(args[1]) if len(args) > 1
                                                 else float(kw.get("negative_slope", 0.01))),
                   lambda args, kw: _sp_leaky(args[0], kw, *args[1:])),
    "clamp": (lambda args, kw: torch.clamp(args[0], *[float(a) for a in args[1:]],
                                           **{k: float(v) for k, v in kw.items() if k in ("min", "max")}),
              lambda args, kw: _sp_clamp(args[0], kw, *args[1:])),
    "pow": (lambda args, kw: torch.pow(args[0], args[1]), lambda args, kw: args[0] ** args[1]),
    "maximum": (lambda args, kw: torch.maximum(args[0], args[1]), lambda args, kw: sp.Max(args[0], args[1])),
    "minimum": (lambda args, kw: torch.minimum(args[0], args[1]), lambda args, kw: sp.Min(args[0], args[1])),
    "mul": (lambda args, kw: args[0] * args[1], lambda args, kw: args[0] * args[1]),
    "add": (lambda args, kw: args[0] + args[1], lambda args, kw: args[0] + args[1]),
}
OPS["clip"] = OPS["clamp"]
OPS["swish"] = OPS["silu"]
OPS["absolute"] = OPS["abs"]
KWARGS = {"approximate", "beta", "alpha", "negative_slope", "min", "max"}
CONSTANTS = {"pi": (math.pi, sp.pi), "e": (math.e, sp.E), "tau": (math.tau, 2 * sp.pi)}
NAMESPACES = {"torch", "F", "math", "nn", "functional", "special"}


# --------------------------------------------------------------------------------------------
# Parsing: the entry function as one expression tree in x
# --------------------------------------------------------------------------------------------

def _function_bodies(tree: ast.Module) -> dict[str, tuple[list[str], ast.expr]]:
    """{name: (parameter names, return expression with locals inlined)} for each module-level
    function of the supported shape."""
    found: dict[str, tuple[list[str], ast.expr]] = {}
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        try:
            found[node.name] = ([a.arg for a in node.args.args], _body_expression(node))
        except FormulaError:
            continue
    return found


def _substitute(expr: ast.expr, mapping: dict[str, ast.expr]) -> ast.expr:
    class Sub(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.AST:
            return mapping.get(node.id, node)
    import copy
    return Sub().visit(copy.deepcopy(expr))


def _body_expression(node: ast.FunctionDef) -> ast.expr:
    if node.args.vararg or node.args.kwarg or node.args.kwonlyargs or node.decorator_list:
        raise FormulaError("unsupported signature")
    local: dict[str, ast.expr] = {}
    body = [s for s in node.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    for statement in body[:-1]:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1 \
                and isinstance(statement.targets[0], ast.Name):
            local[statement.targets[0].id] = _substitute(statement.value, local)
        elif isinstance(statement, ast.AugAssign) and isinstance(statement.target, ast.Name) \
                and statement.target.id in local:
            local[statement.target.id] = ast.BinOp(local[statement.target.id], statement.op,
                                                   _substitute(statement.value, local))
        else:
            raise FormulaError("only simple assignments before the return")
    if not body or not isinstance(body[-1], ast.Return) or body[-1].value is None:
        raise FormulaError("the function must end with one return")
    return _substitute(body[-1].value, local)


def _dotted(node: ast.expr) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return parts[::-1]
    return None


class _Interpreter:
    """Walks the restricted expression ast with one backend ('torch' or 'sympy')."""

    def __init__(self, backend: str, helpers: dict[str, tuple[list[str], ast.expr]]):
        self.backend = backend
        self.index = 0 if backend == "torch" else 1
        self.helpers = helpers
        self.nodes = 0

    def number(self, value: float) -> Any:
        if self.backend == "torch":
            return torch.tensor(float(value))
        return sp.Integer(int(value)) if float(value).is_integer() and abs(value) < 1e6 else sp.Float(value, 6)

    def run(self, node: ast.expr, env: dict[str, Any], depth: int = 0) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES or depth > 60:
            raise FormulaError("expression too large")
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise FormulaError(f"unsupported constant {node.value!r}")
            return self.number(node.value)
        if isinstance(node, ast.Name):
            if node.id in env:
                return env[node.id]
            raise FormulaError(f"unknown name {node.id}")
        if isinstance(node, ast.Attribute):
            parts = _dotted(node)
            if parts and parts[0] in NAMESPACES and parts[-1] in CONSTANTS:
                value, symbol = CONSTANTS[parts[-1]]
                return self.number(value) if self.backend == "torch" else symbol
            raise FormulaError("unsupported attribute")
        if isinstance(node, ast.UnaryOp):
            value = self.run(node.operand, env, depth + 1)
            if isinstance(node.op, ast.USub):
                return -value
            if isinstance(node.op, ast.UAdd):
                return value
            raise FormulaError("unsupported unary operator")
        if isinstance(node, ast.BinOp):
            left, right = self.run(node.left, env, depth + 1), self.run(node.right, env, depth + 1)
            op = type(node.op)
            if op is ast.Add:
                return left + right
            if op is ast.Sub:
                return left - right
            if op is ast.Mult:
                return left * right
            if op is ast.Div:
                return left / right
            if op is ast.Pow:
                if self.backend == "sympy" and getattr(right, "is_number", False):
                    if abs(float(right)) > 64:
                        raise FormulaError("exponent too large to simplify")
                    if getattr(left, "is_number", False):
                        return sp.Float(math.pow(float(left), float(right)), 6)
                return left ** right
            raise FormulaError("unsupported operator")
        if isinstance(node, ast.Call):
            return self.call(node, env, depth)
        raise FormulaError(f"unsupported syntax {type(node).__name__}")

    def call(self, node: ast.Call, env: dict[str, Any], depth: int) -> Any:
        args = [self.run(a, env, depth + 1) for a in node.args if not isinstance(a, ast.Starred)]
        if len(args) != len(node.args):
            raise FormulaError("starred arguments")
        kwargs: dict[str, Any] = {}
        for keyword in node.keywords:
            if keyword.arg not in KWARGS:
                raise FormulaError(f"unsupported keyword {keyword.arg}")
            if isinstance(keyword.value, ast.Constant) and isinstance(keyword.value.value, str):
                kwargs[keyword.arg] = keyword.value.value
            else:
                value = self.run(keyword.value, env, depth + 1)
                kwargs[keyword.arg] = float(value) if self.backend == "torch" else value
        func = node.func
        if isinstance(func, ast.Name) and func.id in self.helpers:
            params, body = self.helpers[func.id]
            if len(params) != len(args) or kwargs:
                raise FormulaError("helper call does not match its signature")
            return self.run(body, dict(zip(params, args)), depth + 1)
        parts = _dotted(func)
        if parts and len(parts) >= 2 and parts[0] in NAMESPACES and parts[-1] in OPS:
            return OPS[parts[-1]][self.index](args, kwargs)
        if isinstance(func, ast.Attribute) and func.attr in OPS:  # a tensor method: x.sin()
            receiver = self.run(func.value, env, depth + 1)
            return OPS[func.attr][self.index]([receiver, *args], kwargs)
        raise FormulaError(f"unsupported call {ast.unparse(func)}")


def _parse(source: str) -> tuple[ast.expr, str, dict[str, tuple[list[str], ast.expr]]]:
    tree = ast.parse(source)
    helpers = _function_bodies(tree)
    if ENTRY not in helpers:
        raise FormulaError(f"no {ENTRY} of the supported shape")
    params, body = helpers.pop(ENTRY)
    if len(params) != 1:
        raise FormulaError(f"{ENTRY} must take one argument")
    return body, params[0], helpers


def sympy_expression(source: str) -> sp.Expr | None:
    """The candidate's function as a sympy expression in the real symbol `x`, or None."""
    try:
        body, param, helpers = _parse(source)
        x = sp.Symbol("x", real=True)
        expr = _Interpreter("sympy", helpers).run(body, {param: x})
        return sp.sympify(expr)
    except Exception:  # FormulaError, SyntaxError, sympy's errors, overflow ...: no formula
        return None


def simplified_formula(source: str) -> str | None:
    """LaTeX of the simplified sympy form of the candidate's `activation_function`, or None when
    the source is outside the supported subset. The source is only parsed, never executed."""
    expr = sympy_expression(source)
    if expr is None:
        return None
    try:
        if sp.count_ops(expr) <= SIMPLIFY_MAX_OPS:
            simpler = sp.simplify(expr)
            if sp.count_ops(simpler) <= sp.count_ops(expr):  # simplify() can make things longer
                expr = simpler
        return sp.latex(expr)
    except Exception:  # sympy can fail in many ways on odd expressions; the formula is optional
        try:
            return sp.latex(expr)
        except Exception:
            return None


def safe_function(source: str) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """A torch callable that interprets the candidate's restricted expression ast (never `exec`),
    or None when the source is outside the supported subset. Differentiable with autograd."""
    try:
        body, param, helpers = _parse(source)
        _Interpreter("sympy", helpers).run(body, {param: sp.Symbol("x")})  # validate once, cheaply
    except Exception:
        return None

    def function(x: torch.Tensor) -> torch.Tensor:
        result = _Interpreter("torch", helpers).run(body, {param: x})
        if not isinstance(result, torch.Tensor) or result.shape != x.shape:
            result = torch.as_tensor(result, dtype=x.dtype).expand_as(x)
        return result

    return function
