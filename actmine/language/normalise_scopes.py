"""Scopes and import paths: which binding each name of a program refers to, and what dotted path a
plain `a.b.c` reads through the program's imports.

Pure analysis of a parsed program (`_Analysis`, by Python's scoping rules), with no edits: the
normaliser's rules (`normalise_rules.py`) and its class conversion (`normalise_classes.py`) read
it before they rewrite anything, so a local that shadows an alias is never rewritten.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass

from .normalise_vocabulary import _PREIMPORTED

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _parameters(arguments: ast.arguments) -> list[ast.arg]:
    return [
        *arguments.posonlyargs,
        *arguments.args,
        *([arguments.vararg] if arguments.vararg else []),
        *arguments.kwonlyargs,
        *([arguments.kwarg] if arguments.kwarg else []),
    ]


def _bound_in_body(statements: list[ast.AST]) -> tuple[set[str], set[str]]:
    """(names bound, names declared global/nonlocal) by `statements`, not looking into nested scopes."""
    bound: set[str] = set()
    declared: set[str] = set()
    stack = list(statements)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
            stack.extend(node.decorator_list)
            if isinstance(node, ast.ClassDef):
                stack.extend([*node.bases, *node.keywords])
            else:
                stack.extend([*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)])
            continue
        if isinstance(node, ast.Lambda):
            stack.extend([*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)])
            continue
        if isinstance(node, _COMPREHENSIONS):
            # only assignment expressions inside bind here (in the enclosing function)
            stack.extend(n.target for n in ast.walk(node) if isinstance(n, ast.NamedExpr))
            stack.append(node.generators[0].iter)
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names if a.name != "*")
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            declared.update(node.names)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.add(node.rest)
        stack.extend(ast.iter_child_nodes(node))
    return bound, declared


@dataclass
class _Scope:
    node: ast.AST | None  # None: the module
    kind: str  # module, function, class, comprehension
    names: frozenset[str]
    parent: "_Scope | None"


class _Analysis:
    """Parents, and for every `Name` node the scope it refers to (`scope_of`), by Python's rules."""

    def __init__(self, tree: ast.Module):
        self.tree = tree
        self.parent: dict[int, ast.AST] = {}
        self.scope_of: dict[int, _Scope] = {}
        self.names: list[ast.Name] = []
        self.module = _Scope(None, "module", frozenset(), None)
        self.module_globals: set[str] = set()  # names declared `global` somewhere
        self.identifiers: set[str] = set()  # every identifier written anywhere
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                self.parent[id(child)] = node
            if isinstance(node, ast.Name):
                self.identifiers.add(node.id)
            elif isinstance(node, ast.arg):
                self.identifiers.add(node.arg)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.identifiers.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                self.identifiers.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, ast.Global):
                self.module_globals.update(node.names)
        self._visit_all(tree.body, self.module)

    def _visit_all(self, nodes, scope):
        stack = [(node, scope) for node in reversed(list(nodes))]
        while stack:
            node, scope = stack.pop()
            for child, child_scope in reversed(self._children(node, scope)):
                stack.append((child, child_scope))

    def _children(self, node, scope) -> list[tuple[ast.AST, _Scope]]:
        if isinstance(node, ast.Name):
            self.names.append(node)
            self.scope_of[id(node)] = self._resolve(node.id, scope)
            return []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            arguments = node.args
            outer = [*arguments.defaults, *(d for d in arguments.kw_defaults if d is not None)]
            if not isinstance(node, ast.Lambda):
                outer = [
                    *node.decorator_list,
                    *outer,
                    *(a.annotation for a in _parameters(arguments) if a.annotation is not None),
                    *([node.returns] if node.returns is not None else []),
                ]
            body = node.body if isinstance(node.body, list) else [node.body]
            bound, declared = _bound_in_body(body)
            names = frozenset((bound | {a.arg for a in _parameters(arguments)}) - declared)
            inner = _Scope(node, "function", names, scope)
            return [(n, scope) for n in outer] + [(n, inner) for n in body]
        if isinstance(node, ast.ClassDef):
            bound, declared = _bound_in_body(node.body)
            inner = _Scope(node, "class", frozenset(bound - declared), scope)
            outer = [*node.decorator_list, *node.bases, *node.keywords]
            return [(n, scope) for n in outer] + [(n, inner) for n in node.body]
        if isinstance(node, _COMPREHENSIONS):
            targets = {n.id for g in node.generators for n in ast.walk(g.target) if isinstance(n, ast.Name)}
            inner = _Scope(node, "comprehension", frozenset(targets), scope)
            rest = [n for n in ast.iter_child_nodes(node) if n is not node.generators[0]]
            first = node.generators[0]
            return [
                (first.iter, scope),
                (first.target, inner),
                *((n, inner) for n in first.ifs),
                *((n, inner) for n in rest),
            ]
        return [(child, scope) for child in ast.iter_child_nodes(node)]

    def _resolve(self, name: str, scope: _Scope) -> _Scope:
        innermost = True
        while scope.kind != "module":
            if (scope.kind != "class" or innermost) and name in scope.names:
                return scope
            innermost = False
            scope = scope.parent
        return scope

    def global_uses(self, name: str) -> list[ast.Name]:
        """The `Name` nodes that read or write the module-level binding of `name`."""
        return [n for n in self.names if n.id == name and self.scope_of[id(n)] is self.module]

    def module_bindings(self, name: str) -> list[ast.AST]:
        """The statements and nodes that bind `name` at the module level."""
        out: list[ast.AST] = [n for n in self.global_uses(name) if isinstance(n.ctx, (ast.Store, ast.Del))]
        for statement in ast.walk(self.tree):
            if (
                isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                and statement.name == name
                and self._scope_of_statement(statement) is self.module
            ):
                out.append(statement)
            elif (
                isinstance(statement, (ast.Import, ast.ImportFrom))
                and self._scope_of_statement(statement) is self.module
                and any((a.asname or a.name).split(".")[0] == name for a in statement.names)
            ):
                out.append(statement)
        return out

    def _scope_of_statement(self, statement: ast.AST) -> _Scope | None:
        """The module scope when `statement` runs at the top level (not inside a def/class/lambda)."""
        node = statement
        while id(node) in self.parent:
            node = self.parent[id(node)]
            if isinstance(node, (*_FUNCTIONS, ast.ClassDef)):
                return None
        return self.module

    def bound_anywhere(self, name: str) -> bool:
        """Whether anything in the program binds `name` (in any scope)."""
        return name in self.module_globals or name in self.bound_names

    @functools.cached_property
    def bound_names(self) -> frozenset[str]:
        """Every name the program binds anywhere (assignments, parameters, definitions, `except ... as`,
        imports), collected in one walk (asked once per call of many rules)."""
        names: set[str] = set()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
                names.add(node.id)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                names.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
        return frozenset(names)

    def chain(self, name: ast.Name) -> tuple[ast.expr, list[str]]:
        """The longest attribute chain read from `name` (`nn.functional.silu`) and its attributes."""
        node: ast.expr = name
        attributes: list[str] = []
        while True:
            parent = self.parent.get(id(node))
            if isinstance(parent, ast.Attribute) and parent.value is node and isinstance(parent.ctx, ast.Load):
                attributes.append(parent.attr)
                node = parent
            else:
                return node, attributes


