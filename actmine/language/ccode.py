"""A third back-end of the interpreter: a candidate program as one fused C loop with its derivative.

The lab spends most of an evaluation in the activation's elementwise forward and backward passes
(`benchmarks/bench_profile.py`: 83% of the profiled time for the median search candidate): eager
PyTorch runs one kernel per operation and autograd another one or two per operation backwards,
each a full pass over memory. A candidate that the interpreter can run is a pure elementwise
function of x, so it can instead be computed in one pass that also yields f'(x) (forward-mode
differentiation: every value carries its derivative), and the backward pass is then one multiply.

`c_kernel(program)` walks the program with `CBackend`, whose values are either Python numbers
(computed with the torch back-end's bounded scalar arithmetic, as always) or `Dual`s: the names of
a C value and of its derivative in the loop body. Each supported op is one small rule that
follows torch's own definition, including its conventions where the function has a kink (relu'(0)
= 0, clamp passes the gradient on the closed interval, softplus's threshold, …): the arithmetic
and the calls of several inputs below, the one-input ops' templates in `ccode_unary`. Anything
else — an op without a rule, a keyword the rule does not model, a bool result — raises
`Unsupported`, and the caller keeps the eager path. The C text is made only of these modules'
templates, names it numbered itself and number literals it formatted (`_literal`): nothing of the
program's own text reaches the compiler.
"""

from __future__ import annotations

import ast
import hashlib
import math
from dataclasses import dataclass
from typing import Any, Callable

from . import ops
from .ccode_unary import _UNARY_RULES, Unary, _clamp_rule, _literal
from .interpreter import _ARITHMETIC, _COMPARISONS, TORCH, EvaluationError, Interpreter, Unsupported
from .op_entries import Op
from .op_formulas import _kw
from .program import Program

__all__ = [
    "Dual",
    "Mask",
    "CBackend",
    "Kernel",
    "c_kernel",
    "kernel_digest",
    "FORWARD_BACKWARD",
    "SUPPORTED_OPS",
    "MAX_LINES",
]

ZERO = "0.0f"  # the slope of a constant: terms with it are left out
MAX_LINES = 4000  # C statements per loop body (a larger program keeps the eager path)
FORWARD_BACKWARD = "actmine_forward_backward"  # void (const float *x, float *y, float *dy, long n)


@dataclass(frozen=True)
class Dual:
    """A value that depends on the input: C names of its value and of its derivative in x."""

    value: str
    slope: str


@dataclass(frozen=True)
class Mask:
    """A comparison of input-dependent values: the name of a C int (1 or 0)."""

    name: str


