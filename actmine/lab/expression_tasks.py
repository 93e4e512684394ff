"""The random-expression generator: regression targets drawn from a grammar of operator pieces.

The lab's fixed families (polynomials, sums of sines, a few physics formulas) are a handful of
shapes; an activation tuned to them need not extrapolate anything else. This generator draws
targets from a grammar instead:

    target  := Σ_k c_k · term_k                       (n_terms terms, c_k = ±U(0.5, 1.5))
    term    := piece | piece · piece                  (a product with `product_probability`)
    piece   := group(z)                               (the group drawn uniformly from `operators`)
    z       := an affine map of 1–3 variables, standardised on the ID box
             | a standardised term of depth − 1       (a composition, with probability 1/2)

The operator groups (`OPERATOR_GROUPS`) are polynomial, exp/log/sqrt, rational, periodic,
saturating, kinked and bump-shaped pieces. Every argument z is standardised (mean 0, std 1 on the
ID box) before an operator applies, so the operators' constants mean the same thing on every box:
a frequency is in cycles per standard unit (0.1–0.4: at most ~1.4 periods on the ID box, the
harmonic family's calibrated limit), a kink or bump centre lies in [−1, 1] (inside the ID box), an
exponential's rate is at most 1. Every variable enters at least one piece (a variable that no
drawn piece used gets a piece of its own).

Boxes are drawn per task, per variable: ID [a, a + w] (a ~ U(box_low), w ~ U(box_width)) and an
OOD interval of width r·w (r ~ U(ood_width)) just beyond it on a side drawn from `ood_sides` for
each variable, so an OOD point lies beyond the ID box in every coordinate.

Domain checks. log and sqrt take a shifted affine argument z − min z + c, whose minimum over both
boxes is exact (an affine map is smallest at a corner), or a guarded one c + z² when z is
composed; rational denominators are c + z² or such a shifted map: all ≥ c ≥ 0.3 on both boxes.
Then the target is evaluated on random points and the corners of both boxes; a draw that is not
finite, (nearly) constant on either box, or that explodes beyond 1000 ID standard deviations is
redrawn. Redraws are deterministic (attempt a of index i uses the sub-seed of (params, i, a)) and
bounded by `max_attempts`, after which `draw` raises `GeneratorError`.

The target is a text (sympy's spelling: exp, log, sqrt, sin, cos, tanh, atan, sech, Abs, Max, Min,
pi), compiled to numpy by walking its Python syntax tree with a closed table of operations (no
eval) — fast enough to redraw a pool of thousands of tasks in a worker, and readable by
`sympy.sympify` for formulas. A drawn task's spec is the generators' {generator, params, index,
name}: `tasks.build_task(task.to_dict())` redraws it, and its description is the expression.
"""

from __future__ import annotations

import ast
import itertools
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from .generators import (
    Choices,
    Count,
    FloatRange,
    GeneratorError,
    IntRange,
    Number,
    ParametrisedGenerator,
    _interval_boxes,
    _uniform,
    register_generator,
)
from .task_families import Box, Task, stable_seed

#: The operator groups a draw's pieces come from (the `operators` parameter picks a subset).
OPERATOR_GROUPS: dict[str, str] = {
    "polynomial": "a1·z + a2·z² (+ a3·z³)",
    "exp_log": "exp(a·z) with 0.3 ≤ |a| ≤ 1; log and sqrt of z − min z + c or of c + z²",
    "rational": "(a·z + b)/(c + z²) or 1/(z − min z + c): denominators ≥ c ≥ 0.3 on both boxes",
    "periodic": "sin or cos(2π·f·z + φ), f in [0.1, 0.4] cycles per standard unit",
    "saturating": "tanh, sigmoid (written (1 + tanh)/2) and atan of a·z + b",
    "kinked": "|z − t|, max(z − t, 0) (relu-like), min(z, t), t in [−1, 1]",
    "bump": "exp(−u²), sech(u), 1/(1 + u²) with u = (z − m)/s",
}

