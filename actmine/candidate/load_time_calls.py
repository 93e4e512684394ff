"""The checks the load-time evaluator makes before it calls a builtin or a `math` function.

`actmine.candidate.load_time.LoadTimeEvaluator.call` looks a callee up in `_CALL_CHECKS` (name ->
check) and runs its check first: `check(evaluator, node, function, args, keywords)` (the evaluator
is passed as `self`) either refuses the call (`CostlyConstant`), answers it itself, or returns
`_CALL` to let the evaluator call the function with the checked arguments. Which names may be
called at all is `_CONSTANT_CALLS`; the calls whose unknown arguments are refused,
`_SIZE_SENSITIVE_CALLS`.
"""

from __future__ import annotations

import ast
import math
from typing import Callable

from .load_time_bounds import (
    MAX_INT_BITS,
    UNKNOWN,
    CostlyConstant,
    _bits_text,
    _is_int,
    _LoadFails,
    _log2_factorial,
    _snippet,
    _words,
)

_LOG2_10 = math.log2(10)
_AGGREGATES = frozenset("tuple sum min max any all".split())

_CALL = object()  # a call check's answer: go ahead and call the function with the checked arguments

_CONSTANT_CALLS = frozenset(
    "float int bool complex abs round pow divmod min max sum len tuple range slice any all "
    "isinstance enumerate zip reversed".split()
)
_SIZE_SENSITIVE_CALLS = frozenset(
    {
        "pow",
        "round",
        "math.factorial",
        "math.comb",
        "math.perm",
        "math.prod",
        "math.lcm",
        "math.sumprod",
        "tuple",
        "sum",
        "min",
        "max",
        "int",
    }
)


def _bind(args: list, keywords: dict, names: tuple[str, ...], required: int) -> list:
    """The arguments of a builtin with parameters `names` (the first `required` of them required, the
    others None by default), bound as Python binds them; a call Python refuses fails to load."""
    if len(args) > len(names) or len(args) + len(keywords) < required:
        raise _LoadFails("bad arguments")
    values = [*args, *[None] * (len(names) - len(args))]
    for name, value in keywords.items():
        if name not in names or names.index(name) < len(args):
            raise _LoadFails("bad keyword")
        values[names.index(name)] = value
    if any(value is None for value in values[:required]):
        raise _LoadFails("missing argument")
    return values


def _check_pow(self, node, function, args, keywords):
    base, exponent, modulus = _bind(args, keywords, ("base", "exp", "mod"), 2)
    if modulus is None:  # pow(a, b) and pow(a, b, None) are a ** b
        return self.binary(ast.Pow(), base, exponent, node)
    if _is_int(base) and _is_int(exponent) and _is_int(modulus):
        self.power(base, exponent, modulus, node)
    return _CALL  # three ints, checked; anything else is a TypeError


def _check_round(self, node, function, args, keywords):
    number, digits = _bind(args, keywords, ("number", "ndigits"), 1)
    if _is_int(digits) and digits < 0:
        # int.__round__(-k) computes 10 ** k whatever the number is
        if -digits > MAX_INT_BITS or -digits * _LOG2_10 > MAX_INT_BITS:
            raise CostlyConstant(node, f"`{_snippet(node)}` computes 10 ** {-digits:,}"[:200])
        self.charge(int(-digits * _LOG2_10 / 64 + 1) ** 2 * 4, node)
    self.charge(self.weight(number) + self.weight(digits), node)
    return _CALL