class CBackend:
    """Values for `Interpreter`: Python numbers, `Dual`s and `Mask`s; records the C loop body."""

    max_steps = 4000

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.input = Dual("v0", "d0")
        self.operations = 0  # ops applied to input-dependent values
        self._count = 0

    # -- emitting

    def let(self, expression: str, kind: str = "float") -> str:
        """Bind `expression` to a fresh C name and return the name."""
        if len(self.lines) >= MAX_LINES:
            raise Unsupported("a program too large for a fused kernel")
        self._count += 1
        name = f"t{self._count}"
        self.lines.append(f"const {kind} {name} = {expression};")
        return name

    def dual(self, value: str, slope: str) -> Dual:
        return Dual(self.let(value), self.slope(slope))

    def slope(self, expression: str) -> str:
        """Bind a derivative, unless it is the constant zero (a constant's slope stays `ZERO`)."""
        return ZERO if expression == ZERO else self.let(expression)

    def as_dual(self, value: Any) -> Dual:
        if isinstance(value, Dual):
            return value
        if isinstance(value, Mask):
            return Dual(self.let(f"({value.name} ? 1.0f : 0.0f)"), ZERO)
        if isinstance(value, bool):
            return Dual(_literal(float(value)), ZERO)
        if isinstance(value, (int, float)):
            return Dual(_literal(value), ZERO)
        raise Unsupported(f"a {type(value).__name__} where a number or tensor was expected")

    @staticmethod
    def _symbolic(value: Any) -> bool:
        return isinstance(value, (Dual, Mask))

    # -- the Backend protocol

    def number(self, value: int | float) -> Any:
        return TORCH.number(value)

    def string(self, value: str) -> Any:
        return value

    def constant(self, constant: ops.Constant) -> Any:
        return constant.value

    def depends_on_input(self, value: Any) -> bool:
        return self._symbolic(value)

    def binary(self, op: ast.operator, left: Any, right: Any) -> Any:
        if not self._symbolic(left) and not self._symbolic(right):
            return TORCH.binary(op, left, right)
        if isinstance(left, str) or isinstance(right, str):
            raise Unsupported("string arithmetic")
        if isinstance(left, Mask) and isinstance(right, Mask):
            raise Unsupported("arithmetic of two comparisons")  # bool op bool stays bool in torch
        rule = _BINARY.get(type(op))
        if rule is None:
            raise Unsupported(f"the operator {type(op).__name__} in a fused kernel")
        self.operations += 1
        return rule(self, left, right)

    def negate(self, value: Any) -> Any:
        if isinstance(value, Dual):
            self.operations += 1
            return self.dual(f"-{value.value}", ZERO if value.slope == ZERO else f"-{value.slope}")
        if isinstance(value, Mask):
            raise Unsupported("a negated comparison")  # torch refuses `-` on a bool tensor
        return TORCH.negate(value)

    def compare(self, op: ast.cmpop, left: Any, right: Any) -> Any:
        if not self._symbolic(left) and not self._symbolic(right):
            return TORCH.compare(op, left, right)
        symbol = {ast.Gt: ">", ast.Lt: "<", ast.GtE: ">=", ast.LtE: "<="}.get(type(op))
        if symbol is None or type(op) not in _COMPARISONS:
            raise Unsupported("a comparison other than < > <= >=")
        a, b = self.as_dual(left), self.as_dual(right)
        return Mask(self.let(f"({a.value} {symbol} {b.value})", "int"))

    def truth(self, value: Any) -> bool:
        if self._symbolic(value):
            raise EvaluationError("a tensor used as a condition")
        return TORCH.truth(value)

    def call(self, entry: Op, spelling: str | None, method: str | None, args: list, kwargs: dict) -> Any:
        if not any(self._symbolic(v) for v in [*args, *kwargs.values()]):
            return TORCH.call(entry, spelling, method, args, kwargs)
        if spelling is not None and spelling.startswith("math."):
            raise EvaluationError(f"{spelling} of a tensor")
        rule = _CALLS.get(entry.name)
        if rule is None:
            raise Unsupported(f"{entry.name} has no fused rule")
        self.operations += 1
        return rule(self, tuple(args), kwargs)


# ------------------------------------------------------------------------------------------------
# Arithmetic
# ------------------------------------------------------------------------------------------------


def _sum(*terms: tuple[str, str]) -> str:
    """Σ factor·slope over the terms whose slope is not `ZERO` (a product without its zero terms:
    torch's gradient has no term for a constant, so 0·inf must not make it NaN)."""
    kept = [f"{factor} * {slope}" if factor else slope for factor, slope in terms if slope != ZERO]
    return " + ".join(kept) or ZERO


def _add(b: CBackend, left: Any, right: Any, sign: str = "+") -> Dual:
    x, y = b.as_dual(left), b.as_dual(right)
    return b.dual(f"{x.value} {sign} {y.value}", _sum(("", x.slope), ("-1.0f" if sign == "-" else "", y.slope)))


def _mul(b: CBackend, left: Any, right: Any) -> Dual:
    x, y = b.as_dual(left), b.as_dual(right)
    return b.dual(f"{x.value} * {y.value}", _sum((y.value, x.slope), (x.value, y.slope)))