#: Functions that only one group writes: a group is absent from a target exactly when none of
#: its functions appears (the other groups share exp and powers; `groups` of a draw is exact).
GROUP_FUNCTIONS: dict[str, frozenset[str]] = {
    "periodic": frozenset({"sin", "cos"}),
    "saturating": frozenset({"tanh", "atan"}),
    "kinked": frozenset({"Abs", "Max", "Min"}),
    "exp_log": frozenset({"log", "sqrt"}),
    "bump": frozenset({"sech"}),
}

_UNARY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "exp": np.exp,
    "log": np.log,
    "sqrt": np.sqrt,
    "sin": np.sin,
    "cos": np.cos,
    "tanh": np.tanh,
    "atan": np.arctan,
    "sech": lambda v: 1.0 / np.cosh(v),
    "Abs": np.abs,
}
_BINARY: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {"Max": np.maximum, "Min": np.minimum}
_OPERATORS = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide}
MAX_TEXT = 20_000
MAX_POWER = 4


class ExpressionError(GeneratorError):
    """An expression text uses something outside the closed grammar; the message names it."""


def functions_of(text: str) -> set[str]:
    """The function names an expression text calls."""
    return {
        node.func.id
        for node in ast.walk(ast.parse(text, mode="eval"))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }


def compile_expression(text: str, variables: Sequence[str]) -> Callable[[np.ndarray], np.ndarray]:
    """A numpy function of x (n, len(variables)) → (n,) for an expression text in the closed grammar:
    numbers, the variables, pi, + − × ÷, integer powers up to 4 and the functions of `_UNARY` /
    `_BINARY`. Anything else raises ExpressionError; nothing is evaluated by Python itself."""
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
        raise ExpressionError(f"an expression must be a non-empty text of at most {MAX_TEXT} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, RecursionError, ValueError) as exc:
        raise ExpressionError(f"expression {text[:80]!r} is not valid syntax: {exc}") from None
    columns = {v: i for i, v in enumerate(variables)}

    def build(node: ast.AST) -> Callable[[np.ndarray], Any]:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            value = float(node.value)
            return lambda x: value
        if isinstance(node, ast.Name) and node.id in columns:
            column = columns[node.id]
            return lambda x: x[:, column]
        if isinstance(node, ast.Name) and node.id == "pi":
            return lambda x: math.pi
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = build(node.operand)
            return (lambda x: -operand(x)) if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            exponent = node.right.value if isinstance(node.right, ast.Constant) else None
            if not (isinstance(exponent, int) and not isinstance(exponent, bool) and 1 <= exponent <= MAX_POWER):
                raise ExpressionError(f"only integer powers 1..{MAX_POWER} are allowed, got {ast.unparse(node)[:80]!r}")
            base = build(node.left)
            return lambda x: base(x) ** exponent
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            operation, left, right = _OPERATORS[type(node.op)], build(node.left), build(node.right)
            return lambda x: operation(left(x), right(x))
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and not node.keywords
            and len(node.args) == (1 if node.func.id in _UNARY else 2 if node.func.id in _BINARY else -1)
        ):
            args = [build(a) for a in node.args]
            if len(args) == 1:
                unary, (arg,) = _UNARY[node.func.id], args
                return lambda x: unary(arg(x))
            binary, (a, b) = _BINARY[node.func.id], args
            return lambda x: binary(a(x), b(x))
        raise ExpressionError(
            f"expression {text[:80]!r}: {ast.unparse(node)[:80]!r} is outside the grammar "
            f"(variables {', '.join(variables)}, pi, numbers, + - * /, powers 1..{MAX_POWER}, "
            f"{', '.join([*_UNARY, *_BINARY])})"
        )

    evaluate = build(tree.body)

    def target(x: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):  # non-finite values are reported by the checks / `generate`
            return np.broadcast_to(np.asarray(evaluate(np.asarray(x, dtype=np.float64)), dtype=np.float64), (len(x),))

    return target


@dataclass(frozen=True)
class DrawnExpression:
    """One draw before it becomes a Task: the text, the groups it used, its boxes, the attempt."""

    text: str
    variables: tuple[str, ...]
    groups: tuple[str, ...]
    id_box: Box
    ood_box: Box
    attempt: int


class _Redraw(Exception):
    """This attempt's target failed a domain check; the message says which."""


