"""The normaliser's rules, applied in order by `_Normaliser.run` (rules 1-6 of the
`actmine.language.normalise` docstring, which says what each one rewrites and why).

Each rule reads the program (`normalise_scopes`), edits its tree and text (`normalise_edits`), and
adds one line per application to `changes`. Rule 5, the conversion of a stateless `nn.Module` into
a function, is in `normalise_classes`. Which top-level statements are test code (rule 1's
`__main__` guard and the steps of rule 2's test-line detection, `_calls_only_test_functions`,
`_with_test_inputs`, ...) is in `normalise_test_code`, so each step can be read alone.
"""

from __future__ import annotations

import ast
import functools
import re

from .normalise_classes import _ClassConverter
from .normalise_edits import _SourceEditor
from .normalise_scopes import _Analysis, _import_bindings, _import_path, _parameters, _path_of
from .normalise_test_code import (
    _calls_only_test_functions,
    _has_test_shape,
    _is_main_test,
    _top_level_functions,
    _unbinds_a_kept_read,
    _with_test_inputs,
)
from .normalise_vocabulary import (
    _KNOWN_MODULES,
    _PREIMPORTED,
    _TRANSPARENT_DECORATOR_CALLS,
    _TRANSPARENT_DECORATORS,
    ACTIVATION_MODULES,
    _fresh,
    _spell,
)
from .program import ast_depth

#: Deeper programs are left as written (the policy refuses past 200 levels; recursion stays bounded).
_MAX_DEPTH = 180