def _div(b: CBackend, left: Any, right: Any) -> Dual:
    x, y = b.as_dual(left), b.as_dual(right)
    value = b.let(f"{x.value} / {y.value}")
    numerator = _sum(("", x.slope), (f"-{value}", y.slope))
    return Dual(value, ZERO if numerator == ZERO else b.let(f"({numerator}) / {y.value}"))


def _pow(b: CBackend, base: Any, exponent: Any) -> Dual:
    if not b._symbolic(exponent):
        c = float(exponent)
        x = b.as_dual(base)
        if c == 0.0:
            return Dual("1.0f", ZERO)
        if c == 1.0:
            return x
        if c == 2.0:
            return b.dual(f"{x.value} * {x.value}", _sum((f"2.0f * {x.value}", x.slope)))
        if c == 3.0:
            return b.dual(f"{x.value} * {x.value} * {x.value}", _sum((f"3.0f * {x.value} * {x.value}", x.slope)))
        return b.dual(
            f"powf({x.value}, {_literal(c)})", _sum((f"{_literal(c)} * powf({x.value}, {_literal(c - 1)})", x.slope))
        )
    y = b.as_dual(exponent)
    if not b._symbolic(base):
        c = float(base)
        if not c > 0.0:
            raise Unsupported("a power of a non-positive number to a tensor exponent")
        value = b.let(f"powf({_literal(c)}, {y.value})")
        return Dual(value, b.let(f"{value} * {_literal(math.log(c))} * {y.slope}"))
    x = b.as_dual(base)
    value = b.let(f"powf({x.value}, {y.value})")
    return Dual(
        value,
        b.slope(
            _sum((f"{y.value} * powf({x.value}, {y.value} - 1.0f)", x.slope), (f"{value} * logf({x.value})", y.slope))
        ),
    )


_BINARY: dict[type, Callable[[CBackend, Any, Any], Any]] = {
    ast.Add: _add,
    ast.Sub: lambda b, x, y: _add(b, x, y, "-"),
    ast.Mult: _mul,
    ast.Div: _div,
    ast.Pow: _pow,
}
assert set(_BINARY) <= set(_ARITHMETIC)


# ------------------------------------------------------------------------------------------------
# Calls: one-input rules (`ccode_unary`: f(a) and f'(a) as C text over `a` and `y`) and the others
# ------------------------------------------------------------------------------------------------


def _unary_rule(rule: Unary, keywords: tuple[str, ...] = ()) -> Callable[[CBackend, tuple, dict], Dual]:
    """A call rule from (value text, slope text given the value's name) of one input."""

    def call(b: CBackend, args: tuple, kwargs: dict) -> Dual:
        if not args:
            if "input" not in kwargs:
                raise Unsupported("no input")
            args = (kwargs["input"],)
        params = {}
        for position, name in enumerate(keywords, start=1):
            value = _kw(args, kwargs, position, name, None)
            if b._symbolic(value):
                raise Unsupported(f"a tensor as {name}")
            params[name] = value
        if len(args) > len(keywords) + 1:
            raise Unsupported("more arguments than the rule models")
        x = b.as_dual(args[0])
        value_text, slope_of = rule(b, x.value, params)
        value = b.let(value_text)
        if x.slope == ZERO:
            return Dual(value, ZERO)
        return Dual(value, b.let(f"({slope_of(value)}) * {x.slope}"))

    return call


def _clamp(
    b: CBackend,
    args: tuple,
    kwargs: dict,
    low_name: str | None = "min",
    high_name: str | None = "max",
) -> Dual:
    if not args:
        args = (kwargs.get("input"),)
    names = [n for n in (low_name, high_name) if n]
    bounds = {n: _kw(args, kwargs, i, n, None) for i, n in enumerate(names, start=1)}
    if any(b._symbolic(v) or isinstance(v, (str, bool)) for v in bounds.values()):
        raise Unsupported("clamp with tensor or non-number bounds")
    low, high = bounds.get("min"), bounds.get("max")
    if low is None and high is None:
        raise Unsupported("clamp without bounds")
    value, slope = _clamp_rule(low, high, inclusive=True)  # clamp_backward: closed interval
    x = b.as_dual(args[0])
    return Dual(b.let(value.format(a=x.value)), b.let(f"(({slope.format(a=x.value)}) * {x.slope})"))


