"""Building, reading and walking the expression trees the offline mutators edit.

The small AST vocabulary both offline mutators (`symbolic`, `random`) and the rest of
`actmine.evolve.mutators.expressions` are written in: nodes built from spellings (`call`, `mul`,
`add`, ...), signed numeric literals (`make_const`, `const_value`) and random nice numbers, node
counting and depth, and the paths to an expression's subexpressions (`walk_paths`,
`subexpressions`, `get_at`, `replace_at`), with a fast `clone`. It depends on nothing else of the
mutators, so every other expression module can build on it; its names are importable from
`expressions` too.
"""

from __future__ import annotations

import ast
import math
import random
from typing import Any, Iterator, Sequence

PARAM = "x"
SIGNIFICANT_DIGITS = 4

Path = tuple[tuple[str, int | None], ...]


# ------------------------------------------------------------------------------------------------
# Spelling helpers
# ------------------------------------------------------------------------------------------------


def spelling_node(spelling: str) -> ast.expr:
    """`"torch.nn.functional.gelu"` -> the attribute chain `torch.nn.functional.gelu`."""
    parts = spelling.split(".")
    node: ast.expr = ast.Name(parts[0], ast.Load())
    for part in parts[1:]:
        node = ast.Attribute(node, part, ast.Load())
    return node


def call(spelling: str, *args: ast.expr) -> ast.Call:
    return ast.Call(spelling_node(spelling), list(args), [])


def name(identifier: str = PARAM) -> ast.Name:
    return ast.Name(identifier, ast.Load())


def binop(left: ast.expr, op: ast.operator, right: ast.expr) -> ast.BinOp:
    return ast.BinOp(left, op, right)


def mul(left: ast.expr, right: ast.expr) -> ast.BinOp:
    return ast.BinOp(left, ast.Mult(), right)


def add(left: ast.expr, right: ast.expr) -> ast.BinOp:
    return ast.BinOp(left, ast.Add(), right)


def snippet(node: ast.AST, limit: int = 60) -> str:
    """Source of a node on one line, shortened to `limit` characters."""
    text = " ".join(ast.unparse(node).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ------------------------------------------------------------------------------------------------
# Constants
# ------------------------------------------------------------------------------------------------


def round_sig(value: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    """`value` rounded to `digits` significant digits (-0.0 becomes 0.0)."""
    if value == 0 or not math.isfinite(value):
        return 0.0 if value == 0 else value
    return float(f"{value:.{digits}g}") + 0.0


def make_const(value: float | int) -> ast.expr:
    """A numeric literal; a negative one as `-c` (a `UnaryOp`), which is how Python parses it."""
    if value < 0:
        return ast.UnaryOp(ast.USub(), ast.Constant(-value))
    return ast.Constant(value + 0 if isinstance(value, int) else value + 0.0)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def const_value(node: ast.AST) -> float | int | None:
    """The value of a numeric literal, signed ones (`-0.5`, `+2`) included; None otherwise."""
    if isinstance(node, ast.Constant) and _is_number(node.value):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = const_value(node.operand)
        if inner is not None:
            return -inner if isinstance(node.op, ast.USub) else inner
    return None


def nice_number(
    rng: random.Random, low: float, high: float, round_values: Sequence[float], p_round: float = 0.35, digits: int = 2
) -> float:
    """A positive number: one of `round_values` with probability `p_round`, else log-uniform in
    [low, high] rounded to `digits` significant digits."""
    if round_values and rng.random() < p_round:
        return rng.choice(list(round_values))
    value = round_sig(math.exp(rng.uniform(math.log(low), math.log(high))), digits)
    return int(value) if value.is_integer() else value


# ------------------------------------------------------------------------------------------------
# Walking, counting, replacing
# ------------------------------------------------------------------------------------------------


def count_nodes(node: ast.AST) -> int:
    """Expression nodes in `node` (see the module docstring for the convention)."""
    if const_value(node) is not None:
        return 1
    if isinstance(node, ast.Call):
        return 1 + sum(count_nodes(a) for a in node.args) + sum(count_nodes(k.value) for k in node.keywords)
    return 1 + sum(count_nodes(child) for child in ast.iter_child_nodes(node) if isinstance(child, ast.expr))


def expression_depth(node: ast.AST) -> int:
    """Nesting depth of an expression (a leaf has depth 0; `torch.tanh(x)` 1)."""
    if const_value(node) is not None or isinstance(node, (ast.Name, ast.Constant)):
        return 0
    children: list[ast.AST]
    if isinstance(node, ast.Call):
        children = list(node.args) + [k.value for k in node.keywords]
    else:
        children = [c for c in ast.iter_child_nodes(node) if isinstance(c, ast.expr)]
    return 1 + max((expression_depth(c) for c in children), default=0)


def names_in(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def depends_on(node: ast.AST, tensor_names: set[str] | frozenset[str]) -> bool:
    return any(isinstance(n, ast.Name) and n.id in tensor_names for n in ast.walk(node))


def _children(node: ast.AST) -> Iterator[tuple[str, int | None, ast.AST]]:
    """The value positions of an expression that the mutators descend into."""
    if const_value(node) is not None:
        return
    if isinstance(node, ast.BinOp):
        yield "left", None, node.left
        yield "right", None, node.right
    elif isinstance(node, ast.UnaryOp):
        yield "operand", None, node.operand
    elif isinstance(node, ast.Call):
        for i, arg in enumerate(node.args):
            if not isinstance(arg, ast.Starred):
                yield "args", i, arg
    elif isinstance(node, ast.IfExp):
        yield "body", None, node.body
        yield "orelse", None, node.orelse


def walk_paths(root: ast.AST, path: Path = ()) -> Iterator[tuple[Path, ast.AST]]:
    """Every (path, node) reachable through `_children`, the root first."""
    yield path, root
    for field, index, child in _children(root):
        yield from walk_paths(child, path + ((field, index),))


def subexpressions(root: ast.expr, tensor_names: set[str] | frozenset[str]) -> list[tuple[Path, ast.expr]]:
    """The tensor-valued subexpressions of `root` (calls, arithmetic, names that depend on the
    input), with their paths; constants, scalar-only parts and a call's function are left out."""
    return [
        (path, node)
        for path, node in walk_paths(root)
        if isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Call, ast.Name))
        and const_value(node) is None
        and depends_on(node, tensor_names)
    ]


def get_at(root: ast.AST, path: Path) -> ast.AST:
    node = root
    for field, index in path:
        node = getattr(node, field) if index is None else getattr(node, field)[index]
    return node


def replace_at(root: ast.expr, path: Path, new: ast.expr) -> ast.expr:
    """A copy of `root` with the node at `path` replaced by (a copy of) `new`."""
    if not path:
        return clone(new)
    root = clone(root)
    parent = get_at(root, path[:-1])
    field, index = path[-1]
    if index is None:
        setattr(parent, field, clone(new))
    else:
        getattr(parent, field)[index] = clone(new)
    return root


def clone(node: Any) -> Any:
    """A deep copy of an AST (without source positions): much faster than `copy.deepcopy`."""
    if isinstance(node, ast.AST):
        new = node.__class__()
        for field in node._fields:
            setattr(new, field, clone(getattr(node, field, None)))
        return new
    if isinstance(node, list):
        return [clone(item) for item in node]
    return node


def rename(node: ast.AST, old: str, new: str) -> ast.AST:
    """A copy of `node` with every `Name` `old` renamed to `new`."""
    node = clone(node)
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and n.id == old:
            n.id = new
    return node
