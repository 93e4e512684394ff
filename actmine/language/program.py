"""The checked representation of a straight-line candidate program, and the one place that renders one.

A candidate is untrusted source. The parts of the project that read a program without running it
(the offline mutators' screen, the report's formulas and curves) work on this representation,
built from an `ast.Module` -- nothing is ever executed to build it:

- module-level constant assignments `NAME = expression` (in order; a docstring is allowed),
- helper functions `def helper(a, b): ...` of plain positional parameters whose body is an optional
  docstring, assignments to names (`y = ...`, `y += ...`) and one final `return expression`,
- exactly one `def activation_function(x)` of the same shape with one parameter.

Anything else (loops, branches as statements, defaults, decorators, nested functions, walrus,
lambdas, comprehensions, ...) is outside the subset: `read_program` raises `ProgramError` saying
what and where, `Program.from_module` returns None. Which expressions *evaluate* (which functions,
keywords and constants) is the interpreter's business (`actmine.language.interpreter`), driven by
the operation table; this module only fixes the statement shape.

Semantics kept exact where Python's differ from "substitute the expression":
- a name assigned in a function is local to the whole function (as in Python): reading it before
  its assignment is refused here, where Python would raise `UnboundLocalError`;
- `y += e` is read as `y = y + e`. On a tensor Python updates in place, which differs only when `y`
  aliases another live tensor; the two cases that alias for certain (the target is a parameter, or
  was bound by `y = other_name`) are refused.
"""

from __future__ import annotations

import ast
import dataclasses
from dataclasses import dataclass
from typing import TypeVar

__all__ = [
    "ENTRY_POINT",
    "PARAM",
    "Helper",
    "Program",
    "ProgramError",
    "read_program",
    "parse_program",
    "render_program",
]

ENTRY_POINT = "activation_function"
PARAM = "x"

#: Expression nodes that bind names or hide control flow: never part of a straight-line program.
_BINDING_OR_CONTROL = (
    ast.NamedExpr,
    ast.Lambda,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
    ast.Await,
    ast.Yield,
    ast.YieldFrom,
)

Statements = tuple[tuple[str, ast.expr], ...]


class ProgramError(ValueError):
    """The program is outside the straight-line subset (the message says what and where)."""


@dataclass(frozen=True)
class Helper:
    """A helper function of a program: positional parameters, assignments to names, a final return."""

    params: tuple[str, ...]
    body: Statements
    expr: ast.expr


P = TypeVar("P", bound="Program")


@dataclass(frozen=True)
class Program:
    """A straight-line program: the module-level assignments and helper functions (`setup`, in
    source order), the entry function's parameter, its assignments (`body`, in order) and its
    return expression (`expr`)."""

    param: str
    setup: tuple[tuple[str, ast.expr | Helper], ...]
    body: Statements
    expr: ast.expr

    def with_expr(self: P, expr: ast.expr) -> P:
        """The same program returning `expr` (keeps the subclass)."""
        return dataclasses.replace(self, expr=expr)

    @classmethod
    def from_module(cls: type[P], module: ast.Module) -> P | None:
        """The program of `module`, or None when it is outside the subset."""
        try:
            return read_program(module, cls)
        except ProgramError:
            return None

    @property
    def helpers(self) -> dict[str, Helper]:
        return {target: value for target, value in self.setup if isinstance(value, Helper)}


def _where(node: ast.AST) -> str:
    line = getattr(node, "lineno", None)
    return f" (line {line})" if line is not None else ""


def _check_expression(expr: ast.expr) -> None:
    for node in ast.walk(expr):
        if isinstance(node, _BINDING_OR_CONTROL):
            raise ProgramError(f"{type(node).__name__} is not part of a straight-line program{_where(node)}")