def _binary_call(
    rule: Callable[[CBackend, Any, Any], Dual],
    second: str = "other",
) -> Callable[[CBackend, tuple, dict], Dual]:
    def call(b: CBackend, args: tuple, kwargs: dict) -> Dual:
        extra = set(kwargs) - {"input", second}
        if extra:
            raise Unsupported(f"the keyword {sorted(extra)[0]}= in a fused kernel")
        first = args[0] if args else kwargs.get("input")
        other = _kw(args, kwargs, 1, second, None)
        if first is None or other is None:
            raise Unsupported("a missing argument")
        return rule(b, first, other)

    return call


def _masked(chosen: str, other: str) -> str:
    """The slope of a selected branch, plus 0 × the other branch's: torch's backward sends a zero
    gradient into the branch not taken, and 0 × inf there is NaN (a where() around an overflowing
    exp has a NaN gradient in eager PyTorch; the fused kernel must fail the same way)."""
    return chosen if other == ZERO else f"({chosen} + 0.0f * {other})"


def _extreme(larger: bool) -> Callable[[CBackend, Any, Any], Dual]:
    """torch.maximum / minimum: NaN propagates; at a tie each side gets half the gradient."""

    def rule(b: CBackend, left: Any, right: Any) -> Dual:
        x, y = b.as_dual(left), b.as_dual(right)
        first, second = (">", "<") if larger else ("<", ">")
        return b.dual(
            f"({x.value} {first} {y.value}) ? {x.value} : (({x.value} {second} {y.value}) ? {y.value} "
            f": {x.value} + 0.0f * {y.value})",
            f"({x.value} {first} {y.value}) ? {_masked(x.slope, y.slope)} : (({x.value} {second} {y.value}) "
            f"? {_masked(y.slope, x.slope)} : 0.5f * ({_sum(('', x.slope), ('', y.slope))}))",
        )

    return rule


def _where(b: CBackend, args: tuple, kwargs: dict) -> Dual:
    if len(args) != 3 or kwargs:
        raise Unsupported("torch.where(condition, input, other) is the form a fused kernel models")
    condition, left, right = args
    if not isinstance(condition, Mask):
        raise Unsupported("a condition that is not a comparison of tensors")
    x, y = b.as_dual(left), b.as_dual(right)
    return b.dual(
        f"{condition.name} ? {x.value} : {y.value}",
        f"{condition.name} ? {_masked(x.slope, y.slope)} : {_masked(y.slope, x.slope)}",
    )


def _comparison(symbol: str) -> Callable[[CBackend, tuple, dict], Mask]:
    node = {">": ast.Gt(), "<": ast.Lt(), ">=": ast.GtE(), "<=": ast.LtE()}[symbol]

    def call(b: CBackend, args: tuple, kwargs: dict) -> Mask:
        if set(kwargs) - {"input", "other"}:
            raise Unsupported("a comparison keyword")
        first, other = (args[0] if args else kwargs.get("input")), _kw(args, kwargs, 1, "other", None)
        if first is None or other is None:
            raise Unsupported("a missing argument")
        return b.compare(node, first, other)

    return call


def _like(fill: float | None) -> Callable[[CBackend, tuple, dict], Dual]:
    def call(b: CBackend, args: tuple, kwargs: dict) -> Dual:
        if fill is None:  # full_like(input, fill_value)
            value = _kw(args, kwargs, 1, "fill_value", None)
            if value is None or b._symbolic(value) or isinstance(value, (str, bool)):
                raise Unsupported("full_like without a number")
        else:
            value = fill
        if set(kwargs) - {"input", "fill_value"}:
            raise Unsupported("a keyword of a *_like constructor")
        return Dual(_literal(float(value)), ZERO)

    return call


