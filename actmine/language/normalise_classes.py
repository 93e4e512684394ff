"""Rule 5 of the normaliser: a stateless `nn.Module` subclass written as a function.

`_ClassConverter` plans the conversion of one top-level class (`plan`: the class itself, then every
use of it) and applies it only when every condition holds (see rule 5 in the
`actmine.language.normalise` docstring); otherwise the class stays as written, for the policy to
refuse with a message that says how to write it as a function. `_is_constant` decides what may
become a default argument.
"""

from __future__ import annotations

import ast
import copy
import re
from typing import Callable

from .normalise_edits import _SourceEditor
from .normalise_scopes import _Analysis, _dotted, _parameters, _path_of
from .normalise_vocabulary import _PREIMPORTED, ACTIVATION_MODULES


def _is_constant(
    node: ast.AST, names_ok: Callable[[str], bool], call_ok: Callable[[ast.Call], bool] = lambda call: False
) -> bool:
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
        return (
            dotted is not None
            and names_ok(dotted[0].id)
            and call_ok(node)
            and all(_is_constant(v, names_ok, call_ok) for v in [*node.args, *(k.value for k in node.keywords)])
            and all(k.arg is not None for k in node.keywords)
        )
    return False


def _snake(name: str) -> str:
    """`SoftClip` → `soft_clip`, `GELUSine` → `gelu_sine`."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return name.lower()


class _ClassConverter:
    """Plans and applies the conversion of one class (see rule 5); `convert` does nothing when any
    condition fails, leaving the class for the policy to refuse."""

    def __init__(self, owner: _SourceEditor, cls: ast.ClassDef, analysis: _Analysis, bindings: dict[str, str]):
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
        owner.changes.append(f"wrote the module class `{self.cls.name}` as the function `{function.name}`{extra}{uses}")

    # -- the class itself --

    def plan(self):
        cls = self.cls
        if cls.decorator_list or cls.keywords or len(cls.bases) != 1:
            return None
        if _path_of(cls.bases[0], self.analysis, self.bindings) != "torch.nn.Module":
            return None
        init = forward = None
        attributes: dict[str, ast.expr] = {}  # attribute -> its value (class level or __init__)
        docstring = None
        for index, statement in enumerate(cls.body):
            if (
                index == 0
                and isinstance(statement, ast.Expr)
                and isinstance(statement.value, ast.Constant)
                and isinstance(statement.value.value, str)
            ):
                docstring = statement
            elif isinstance(statement, ast.Pass):
                continue
            elif (
                isinstance(statement, ast.Assign)
                and len(statement.targets) == 1
                and isinstance(statement.targets[0], ast.Name)
                and statement.targets[0].id not in attributes
                and _is_constant(statement.value, self.global_name, self.call_ok)
            ):
                attributes[statement.targets[0].id] = statement.value
            elif (
                isinstance(statement, ast.FunctionDef)
                and not statement.decorator_list
                and statement.name in ("__init__", "forward", "extra_repr")
            ):
                if statement.name == "__init__":
                    init = statement
                elif statement.name == "forward":
                    forward = statement
            else:
                return None
        if forward is None:
            return None
        init_parameters: dict[str, ast.expr] = {}  # __init__ parameter -> its default
        parameter_of: dict[str, str] = {}  # attribute -> the __init__ parameter it holds
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
        path = _path_of(call.func, self.analysis, self.bindings) or ""
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
            if not (
                isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self"
            ) or target.attr.startswith("_"):
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
            return (
                not call.args
                and not inner.keywords
                and (
                    not inner.args
                    or (
                        len(inner.args) == 2
                        and all(isinstance(a, ast.Name) for a in inner.args)
                        and [a.id for a in inner.args] == [self.cls.name, "self"]
                    )
                )
            )
        return (
            _path_of(inner, self.analysis, self.bindings) == "torch.nn.Module"
            and len(call.args) == 1
            and isinstance(call.args[0], ast.Name)
            and call.args[0].id == "self"
        )

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
                    if not (
                        isinstance(parent, ast.Attribute) and parent.value is node and isinstance(parent.ctx, ast.Load)
                    ):
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
        if (
            isinstance(construct, ast.Call)
            and construct.func is uses[0]
            and not construct.args
            and not construct.keywords
            and isinstance(assign, ast.Assign)
            and assign.value is construct
            and len(assign.targets) == 1
            and isinstance(assign.targets[0], ast.Name)
            and any(assign is s for s in self.owner.tree.body)
            and len(self.analysis.module_bindings(assign.targets[0].id)) == 1
            and not assign.targets[0].id.startswith("__")
        ):
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
        if docstring is not None and not (
            isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            body.insert(0, docstring)
        function = ast.FunctionDef(
            name=name,
            args=arguments,
            body=body,
            decorator_list=[],
            returns=None,
            type_comment=None,
            **({"type_params": []} if "type_params" in ast.FunctionDef._fields else {}),
        )
        for node in list(ast.walk(function)):
            for field, value in ast.iter_fields(node):
                if isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name) and value.value.id == "self":
                    setattr(node, field, ast.copy_location(ast.Name(id=value.attr, ctx=ast.Load()), value))
                elif isinstance(value, list):
                    for i, item in enumerate(value):
                        if (
                            isinstance(item, ast.Attribute)
                            and isinstance(item.value, ast.Name)
                            and item.value.id == "self"
                        ):
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
            if not (
                isinstance(outer, ast.Assign) and len(outer.targets) == 1 and isinstance(outer.targets[0], ast.Name)
            ):
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
        return [
            ast.keyword(arg=attribute, value=given[parameter])
            for attribute, parameter in parameter_of.items()
            if parameter in given
        ]

    def direct_call(self, name: str, call: ast.Call, keywords: list[ast.keyword]) -> ast.Call:
        taken = {k.arg for k in call.keywords}
        if any(k.arg in taken for k in keywords):
            raise ValueError("a keyword of the call is also an attribute")  # normalise gives up
        return ast.Call(
            func=ast.Name(id=name, ctx=ast.Load()),
            args=call.args,
            keywords=[*call.keywords, *(copy.deepcopy(k) for k in keywords)],
        )

    def body_holding(self, statement: ast.stmt) -> list | None:
        for _parent, body in self.owner.bodies():
            if any(s is statement for s in body):
                return body
        return None