def _import_path(statement: ast.Import | ast.ImportFrom, alias: ast.alias) -> str:
    """The dotted path of what `alias` binds (`import torch.nn` binds `torch`: path `torch`)."""
    if isinstance(statement, ast.Import):
        return alias.name if alias.asname else alias.name.split(".")[0]
    return f"{statement.module}.{alias.name}"


def _dotted(node: ast.AST) -> tuple[ast.Name, list[str]] | None:
    """(root name, attributes) of a plain `a.b.c` expression, or None."""
    attributes: list[str] = []
    while isinstance(node, ast.Attribute):
        attributes.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return node, attributes[::-1]
    return None


# ------------------------------------------------------------------------------------------------
# Paths through the imports
# ------------------------------------------------------------------------------------------------


def _import_bindings(tree: ast.Module, analysis: _Analysis) -> dict[str, str]:
    """Module-level name of `tree` -> the dotted path it holds, for names bound only by imports of one
    path, and the pre-imported names that nothing in the program binds."""
    paths: dict[str, set[str]] = {}
    for statement in tree.body:
        if isinstance(statement, (ast.Import, ast.ImportFrom)) and not (
            isinstance(statement, ast.ImportFrom) and (statement.level or not statement.module)
        ):
            for alias in statement.names:
                if alias.name != "*":
                    paths.setdefault((alias.asname or alias.name).split(".")[0], set()).add(
                        _import_path(statement, alias)
                    )
    out = {}
    for name, held in paths.items():
        bindings = analysis.module_bindings(name)
        if (
            len(held) == 1
            and all(isinstance(b, (ast.Import, ast.ImportFrom)) for b in bindings)
            and name not in analysis.module_globals
        ):
            out[name] = next(iter(held))
    for name, path in _PREIMPORTED.items():
        if name not in paths and not analysis.bound_anywhere(name):
            out[name] = path
    return out


def _path_of(node: ast.AST, analysis: _Analysis, bindings: dict[str, str]) -> str | None:
    """The dotted path a plain `a.b.c` expression reads through the imports, or None."""
    dotted = _dotted(node)
    if dotted is None:
        return None
    root, attributes = dotted
    if analysis.scope_of.get(id(root)) is not analysis.module or root.id not in bindings:
        return None
    return ".".join([bindings[root.id], *attributes])
