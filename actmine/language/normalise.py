"""Normalisation before the policy: well-meaning boilerplate rewritten into the candidate language.

Models write candidates the way they write any PyTorch code: type hints, `import torch.nn as nn`,
`np.pi`, `@torch.jit.script`, a small `nn.Module`, an `if __name__ == "__main__":` self-test. The
policy (`actmine.candidate.source.check_source`) refuses all of these, and each refusal wastes a
paid call. `normalise` rewrites the ones whose meaning is certain into the language, and leaves
everything else exactly as written, for the policy to refuse with its reason. It is a pure
ast → source transformation: it never runs, imports or evaluates anything of the program, and it
never raises (a source that does not parse comes back unchanged).

The rules, applied in this order (each application is one line of `Normalised.changes`):

1. **`from __future__ import ...`** is dropped (compiler directives; the one that matters,
   `annotations`, is moot once the annotations are gone).
2. **Top-level `if __name__ == "__main__":` blocks** (that exact test, either order of the
   comparison, no `else`) are dropped: they never run when the program is loaded as a candidate.
   **Top-level test lines** without that guard go too (`_Normaliser.drop_test_lines`): call
   statements, `assert`s and `for` loops of those, whose calls are `print`, the program's own
   functions, functions of the language or a few tensor constructors (`_TEST_CALLS`), with the
   assignments only they read (`x = torch.randn(10)`). None of it changes what the functions compute.
3. **Annotations** are dropped, all of them: parameters, returns, `X: float = 1.0` (becomes
   `X = 1.0`) and bare `X: float` (dropped). An annotation never changes what a function computes.
   A top-level type alias that nothing reads once they are gone (`Number = Union[int, float]`,
   made of typing names and builtin types only) goes with them.
4. **Decorators that return the same function, or one that computes the same values**, are dropped
   (`_TRANSPARENT_DECORATORS`): `torch.jit.script`, `torch.jit.ignore`/`unused`/`export`,
   `torch.compile` and `torch.compile(...)`, `functools.lru_cache`/`lru_cache(...)`/`cache`,
   `typing.final`/`no_type_check` -- in any spelling the imports allow (`@jit.script`, `@lru_cache`).
   A cache only remembers results of a pure function (and is state: dropping it removes state).
   Every other decorator stays for the policy to refuse: `torch.no_grad`/`torch.inference_mode`
   change the value (no gradient), `functools.wraps` only appears inside a hand-written decorator,
   which stays refused anyway.
5. **A stateless `nn.Module` subclass becomes a function** (`_ClassConverter`): a top-level class
   whose only base is `torch.nn.Module`, whose `__init__` only calls `super().__init__()` and sets
   attributes to constants (or to its own parameters, all with constant defaults), and whose
   `forward(self, x)` reads `self` only through those attributes. The function is named after the
   class in snake case (`SoftClip` → `soft_clip`), takes forward's arguments, and the attributes
   become keyword-only arguments with their constant values as defaults. Its uses are rewritten:
   `Act()(x)`, `Act().forward(x)`, `Act(0.5)(x)` (the constructor's arguments become those keywords),
   and `act = Act(...)` (at the top level or in a function) when `act` is then only called
   (`act(x)`, `act.forward(x)`). Any other class, or any other use of it, leaves the class as
   written, which the policy refuses with a message that says how to write it as a function.
6. **Imports of the pre-imported modules and their aliases** (`_resolve_imports`): an import of
   torch, math, numpy, functools, typing or typing_extensions is dropped when every use of every
   name it binds can be written in the language's own spelling, and each use is rewritten:
   `import torch as th` → `torch.…`, `import math as m` → `math.…`, `import torch.nn.functional as
   fn` / `torch.nn.functional.X` / `nn.functional.X` → `F.X`, `from math import pi, sqrt` →
   `math.pi`, `math.sqrt`, `from torch.nn.functional import gelu` → `F.gelu`, numpy's constants
   `np.pi`, `np.e`, `np.inf`, `np.nan` → `math.…` (and `np.euler_gamma` → its value; numpy's
   constants are plain Python floats), and `nn.GELU()(x)` → `F.gelu(x)` for the stateless activation
   modules of `torch.nn` whose functional twin is in the language (`ACTIVATION_MODULES`, derived
   from torch.nn and the table, not hand-written; `inplace=` is dropped: the output is the same).
   A rewritten use must land on a spelling of the language table (`actmine.language.ops`). An import
   of those modules whose names are not used at all is dropped too (`from typing import Optional`
   once the annotations are gone), and so is an import of any module that only the test code of
   rule 2 used (`import matplotlib.pyplot as plt` for a plot in the `__main__` block): dropping an
   import only removes code. An import that was never used stays (`import os` is refused, used or
   not). `import math` / `import torch` inside a function are dropped. Scoping is respected: a
   local that shadows an alias is not rewritten.
   A name that is also bound another way (rebound), used in a way that cannot be spelled in the
   language (`nn.Linear`, `np.random`, `from torch import load`, the module itself passed as a
   value), or any import of another module leaves its import in place: the policy refuses it as
   `import`. `torch`, `F` and `math` rooted chains are also put in canonical form
   (`torch.nn.functional.silu` → `F.silu`).

A module docstring and other string statements are kept (harmless). A source that already passes
the policy is returned unchanged, and normalising twice changes nothing.

How the text is written: every rule edits the parsed tree and records the text range it replaces.
The edits are spliced into the original text, which keeps the author's comments and layout, and
the result is parsed back and compared with the edited tree; if the two differ (an unusual layout:
`import torch; x = 1`, parenthesised annotations), the edited tree is written out with `ast.unparse`
instead. Either way the returned source means exactly the edited tree.
"""

from __future__ import annotations

import ast
import copy
import functools
import inspect
import re
from dataclasses import dataclass
from typing import Callable

from . import ops as _ops
from .program import ast_depth

__all__ = ["Normalised", "normalise", "ACTIVATION_MODULES"]


@dataclass(frozen=True)
class Normalised:
    """A program after normalisation: `source` is what is checked, stored, exported and shown;
    `changes` says, one short line each, what was rewritten (empty: `source` is the input)."""

    source: str
    changes: tuple[str, ...] = ()


def normalise(source: str) -> Normalised:
    """The normalised program (see the module docstring). Never raises: a source that does not
    parse, nests too deeply, or meets anything this code does not expect comes back unchanged, and
    the policy then judges it as written."""
    if not isinstance(source, str):
        return Normalised(source)
    try:
        return _Normaliser(source).run()
    except Exception:   # noqa: BLE001 -- the contract: the policy sees the program as written instead
        return Normalised(source)


# ------------------------------------------------------------------------------------------------
# What the rules know
# ------------------------------------------------------------------------------------------------

#: The names a candidate starts with, and the module each stands for.
_PREIMPORTED = {"torch": "torch", "F": "torch.nn.functional", "math": "math"}
#: Modules whose imports may be dropped once every name they bind is rewritten or unused.
_KNOWN_MODULES = frozenset({"torch", "math", "numpy", "functools", "typing", "typing_extensions"})

