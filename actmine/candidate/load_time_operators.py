"""How the load-time evaluator checks an operator's cost before Python performs it.

`OperatorChecks` is the part of `actmine.candidate.load_time.LoadTimeEvaluator` that handles
binary operators (`binary`, with `int_binary` and `power` for integers) and comparisons
(`compare`): each one's cost is checked from its operands' sizes (bit lengths, element counts)
before the operation runs, and the operation is then performed with Python's own operator. It is a
mixin: it calls the evaluator's `evaluate`, `charge`, `weight` and `attempt`, which
`LoadTimeEvaluator` defines. The operator tables (`_BINARY`, `_SYMBOLS`, `_UNARY`, `_COMPARE`) live
here too.
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Any

from .load_time_bounds import (
    MAX_INT_BITS,
    MAX_SIZE,
    MAX_STEPS,
    UNKNOWN,
    CostlyConstant,
    _bits_text,
    _is_int,
    _percent_problem,
    _snippet,
    _words,
)


class OperatorChecks:
    """Binary operators and comparisons of the load-time evaluator, each checked before it runs."""

    def binary(self, op: ast.operator, left: Any, right: Any, node: ast.AST) -> Any:
        symbol = _SYMBOLS.get(type(op), "?")
        sensitive = isinstance(op, (ast.Mult, ast.Pow, ast.LShift, ast.Mod, ast.MatMult))
        if left is UNKNOWN or right is UNKNOWN:
            if sensitive:
                raise CostlyConstant(node, f"an operand of `{symbol}` has a value the policy cannot compute")
            return UNKNOWN
        function = _BINARY[type(op)]
        both_int = _is_int(left) and _is_int(right)
        if both_int:
            self.int_binary(op, left, right, node)
        elif isinstance(op, ast.Mult) and (_is_int(left) or _is_int(right)):
            sequence, count = (right, left) if _is_int(left) else (left, right)
            if isinstance(sequence, (str, bytes, tuple)):
                size = (self.weight(sequence) - 1) * max(int(count), 0)  # elements, through nesting
                if size > MAX_SIZE:
                    raise CostlyConstant(node, f"`{_snippet(node)}` repeats a sequence into about {size:,} elements")
                self.charge(size, node)
        elif isinstance(op, ast.Add) and isinstance(left, (str, bytes, tuple)) and type(left) is type(right):
            size = self.weight(left) + self.weight(right)
            if size > MAX_SIZE:
                raise CostlyConstant(node, f"`{_snippet(node)}` concatenates into {size:,} elements")
            self.charge(size, node)
        elif isinstance(op, ast.Mod) and isinstance(left, (str, bytes)):
            problem = _percent_problem(left)
            if problem:
                raise CostlyConstant(node, problem)
            self.charge(self.weight(left) + 8 * self.weight(right), node)
        elif isinstance(op, ast.Pow) and (_is_int(left) or _is_int(right)):
            self.charge(_words(left) if _is_int(left) else 1, node)  # int ** float, float ** int: floats
        return self.attempt(lambda: function(left, right), node)

    def int_binary(self, op: ast.operator, left: int, right: int, node: ast.AST):
        """Check an operation on two ints from their sizes, before it is computed."""
        a, b = _words(left), _words(right)
        if isinstance(op, ast.Mult):
            if left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
                raise CostlyConstant(
                    node,
                    f"`{_snippet(node)}` would be an integer of about {left.bit_length() + right.bit_length():,} bits",
                )
            self.charge(a * b, node)
        elif isinstance(op, ast.Pow):
            self.power(left, right, None, node)
        elif isinstance(op, ast.LShift):
            if left and right > 0 and left.bit_length() + right > MAX_INT_BITS:
                raise CostlyConstant(
                    node, f"`{_snippet(node)}` would be an integer of about {left.bit_length() + right:,} bits"
                )
            self.charge(a + max(right, 0) // 64, node)
        elif isinstance(op, (ast.FloorDiv, ast.Mod)):
            self.charge(a * b, node)
        else:
            self.charge(a + b, node)

    def power(self, base: int, exponent: int, modulus: int | None, node: ast.AST):
        """Check `base ** exponent` (`% modulus`) on ints before it is computed."""
        if modulus is not None:
            if modulus == 0:
                return  # ValueError
            steps = (exponent.bit_length() + 1) * 2 * _words(modulus) ** 2
            self.charge(steps, node)
            return
        if exponent < 0 or abs(base) <= 1:
            self.charge(_words(base) + _words(exponent), node)  # a float, or 0, 1, -1
            return
        bits = exponent * math.log2(abs(base)) if exponent.bit_length() < 64 else math.inf
        if bits > MAX_INT_BITS:
            raise CostlyConstant(node, f"`{_snippet(node)}` would be an integer of {_bits_text(bits)} bits")
        self.charge((exponent.bit_length() + 1) * (int(bits) // 64 + 1) ** 2, node)

    def compare(self, node: ast.Compare, scopes) -> Any:
        left = self.evaluate(node.left, scopes)
        for op, right_node in zip(node.ops, node.comparators):
            right = self.evaluate(right_node, scopes)
            if left is UNKNOWN or right is UNKNOWN:
                return UNKNOWN
            if isinstance(op, (ast.In, ast.NotIn)):
                if isinstance(right, range) and not _is_int(left):
                    try:
                        length = len(right)
                    except OverflowError:
                        length = MAX_STEPS + 1
                    self.charge(length * 4, node)  # a non-int is looked for element by element
                elif isinstance(right, (str, bytes)):
                    self.charge(self.weight(left) * self.weight(right), node)
                elif isinstance(right, tuple):
                    self.charge(self.weight(right) + self.weight(left) * len(right), node)
            else:
                self.charge(self.weight(left) + self.weight(right), node)
            result = self.attempt(lambda: _COMPARE[type(op)](left, right), node)
            if result is UNKNOWN or not result:
                return result
            left = right
        return result


_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
    ast.BitOr: operator.or_,
    ast.BitXor: operator.xor,
    ast.BitAnd: operator.and_,
    ast.MatMult: operator.matmul,
}
_SYMBOLS = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.BitAnd: "&",
    ast.MatMult: "@",
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert, ast.Not: operator.not_}
_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
