"""The one table of the candidate language: every operation a candidate program may name.

A candidate sees `torch`, `F` (torch.nn.functional) and `math`. What it may reach through them,
what each name computes in torch and in sympy, what it costs and which keywords it takes is
written here once, as one `Op` per operation in `OPS` (and one `Constant` per named number in
`CONSTANTS`). Everything else derives from this table:

- the policy's allow-lists (`root_trees`, `allowed_names`): the attribute chains `torch.…`, `F.…`
  and `math.…` a candidate may write are exactly the `spellings` below;
- the interpreters' function tables (`FUNCTIONS`, `METHODS`, `keywords_of`) and the sympy
  back-end (`Op.sympy`);
- the probes' cost weights (`TRANSCENDENTAL_ATEN`, `FREE_ATEN`, `aten_weight`): the aten kernels
  an op dispatches (`Op.aten`) are charged its `weight` per element;
- the mutators' operator set (`unary_elementwise`).

**Adding one torch function to the language is one edit: one new `Op(...)` line in `OPS`.** The
tests (`tests/test_language_ops.py`) then check that its spellings resolve, that its sympy formula
agrees with torch, and that the aten kernels it claims are really dispatched.

Conventions:

- `spellings` are dotted source spellings. An `F.<name>` spelling brings its twin
  `torch.nn.functional.<name>` with it (the policy treats them as one). `math.<name>` spellings
  are listed on the op that computes the same real function (`math.sin` on `sin`); the
  interpreters call the callable each spelling names (`FUNCTIONS`), never a substitute, so
  `math.sin` of a tensor fails the way Python would. Math names that a later Python adds
  (`sumprod`, `fma`) are kept only where the running Python has them.
- `weight`: the cost per output element that `actmine.candidate.probes.measure_cost` charges for
  one forward call: 0 for views and allocations, 1 per arithmetic kernel, `TRANSCENDENTAL_WEIGHT`
  (8) per kernel that evaluates a transcendental function (exp, log, trig, erf, gamma, bessel,
  pow, sqrt, reciprocal, ...). Exact (and tested) for one-tensor elementwise ops; for a composite
  op (`F.softsign` = abs, add, div) it is the sum over its kernels and `aten` is empty, since the
  kernels belong to the ops that own them. Copies and dtype conversions weigh 1 per output element
  (`clone`, `_to_copy`, `copy_`, `lift_fresh_copy`): they move every element, so they are not free.
- `aten`: the aten kernels this op owns -- its forward kernel and any fused backward kernel that
  evaluates the same function again (`gelu_backward`) -- named as the probes' counter sees them
  (the overload packet's name with trailing `_` stripped: `copy_` is `copy`). Each is charged this
  op's weight. An aten name may be owned by several ops only when they agree on the weight
  (checked at import). Backward kernels that only do arithmetic on saved values (`tanh_backward`,
  `sigmoid_backward`) are left to the default weight 1.
- `kernels`: how many counted (non-free) kernels one forward call dispatches: the number of new
  tensors it makes, which bounds the bytes autograd can save for it (the mutators' cost bound).
- `sympy(args, kwargs)`: the op's formula, built from sympy expressions or numbers; None when the
  op has no closed form the report can use (reductions, structure, dtypes). A formula may raise
  `NoFormula` for a form it does not model (an unknown keyword value, a reduction over a dim).
- `kind`: "elementwise" (float tensor → float tensor, value by value), "comparison" (→ bool),
  "reduction" (reads other elements: sums, norms, softmax), "structure" (moves elements:
  reshape, cat, flip, subscripts), "constructor" (new tensors), "copy" (clone, conversions),
  "linalg", "spectral", "dtype", "utility" (type queries, `finfo`), "scalar" (math-only functions
  of Python numbers), "internal" (kernels autograd and indexing dispatch, no spelling).
- `arity`: the number of positional tensor/number arguments of the usual form, None when it varies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import sympy as sp
import torch
import torch.nn.functional as F

__all__ = [
    "Op", "Constant", "NoFormula", "OPS", "CONSTANTS", "TRANSCENDENTAL_WEIGHT", "ROOTS",
    "OP_BY_NAME", "OP_BY_SPELLING", "CONSTANT_BY_SPELLING", "FUNCTIONS", "METHODS", "KEYWORDS",
    "TRANSCENDENTAL_ATEN", "FREE_ATEN", "ATEN_WEIGHTS", "aten_weight", "resolve", "root_trees",
    "allowed_names", "namespace_tree", "keywords_of", "unary_elementwise", "op_of", "method_op",
]

#: The cost of one transcendental kernel per element, relative to one add or multiply: a
#: polynomial or rational approximation in libm takes several multiply-adds.
TRANSCENDENTAL_WEIGHT = 8

#: The pre-imported names a candidate's chains start from, and the modules they stand for.
ROOTS: dict[str, Any] = {"torch": torch, "F": F, "math": math}

#: Keywords every tensor function accepts (`torch.tanh(input=x)`).
_COMMON_KEYWORDS = frozenset({"input"})


class NoFormula(ValueError):
    """The op's sympy formula does not model this form of the call (a keyword value, a dim)."""