def _add_call(sign: str) -> Callable[[CBackend, tuple, dict], Dual]:
    def call(b: CBackend, args: tuple, kwargs: dict) -> Dual:
        if set(kwargs) - {"input", "other", "alpha"}:
            raise Unsupported("a keyword of add/sub")
        first, other = (args[0] if args else kwargs.get("input")), _kw(args, kwargs, 1, "other", None)
        alpha = _kw(args, kwargs, 2, "alpha", 1.0)
        if first is None or other is None or b._symbolic(alpha) or isinstance(alpha, (str, bool)):
            raise Unsupported("add/sub with these arguments")
        if float(alpha) != 1.0:
            other = _mul(b, other, float(alpha)) if b._symbolic(other) else TORCH.binary(ast.Mult(), other, alpha)
        return _add(b, first, other, sign)

    return call


def _div_call(b: CBackend, args: tuple, kwargs: dict) -> Dual:
    if kwargs.get("rounding_mode") is not None:
        raise Unsupported("div with a rounding mode")
    return _binary_call(_div)(b, args, {k: v for k, v in kwargs.items() if k != "rounding_mode"})


_CALLS: dict[str, Callable[[CBackend, tuple, dict], Any]] = {
    **{name: _unary_rule(rule, keywords) for name, (rule, keywords) in _UNARY_RULES.items()},
    "add": _add_call("+"),
    "sub": _add_call("-"),
    "mul": _binary_call(_mul),
    "div": _div_call,
    "pow": _binary_call(_pow, "exponent"),
    "maximum": _binary_call(_extreme(True)),
    "minimum": _binary_call(_extreme(False)),
    "clamp": _clamp,
    "clamp_min": lambda b, a, k: _clamp(b, a, k, "min", None),
    "clamp_max": lambda b, a, k: _clamp(b, a, k, None, "max"),
    "where": _where,
    "gt": _comparison(">"),
    "lt": _comparison("<"),
    "ge": _comparison(">="),
    "le": _comparison("<="),
    "zeros_like": _like(0.0),
    "ones_like": _like(1.0),
    "full_like": _like(None),
}

#: The ops a fused kernel models (every other op keeps the eager path).
SUPPORTED_OPS = frozenset(_CALLS)


# ------------------------------------------------------------------------------------------------
# The kernel
# ------------------------------------------------------------------------------------------------

_TEMPLATE = """\
/* generated by actmine.language.ccode: one candidate activation and its derivative */
#include <math.h>

void {forward_backward}(const float *restrict xs, float *restrict ys, float *restrict dys, long n) {{
#pragma omp simd
    for (long i = 0; i < n; ++i) {{
        const float v0 = xs[i];
        const float d0 = 1.0f;
{body}
        ys[i] = {value};
        dys[i] = {slope};
    }}
}}
"""


@dataclass(frozen=True)
class Kernel:
    """A program's C source and the number of operations it fuses."""

    source: str
    operations: int


def c_kernel(program: Program) -> Kernel:
    """`program` as C: one loop (`FORWARD_BACKWARD`) over float32 arrays, f and f' in one pass (a
    second, value-only loop would double the compile time for the two scoring passes of 102 calls).

    Raises `Unsupported` when the program uses what no rule models (the caller keeps the eager
    path) and `EvaluationError` where the program itself fails on numbers.
    """
    backend = CBackend()
    out = Interpreter(backend).run(program, backend.input)
    if not isinstance(out, Dual):
        raise Unsupported(f"the function returns a {type(out).__name__}, not a tensor of the input")
    body = "\n".join(" " * 8 + line for line in backend.lines)
    return Kernel(
        _TEMPLATE.format(forward_backward=FORWARD_BACKWARD, body=body, value=out.value, slope=out.slope),
        backend.operations,
    )


def kernel_digest(source: str, flags: tuple[str, ...]) -> str:
    """A name for a compiled kernel: the hash of its C text and the compiler flags."""
    return hashlib.sha256("\0".join((source, *flags)).encode()).hexdigest()[:24]
