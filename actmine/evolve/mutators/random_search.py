"""The random mutator: fresh random expressions in x, the best-of-N baseline.

`RandomMutator(max_depth=4, max_nodes=30)` ignores the parent and the inspirations and draws a new
expression from the same operator set as the symbolic mutator (`expressions.UNARIES` and the
gaussian `exp(-e²)`, `+`, `−`, `×`, numeric constants, x, and the guarded quotient
`e / (1 + |e'|)`, never a division by something that can vanish). The grammar, with `d` the
levels left (each operator application is one level; a scale `c·e` or offset `e + c` is part of
its operator):

    expr(d) = x | c·x                                  (always when d = 0)
            | u(expr(d−1)) | u(c·expr(d−1))            unary, 45%
            | expr(d−1) ∘ expr(d−1), ∘ ∈ {+, −, ×}     binary, 40%
            | expr(d−1) + c                            offset, 8%
            | expr(d−1) / (1 + |expr(d−1)|)            guarded quotient, 7%

At the top level an operator is always applied; below it a leaf is drawn with probability 0.3.
Constants are log-uniform in [0.1, 3] with a random sign, 2 significant digits.

With `screen=True` (the default) a draw is rejection-sampled: redrawn (up to `max_attempts`
times) while it has more than `max_nodes` nodes or fails `expressions.screen` -- non-finite values
or gradients on the probe points, a constant or affine function, over the probe budget -- so the
baseline searches the space of valid, non-trivial functions, as the symbolic mutator does. The
rationale is "random expression (depth d, n nodes)", d the levels used and n
`expressions.count_nodes`.
"""

from __future__ import annotations

import ast
import random
from typing import Sequence

from actmine.candidate.probes import ProbeBudget
from actmine.candidate.source import CandidateError, check_source

from .base import Mutator, Parent, Proposal, register_mutator
from .expressions import (
    GAUSSIAN,
    PARAM,
    UNARIES,
    Evaluable,
    Unsupported,
    add,
    call,
    cleanup,
    count_nodes,
    make_const,
    mul,
    name,
    nice_number,
    render_program,
    round_constants,
    screen,
)

LEAF_PROBABILITY = 0.3


@register_mutator
class RandomMutator(Mutator):
    """Random expressions of bounded size (see the module docstring).

    max_depth: the most operator levels (>= 1).
    max_nodes: the most expression nodes (`expressions.count_nodes`).
    screen: rejection-sample draws that would fail the probes or are constant or affine.
    max_attempts: draws per proposal before giving up on the screen (the last draw within
        `max_nodes` is then proposed as it is).
    budget: the probe budget the screen checks against (default `ProbeBudget()`).
    """

    name = "random"
    uses_inspirations = False  # a fresh expression each time: a parent or inspirations play no part

    def __init__(
        self,
        max_depth: int = 4,
        max_nodes: int = 30,
        screen: bool = True,
        max_attempts: int = 64,
        budget: ProbeBudget | dict | None = None,
    ):
        for key, value, low in (
            ("max_depth", max_depth, 1),
            ("max_nodes", max_nodes, 3),
            ("max_attempts", max_attempts, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{key} must be an integer >= {low}, got {value!r}")
        self.max_depth = max_depth
        self.max_nodes = max_nodes
        self.screen = bool(screen)
        self.max_attempts = max_attempts
        self.budget = ProbeBudget.from_dict(budget) if isinstance(budget, dict) else (budget or ProbeBudget())

    def propose(self, parent: Parent | None, inspirations: Sequence[Parent], rng: random.Random) -> Proposal:
        fallback: tuple[str, int, int] | None = None
        for _ in range(self.max_attempts):
            expr, depth = self._expression(self.max_depth, rng, top=True)
            expr = round_constants(cleanup(expr))
            nodes = count_nodes(expr)
            if nodes > self.max_nodes:
                continue
            source = render_program(expr)
            try:
                compile(check_source(source), "<proposal>", "exec")
            except (CandidateError, SyntaxError, ValueError, RecursionError):
                continue
            fallback = (source, depth, nodes)
            if self.screen:
                try:
                    reason = screen(Evaluable(PARAM, (), (), expr), budget=self.budget, require_nonlinear=True)
                except Unsupported:
                    reason = None
                if reason is not None:
                    continue
            break
        if fallback is None:  # nothing small enough was drawn: a single unary of x always is
            unary = rng.choice(UNARIES)
            expr = unary.apply(name())
            fallback = (render_program(expr), 1, count_nodes(expr))
        source, depth, nodes = fallback
        return Proposal(source, f"random expression (depth {depth}, {nodes} nodes)", self.name)

    # -- the grammar -----------------------------------------------------------------------------

    def _constant(self, rng: random.Random) -> float:
        c = nice_number(rng, 0.1, 3.0, (0.5, 1, 2), p_round=0.2)
        return -c if rng.random() < 0.3 else c

    def _leaf(self, rng: random.Random) -> ast.expr:
        return name() if rng.random() < 0.6 else mul(make_const(self._constant(rng)), name())

    def _expression(self, levels: int, rng: random.Random, top: bool = False) -> tuple[ast.expr, int]:
        """A random expression using at most `levels` operator levels, and the levels it used."""
        if levels == 0 or (not top and rng.random() < LEAF_PROBABILITY):
            return self._leaf(rng), 0
        r = rng.random()
        if r < 0.45:
            unary = rng.choice(UNARIES + (GAUSSIAN,))
            inner, depth = self._expression(levels - 1, rng)
            if rng.random() < 0.35:
                inner = mul(make_const(self._constant(rng)), inner)
            return unary.apply(inner), depth + 1
        if r < 0.85:
            op = rng.choice((ast.Add(), ast.Sub(), ast.Mult()))
            left, d1 = self._expression(levels - 1, rng)
            right, d2 = self._expression(levels - 1, rng)
            return ast.BinOp(left, op, right), max(d1, d2) + 1
        if r < 0.93:
            inner, depth = self._expression(levels - 1, rng)
            return add(inner, make_const(self._constant(rng))), depth + 1
        numerator, d1 = self._expression(levels - 1, rng)
        denominator, d2 = self._expression(levels - 1, rng)
        guarded = ast.BinOp(numerator, ast.Div(), add(ast.Constant(1), call("torch.abs", denominator)))
        return guarded, max(d1, d2) + 1