SympyRule = Callable[[tuple, Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Op:
    """One operation of the candidate language (see the module docstring for each field)."""

    name: str
    spellings: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    torch: Any = None
    sympy: SympyRule | None = None
    weight: int = 1
    aten: tuple[str, ...] = ()
    keywords: frozenset[str] = frozenset()
    kind: str = "elementwise"
    arity: int | None = 1
    kernels: int = 1

    @property
    def method(self) -> str | None:
        """The tensor method that computes this op (`x.tanh()`), or None."""
        return self.methods[0] if self.methods else None

    @property
    def transcendental(self) -> bool:
        return self.weight >= TRANSCENDENTAL_WEIGHT


@dataclass(frozen=True)
class Constant:
    """A named number: its spellings, its float value and its exact sympy value."""

    name: str
    spellings: tuple[str, ...]
    value: float
    sympy: Any


# ------------------------------------------------------------------------------------------------
# Resolving spellings
# ------------------------------------------------------------------------------------------------

_MISSING = object()


def resolve(spelling: str) -> Any:
    """The object a dotted spelling names (`"torch.special.expit"` → the function), by attribute
    lookup from `ROOTS`; raises LookupError when it names nothing."""
    root, *parts = spelling.split(".")
    if root not in ROOTS:
        raise LookupError(f"`{spelling}` does not start with one of {', '.join(ROOTS)}")
    value = ROOTS[root]
    for part in parts:
        value = getattr(value, part, _MISSING)
        if value is _MISSING:
            raise LookupError(f"`{spelling}` names nothing in this torch/Python")
    return value


def _exists(spelling: str) -> bool:
    try:
        resolve(spelling)
    except LookupError:
        return False
    return True


# ------------------------------------------------------------------------------------------------
# Building entries
# ------------------------------------------------------------------------------------------------

_AUTO = object()
#: Math names that later Pythons add: kept only where this Python has them.
_OPTIONAL_MATH = frozenset({"math.sumprod", "math.fma"})
#: Kinds whose ops get their `torch.<name>` tensor method by default.
_METHOD_KINDS = frozenset({"elementwise", "comparison", "reduction", "structure", "copy", "linalg"})


def _expand(spellings: str) -> tuple[str, ...]:
    """"torch.tanh F.tanh" -> ("torch.tanh", "F.tanh", "torch.nn.functional.tanh")."""
    out: list[str] = []
    for spelling in spellings.split():
        if spelling in _OPTIONAL_MATH and not _exists(spelling):
            continue
        out.append(spelling)
        if spelling.startswith("F."):
            out.append("torch.nn.functional." + spelling[2:])
    return tuple(dict.fromkeys(out))


def op(name: str, spellings: str = "", sympy: SympyRule | None = None, *, weight: int = 1,
       aten: Iterable[str] | object = _AUTO, keywords: str = "", kind: str = "elementwise",
       arity: int | None = 1, methods: Iterable[str] | object = _AUTO, kernels: int = 1,
       common_keywords: bool = True) -> Op:
    """An `Op` with the table's defaults: `aten` is `(name,)` for a one-kernel op (empty for a
    composite, kernels != 1, or for kinds without kernels); `methods` are the `torch.<name>`
    spellings that are also tensor methods (for the kinds in `_METHOD_KINDS`); `torch` is what the
    first spelling names; `keywords` gain `input` for tensor functions."""
    expanded = _expand(spellings)
    if aten is _AUTO:
        aten = (name,) if kernels == 1 and kind in ("elementwise", "comparison", "reduction") else ()
    if methods is _AUTO:
        methods = [s.split(".")[1] for s in expanded
                   if s.count(".") == 1 and s.startswith("torch.") and kind in _METHOD_KINDS
                   and callable(getattr(torch.Tensor, s.split(".")[1], None))]
    torch_object = resolve(expanded[0]) if expanded else None
    words = frozenset(keywords.split())
    if common_keywords and kind not in ("dtype", "utility", "scalar", "internal"):
        words |= _COMMON_KEYWORDS
    return Op(name=name, spellings=expanded, methods=tuple(dict.fromkeys(methods)), torch=torch_object,
              sympy=sympy, weight=weight, aten=tuple(aten), keywords=words, kind=kind, arity=arity,
              kernels=kernels)


T = TRANSCENDENTAL_WEIGHT   # short, for the table below


# ------------------------------------------------------------------------------------------------
# Sympy formulas. Each takes (args, kwargs); torch semantics, not sympy's, decide each one
# (torch.sinc is the normalised sinc, torch.frac and torch.fmod truncate towards zero).
# ------------------------------------------------------------------------------------------------

def _u(function: Callable[[Any], Any]) -> SympyRule:
    """A one-argument formula that takes no keywords except `input`."""
    def rule(args: tuple, kwargs: Mapping[str, Any]) -> Any:
        return function(*_operands(args, kwargs, 1))
    return rule


def _b(function: Callable[[Any, Any], Any], second: str = "other") -> SympyRule:
    """A two-argument formula; the second may come as keyword `second`."""
    def rule(args: tuple, kwargs: Mapping[str, Any]) -> Any:
        return function(*_operands(args, kwargs, 2, second))
    return rule


def _operands(args: tuple, kwargs: Mapping[str, Any], count: int, second: str = "other") -> list:
    values = list(args)
    if not values and "input" in kwargs:
        values.append(kwargs["input"])
    if len(values) == 1 and count == 2 and second in kwargs:
        values.append(kwargs[second])
    if len(values) != count:
        raise NoFormula(f"expected {count} argument(s), got {len(values)}")
    return values


def _kw(args: tuple, kwargs: Mapping[str, Any], position: int, name: str, default: Any) -> Any:
    """The parameter at `position` (after the input) or keyword `name`, else `default`."""
    if len(args) > position:
        return args[position]
    return kwargs.get(name, default)


def _input(args: tuple, kwargs: Mapping[str, Any]) -> Any:
    if args:
        return args[0]
    if "input" in kwargs:
        return kwargs["input"]
    raise NoFormula("no input")


def _trunc(a: Any) -> Any:
    return sp.sign(a) * sp.floor(sp.Abs(a))


def _sigmoid(a: Any) -> Any:
    return 1 / (1 + sp.exp(-a))


def _softplus(a: Any, beta: Any = 1) -> Any:
    return sp.log(1 + sp.exp(beta * a)) / beta


def _sp_gelu(args: tuple, kwargs: Mapping[str, Any]) -> Any:
    a = _input(args, kwargs)
    approximate = kwargs.get("approximate", "none")
    if approximate == "tanh":
        return a / 2 * (1 + sp.tanh(sp.sqrt(2 / sp.pi) * (a + sp.Float(0.044715) * a ** 3)))
    if approximate != "none":
        raise NoFormula(f"gelu approximate={approximate!r}")
    return a / 2 * (1 + sp.erf(a / sp.sqrt(2)))


def _sp_softplus(args: tuple, kwargs: Mapping[str, Any]) -> Any:
    # torch returns x itself where beta·x > threshold (20): equal to the formula within float error
    return _softplus(_input(args, kwargs), _kw(args, kwargs, 1, "beta", 1))


def _elu(a: Any, alpha: Any = 1) -> Any:
    return sp.Piecewise((a, a > 0), (alpha * (sp.exp(a) - 1), True))


_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772, 1.0507009873554805


def _sp_celu(args: tuple, kwargs: Mapping[str, Any]) -> Any:
    a, alpha = _input(args, kwargs), _kw(args, kwargs, 1, "alpha", 1)
    return sp.Piecewise((a, a > 0), (alpha * (sp.exp(a / alpha) - 1), True))


def _sp_leaky(args: tuple, kwargs: Mapping[str, Any]) -> Any:
    a, slope = _input(args, kwargs), _kw(args, kwargs, 1, "negative_slope", sp.Float(0.01))
    return sp.Piecewise((a, a >= 0), (slope * a, True))


def _clamp(a: Any, low: Any, high: Any) -> Any:
    if low is not None:
        a = sp.Max(a, low)
    if high is not None:
        a = sp.Min(a, high)
    return a


def _sp_clamp(args: tuple, kwargs: Mapping[str, Any]) -> Any:
    return _clamp(_input(args, kwargs), _kw(args, kwargs, 1, "min", None), _kw(args, kwargs, 2, "max", None))


def _sp_hardtanh(args: tuple, kwargs: Mapping[str, Any]) -> Any:
    return _clamp(_input(args, kwargs), _kw(args, kwargs, 1, "min_val", -1), _kw(args, kwargs, 2, "max_val", 1))


def _sp_shrink(hard: bool) -> SympyRule:
    def rule(args: tuple, kwargs: Mapping[str, Any]) -> Any:
        a, lambd = _input(args, kwargs), _kw(args, kwargs, 1, "lambd", sp.Rational(1, 2))
        if hard:
            return sp.Piecewise((a, sp.Abs(a) > lambd), (0, True))
        return sp.Piecewise((a - lambd, a > lambd), (a + lambd, a < -lambd), (0, True))
    return rule


def _sp_threshold(args: tuple, kwargs: Mapping[str, Any]) -> Any:
    a = _input(args, kwargs)
    threshold, value = _kw(args, kwargs, 1, "threshold", None), _kw(args, kwargs, 2, "value", None)
    if threshold is None or value is None:
        raise NoFormula("F.threshold needs threshold and value")
    return sp.Piecewise((a, a > threshold), (value, True))


def _sp_pow(args: tuple, kwargs: Mapping[str, Any]) -> Any:
    a, b = _operands(args, kwargs, 2, "exponent")
    return a ** b


def _sp_log(args: tuple, kwargs: Mapping[str, Any]) -> Any:
    # math.log(x, base) takes a base; torch.log does not
    if len(args) == 2:
        return sp.log(args[0]) / sp.log(args[1])
    return sp.log(*_operands(args, kwargs, 1))


def _sp_add(sign: int) -> SympyRule:
    def rule(args: tuple, kwargs: Mapping[str, Any]) -> Any:
        a, b = _operands(args, kwargs, 2)
        return a + sign * kwargs.get("alpha", 1) * b
    return rule


def _sp_div(args: tuple, kwargs: Mapping[str, Any]) -> Any:
    a, b = _operands(args, kwargs, 2)
    mode = kwargs.get("rounding_mode")
    if mode is None:
        return a / b
    if mode == "floor":
        return sp.floor(a / b)
    if mode == "trunc":
        return _trunc(a / b)
    raise NoFormula(f"rounding_mode={mode!r}")


def _sp_lerp(args: tuple, kwargs: Mapping[str, Any]) -> Any:
    a, end, weight = _input(args, kwargs), _kw(args, kwargs, 1, "end", None), _kw(args, kwargs, 2, "weight", None)
    if end is None or weight is None:
        raise NoFormula("lerp needs end and weight")
    return a + weight * (end - a)


def _sp_heaviside(args: tuple, kwargs: Mapping[str, Any]) -> Any:
    a, values = _operands(args, kwargs, 2, "values")
    return sp.Piecewise((0, a < 0), (values, sp.Eq(a, 0)), (1, True))


def _sp_copysign(args: tuple, kwargs: Mapping[str, Any]) -> Any:
    a, b = _operands(args, kwargs, 2)
    return sp.Piecewise((sp.Abs(a), b >= 0), (-sp.Abs(a), True))


def _sp_where(args: tuple, kwargs: Mapping[str, Any]) -> Any:
    if len(args) != 3:
        raise NoFormula("torch.where with one argument returns indices")
    condition, a, b = args
    return sp.Piecewise((a, condition), (b, True))


def _sp_clamp_bound(which: str) -> SympyRule:
    def rule(args: tuple, kwargs: Mapping[str, Any]) -> Any:
        a, bound = _operands(args, kwargs, 2, which)
        return sp.Max(a, bound) if which == "min" else sp.Min(a, bound)
    return rule


def _sp_nan_to_num(args: tuple, kwargs: Mapping[str, Any]) -> Any:
    return _input(args, kwargs)   # the formula is over the reals: nothing to replace


def _sp_xlogy(args: tuple, kwargs: Mapping[str, Any]) -> Any:
    a, b = _operands(args, kwargs, 2)
    return sp.Piecewise((0, sp.Eq(a, 0)), (a * sp.log(b), True))


def _sp_xlog1py(args: tuple, kwargs: Mapping[str, Any]) -> Any:
    a, b = _operands(args, kwargs, 2)
    return sp.Piecewise((0, sp.Eq(a, 0)), (a * sp.log(1 + b), True))


def _sp_polygamma(args: tuple, kwargs: Mapping[str, Any]) -> Any:
    n, a = _operands(args, kwargs, 2)
    return sp.polygamma(n, a)


def _sp_maxmin(function: Callable[..., Any]) -> SympyRule:
    """torch.max(a, b) / torch.min(a, b), the elementwise form only."""
    def rule(args: tuple, kwargs: Mapping[str, Any]) -> Any:
        if "other" in kwargs or len(args) == 2 and not _is_number(args[1]):
            return function(*_operands(args, kwargs, 2))
        raise NoFormula("torch.max/min over a dim is a reduction")
    return rule


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) or bool(getattr(value, "is_number", False))


def _sp_addc(combine: Callable[[Any, Any], Any]) -> SympyRule:
    def rule(args: tuple, kwargs: Mapping[str, Any]) -> Any:
        if len(args) != 3:
            raise NoFormula("addcmul/addcdiv need three arguments")
        return args[0] + kwargs.get("value", 1) * combine(args[1], args[2])
    return rule


def _sp_relational(function: Callable[[Any, Any], Any]) -> SympyRule:
    return _b(function)


def _sp_logical(function: Callable[..., Any], count: int = 2) -> SympyRule:
    def rule(args: tuple, kwargs: Mapping[str, Any]) -> Any:
        return function(*_operands(args, kwargs, count))
    return rule


def _sp_logit(args: tuple, kwargs: Mapping[str, Any]) -> Any:
    a = _input(args, kwargs)
    if _kw(args, kwargs, 1, "eps", None) is not None:
        raise NoFormula("logit with eps")
    return sp.log(a / (1 - a))


def _sp_cbrt(a: Any) -> Any:
    return sp.sign(a) * sp.Abs(a) ** sp.Rational(1, 3)


def _sp_hypot(args: tuple, kwargs: Mapping[str, Any]) -> Any:
    values = list(args) if len(args) != 1 else _operands(args, kwargs, 2)
    return sp.sqrt(sum(v ** 2 for v in values))


def _sp_gammainc(upper: bool) -> SympyRule:
    def rule(args: tuple, kwargs: Mapping[str, Any]) -> Any:
        a, x = _operands(args, kwargs, 2)
        return (sp.uppergamma if upper else sp.lowergamma)(a, x) / sp.gamma(a)
    return rule


# ------------------------------------------------------------------------------------------------
# The table
# ------------------------------------------------------------------------------------------------

OPS: tuple[Op, ...] = (
    # -- elementwise, one tensor: arithmetic (weight 1) --
    op("abs", "torch.abs torch.absolute math.fabs", _u(sp.Abs)),
    op("neg", "torch.neg torch.negative", _u(lambda a: -a)),
    op("relu", "torch.relu F.relu", _u(lambda a: sp.Max(0, a))),
    op("relu6", "F.relu6", _u(lambda a: sp.Min(sp.Max(0, a), 6)), aten=("hardtanh", "hardtanh_backward")),
    op("square", "torch.square", _u(lambda a: a ** 2), weight=T, aten=()),   # aten pow: owned by `pow`
    op("sign", "torch.sign", _u(sp.sign)),
    op("sgn", "torch.sgn", _u(sp.sign)),
    op("floor", "torch.floor math.floor", _u(sp.floor)),
    op("ceil", "torch.ceil math.ceil", _u(sp.ceiling)),
    op("round", "torch.round torch.special.round", None, keywords="decimals"),   # half to even
    op("trunc", "torch.trunc torch.fix math.trunc", _u(_trunc)),
    op("frac", "torch.frac", _u(lambda a: a - _trunc(a))),
    op("deg2rad", "torch.deg2rad math.radians", _u(lambda a: a * sp.pi / 180)),
    op("rad2deg", "torch.rad2deg math.degrees", _u(lambda a: a * 180 / sp.pi)),
    op("nan_to_num", "torch.nan_to_num", _sp_nan_to_num, keywords="nan posinf neginf"),
    op("hardtanh", "F.hardtanh", _sp_hardtanh, keywords="min_val max_val", aten=("hardtanh", "hardtanh_backward")),
    op("hardswish", "F.hardswish", _u(lambda a: a * sp.Min(sp.Max(a + 3, 0), 6) / 6),
       aten=("hardswish", "hardswish_backward")),
    op("hardsigmoid", "F.hardsigmoid", _u(lambda a: sp.Min(sp.Max(a + 3, 0), 6) / 6),
       aten=("hardsigmoid", "hardsigmoid_backward")),
    op("hardshrink", "F.hardshrink", _sp_shrink(True), keywords="lambd", aten=("hardshrink", "hardshrink_backward")),
    op("softshrink", "F.softshrink", _sp_shrink(False), keywords="lambd", aten=("softshrink", "softshrink_backward")),
    op("leaky_relu", "F.leaky_relu", _sp_leaky, keywords="negative_slope", aten=("leaky_relu", "leaky_relu_backward")),
    op("threshold", "F.threshold", _sp_threshold, keywords="threshold value", arity=3),
    op("softsign", "F.softsign", _u(lambda a: a / (1 + sp.Abs(a))), weight=3, kernels=3),   # abs, add, div
    # -- elementwise, one tensor: transcendental (weight 8) --
    op("exp", "torch.exp math.exp", _u(sp.exp), weight=T),
    op("exp2", "torch.exp2 torch.special.exp2 math.exp2", _u(lambda a: 2 ** a), weight=T),
    op("expm1", "torch.expm1 torch.special.expm1 math.expm1", _u(lambda a: sp.exp(a) - 1), weight=T),
    op("log", "torch.log math.log", _sp_log, weight=T),
    op("log2", "torch.log2 math.log2", _u(lambda a: sp.log(a, 2)), weight=T),
    op("log10", "torch.log10 math.log10", _u(lambda a: sp.log(a, 10)), weight=T),
    op("log1p", "torch.log1p torch.special.log1p math.log1p", _u(lambda a: sp.log(1 + a)), weight=T),
    op("sqrt", "torch.sqrt math.sqrt", _u(sp.sqrt), weight=T),
    op("rsqrt", "torch.rsqrt", _u(lambda a: 1 / sp.sqrt(a)), weight=T),
    op("reciprocal", "torch.reciprocal", _u(lambda a: 1 / a), weight=T),
    op("sin", "torch.sin math.sin", _u(sp.sin), weight=T),
    op("cos", "torch.cos math.cos", _u(sp.cos), weight=T),
    op("tan", "torch.tan math.tan", _u(sp.tan), weight=T),
    op("asin", "torch.asin torch.arcsin math.asin", _u(sp.asin), weight=T),
    op("acos", "torch.acos torch.arccos math.acos", _u(sp.acos), weight=T),
    op("atan", "torch.atan torch.arctan math.atan", _u(sp.atan), weight=T),
    op("sinh", "torch.sinh math.sinh", _u(sp.sinh), weight=T),
    op("cosh", "torch.cosh math.cosh", _u(sp.cosh), weight=T),
    op("tanh", "torch.tanh F.tanh math.tanh", _u(sp.tanh), weight=T),
    op("asinh", "torch.asinh torch.arcsinh math.asinh", _u(sp.asinh), weight=T),
    op("acosh", "torch.acosh torch.arccosh math.acosh", _u(sp.acosh), weight=T),
    op("atanh", "torch.atanh torch.arctanh math.atanh", _u(sp.atanh), weight=T),
    op("erf", "torch.erf torch.special.erf math.erf", _u(sp.erf), weight=T),
    op("erfc", "torch.erfc torch.special.erfc math.erfc", _u(sp.erfc), weight=T),
    op("erfinv", "torch.erfinv torch.special.erfinv", _u(sp.erfinv), weight=T),
    op("sigmoid", "torch.sigmoid F.sigmoid torch.special.expit", _u(_sigmoid), weight=T),
    op("logit", "torch.logit torch.special.logit", _sp_logit, weight=T, keywords="eps",
       aten=("logit", "logit_backward")),
    op("sinc", "torch.sinc torch.special.sinc", _u(lambda a: sp.sinc(sp.pi * a)), weight=T),  # normalised
    op("lgamma", "torch.lgamma torch.special.gammaln math.lgamma", _u(sp.loggamma), weight=T),
    op("digamma", "torch.digamma torch.special.digamma torch.special.psi", _u(sp.digamma), weight=T),
    op("i0", "torch.i0 torch.special.i0", _u(lambda a: sp.besseli(0, a)), weight=T),
    op("i0e", "torch.special.i0e", _u(lambda a: sp.exp(-sp.Abs(a)) * sp.besseli(0, a)), weight=T,
       aten=("special_i0e",)),
    op("i1", "torch.special.i1", _u(lambda a: sp.besseli(1, a)), weight=T, aten=("special_i1",)),
    op("i1e", "torch.special.i1e", _u(lambda a: sp.exp(-sp.Abs(a)) * sp.besseli(1, a)), weight=T,
       aten=("special_i1e",)),
    op("erfcx", "torch.special.erfcx", _u(lambda a: sp.exp(a ** 2) * sp.erfc(a)), weight=T, aten=("special_erfcx",)),
    op("ndtr", "torch.special.ndtr", _u(lambda a: (1 + sp.erf(a / sp.sqrt(2))) / 2), weight=T + 3, kernels=4),
    op("log_ndtr", "torch.special.log_ndtr", _u(lambda a: sp.log((1 + sp.erf(a / sp.sqrt(2))) / 2)), weight=T,
       aten=("special_log_ndtr",)),
    op("ndtri", "torch.special.ndtri", _u(lambda a: sp.sqrt(2) * sp.erfinv(2 * a - 1)), weight=T,
       aten=("special_ndtri",)),
    op("entr", "torch.special.entr", _u(lambda a: sp.Piecewise((-a * sp.log(a), a > 0), (0, sp.Eq(a, 0)),
                                                               (-sp.oo, True))), weight=T, aten=("special_entr",)),
    op("bessel_j0", "torch.special.bessel_j0", _u(lambda a: sp.besselj(0, a)), weight=T, aten=("special_bessel_j0",)),
    op("bessel_j1", "torch.special.bessel_j1", _u(lambda a: sp.besselj(1, a)), weight=T, aten=("special_bessel_j1",)),
    op("bessel_y0", "torch.special.bessel_y0", _u(lambda a: sp.bessely(0, a)), weight=T, aten=("special_bessel_y0",)),
    op("bessel_y1", "torch.special.bessel_y1", _u(lambda a: sp.bessely(1, a)), weight=T, aten=("special_bessel_y1",)),
    op("modified_bessel_i0", "torch.special.modified_bessel_i0", _u(lambda a: sp.besseli(0, a)), weight=T,
       aten=("special_modified_bessel_i0",)),
    op("modified_bessel_i1", "torch.special.modified_bessel_i1", _u(lambda a: sp.besseli(1, a)), weight=T,
       aten=("special_modified_bessel_i1",)),
    op("modified_bessel_k0", "torch.special.modified_bessel_k0", _u(lambda a: sp.besselk(0, a)), weight=T,
       aten=("special_modified_bessel_k0",)),
    op("modified_bessel_k1", "torch.special.modified_bessel_k1", _u(lambda a: sp.besselk(1, a)), weight=T,
       aten=("special_modified_bessel_k1",)),
    op("scaled_modified_bessel_k0", "torch.special.scaled_modified_bessel_k0",
       _u(lambda a: sp.exp(a) * sp.besselk(0, a)), weight=T, aten=("special_scaled_modified_bessel_k0",)),
    op("scaled_modified_bessel_k1", "torch.special.scaled_modified_bessel_k1",
       _u(lambda a: sp.exp(a) * sp.besselk(1, a)), weight=T, aten=("special_scaled_modified_bessel_k1",)),
    op("spherical_bessel_j0", "torch.special.spherical_bessel_j0", _u(lambda a: sp.jn(0, a)), weight=T,
       aten=("special_spherical_bessel_j0",)),
    op("airy_ai", "torch.special.airy_ai", _u(sp.airyai), weight=T, aten=("special_airy_ai",)),
    op("gelu", "F.gelu", _sp_gelu, weight=T, keywords="approximate", aten=("gelu", "gelu_backward")),
    op("silu", "F.silu", _u(lambda a: a * _sigmoid(a)), weight=T, aten=("silu", "silu_backward")),
    op("mish", "F.mish", _u(lambda a: a * sp.tanh(_softplus(a))), weight=T, aten=("mish", "mish_backward")),
    op("softplus", "F.softplus", _sp_softplus, weight=T, keywords="beta threshold",
       aten=("softplus", "softplus_backward")),
    op("elu", "F.elu", lambda args, kw: _elu(_input(args, kw), _kw(args, kw, 1, "alpha", 1)), weight=T,
       keywords="alpha", aten=("elu", "elu_backward")),
    op("selu", "F.selu", _u(lambda a: _SELU_SCALE * _elu(a, _SELU_ALPHA)), weight=T,
       aten=("elu", "elu_backward")),   # torch.selu dispatches aten elu with its scale
    op("celu", "F.celu", _sp_celu, weight=T, keywords="alpha", aten=("celu", "elu_backward")),
    op("logsigmoid", "F.logsigmoid", _u(lambda a: -_softplus(-a)), weight=T,
       aten=("log_sigmoid_forward", "log_sigmoid_backward")),
    op("tanhshrink", "F.tanhshrink", _u(lambda a: a - sp.tanh(a)), weight=T + 1, kernels=2),   # tanh, sub
    # -- elementwise, two or more tensors --
    op("add", "torch.add", _sp_add(1), keywords="other alpha", arity=2),
    op("sub", "torch.sub torch.subtract", _sp_add(-1), keywords="other alpha", arity=2),
    op("mul", "torch.mul torch.multiply", _b(lambda a, b: a * b), keywords="other", arity=2),
    op("div", "torch.div torch.divide torch.true_divide", _sp_div, keywords="other rounding_mode", arity=2),
    op("floor_divide", "torch.floor_divide", _b(lambda a, b: sp.floor(a / b)), keywords="other", arity=2),
    op("fmod", "torch.fmod math.fmod", _b(lambda a, b: a - b * _trunc(a / b)), keywords="other", arity=2),
    op("remainder", "torch.remainder", _b(sp.Mod), keywords="other", arity=2),
    op("ieee_remainder", "math.remainder", None, kind="scalar", arity=2),   # IEEE: x - n·y, n rounded to even
    op("pow", "torch.pow math.pow", _sp_pow, weight=T, keywords="exponent", arity=2),
    op("float_power", "torch.float_power", _sp_pow, weight=T, keywords="exponent", arity=2,
       aten=()),   # a float64 conversion, then aten pow (owned by `pow`)
    op("atan2", "torch.atan2 torch.arctan2 math.atan2", _b(sp.atan2), weight=T, keywords="other", arity=2),
    op("hypot", "torch.hypot math.hypot", _sp_hypot, weight=T, keywords="other", arity=2),
    op("logaddexp", "torch.logaddexp", _b(lambda a, b: sp.log(sp.exp(a) + sp.exp(b))), weight=T,
       keywords="other", arity=2),
    op("logaddexp2", "torch.logaddexp2", _b(lambda a, b: sp.log(2 ** a + 2 ** b, 2)), weight=T,
       keywords="other", arity=2),
    op("xlogy", "torch.xlogy torch.special.xlogy", _sp_xlogy, weight=T, keywords="other", arity=2),
    op("xlog1py", "torch.special.xlog1py", _sp_xlog1py, weight=T, keywords="other", arity=2,
       aten=("special_xlog1py",)),
    op("zeta", "torch.special.zeta", _b(sp.zeta), weight=T, keywords="other", arity=2, aten=("special_zeta",)),
    op("polygamma", "torch.polygamma torch.special.polygamma", _sp_polygamma, weight=T, arity=2,
       methods=()),   # x.polygamma(n) is polygamma(n, x)
    op("mvlgamma", "torch.mvlgamma torch.special.multigammaln", None, weight=T, keywords="p", arity=2, aten=()),
    op("gammainc", "torch.special.gammainc", _sp_gammainc(False), weight=T, keywords="other", arity=2,
       aten=("igamma",)),
    op("gammaincc", "torch.special.gammaincc", _sp_gammainc(True), weight=T, keywords="other", arity=2,
       aten=("igammac",)),
    op("copysign", "torch.copysign math.copysign", _sp_copysign, keywords="other", arity=2),
    op("heaviside", "torch.heaviside", _sp_heaviside, keywords="values", arity=2),
    op("clamp", "torch.clamp torch.clip", _sp_clamp, keywords="min max", arity=None),
    op("clamp_min", "torch.clamp_min", _sp_clamp_bound("min"), keywords="min", arity=2),
    op("clamp_max", "torch.clamp_max", _sp_clamp_bound("max"), keywords="max", arity=2),
    op("maximum", "torch.maximum", _b(sp.Max), keywords="other", arity=2),
    op("minimum", "torch.minimum", _b(sp.Min), keywords="other", arity=2),
    op("fmax", "torch.fmax", _b(sp.Max), keywords="other", arity=2),
    op("fmin", "torch.fmin", _b(sp.Min), keywords="other", arity=2),
    op("lerp", "torch.lerp", _sp_lerp, keywords="end weight", arity=3),
    op("addcmul", "torch.addcmul", _sp_addc(lambda a, b: a * b), keywords="value", arity=3),
    op("addcdiv", "torch.addcdiv", _sp_addc(lambda a, b: a / b), keywords="value", arity=3),
    op("where", "torch.where", _sp_where, arity=3, methods=()),   # x.where(c, y) is where(c, x, y)
    op("prelu", "F.prelu", None, keywords="weight", arity=2, aten=("_prelu_kernel", "_prelu_kernel_backward")),
    op("glu", "F.glu", None, weight=T, keywords="dim", kind="reduction", aten=("glu",)),
    # -- comparisons (bool results) --
    op("eq", "torch.eq", _sp_relational(sp.Eq), keywords="other", kind="comparison", arity=2),
    op("ne", "torch.ne", _sp_relational(sp.Ne), keywords="other", kind="comparison", arity=2),
    op("lt", "torch.lt", _sp_relational(sp.Lt), keywords="other", kind="comparison", arity=2),
    op("le", "torch.le", _sp_relational(sp.Le), keywords="other", kind="comparison", arity=2),
    op("gt", "torch.gt", _sp_relational(sp.Gt), keywords="other", kind="comparison", arity=2),
    op("ge", "torch.ge", _sp_relational(sp.Ge), keywords="other", kind="comparison", arity=2),
    op("logical_and", "torch.logical_and", _sp_logical(sp.And), keywords="other", kind="comparison", arity=2),
    op("logical_or", "torch.logical_or", _sp_logical(sp.Or), keywords="other", kind="comparison", arity=2),
    op("logical_xor", "torch.logical_xor", _sp_logical(sp.Xor), keywords="other", kind="comparison", arity=2),
    op("logical_not", "torch.logical_not", _sp_logical(sp.Not, 1), kind="comparison"),
    op("signbit", "torch.signbit", None, kind="comparison"),
    op("isfinite", "torch.isfinite math.isfinite", None, kind="comparison", kernels=4, weight=4, aten=()),
    op("isnan", "torch.isnan math.isnan", None, kind="comparison"),
    op("isinf", "torch.isinf math.isinf", None, kind="comparison"),
    op("isposinf", "torch.isposinf", None, kind="comparison"),
    op("isneginf", "torch.isneginf", None, kind="comparison"),
    op("isclose", "torch.isclose math.isclose", None, keywords="rtol atol equal_nan rel_tol abs_tol",
       kind="comparison", arity=2),
    op("equal", "torch.equal", None, kind="comparison", arity=2),
    op("allclose", "torch.allclose", None, keywords="rtol atol equal_nan", kind="comparison", arity=2),
    # -- reductions and scans (they read other elements) --
    op("sum", "torch.sum", None, keywords="dim keepdim dtype", kind="reduction", arity=None),
    op("nansum", "torch.nansum", None, keywords="dim keepdim dtype", kind="reduction", arity=None),
    op("mean", "torch.mean", None, keywords="dim keepdim dtype", kind="reduction", arity=None),
    op("nanmean", "torch.nanmean", None, keywords="dim keepdim dtype", kind="reduction", arity=None, aten=()),
    op("std", "torch.std", None, keywords="dim keepdim unbiased correction", kind="reduction", arity=None),
    op("var", "torch.var", None, keywords="dim keepdim unbiased correction", kind="reduction", arity=None),
    op("std_mean", "torch.std_mean", None, keywords="dim keepdim unbiased correction", kind="reduction",
       arity=None),
    op("var_mean", "torch.var_mean", None, keywords="dim keepdim unbiased correction", kind="reduction",
       arity=None),
    op("prod", "torch.prod", None, keywords="dim keepdim dtype", kind="reduction", arity=None),
    op("amax", "torch.amax", None, keywords="dim keepdim", kind="reduction", arity=None),
    op("amin", "torch.amin", None, keywords="dim keepdim", kind="reduction", arity=None),
    op("aminmax", "torch.aminmax", None, keywords="dim keepdim", kind="reduction", arity=None),
    op("max", "torch.max", _sp_maxmin(sp.Max), keywords="dim keepdim other", kind="reduction", arity=None),
    op("min", "torch.min", _sp_maxmin(sp.Min), keywords="dim keepdim other", kind="reduction", arity=None),
    op("argmax", "torch.argmax", None, keywords="dim keepdim", kind="reduction", arity=None),
    op("argmin", "torch.argmin", None, keywords="dim keepdim", kind="reduction", arity=None),
    op("median", "torch.median", None, keywords="dim keepdim", kind="reduction", arity=None),
    op("quantile", "torch.quantile", None, keywords="q dim keepdim interpolation", kind="reduction", arity=None,
       aten=()),
    op("sort", "torch.sort", None, keywords="dim descending stable", kind="reduction", arity=None),
    op("argsort", "torch.argsort", None, keywords="dim descending stable", kind="reduction", arity=None,
       aten=("sort",)),
    op("topk", "torch.topk", None, keywords="k dim largest sorted", kind="reduction", arity=None),
    op("kthvalue", "torch.kthvalue", None, keywords="k dim keepdim", kind="reduction", arity=None),
    op("any", "torch.any", None, keywords="dim keepdim", kind="reduction", arity=None),
    op("all", "torch.all", None, keywords="dim keepdim", kind="reduction", arity=None),
    op("count_nonzero", "torch.count_nonzero", None, keywords="dim", kind="reduction", arity=None),
    op("cumsum", "torch.cumsum", None, keywords="dim dtype", kind="reduction", arity=None),
    op("cumprod", "torch.cumprod", None, keywords="dim dtype", kind="reduction", arity=None),
    op("cummax", "torch.cummax", None, keywords="dim", kind="reduction", arity=None),
    op("cummin", "torch.cummin", None, keywords="dim", kind="reduction", arity=None),
    op("logcumsumexp", "torch.logcumsumexp", None, weight=T, keywords="dim", kind="reduction", arity=None),
    op("logsumexp", "torch.logsumexp torch.special.logsumexp", None, weight=T, keywords="dim keepdim",
       kind="reduction", arity=None, aten=("logsumexp",)),   # one aten kernel: it pays its exp and log
    op("softmax", "torch.softmax F.softmax torch.special.softmax", None, weight=T, keywords="dim dtype",
       kind="reduction", arity=None, aten=("_softmax",)),
    op("log_softmax", "torch.log_softmax F.log_softmax torch.special.log_softmax", None, weight=T,
       keywords="dim dtype", kind="reduction", arity=None, aten=("_log_softmax",)),
    op("softmin", "F.softmin", None, weight=T + 1, keywords="dim dtype", kind="reduction", arity=None, kernels=2),
    op("norm", "torch.norm", None, keywords="p dim keepdim dtype", kind="reduction", arity=None,
       aten=("linalg_vector_norm",)),
    op("linalg_norm", "torch.linalg.norm", None, keywords="ord dim keepdim dtype", kind="reduction", arity=None,
       aten=("linalg_vector_norm",)),
    op("vector_norm", "torch.linalg.vector_norm", None, keywords="ord dim keepdim dtype", kind="reduction",
       arity=None, aten=("linalg_vector_norm",)),
    op("normalize", "F.normalize", None, keywords="p dim eps", kind="reduction", arity=None, aten=()),
    op("layer_norm", "F.layer_norm", None, keywords="normalized_shape weight bias eps", kind="reduction",
       arity=None, aten=()),
    op("rms_norm", "F.rms_norm", None, keywords="normalized_shape weight eps", kind="reduction", arity=None,
       aten=()),
    op("group_norm", "F.group_norm", None, keywords="num_groups weight bias eps", kind="reduction", arity=None,
       aten=()),
    op("cosine_similarity", "F.cosine_similarity", None, keywords="x1 x2 dim eps", kind="reduction", arity=None,
       aten=(), common_keywords=False),
    op("diff", "torch.diff", None, keywords="n dim prepend append", kind="reduction", arity=None, aten=()),
    op("gradient", "torch.gradient", None, keywords="spacing dim edge_order", kind="reduction", arity=None,
       aten=()),
    op("trapezoid", "torch.trapezoid", None, keywords="x dx dim", kind="reduction", arity=None, aten=()),
    # -- linear algebra and spectra --
    op("matmul", "torch.matmul", None, keywords="other", kind="linalg", arity=2),
    op("mm", "torch.mm", None, keywords="mat2", kind="linalg", arity=2),
    op("bmm", "torch.bmm", None, keywords="mat2", kind="linalg", arity=2),
    op("outer", "torch.outer", None, keywords="vec2", kind="linalg", arity=2),
    op("dot", "torch.dot", None, keywords="tensor", kind="linalg", arity=2),
    op("inner", "torch.inner", None, keywords="other", kind="linalg", arity=2),
    op("einsum", "torch.einsum", None, kind="linalg", arity=None, common_keywords=False),
    op("fft", "torch.fft.fft", None, keywords="n dim norm", kind="spectral", arity=None),
    op("ifft", "torch.fft.ifft", None, keywords="n dim norm", kind="spectral", arity=None),
    op("rfft", "torch.fft.rfft", None, keywords="n dim norm", kind="spectral", arity=None),
    op("irfft", "torch.fft.irfft", None, keywords="n dim norm", kind="spectral", arity=None),
    # -- structure: elements moved, not computed (views free, gathers and copies by output size) --
    op("reshape", "torch.reshape", None, weight=0, keywords="shape", kind="structure", arity=2,
       methods=("reshape", "view", "view_as", "reshape_as"),
       aten=("view", "_unsafe_view", "reshape", "_reshape_alias", "view_as")),
    op("flatten", "torch.flatten", None, weight=0, keywords="start_dim end_dim", kind="structure", arity=None,
       aten=()),   # a view
    op("unflatten", "torch.unflatten", None, weight=0, keywords="dim sizes", kind="structure", arity=None,
       aten=()),   # a view
    op("unsqueeze", "torch.unsqueeze", None, weight=0, keywords="dim", kind="structure", arity=2,
       aten=("unsqueeze",)),
    op("squeeze", "torch.squeeze", None, weight=0, keywords="dim", kind="structure", arity=None,
       aten=("squeeze",)),
    op("transpose", "torch.transpose torch.swapaxes torch.swapdims", None, weight=0, keywords="dim0 dim1",
       kind="structure", arity=3, methods=("transpose", "swapaxes", "swapdims", "t"), aten=("transpose", "t")),
    op("permute", "torch.permute", None, weight=0, keywords="dims", kind="structure", arity=None,
       aten=("permute",)),
    op("movedim", "torch.movedim", None, weight=0, keywords="source destination", kind="structure", arity=3,
       aten=()),   # permute
    op("chunk", "torch.chunk", None, weight=0, keywords="chunks dim", kind="structure", arity=None,
       aten=("chunk", "split", "split_with_sizes", "unbind")),
    op("split", "torch.split", None, weight=0, keywords="split_size_or_sections dim", kind="structure",
       arity=None, aten=("split", "split_with_sizes", "unbind")),
    op("narrow", "torch.narrow", None, weight=0, keywords="dim start length", kind="structure", arity=4,
       aten=("narrow",)),
    op("broadcast_to", "torch.broadcast_to", None, weight=0, keywords="size", kind="structure", arity=2,
       methods=("broadcast_to", "expand", "expand_as"), aten=("expand", "expand_as")),
    op("broadcast_tensors", "torch.broadcast_tensors", None, weight=0, kind="structure", arity=None, aten=()),
    op("detach", "torch.detach", None, weight=0, kind="structure", aten=("detach", "alias", "lift_fresh")),
    op("subscript", "", None, weight=0, kind="structure", arity=2, methods=(),
       aten=("select", "slice", "as_strided", "diagonal", "unfold", "view_as_real", "view_as_complex")),
    op("roll", "torch.roll", None, keywords="shifts dims", kind="structure", arity=None),
    op("flip", "torch.flip torch.fliplr torch.flipud", None, keywords="dims", kind="structure", arity=None,
       aten=("flip",)),
    op("cat", "torch.cat torch.concat torch.concatenate", None, keywords="tensors dim", kind="structure",
       arity=None, aten=("cat",), common_keywords=False),
    op("stack", "torch.stack torch.hstack torch.vstack", None, keywords="tensors dim", kind="structure",
       arity=None, aten=(), common_keywords=False),
    op("gather", "torch.gather", None, keywords="dim index", kind="structure", arity=3, aten=("gather",)),
    op("index_select", "torch.index_select", None, keywords="dim index", kind="structure", arity=3,
       aten=("index_select",)),
    op("masked_fill", "torch.masked_fill", None, keywords="mask value", kind="structure", arity=3,
       aten=("masked_fill",)),
    op("repeat_interleave", "torch.repeat_interleave", None, keywords="repeats dim output_size",
       kind="structure", arity=None, aten=()),
    op("tile", "torch.tile", None, keywords="dims", kind="structure", arity=2, aten=()),
    op("tril", "torch.tril", None, keywords="diagonal", kind="structure", arity=None, aten=("tril",)),
    op("triu", "torch.triu", None, keywords="diagonal", kind="structure", arity=None, aten=("triu",)),
    op("pad", "F.pad", None, keywords="pad mode value", kind="structure", arity=None, aten=()),
    # -- copies and conversions: every element moved, so 1 per output element --
    op("clone", "torch.clone", None, keywords="memory_format", kind="copy", methods=("clone", "contiguous"),
       aten=("clone", "copy")),
    op("expand_copy", "torch.expand_copy", None, keywords="size", kind="copy", arity=2, aten=("expand_copy",)),
    op("to", "", None, keywords="dtype device copy non_blocking memory_format", kind="copy", arity=None,
       methods=("to", "float", "double", "half", "bfloat16", "type", "type_as"), aten=("_to_copy",)),
    # -- constructors: allocations are free, a literal copied into a tensor costs its size --
    op("zeros_like", "torch.zeros_like", None, weight=0, keywords="dtype", kind="constructor", aten=("zeros_like",)),
    op("ones_like", "torch.ones_like", None, weight=0, keywords="dtype", kind="constructor", aten=("ones_like",)),
    op("full_like", "torch.full_like", None, weight=0, keywords="fill_value dtype", kind="constructor", arity=2,
       aten=("full_like",)),
    # Allocations that torch's own kernels and autograd dispatch: free, but no spelling -- `torch.empty_like`,
    # `torch.empty` and `torch.Tensor(...)` hand out uninitialised memory (nondeterministic, and it can carry
    # data from one call to the next), so candidates cannot name them.
    op("empty", "", None, weight=0, kind="internal", arity=None,
       aten=("empty_like", "empty", "empty_strided", "new_empty", "new_empty_strided")),
    op("tensor", "torch.tensor torch.as_tensor", None, keywords="data dtype", kind="constructor",
       aten=("lift_fresh_copy",)),
    op("zeros", "torch.zeros", None, keywords="size dtype", kind="constructor", arity=None, aten=("zeros",)),
    op("ones", "torch.ones", None, keywords="size dtype", kind="constructor", arity=None, aten=("ones",)),
    op("full", "torch.full", None, keywords="size fill_value dtype", kind="constructor", arity=2, aten=("full",)),
    op("arange", "torch.arange", None, keywords="start end step dtype", kind="constructor", arity=None,
       aten=("arange",)),
    op("linspace", "torch.linspace", None, keywords="start end steps dtype", kind="constructor", arity=3,
       aten=("linspace",)),
    op("logspace", "torch.logspace", None, keywords="start end steps base dtype", kind="constructor", arity=None,
       aten=("logspace",)),
    op("eye", "torch.eye", None, keywords="n m dtype", kind="constructor", arity=None, aten=("eye",)),
    op("scalar_tensor", "", None, weight=0, kind="internal", arity=1, aten=("scalar_tensor",)),
    # -- dtypes and type utilities: names, not computations --
    *(op(n, f"torch.{n}", None, weight=0, kind="dtype", arity=None, aten=(), methods=())
      for n in ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool",
                "float", "double", "half", "long", "int")),
    # `torch.Tensor` is here as a type name: the policy lets it appear only in annotations and as the class
    # of isinstance (calling it gives uninitialised memory; `_Checker.visit_attribute`).
    *(op(n, f"torch.{n}", None, weight=0, kind="utility", arity=None, aten=(), methods=())
      for n in ("Tensor", "is_tensor", "is_floating_point", "is_complex", "numel", "finfo", "iinfo", "result_type",
                "promote_types")),
    # -- math-only functions of Python numbers (no tensor counterpart on the allow-lists) --
    op("cbrt", "math.cbrt", _u(_sp_cbrt), kind="scalar"),
    op("gamma", "math.gamma", _u(sp.gamma), kind="scalar"),
    op("factorial", "math.factorial", _u(sp.factorial), kind="scalar"),
    op("comb", "math.comb", _b(sp.binomial), kind="scalar", arity=2),
    op("perm", "math.perm", None, kind="scalar", arity=None),
    op("gcd", "math.gcd", None, kind="scalar", arity=None),
    op("lcm", "math.lcm", None, kind="scalar", arity=None),
    op("isqrt", "math.isqrt", _u(lambda a: sp.floor(sp.sqrt(a))), kind="scalar"),
    op("ldexp", "math.ldexp", _b(lambda a, b: a * 2 ** b), kind="scalar", arity=2),
    op("frexp", "math.frexp", None, kind="scalar"),
    op("modf", "math.modf", None, kind="scalar"),
    op("nextafter", "math.nextafter", None, kind="scalar", arity=2),
    op("ulp", "math.ulp", None, kind="scalar"),
    op("fsum", "math.fsum", None, kind="scalar"),
    op("math_prod", "math.prod", None, kind="scalar", arity=None),
    op("dist", "math.dist", None, kind="scalar", arity=2),
    op("sumprod", "math.sumprod", None, kind="scalar", arity=2),
    op("fma", "math.fma", None, kind="scalar", arity=3),
)

