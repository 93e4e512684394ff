"""The symbolic mutator: small, typed edits of the parent's return expression.

`SymbolicMutator(weights=None, max_nodes=60)` parses the parent with `ast` (after the static
policy), finds the expression that `activation_function` returns and applies one edit operator,
drawn by weight (all randomness from the `random.Random` given to `propose`, so a seed and the same
inputs give the same proposal):

- `swap_unary`: replace a unary call (`torch.relu`, `F.gelu`, `torch.tanh`, ...) by another
  function of the operator set (`expressions.UNARIES`);
- `wrap`: wrap a subexpression in a unary function, `e -> torch.tanh(e)`;
- `perturb_term`: add a bounded term `a·g(b·x)`, g periodic (sin, cos), gaussian
  (`exp(-c·x²)`, c in [0.1, 3]), rational (`b·x/(1 + (b·x)²)`), sinc or tanh, `a` in
  [0.05, 0.5] (negative one time in four), `b` in [0.5, 3]; so |f − parent| <= |a|;
- `gate`: multiply the expression (or a part) by `sigmoid(b·x)`, `0.5·(1 + tanh(b·x))` or
  `1 + a·g(b·x)`;
- `constants`: perturb numeric constants (log-normal noise, sometimes a sign flip or a round
  number) keeping the structure, or insert a scale constant where there is none;
- `crossover`: put a subexpression of an inspiration in place of one of the parent's, or combine
  whole expressions, `(p + q) / 2` or `p + a·q`;
- `simplify`: remove a term or factor, or unwrap a call.

Programs with more than a final `return <expr>` (helpers, assignments) keep everything else; a
program whose function has no single final return is wrapped: its function is renamed
`base_activation` and called from a new `activation_function`, whose expression is then edited
(`base_activation(x)` is a black box). After an edit the expression is cleaned (`x*1`, `+0`,
constant arithmetic), its constants rounded to 4 significant digits and the source rendered with
`ast.unparse`. An edit is retried (another operator) when its source fails the static policy, is
the parent's own, has more than `max_nodes` nodes (and is not smaller than the parent), or -- for
programs the `expressions.evaluate` interpreter models -- fails the in-process screen (non-finite
values or gradients on the probe points, a constant function, over the probe budget, numerically
the parent). After `MAX_ATTEMPTS` the mutator falls back to a `constants` edit, so every proposal
passes `check_source` and compiles. With `parent=None` it proposes ReLU ("seed").

Reading the parent as an editable program (`_Program`) and inlining an inspiration's expression
for `crossover` are in `expression_program`; this module holds the operators and the retry loop.
"""

from __future__ import annotations

import ast
import math
import random
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from actmine.candidate.probes import ProbeBudget
from actmine.candidate.source import CandidateError, check_source

from .base import Mutator, Parent, Proposal, register_mutator
from .expression_program import (  # noqa: F401  (BASE_NAME, MAX_INLINED_NODES: re-exported)
    BASE_NAME,
    MAX_INLINED_NODES,
    _inspiration_expression,
    _Program,
)
from .expressions import (
    clone,
    GATES,
    GAUSSIAN,
    RECOGNIZED_UNARY_SPELLINGS,
    RELU_SOURCE,
    UNARIES,
    UNARY_BY_SPELLING,
    Unsupported,
    add,
    build_gate,
    call,
    const_value,
    constant_sites,
    count_nodes,
    depends_on,
    make_const,
    mul,
    nice_number,
    replace_at,
    round_constants,
    round_sig,
    cleanup,
    sample_amplitude,
    sample_perturbation,
    screen,
    snippet,
    spelling_of,
    subexpressions,
    values,
)

OPERATORS: tuple[str, ...] = ("swap_unary", "wrap", "perturb_term", "gate", "constants", "crossover", "simplify")
DEFAULT_WEIGHTS: dict[str, float] = {
    "swap_unary": 1.0,
    "wrap": 0.5,
    "perturb_term": 1.2,
    "gate": 0.8,
    "constants": 1.5,
    "crossover": 0.7,
    "simplify": 0.6,
}
MAX_ATTEMPTS = 24  # edits tried before falling back to `constants`
FALLBACK_ATTEMPTS = 12
#: Above this fraction of `max_nodes` (or of the probe budget) the mutator prefers `simplify`.
CROWDED = 0.75
_GROWING = ("wrap", "perturb_term", "gate", "crossover")

