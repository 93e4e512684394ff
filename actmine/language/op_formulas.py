"""The sympy formulas of the language table: one rule per op, `rule(args, kwargs)` -> a sympy expression.

Each `Op.sympy` in `actmine.language.ops.OPS` (`op_table.py`) is one of these rules or is built
with one of the small adapters here (`_u` for one argument, `_b` for two). A rule raises
`NoFormula` for a form of the call it does not model. They live apart from the table so that the
table stays one line per op, and apart from the entry types so that each module has one job.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import sympy as sp

from .op_entries import NoFormula, SympyRule

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
        return a / 2 * (1 + sp.tanh(sp.sqrt(2 / sp.pi) * (a + sp.Float(0.044715) * a**3)))
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
    return a**b


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
    return _input(args, kwargs)  # the formula is over the reals: nothing to replace


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
    return sp.sqrt(sum(v**2 for v in values))


def _sp_gammainc(upper: bool) -> SympyRule:
    def rule(args: tuple, kwargs: Mapping[str, Any]) -> Any:
        a, x = _operands(args, kwargs, 2)
        return (sp.uppergamma if upper else sp.lowergamma)(a, x) / sp.gamma(a)

    return rule