CONSTANTS: tuple[Constant, ...] = (
    Constant("pi", ("torch.pi", "math.pi"), math.pi, sp.pi),
    Constant("e", ("torch.e", "math.e"), math.e, sp.E),
    Constant("tau", ("math.tau",), math.tau, 2 * sp.pi),
    Constant("inf", ("torch.inf", "math.inf"), math.inf, sp.oo),
    Constant("nan", ("torch.nan", "math.nan"), math.nan, sp.nan),
)


# ------------------------------------------------------------------------------------------------
# Derived views
# ------------------------------------------------------------------------------------------------

def _index() -> tuple[dict[str, Op], dict[str, Op], dict[str, Constant]]:
    """The table indexed by name and by spelling; raises on a duplicate (a silent mismatch else)."""
    by_name: dict[str, Op] = {}
    by_spelling: dict[str, Op] = {}
    constants: dict[str, Constant] = {}
    for entry in OPS:
        if entry.name in by_name:
            raise ValueError(f"two ops named {entry.name!r} in actmine.language.ops.OPS")
        by_name[entry.name] = entry
        for spelling in entry.spellings:
            if spelling in by_spelling:
                raise ValueError(f"`{spelling}` is spelled by both {by_spelling[spelling].name!r} and "
                                 f"{entry.name!r} in actmine.language.ops.OPS")
            by_spelling[spelling] = entry
    for constant in CONSTANTS:
        for spelling in constant.spellings:
            if spelling in by_spelling or spelling in constants:
                raise ValueError(f"`{spelling}` is both a constant and another entry of the table")
            constants[spelling] = constant
    return by_name, by_spelling, constants


