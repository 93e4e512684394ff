"""Candidate programs as formulas: source → sympy (LaTeX) and source → a safe torch callable.

A candidate's source is untrusted text, so nothing here ever `exec`s or `eval`s it. The source is
parsed into the language's checked straight-line representation (`actmine.language.program`:
module-level constants, helper functions and `activation_function`, each a sequence of assignments
and one `return`) and run by the language's one interpreter (`actmine.language.interpreter`) with
its sympy back-end (formulas) or its torch back-end (curves). Which functions, keywords and
constants exist comes from the operation table (`actmine.language.ops`). Anything else makes the
functions below return None.

- `sympy_expression(source)`: the sympy expression (unsimplified), or None. Built in-process, and
  bounded: the sympy back-end refuses huge exponents (every power spelling), exponential towers,
  trees above a size limit and constants that overflow, before sympy computes anything.
- `simplified_formulas(sources)` / `simplified_formula(source)`: LaTeX of the simplified
  expression, or None. `sympy.simplify` can run for minutes and cannot be interrupted in a thread,
  so it runs in a short-lived child process (`actmine.report.simplify`), one child per batch,
  with a hard wall-clock limit per formula: on a timeout the child is killed, that formula is
  None ("formula not derived") and the rest go on. Fast path: an expression with at most one
  operation (`Max(0, x)`, `sin(x)`, `π·x`) has nothing to simplify, so it is printed in-process
  without calling `simplify` (printing is linear in its size). Answers are cached by source, so a
  report that asks for a batch first and then one by one pays for one child.
- `safe_function(source)`: a `Tensor → Tensor` callable that runs the program with the torch
  back-end (differentiable, for plots), or None. Only the table's elementwise functions can be
  reached and the walk is bounded, so it cannot hang or touch anything else.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Sequence

import sympy as sp
import torch

from actmine.language.interpreter import TORCH, EvaluationError, Evaluable, Unsupported, run, sympy_of
from actmine.language.program import ProgramError, parse_program

from .simplify import TIMEOUT_S, simplify_to_latex

__all__ = ["simplified_formula", "simplified_formulas", "sympy_expression", "safe_function", "FormulaError"]

FAST_PATH_OPS = 1  # sympy.count_ops at most this: printed without simplify, in-process
_CACHE_SIZE = 256
_cache: OrderedDict[str, str | None] = OrderedDict()


class FormulaError(ValueError):
    """The source is outside the subset this module understands."""


def sympy_expression(source: str) -> sp.Expr | None:
    """The candidate's function as a sympy expression in the real symbol `x`, or None."""
    try:
        return sympy_of(parse_program(source))
    except (ProgramError, Unsupported, EvaluationError, RecursionError, MemoryError):
        return None
    except Exception:  # sympy's own errors on odd combinations: no formula
        return None


def _remember(source: str, latex: str | None, results: dict[str, str | None]) -> None:
    results[source] = latex
    _cache[source] = latex
    _cache.move_to_end(source)
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)


def simplified_formulas(sources: Sequence[str], timeout_s: float = TIMEOUT_S) -> list[str | None]:
    """LaTeX of the simplified form of each program's `activation_function` (None where the source is
    outside the subset, or simplifying it failed or took longer than `timeout_s`). The sources are
    only parsed, never executed; all the simplifications share one child process."""
    pending: dict[str, str] = {}  # source -> srepr, for the child
    results: dict[str, str | None] = {}
    for source in dict.fromkeys(sources):
        if source in _cache:
            results[source] = _cache[source]
            continue
        expr = sympy_expression(source)
        if expr is None:
            _remember(source, None, results)
            continue
        try:
            if sp.count_ops(expr) <= FAST_PATH_OPS:
                _remember(source, sp.latex(expr), results)
                continue
            pending[source] = sp.srepr(expr)
        except Exception:
            _remember(source, None, results)
    if pending:
        for source, latex in zip(pending, simplify_to_latex(list(pending.values()), timeout_s=timeout_s)):
            _remember(source, latex, results)
    return [results[source] for source in sources]


def simplified_formula(source: str, timeout_s: float = TIMEOUT_S) -> str | None:
    """`simplified_formulas([source])[0]`: the LaTeX of one program's simplified formula, or None."""
    return simplified_formulas([source], timeout_s)[0]


def safe_function(source: str) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """A torch callable that interprets the candidate's program (never `exec`), or None when the
    source is outside the supported subset. Differentiable with autograd."""
    try:
        program = parse_program(source, Evaluable)
        run(program, torch.linspace(-1.0, 1.0, 3), TORCH)  # in the table, and runs: checked once, cheaply
    except (ProgramError, Unsupported, EvaluationError):
        return None

    def function(x: torch.Tensor) -> torch.Tensor:
        result = run(program, x, TORCH)
        if not isinstance(result, torch.Tensor) or result.shape != x.shape:
            result = torch.as_tensor(result, dtype=x.dtype).expand_as(x)
        return result

    return function
