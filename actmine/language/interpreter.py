"""The one interpreter of straight-line candidate programs, with a torch and a sympy back-end.

It walks a `Program` (`actmine.language.program`) or a bare expression tree and never executes
source: no `exec`, no `eval`, no attribute lookup by a name the program wrote. Every call is looked
up in the operation table (`actmine.language.ops`): by spelling (`torch.tanh`, `F.gelu`,
`math.sin`) or by tensor method (`x.tanh()`), with the op's own keywords; named numbers
(`math.pi`) come from its constants. The interpreter handles the ops that compute values
elementwise (kinds "elementwise" and "comparison", and `zeros_like`/`ones_like`/`full_like`):
reductions, constructors of arbitrary size, structure and conversions raise `Unsupported` -- they
are out of scope for the screen and the formulas, and a constructor of a size the program chooses
could allocate without limit in the parent process.

Back-ends (the `Backend` protocol) give the values meaning:

- `TorchBackend` (`TORCH`): tensors and Python numbers, differentiable with autograd. What the
  offline mutators' in-process screen (`Evaluable`) and the report's curves (`safe_function`) run.
  Python-number arithmetic is bounded (`SCALAR_LIMIT`, small integer powers) so a program cannot
  make the interpreter build a huge integer or spin.
- `SympyBackend`: sympy expressions in a real symbol, for the report's formulas. Bounded so that
  building a formula cannot hang the parent process (see the class docstring): a constant
  subexpression is first computed with the torch back-end's bounded scalar arithmetic; every power
  with a numeric exponent has |exponent| <= `MAX_EXPONENT`; towers of exponentials are at most
  `MAX_EXP_HEIGHT` high; the expression tree has at most `MAX_TREE_SIZE` nodes.

Both back-ends share the limits of the walk: at most `max_steps` expression nodes evaluated per
run (helpers are evaluated at each call), nesting at most `MAX_DEPTH`, helper recursion at most
`MAX_HELPER_DEPTH`. Anything outside the subset raises `Unsupported`; an exception raised by the
computation itself (as the candidate would raise it) is an `EvaluationError`.
"""

from __future__ import annotations

import ast
import math
from typing import Any, Callable, Protocol

import sympy as sp
import torch

from . import ops
from .ops import NoFormula, Op
from .program import Helper, Program

__all__ = [
    "Unsupported",
    "EvaluationError",
    "Backend",
    "TorchBackend",
    "SympyBackend",
    "TORCH",
    "Interpreter",
    "evaluate",
    "run",
    "Evaluable",
    "sympy_of",
    "SCALAR_LIMIT",
    "INTERPRETED_KINDS",
    "interpreted_op",
]

SCALAR_LIMIT = 1e12  # |Python number| the torch back-end's scalar arithmetic may produce
MAX_DEPTH = 200  # nesting of expression nodes (deeper: Unsupported, not a RecursionError)
MAX_HELPER_DEPTH = 16  # nested helper calls (recursion deeper than this is not modelled)
MAX_EXPONENT = 64  # |numeric exponent| of any power the sympy back-end builds
MAX_EXP_HEIGHT = 3  # exp(exp(exp(x))) at most
MAX_TREE_SIZE = 1500  # nodes of a sympy expression (as a tree)
TORCH_MAX_STEPS = 20_000
SYMPY_MAX_STEPS = 2_000

#: The kinds of ops the interpreter runs, plus the constructors whose size is the input's.
INTERPRETED_KINDS = frozenset({"elementwise", "comparison"})
_LIKE_CONSTRUCTORS = frozenset({"zeros_like", "ones_like", "full_like"})


class Unsupported(Exception):
    """The program uses something the interpreter does not model (it may still be valid Python)."""


class EvaluationError(Exception):
    """Evaluating the program raised, as the candidate itself would."""


def interpreted_op(entry: Op | None) -> Op | None:
    """`entry` if the interpreter runs it, else None."""
    if entry is not None and (entry.kind in INTERPRETED_KINDS or entry.name in _LIKE_CONSTRUCTORS):
        return entry
    return None


