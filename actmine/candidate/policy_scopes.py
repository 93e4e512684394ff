"""What the candidate policy reads off the syntax tree, before any rule: the names a scope binds
(Python's rules, including assignment expressions in comprehensions), the program's globals, how
often each name is bound, integer literals, attribute chains and where a node ends.
"""

from __future__ import annotations

import ast
from collections import Counter

from .policy_lists import _COMPREHENSIONS


def _int_literal(node: ast.AST) -> int | None:
    """The value of an integer literal, `-3` included; None for anything else (bools too)."""
    sign = 1
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        sign = -1 if isinstance(node.op, ast.USub) else 1
        node = node.operand
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return sign * node.value
    return None


def _scope_locals(node: ast.AST) -> frozenset[str]:
    """Names bound as locals of a function, lambda or comprehension scope.

    Python's rule: a name bound anywhere in a function's body (assignment, `for` target, `del`,
    `except ... as`, a nested `def`, an assignment expression -- also one inside a comprehension,
    which binds in the enclosing function) is local to the whole function, even before the binding.
    A comprehension's locals are its `for` targets. An under-approximation is safe (it only refuses
    more): bindings by assignment expressions in a nested function's defaults are not counted.
    """
    names: set[str] = set()
    if isinstance(node, _COMPREHENSIONS):
        for generator in node.generators:
            names.update(n.id for n in ast.walk(generator.target) if isinstance(n, ast.Name))
        return frozenset(names)
    args = node.args
    for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
        if arg is not None:
            names.add(arg.arg)
    stack = list(node.body) if isinstance(node.body, list) else [node.body]
    while stack:
        child = stack.pop()
        if isinstance(child, ast.Name) and not isinstance(child.ctx, ast.Load):
            names.add(child.id)
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(child.name)
            continue
        elif isinstance(child, ast.Lambda):
            continue
        elif isinstance(child, _COMPREHENSIONS):
            names.update(_walrus_targets(child))
            continue
        elif isinstance(child, ast.ExceptHandler) and child.name:
            names.add(child.name)
        stack.extend(ast.iter_child_nodes(child))
    return frozenset(names)


def _walrus_targets(comprehension: ast.AST) -> set[str]:
    """Names that assignment expressions in `comprehension` (and comprehensions nested in it) bind in
    the enclosing scope; not those inside a lambda, which bind in the lambda."""
    names: set[str] = set()
    stack = [comprehension]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.NamedExpr) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        if not isinstance(node, (ast.Lambda, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            stack.extend(ast.iter_child_nodes(node))
    return names


def _target_names(target: ast.AST) -> list[str]:
    """The names an assignment target binds (`a`, `a, (b, *c)`); subscripts and attributes bind none."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [name for element in target.elts for name in _target_names(element)]
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    return []


def _top_level_names(tree: ast.Module) -> frozenset[str]:
    """The program's global definitions: top-level `def`s and names assigned at the top level.

    An augmented assignment (`C += 1`) does not count (it needs an earlier binding), nor does an
    annotation without a value (`C: float` binds nothing). Other top-level statements are refused.
    """
    names: set[str] = set()
    for statement in tree.body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(statement.name)
        elif isinstance(statement, ast.Assign):
            names.update(name for target in statement.targets for name in _target_names(target))
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            names.update(_target_names(statement.target))
    return frozenset(names)


def _binding_counts(tree: ast.Module) -> Counter[str]:
    """How often the program binds each name, anywhere (assignments, parameters, defs, except ... as)."""
    names: Counter[str] = Counter()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names[node.id] += 1
        elif isinstance(node, ast.arg):
            names[node.arg] += 1
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names[node.name] += 1
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names[node.name] += 1
        elif isinstance(node, ast.alias):
            names[(node.asname or node.name).split(".")[0]] += 1
    return names


def _end(node: ast.AST) -> tuple[int | None, int | None]:
    """Where `node` ends: a problem with a whole expression is reported after the problems inside it."""
    return getattr(node, "end_lineno", None), getattr(node, "end_col_offset", None)


def _attribute_chain(node: ast.Attribute) -> tuple[ast.AST, list[ast.Attribute]]:
    """`a.b.c` -> (the base expression `a`, [the Attribute nodes for .b and .c, in source order])."""
    links = []
    while isinstance(node, ast.Attribute):
        links.append(node)
        node = node.value
    return node, links[::-1]
