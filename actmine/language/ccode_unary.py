"""The C text of ccode's one-input ops: for each, f(a) and f'(a) as C templates.

`ccode.CBackend` turns a call of one of `_UNARY_RULES` into C with `_unary_rule`; each entry here
gives, for the C name `a` of the input, the text of the value and a function from the value's
name `y` to the text of the derivative, following torch's own definition, including its
conventions where the function has a kink (relu'(0) = 0, hardtanh passes the gradient on the open
interval, softplus's threshold, …), and the keywords the rule models. A rule may bind
intermediate values with the emitter's `let`. Number literals are formatted by `_literal`, so the
C text holds nothing of the program's own text.

cos(a) is written 1 − 2·sin²(a/2): a loop holding sin(a) and cos(a) of the same argument would be
merged by gcc into `sincosf`, which has no vector version, and the whole loop would stay scalar.
"""

from __future__ import annotations

import math
from typing import Callable, Protocol

from .interpreter import Unsupported


class Emitter(Protocol):
    """What a rule needs of `ccode.CBackend` (named here: this module must not import ccode)."""

    def let(self, expression: str, kind: str = "float") -> str: ...


def _literal(value: float) -> str:
    """A float32 C literal for a Python number (infinities and NaN by name)."""
    value = float(value)
    if math.isnan(value):
        return "NAN"
    if math.isinf(value):
        return "INFINITY" if value > 0 else "(-INFINITY)"
    return f"({float(value)!r}f)"


def _cos(a: str) -> str:
    return f"(1.0f - 2.0f * sinf(0.5f * {a}) * sinf(0.5f * {a}))"


def _sigmoid(a: str) -> str:
    return f"(1.0f / (1.0f + expf(-({a}))))"


_TWO_OVER_SQRT_PI = 1.1283791670955126
_INV_SQRT_2 = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327
_GELU_TANH_BETA = math.sqrt(2.0 / math.pi)
_GELU_TANH_KAPPA = 0.044715
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


# a one-input rule: (C text of f(a), C text of f'(a) given the value's name)
Unary = Callable[[Emitter, str, dict], tuple[str, Callable[[str], str]]]


def _simple(value: str, slope: str) -> Unary:
    """A rule written as two templates over {a} (the input) and {y} (the value)."""
    return lambda b, a, params: (value.format(a=a), lambda y: slope.format(a=a, y=y))


def _number(params: dict, name: str, default: float) -> float:
    value = params.get(name)
    value = default if value is None else value
    if isinstance(value, str) or isinstance(value, bool):
        raise Unsupported(f"{name}={value!r}")
    return float(value)


def _gelu(b: Emitter, a: str, params: dict) -> tuple[str, Callable[[str], str]]:
    approximate = params.get("approximate") or "none"
    if approximate == "none":
        # Φ(a) as erfc: 1 + erf(a/√2) cancels for a < −3 (float32 keeps ~4 digits of it at a = −4,
        # which a candidate can scale past the agreement's tolerance); erfc(−a/√2) does not.
        phi = b.let(f"0.5f * erfcf(-{a} * {_literal(_INV_SQRT_2)})")
        return f"{a} * {phi}", lambda y: f"{phi} + {a} * {_literal(_INV_SQRT_2PI)} * expf(-0.5f * {a} * {a})"
    if approximate == "tanh":
        inner = b.let(f"{_literal(_GELU_TANH_BETA)} * ({a} + {_literal(_GELU_TANH_KAPPA)} * {a} * {a} * {a})")
        t = b.let(f"tanhf({inner})")
        slope_inner = f"{_literal(_GELU_TANH_BETA)} * (1.0f + {_literal(3 * _GELU_TANH_KAPPA)} * {a} * {a})"
        return (
            f"0.5f * {a} * (1.0f + {t})",
            lambda y: f"0.5f * (1.0f + {t}) + 0.5f * {a} * (1.0f - {t} * {t}) * {slope_inner}",
        )
    raise Unsupported(f"gelu approximate={approximate!r}")