def _number(value: float) -> str:
    """Constants with 4 significant digits; negatives in parentheses so that any context parses."""
    text = f"{float(value):.4g}"
    return f"({text})" if text.startswith("-") else text


@register_generator("expression")
class ExpressionGenerator(ParametrisedGenerator):
    """Random expressions in 1–5 variables (see the module docstring): sums, products and
    compositions of polynomial, exp/log/sqrt, rational, periodic, saturating, kinked and bump
    pieces, with ID/OOD boxes drawn per task. Hold operator groups out of `operators` to draw a
    test suite whose operators a search never saw."""

    name = "expression"
    family = "expression"
    PARAMETERS = {
        "dims": IntRange((1, 5), (1, 8), "number of input variables"),
        "depth": Count(2, (1, 4), "deepest composition: 1 = every piece applies to an affine map of the variables"),
        "n_terms": IntRange((1, 3), (1, 8), "terms of the top-level sum (plus one per variable left unused)"),
        "operators": Choices(
            tuple(OPERATOR_GROUPS), tuple(OPERATOR_GROUPS), "operator groups pieces are drawn from, uniformly"
        ),
        "product_probability": Number(0.25, (0.0, 1.0), "chance that a term is a product of two pieces"),
        "box_low": FloatRange((-1.0, 1.0), (-10.0, 10.0), "lower end a of each variable's ID interval"),
        "box_width": FloatRange((0.5, 2.0), (0.05, 10.0), "width w of each variable's ID interval", positive=True),
        "ood_width": FloatRange((0.5, 1.0), (0.05, 4.0), "OOD width as a multiple r of w", positive=True),
        "ood_sides": Choices(
            ("upper", "lower"), ("upper", "lower"), "sides the OOD interval may lie beyond (drawn per variable)"
        ),
        "seed": Count(0, (0, 2**31 - 1), "stream: equal parameters with another seed draw other tasks"),
        "max_attempts": Count(50, (1, 1000), "redraws per index before the draw fails"),
    }

    #: Domain-check thresholds: the target's std on the ID box (absolute), OOD std ÷ ID std, and
    #: the largest |standardised target| on either box.
    MIN_STD = 1e-3
    MIN_OOD_STD_RATIO = 1e-2
    MAX_STANDARDISED = 1e3
    CHECK_POINTS = 512

    def _validate(self) -> None:
        # canonical order: the same set of groups is the same generator (same names, same cache keys)
        for key, order in (("operators", tuple(OPERATOR_GROUPS)), ("ood_sides", ("upper", "lower"))):
            self._params[key] = [g for g in order if g in self._params[key]]

    def expression(self, index: int) -> DrawnExpression:
        """The index-th target: the first attempt that passes the domain checks."""
        index = self._check_index(index)
        reasons: dict[str, int] = {}
        for attempt in range(self._params["max_attempts"]):
            rng = np.random.default_rng(stable_seed("generator", self.name, self._params, index, attempt))
            try:
                return self._attempt(rng, attempt)
            except _Redraw as redraw:
                reasons[str(redraw)] = reasons.get(str(redraw), 0) + 1
        summary = ", ".join(f"{reason} ×{n}" for reason, n in sorted(reasons.items()))
        raise GeneratorError(
            f"generator 'expression' {self.params()}: no valid target for index {index} in "
            f"{self._params['max_attempts']} attempts ({summary}); raise max_attempts or allow "
            "more operator groups"
        )

    def draw(self, index: int) -> Task:
        drawn = self.expression(index)
        index = int(index)
        name = self._task_name(index)
        return Task(
            name,
            self.family,
            drawn.variables,
            compile_expression(drawn.text, drawn.variables),
            drawn.id_box,
            drawn.ood_box,
            self._spec(index, name),
            drawn.text,
        )

    # -- one attempt ---------------------------------------------------------------------------

    def _attempt(self, rng: np.random.Generator, attempt: int) -> DrawnExpression:
        p = self._params
        dim = int(rng.integers(p["dims"][0], p["dims"][1] + 1))
        variables = tuple(f"x{i}" for i in range(dim))
        id_box, ood_box = [], []
        for _ in range(dim):
            side = p["ood_sides"][int(rng.integers(len(p["ood_sides"])))]
            id_interval, ood_interval = _interval_boxes(
                round(_uniform(rng, p["box_low"]), 2),
                round(_uniform(rng, p["box_width"]), 2),
                _uniform(rng, p["ood_width"]),
                side,
            )
            id_box.append(tuple(round(v, 3) for v in id_interval))
            ood_box.append(tuple(round(v, 3) for v in ood_interval))
        builder = _Builder(rng, variables, tuple(id_box), tuple(ood_box), p)
        text = builder.target()
        drawn = DrawnExpression(
            text,
            variables,
            tuple(g for g in OPERATOR_GROUPS if g in builder.groups),
            tuple(id_box),
            tuple(ood_box),
            attempt,
        )
        self._check(drawn, rng)
        return drawn

    def _check(self, drawn: DrawnExpression, rng: np.random.Generator) -> None:
        """Redraw a target that is not finite, (nearly) constant, or explodes on either box."""
        target = compile_expression(drawn.text, drawn.variables)
        values = {}
        for split, box in (("ID", drawn.id_box), ("OOD", drawn.ood_box)):
            y = target(np.concatenate([_sample(rng, box, self.CHECK_POINTS), _corners(box)]))
            if not np.all(np.isfinite(y)):
                raise _Redraw(f"not finite on the {split} box")
            values[split] = y
        with np.errstate(all="ignore"):  # overflowing statistics fail the tests below
            mean, std = float(values["ID"].mean()), float(values["ID"].std())
            ood_std = float(values["OOD"].std())
            largest = max(float(np.abs((y - mean) / std).max()) for y in values.values()) if std > 0 else math.inf
        if not std >= max(self.MIN_STD, 1e-6 * abs(mean)):
            raise _Redraw("constant on the ID box")
        if not ood_std >= self.MIN_OOD_STD_RATIO * std:
            raise _Redraw("constant on the OOD box")
        if not largest <= self.MAX_STANDARDISED:
            raise _Redraw("explodes beyond the ID scale")