# The key of each spelling that names the same function (F.tanh is torch.tanh).
_SAME_FUNCTION = {
    "F.tanh": "tanh",
    "F.sigmoid": "sigmoid",
    "torch.special.expit": "sigmoid",
    "torch.special.erf": "erf",
    "torch.special.sinc": "sinc",
    "torch.arctan": "atan",
}


def _function_key(spelling: str) -> str:
    if spelling in UNARY_BY_SPELLING:
        return UNARY_BY_SPELLING[spelling].key
    if spelling in _SAME_FUNCTION:
        return _SAME_FUNCTION[spelling]
    return spelling.rsplit(".", 1)[-1]


# ------------------------------------------------------------------------------------------------
# The operators: each returns (new expression, rationale) or None when it does not apply
# ------------------------------------------------------------------------------------------------

Edit = tuple[ast.expr, str] | None


@register_mutator
class SymbolicMutator(Mutator):
    """Typed edits of the parent's return expression (see the module docstring).

    weights: operator -> relative weight (`OPERATORS`; missing operators get 0 when a dict is
        given, so `{"perturb_term": 1.0}` forces one operator); None is `DEFAULT_WEIGHTS`.
    max_nodes: the most expression nodes (`expressions.count_nodes`) a proposal may have, unless it
        is smaller than its parent; above 3/4 of it the mutator prefers `simplify`.
    screen: check edits of interpretable programs in-process (`expressions.screen`) and retry the
        ones that would fail the probes.
    budget: the probe budget the screen checks against (default `ProbeBudget()`).
    """

    name = "symbolic"

    def __init__(
        self,
        weights: dict[str, float] | None = None,
        max_nodes: int = 60,
        screen: bool = True,
        budget: ProbeBudget | dict | None = None,
    ):
        if weights is None:
            weights = dict(DEFAULT_WEIGHTS)
        unknown = sorted(set(weights) - set(OPERATORS))
        if unknown:
            raise ValueError(f"unknown symbolic operator(s) {', '.join(unknown)}; known: {', '.join(OPERATORS)}")
        for key, value in weights.items():
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not value >= 0
                or not math.isfinite(value)
            ):
                raise ValueError(f"weight of {key} must be a finite number >= 0, got {value!r}")
        if not any(weights.values()):
            raise ValueError("at least one symbolic operator needs a positive weight")
        if isinstance(max_nodes, bool) or not isinstance(max_nodes, int) or max_nodes < 3:
            raise ValueError(f"max_nodes must be an integer >= 3, got {max_nodes!r}")
        self.weights = {op: float(weights.get(op, 0.0)) for op in OPERATORS}
        self.max_nodes = max_nodes
        self.screen = bool(screen)
        self.budget = ProbeBudget.from_dict(budget) if isinstance(budget, dict) else (budget or ProbeBudget())
        self._stats: dict[str, tuple[torch.Tensor | None, bool]] = {}  # parent source -> (values, heavy)
        self._checked: set[str] = set()  # proposals known to pass the policy (often the next parents)
        self._operators: dict[str, Callable[..., Edit]] = {
            "swap_unary": self._swap_unary,
            "wrap": self._wrap,
            "perturb_term": self._perturb_term,
            "gate": self._gate,
            "constants": self._constants,
            "crossover": self._crossover,
            "simplify": self._simplify,
        }

    # -- proposing -------------------------------------------------------------------------------

    def propose(self, parent: Parent | None, inspirations: Sequence[Parent], rng: random.Random) -> Proposal:
        if parent is None:
            return Proposal(RELU_SOURCE, "seed", self.name)
        prefix = ""
        try:
            program = _Program.parse(parent.source, checked=parent.source in self._checked)
        except (CandidateError, ValueError, RecursionError) as exc:
            code = getattr(exc, "code", type(exc).__name__)
            program = _Program.parse(RELU_SOURCE)
            prefix = f"parent unusable ({code}), edited ReLU instead: "
        forbidden = {program.render(program.expr), program.original}

        reference, heavy = self._parent_stats(program) if self.screen else (None, False)
        crowded = heavy or count_nodes(program.expr) > CROWDED * self.max_nodes
        weights = dict(self.weights)
        if crowded and weights["simplify"] > 0:
            weights["simplify"] *= 6
            for op in _GROWING:
                weights[op] *= 0.3
        operators = [op for op in OPERATORS if weights[op] > 0]
        context = _Context(program, list(inspirations), reference, forbidden, count_nodes(program.expr), crowded)

        for _ in range(MAX_ATTEMPTS):
            op = rng.choices(operators, weights=[weights[o] for o in operators])[0]
            source = self._attempt(op, context, rng)
            if source is not None:
                return Proposal(source[0], prefix + source[1], self.name)
        for _ in range(FALLBACK_ATTEMPTS):
            source = self._attempt("constants", context, rng)
            if source is not None:
                return Proposal(source[0], prefix + source[1], self.name)
        for _ in range(FALLBACK_ATTEMPTS):  # unscreened: the parent itself may fail the screen
            source = self._attempt("constants", context, rng, screened=False)
            if source is not None:
                return Proposal(source[0], prefix + source[1], self.name)
        # Last resort: scale the output (valid whenever the parent is).
        c = 1.1 if rng.random() < 0.5 else 0.9
        expr = mul(make_const(c), program.expr)
        return Proposal(program.render(expr), prefix + f"scale the output by {c}", self.name)

    def _parent_stats(self, program: _Program) -> tuple[torch.Tensor | None, bool]:
        """The parent's values on the screen points (None if it cannot be interpreted) and whether its
        cost is above `CROWDED` of the budget, judged as for an accepted child (so the cache of
        children's results gives the same answers); cached by source."""
        key = program.original
        if key not in self._stats:
            reference, heavy = None, False
            if program.evaluable is not None:
                report: dict = {}
                try:
                    reason = screen(program.evaluable, budget=self.budget, report=report)
                except Unsupported:
                    reason = "unsupported"
                if reason is None:
                    reference = report["values"]
                    heavy = report["exact"] and self._is_heavy(report["flops"], report["saved"])
                else:  # a parent that fails the screen: still compare children with it if possible
                    reference = values(program.evaluable)
                    heavy = reason.startswith("over the")
            self._remember(key, reference, heavy)
        return self._stats[key]

    def _remember(self, source: str, reference: torch.Tensor | None, heavy: bool) -> None:
        if len(self._stats) >= 256:
            self._stats.clear()
        self._stats[source] = (reference, heavy)

    def _is_heavy(self, flops: float, saved: float) -> bool:
        return (
            flops > CROWDED * self.budget.max_flops_per_element
            or saved > CROWDED * self.budget.max_saved_bytes_per_element
        )

    def _attempt(self, op: str, context: _Context, rng: random.Random, screened: bool = True) -> tuple[str, str] | None:
        edit = self._operators[op](context, rng)
        if edit is None:
            return None
        expr, rationale = edit
        expr = round_constants(cleanup(expr))
        nodes = count_nodes(expr)
        if nodes > self.max_nodes and nodes >= context.nodes:
            return None
        program = context.program
        source = program.render(expr)
        if source in context.forbidden:
            return None
        try:
            compile(check_source(source), "<proposal>", "exec")
        except (CandidateError, SyntaxError, ValueError, RecursionError):
            return None
        if len(self._checked) >= 1024:
            self._checked.clear()
        self._checked.add(source)
        if screened and self.screen:
            function = program.evaluable_with(expr)
            if function is not None:
                report: dict = {}
                try:
                    if screen(function, context.reference, self.budget, report=report) is not None:
                        return None
                except Unsupported:
                    pass
                if report:  # the proposal is often the next parent: keep what the screen learnt
                    self._remember(
                        source, report["values"], report["exact"] and self._is_heavy(report["flops"], report["saved"])
                    )
        return source, " ".join(rationale.split())

    # -- operators -------------------------------------------------------------------------------

    def _swap_unary(self, context: _Context, rng: random.Random) -> Edit:
        program, expr = context.program, context.program.expr
        sites = []
        for path, node in subexpressions(expr, program.tensor_names):
            if (
                isinstance(node, ast.Call)
                and spelling_of(node.func) in RECOGNIZED_UNARY_SPELLINGS
                and node.args
                and depends_on(node.args[0], program.tensor_names)
                and all(const_value(a) is not None for a in node.args[1:])
            ):
                sites.append((path, node))
        if not sites:
            return None
        path, node = rng.choice(sites)
        old = spelling_of(node.func)
        choices = [u for u in UNARIES if u.key != _function_key(old)]
        new = rng.choice(choices)
        replacement = call(new.spelling, node.args[0])
        return replace_at(expr, path, replacement), f"swap {old} → {new.spelling} in `{snippet(node, 50)}`"

    def _wrap(self, context: _Context, rng: random.Random) -> Edit:
        program, expr = context.program, context.program.expr
        sites = subexpressions(expr, program.tensor_names)
        if not sites:
            return None
        if rng.random() < 0.4:
            path, node = sites[0]
        else:  # bare names are many and the least interesting to wrap
            path, node = rng.choices(sites, weights=[0.3 if isinstance(n, ast.Name) else 1.0 for _, n in sites])[0]
        current = spelling_of(node.func) if isinstance(node, ast.Call) else None
        unary = rng.choice([u for u in UNARIES + (GAUSSIAN,) if u.spelling != current])
        return (
            replace_at(expr, path, unary.apply(node)),
            f"wrap `{snippet(node, 50)}` in {unary.label} ({unary.kind})",
        )

    def _perturb_term(self, context: _Context, rng: random.Random) -> Edit:
        program, expr = context.program, context.program.expr
        family = sample_perturbation(rng)
        a, b = sample_amplitude(rng), family.sample_b(rng)
        term = mul(make_const(abs(a)), family.build(program.x, b))
        new = ast.BinOp(clone(expr), ast.Sub() if a < 0 else ast.Add(), term)
        verb = "subtract" if a < 0 else "add"
        return new, f"{verb} a {family.label} perturbation {snippet(term)} {family.purpose}"

    def _gate(self, context: _Context, rng: random.Random) -> Edit:
        program, expr = context.program, context.program.expr
        sites = subexpressions(expr, program.tensor_names)
        if not sites:
            return None
        path, node = sites[0] if rng.random() < 0.7 else rng.choice(sites)
        key = rng.choices([g for g, _ in GATES], weights=[w for _, w in GATES])[0]
        gate, description = build_gate(key, program.x, rng)
        what = "the output" if not path else f"`{snippet(node, 40)}`"
        return replace_at(expr, path, mul(node, gate)), f"multiply {what} by {description}"

    def _constants(self, context: _Context, rng: random.Random) -> Edit:
        program, expr = context.program, context.program.expr
        sites = constant_sites(expr)
        if not sites:
            targets = subexpressions(expr, program.tensor_names)
            if not targets:
                return None
            inputs = [t for t in targets if isinstance(t[1], ast.Name)]
            path, node = rng.choice(inputs) if inputs and rng.random() < 0.6 else rng.choice(targets)
            c = nice_number(rng, 0.5, 2.5, (0.5, 1.5, 2))
            if c == 1:
                c = 1.5
            scaled_node = mul(make_const(c), node)
            return (
                replace_at(expr, path, scaled_node),
                f"insert a scale constant: `{snippet(node, 40)}` → `{snippet(scaled_node, 50)}`",
            )
        if rng.random() < 0.6:
            chosen = [rng.choice(sites)]
        else:
            chosen = [s for s in sites if rng.random() < 0.5] or [rng.choice(sites)]
        changes = []
        for site in chosen:
            old = site.value
            new = _perturb_constant(old, site.protected, rng)
            if new == old or round_sig(new) == round_sig(old):
                continue
            expr = replace_at(expr, site.path, make_const(new))
            changes.append(f"{_format(old)} → {_format(new)}")
        if not changes:
            return None
        shown = ", ".join(changes[:3]) + (f" and {len(changes) - 3} more" if len(changes) > 3 else "")
        return expr, f"tune constant{'s' if len(changes) > 1 else ''} {shown}"

    def _crossover(self, context: _Context, rng: random.Random) -> Edit:
        program, expr = context.program, context.program.expr
        usable = []
        for i, inspiration in enumerate(context.inspirations):
            q = context.inspiration_expression(i)
            if q is not None:
                usable.append((inspiration, q))
        if not usable:
            return None
        inspiration, q = rng.choice(usable)
        label = f"inspiration #{inspiration.id}" if inspiration.id is not None else "an inspiration"
        mode = rng.choices(("subtree", "average", "blend"), weights=(0.5, 0.25, 0.25))[0]
        if mode == "subtree":
            donors = [node for _, node in subexpressions(q, {program.param}) if count_nodes(node) >= 2] or [q]
            donor = rng.choice(donors)
            sites = subexpressions(expr, program.tensor_names)
            if not sites:
                return None
            inner = sites[1:] or sites
            path, node = rng.choice(inner)
            return (
                replace_at(expr, path, donor),
                f"crossover: replace `{snippet(node, 40)}` with `{snippet(donor, 50)}` from {label}",
            )
        if mode == "average":
            new = ast.BinOp(add(clone(expr), clone(q)), ast.Div(), ast.Constant(2))
            return new, f"crossover: average with {label} `{snippet(q, 50)}`"
        a = nice_number(rng, 0.05, 0.5, (0.1, 0.2, 0.25, 0.5))
        return (add(clone(expr), mul(make_const(a), clone(q))), f"crossover: add {a} × {label} `{snippet(q, 50)}`")

    def _simplify(self, context: _Context, rng: random.Random) -> Edit:
        program, expr = context.program, context.program.expr
        names = program.tensor_names
        options: list[tuple[tuple, ast.expr, int, str]] = []  # (path, kept node, nodes removed, rationale)

        def option(path, node, kept, rationale):
            options.append((path, kept, count_nodes(node) - count_nodes(kept), rationale))

        for path, node in subexpressions(expr, names):
            if isinstance(node, ast.BinOp):
                left, right = depends_on(node.left, names), depends_on(node.right, names)
                if isinstance(node.op, (ast.Add, ast.Sub)):
                    if left:
                        option(path, node, node.left, f"remove the term `{snippet(node.right, 50)}`")
                    if right:
                        kept = node.right if isinstance(node.op, ast.Add) else ast.UnaryOp(ast.USub(), node.right)
                        option(path, node, kept, f"remove the term `{snippet(node.left, 50)}`")
                elif isinstance(node.op, ast.Mult):
                    if left:
                        option(path, node, node.left, f"drop the factor `{snippet(node.right, 50)}`")
                    if right:
                        option(path, node, node.right, f"drop the factor `{snippet(node.left, 50)}`")
                elif isinstance(node.op, ast.Div) and left:
                    option(path, node, node.left, f"drop the denominator `{snippet(node.right, 50)}`")
            elif (
                isinstance(node, ast.Call)
                and spelling_of(node.func) in RECOGNIZED_UNARY_SPELLINGS
                and node.args
                and depends_on(node.args[0], names)
            ):
                option(path, node, node.args[0], f"unwrap {spelling_of(node.func)} from `{snippet(node.args[0], 50)}`")
        if not options:
            return None
        if context.crowded and rng.random() < 0.5:
            path, kept, _, rationale = max(options, key=lambda o: o[2])
        else:
            path, kept, _, rationale = rng.choice(options)
        new = replace_at(expr, path, kept)
        return new, f"simplify: {rationale}"