def _function(function: ast.FunctionDef) -> Helper:
    """A function of plain positional parameters whose body is assignments to names and a final
    return (a docstring allowed)."""
    arguments = function.args
    if (
        function.decorator_list
        or arguments.posonlyargs
        or arguments.vararg
        or arguments.kwarg
        or arguments.kwonlyargs
        or arguments.defaults
    ):
        raise ProgramError(
            f"{function.name}: only plain positional parameters, no defaults or decorators{_where(function)}"
        )
    statements = list(function.body)
    if statements and isinstance(statements[0], ast.Expr) and isinstance(statements[0].value, ast.Constant):
        statements = statements[1:]
    if not statements or not isinstance(statements[-1], ast.Return) or statements[-1].value is None:
        raise ProgramError(f"{function.name} must end with one `return expression`{_where(function)}")
    params = tuple(a.arg for a in arguments.args)
    if len(set(params)) != len(params):
        raise ProgramError(f"{function.name}: repeated parameter names{_where(function)}")
    assigned = {
        s.targets[0].id if isinstance(s, ast.Assign) else s.target.id
        for s in statements[:-1]
        if isinstance(s, (ast.Assign, ast.AugAssign))
        and isinstance(s.targets[0] if isinstance(s, ast.Assign) else s.target, ast.Name)
    }
    bound: set[str] = set(params)  # names readable so far (locals are local to the whole body)
    aliases: set[str] = set(params)  # names that may share a tensor with another live name
    body: list[tuple[str, ast.expr]] = []

    def check_reads(expr: ast.expr) -> None:
        _check_expression(expr)
        for node in ast.walk(expr):
            if isinstance(node, ast.Name) and node.id in assigned and node.id not in bound:
                raise ProgramError(f"{function.name} reads the local `{node.id}` before assigning it{_where(node)}")

    for statement in statements[:-1]:
        if (
            isinstance(statement, ast.Assign)
            and len(statement.targets) == 1
            and isinstance(statement.targets[0], ast.Name)
        ):
            target, value = statement.targets[0].id, statement.value
            check_reads(value)
            if isinstance(value, ast.Name):
                aliases |= {target, value.id}
            else:
                aliases.discard(target)
        elif isinstance(statement, ast.AugAssign) and isinstance(statement.target, ast.Name):
            target = statement.target.id
            check_reads(statement.value)
            if target not in bound or target in aliases:
                raise ProgramError(
                    f"{function.name}: `{target} {type(statement.op).__name__}=` updates a "
                    f"parameter or an alias in place{_where(statement)}; write "
                    f"`{target} = {target} ... ` with a new name instead"
                )
            value = ast.BinOp(ast.Name(target, ast.Load()), statement.op, statement.value)
        else:
            raise ProgramError(f"{function.name}: only assignments to names before the final return{_where(statement)}")
        body.append((target, value))
        bound.add(target)
    check_reads(statements[-1].value)
    return Helper(params, tuple(body), statements[-1].value)


def read_program(module: ast.Module, cls: type[P] = Program) -> P:  # type: ignore[assignment]
    """The program of `module` as `cls`; raises `ProgramError` when it is outside the subset."""
    setup: list[tuple[str, ast.expr | Helper]] = []
    entry: Helper | None = None
    for statement in module.body:
        if (
            isinstance(statement, ast.Assign)
            and len(statement.targets) == 1
            and isinstance(statement.targets[0], ast.Name)
        ):
            _check_expression(statement.value)
            setup.append((statement.targets[0].id, statement.value))
        elif isinstance(statement, ast.FunctionDef):
            function = _function(statement)
            if statement.name == ENTRY_POINT:
                if entry is not None:
                    raise ProgramError(f"{ENTRY_POINT} is defined twice{_where(statement)}")
                entry = function
            else:
                setup.append((statement.name, function))
        elif isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            continue  # a docstring
        else:
            raise ProgramError(
                f"a top-level {type(statement).__name__} statement is outside the straight-line "
                f"subset{_where(statement)}"
            )
    if entry is None:
        raise ProgramError(f"no `def {ENTRY_POINT}(x)`")
    if len(entry.params) != 1:
        raise ProgramError(f"{ENTRY_POINT} must take exactly one parameter")
    if ENTRY_POINT in {t for t, _ in setup}:
        raise ProgramError(f"{ENTRY_POINT} is also bound at module level")
    return cls(entry.params[0], tuple(setup), entry.body, entry.expr)


def parse_program(source: str, cls: type[P] = Program) -> P:  # type: ignore[assignment]
    """`read_program` of source text (parsed, never executed); a syntax error is a `ProgramError`."""
    try:
        module = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise ProgramError(f"not valid Python: {type(exc).__name__}") from None
    return read_program(module, cls)


def render_program(expr: ast.expr, param: str = PARAM) -> str:
    """`def activation_function(<param>):\\n    return <expr>\\n` -- the one way a bare expression
    becomes candidate source."""
    return f"def {ENTRY_POINT}({param}):\n    return {ast.unparse(expr)}\n"


def ast_depth(tree: ast.AST, stop_beyond: int | None = None) -> tuple[int, ast.AST | None]:
    """The depth of the deepest node of `tree` and that node, walked iteratively (a hostile tree may be
    too deep to recurse over); with `stop_beyond`, the walk stops at the first node deeper than that."""
    deepest, where = 0, None
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > deepest:
            deepest, where = depth, node
            if stop_beyond is not None and depth > stop_beyond:
                break
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest, where