def _check_int(self, node, function, args, keywords):
    values = [*args, *keywords.values()]
    if values and isinstance(values[0], (str, bytes)):
        self.charge(len(values[0]) ** 2 // 64 + len(values[0]), node)  # parsing digits is quadratic
    else:
        self.charge(sum(self.weight(v) for v in values), node)
    return _CALL


def _check_divmod(self, node, function, args, keywords):
    if len(args) == 2 and not keywords and _is_int(args[0]) and _is_int(args[1]):
        self.charge(_words(args[0]) * _words(args[1]), node)
    return _CALL


def _check_aggregate(self, node, function, args, keywords):
    """tuple, sum, min, max, any, all: over one iterable (or min/max over several arguments)."""
    name = node.func.id
    key = keywords.get("key")
    if key is not None and not any(key is cheap for cheap in (abs, len, bool, float)):
        raise CostlyConstant(
            node,
            f"`{name}(..., key=...)` calls its key for every element at load time: only "
            "abs, len, bool and float may be keys there",
        )
    if name == "tuple" and (len(args) != 1 or keywords):
        return _CALL  # tuple() is empty; anything else is a TypeError
    if name in ("min", "max") and len(args) > 1:
        items = list(args)
    elif len(args) >= 1:
        items = self.items(args[0], node)
    else:
        return _CALL
    if name == "tuple":
        return self.admit(tuple(items), node)
    if name == "sum":  # sum adds left to right: check each partial sum, then let sum compute them
        total = args[1] if len(args) > 1 else keywords.get("start", 0)
        for item in items:
            total = self.binary(ast.Add(), total, item, node)
            if total is UNKNOWN:
                return UNKNOWN
        return self.attempt(lambda: function(items, *args[1:], **keywords), node)
    self.charge(sum(self.weight(item) for item in items) * 2, node)
    return self.attempt(lambda: function(*args, **keywords), node)


def _check_materialise(self, node, function, args, keywords):
    """enumerate, zip, reversed (only as comprehension iterables): their elements, as a tuple."""
    for argument in args:
        self.items(argument, node)
    return self.attempt(lambda: tuple(function(*args, **keywords)), node)


def _check_isinstance(self, node, function, args, keywords):
    self.charge(sum(self.weight(v) for v in args), node)
    return _CALL


def _check_factorial(self, node, function, args, keywords):
    if len(args) == 1 and not keywords and _is_int(args[0]) and args[0] > 1:
        n = args[0]
        bits = _log2_factorial(n) if n < 10**9 else math.inf
        if bits > MAX_INT_BITS:
            raise CostlyConstant(node, f"`{_snippet(node)}` would be an integer of {_bits_text(bits)} bits")
        self.charge((int(bits) // 64 + 1) ** 2 * 4, node)
    return _CALL


def _check_comb_perm(self, node, function, args, keywords):
    values = [*args, *keywords.values()]
    if not all(_is_int(v) for v in values) or not 1 <= len(values) <= 2:
        return _CALL  # TypeError, or a bad call
    n = values[0]
    k = values[1] if len(values) == 2 else n
    if n < 0 or k < 0 or k > n:
        return _CALL  # ValueError or 0
    comb = node.func.attr == "comb"
    m = min(k, n - k) if comb else k
    if n < 2**50:
        bits = (_log2_factorial(n) - _log2_factorial(n - k) - (_log2_factorial(k) if comb else 0)) * 1.01 + 64
    else:
        bits = m * n.bit_length()
    if bits > MAX_INT_BITS:
        raise CostlyConstant(node, f"`{_snippet(node)}` would be an integer of {_bits_text(bits)} bits")
    self.charge((int(bits) // 64 + 1) ** 2 * 4 + m, node)
    return _CALL


def _check_prod(self, node, function, args, keywords):
    if len(args) != 1:
        return _CALL
    total = keywords.get("start", 1)
    for item in self.items(args[0], node):
        total = self.binary(ast.Mult(), total, item, node)
        if total is UNKNOWN:
            return UNKNOWN
    return _CALL  # every partial product was within the bounds: math.prod computes the same ones


def _check_lcm(self, node, function, args, keywords):
    if all(_is_int(v) for v in args):
        bits = sum(v.bit_length() for v in args)
        if bits > MAX_INT_BITS:
            raise CostlyConstant(node, f"`{_snippet(node)}` may be an integer of up to {bits:,} bits")
        self.charge(sum(_words(v) for v in args) ** 2, node)
    return _CALL


def _check_iterable_math(self, node, function, args, keywords):
    """fsum, dist, hypot, sumprod, gcd and the like: every element goes through once (sumprod multiplies)."""
    flat = []
    for argument in args:
        flat.extend(self.items(argument, node) if isinstance(argument, (tuple, range)) else [argument])
    if node.func.attr == "sumprod" and len(args) == 2:
        for a, b in zip(self.items(args[0], node), self.items(args[1], node)):
            self.binary(ast.Mult(), a, b, node)
    self.charge(sum(self.weight(v) ** 2 if _is_int(v) else self.weight(v) for v in flat), node)
    return _CALL


_CALL_CHECKS: dict[str, Callable] = {
    "pow": _check_pow,
    "round": _check_round,
    "int": _check_int,
    "divmod": _check_divmod,
    **dict.fromkeys(_AGGREGATES, _check_aggregate),
    **dict.fromkeys(("enumerate", "zip", "reversed"), _check_materialise),
    "isinstance": _check_isinstance,
    "math.factorial": _check_factorial,
    "math.comb": _check_comb_perm,
    "math.perm": _check_comb_perm,
    "math.prod": _check_prod,
    "math.lcm": _check_lcm,
    **dict.fromkeys(
        ("math.fsum", "math.dist", "math.hypot", "math.sumprod", "math.gcd", "math.isqrt"), _check_iterable_math
    ),
}