#: Decorators (dotted paths after resolving the imports) that return the function itself or one that
#: computes the same values; `_TRANSPARENT_DECORATOR_CALLS` may also be called with constant arguments.
_TRANSPARENT_DECORATORS = frozenset({
    "torch.jit.script", "torch.jit.ignore", "torch.jit.unused", "torch.jit.export", "torch.compile",
    "functools.lru_cache", "functools.cache", "typing.final", "typing.no_type_check",
    "typing_extensions.final",
})
_TRANSPARENT_DECORATOR_CALLS = frozenset({"torch.compile", "functools.lru_cache", "torch.jit.ignore"})

#: torch functions outside the language that test code calls (`x = torch.randn(10)`, `torch.manual_seed(0)`):
#: they change no state a candidate can see (a candidate cannot draw random numbers).
_TEST_CALLS = frozenset(f"torch.{name}" for name in (
    "randn rand randint randn_like rand_like randperm normal linspace logspace arange tensor as_tensor zeros "
    "ones full empty zeros_like ones_like full_like eye allclose isclose equal manual_seed".split()))

#: numpy's constants (plain Python floats) and their spelling in the language.
_NUMPY_CONSTANTS: dict[str, ast.expr | str] = {
    "numpy.pi": "math.pi", "numpy.e": "math.e", "numpy.inf": "math.inf", "numpy.nan": "math.nan",
    "numpy.euler_gamma": "0.5772156649015329",   # float(numpy.euler_gamma); math has no name for it
}

_SPELLINGS = frozenset(_ops.OP_BY_SPELLING) | frozenset(_ops.CONSTANT_BY_SPELLING)


def _activation_modules() -> dict[str, tuple[str, tuple[str, ...]]]:
    """`torch.nn.<Class>` -> (`F.<name>`, the constructor's parameters in order) for the stateless
    activation modules whose functional twin is in the language with the same parameters.

    Derived, not listed: every `nn.Module` class of `torch.nn.modules.activation` whose lower-case
    name is an `F.` spelling of the table without underscores (`LeakyReLU` ↔ `F.leaky_relu`), and
    whose constructor parameters are all keywords of that op (or `inplace`, which changes only the
    input). Where Python can read both signatures, the defaults must agree too (the builtins among
    the functionals, such as `F.gelu`, have none to read: there the table's keywords decide).
    """
    torch = _ops.ROOTS["torch"]
    functional = _ops.ROOTS["F"]
    activation = getattr(getattr(torch.nn, "modules", None), "activation", None)
    if activation is None:
        return {}
    names = {name.replace("_", ""): name for name in _ops.allowed_names("F")}
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for class_name in dir(activation):
        cls = getattr(activation, class_name)
        twin = names.get(class_name.lower())
        if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module) and twin):
            continue
        try:
            parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
        except (TypeError, ValueError):
            continue
        if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters):
            parameters = []   # `Tanh(*args, **kwargs)`: takes nothing that matters
        keywords = _ops.keywords_of(f"F.{twin}") | {"inplace"}
        if any(p.name not in keywords for p in parameters):
            continue          # PReLU (learned weight), Hardtanh's deprecated min_value/max_value
        try:
            functional_defaults = {p.name: p.default for p in
                                   inspect.signature(getattr(functional, twin)).parameters.values()}
        except (TypeError, ValueError):
            functional_defaults = {}
        if any(p.name in functional_defaults and p.default is not inspect.Parameter.empty
               and functional_defaults[p.name] != p.default for p in parameters):
            continue
        out[f"torch.nn.{class_name}"] = (f"F.{twin}", tuple(p.name for p in parameters))
    return out


#: The stateless activation modules of torch.nn and their functional twins (`_activation_modules`).
ACTIVATION_MODULES: dict[str, tuple[str, tuple[str, ...]]] = _activation_modules()


def _spell(path: str) -> ast.expr | None:
    """The language's own spelling of the object at dotted `path` (an expression), or None."""
    if path.startswith("torch.nn.functional."):
        path = "F." + path[len("torch.nn.functional."):]
    elif path in _NUMPY_CONSTANTS:
        path = _NUMPY_CONSTANTS[path]
    if path not in _SPELLINGS and not path[0].isdigit():
        return None
    return _fresh(path)


def _fresh(text: str) -> ast.expr:
    """The expression `text` as new nodes, without positions (they have no place in the source)."""
    node = ast.parse(text, mode="eval").body
    for part in ast.walk(node):
        for attribute in ("lineno", "col_offset", "end_lineno", "end_col_offset"):
            if hasattr(part, attribute):
                delattr(part, attribute)
    return node


# ------------------------------------------------------------------------------------------------
# Scopes: which binding each name refers to
# ------------------------------------------------------------------------------------------------

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _parameters(arguments: ast.arguments) -> list[ast.arg]:
    return [*arguments.posonlyargs, *arguments.args, *([arguments.vararg] if arguments.vararg else []),
            *arguments.kwonlyargs, *([arguments.kwarg] if arguments.kwarg else [])]


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
    node: ast.AST | None       # None: the module
    kind: str                  # module, function, class, comprehension
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
        self.module_globals: set[str] = set()   # names declared `global` somewhere
        self.identifiers: set[str] = set()      # every identifier written anywhere
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
                outer = [*node.decorator_list, *outer,
                         *(a.annotation for a in _parameters(arguments) if a.annotation is not None),
                         *([node.returns] if node.returns is not None else [])]
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
            return [(first.iter, scope), (first.target, inner), *((n, inner) for n in first.ifs),
                    *((n, inner) for n in rest)]
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
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
                    and statement.name == name and self._scope_of_statement(statement) is self.module:
                out.append(statement)
            elif isinstance(statement, (ast.Import, ast.ImportFrom)) \
                    and self._scope_of_statement(statement) is self.module \
                    and any((a.asname or a.name).split(".")[0] == name for a in statement.names):
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


def _is_constant(node: ast.AST, names_ok: Callable[[str], bool],
                 call_ok: Callable[[ast.Call], bool] = lambda call: False) -> bool:
    """An expression of literals, names that `names_ok` accepts, attribute chains of such names
    (`math.pi`), arithmetic and comparisons of those, and calls of math functions or of stateless
    activation modules on those: what may become a default argument."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Name):
        return names_ok(node.id)
    if isinstance(node, ast.Attribute):
        dotted = _dotted(node)
        return dotted is not None and names_ok(dotted[0].id)
    if isinstance(node, ast.UnaryOp):
        return _is_constant(node.operand, names_ok, call_ok)
    if isinstance(node, ast.BinOp):
        return _is_constant(node.left, names_ok, call_ok) and _is_constant(node.right, names_ok, call_ok)
    if isinstance(node, ast.BoolOp):
        return all(_is_constant(v, names_ok, call_ok) for v in node.values)
    if isinstance(node, ast.Compare):
        return all(_is_constant(v, names_ok, call_ok) for v in [node.left, *node.comparators])
    if isinstance(node, ast.IfExp):
        return all(_is_constant(v, names_ok, call_ok) for v in (node.test, node.body, node.orelse))
    if isinstance(node, ast.Tuple):
        return all(_is_constant(v, names_ok, call_ok) for v in node.elts)
    if isinstance(node, ast.Call):
        dotted = _dotted(node.func)
        return dotted is not None and names_ok(dotted[0].id) and call_ok(node) and \
            all(_is_constant(v, names_ok, call_ok) for v in [*node.args, *(k.value for k in node.keywords)]) \
            and all(k.arg is not None for k in node.keywords)
    return False


def _literal(node: ast.AST) -> bool:
    """Literals only (numbers, strings, None, booleans, tuples of them, negated numbers)."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return _literal(node.operand)
    if isinstance(node, ast.Tuple):
        return all(_literal(e) for e in node.elts)
    return False


