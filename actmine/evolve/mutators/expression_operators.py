"""The operator set the offline mutators build expressions from: unaries, perturbations, gates.

`UNARIES` are the unary functions a mutator may introduce (checked at import against the one
language table, `actmine.language.ops`), `GAUSSIAN` the one template that is not a plain call,
`PERTURBATIONS` the bounded families added as perturbation terms or used in modulating gates, and
`GATES` the gates (`build_gate`). The module docstring of `actmine.evolve.mutators.expressions`
says why each is safe to apply; its names are importable from there too.
"""

from __future__ import annotations

import ast
import random
from dataclasses import dataclass

from actmine.language import ops as language_ops

from .expression_nodes import add, call, clone, make_const, mul, nice_number, round_sig, snippet


@dataclass(frozen=True)
class Unary:
    """A unary function a mutator may introduce."""

    key: str  # short name: "tanh"
    spelling: str  # source spelling of the call: "torch.tanh" ("" for templates)
    kind: str  # "rectifier", "saturating", "periodic" or "bump"
    bounded: bool  # |f| is bounded

    def apply(self, arg: ast.expr) -> ast.expr:
        if self.key == "gaussian":  # exp(-e²): the one template that is not a plain call
            return call("torch.exp", ast.UnaryOp(ast.USub(), call("torch.square", arg)))
        return call(self.spelling, arg)

    @property
    def label(self) -> str:
        return self.spelling or "exp(-(·)²)"


UNARIES: tuple[Unary, ...] = (
    Unary("relu", "torch.relu", "rectifier", False),
    Unary("gelu", "F.gelu", "rectifier", False),
    Unary("silu", "F.silu", "rectifier", False),
    Unary("softplus", "F.softplus", "rectifier", False),
    Unary("mish", "F.mish", "rectifier", False),
    Unary("elu", "F.elu", "rectifier", False),
    Unary("leaky_relu", "F.leaky_relu", "rectifier", False),
    Unary("abs", "torch.abs", "rectifier", False),
    Unary("tanh", "torch.tanh", "saturating", True),
    Unary("sigmoid", "torch.sigmoid", "saturating", True),
    Unary("erf", "torch.erf", "saturating", True),
    Unary("atan", "torch.atan", "saturating", True),
    Unary("softsign", "F.softsign", "saturating", True),
    Unary("sin", "torch.sin", "periodic", True),
    Unary("cos", "torch.cos", "periodic", True),
    Unary("sinc", "torch.sinc", "bump", True),
)
GAUSSIAN = Unary("gaussian", "", "bump", True)
UNARY_BY_SPELLING: dict[str, Unary] = {u.spelling: u for u in UNARIES}
for _unary in UNARIES:  # the operator set is part of the one language table: a typo fails here, not silently
    _op = language_ops.op_of(_unary.spelling)
    if _op is None or _op.kind != "elementwise" or _op.arity != 1:
        raise ValueError(
            f"Unary {_unary.key!r}: `{_unary.spelling}` is not a one-tensor elementwise op of "
            "actmine.language.ops.OPS; add it there or fix the spelling"
        )
#: The calls that `swap_unary` may replace and `simplify` may unwrap: every tensor spelling of the
#: language's one-tensor elementwise ops (`actmine.language.ops.unary_elementwise`), so spellings of
#: the same function under other names (`torch.special.expit`, `torch.nn.functional.gelu`) count too.
RECOGNIZED_UNARY_SPELLINGS: frozenset[str] = frozenset(
    spelling for op in language_ops.unary_elementwise() for spelling in op.spellings if not spelling.startswith("math.")
)


