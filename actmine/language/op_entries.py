"""What one entry of the language table is, and how the table writes one.

`Op` (an operation a candidate may name) and `Constant` (a named number) are the two kinds of
entry of `actmine.language.ops.OPS` / `CONSTANTS` (the fields are described in the `ops` module
docstring); `op(...)` builds an `Op` with the table's defaults, so that each line of the table
(`op_table.py`) states only what differs. `resolve` turns a dotted spelling into the object it
names, from the pre-imported roots (`ROOTS`). Kept apart from the table so that the table reads as
data and this module as the rules it is written with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import torch
import torch.nn.functional as F

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
    """ "torch.tanh F.tanh" -> ("torch.tanh", "F.tanh", "torch.nn.functional.tanh")."""
    out: list[str] = []
    for spelling in spellings.split():
        if spelling in _OPTIONAL_MATH and not _exists(spelling):
            continue
        out.append(spelling)
        if spelling.startswith("F."):
            out.append("torch.nn.functional." + spelling[2:])
    return tuple(dict.fromkeys(out))


def op(
    name: str,
    spellings: str = "",
    sympy: SympyRule | None = None,
    *,
    weight: int = 1,
    aten: Iterable[str] | object = _AUTO,
    keywords: str = "",
    kind: str = "elementwise",
    arity: int | None = 1,
    methods: Iterable[str] | object = _AUTO,
    kernels: int = 1,
    common_keywords: bool = True,
) -> Op:
    """An `Op` with the table's defaults: `aten` is `(name,)` for a one-kernel op (empty for a
    composite, kernels != 1, or for kinds without kernels); `methods` are the `torch.<name>`
    spellings that are also tensor methods (for the kinds in `_METHOD_KINDS`); `torch` is what the
    first spelling names; `keywords` gain `input` for tensor functions."""
    expanded = _expand(spellings)
    if aten is _AUTO:
        aten = (name,) if kernels == 1 and kind in ("elementwise", "comparison", "reduction") else ()
    if methods is _AUTO:
        methods = [
            s.split(".")[1]
            for s in expanded
            if s.count(".") == 1
            and s.startswith("torch.")
            and kind in _METHOD_KINDS
            and callable(getattr(torch.Tensor, s.split(".")[1], None))
        ]
    torch_object = resolve(expanded[0]) if expanded else None
    words = frozenset(keywords.split())
    if common_keywords and kind not in ("dtype", "utility", "scalar", "internal"):
        words |= _COMMON_KEYWORDS
    return Op(
        name=name,
        spellings=expanded,
        methods=tuple(dict.fromkeys(methods)),
        torch=torch_object,
        sympy=sympy,
        weight=weight,
        aten=tuple(aten),
        keywords=words,
        kind=kind,
        arity=arity,
        kernels=kernels,
    )