def _literal(node: ast.AST) -> bool:
    """Literals only (numbers, strings, None, booleans, tuples of them, negated numbers)."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return _literal(node.operand)
    if isinstance(node, ast.Tuple):
        return all(_literal(e) for e in node.elts)
    return False


#: More `nn.Module` classes than this in one program are left as written (for the policy to judge):
#: a well-meaning answer wraps its function in one or two.
MAX_CONVERTED_CLASSES = 16


class _Normaliser(_SourceEditor):
    """One program through rules 1-6 (`run`), each edit made with the `_SourceEditor` machinery."""

    def __init__(self, source: str):
        super().__init__(source)
        self.dead_names: set[str] = set()  # names read by the test code that was dropped

    # -- the run --

    def run(self) -> tuple[str, tuple[str, ...]]:
        """The normalised source and its changes (the source as given, and none, when nothing applies)."""
        if ast_depth(self.tree, _MAX_DEPTH)[0] > _MAX_DEPTH:
            return self.source, ()
        self.drop_future_imports()
        self.drop_main_blocks()
        self.drop_test_lines()
        self.drop_annotations()
        self.drop_type_aliases()
        self.drop_transparent_decorators()
        self.convert_module_classes()
        self.resolve_imports()
        if not self.changes:
            return self.source, ()
        return self.render(), tuple(self.changes)

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
                self.changes.append(
                    f"dropped the `if {ast.unparse(statement.test)}:` block "
                    f"(line {statement.lineno}): it does not run when the program is loaded"
                )

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
        only_test_calls = functools.partial(
            _calls_only_test_functions,
            analysis=analysis,
            bindings=_import_bindings(self.tree, analysis),
            functions=_top_level_functions(self.tree),
        )
        dropped = [s for s in self.tree.body if _has_test_shape(s) and only_test_calls(s)]
        if not dropped:
            return
        # assignments whose names only the dropped statements (and other such assignments) read
        dropped = _with_test_inputs(dropped, self.tree.body, analysis, only_test_calls)
        # a kept statement must not lose a name a dropped one binds (a `for` target read later)
        if _unbinds_a_kept_read(dropped, self.tree.body, analysis):
            return
        self.remove_test_statements(dropped)

    def remove_test_statements(self, dropped: list[ast.stmt]):
        """Remove the test statements `dropped` from the top level, noting the names they read (an
        import only they used may go too: rule 6), with one line of `changes` for all of them."""
        lines = sorted(s.lineno for s in dropped)
        for statement in dropped:
            self.remove_statement(self.tree.body, statement)
            self.dead_names.update(n.id for n in ast.walk(statement) if isinstance(n, ast.Name))
        self.changes.append(
            f"dropped {len(lines)} top-level test statement{'s' if len(lines) > 1 else ''} "
            f"(line{'s' if len(lines) > 1 else ''} {', '.join(map(str, lines))}): they print or "
            "check values and do not change what the functions compute"
        )

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
                        if span is not None:  # `x: float = 1.0` → `x=1.0`
                            equals = re.match(r"[ \t]*=[ \t]*", self.source[span[1] :])
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
        bindings = _import_bindings(self.tree, analysis)
        builtin_types = {"int", "float", "bool", "complex", "str", "bytes", "tuple", "list", "dict", "type"}

        def typing_part(node: ast.AST) -> bool | None:
            """True: a typing name; False: a neutral part; None: anything else."""
            if isinstance(node, (ast.Name, ast.Attribute)):
                path = _path_of(node, analysis, bindings)
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
                parts = [
                    typing_part(c)
                    for c in ast.iter_child_nodes(node)
                    if not isinstance(c, (ast.expr_context, ast.operator, ast.keyword))
                ]
                if isinstance(node, ast.Call):
                    parts += [typing_part(k.value) for k in node.keywords]
                    if parts and parts[0] is not True:
                        return None  # only calls of typing (TypeVar, NewType)
                return None if None in parts else any(parts)
            return None

        for statement in list(self.tree.body):
            if not (
                isinstance(statement, ast.Assign)
                and len(statement.targets) == 1
                and isinstance(statement.targets[0], ast.Name)
            ):
                continue
            name = statement.targets[0].id
            if not typing_part(statement.value):  # first: the uses below are looked up by a scan
                continue
            read = any(isinstance(n.ctx, ast.Load) for n in analysis.global_uses(name))
            if not read and len(analysis.module_bindings(name)) == 1:
                self.remove_statement(self.tree.body, statement)
                self.changes.append(
                    f"dropped the type alias `{name}` (line {statement.lineno}): only annotations used it"
                )

    def returns_span(self, function: ast.FunctionDef) -> tuple[int, int] | None:
        """From the blank before `->` to the end of the return annotation (and its closing brackets)."""
        returns = self.span(function.returns)
        start = self.span(function)
        if returns is None or start is None:
            return None
        arrow = self.source.rfind("->", start[0], returns[0])
        between = self.source[arrow + 2 : returns[0]] if arrow >= 0 else "x"
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

    # -- rule 4 --

    def drop_transparent_decorators(self):
        analysis = _Analysis(self.tree)
        bindings = _import_bindings(self.tree, analysis)
        for node in list(ast.walk(self.tree)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or not node.decorator_list:
                continue
            for decorator in list(node.decorator_list):
                call = isinstance(decorator, ast.Call)
                path = _path_of(decorator.func if call else decorator, analysis, bindings)
                if path is None:
                    continue
                if call:
                    transparent = (
                        path in _TRANSPARENT_DECORATOR_CALLS
                        and all(_literal(a) for a in [*decorator.args, *(k.value for k in decorator.keywords)])
                        and all(k.arg is not None for k in decorator.keywords)
                    )
                else:
                    transparent = path in _TRANSPARENT_DECORATORS
                if not transparent:
                    continue
                node.decorator_list.remove(decorator)
                span = self.span(decorator)
                if span is not None:
                    at = self.source.rfind("@", 0, span[0])
                    line_start = self.source.rfind("\n", 0, at) + 1
                    tail = re.match(r"[ \t\f]*(#[^\r\n]*)?(\r\n|\r|\n)", self.source[span[1] :])
                    if at < 0 or self.source[line_start:at].strip() or tail is None:
                        span = None
                    else:
                        span = (line_start, span[1] + tail.end())
                self.edit(span, "")
                self.changes.append(
                    f"dropped the decorator `@{ast.unparse(decorator)}` of `{node.name}` "
                    "(the function computes the same values without it)"
                )

    # -- rule 5 --

    def convert_module_classes(self):
        classes = [statement for statement in self.tree.body if isinstance(statement, ast.ClassDef)]
        if len(classes) > MAX_CONVERTED_CLASSES:
            return  # each conversion analyses the whole module again: 1,570 classes took minutes
        for statement in classes:
            analysis = _Analysis(self.tree)
            _ClassConverter(self, statement, analysis, _import_bindings(self.tree, analysis)).convert()

    # -- rule 6 --

    def resolve_imports(self):
        analysis = _Analysis(self.tree)
        bindings = _import_bindings(self.tree, analysis)
        usable_roots = {root for root in _PREIMPORTED if self.root_usable(root)}
        dropping: dict[str, list[str] | None] = {}  # name -> its rewrites (None: unused)
        for name, path in bindings.items():
            imported = any(isinstance(b, (ast.Import, ast.ImportFrom)) for b in analysis.module_bindings(name))
            if imported and path.split(".")[0] not in _KNOWN_MODULES:
                if name in self.dead_names and not analysis.global_uses(name):
                    dropping[name] = ["used only by the test code dropped above"]  # `import csv` for it
                continue  # otherwise, `import os`: for the policy
            rewrites = self.rewrites_of(name, path, analysis, usable_roots)
            if rewrites is None:
                continue  # a use the language cannot spell: the import stays, for the policy
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

    def rewrites_of(
        self, name: str, path: str, analysis: _Analysis, usable_roots: set[str]
    ) -> list[tuple[ast.AST, ast.AST]] | None:
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
                    continue  # `torch.load` stays as written, for the policy
                return None
            if ast.dump(rewrite[0]) != ast.dump(rewrite[1]):
                out.append(rewrite)
        return out

    def spelled(
        self, use: ast.Name, top: ast.expr, path: str, attributes: list[str], analysis: _Analysis
    ) -> tuple[ast.AST, ast.AST] | None:
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
            why = (
                rewrites[0]
                if rewrites == ["used only by the test code dropped above"]
                else f"rewrote {_shown(rewrites)}"
                if rewrites
                else "unused"
                if any(reason is None for reason in reasons)
                else "pre-imported"
            )
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
                if all(
                    a.name != "*"
                    and _PREIMPORTED.get((a.asname or a.name).split(".")[0]) == _import_path(statement, a)
                    and self.root_usable((a.asname or a.name).split(".")[0])
                    for a in statement.names
                ):
                    self.remove_statement(body, statement)
                    self.changes.append(
                        f"dropped `{ast.unparse(statement)}` (line {statement.lineno}): the module is pre-imported"
                    )

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
                    if alias.name == "*" or (
                        (alias.asname or alias.name).split(".")[0] == root
                        and (
                            isinstance(node, ast.ImportFrom)
                            and (node.level or not node.module)
                            or _import_path(node, alias) != _PREIMPORTED[root]
                        )
                    ):
                        return False
        return True


def _shown(rewrites: list[str]) -> str:
    return ", ".join(rewrites[:4]) + (", …" if len(rewrites) > 4 else "")


def _root_of(node: ast.AST) -> str | None:
    """The name an expression like `F.gelu` or `F.gelu(x)` starts from (None for a literal)."""
    while isinstance(node, (ast.Attribute, ast.Call)):
        node = node.value if isinstance(node, ast.Attribute) else node.func
    return node.id if isinstance(node, ast.Name) else None