def _softplus(b: Emitter, a: str, params: dict) -> tuple[str, Callable[[str], str]]:
    beta, threshold = _number(params, "beta", 1.0), _number(params, "threshold", 20.0)
    z = b.let(f"{a} * {_literal(beta)}")
    over = f"({z} > {_literal(threshold)})"
    return (f"{over} ? {a} : log1pf(expf({z})) / {_literal(beta)}", lambda y: f"{over} ? 1.0f : {_sigmoid(z)}")


def _mish(b: Emitter, a: str, params: dict) -> tuple[str, Callable[[str], str]]:
    t = b.let(f"tanhf(log1pf(expf({a})))")
    return f"{a} * {t}", lambda y: f"{t} + {a} * (1.0f - {t} * {t}) * {_sigmoid(a)}"


def _silu(b: Emitter, a: str, params: dict) -> tuple[str, Callable[[str], str]]:
    s = b.let(_sigmoid(a))
    return f"{a} * {s}", lambda y: f"{s} * (1.0f + {a} * (1.0f - {s}))"


def _elu_like(alpha_name: str | None, scale: float = 1.0, alpha_default: float = 1.0, celu: bool = False) -> Unary:
    """elu: scale·(a if a > 0 else α·(eᵃ − 1)); celu divides the exponent by α (slope e^(a/α))."""

    def rule(b: Emitter, a: str, params: dict) -> tuple[str, Callable[[str], str]]:
        alpha = _number(params, alpha_name, alpha_default) if alpha_name else alpha_default
        inner = f"{a} / {_literal(alpha)}" if celu else a
        s, outer = _literal(scale), _literal(1.0 if celu else alpha)
        return (
            f"{s} * (({a} > 0.0f) ? {a} : {_literal(alpha)} * expm1f({inner}))",
            lambda y: f"{s} * (({a} > 0.0f) ? 1.0f : {outer} * expf({inner}))",
        )

    return rule


def _leaky_relu(b: Emitter, a: str, params: dict) -> tuple[str, Callable[[str], str]]:
    slope = _literal(_number(params, "negative_slope", 0.01))
    return f"({a} > 0.0f) ? {a} : {a} * {slope}", lambda y: f"({a} > 0.0f) ? 1.0f : {slope}"


def _clamp_rule(low: float | None, high: float | None, inclusive: bool) -> tuple[str, str]:
    """(value, slope) templates over {a}: torch's clamp (NaN passes through)."""
    lo, hi = (_literal(low) if low is not None else None), (_literal(high) if high is not None else None)
    value = "{a}"
    if hi is not None:
        value = f"(({{a}} > {hi}) ? {hi} : {value})"
    if lo is not None:
        value = f"(({{a}} < {lo}) ? {lo} : {value})"
    ge, le = (">=", "<=") if inclusive else (">", "<")
    inside = " && ".join([f"({{a}} {ge} {lo})"] * (lo is not None) + [f"({{a}} {le} {hi})"] * (hi is not None))
    return value, f"({inside or '1'}) ? 1.0f : 0.0f"


def _hardtanh_like(low_name: str | None, high_name: str | None, low: float, high: float) -> Unary:
    def rule(b: Emitter, a: str, params: dict) -> tuple[str, Callable[[str], str]]:
        lo = _number(params, low_name, low) if low_name else low
        hi = _number(params, high_name, high) if high_name else high
        value, slope = _clamp_rule(lo, hi, inclusive=False)  # hardtanh_backward: open interval
        return value.format(a=a), lambda y: slope.format(a=a)

    return rule