def _sample(rng: np.random.Generator, box: Box, n: int) -> np.ndarray:
    low, high = np.array([b[0] for b in box]), np.array([b[1] for b in box])
    return low + (high - low) * rng.random((n, len(box)))


def _corners(box: Box) -> np.ndarray:
    """The box's corners (at most 2^8): where affine arguments, and often the target, are extreme."""
    return np.array(list(itertools.product(*box)), dtype=np.float64)


class _Builder:
    """Draws one target text from the grammar; records the operator groups and variables it used."""

    def __init__(
        self, rng: np.random.Generator, variables: tuple[str, ...], id_box: Box, ood_box: Box, params: dict[str, Any]
    ):
        self.rng, self.variables, self.id_box, self.ood_box, self.params = rng, variables, id_box, ood_box, params
        self.probe = _sample(rng, id_box, 256)  # ID points on which composed arguments are standardised
        self.groups: set[str] = set()
        self.used: set[int] = set()

    def uniform(self, low: float, high: float) -> float:
        return float(self.rng.uniform(low, high))

    def sign(self) -> float:
        return float(self.rng.choice([-1.0, 1.0]))

    def target(self) -> str:
        low, high = self.params["n_terms"]
        terms = [self._term(self.params["depth"]) for _ in range(int(self.rng.integers(low, high + 1)))]
        unused = [i for i in range(len(self.variables)) if i not in self.used]
        if unused:  # every variable enters at least one piece
            terms.append(self._piece(self._affine(unused)))
        return " + ".join(f"{_number(self.sign() * self.uniform(0.5, 1.5))}*{t}" for t in terms)

    def _term(self, depth: int) -> str:
        term = self._piece(self._argument(depth))
        if self.rng.random() < self.params["product_probability"]:
            term = f"{term}*{self._piece(self._argument(depth))}"
        return term

    def _argument(self, depth: int) -> tuple[str, float | None]:
        """(z, the exact minimum of z over both boxes — None when z is composed)."""
        if depth > 1 and self.rng.random() < 0.5:
            inner = self._term(depth - 1)
            values = compile_expression(inner, self.variables)(self.probe)
            with np.errstate(all="ignore"):  # huge values fail the test below
                mean, std = float(values.mean()), float(values.std())
            if not (math.isfinite(mean) and math.isfinite(std) and std > 1e-6 * max(1.0, abs(mean))):
                raise _Redraw("a composed argument is constant or not finite")
            return f"((({inner}) - {_number(mean)})/{_number(std)})", None
        count = int(self.rng.integers(1, min(len(self.variables), 3) + 1))
        return self._affine(sorted(int(i) for i in self.rng.choice(len(self.variables), size=count, replace=False)))

    def _affine(self, chosen: Sequence[int]) -> tuple[str, float]:
        """Σ w_i·x_i standardised over the ID box (exact: coordinates are uniform), and its minimum."""
        self.used.update(chosen)
        weights = self.rng.normal(size=len(chosen))
        weights = np.where(np.abs(weights) < 0.2, np.where(weights < 0, -0.2, 0.2), weights)  # no vanishing input
        mean = sum(w * (self.id_box[i][0] + self.id_box[i][1]) / 2 for w, i in zip(weights, chosen))
        std = math.sqrt(sum((w * (self.id_box[i][1] - self.id_box[i][0])) ** 2 / 12 for w, i in zip(weights, chosen)))
        scales = [float(_number(w / std).strip("()")) for w in weights]
        offset = float(_number(-mean / std).strip("()"))
        text = " + ".join([f"{_number(s)}*{self.variables[i]}" for s, i in zip(scales, chosen)] + [_number(offset)])
        # an affine map is smallest at a corner: per coordinate, at the low or the high end
        minimum = min(
            offset + sum(min(s * box[i][0], s * box[i][1]) for s, i in zip(scales, chosen))
            for box in (self.id_box, self.ood_box)
        )
        return f"({text})", minimum

    def _piece(self, argument: tuple[str, float | None]) -> str:
        z, minimum = argument
        operators = self.params["operators"]
        group = operators[int(self.rng.integers(len(operators)))]
        self.groups.add(group)
        kind = int(self.rng.integers(3))
        n = _number

        def positive() -> str:
            """An argument ≥ c ≥ 0.3 on both boxes: shifted when z is affine, guarded when composed."""
            c = self.uniform(0.3, 1.5)
            if minimum is None:
                return f"{n(c)} + {z}**2"
            # rounding the shift to 4 digits moves it by < 1e-3·|shift|; the margin c absorbs that
            return f"{z} + {n(c - minimum)}"

        if group == "polynomial":
            degree = int(self.rng.integers(2, 4))
            return "(" + " + ".join(f"{n(self.rng.normal())}*{z}**{k}" for k in range(1, degree + 1)) + ")"
        if group == "exp_log":
            if kind == 0:
                return f"exp({n(self.sign() * self.uniform(0.3, 1.0))}*{z})"
            return f"{'log' if kind == 1 else 'sqrt'}({positive()})"
        if group == "rational":
            if kind == 0 and minimum is not None:
                return f"1/({positive()})"
            a, b, c = n(self.uniform(-1.5, 1.5)), n(self.uniform(-1.0, 1.0)), n(self.uniform(0.5, 2.0))
            return f"({a}*{z} + {b})/({c} + {z}**2)"
        if group == "periodic":
            frequency, phase = n(self.uniform(0.1, 0.4)), n(self.uniform(0, 2 * math.pi))
            return f"{'sin' if kind < 2 else 'cos'}(2*pi*{frequency}*{z} + {phase})"
        if group == "saturating":
            u = f"{n(self.uniform(0.5, 2.5))}*{z} + {n(self.uniform(-1.0, 1.0))}"
            return f"tanh({u})" if kind == 0 else f"(1 + tanh({u}))/2" if kind == 1 else f"atan({u})"
        if group == "kinked":
            t = n(self.uniform(-1.0, 1.0))
            return f"Abs({z} - {t})" if kind == 0 else f"Max({z} - {t}, 0)" if kind == 1 else f"Min({z}, {t})"
        u = f"({z} - {n(self.uniform(-1.0, 1.0))})/{n(self.uniform(0.5, 1.5))}"  # bump
        return f"exp(-({u})**2)" if kind == 0 else f"sech({u})" if kind == 1 else f"1/(1 + ({u})**2)"