def spelling_of(node: ast.expr) -> str | None:
    """The dotted name of an attribute chain or a call's function (`torch.tanh`); None otherwise."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


# ------------------------------------------------------------------------------------------------
# Back-ends
# ------------------------------------------------------------------------------------------------


class Backend(Protocol):
    """What values mean. The interpreter resolves names, helpers and the table; a back-end computes."""

    max_steps: int

    def number(self, value: int | float) -> Any: ...
    def string(self, value: str) -> Any: ...
    def constant(self, constant: ops.Constant) -> Any: ...
    def depends_on_input(self, value: Any) -> bool: ...
    def binary(self, op: ast.operator, left: Any, right: Any) -> Any: ...
    def negate(self, value: Any) -> Any: ...
    def compare(self, op: ast.cmpop, left: Any, right: Any) -> Any: ...
    def truth(self, value: Any) -> bool: ...
    def call(self, entry: Op, spelling: str | None, method: str | None, args: list, kwargs: dict) -> Any: ...


_ARITHMETIC: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
}
_COMPARISONS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Gt: lambda a, b: a > b,
    ast.Lt: lambda a, b: a < b,
    ast.GtE: lambda a, b: a >= b,
    ast.LtE: lambda a, b: a <= b,
}


def _check_scalar(value: Any) -> Any:
    """A Python number the torch back-end may keep: finite and at most `SCALAR_LIMIT` in size."""
    if isinstance(value, complex):
        raise Unsupported("a complex number")
    if (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and (not math.isfinite(value) or abs(value) > SCALAR_LIMIT)
    ):
        raise Unsupported("a huge or non-finite number")
    return value


def _as_float(value: int | float) -> float:
    """A literal as a float (an integer literal too large for a float is refused)."""
    try:
        out = float(value)
    except OverflowError:
        raise Unsupported("a number literal too large") from None
    if not math.isfinite(out):
        raise Unsupported("a non-finite number literal")
    return out


class TorchBackend:
    """Tensors and Python numbers; numbers stay Python floats, so scalar arithmetic is bounded here."""

    max_steps = TORCH_MAX_STEPS

    def number(self, value: int | float) -> Any:
        return _as_float(value)

    def string(self, value: str) -> Any:
        return value

    def constant(self, constant: ops.Constant) -> Any:
        return constant.value

    def depends_on_input(self, value: Any) -> bool:
        return isinstance(value, torch.Tensor)

    def binary(self, op: ast.operator, left: Any, right: Any) -> Any:
        if isinstance(left, str) or isinstance(right, str):
            raise Unsupported("string arithmetic")
        function = _ARITHMETIC.get(type(op))
        if function is None:
            raise Unsupported(f"the operator {type(op).__name__}")
        scalars = not isinstance(left, torch.Tensor) and not isinstance(right, torch.Tensor)
        if scalars and isinstance(op, ast.Pow) and (abs(right) > MAX_EXPONENT or abs(left) > 1e6):
            raise Unsupported("a large power of numbers")
        try:
            out = function(left, right)
        except Exception as exc:
            raise EvaluationError(f"{type(exc).__name__}: {exc}") from None
        return _check_scalar(out) if scalars else out

    def negate(self, value: Any) -> Any:
        if isinstance(value, str):
            raise Unsupported("a negated string")
        return -value

    def compare(self, op: ast.cmpop, left: Any, right: Any) -> Any:
        if isinstance(left, str) or isinstance(right, str):
            raise Unsupported("a string comparison")
        try:
            return _COMPARISONS[type(op)](left, right)
        except Exception as exc:
            raise EvaluationError(f"{type(exc).__name__}: {exc}") from None

    def truth(self, value: Any) -> bool:
        if isinstance(value, torch.Tensor):
            raise EvaluationError("a tensor used as a condition")
        return bool(value)

    def call(self, entry: Op, spelling: str | None, method: str | None, args: list, kwargs: dict) -> Any:
        if method is not None:
            receiver = args[0]
            if not isinstance(receiver, torch.Tensor):
                raise Unsupported(f"the method .{method}() of a number")
            function, args = getattr(receiver, method), args[1:]
        else:
            assert spelling is not None
            if spelling.startswith("math.") and any(isinstance(a, torch.Tensor) for a in args):
                raise EvaluationError(f"{spelling} of a tensor")
            function = ops.FUNCTIONS[spelling]
        try:
            out = function(*args, **kwargs)
        except Exception as exc:
            raise EvaluationError(f"{spelling or '.' + str(method)}: {type(exc).__name__}: {exc}") from None
        return out if isinstance(out, torch.Tensor) else _check_scalar(out)


TORCH = TorchBackend()


class SympyBackend:
    """Sympy expressions in the real symbol `symbol`; bounded so that building cannot hang.

    - A subexpression without the input (numbers only) is first computed by the torch back-end's
      scalar arithmetic (bounded, and failing exactly where the program would fail on numbers);
      only then is it built exactly in sympy. So `exp(exp(exp(100)))` or `10 ** 10 ** 10` are
      refused before sympy evaluates anything.
    - An integer argument above `MAX_EXPONENT` in size reaches a special function (an op of
      transcendental weight) as a float: sympy would otherwise evaluate it exactly or expand by it
      (`lowergamma(10**5, x)` is a sum of 10⁵ terms).
    - Every result is checked once per new node (memoised): a power whose exponent is a number
      of size above `MAX_EXPONENT` (any spelling: `**`, `torch.pow`, `x.pow`, `torch.float_power`,
      `math.pow`, nested `torch.square`, which sympy folds into one power), an exponential tower
      higher than `MAX_EXP_HEIGHT` (`exp`, `exp2`, a power with a non-numeric exponent), a tree of
      more than `MAX_TREE_SIZE` nodes, or an infinity/NaN: `Unsupported`.
    - Boolean values in arithmetic (`(x > 0) * x`) become 1/0 as in torch.
    """

    max_steps = SYMPY_MAX_STEPS

    def __init__(self, symbol: sp.Symbol | None = None):
        self.symbol = symbol if symbol is not None else sp.Symbol("x", real=True)
        self._checked: dict[Any, tuple[int, int]] = {}

    # -- values

    def number(self, value: int | float) -> Any:
        if _as_float(value).is_integer() and abs(value) < 1e6:
            return sp.Integer(int(value))
        return sp.Float(value, 6)

    def string(self, value: str) -> Any:
        return value

    def constant(self, constant: ops.Constant) -> Any:
        return self._bounded(sp.sympify(constant.sympy))

    def depends_on_input(self, value: Any) -> bool:
        return bool(getattr(value, "free_symbols", None))

    @staticmethod
    def _is_number(value: Any) -> bool:
        return isinstance(value, sp.Basic) and not value.free_symbols and isinstance(value, sp.Expr)

    def _float(self, value: Any) -> Any:
        """The value of a numeric argument for the torch shadow computation."""
        if isinstance(value, str):
            return value
        if isinstance(value, (sp.logic.boolalg.BooleanAtom, bool)):
            return bool(value)
        try:
            out = complex(value)
        except (TypeError, ValueError) as exc:
            raise Unsupported(f"a value without a number: {type(exc).__name__}") from None
        if out.imag:
            raise Unsupported("a complex number")
        return _check_scalar(out.real)

    def _numeric(self, value: Any) -> bool:
        return (
            isinstance(value, str) or isinstance(value, (sp.logic.boolalg.BooleanAtom, bool)) or self._is_number(value)
        )

    def _shadow(self, compute: Callable[[], Any]) -> None:
        """Run the same step with the torch back-end on floats: raises where that overflows/fails."""
        try:
            out = compute()
        except EvaluationError as exc:
            raise Unsupported(f"a constant that cannot be computed ({exc})") from None
        if isinstance(out, torch.Tensor):
            if out.numel() != 1 or not torch.isfinite(out).all() or float(out.abs().max()) > SCALAR_LIMIT:
                raise Unsupported("a huge or non-finite constant")

    def _arith(self, value: Any) -> Any:
        if isinstance(value, str):
            raise Unsupported("string arithmetic")
        if isinstance(value, bool) or (isinstance(value, sp.logic.boolalg.Boolean) and not isinstance(value, sp.Expr)):
            return sp.Piecewise((sp.Integer(1), value), (sp.Integer(0), True))
        return value

    # -- operations

    def binary(self, op: ast.operator, left: Any, right: Any) -> Any:
        left, right = self._arith(left), self._arith(right)
        function = _ARITHMETIC.get(type(op))
        if function is None:
            raise Unsupported(f"the operator {type(op).__name__}")
        if self._is_number(left) and self._is_number(right):
            self._shadow(lambda: TORCH.binary(op, self._float(left), self._float(right)))
        if isinstance(op, ast.Pow) and self._is_number(right):
            exponent = self._float(right)
            if abs(exponent) > MAX_EXPONENT:
                raise Unsupported("an exponent too large for a formula")
        return self._build(lambda: function(left, right))

    def negate(self, value: Any) -> Any:
        value = self._arith(value)
        return self._build(lambda: -value)

    def compare(self, op: ast.cmpop, left: Any, right: Any) -> Any:
        if isinstance(left, str) or isinstance(right, str):
            raise Unsupported("a string comparison")
        return self._build(lambda: _COMPARISONS[type(op)](left, right))

    def truth(self, value: Any) -> bool:
        if isinstance(value, (bool, sp.logic.boolalg.BooleanAtom)):
            return bool(value)
        if self._is_number(value):
            return bool(value != 0)
        raise Unsupported("a condition that depends on the input")

    def call(self, entry: Op, spelling: str | None, method: str | None, args: list, kwargs: dict) -> Any:
        if entry.sympy is None:
            raise Unsupported(f"{entry.name} has no formula")
        if spelling is not None and spelling.startswith("math.") and any(self.depends_on_input(a) for a in args):
            raise Unsupported(f"{spelling} of the input")  # the torch back-end: EvaluationError
        if method is not None and not self.depends_on_input(args[0]):
            raise Unsupported(f"the method .{method}() of a number")
        if all(self._numeric(a) for a in args) and all(self._numeric(v) for v in kwargs.values()):
            self._shadow(
                lambda: TORCH.call(
                    entry,
                    spelling,
                    method,
                    [self._float(a) for a in args],
                    {k: self._float(v) for k, v in kwargs.items()},
                )
            )
        if entry.weight >= ops.TRANSCENDENTAL_WEIGHT:
            args = [self._inexact_if_large(a) for a in args]
            kwargs = {k: self._inexact_if_large(v) for k, v in kwargs.items()}
        return self._build(lambda: entry.sympy(tuple(args), kwargs))

    # -- bounds

    def _inexact_if_large(self, value: Any) -> Any:
        """An integer above `MAX_EXPONENT` in size as a float, for a special function's argument.

        Sympy evaluates special functions exactly at integers, and some expand term by term first:
        `lowergamma(n, x)` is a sum of n terms (n = 10⁵: about an hour, before any size bound could
        look at the result), `gamma(n)` a factorial. A float argument leaves the function
        unevaluated (symbolic partner) or evaluates it numerically.
        """
        if isinstance(value, sp.Integer) and abs(value) > MAX_EXPONENT:
            return sp.Float(value, 15)
        return value

    def _build(self, make: Callable[[], Any]) -> Any:
        try:
            value = make()
        except (Unsupported, EvaluationError):
            raise
        except NoFormula as exc:
            raise Unsupported(f"no formula: {exc}") from None
        except Exception as exc:  # sympy's TypeError/ValueError on odd combinations
            raise Unsupported(f"sympy: {type(exc).__name__}") from None
        return self._bounded(value)

    def _bounded(self, value: Any) -> Any:
        if isinstance(value, sp.Basic):
            self._measure(value)
        return value

    def _measure(self, expr: sp.Basic) -> tuple[int, int]:
        """(tree size, exponential height) of `expr`; raises `Unsupported` past a bound."""
        known = self._checked.get(expr)
        if known is not None:
            return known
        if expr in (sp.zoo, sp.nan, sp.oo, -sp.oo):
            raise Unsupported("an infinity or NaN in the formula")
        size, height = 1, 0
        for arg in expr.args:
            arg_size, arg_height = self._measure(arg)
            size, height = size + arg_size, max(height, arg_height)
            if size > MAX_TREE_SIZE:
                raise Unsupported("a formula too large")
        if isinstance(expr, sp.Pow):
            exponent = expr.exp
            if exponent.is_number:
                value = complex(exponent.evalf(15)) if not exponent.is_Rational else complex(exponent)
                if abs(value) > MAX_EXPONENT:
                    raise Unsupported("an exponent too large for a formula")
            else:
                height += 1
        elif isinstance(expr, sp.exp):
            height += 1
        if height > MAX_EXP_HEIGHT:
            raise Unsupported("a tower of exponentials")
        self._checked[expr] = (size, height)
        return size, height


# ------------------------------------------------------------------------------------------------
# The interpreter
# ------------------------------------------------------------------------------------------------


class _BoundHelper:
    """A `Helper` bound to its module's namespace (late binding, as Python's globals)."""

    def __init__(self, helper: Helper, namespace: dict[str, Any], interpreter: Interpreter):
        self.helper, self.namespace, self.interpreter, self.active = helper, namespace, interpreter, 0

    def __call__(self, *args: Any) -> Any:
        if len(args) != len(self.helper.params):
            raise Unsupported(f"a helper called with {len(args)} arguments for {len(self.helper.params)} parameters")
        if self.active >= MAX_HELPER_DEPTH:
            raise Unsupported("deep recursion of a helper")
        env = dict(self.namespace)
        env.update(zip(self.helper.params, args))
        self.active += 1
        try:
            for target, value in self.helper.body:
                env[target] = self.interpreter.evaluate(value, env)
            return self.interpreter.evaluate(self.helper.expr, env)
        finally:
            self.active -= 1


class Interpreter:
    """Walks expressions with one back-end; counts the steps of one run."""

    def __init__(self, backend: Backend = TORCH):
        self.backend = backend
        self.steps = 0
        self.depth = 0

    def run(self, program: Program, x: Any) -> Any:
        """The value of `program` at input `x` (whatever the back-end's value of the input is)."""
        namespace: dict[str, Any] = {}
        for target, value in program.setup:
            namespace[target] = (
                _BoundHelper(value, namespace, self) if isinstance(value, Helper) else self.evaluate(value, namespace)
            )
        env = dict(namespace)
        env[program.param] = x
        for target, value in program.body:
            env[target] = self.evaluate(value, env)
        return self.evaluate(program.expr, env)

    def evaluate(self, node: ast.AST, env: dict[str, Any]) -> Any:
        self.steps += 1
        if self.steps > self.backend.max_steps:
            raise Unsupported("too many steps (a large program, or helpers that call each other many times)")
        if self.depth >= MAX_DEPTH:
            raise Unsupported("an expression nested too deeply")
        self.depth += 1
        try:
            return self._evaluate(node, env)
        finally:
            self.depth -= 1

    def _evaluate(self, node: ast.AST, env: dict[str, Any]) -> Any:
        backend = self.backend
        if isinstance(node, ast.Constant):
            if isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
                return backend.number(node.value)
            if isinstance(node.value, str) and len(node.value) < 32:
                return backend.string(node.value)
            raise Unsupported(f"the literal {type(node.value).__name__}")
        if isinstance(node, ast.Name):
            if node.id in env and not isinstance(env[node.id], _BoundHelper):
                return env[node.id]
            raise Unsupported(f"the name {node.id}")
        if isinstance(node, ast.Attribute):
            spelling = spelling_of(node)
            constant = ops.CONSTANT_BY_SPELLING.get(spelling or "")
            if constant is None:
                raise Unsupported(f"the attribute {spelling}")
            return backend.constant(constant)
        if isinstance(node, ast.BinOp):
            return backend.binary(node.op, self.evaluate(node.left, env), self.evaluate(node.right, env))
        if isinstance(node, ast.UnaryOp):
            operand = self.evaluate(node.operand, env)
            if isinstance(node.op, ast.USub):
                return backend.negate(operand)
            if isinstance(node.op, ast.UAdd):
                return operand
            raise Unsupported(f"the operator {type(node.op).__name__}")
        if isinstance(node, ast.Compare):
            if len(node.ops) != 1 or type(node.ops[0]) not in _COMPARISONS:
                raise Unsupported("a comparison other than one of < > <= >=")
            return backend.compare(node.ops[0], self.evaluate(node.left, env), self.evaluate(node.comparators[0], env))
        if isinstance(node, ast.IfExp):
            test = backend.truth(self.evaluate(node.test, env))
            return self.evaluate(node.body if test else node.orelse, env)
        if isinstance(node, ast.Call):
            return self._call(node, env)
        raise Unsupported(type(node).__name__)

    def _call(self, node: ast.Call, env: dict[str, Any]) -> Any:
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            raise Unsupported("a starred argument")
        func = node.func
        if isinstance(func, ast.Name) and isinstance(env.get(func.id), _BoundHelper):
            if node.keywords:
                raise Unsupported("keyword arguments to a helper")
            return env[func.id](*[self.evaluate(a, env) for a in node.args])
        spelling = spelling_of(func)
        method: str | None = None
        entry = interpreted_op(ops.OP_BY_SPELLING.get(spelling or ""))
        receiver: list[Any] = []
        if entry is None:
            if isinstance(func, ast.Attribute) and (spelling is None or spelling.split(".")[0] not in ops.ROOTS):
                entry = interpreted_op(ops.METHODS.get(func.attr))
                method = func.attr
            if entry is None:
                raise Unsupported(f"the function {spelling or ast.unparse(func)}")
            receiver = [self.evaluate(func.value, env)]  # Python evaluates the receiver first
            spelling = None
        args = receiver + [self.evaluate(a, env) for a in node.args]
        kwargs: dict[str, Any] = {}
        for keyword in node.keywords:
            if keyword.arg not in entry.keywords:
                raise Unsupported(f"the keyword {keyword.arg}= of {entry.name}")
            kwargs[keyword.arg] = self.evaluate(keyword.value, env)
        return self.backend.call(entry, spelling, method, args, kwargs)


# ------------------------------------------------------------------------------------------------
# Entry points
# ------------------------------------------------------------------------------------------------


def evaluate(node: ast.AST, env: dict[str, Any], backend: Backend = TORCH) -> Any:
    """Interpret one expression over `env` (names -> values, or helpers bound by an earlier run)."""
    return Interpreter(backend).evaluate(node, env)


def run(program: Program, x: Any, backend: Backend = TORCH) -> Any:
    """The value of `program` at `x` with `backend` (a fresh step budget per run)."""
    return Interpreter(backend).run(program, x)


class Evaluable(Program):
    """A program the torch back-end runs as a function: `Evaluable.from_module(tree)(x)`."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = run(self, x, TORCH)
        if not isinstance(out, torch.Tensor):
            raise EvaluationError(f"the function returns a {type(out).__name__}, not a tensor")
        return out


def sympy_of(program: Program, symbol: sp.Symbol | None = None) -> sp.Expr:
    """The program as a sympy expression in `symbol` (default: the real symbol `x`); raises
    `Unsupported` (or `EvaluationError`) when it has no bounded formula."""
    backend = SympyBackend(symbol)
    value = run(program, backend.symbol, backend)
    if isinstance(value, str) or not isinstance(value, (sp.Expr, int, float)):
        raise Unsupported(f"the function returns a {type(value).__name__}")
    return sp.sympify(value)