OP_BY_NAME, OP_BY_SPELLING, CONSTANT_BY_SPELLING = _index()

#: spelling -> the callable (or dtype, class) that spelling names, for every op spelling.
FUNCTIONS: dict[str, Any] = {spelling: resolve(spelling) for spelling in OP_BY_SPELLING}

#: tensor method name -> its op (`x.tanh()`, `x.clamp(min=0)`).
METHODS: dict[str, Op] = {}
for _entry in OPS:
    for _method in _entry.methods:
        if METHODS.setdefault(_method, _entry) is not _entry:
            raise ValueError(f"the tensor method .{_method}() is claimed by {METHODS[_method].name!r} and "
                             f"{_entry.name!r} in actmine.language.ops.OPS")

#: Every keyword argument some op accepts.
KEYWORDS: frozenset[str] = frozenset().union(*(entry.keywords for entry in OPS))


def _aten_weights() -> dict[str, int]:
    weights: dict[str, int] = {}
    owner: dict[str, str] = {}
    for entry in OPS:
        if entry.aten and entry.weight not in (0, 1, TRANSCENDENTAL_WEIGHT):
            raise ValueError(f"op {entry.name!r} owns aten kernels but weighs {entry.weight}: a kernel weighs "
                             f"0, 1 or {TRANSCENDENTAL_WEIGHT}; give a composite op no `aten`")
        for name in entry.aten:
            if name != name.rstrip("_"):
                raise ValueError(f"aten name {name!r} of {entry.name!r}: strip the trailing `_` (the probes' "
                                 "counter does)")
            if weights.setdefault(name, entry.weight) != entry.weight:
                raise ValueError(f"aten kernel {name!r} weighs {weights[name]} for {owner[name]!r} but "
                                 f"{entry.weight} for {entry.name!r} in actmine.language.ops.OPS")
            owner.setdefault(name, entry.name)
    return weights


