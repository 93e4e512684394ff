"""The candidate policy's walk (`_Checker`): statements, scopes, names and attribute chains, with
the value rules of `policy_values.py`. `source.check_source` runs it; the policy is explained there.
"""

from __future__ import annotations

import ast
import builtins

from .load_time import check_load_time
from .load_time_bounds import _snippet
from .policy_lists import (
    _COMPREHENSIONS,
    _NAME_HINTS,
    _ROOT_HINTS,
    _ROOT_TREES,
    ENTRY_POINT,
    FORBIDDEN_BUILTINS,
    MAX_LOOP_ITERATIONS,
    PREIMPORTED,
    PYTHON_ESCAPE_BUILTINS,
    SAFE_BUILTINS,
    DANGEROUS_ATTRIBUTES,
    _attribute_refusal,
)
from .policy_scopes import _attribute_chain, _binding_counts, _end, _scope_locals, _top_level_names
from .policy_values import _ValueRules


class _Checker(_ValueRules):
    """Walks a module iteratively (candidates may nest deeply) and records every violation.

    Each stack entry carries the scope chain: the locals of the enclosing functions, lambdas and
    comprehensions, innermost last (the module scope is not in it).
    """

    def __init__(self, tree: ast.Module):
        self.tree = tree
        self.violations: list[tuple[int, int, int, str, str]] = []
        bindings = _binding_counts(tree)
        self.bound_anywhere = frozenset(bindings)
        self.globals = _top_level_names(tree)
        # Top-level tuples bound once in the whole program (so no local can shadow them), written as a
        # literal or as `tuple(<comprehension>)`: loops over them are as bounded as loops over what
        # they are made of (`for w in WEIGHTS:`).
        self.literal_tuples = {
            s.targets[0].id: s.value
            for s in tree.body
            if isinstance(s, ast.Assign)
            and len(s.targets) == 1
            and isinstance(s.targets[0], ast.Name)
            and bindings[s.targets[0].id] == 1
            and (isinstance(s.value, ast.Tuple) or self.tuple_of_comprehension(s.value))
        }
        # `torch.Tensor` nodes in an annotation or as the class of `isinstance(obj, torch.Tensor)`: the
        # only places the class may be named (anywhere else it could be called: `torch.Tensor(3)` is
        # uninitialised memory). Filled in as the walk reaches those places, before their children.
        self.type_positions: set[int] = set()

    # -- recording --

    def flag(self, node: ast.AST, code: str, message: str, line: int | None = None, col: int | None = None):
        line = line if line is not None else getattr(node, "lineno", 1)
        col = col if col is not None else getattr(node, "col_offset", 0)
        self.violations.append((line, col, len(self.violations), code, message))

    def flag_attribute(self, link: ast.Attribute, code: str, message: str):
        """Flag at the attribute's name (the end of its node), which may be lines after the chain's start."""
        line = getattr(link, "end_lineno", None) or link.lineno
        end_col = getattr(link, "end_col_offset", None)
        col = max(0, end_col - len(link.attr)) if end_col is not None else link.col_offset
        self.flag(link, code, message, line, col)

    # -- walking --

    def run(self) -> list[tuple[int, int, int, str, str]]:
        for statement in self.tree.body:
            self.check_top_level(statement)
        stack: list[tuple[ast.AST, tuple[frozenset[str], ...]]] = [
            (statement, ()) for statement in reversed(self.tree.body)
        ]
        while stack:
            node, scopes = stack.pop()
            children = self.visit(node, scopes)
            stack.extend(reversed(children))
        self.check_entry_point()
        if not self.violations:
            # Last, on a program that passed every other rule: its load-time code is then made of
            # constant expressions only, which `check_load_time` computes under its bounds.
            problem = check_load_time(self.tree, _ROOT_TREES, SAFE_BUILTINS)
            if problem is not None:
                node, message = problem
                self.flag(node, "costly_constant", message)
        return sorted(self.violations)

    def visit(self, node, scopes) -> list[tuple[ast.AST, tuple]]:
        """Check one node; return its children to walk, each with its scope chain."""
        default = [(child, scopes) for child in ast.iter_child_nodes(node)]

        if isinstance(node, (ast.Import, ast.ImportFrom)):
            self.flag(
                node, "import", "import statements are not allowed (candidates get torch, F and math pre-imported)"
            )
            return []
        self.refuse_statement(node)  # flagged, its children walked as usual

        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            if isinstance(node, ast.AnnAssign):
                self.mark_type_positions(node.annotation)
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in targets:
                self.check_target(target, "deleting" if isinstance(node, ast.Delete) else "assigning to")
            return default

        if isinstance(node, ast.For):
            self.check_target(node.target, "assigning to")
            self.check_bounded(node.iter, node)
            return default

        if isinstance(node, _COMPREHENSIONS):
            return self.visit_comprehension(node, scopes)

        if isinstance(node, (ast.FunctionDef, ast.Lambda)):
            return self.visit_function(node, scopes)

        if isinstance(node, ast.ExceptHandler):
            if node.name:
                self.check_binding(node.name, node, scopes, what="an exception variable")
            return default

        if isinstance(node, ast.keyword):
            if node.arg is not None and node.arg.startswith("__"):
                self.flag(node, "dunder", f"keyword argument `{node.arg}`: names starting with `__` are not allowed")
            return default

        if isinstance(node, ast.Name):
            self.visit_name(node, scopes)
            return default

        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "isinstance"
            and "isinstance" not in self.bound_anywhere
            and len(node.args) == 2
        ):
            classes = [node.args[1]]
            while classes:  # isinstance(obj, (torch.Tensor, float)) nests class tuples
                part = classes.pop()
                if isinstance(part, ast.Tuple):
                    classes.extend(part.elts)
                elif isinstance(part, ast.Attribute):
                    self.type_positions.add(id(part))
            return default

        self.refuse_text(node, scopes)

        if isinstance(node, ast.Attribute):
            return self.visit_attribute(node, scopes)

        return default

    # -- statements and scopes --

    def refuse_statement(self, node) -> None:
        """Flag a statement the language does not have (class, with, async, yield, global, match,
        while) at `node`."""
        if isinstance(node, ast.ClassDef):
            self.flag(
                node,
                "forbidden_statement",
                "class definitions are not allowed; write the module as a function: `def activation_function(x):` returning what forward(self, x) returns, with `self.<name>` attributes as top-level constants (no parameters, buffers or other state)",
            )
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            self.flag(
                node,
                "forbidden_statement",
                "`with` statements are not allowed (context managers change global state, e.g. torch.no_grad)",
            )
        elif isinstance(node, (ast.AsyncFunctionDef, ast.AsyncFor, ast.Await)):
            self.flag(node, "forbidden_statement", "async functions, `async for` and `await` are not allowed")
        elif isinstance(node, (ast.Yield, ast.YieldFrom)):
            self.flag(node, "forbidden_statement", "`yield` is not allowed (no generator functions)")
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            keyword = "global" if isinstance(node, ast.Global) else "nonlocal"
            self.flag(node, "forbidden_statement", f"`{keyword}` statements are not allowed")
        elif isinstance(node, ast.Match):
            self.flag(
                node,
                "forbidden_statement",
                "`match` statements are not allowed (class patterns read attributes by name)",
            )
        elif isinstance(node, ast.While):
            self.flag(
                node,
                "unbounded_loop",
                "`while` loops are not allowed (they may never end); use "
                f"`for i in range(N)` with an integer literal N <= {MAX_LOOP_ITERATIONS}",
            )

    def refuse_text(self, node, scopes) -> None:
        """Flag an f-string field or `%` operand that may hold tensor values (`python_escape`)."""
        # At module scope (top-level values, and defaults and annotations of top-level functions) every
        # expression is a constant (`check_constant`): no tensor exists there, so text may show anything.
        if isinstance(node, ast.FormattedValue) and scopes and not self.shows_no_values(node.value, scopes):
            self.flag(
                node.value,
                "python_escape",
                f"the f-string interpolates `{_snippet(node.value)}`, which may hold tensor values: text "
                "turns values into Python data the op counter cannot see; interpolate only constants and "
                "metadata such as x.shape, x.dtype or x.dim()",
                *_end(node.value),
            )
        elif (
            isinstance(node, ast.BinOp)
            and isinstance(node.op, ast.Mod)
            and scopes
            and (
                isinstance(node.left, ast.JoinedStr)
                or (isinstance(node.left, ast.Constant) and isinstance(node.left.value, (str, bytes)))
            )
            and not self.shows_no_values(node.right, scopes)
        ):
            self.flag(
                node.right,
                "python_escape",
                f"`%`-formatting `{_snippet(node.right)}` turns values (tensors too) into text the op counter "
                "cannot see; format only constants and metadata such as x.shape",
                *_end(node.right),
            )

    def check_top_level(self, statement: ast.stmt):
        if isinstance(statement, (ast.FunctionDef, ast.Pass)):
            return  # a def's defaults are checked with every function's (`visit_function`)
        if isinstance(statement, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            for target in targets:
                self.check_global_target(target)
            if statement.value is not None:
                self.check_constant(statement.value, f"the top-level value of `{_snippet(targets[0], 40)}`")
            return
        if isinstance(statement, ast.Delete):
            self.flag(
                statement,
                "forbidden_statement",
                "a top-level `del` is not allowed: the top level may only define functions and assign constants",
            )
            return
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            return  # a docstring (or any constant): no effect
        if isinstance(
            statement,
            (
                ast.Import,
                ast.ImportFrom,
                ast.ClassDef,
                ast.With,
                ast.AsyncWith,
                ast.AsyncFunctionDef,
                ast.AsyncFor,
                ast.Global,
                ast.Nonlocal,
                ast.Match,
                ast.While,
            ),
        ):
            return  # refused with their own, more specific message
        name = type(statement).__name__.lower()
        kind = "expression statement" if isinstance(statement, ast.Expr) else f"`{name}` statement"
        self.flag(
            statement,
            "forbidden_statement",
            f"a top-level {kind} is not allowed: the top level may only define functions and assign "
            "constants (it runs when the candidate loads); put logic inside activation_function",
        )

    def check_global_target(self, target: ast.AST):
        """Top-level assignments bind names (or tuples of names); they never change a value in place."""
        stack = [target]
        while stack:
            part = stack.pop()
            if isinstance(part, (ast.Tuple, ast.List)):
                stack.extend(part.elts)
            elif isinstance(part, ast.Starred):
                self.flag(
                    part,
                    "mutable_state",
                    f"the starred target `{_snippet(part)}` makes a list (mutable); "
                    "top-level names must hold immutable constants: unpack into names",
                )
            elif isinstance(part, ast.Subscript):
                self.flag(
                    part,
                    "mutable_state",
                    f"assigning to `{_snippet(part)}` at the top level changes a value "
                    "in place; top-level names must hold immutable constants",
                )
            # a Name is fine; an Attribute is `attribute_assignment` (check_target)

    def visit_function(self, node, scopes):
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                self.flag(decorator, "forbidden_statement", f"decorators are not allowed (`@{_snippet(decorator)}`)")
            self.check_binding(node.name, node, scopes, what="a function name")
        args = node.args
        inner = scopes + (_scope_locals(node),)
        positional = [*args.posonlyargs, *args.args]
        for arg, default in [
            *zip(positional[len(positional) - len(args.defaults) :], args.defaults),
            *zip(args.kwonlyargs, args.kw_defaults),
        ]:
            if default is not None:  # evaluated once, when the function is defined, and shared by every call
                self.check_constant(default, f"the default value of `{arg.arg}`")
        outer_parts = [*args.defaults, *(d for d in args.kw_defaults if d is not None)]
        if isinstance(node, ast.FunctionDef):
            outer_parts += [*node.decorator_list, *([node.returns] if node.returns else [])]
            for annotation in [
                node.returns,
                *(a.annotation for a in [*positional, *args.kwonlyargs, args.vararg, args.kwarg] if a is not None),
            ]:
                if annotation is not None:
                    self.mark_type_positions(annotation)
        children = [(part, scopes) for part in outer_parts]
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if arg is not None:
                self.check_binding(arg.arg, arg, inner, what="the parameter")
                if arg.annotation is not None:  # evaluated when the function is defined, outside it
                    children.append((arg.annotation, scopes))
        body = node.body if isinstance(node.body, list) else [node.body]
        return children + [(statement, inner) for statement in body]

    def visit_comprehension(self, node, scopes):
        inner_scopes = scopes + (_scope_locals(node),)
        children = []
        for index, generator in enumerate(node.generators):
            # The first iterable is evaluated in the enclosing scope, the rest inside the comprehension.
            iter_scopes = scopes if index == 0 else inner_scopes
            if generator.is_async:
                self.flag(generator.iter, "forbidden_statement", "`async for` is not allowed")
            self.check_target(generator.target, "assigning to")
            self.check_bounded(generator.iter, generator.iter)
            children.append((generator.iter, iter_scopes))
            children.append((generator.target, inner_scopes))
            children.extend((condition, inner_scopes) for condition in generator.ifs)
        elements = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        return children + [(element, inner_scopes) for element in elements]

    def check_target(self, target: ast.AST, verb: str):
        """Attribute targets anywhere in an assignment target (`a.b = `, `x, y.z = `) are monkeypatching."""
        stack = [target]
        while stack:
            part = stack.pop()
            if isinstance(part, ast.Attribute):
                self.flag(
                    part,
                    "attribute_assignment",
                    f"{verb} an attribute (`{_snippet(part)}`) is not allowed; compute a new value "
                    "instead (subscript assignment such as `y[mask] = 0` is fine)",
                )
            elif isinstance(part, (ast.Tuple, ast.List)):
                stack.extend(part.elts)
            elif isinstance(part, ast.Starred):
                stack.append(part.value)
            # a Name, or a Subscript (`y[...] =` is fine; what is inside it is walked as usual)

    def check_binding(self, name: str, node: ast.AST, scopes, what: str):
        """A name being bound: a parameter, a function name, an exception variable or an assignment target."""
        if name.startswith("__"):
            self.flag(node, "dunder", f"{what} `{name}`: names starting with `__` are not allowed")
        elif name in PREIMPORTED:
            self.flag(node, "module_alias", f"{what} `{name}` rebinds the pre-imported `{name}`; choose another name")
        elif name in FORBIDDEN_BUILTINS and not scopes:
            self.flag(
                node,
                "forbidden_builtin",
                f"{what} `{name}` at the top level shadows a forbidden builtin; choose another name",
            )

    def check_entry_point(self):
        defs = [s for s in self.tree.body if isinstance(s, ast.FunctionDef) and s.name == ENTRY_POINT]
        if not defs:
            self.flag(
                self.tree,
                "missing_function",
                f"the program must define a top-level function `def {ENTRY_POINT}(x):` "
                "that takes and returns a torch.Tensor",
                line=10**9,
                col=0,
            )
            return
        function = defs[-1]
        args = function.args
        positional = [*args.posonlyargs, *args.args]
        required_positional = len(positional) - len(args.defaults)
        required_keyword = sum(default is None for default in args.kw_defaults)
        if not positional or required_positional > 1 or required_keyword:
            self.flag(
                function,
                "missing_function",
                f"`{ENTRY_POINT}` must take exactly one required positional argument, the tensor x "
                f"(further parameters need defaults), not `({_snippet(args)})`",
            )

    # -- names and attributes --

    def visit_name(self, node: ast.Name, scopes):
        name = node.id
        if name.startswith("__"):
            self.flag(
                node, "dunder", f"the name `{name}` is not allowed (names starting with `__` reach Python's internals)"
            )
        elif name in PREIMPORTED:
            if isinstance(node.ctx, ast.Load):
                self.flag(
                    node,
                    "module_alias",
                    f"`{name}` may only be used as the root of an attribute chain such as "
                    f"`{name}.{'sin' if name != 'F' else 'relu'}(x)`; it cannot be aliased, passed, "
                    "stored or returned",
                )
            else:
                self.flag(node, "module_alias", f"rebinding the pre-imported `{name}` is not allowed")
        elif not isinstance(node.ctx, ast.Load):
            if name in FORBIDDEN_BUILTINS and not scopes:
                self.flag(
                    node,
                    "forbidden_builtin",
                    f"the top level may not bind `{name}`, the name of a forbidden builtin; choose another name",
                )
        elif any(name in scope for scope in scopes) or name in self.globals:
            pass  # a local of an enclosing function, lambda or comprehension, or the program's own global
        elif name in FORBIDDEN_BUILTINS:
            self.flag(node, "forbidden_builtin", f"`{name}` is not available to candidates")
        elif name in PYTHON_ESCAPE_BUILTINS:
            what = (
                "applies a Python function element by element"
                if name in ("map", "filter")
                else "turns values (tensors too) into text"
            )
            self.flag(
                node,
                "python_escape",
                f"`{name}` is not available to candidates: it {what}, work the op "
                "counter and autograd cannot see; use tensor operations",
            )
        elif name not in SAFE_BUILTINS:
            # Undefined here, the name would raise NameError (which a try/except can hide) -- but the
            # same source, written into a module file with other imports, would reach something real.
            hint = _NAME_HINTS.get(name) or (
                "a Python builtin that candidates do not get" if hasattr(builtins, name) else ""
            )
            own = sorted(self.globals)
            own_text = f" ({', '.join(own[:8])}{', ...' if len(own) > 8 else ''})" if own else ""
            available = ", ".join(sorted(n for n in SAFE_BUILTINS if not n.startswith("_")))
            self.flag(
                node,
                "undefined_name",
                f"the name `{name}` is not defined{f' ({hint})' if hint else ''}: a candidate may use the "
                f"locals of its functions, its own top-level definitions{own_text}, torch, F and math, and "
                f"the builtins {available}",
            )

    def mark_type_positions(self, annotation: ast.expr):
        """Annotations name types (`x: torch.Tensor`, `tuple[torch.Tensor, ...]`): torch.Tensor may appear there."""
        called = {id(part.func) for part in ast.walk(annotation) if isinstance(part, ast.Call)}
        self.type_positions.update(
            id(part) for part in ast.walk(annotation) if isinstance(part, ast.Attribute) and id(part) not in called
        )

    def visit_attribute(self, node: ast.Attribute, scopes):
        base, links = _attribute_chain(node)
        if isinstance(base, ast.Name) and base.id in PREIMPORTED:
            self.check_module_chain(base.id, links)
            if (
                base.id == "torch"
                and [link.attr for link in links] == ["Tensor"]
                and id(node) not in self.type_positions
            ):
                self.flag_attribute(
                    links[-1],
                    "torch_forbidden",
                    "`torch.Tensor` may only be named as a type -- in an annotation "
                    "(`x: torch.Tensor`) or in `isinstance(obj, torch.Tensor)`: called, it makes a "
                    "tensor of uninitialised memory (`torch.Tensor(3)`), and stored or passed it "
                    "could be called later; create tensors with torch.zeros, torch.zeros_like, "
                    "torch.full_like or torch.tensor",
                )
            return []  # the base is the module itself, used legitimately as a chain root
        for link in links:
            attr = link.attr
            if attr.startswith("__"):
                self.flag_attribute(
                    link,
                    "dunder",
                    f"the attribute `.{attr}` is not allowed (attributes starting with `__` reach Python's internals)",
                )
            elif attr.startswith("_"):
                self.flag_attribute(link, "dangerous_attribute", f"the private attribute `.{attr}` is not allowed")
            elif attr in DANGEROUS_ATTRIBUTES:
                code, reason = _attribute_refusal(attr)
                self.flag_attribute(
                    link,
                    code,
                    f"the attribute `.{attr}` is not allowed: {reason} "
                    "(deny-list: actmine.candidate.source.DANGEROUS_ATTRIBUTES)",
                )
        return [(base, scopes)]

    def check_module_chain(self, root: str, links: list[ast.Attribute]):
        tree: dict | None = _ROOT_TREES[root]
        path = root
        for link in links:
            attr = link.attr
            if attr.startswith("__"):
                self.flag_attribute(link, "dunder", f"`{path}.{attr}`: attributes starting with `__` are not allowed")
                return
            if tree is None:
                self.flag_attribute(
                    link,
                    "torch_forbidden",
                    f"`{path}.{attr}`: attributes of the allow-listed `{path}` are not allowed "
                    f"(use `{path}` itself, or methods of tensors); {_ROOT_HINTS[root]}",
                )
                return
            if attr not in tree:
                self.flag_attribute(link, "torch_forbidden", f"`{path}.{attr}` is not allowed: {_ROOT_HINTS[root]}")
                return
            tree = tree[attr]
            path = f"{path}.{attr}"
        if tree is not None:
            example = path
            while tree is not None:  # descend to an allow-listed leaf, for the message
                name = sorted(tree)[0]
                example, tree = f"{example}.{name}", tree[name]
            self.flag_attribute(
                links[-1],
                "module_alias",
                f"`{path}` is a namespace: use its allow-listed functions directly, e.g. "
                f"`{example}`; it cannot be aliased, passed, stored or returned",
            )
