"""The winner shrunk toward a reference: (1 − w)·f + w·g, the validation's choice f blended with GELU g.

The validation picks the best of a few dozen candidates on noisy scores, and the candidates are
GELU's neighbours that trade one kind of target for another (docs/lab.md, "Would a larger
validation choose better?"). What separates the pick from GELU is partly the luck of the samples
it was chosen on (the winner's curse), and on targets of kinds the search never drew its trades
cost more than they gain as often as not. Blending the pick's *function* with the reference halves
every deviation from it: the pick's systematic gains are kept in part, its misfits shrink, and the
blend, never selected on any score, carries no selection bias (`search.winner_blend`; measured in
docs/lab.md, "Shrinking the winner toward GELU").

The reference is first aligned with the choice. An MLP computes the same functions with f(x),
f(−x), −f(x) or −f(−x) as its activation (negate the weights into or out of the layer; the uniform
initialisation is symmetric), so a search finds mirrored or negated GELUs as often as GELU's
neighbours: `aligned_signs` picks the variant ±g(±x) of the reference closest to the choice's
recorded curve, and the blend mixes with that one (blending `F.gelu(-1.3 * x)` with `F.gelu(x)` would
give a V-shaped function that neither is).

`blend_source` writes the blend as a program of the language: the chosen program unchanged except
that its entry point is renamed to a helper, and a new `activation_function` that mixes the helper
with the reference's expression. Nothing is executed here; the blend is checked and scored like any
program, in a sandboxed worker.
"""

from __future__ import annotations

import ast
import math
from typing import Any, Mapping

from ..language.program import ENTRY_POINT, ProgramError, read_program
from .seeds import SEED_EXPRESSIONS

__all__ = ["aligned_signs", "blend_source", "partner_name", "BLENDED_HELPER"]

#: The name the chosen program's entry point takes inside the blend (a suffix is added on a clash).
BLENDED_HELPER = "chosen_activation"
_SIGNS = ((1, 1), (1, -1), (-1, 1), (-1, -1))  # (output, input) signs of the reference's variants


def aligned_signs(curve: Mapping[str, Any] | None, reference: str) -> tuple[int, int]:
    """(output sign, input sign) of the variant ±g(±x) of the reference g closest, in squared
    distance over the curve's points, to a program's recorded curve (`probes["curve"]`: x and y
    on [−6, 6]; untrusted numbers, only compared). (1, 1) when there is no usable curve."""
    import torch

    from ..activations import get

    try:
        x = [float(v) for v in curve["x"]]  # type: ignore[index]
        y = [float(v) for v in curve["y"]]  # type: ignore[index]
    except (TypeError, KeyError, ValueError):
        return 1, 1
    pairs = [(a, b) for a, b in zip(x, y) if math.isfinite(a) and math.isfinite(b) and abs(a) <= 6]
    if len(pairs) < 2:
        return 1, 1
    points = torch.tensor([a for a, _ in pairs], dtype=torch.float64)
    values = torch.tensor([b for _, b in pairs], dtype=torch.float64)
    function = get(reference)
    distances = {}
    for signs in _SIGNS:  # ties go to the reference as it is
        with torch.no_grad():
            variant = signs[0] * function(signs[1] * points)
        distances[signs] = float(((variant - values) ** 2).sum())
    return min(distances, key=lambda s: distances[s])


def partner_name(reference: str, signs: tuple[int, int]) -> str:
    """How the blend's partner reads: gelu, gelu(-x), -gelu or -gelu(-x)."""
    return ("-" if signs[0] == -1 else "") + reference + ("(-x)" if signs[1] == -1 else "")


def blend_source(source: str, reference: str, weight: float, signs: tuple[int, int] = (1, 1)) -> str:
    """The program computing (1 − weight)·f(x) + weight·s_out·g(s_in·x), f being `source`'s function,
    g the reference and (s_out, s_in) = `signs` (`aligned_signs`).

    `reference` is a registry name with a source form (`seeds.SEED_EXPRESSIONS`), weight in (0, 1).
    Raises ProgramError when `source` is outside the straight-line subset or binds a name the
    reference's expression reads (a module-level `F` would change what `F.gelu` means)."""
    if reference not in SEED_EXPRESSIONS:
        raise ValueError(f"no source form for the reference {reference!r}; use one of {', '.join(SEED_EXPRESSIONS)}")
    if not 0 < weight < 1:
        raise ValueError(f"the blend's weight must lie in (0, 1), got {weight!r}")
    if signs not in _SIGNS:
        raise ValueError(f"signs must be a pair of ±1, got {signs!r}")
    try:
        module = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise ProgramError(f"not valid Python: {type(exc).__name__}") from None
    program = read_program(module)  # the subset's shape: constants, helpers, one entry point
    expression = SEED_EXPRESSIONS[reference]
    reads = {node.id for node in ast.walk(ast.parse(expression)) if isinstance(node, ast.Name)} - {"x"}
    bound = {name for name, _ in program.setup}
    if reads & bound:
        raise ProgramError(
            f"the program binds {', '.join(sorted(reads & bound))} at module level, which the reference's "
            f"expression {expression!r} reads"
        )
    used = {node.id for node in ast.walk(module) if isinstance(node, ast.Name)} | bound
    used |= {node.arg for node in ast.walk(module) if isinstance(node, ast.arg)}
    helper, suffix = BLENDED_HELPER, 0
    while helper in used:
        suffix += 1
        helper = f"{BLENDED_HELPER}_{suffix}"
    for statement in module.body:
        if isinstance(statement, ast.FunctionDef) and statement.name == ENTRY_POINT:
            statement.name = helper
    partner = ast.parse(expression, mode="eval").body
    if signs[1] == -1:  # g(−x): every x of the expression negated
        partner = _NegateX().visit(partner)
    term = f"{weight!r} * ({ast.unparse(partner)})" if signs[0] == 1 else f"{weight!r} * -({ast.unparse(partner)})"
    entry = f"def {ENTRY_POINT}(x):\n    return {round(1 - weight, 12)!r} * {helper}(x) + {term}\n"
    return f"{ast.unparse(module)}\n\n{entry}"


class _NegateX(ast.NodeTransformer):
    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id == "x":
            return ast.UnaryOp(op=ast.USub(), operand=ast.Name(id="x", ctx=ast.Load()))
        return node
