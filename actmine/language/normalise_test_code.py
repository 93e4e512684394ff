"""Which top-level statements of a program are test code: the normaliser's rules 1 and 2 read them.

`_is_main_test` recognises the `if __name__ == "__main__":` guard (rule 1). The steps of rule 2's
test-line detection (`_Normaliser.drop_test_lines` in `normalise_rules`) are module-level functions
here, so each can be read alone: a statement's shape (`_has_test_shape`), whether it calls only what
test code calls (`_calls_only_test_functions`), the assignments that only feed it
(`_with_test_inputs`) and the guard that keeps every name a remaining statement reads
(`_unbinds_a_kept_read`). They read the program (`normalise_scopes`) and edit nothing.
"""

from __future__ import annotations

import ast
from typing import Callable

from .normalise_scopes import _Analysis, _dotted, _path_of
from .normalise_vocabulary import _TEST_CALLS, _spell


def _is_main_test(test: ast.expr) -> bool:
    """`__name__ == "__main__"` (either order)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    texts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(texts) == 1


def _top_level_functions(tree: ast.Module) -> set[str]:
    """The names of the program's top-level functions (test code may call them)."""
    return {s.name for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))}


def _calls_only_test_functions(
    statement: ast.stmt, analysis: _Analysis, bindings: dict[str, str], functions: set[str]
) -> bool:
    """Whether every call `statement` makes is one test code makes -- `print`, a function of the
    program (`functions`), a function of the language or a tensor constructor (`_TEST_CALLS`), a
    method of a value -- and it defines, imports, declares, deletes, stores to attributes and awaits
    nothing."""
    for node in ast.walk(statement):
        if (
            isinstance(
                node,
                (
                    ast.FunctionDef,
                    ast.AsyncFunctionDef,
                    ast.ClassDef,
                    ast.Lambda,
                    ast.Import,
                    ast.ImportFrom,
                    ast.Global,
                    ast.Nonlocal,
                    ast.Delete,
                    ast.With,
                    ast.AsyncWith,
                    ast.While,
                    ast.Try,
                    ast.NamedExpr,
                    ast.Await,
                    ast.Yield,
                    ast.YieldFrom,
                ),
            )
            or type(node).__name__ == "TryStar"
        ):
            return False
        if isinstance(node, ast.Attribute) and (
            isinstance(node.ctx, (ast.Store, ast.Del)) or node.attr.startswith("_")
        ):
            return False
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if (
            isinstance(func, ast.Name)
            and func.id in functions | {"print"}
            and not (func.id == "print" and analysis.bound_anywhere("print"))
        ):
            continue
        path = _path_of(func, analysis, bindings)
        if path is not None:
            spelled = _spell(path)
            if spelled is not None or path in _TEST_CALLS:
                continue
            return False
        if isinstance(func, ast.Attribute) and _dotted(func) is None:
            continue  # a method of a value: `activation_function(x).mean()`
        if (
            isinstance(func, ast.Attribute)
            and not func.attr.endswith("_")
            and analysis.scope_of.get(id(_dotted(func)[0])) is analysis.module
            and _dotted(func)[0].id not in bindings
        ):
            continue  # a method of a top-level value: `xs.tolist()`
        return False
    return True


def _has_test_shape(statement: ast.stmt) -> bool:
    """A call statement, an `assert`, or a `for` loop of those (and of assignments, `if`s, `pass`)."""
    if isinstance(statement, ast.Expr):
        return isinstance(statement.value, ast.Call)
    if isinstance(statement, ast.Assert):
        return True
    if isinstance(statement, ast.For):  # (a top-level `if` is the policy's: only __main__ goes)
        return all(
            isinstance(s, (ast.Expr, ast.Assert, ast.For, ast.If, ast.Assign, ast.AugAssign, ast.Pass))
            for s in ast.walk(statement)
            if isinstance(s, ast.stmt) and s is not statement
        )
    return False


def _global_reads(statements: list[ast.stmt], analysis: _Analysis) -> set[str]:
    """The module-level names that `statements` read."""
    return {
        n.id
        for s in statements
        for n in ast.walk(s)
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and analysis.scope_of.get(id(n)) is analysis.module
    }


def _assigned(statement: ast.Assign | ast.AugAssign) -> list[ast.expr]:
    """The targets of an assignment (`x = y = ...`) or an augmented assignment (`x += ...`)."""
    return statement.targets if isinstance(statement, ast.Assign) else [statement.target]


def _with_test_inputs(
    dropped: list[ast.stmt], body: list[ast.stmt], analysis: _Analysis, only_test_calls: Callable[[ast.stmt], bool]
) -> list[ast.stmt]:
    """`dropped` and, after it, the assignments of `body` whose names only the dropped statements (and
    other such assignments) read (`x = torch.randn(10)` for `print(activation_function(x))`)."""
    dropped = list(dropped)
    while True:
        kept = [s for s in body if not any(s is d for d in dropped)]
        read_by_kept = _global_reads(kept, analysis)
        read_by_dropped = _global_reads(dropped, analysis)
        more = [
            s
            for s in kept
            if isinstance(s, (ast.Assign, ast.AugAssign))
            and only_test_calls(s)
            and all(isinstance(t, ast.Name) for t in _assigned(s))
            and {t.id for t in _assigned(s)} <= read_by_dropped
            and not {t.id for t in _assigned(s)} & read_by_kept
        ]
        if not more:
            return dropped
        dropped += more


def _unbinds_a_kept_read(dropped: list[ast.stmt], body: list[ast.stmt], analysis: _Analysis) -> bool:
    """Whether a statement of `body` that stays reads a name that a dropped one binds (a `for` target
    read later): then nothing is dropped."""
    kept = [s for s in body if not any(s is d for d in dropped)]
    read_by_kept = _global_reads(kept, analysis)
    bound_by_dropped = {
        n.id for s in dropped for n in ast.walk(s) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }
    return bool(bound_by_dropped & read_by_kept)