#: aten kernel name (as the probes' counter sees it) -> the weight its owners charge per element.
ATEN_WEIGHTS: dict[str, int] = _aten_weights()
#: Kernels that evaluate a transcendental function: charged TRANSCENDENTAL_WEIGHT per element.
TRANSCENDENTAL_ATEN: frozenset[str] = frozenset(n for n, w in ATEN_WEIGHTS.items() if w == TRANSCENDENTAL_WEIGHT)
#: Kernels that move no data or only allocate it (views, allocations): free. Copies are not here.
FREE_ATEN: frozenset[str] = frozenset(n for n, w in ATEN_WEIGHTS.items() if w == 0)


def aten_weight(name: str) -> int:
    """The weight per element of the aten kernel `name` (trailing `_` stripped): 0, 1 or 8;
    a kernel no op owns is arithmetic (1)."""
    return ATEN_WEIGHTS.get(name.rstrip("_"), 1)


def op_of(spelling: str) -> Op | None:
    """The op a dotted spelling names (`"F.gelu"`), or None."""
    return OP_BY_SPELLING.get(spelling)


def method_op(method: str) -> Op | None:
    """The op a tensor method computes (`"tanh"` for `x.tanh()`), or None."""
    return METHODS.get(method)


def keywords_of(spelling_or_method: str) -> frozenset[str]:
    """The keyword arguments the interpreters accept for a spelling or a tensor method."""
    entry = OP_BY_SPELLING.get(spelling_or_method) or METHODS.get(spelling_or_method)
    return entry.keywords if entry is not None else frozenset()