def _snake(name: str) -> str:
    """`SoftClip` → `soft_clip`, `GELUSine` → `gelu_sine`."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return name.lower()


#: Deeper programs are left as written (the policy refuses past 200 levels; recursion stays bounded).
_MAX_DEPTH = 180


def _is_main_test(test: ast.expr) -> bool:
    """`__name__ == "__main__"` (either order)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    texts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(texts) == 1


# ------------------------------------------------------------------------------------------------
# Text edits
# ------------------------------------------------------------------------------------------------

@dataclass
class _Edit:
    start: int
    end: int
    text: Callable[[], str]    # computed at the end, from the final tree
    order: int


class _Normaliser:
    def __init__(self, source: str):
        self.source = source
        self.tree = ast.parse(source)
        self.changes: list[str] = []
        self.edits: list[_Edit] = []
        self.dead_names: set[str] = set()   # names read by the test code that was dropped
        self.text_ok = True     # False once an edit has no place in the text: written with ast.unparse
        starts, offset = [0], 0
        for line in re.split(r"(?<=\r\n)|(?<=\r)(?!\n)|(?<=\n)", source):
            offset += len(line)
            starts.append(offset)
        self.line_starts = starts
        self.lines = [source[a:b] for a, b in zip(starts, starts[1:])]

    # -- positions --

    def offset(self, line: int, col: int) -> int:
        """The character offset of (line, UTF-8 byte column)."""
        text = self.lines[line - 1] if line - 1 < len(self.lines) else ""
        return self.line_starts[line - 1] + len(text.encode("utf-8")[:col].decode("utf-8", "replace"))

    def span(self, node: ast.AST) -> tuple[int, int] | None:
        if getattr(node, "end_lineno", None) is None or getattr(node, "lineno", None) is None:
            return None
        return self.offset(node.lineno, node.col_offset), self.offset(node.end_lineno, node.end_col_offset)

    def statement_span(self, node: ast.stmt) -> tuple[int, int] | None:
        """The span of a statement with its decorators."""
        span = self.span(node)
        if span is None:
            return None
        decorators = getattr(node, "decorator_list", None)
        if decorators:
            first = self.span(decorators[0])
            if first is not None:
                at = self.source.rfind("@", 0, first[0])
                span = (at if at >= 0 else first[0], span[1])
        return span

    def edit(self, span: tuple[int, int] | None, text: Callable[[], str] | str):
        if span is None:
            self.text_ok = False
            return
        render = text if callable(text) else (lambda t=text: t)
        self.edits.append(_Edit(span[0], span[1], render, len(self.edits)))

    def replace_node(self, old: ast.AST, new: ast.AST, parent: ast.AST):
        """Put `new` where `old` is in `parent`, and edit the text of `old` into `new`'s."""
        for field, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, field, new)
                break
            if isinstance(value, list) and any(v is old for v in value):
                value[[i for i, v in enumerate(value) if v is old][0]] = new
                break
        else:
            raise ValueError("node not found in its parent")
        ast.copy_location(new, old)
        if hasattr(old, "end_lineno"):
            new.end_lineno, new.end_col_offset = old.end_lineno, old.end_col_offset
        span = self.statement_span(old) if isinstance(old, ast.stmt) else self.span(old)
        indent = self.lines[old.lineno - 1][:len(self.lines[old.lineno - 1]) -
                                              len(self.lines[old.lineno - 1].lstrip())] \
            if isinstance(old, ast.stmt) and getattr(old, "lineno", None) else ""
        self.edit(span, lambda: ast.unparse(new).replace("\n", "\n" + indent))

    def remove_statement(self, body: list[ast.stmt], statement: ast.stmt):
        """Remove `statement` from `body` (a `pass` takes its place if the body would be empty)."""
        index = [i for i, s in enumerate(body) if s is statement][0]
        span = self.statement_span(statement)
        if len(body) == 1 and body is not self.tree.body:
            body[0] = ast.copy_location(ast.Pass(), statement)
            self.edit(span, "pass")
            return
        del body[index]
        if span is None:
            self.text_ok = False
            return
        start, end = span
        line_start = self.source.rfind("\n", 0, start) + 1
        line_start = max(line_start, self.source.rfind("\r", 0, start) + 1)
        tail = re.match(r"[ \t\f]*(#[^\r\n]*)?(\r\n|\r|\n|$)", self.source[end:])
        if self.source[line_start:start].strip() == "" and tail is not None:
            start, end = line_start, end + tail.end()
            # a blank line on both sides: take the ones after too, so no gap of blank lines is left
            before = self.source[:start]
            if before.endswith(("\n\n", "\r\n\r\n", "\r\r")) or start == 0:
                blank = re.match(r"(?:[ \t\f]*(?:\r\n|\r|\n))+", self.source[end:])
                if blank:
                    end += blank.end()
        self.edit((start, end), "")

    def bodies(self):
        """Every statement list of the tree, with the list itself."""
        for node in ast.walk(self.tree):
            for field in ("body", "orelse", "finalbody"):
                value = getattr(node, field, None)
                if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                    yield node, value
            if isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
                for handler in node.handlers:
                    yield handler, handler.body

    # -- the run --

    def run(self) -> Normalised:
        if ast_depth(self.tree, _MAX_DEPTH)[0] > _MAX_DEPTH:
            return Normalised(self.source)
        self.drop_future_imports()
        self.drop_main_blocks()
        self.drop_test_lines()
        self.drop_annotations()
        self.drop_type_aliases()
        self.drop_transparent_decorators()
        self.convert_module_classes()
        self.resolve_imports()
        if not self.changes:
            return Normalised(self.source)
        return Normalised(self.render(), tuple(self.changes))

    def render(self) -> str:
        expected = ast.dump(self.tree)
        if self.text_ok:
            text = self.splice()
            if text is not None:
                try:
                    if ast.dump(ast.parse(text)) == expected:
                        return text
                except (SyntaxError, ValueError, RecursionError, MemoryError):
                    pass
        return ast.unparse(self.tree) + "\n"

    def splice(self) -> str | None:
        """The source with every edit applied; None when two edits overlap without nesting."""
        # outermost first; an edit inside another is already part of the outer one's new text
        edits = sorted(self.edits, key=lambda e: (e.start, -e.end, -e.order))
        kept: list[_Edit] = []
        for edit in edits:
            if kept and edit.start < kept[-1].end:
                if edit.end <= kept[-1].end:
                    continue   # nested in the previous edit (same span: the later edit was sorted first)
                return None
            kept.append(edit)
        out, position = [], 0
        for edit in kept:
            out.append(self.source[position:edit.start])
            out.append(edit.text())
            position = edit.end
        out.append(self.source[position:])
        text = "".join(out)
        text = re.sub(r"\A(?:[ \t\f]*(?:\r\n|\r|\n))+", "", text)
        return text.rstrip() + "\n"

    # -- rules 1 and 2 --

    def drop_future_imports(self):
        for statement in list(self.tree.body):
            if isinstance(statement, ast.ImportFrom) and statement.module == "__future__":
                self.remove_statement(self.tree.body, statement)
                self.changes.append(f"dropped `{ast.unparse(statement)}`")

    def drop_main_blocks(self):
        for statement in list(self.tree.body):
            if isinstance(statement, ast.If) and not statement.orelse and _is_main_test(statement.test):
                self.remove_statement(self.tree.body, statement)
                self.dead_names.update(n.id for n in ast.walk(statement) if isinstance(n, ast.Name))
                self.changes.append(f"dropped the `if {ast.unparse(statement.test)}:` block "
                                    f"(line {statement.lineno}): it does not run when the program is loaded")

    def drop_test_lines(self):
        """Top-level test code without a `__main__` guard (`print(activation_function(x))`, an
        `assert`, a loop printing values) and the assignments only it reads (`x = torch.randn(10)`).

        A statement is test code when it is a call statement (`print(...)`), an `assert`,
        or a `for` loop of those, and every call in it is `print`, a function of the program, or a
        torch/F/math function of the language or a tensor constructor (`_TEST_CALLS`): none
        of these changes what a function of the program computes (a candidate cannot read the
        random generator). An assignment goes with it when only the dropped statements read the
        names it binds. Nothing of this kind passes the policy, so a valid program never loses a line.
        """
        analysis = _Analysis(self.tree)
        bindings = self.import_bindings(analysis)
        functions = {s.name for s in self.tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))}

        def calls_ok(statement: ast.stmt) -> bool:
            for node in ast.walk(statement):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda,
                                     ast.Import, ast.ImportFrom, ast.Global, ast.Nonlocal, ast.Delete,
                                     ast.With, ast.AsyncWith, ast.While, ast.Try, ast.NamedExpr, ast.Await,
                                     ast.Yield, ast.YieldFrom)) or type(node).__name__ == "TryStar":
                    return False
                if isinstance(node, ast.Attribute) and (isinstance(node.ctx, (ast.Store, ast.Del))
                                                        or node.attr.startswith("_")):
                    return False
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                if isinstance(func, ast.Name) and func.id in functions | {"print"} and \
                        not (func.id == "print" and analysis.bound_anywhere("print")):
                    continue
                path = self.path_of(func, analysis, bindings)
                if path is not None:
                    spelled = _spell(path)
                    if spelled is not None or path in _TEST_CALLS:
                        continue
                    return False
                if isinstance(func, ast.Attribute) and _dotted(func) is None:
                    continue          # a method of a value: `activation_function(x).mean()`
                if isinstance(func, ast.Attribute) and not func.attr.endswith("_") and \
                        analysis.scope_of.get(id(_dotted(func)[0])) is analysis.module and \
                        _dotted(func)[0].id not in bindings:
                    continue          # a method of a top-level value: `xs.tolist()`
                return False
            return True

        def effect_only(statement: ast.stmt) -> bool:
            if isinstance(statement, ast.Expr):
                return isinstance(statement.value, ast.Call)
            if isinstance(statement, ast.Assert):
                return True
            if isinstance(statement, ast.For):   # (a top-level `if` is the policy's: only __main__ goes)
                return all(isinstance(s, (ast.Expr, ast.Assert, ast.For, ast.If, ast.Assign, ast.AugAssign,
                                          ast.Pass)) for s in ast.walk(statement) if isinstance(s, ast.stmt)
                           and s is not statement)
            return False

        def global_reads(statements: list[ast.stmt]) -> set[str]:
            return {n.id for s in statements for n in ast.walk(s) if isinstance(n, ast.Name)
                    and isinstance(n.ctx, ast.Load) and analysis.scope_of.get(id(n)) is analysis.module}

        dropped = [s for s in self.tree.body if effect_only(s) and calls_ok(s)]
        if not dropped:
            return
        # assignments whose names only the dropped statements (and other such assignments) read
        while True:
            kept = [s for s in self.tree.body if not any(s is d for d in dropped)]
            read_by_kept = global_reads(kept)
            read_by_dropped = global_reads(dropped)
            more = [s for s in kept if isinstance(s, (ast.Assign, ast.AugAssign)) and calls_ok(s)
                    and all(isinstance(t, ast.Name) for t in (s.targets if isinstance(s, ast.Assign) else [s.target]))
                    and {t.id for t in (s.targets if isinstance(s, ast.Assign) else [s.target])} <= read_by_dropped
                    and not {t.id for t in (s.targets if isinstance(s, ast.Assign) else [s.target])} & read_by_kept]
            if not more:
                break
            dropped += more
        # a kept statement must not lose a name a dropped one binds (a `for` target read later)
        kept = [s for s in self.tree.body if not any(s is d for d in dropped)]
        read_by_kept = global_reads(kept)
        bound_by_dropped = {n.id for s in dropped for n in ast.walk(s) if isinstance(n, ast.Name)
                            and isinstance(n.ctx, ast.Store)}
        if bound_by_dropped & read_by_kept:
            return
        lines = sorted(s.lineno for s in dropped)
        for statement in dropped:
            self.remove_statement(self.tree.body, statement)
            self.dead_names.update(n.id for n in ast.walk(statement) if isinstance(n, ast.Name))
        self.changes.append(f"dropped {len(lines)} top-level test statement{'s' if len(lines) > 1 else ''} "
                            f"(line{'s' if len(lines) > 1 else ''} {', '.join(map(str, lines))}): they print or "
                            "check values and do not change what the functions compute")

    # -- rule 3 --

    def drop_annotations(self):
        count = 0
        for node in list(ast.walk(self.tree)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for argument in _parameters(node.args):
                    if argument.annotation is not None:
                        argument.annotation = None
                        count += 1
                        span = self.span(argument)
                        if span is not None:   # `x: float = 1.0` → `x=1.0`
                            equals = re.match(r"[ \t]*=[ \t]*", self.source[span[1]:])
                            if equals:
                                span = (span[0], span[1] + equals.end())
                        self.edit(span, argument.arg + ("=" if span is not None and equals else ""))
                if node.returns is not None:
                    self.edit(self.returns_span(node), "")
                    node.returns = None
                    count += 1
        for parent, body in list(self.bodies()):
            for statement in list(body):
                if not isinstance(statement, ast.AnnAssign):
                    continue
                count += 1
                if statement.value is None:
                    self.remove_statement(body, statement)
                    continue
                assign = ast.copy_location(ast.Assign(targets=[statement.target], value=statement.value), statement)
                body[[i for i, s in enumerate(body) if s is statement][0]] = assign
                target_end = self.span(statement.target)
                annotation = self.span(statement.annotation)
                value = self.span(statement.value)
                if None in (target_end, annotation, value):
                    self.text_ok = False
                    continue
                equals = self.source.find("=", annotation[1], value[0])
                if equals < 0:
                    self.text_ok = False
                    continue
                self.edit((target_end[1], equals + 1), " =")
        if count:
            self.changes.append(f"dropped {count} type annotation{'s' if count > 1 else ''}")

    def drop_type_aliases(self):
        """`Number = Union[int, float]`: a top-level type alias that nothing reads once the annotations are
        gone -- made only of typing names, builtin types, `None`, subscripts, `|` and tuples of them."""
        analysis = _Analysis(self.tree)
        bindings = self.import_bindings(analysis)
        builtin_types = {"int", "float", "bool", "complex", "str", "bytes", "tuple", "list", "dict", "type"}

        def typing_part(node: ast.AST) -> bool | None:
            """True: a typing name; False: a neutral part; None: anything else."""
            if isinstance(node, (ast.Name, ast.Attribute)):
                path = self.path_of(node, analysis, bindings)
                if path is not None and path.split(".")[0] in ("typing", "typing_extensions"):
                    return True
                if isinstance(node, ast.Name) and node.id in builtin_types and not analysis.bound_anywhere(node.id):
                    return False
                if path == "torch.Tensor":
                    return False
                return None
            if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, str)):
                return False
            if isinstance(node, (ast.Subscript, ast.Tuple, ast.List, ast.BinOp, ast.Call)):
                if isinstance(node, ast.BinOp) and not isinstance(node.op, ast.BitOr):
                    return None
                parts = [typing_part(c) for c in ast.iter_child_nodes(node)
                         if not isinstance(c, (ast.expr_context, ast.operator, ast.keyword))]
                if isinstance(node, ast.Call):
                    parts += [typing_part(k.value) for k in node.keywords]
                    if parts and parts[0] is not True:
                        return None   # only calls of typing (TypeVar, NewType)
                return None if None in parts else any(parts)
            return None

        for statement in list(self.tree.body):
            if not (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                    and isinstance(statement.targets[0], ast.Name)):
                continue
            name = statement.targets[0].id
            if not typing_part(statement.value):   # first: the uses below are looked up by a scan
                continue
            read = any(isinstance(n.ctx, ast.Load) for n in analysis.global_uses(name))
            if not read and len(analysis.module_bindings(name)) == 1:
                self.remove_statement(self.tree.body, statement)
                self.changes.append(f"dropped the type alias `{name}` (line {statement.lineno}): only annotations "
                                    "used it")

    def returns_span(self, function: ast.FunctionDef) -> tuple[int, int] | None:
        """From the blank before `->` to the end of the return annotation (and its closing brackets)."""
        returns = self.span(function.returns)
        start = self.span(function)
        if returns is None or start is None:
            return None
        arrow = self.source.rfind("->", start[0], returns[0])
        between = self.source[arrow + 2:returns[0]] if arrow >= 0 else "x"
        if arrow < 0 or between.strip(" \t\f\r\n\\(") != "":
            return None
        end = returns[1]
        for _ in range(between.count("(")):
            close = re.match(r"\s*\)", self.source[end:])
            if close is None:
                return None
            end += close.end()
        while arrow > 0 and self.source[arrow - 1] in " \t\f":
            arrow -= 1
        return arrow, end

    # -- paths through the imports --

    def import_bindings(self, analysis: _Analysis) -> dict[str, str]:
        """Module-level name -> the dotted path it holds, for names bound only by imports of one path,
        and the pre-imported names that nothing in the program binds."""
        paths: dict[str, set[str]] = {}
        for statement in self.tree.body:
            if isinstance(statement, (ast.Import, ast.ImportFrom)) and \
                    not (isinstance(statement, ast.ImportFrom) and (statement.level or not statement.module)):
                for alias in statement.names:
                    if alias.name != "*":
                        paths.setdefault((alias.asname or alias.name).split(".")[0], set()).add(
                            _import_path(statement, alias))
        out = {}
        for name, held in paths.items():
            bindings = analysis.module_bindings(name)
            if len(held) == 1 and all(isinstance(b, (ast.Import, ast.ImportFrom)) for b in bindings) \
                    and name not in analysis.module_globals:
                out[name] = next(iter(held))
        for name, path in _PREIMPORTED.items():
            if name not in paths and not analysis.bound_anywhere(name):
                out[name] = path
        return out

    def path_of(self, node: ast.AST, analysis: _Analysis, bindings: dict[str, str]) -> str | None:
        """The dotted path a plain `a.b.c` expression reads through the imports, or None."""
        dotted = _dotted(node)
        if dotted is None:
            return None
        root, attributes = dotted
        if analysis.scope_of.get(id(root)) is not analysis.module or root.id not in bindings:
            return None
        return ".".join([bindings[root.id], *attributes])

    # -- rule 4 --

    def drop_transparent_decorators(self):
        analysis = _Analysis(self.tree)
        bindings = self.import_bindings(analysis)
        for node in list(ast.walk(self.tree)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or not node.decorator_list:
                continue
            for decorator in list(node.decorator_list):
                call = isinstance(decorator, ast.Call)
                path = self.path_of(decorator.func if call else decorator, analysis, bindings)
                if path is None:
                    continue
                if call:
                    transparent = path in _TRANSPARENT_DECORATOR_CALLS and \
                        all(_literal(a) for a in [*decorator.args, *(k.value for k in decorator.keywords)]) \
                        and all(k.arg is not None for k in decorator.keywords)
                else:
                    transparent = path in _TRANSPARENT_DECORATORS
                if not transparent:
                    continue
                node.decorator_list.remove(decorator)
                span = self.span(decorator)
                if span is not None:
                    at = self.source.rfind("@", 0, span[0])
                    line_start = self.source.rfind("\n", 0, at) + 1
                    tail = re.match(r"[ \t\f]*(#[^\r\n]*)?(\r\n|\r|\n)", self.source[span[1]:])
                    if at < 0 or self.source[line_start:at].strip() or tail is None:
                        span = None
                    else:
                        span = (line_start, span[1] + tail.end())
                self.edit(span, "")
                self.changes.append(f"dropped the decorator `@{ast.unparse(decorator)}` of `{node.name}` "
                                    "(the function computes the same values without it)")

    # -- rule 5 --

    def convert_module_classes(self):
        for statement in list(self.tree.body):
            if isinstance(statement, ast.ClassDef):
                analysis = _Analysis(self.tree)
                _ClassConverter(self, statement, analysis, self.import_bindings(analysis)).convert()

    # -- rule 6 --

    def resolve_imports(self):
        analysis = _Analysis(self.tree)
        bindings = self.import_bindings(analysis)
        usable_roots = {root for root in _PREIMPORTED if self.root_usable(root)}
        dropping: dict[str, list[str] | None] = {}   # name -> its rewrites (None: unused)
        for name, path in bindings.items():
            imported = any(isinstance(b, (ast.Import, ast.ImportFrom)) for b in analysis.module_bindings(name))
            if imported and path.split(".")[0] not in _KNOWN_MODULES:
                if name in self.dead_names and not analysis.global_uses(name):
                    dropping[name] = ["used only by the test code dropped above"]   # `import csv` for it
                continue   # otherwise, `import os`: for the policy
            rewrites = self.rewrites_of(name, path, analysis, usable_roots)
            if rewrites is None:
                continue   # a use the language cannot spell: the import stays, for the policy
            described: list[str] = []
            for old, new in rewrites:
                self.replace_node(old, new, analysis.parent[id(old)])
                text = f"`{ast.unparse(old)}` → `{ast.unparse(new)}`"
                if text not in described:
                    described.append(text)
            if imported:
                dropping[name] = described if rewrites or _PREIMPORTED.get(name) == path else None
            elif rewrites:
                self.changes.append(f"wrote {_shown(described)} in the language's spelling")
        self.drop_imports(dropping)
        self.drop_nested_identity_imports()

    def rewrites_of(self, name: str, path: str, analysis: _Analysis,
                    usable_roots: set[str]) -> list[tuple[ast.AST, ast.AST]] | None:
        """(old node, new node) for every use of the module-level `name` (holding `path`), or None when
        a use cannot be written in the language."""
        out: list[tuple[ast.AST, ast.AST]] = []
        identity = _PREIMPORTED.get(name) == path
        for use in analysis.global_uses(name):
            if not isinstance(use.ctx, ast.Load):
                return None
            top, attributes = analysis.chain(use)
            full = ".".join([path, *attributes])
            parent = analysis.parent.get(id(top))
            rewrite = None
            if isinstance(parent, ast.Call) and parent.func is top and full in ACTIVATION_MODULES:
                rewrite = self.activation_call(parent, full, analysis)
                if rewrite is not None and _root_of(rewrite[1]) not in usable_roots:
                    rewrite = None
            if rewrite is None:
                rewrite = self.spelled(use, top, path, attributes, analysis)
                if rewrite is not None and _root_of(rewrite[1]) not in usable_roots | {None}:
                    rewrite = None
            if rewrite is None:
                if identity:
                    continue   # `torch.load` stays as written, for the policy
                return None
            if ast.dump(rewrite[0]) != ast.dump(rewrite[1]):
                out.append(rewrite)
        return out

    def spelled(self, use: ast.Name, top: ast.expr, path: str, attributes: list[str],
                analysis: _Analysis) -> tuple[ast.AST, ast.AST] | None:
        """The longest prefix of the chain at `use` that has a spelling in the language, respelled."""
        node: ast.expr = top
        for cut in range(len(attributes), -1, -1):
            spelled = _spell(".".join([path, *attributes[:cut]]))
            if spelled is not None:
                return node, spelled
            node = node.value if isinstance(node, ast.Attribute) else node
        return None

    def activation_call(self, call: ast.Call, path: str, analysis: _Analysis) -> tuple[ast.AST, ast.AST] | None:
        """`nn.GELU()(x)` → `F.gelu(x)`; `nn.LeakyReLU(0.2)` alone → `lambda x: F.leaky_relu(...)` is not
        made: only the immediate call, or the module as a value when it takes no arguments (`F.gelu`)."""
        spelling, parameters = ACTIVATION_MODULES[path]
        if len(call.args) > len(parameters) or any(isinstance(a, ast.Starred) for a in call.args):
            return None
        keywords = [ast.keyword(arg=p, value=a) for p, a in zip(parameters, call.args)]
        keywords += call.keywords
        if any(k.arg is None or k.arg not in parameters for k in keywords):
            return None
        keywords = [k for k in keywords if k.arg != "inplace"]
        function = _fresh(spelling)
        outer = analysis.parent.get(id(call))
        if isinstance(outer, ast.Call) and outer.func is call:
            return outer, ast.Call(func=function, args=outer.args, keywords=[*outer.keywords, *keywords])
        if not keywords:
            return call, function
        return None

    def drop_imports(self, dropping: dict[str, list[str] | None]):
        """Drop the aliases of the module-level imports that bind the names of `dropping` (the whole
        statement when none is left), one line of `changes` per statement."""
        for statement in list(self.tree.body):
            if not isinstance(statement, (ast.Import, ast.ImportFrom)):
                continue
            gone = [a for a in statement.names if (a.asname or a.name).split(".")[0] in dropping]
            if not gone:
                continue
            rest = [a for a in statement.names if a not in gone]
            fields = {f: getattr(statement, f) for f in statement._fields}
            shown = ast.unparse(type(statement)(**{**fields, "names": gone}))
            if rest:
                self.replace_node(statement, type(statement)(**{**fields, "names": rest}), self.tree)
            else:
                self.remove_statement(self.tree.body, statement)
            reasons = [dropping[(a.asname or a.name).split(".")[0]] for a in gone]
            rewrites = [text for reason in reasons for text in reason or ()]
            why = rewrites[0] if rewrites == ["used only by the test code dropped above"] else \
                f"rewrote {_shown(rewrites)}" if rewrites else \
                "unused" if any(reason is None for reason in reasons) else "pre-imported"
            self.changes.append(f"dropped `{shown}` ({why})")

    def drop_nested_identity_imports(self):
        """`import math` / `import torch` / `import torch.nn.functional as F` inside a function binds the
        module the program already sees: dropped when nothing else in the program binds that name."""
        for parent, body in list(self.bodies()):
            if parent is self.tree:
                continue
            for statement in list(body):
                if not isinstance(statement, (ast.Import, ast.ImportFrom)):
                    continue
                if isinstance(statement, ast.ImportFrom) and (statement.level or not statement.module):
                    continue
                if all(a.name != "*" and _PREIMPORTED.get((a.asname or a.name).split(".")[0])
                       == _import_path(statement, a) and self.root_usable((a.asname or a.name).split(".")[0])
                       for a in statement.names):
                    self.remove_statement(body, statement)
                    self.changes.append(f"dropped `{ast.unparse(statement)}` (line {statement.lineno}): "
                                        "the module is pre-imported")

    def root_usable(self, root: str) -> bool:
        """Whether `root` (torch, F, math) means the pre-imported module everywhere in the program: no
        assignment, parameter, definition or `global` binds it, and imports bind it only to that module."""
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Name) and node.id == root and isinstance(node.ctx, (ast.Store, ast.Del)):
                return False
            if isinstance(node, ast.arg) and node.arg == root:
                return False
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == root:
                return False
            if isinstance(node, (ast.Global, ast.Nonlocal)) and root in node.names:
                return False
            if isinstance(node, ast.ExceptHandler) and node.name == root:
                return False
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    if alias.name == "*" or ((alias.asname or alias.name).split(".")[0] == root and (
                            isinstance(node, ast.ImportFrom) and (node.level or not node.module)
                            or _import_path(node, alias) != _PREIMPORTED[root])):
                        return False
        return True