_UNARY_RULES: dict[str, tuple[Unary, tuple[str, ...]]] = {
    "abs": (_simple("fabsf({a})", "({a} > 0.0f) ? 1.0f : (({a} < 0.0f) ? -1.0f : 0.0f)"), ()),
    "neg": (_simple("-{a}", "-1.0f"), ()),
    "relu": (_simple("({a} <= 0.0f) ? 0.0f : {a}", "({a} > 0.0f) ? 1.0f : 0.0f"), ()),
    "square": (_simple("{a} * {a}", "2.0f * {a}"), ()),
    "exp": (_simple("expf({a})", "{y}"), ()),
    "expm1": (_simple("expm1f({a})", "{y} + 1.0f"), ()),
    "log": (_simple("logf({a})", "1.0f / {a}"), ()),
    "log1p": (_simple("log1pf({a})", "1.0f / (1.0f + {a})"), ()),
    "sqrt": (_simple("sqrtf({a})", "0.5f / {y}"), ()),
    "rsqrt": (_simple("1.0f / sqrtf({a})", "-0.5f * {y} * {y} * {y}"), ()),
    "reciprocal": (_simple("1.0f / {a}", "-{y} * {y}"), ()),
    "sin": (_simple("sinf({a})", _cos("{a}")), ()),
    "cos": (_simple(_cos("{a}"), "-sinf({a})"), ()),
    "tan": (_simple("tanf({a})", "1.0f + {y} * {y}"), ()),
    "atan": (_simple("atanf({a})", "1.0f / (1.0f + {a} * {a})"), ()),
    "sinh": (_simple("sinhf({a})", "coshf({a})"), ()),
    "cosh": (_simple("coshf({a})", "sinhf({a})"), ()),
    "asinh": (_simple("asinhf({a})", "1.0f / sqrtf({a} * {a} + 1.0f)"), ()),
    "tanh": (_simple("tanhf({a})", "1.0f - {y} * {y}"), ()),
    "erf": (_simple("erff({a})", f"{_literal(_TWO_OVER_SQRT_PI)} * expf(-{{a}} * {{a}})"), ()),
    "erfc": (_simple("erfcf({a})", f"-{_literal(_TWO_OVER_SQRT_PI)} * expf(-{{a}} * {{a}})"), ()),
    "sigmoid": (_simple(_sigmoid("{a}"), "{y} * (1.0f - {y})"), ()),
    "logsigmoid": (_simple("fminf({a}, 0.0f) - log1pf(expf(-fabsf({a})))", _sigmoid("-{a}")), ()),
    "softsign": (_simple("{a} / (1.0f + fabsf({a}))", "1.0f / ((1.0f + fabsf({a})) * (1.0f + fabsf({a})))"), ()),
    "tanhshrink": (_simple("{a} - tanhf({a})", "tanhf({a}) * tanhf({a})"), ()),
    "sinc": (
        _simple(
            "({a} == 0.0f) ? 1.0f : sinf(3.14159265358979f * {a}) / (3.14159265358979f * {a})",
            # near 0 the quotient rule cancels: its Taylor series there, as accurate as torch's
            "(fabsf({a}) < 0.01f) ? -3.2898681336964524f * {a} * (1.0f - 0.9869604401089358f * {a} * {a})"
            " : (" + _cos("3.14159265358979f * {a}") + " * 3.14159265358979f * {a}"
            " - sinf(3.14159265358979f * {a})) / (3.14159265358979f * {a} * {a})",
        ),
        (),
    ),
    "hardsigmoid": (
        _simple(
            "({a} <= -3.0f) ? 0.0f : (({a} >= 3.0f) ? 1.0f : {a} / 6.0f + 0.5f)",
            "({a} > -3.0f && {a} < 3.0f) ? (1.0f / 6.0f) : 0.0f",
        ),
        (),
    ),
    "hardswish": (
        _simple(
            "({a} <= -3.0f) ? 0.0f : (({a} >= 3.0f) ? {a} : {a} * ({a} + 3.0f) / 6.0f)",
            "({a} <= -3.0f) ? 0.0f : (({a} < 3.0f) ? {a} / 3.0f + 0.5f : 1.0f)",
        ),
        (),
    ),
    "gelu": (_gelu, ("approximate",)),
    "silu": (_silu, ()),
    "mish": (_mish, ()),
    "softplus": (_softplus, ("beta", "threshold")),
    "elu": (_elu_like("alpha"), ("alpha",)),
    "celu": (_elu_like("alpha", celu=True), ("alpha",)),
    "selu": (_elu_like(None, scale=_SELU_SCALE, alpha_default=_SELU_ALPHA), ()),
    "leaky_relu": (_leaky_relu, ("negative_slope",)),
    "hardtanh": (_hardtanh_like("min_val", "max_val", -1.0, 1.0), ("min_val", "max_val")),
    "relu6": (_hardtanh_like(None, None, 0.0, 6.0), ()),
}