def namespace_tree(spellings: Iterable[str]) -> dict[str, dict | None]:
    """Dotted spellings as a tree: name -> None (a leaf) or a sub-tree (a namespace)."""
    tree: dict[str, dict | None] = {}
    for spelling in sorted(spellings):
        node = tree
        *path, leaf = spelling.split(".")
        for part in path:
            child = node.setdefault(part, {})
            if child is None:
                raise ValueError(f"`{spelling}`: `{part}` is both a leaf and a namespace")
            node = child
        if isinstance(node.get(leaf), dict):
            raise ValueError(f"`{spelling}` is both a leaf and a namespace")
        node[leaf] = None
    return tree


def root_trees() -> dict[str, dict]:
    """The policy's allow-list trees, one per pre-imported root: every spelling of every op and
    constant. `{"torch": {"tanh": None, ..., "special": {...}, "nn": {"functional": {...}}}, "F": ...}`"""
    spellings = list(OP_BY_SPELLING) + list(CONSTANT_BY_SPELLING)
    tree = namespace_tree(spellings)
    return {root: tree.get(root) or {} for root in ROOTS}


def allowed_names(prefix: str) -> frozenset[str]:
    """The leaf names directly under a dotted prefix (`"torch"`, `"torch.special"`, `"F"`)."""
    node: Any = root_trees()
    for part in prefix.split("."):
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return frozenset()
    return frozenset(name for name, child in node.items() if child is None)


def unary_elementwise() -> tuple[Op, ...]:
    """The one-tensor elementwise ops of float tensors (arity 1, kind "elementwise") that have a
    tensor spelling: what a mutator may swap or unwrap."""
    return tuple(entry for entry in OPS if entry.kind == "elementwise" and entry.arity == 1
                 and any(not s.startswith("math.") for s in entry.spellings))
