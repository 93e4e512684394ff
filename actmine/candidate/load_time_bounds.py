"""The bounds load-time code is held to, and what the load-time evaluator's checks share.

`actmine.candidate.load_time` proves a candidate's load-time code cheap (its docstring states the
rule). This module holds the pieces every part of that proof uses: the bounds themselves
(`MAX_INT_BITS`, `MAX_SIZE`, `MAX_FORMAT_NUMBER`, `MAX_STEPS`, `NODE_STEPS`), the two ways an
evaluation stops (`CostlyConstant`: refused; `_LoadFails`: the program would raise there, cheaply),
the values the evaluator cannot compute (`UNKNOWN`, an opaque `_Function`), and the small size
arithmetic and format-spec checks the operator and call checks apply. It imports nothing of the
evaluator, so the evaluator's modules (`load_time`, `load_time_operators`, `load_time_calls`) can
all import it.
"""

from __future__ import annotations

import ast
import math
import re
from typing import Any

#: The largest integer a load-time expression may make (bits). Python's own literals stay below it
#: (4,300 decimal digits at most).
MAX_INT_BITS = 16_384
#: The most elements a string, bytes or tuple made at load time may hold (tuples count through nesting).
MAX_SIZE = 100_000
#: The largest width or precision a format spec or `%`-format may ask for.
MAX_FORMAT_NUMBER = 1_000
#: The most (estimated) machine-word operations all of a program's load-time code may take.
MAX_STEPS = 5_000_000
#: What one evaluated node or one comprehension iteration costs (Python's interpreter overhead).
NODE_STEPS = 50

#: `%`-format directives: flags, width, precision.
_PERCENT_DIRECTIVE = re.compile(rb"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)", re.S)


class CostlyConstant(Exception):
    """A load-time expression the evaluator cannot prove cheap; `node` is where, the text says why."""

    def __init__(self, node: ast.AST, reason: str):
        super().__init__(reason)
        self.node = node
        self.reason = reason


class _LoadFails(Exception):
    """An operation of the program raises: Python stops loading the program there (it has no `try` at
    the top level), cheaply."""


class _Unknown:
    """A value the evaluator does not know (an attribute of a function or a type, a name bound by a
    statement that raised): it may not meet a size-sensitive operation."""

    def __repr__(self):
        return "<unknown>"


UNKNOWN = _Unknown()


class _Function:
    """A function the program defines (a top-level `def`, a lambda): opaque, never called at load time."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self):
        return f"<function {self.name}>"


def _unpack(value: Any, count: int) -> list:
    """What `a, b, ... = value` binds, reading at most count + 1 elements, as Python does."""
    iterator = iter(value)
    parts = [next(iterator) for _ in range(count)]
    for _extra in iterator:
        raise ValueError(f"too many values to unpack (expected {count})")
    return parts


def _statement_targets(statement: ast.stmt) -> list[str]:
    if isinstance(statement, ast.FunctionDef):
        return [statement.name]
    targets = (
        statement.targets
        if isinstance(statement, ast.Assign)
        else [statement.target]
        if isinstance(statement, (ast.AnnAssign, ast.AugAssign))
        else []
    )
    return [node.id for target in targets for node in ast.walk(target) if isinstance(node, ast.Name)]


def _bits_text(bits: int | float) -> str:
    """'about 1,228,093,894' for a size in bits, however large."""
    if bits == math.inf or bits > 10**15:
        return f"far more than {MAX_INT_BITS:,}"
    return f"about {int(bits):,}"


def _words(value: int) -> int:
    return value.bit_length() // 64 + 1


def _is_int(value: Any) -> bool:
    return type(value) in (int, bool)


def _snippet(node: ast.AST, limit: int = 60) -> str:
    """`node` as source text, cut to `limit` characters, for an error message (the policy's too)."""
    try:
        text = ast.unparse(node)
    except (RecursionError, ValueError, TypeError, AttributeError):
        return type(node).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _format_numbers_problem(spec: str | bytes) -> str | None:
    """Why a format spec or `%`-format string asks for too much, or None."""
    if isinstance(spec, str):
        spec = spec.encode("utf-8", "surrogatepass")
    for digits in re.findall(rb"\d+", spec):
        if len(digits) > 6 or int(digits) > MAX_FORMAT_NUMBER:
            return (
                f"the format asks for a width or precision of {digits.decode()[:12]}, over the "
                f"{MAX_FORMAT_NUMBER:,} a load-time format may"
            )
    return None


def _percent_problem(template: str | bytes) -> str | None:
    data = template.encode("utf-8", "surrogatepass") if isinstance(template, str) else template
    for match in _PERCENT_DIRECTIVE.finditer(data):
        width, precision = match.group(1), match.group(2)
        if b"*" in (width, precision):
            return "`%`-formatting with a `*` width or precision takes it from the operands; write it out"
        for number in (width, precision):
            if number is not None and (len(number) > 6 or int(number) > MAX_FORMAT_NUMBER):
                return (
                    f"the `%`-format asks for a width or precision of {number.decode()[:12]}, over the "
                    f"{MAX_FORMAT_NUMBER:,} a load-time format may"
                )
    return None


def _log2_factorial(n: int) -> float:
    return math.lgamma(n + 1) / math.log(2)