def _shown(rewrites: list[str]) -> str:
    return ", ".join(rewrites[:4]) + (", …" if len(rewrites) > 4 else "")


def _root_of(node: ast.AST) -> str | None:
    """The name an expression like `F.gelu` or `F.gelu(x)` starts from (None for a literal)."""
    while isinstance(node, (ast.Attribute, ast.Call)):
        node = node.value if isinstance(node, ast.Attribute) else node.func
    return node.id if isinstance(node, ast.Name) else None


# ------------------------------------------------------------------------------------------------
# Rule 5: a stateless nn.Module as a function
# ------------------------------------------------------------------------------------------------

class _ClassConverter:
    """Plans and applies the conversion of one class (see rule 5); `convert` does nothing when any
    condition fails, leaving the class for the policy to refuse."""

    def __init__(self, owner: _Normaliser, cls: ast.ClassDef, analysis: _Analysis, bindings: dict[str, str]):
        self.owner = owner
        self.cls = cls
        self.analysis = analysis
        self.bindings = bindings

    def convert(self):
        plan = self.plan()
        if plan is None:
            return
        function, attributes, call_sites, assignments = plan
        owner = self.owner
        owner.replace_node(self.cls, function, owner.tree)
        for old, new, parent in call_sites:
            owner.replace_node(old, new, parent)
        for body, statement in assignments:
            owner.remove_statement(body, statement)
        extra = f" (its attributes {', '.join(attributes)} as keyword arguments)" if attributes else ""
        uses = f", and its {len(call_sites)} use{'s' if len(call_sites) != 1 else ''}" if call_sites else ""
        owner.changes.append(f"wrote the module class `{self.cls.name}` as the function "
                             f"`{function.name}`{extra}{uses}")

    # -- the class itself --

    def plan(self):
        cls = self.cls
        if cls.decorator_list or cls.keywords or len(cls.bases) != 1:
            return None
        if self.owner.path_of(cls.bases[0], self.analysis, self.bindings) != "torch.nn.Module":
            return None
        init = forward = None
        attributes: dict[str, ast.expr] = {}      # attribute -> its value (class level or __init__)
        docstring = None
        for index, statement in enumerate(cls.body):
            if index == 0 and isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant) \
                    and isinstance(statement.value.value, str):
                docstring = statement
            elif isinstance(statement, ast.Pass):
                continue
            elif isinstance(statement, ast.Assign) and len(statement.targets) == 1 \
                    and isinstance(statement.targets[0], ast.Name) and statement.targets[0].id not in attributes \
                    and _is_constant(statement.value, self.global_name, self.call_ok):
                attributes[statement.targets[0].id] = statement.value
            elif isinstance(statement, ast.FunctionDef) and not statement.decorator_list \
                    and statement.name in ("__init__", "forward", "extra_repr"):
                if statement.name == "__init__":
                    init = statement
                elif statement.name == "forward":
                    forward = statement
            else:
                return None
        if forward is None:
            return None
        init_parameters: dict[str, ast.expr] = {}   # __init__ parameter -> its default
        parameter_of: dict[str, str] = {}           # attribute -> the __init__ parameter it holds
        order: list[str] = []
        if init is not None:
            result = self.read_init(init, attributes)
            if result is None:
                return None
            init_parameters, parameter_of, order = result
        forward_names = self.forward_names(forward)
        if forward_names is None:
            return None
        read, other_names = forward_names
        if any(name not in attributes for name in read) or set(attributes) & other_names:
            return None
        name = self.instance_name() or self.function_name()
        call_sites, assignments = self.uses(name, init_parameters, order, parameter_of, attributes)
        if call_sites is None:
            return None
        function = self.function(name, forward, attributes, parameter_of, init_parameters, docstring)
        return function, list(attributes), call_sites, assignments

    def global_name(self, name: str) -> bool:
        """A name a constant may read: a module-level name other than the class (functions, constants,
        the modules)."""
        return name != self.cls.name and name != "self"

    def call_ok(self, call: ast.Call) -> bool:
        """A call a constant may make: a math function, or a stateless activation module (`nn.GELU()`,
        which rule 6 then writes as `F.gelu`)."""
        path = self.owner.path_of(call.func, self.analysis, self.bindings) or ""
        return path.startswith("math.") or path in ACTIVATION_MODULES

    def read_init(self, init: ast.FunctionDef, attributes: dict[str, ast.expr]):
        arguments = init.args
        positional = [*arguments.posonlyargs, *arguments.args]
        if not positional or positional[0].arg != "self" or arguments.vararg or arguments.kwarg:
            return None
        named = positional[1:] + arguments.kwonlyargs
        defaults = [None] * (len(positional) - len(arguments.defaults)) + list(arguments.defaults)
        defaults = defaults[1:] + list(arguments.kw_defaults)
        if any(d is None or not _is_constant(d, self.global_name, self.call_ok) for d in defaults):
            return None
        parameters = {a.arg: d for a, d in zip(named, defaults)}
        order = [a.arg for a in positional[1:]]
        parameter_of: dict[str, str] = {}
        for index, statement in enumerate(init.body):
            if index == 0 and isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
                continue
            if isinstance(statement, ast.Pass) or self.is_super_init(statement):
                continue
            if not (isinstance(statement, ast.Assign) and len(statement.targets) == 1):
                return None
            target = statement.targets[0]
            if not (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                    and target.value.id == "self") or target.attr.startswith("_"):
                return None
            value = statement.value
            if isinstance(value, ast.Name) and value.id in parameters:
                parameter_of[target.attr] = value.id
                attributes[target.attr] = parameters[value.id]
            elif _is_constant(value, lambda n: self.global_name(n) and n not in parameters, self.call_ok):
                attributes[target.attr] = value
            else:
                return None
        return parameters, parameter_of, order

    def is_super_init(self, statement: ast.stmt) -> bool:
        """`super().__init__()`, `super(Cls, self).__init__()` or `nn.Module.__init__(self)`."""
        if not (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call)):
            return False
        call = statement.value
        func = call.func
        if not (isinstance(func, ast.Attribute) and func.attr == "__init__") or call.keywords:
            return False
        inner = func.value
        if isinstance(inner, ast.Call) and isinstance(inner.func, ast.Name) and inner.func.id == "super":
            return not call.args and not inner.keywords and (not inner.args or (
                len(inner.args) == 2 and all(isinstance(a, ast.Name) for a in inner.args)
                and [a.id for a in inner.args] == [self.cls.name, "self"]))
        return self.owner.path_of(inner, self.analysis, self.bindings) == "torch.nn.Module" and \
            len(call.args) == 1 and isinstance(call.args[0], ast.Name) and call.args[0].id == "self"

    def forward_names(self, forward: ast.FunctionDef):
        """(attributes read as `self.X`, every other identifier in forward), or None when `self` is
        used any other way."""
        arguments = forward.args
        positional = [*arguments.posonlyargs, *arguments.args]
        if len(positional) < 2 or positional[0].arg != "self" or arguments.posonlyargs:
            return None
        read: set[str] = set()
        others: set[str] = {a.arg for a in _parameters(arguments)[1:]}
        inner = [*forward.body, *arguments.defaults, *(d for d in arguments.kw_defaults if d is not None)]
        for node in (n for statement in inner for n in ast.walk(statement)):
            if isinstance(node, ast.Name):
                if node.id == "self":
                    parent = self.analysis.parent.get(id(node))
                    if not (isinstance(parent, ast.Attribute) and parent.value is node
                            and isinstance(parent.ctx, ast.Load)):
                        return None
                    read.add(parent.attr)
                else:
                    others.add(node.id)
            elif isinstance(node, ast.arg) and node.arg == "self":
                return None
            elif isinstance(node, ast.arg):
                others.add(node.arg)
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                others.add(node.name)
        return read, others

    def instance_name(self) -> str | None:
        """`activation_function = Act()`, the class's one use, at the top level: the function takes
        that name (the instance was the program's function under it)."""
        uses = self.analysis.global_uses(self.cls.name)
        if len(uses) != 1:
            return None
        construct = self.analysis.parent.get(id(uses[0]))
        assign = self.analysis.parent.get(id(construct))
        if isinstance(construct, ast.Call) and construct.func is uses[0] and not construct.args \
                and not construct.keywords and isinstance(assign, ast.Assign) and assign.value is construct \
                and len(assign.targets) == 1 and isinstance(assign.targets[0], ast.Name) \
                and any(assign is s for s in self.owner.tree.body) \
                and len(self.analysis.module_bindings(assign.targets[0].id)) == 1 \
                and not assign.targets[0].id.startswith("__"):
            return assign.targets[0].id
        return None

    def function_name(self) -> str:
        base = _snake(self.cls.name)
        taken = self.analysis.identifiers | set(_PREIMPORTED)
        name = base
        for suffix in ["", "_function", *(f"_{i}" for i in range(2, 100))]:
            name = base + suffix
            if name not in taken and not name.startswith("__"):
                return name
        return name

    def function(self, name, forward, attributes, parameter_of, init_parameters, docstring) -> ast.FunctionDef:
        arguments = copy.copy(forward.args)
        arguments.args = list(arguments.args[1:])
        # the attributes become keyword-only arguments, defaults their values
        arguments.kwonlyargs = [*arguments.kwonlyargs, *(ast.arg(arg=a) for a in attributes)]
        arguments.kw_defaults = [*arguments.kw_defaults, *(copy.deepcopy(v) for v in attributes.values())]
        body = list(forward.body)
        if docstring is not None and not (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                                          and isinstance(body[0].value.value, str)):
            body.insert(0, docstring)
        function = ast.FunctionDef(name=name, args=arguments, body=body, decorator_list=[], returns=None,
                                   type_comment=None, **({"type_params": []} if "type_params" in
                                                          ast.FunctionDef._fields else {}))
        for node in list(ast.walk(function)):
            for field, value in ast.iter_fields(node):
                if isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name) and value.value.id == "self":
                    setattr(node, field, ast.copy_location(ast.Name(id=value.attr, ctx=ast.Load()), value))
                elif isinstance(value, list):
                    for i, item in enumerate(value):
                        if isinstance(item, ast.Attribute) and isinstance(item.value, ast.Name) \
                                and item.value.id == "self":
                            value[i] = ast.copy_location(ast.Name(id=item.attr, ctx=ast.Load()), item)
        return function

    # -- its uses --

    def uses(self, name, init_parameters, order, parameter_of, attributes):
        """(call sites to rewrite, assignments to drop), or (None, None) when a use is not a call."""
        analysis = self.analysis
        sites: list[tuple[ast.AST, ast.AST, ast.AST]] = []
        assignments: list[tuple[list, ast.stmt]] = []
        # the class name must be bound only by the class itself
        if len(analysis.module_bindings(self.cls.name)) != 1:
            return None, None
        inside = {id(n) for n in ast.walk(self.cls)}
        for use in analysis.global_uses(self.cls.name):
            if id(use) in inside:
                return None, None
            construct = analysis.parent.get(id(use))
            if not (isinstance(construct, ast.Call) and construct.func is use):
                return None, None
            keywords = self.constructor_keywords(construct, init_parameters, order, parameter_of)
            if keywords is None:
                return None, None
            outer = analysis.parent.get(id(construct))
            call = self.called(construct, outer)
            if call is not None:
                sites.append((call, self.direct_call(name, call, keywords), analysis.parent[id(call)]))
                continue
            # `act = Act(...)`, then only `act(x)` / `act.forward(x)` in that scope
            if not (isinstance(outer, ast.Assign) and len(outer.targets) == 1
                    and isinstance(outer.targets[0], ast.Name)):
                return None, None
            variable = outer.targets[0]
            scope = analysis.scope_of[id(variable)]
            same = [n for n in analysis.names if n.id == variable.id and analysis.scope_of[id(n)] is scope]
            if any(isinstance(n.ctx, (ast.Store, ast.Del)) and n is not variable for n in same):
                return None, None
            if scope.kind == "class" or (scope is analysis.module and variable.id in analysis.module_globals):
                return None, None
            body = self.body_holding(outer)
            if body is None:
                return None, None
            for read in same:
                if read is variable:
                    continue
                call = self.called(read, analysis.parent.get(id(read)))
                if call is None:
                    return None, None
                sites.append((call, self.direct_call(name, call, keywords), analysis.parent[id(call)]))
            assignments.append((body, outer))
        return sites, assignments

    def called(self, target: ast.AST, parent: ast.AST | None) -> ast.Call | None:
        """The call `target(...)` or `target.forward(...)` made right at `target`, or None."""
        if isinstance(parent, ast.Call) and parent.func is target:
            return parent
        if isinstance(parent, ast.Attribute) and parent.value is target and parent.attr == "forward":
            grand = self.analysis.parent.get(id(parent))
            if isinstance(grand, ast.Call) and grand.func is parent:
                return grand
        return None

    def constructor_keywords(self, construct: ast.Call, init_parameters, order, parameter_of):
        """The keyword arguments of the function for `Act(args)`, or None."""
        given: dict[str, ast.expr] = {}
        if len(construct.args) > len(order) or any(isinstance(a, ast.Starred) for a in construct.args):
            return None
        given.update(zip(order, construct.args))
        for keyword in construct.keywords:
            if keyword.arg is None or keyword.arg not in init_parameters or keyword.arg in given:
                return None
            given[keyword.arg] = keyword.value
        if not all(_is_constant(v, self.global_name, self.call_ok) for v in given.values()):
            return None
        return [ast.keyword(arg=attribute, value=given[parameter])
                for attribute, parameter in parameter_of.items() if parameter in given]

    def direct_call(self, name: str, call: ast.Call, keywords: list[ast.keyword]) -> ast.Call:
        taken = {k.arg for k in call.keywords}
        if any(k.arg in taken for k in keywords):
            raise ValueError("a keyword of the call is also an attribute")   # normalise gives up
        return ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=call.args,
                        keywords=[*call.keywords, *(copy.deepcopy(k) for k in keywords)])

    def body_holding(self, statement: ast.stmt) -> list | None:
        for _parent, body in self.owner.bodies():
            if any(s is statement for s in body):
                return body
        return None
