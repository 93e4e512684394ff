"""The parent program the symbolic mutator edits, and the inspirations' expressions it splices in.

`_Program.parse` reads a candidate (after the static policy) as an editable program: the expression
that `activation_function` returns, the names holding tensors, and, for the programs the
`expressions.evaluate` interpreter models, its `Evaluable`; a program with no single final return is
wrapped (its function renamed `base_activation` and called from a new `activation_function`).
`_Program.render` writes the program back with another return expression.
`_inspiration_expression` is an inspiration's return expression with its assignments inlined, for
the `crossover` operator. Used by `symbolic` only; nothing here registers a mutator.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from actmine.candidate.source import CandidateError, check_source

from .base import Parent
from .expressions import (
    ENTRY_POINT,
    Evaluable,
    Helper,
    clone,
    count_nodes,
    evaluable_program,
    name,
    rename,
)

BASE_NAME = "base_activation"
MAX_INLINED_NODES = 200  # an inspiration whose inlined expression is larger is not used


def _function_nodes(func: ast.FunctionDef):
    """The nodes of a function's body, not descending into nested functions, lambdas or classes."""
    stack: list[ast.AST] = list(func.body)
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                stack.append(child)


def _tensor_names(func: ast.FunctionDef, param: str) -> frozenset[str]:
    """The parameter and every local bound by a statement that mentions a tensor-valued name."""
    names = {param}
    for _ in range(4):  # a small fixpoint: enough for chains of assignments
        before = len(names)
        for statement in func.body:
            stored = {n.id for n in ast.walk(statement) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
            loaded = {n.id for n in ast.walk(statement) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
            if loaded & names:
                names |= stored
        if len(names) == before:
            break
    return frozenset(names)


@dataclass
class _Program:
    module: ast.Module  # the (checked) program; when `wrapped`, with the new function appended
    index: int  # position of `def activation_function` in module.body
    param: str
    expr: ast.expr  # the returned expression
    tensor_names: frozenset[str]
    wrapped: bool
    evaluable: Evaluable | None
    original: str  # the parent's source as `ast.unparse` writes it

    @classmethod
    def parse(cls, source: str, checked: bool = False) -> _Program:
        """The program of `source`; `checked`: it is known to pass the policy (skip the check)."""
        tree = ast.parse(source) if checked else check_source(source)
        original = ast.unparse(tree) + "\n"
        index = max(i for i, s in enumerate(tree.body) if isinstance(s, ast.FunctionDef) and s.name == ENTRY_POINT)
        func = tree.body[index]
        params = func.args.posonlyargs + func.args.args
        returns = [n for n in _function_nodes(func) if isinstance(n, ast.Return)]
        if len(returns) == 1 and func.body[-1] is returns[0] and returns[0].value is not None:
            param = params[0].arg
            return cls(
                tree,
                index,
                param,
                returns[0].value,
                _tensor_names(func, param),
                False,
                evaluable_program(tree),
                original,
            )
        # No single final `return <expr>`: call the whole function as a black box.
        used = (
            {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
            | {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
            | {a.arg for a in ast.walk(tree) if isinstance(a, ast.arg)}
        )
        base, k = BASE_NAME, 1
        while base in used:
            base, k = f"{BASE_NAME}_{k}", k + 1
        for node in ast.walk(tree):  # calls of the old function (recursion) now go to the base
            if isinstance(node, ast.Name) and node.id == ENTRY_POINT:
                node.id = base
        tree.body[index].name = base
        wrapper = ast.parse(f"def {ENTRY_POINT}(x):\n    return {base}(x)\n").body[0]
        tree.body.append(wrapper)
        return cls(tree, len(tree.body) - 1, "x", wrapper.body[-1].value, frozenset({"x"}), True, None, original)

    def render(self, expr: ast.expr) -> str:
        statement = self.module.body[self.index].body[-1]
        original, statement.value = statement.value, expr
        try:
            return ast.unparse(self.module) + "\n"
        finally:
            statement.value = original

    def evaluable_with(self, expr: ast.expr) -> Evaluable | None:
        return self.evaluable.with_expr(expr) if self.evaluable is not None else None

    @property
    def x(self) -> ast.Name:
        return name(self.param)


def _inspiration_expression(parent: Parent, param: str) -> ast.expr | None:
    """The inspiration's return expression with its local and module-level assignments inlined and
    its parameter renamed to `param`; None unless that leaves only the input and torch/F/math."""
    try:
        program = evaluable_program(check_source(parent.source))
    except CandidateError:
        return None
    if program is None:
        return None
    bindings: dict[str, ast.expr] = {}

    def inline(node: ast.expr) -> ast.expr:
        node = clone(node)

        class _Inline(ast.NodeTransformer):
            def visit_Name(self, n):  # noqa: N802 (ast's naming)
                return clone(bindings[n.id]) if n.id in bindings else n

        return _Inline().visit(node)

    for target, value in list(program.setup) + [(program.param, None)] + list(program.body) + [("", program.expr)]:
        if value is None or isinstance(value, Helper):  # the parameter shadows a module-level name;
            bindings.pop(target, None)  # helpers are not inlined (nor used)
            continue
        inlined = inline(value)
        if count_nodes(inlined) > MAX_INLINED_NODES:  # chains of assignments can grow exponentially
            return None
        bindings[target] = inlined
    expr = bindings[""]
    expr = rename(expr, program.param, "\0")  # two steps: the parent's name may be a local here
    expr = rename(expr, "\0", param)
    if not {n.id for n in ast.walk(expr) if isinstance(n, ast.Name)} <= {param, "torch", "F", "math"}:
        return None
    return expr