@dataclass(frozen=True)
class Perturbation:
    """A bounded family g(b·x): perturbation terms are a·g(b·x), modulating gates 1 + a·g(b·x)."""

    key: str
    label: str  # "periodic", "gaussian", ...
    purpose: str  # why one would add it, for rationales
    weight: float  # how often it is drawn

    def build(self, x: ast.expr, b: float) -> ast.expr:
        """g(b·x), |g| <= 1: sin, cos, sinc, tanh of b·x, the rational bump b·x/(1 + (b·x)²) (at most
        1/2) and, for `gaussian`, exp(-b·x²) (b is then the coefficient of x²)."""
        if self.key in ("sin", "cos", "sinc", "tanh"):
            return call(f"torch.{self.key}", scaled(b, x))
        if self.key == "gaussian":
            return call("torch.exp", mul(mul(make_const(-b), clone(x)), clone(x)))
        if self.key == "rational":
            return ast.BinOp(
                scaled(b, x),
                ast.Div(),
                add(ast.Constant(1), mul(mul(ast.Constant(round_sig(b * b)), clone(x)), clone(x))),
            )
        raise ValueError(self.key)

    def sample_b(self, rng: random.Random) -> float:
        if self.key == "gaussian":
            return nice_number(rng, 0.1, 3.0, (0.1, 0.2, 0.5, 1))
        return nice_number(rng, 0.5, 3.0, (0.5, 1, 1, 1.5, 2, 3))


PERTURBATIONS: dict[str, Perturbation] = {
    p.key: p
    for p in (
        Perturbation("sin", "periodic", "to let the network represent oscillations beyond the training range", 0.3),
        Perturbation(
            "cos", "periodic", "to give the function an even oscillation that persists beyond the training range", 0.1
        ),
        Perturbation(
            "gaussian",
            "gaussian bump",
            "to reshape the function near the origin while leaving the tails unchanged",
            0.2,
        ),
        Perturbation(
            "rational",
            "rational bump",
            "to bend the function near the origin with an odd bump that decays like 1/x",
            0.15,
        ),
        Perturbation("sinc", "sinc ripple", "to ripple the function near the origin, fading away from it", 0.15),
        Perturbation("tanh", "saturating step", "to shift the two tails apart by a bounded step", 0.1),
    )
}


def sample_perturbation(rng: random.Random) -> Perturbation:
    families = list(PERTURBATIONS.values())
    return rng.choices(families, weights=[p.weight for p in families])[0]


def sample_amplitude(rng: random.Random) -> float:
    """a for a·g(b·x): in [0.05, 0.5], negative one time in four."""
    a = nice_number(rng, 0.05, 0.5, (0.05, 0.1, 0.1, 0.2, 0.25, 0.5))
    return -a if rng.random() < 0.25 else a


def scaled(b: float, x: ast.expr) -> ast.expr:
    """b·x, or x itself when b is 1."""
    return clone(x) if b == 1 else mul(make_const(b), clone(x))


#: Gates g(x) that multiply an expression: (key, weight).
GATES: tuple[tuple[str, float], ...] = (("modulation", 0.5), ("sigmoid", 0.25), ("tanh", 0.25))


def build_gate(key: str, x: ast.expr, rng: random.Random) -> tuple[ast.expr, str]:
    """A gate expression in x and a description of it."""
    if key == "sigmoid":
        b = nice_number(rng, 0.5, 3.0, (1, 1.702, 2))
        gate = call("torch.sigmoid", scaled(b, x))
        return gate, f"a sigmoid gate {snippet(gate)}"
    if key == "tanh":
        b = nice_number(rng, 0.5, 3.0, (0.7979, 1, 2))
        gate = mul(ast.Constant(0.5), add(ast.Constant(1), call("torch.tanh", scaled(b, x))))
        return gate, f"a tanh gate {snippet(gate)}"
    family = sample_perturbation(rng)
    a = sample_amplitude(rng)
    term = mul(make_const(abs(a)), family.build(x, family.sample_b(rng)))
    gate = ast.BinOp(ast.Constant(1), ast.Sub() if a < 0 else ast.Add(), term)
    return gate, f"a {family.label} modulation {snippet(gate)}"