@dataclass
class _Context:
    program: _Program
    inspirations: list[Parent]
    reference: torch.Tensor | None
    forbidden: set[str]
    nodes: int
    crowded: bool

    def __post_init__(self) -> None:
        self._inspired: dict[int, ast.expr | None] = {}

    def inspiration_expression(self, i: int) -> ast.expr | None:
        if i not in self._inspired:
            self._inspired[i] = _inspiration_expression(self.inspirations[i], self.program.param)
        return self._inspired[i]


_ROUND_NUMBERS = (0.01, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 1.5, 2, 3, 5, 10)


def _perturb_constant(value: float | int, protected: bool, rng: random.Random) -> float | int:
    """Log-normal noise (σ 0.3), or a sign flip (10%, never for a protected constant), or the
    nearest other round number of the same sign (12%); zero becomes ±0.1."""
    if value == 0:
        return 0.1 if protected or rng.random() < 0.5 else -0.1
    r = rng.random()
    if r < 0.1 and not protected:
        return -value
    if r < 0.22:
        magnitude = abs(value)
        others = [n for n in _ROUND_NUMBERS if n != magnitude]
        nearest = min(others, key=lambda n: abs(math.log(n / magnitude)))
        return nearest if value > 0 else -nearest
    return round_sig(value * math.exp(rng.gauss(0.0, 0.3)), 3)


def _format(value: float | int) -> str:
    return f"{value:g}"
