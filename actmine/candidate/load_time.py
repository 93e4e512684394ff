"""What a candidate runs when it is loaded must be provably cheap: a bounded evaluator of its constants.

Compiling a candidate (`actmine.candidate.source.compile_candidate`) runs its top level: the
module-level assignments, and -- for every top-level `def` and every lambda among those values --
the default values and the annotations. That happens in sandboxed workers, but also in the user's
own process, with no time or memory limit, when a program is loaded from an exported pack or a
search's `best_activation.py` (`actmine.candidate.loader`). The policy already restricts this code
to constant expressions (`_Checker.check_constant`); this module proves that each one is also
*cheap*: `X = 9 ** 9 ** 9 ** 9`, `math.factorial(10**8)` or `"a" * 10**10` are constants too.

The rule (reason code `costly_constant`): **the policy computes every load-time expression itself,
in source order, with Python's own operations, and checks each operation's cost from its operands'
sizes before performing it.** An operation is refused when

- an integer it makes would have more than `MAX_INT_BITS` bits (`**`, `*`, `<<`, `pow`,
  `round(n, -k)` -- checked from the operands' bit lengths, before computing), or a string, bytes
  or tuple more than `MAX_SIZE` elements (repetition, concatenation, `tuple(...)`, formatting;
  tuples count their elements through nesting, so sharing cannot hide size);
- a `math` function whose result grows with its argument (`factorial`, `comb`, `perm`, `prod`,
  `lcm`, `sumprod`) would exceed those bounds (estimated with `lgamma` or bit lengths first);
- a format spec or `%`-format asks for a width or precision over `MAX_FORMAT_NUMBER`, or for `*`;
- the whole program's load-time work exceeds `MAX_STEPS` (estimated machine-word operations:
  products of operand sizes for multiplication and division, one per element copied or compared,
  `NODE_STEPS` per evaluated node or comprehension iteration);
- `min`/`max` get a `key=` that is not a builtin (it would run a lambda at load time);
- an operand whose value the evaluator does not know meets a size-sensitive operation.

Names resolve to the values of earlier top-level assignments (a top-level `def` or a lambda is an
opaque function), to `torch`/`F`/`math` attributes (the real objects: `torch.pi`, `torch.float32`),
and to the builtins. An operation that raises (`1 / 0`) makes the value unknown: the program would
fail to load there, cheaply. Because the evaluator performs the same operations Python will, what
it accepts is what runs -- and nothing runs that it did not already compute under the bounds.

Annotations evaluated at load time (of top-level `def`s and top-level annotated names) must be
constant expressions in the same sense -- types such as `torch.Tensor`, `float`, `tuple[float, ...]`,
`int | None`, or strings; a call there (`x: torch.zeros(10**10)`) is refused. Default values and
annotations of functions nested in a function body run when that function runs, under the
worker's limits like any body code, and are not evaluated here.

The evaluator runs only on a program that passed every other rule of the policy, so it sees only
the constant-expression nodes that `check_constant` admits (and whatever an annotation holds).

Where the parts live: the bounds, the values the evaluator cannot compute and its two exceptions in
`load_time_bounds`; the checks of binary operators and comparisons (a mixin of the evaluator) in
`load_time_operators`; the checks made before a builtin or `math` function is called in
`load_time_calls`; the evaluator itself -- statements, names, expressions, calls, comprehensions --
here. The bounds, `CostlyConstant` and `UNKNOWN` stay importable from this module.
"""

from __future__ import annotations

import ast
import math
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F

from .load_time_bounds import (
    MAX_FORMAT_NUMBER as MAX_FORMAT_NUMBER,
    MAX_INT_BITS as MAX_INT_BITS,
    MAX_SIZE as MAX_SIZE,
    MAX_STEPS as MAX_STEPS,
    NODE_STEPS as NODE_STEPS,
    UNKNOWN as UNKNOWN,
    CostlyConstant as CostlyConstant,
    _format_numbers_problem,
    _Function,
    _is_int,
    _LoadFails,
    _snippet,
    _statement_targets,
    _unpack,
    _words,
)
from .load_time_calls import _CALL, _CALL_CHECKS, _CONSTANT_CALLS, _SIZE_SENSITIVE_CALLS
from .load_time_operators import _UNARY, OperatorChecks

#: Value types whose attributes the evaluator reads (after the policy refused private, dunder and
#: dangerous attribute names): plain data, dtypes and `torch.finfo`/`torch.iinfo` results.
_DATA_TYPES = (
    int,
    float,
    complex,
    bool,
    str,
    bytes,
    tuple,
    range,
    slice,
    type(None),
    type(Ellipsis),
    torch.dtype,
    torch.finfo,
    torch.iinfo,
)


class LoadTimeEvaluator(OperatorChecks):
    """Computes a checked module's load-time code under the bounds (see the module docstring).

    `roots` maps `torch`, `F` and `math` to their allow-listed attribute trees (a leaf is None);
    `builtins` are the names a candidate's builtins hold. After `run`, `values` holds the top-level
    names' values (`UNKNOWN` where not known), and `fails_at` the first top-level statement that
    raises when the program loads (None when loading succeeds): the evaluator computes with Python's
    own operations, so it raises exactly where the program does.
    """

    def __init__(self, roots: dict[str, dict], builtins: dict[str, Any]):
        self.roots = roots
        self.modules = {"torch": torch, "F": F, "math": math}
        self.builtins = builtins
        self.values: dict[str, Any] = {}
        self.fails_at: ast.stmt | None = None
        self.steps = 0
        self._weights: dict[int, int] = {}
        self._alive: list[tuple] = []  # tuples whose weight is memoised by id: kept alive so ids stay unique

    # -- the program --

    def run(self, tree: ast.Module) -> tuple[ast.AST, str] | None:
        """The first load-time expression that cannot be proven cheap, as (node, message), or None."""
        for statement in tree.body:
            try:
                self.statement(statement)
            except CostlyConstant as exc:
                return exc.node, exc.reason
            except _LoadFails:
                # Loading stops here. What follows never runs, but is checked all the same (its names
                # bound by this statement unknown): a program is judged by its text, not by this accident.
                self.fails_at = self.fails_at or statement
                for name in _statement_targets(statement):
                    self.values[name] = UNKNOWN
            except Exception as exc:  # noqa: BLE001 -- not the program's exception but the evaluator's own
                return statement, (
                    f"the policy could not evaluate the top-level statement "  # fail closed
                    f"`{_snippet(statement)}` ({type(exc).__name__}); write its values out as literals"
                )
        return None

    def statement(self, statement: ast.stmt):
        if isinstance(statement, ast.FunctionDef):
            self.function_definition(statement, statement.name)
            self.values[statement.name] = _Function(statement.name)
        elif isinstance(statement, ast.Assign):
            value = self.about(statement.value, f"the top-level value of `{_snippet(statement.targets[0], 30)}`")
            for target in statement.targets:
                self.bind(target, value)
        elif isinstance(statement, ast.AnnAssign):
            what = _snippet(statement.target, 30)
            if statement.value is not None:
                self.bind(statement.target, self.about(statement.value, f"the top-level value of `{what}`"))
            self.about(statement.annotation, f"the annotation of `{what}`", annotation=True)
        elif isinstance(statement, ast.AugAssign) and isinstance(statement.target, ast.Name):
            name = statement.target.id
            what = f"the top-level value of `{name}`"
            operand = self.about(statement.value, what)
            try:
                self.values[name] = self.binary(statement.op, self.lookup(name, ()), operand, statement)
            except CostlyConstant as exc:
                raise CostlyConstant(exc.node, self.message(what, statement, exc.reason)) from None

    def function_definition(self, node: ast.FunctionDef | ast.Lambda, name: str, scopes: tuple[dict, ...] = ()):
        """A `def` or lambda being created: its defaults (and a def's annotations) are evaluated now."""
        args = node.args
        positional = [*args.posonlyargs, *args.args]
        pairs = [
            *zip(positional[len(positional) - len(args.defaults) :], args.defaults),
            *zip(args.kwonlyargs, args.kw_defaults),
        ]
        for arg, default in pairs:
            if default is None:
                continue
            if isinstance(node, ast.Lambda):  # inside an expression: its refusal names the whole value
                self.evaluate(default, scopes)
            else:
                self.about(default, f"the default value of `{arg.arg}` (function `{name}`)")
        if isinstance(node, ast.FunctionDef):
            for arg in [*positional, *args.kwonlyargs, args.vararg, args.kwarg]:
                if arg is not None and arg.annotation is not None:
                    self.about(arg.annotation, f"the annotation of `{arg.arg}` (function `{name}`)", annotation=True)
            if node.returns is not None:
                self.about(node.returns, f"the return annotation of `{name}`", annotation=True)

    def about(self, node: ast.expr, what: str, annotation: bool = False) -> Any:
        """Evaluate `node`; a refusal's message names `what` is being computed and how to fix it."""
        try:
            return self.evaluate(node, ())
        except CostlyConstant as exc:
            reason = exc.reason
            if annotation:
                reason += (
                    "; annotations run when the function is defined: write a type such as torch.Tensor, "
                    "float or tuple[float, ...], or a string"
                )
            raise CostlyConstant(exc.node, self.message(what, node, reason)) from None

    @staticmethod
    def message(what: str, node: ast.AST, reason: str) -> str:
        return (
            f"{what} (`{_snippet(node)}`) cannot be proven cheap to compute: {reason}. Top-level values, "
            "default arguments and annotations run whenever the program is loaded -- also outside the "
            f"sandbox, with no time or memory limit -- so they are held to integers of at most {MAX_INT_BITS:,} "
            f"bits, strings and tuples of at most {MAX_SIZE:,} elements and {MAX_STEPS:,} steps of work; "
            "write the value out as a literal, or compute it inside activation_function"
        )

    def bind(self, target: ast.AST, value: Any):
        if isinstance(target, ast.Name):
            self.values[target.id] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            if value is UNKNOWN:
                parts = (UNKNOWN,) * len(target.elts)
            elif isinstance(value, (tuple, str, bytes)) and len(value) == len(target.elts):
                parts = tuple(value)
            else:  # a range is unpacked element by element, at most len(targets) + 1 of them
                parts = self.attempt(lambda: tuple(_unpack(value, len(target.elts))), target)
            for index, element in enumerate(target.elts):
                self.bind(element, parts[index])

    # -- expressions --

    def charge(self, steps: int | float, node: ast.AST):
        self.steps += steps
        if self.steps > MAX_STEPS:
            raise CostlyConstant(
                node, f"the program's load-time code takes more than {MAX_STEPS:,} steps (at `{_snippet(node)}`)"
            )

    def weight(self, value: Any) -> int:
        """A value's size: bits / 64 for an int, the length of a string, elements through nesting of a tuple."""
        kind = type(value)
        if kind is int:
            return _words(value)
        if kind in (str, bytes):
            return len(value) + 1
        if kind is not tuple:
            return 1
        known = self._weights.get(id(value))
        if known is None:
            # Memoised by identity: a tuple that holds another several times (`T = (T, T)`) counts it each
            # time without walking it again, so sharing can neither hide size nor make counting slow.
            known = 1 + sum(self.weight(element) for element in value)
            self._weights[id(value)] = known
            self._alive.append(value)
        return known

    def admit(self, value: Any, node: ast.AST) -> Any:
        """`value`, made at `node`, if it is within the size bounds."""
        kind = type(value)
        if kind is int and value.bit_length() > MAX_INT_BITS:
            raise CostlyConstant(node, f"`{_snippet(node)}` is an integer of {value.bit_length():,} bits")
        if kind in (str, bytes, tuple) and self.weight(value) > MAX_SIZE:
            raise CostlyConstant(node, f"`{_snippet(node)}` holds {self.weight(value):,} elements")
        return value

    def lookup(self, name: str, scopes: tuple[dict, ...]) -> Any:
        for scope in reversed(scopes):
            if name in scope:
                return scope[name]
        if name in self.values:
            return self.values[name]
        if name in self.builtins:
            return self.builtins[name]
        raise _LoadFails(f"name {name!r} is not bound yet")  # NameError when the program loads

    def evaluate(self, node: ast.expr, scopes: tuple[dict, ...]) -> Any:
        self.charge(NODE_STEPS, node)
        if isinstance(node, ast.Constant):
            return self.admit(node.value, node)
        if isinstance(node, ast.Name):
            return self.lookup(node.id, scopes)
        if isinstance(node, ast.Tuple):
            return self.admit(tuple(self.elements(node.elts, scopes, node)), node)
        if isinstance(node, ast.UnaryOp):
            operand = self.evaluate(node.operand, scopes)
            if operand is UNKNOWN:
                return UNKNOWN
            if _is_int(operand):
                self.charge(_words(operand), node)
            return self.attempt(lambda: _UNARY[type(node.op)](operand), node)
        if isinstance(node, ast.BinOp):
            left = self.evaluate(node.left, scopes)
            return self.binary(node.op, left, self.evaluate(node.right, scopes), node)
        if isinstance(node, ast.BoolOp):
            result = UNKNOWN
            for value_node in node.values:
                result = self.evaluate(value_node, scopes)
                if result is not UNKNOWN and bool(result) == isinstance(node.op, ast.Or):
                    return result
            return result
        if isinstance(node, ast.Compare):
            return self.compare(node, scopes)
        if isinstance(node, ast.IfExp):
            test = self.evaluate(node.test, scopes)
            if test is UNKNOWN:  # evaluate both: either may run
                self.evaluate(node.body, scopes)
                self.evaluate(node.orelse, scopes)
                return UNKNOWN
            return self.evaluate(node.body if test else node.orelse, scopes)
        if isinstance(node, ast.Subscript):
            return self.subscript(node, scopes)
        if isinstance(node, ast.Slice):
            parts = [None if p is None else self.evaluate(p, scopes) for p in (node.lower, node.upper, node.step)]
            return UNKNOWN if any(part is UNKNOWN for part in parts) else slice(*parts)
        if isinstance(node, ast.JoinedStr):
            pieces = [self.evaluate(part, scopes) for part in node.values]
            if any(type(piece) is not str for piece in pieces):
                return UNKNOWN
            self.charge(sum(map(len, pieces)), node)
            return self.admit("".join(pieces), node)
        if isinstance(node, ast.FormattedValue):
            return self.formatted(node, scopes)
        if isinstance(node, ast.Attribute):
            return self.attribute(node, scopes)
        if isinstance(node, ast.Lambda):
            self.function_definition(node, "lambda", scopes)
            return _Function("lambda")
        if isinstance(node, ast.Call):
            return self.call(node, scopes)
        raise CostlyConstant(node, f"`{_snippet(node)}` is not a constant expression the policy can evaluate")

    def attempt(self, operation: Callable[[], Any], node: ast.AST) -> Any:
        """Perform a checked operation; one that raises makes the value unknown (loading fails there)."""
        try:
            result = operation()
        except CostlyConstant:
            raise
        except Exception as exc:  # noqa: BLE001 -- whatever Python raises, the program raises when loading
            raise _LoadFails(str(exc)[:200]) from None
        return self.admit(result, node)

    def elements(self, nodes: Iterable[ast.expr], scopes, where: ast.AST) -> list:
        """The values of a tuple display or argument list, `*starred` parts unpacked."""
        out: list = []
        for element in nodes:
            if isinstance(element, ast.Starred):
                out.extend(self.items(self.evaluate(element.value, scopes), element))
            else:
                out.append(self.evaluate(element, scopes))
            if len(out) > MAX_SIZE:
                raise CostlyConstant(where, f"`{_snippet(where)}` holds more than {MAX_SIZE:,} elements")
        return out

    def items(self, iterable: Any, node: ast.AST) -> list:
        """The elements of an iterable value (a tuple, string, bytes or range), charged one by one."""
        if iterable is UNKNOWN:
            raise CostlyConstant(node, f"the elements of `{_snippet(node)}` are not known")
        if isinstance(iterable, (tuple, str, bytes, range)):
            try:
                length = len(iterable)
            except OverflowError:
                length = MAX_SIZE + 1
            if length > MAX_SIZE:
                raise CostlyConstant(node, f"`{_snippet(node)}` has more than {MAX_SIZE:,} elements to go through")
            self.charge(length * 4, node)
            return list(iterable)
        raise _LoadFails(f"{type(iterable).__name__} is not iterable")  # TypeError when loading

    def subscript(self, node: ast.Subscript, scopes) -> Any:
        value = self.evaluate(node.value, scopes)
        index = self.evaluate(node.slice, scopes)
        if value is UNKNOWN or index is UNKNOWN:
            return UNKNOWN
        if isinstance(value, (str, bytes, tuple)) and isinstance(index, slice):
            self.charge(self.weight(value), node)
        else:
            self.charge(self.weight(index), node)  # an element, or a generic alias such as tuple[float, ...]
        return self.attempt(lambda: value[index], node)

    def formatted(self, node: ast.FormattedValue, scopes) -> Any:
        value = self.evaluate(node.value, scopes)
        spec = "" if node.format_spec is None else self.evaluate(node.format_spec, scopes)
        if value is UNKNOWN or type(spec) is not str:
            return UNKNOWN
        problem = _format_numbers_problem(spec)
        if problem:
            raise CostlyConstant(node, problem)
        weight = self.weight(value)
        self.charge(8 * weight + (weight * weight if _is_int(value) else 0), node)
        conversion = {-1: None, 115: str, 114: repr, 97: ascii}[node.conversion]
        return self.attempt(lambda: format(value if conversion is None else conversion(value), spec), node)

    def attribute(self, node: ast.Attribute, scopes) -> Any:
        chain, base = [], node
        while isinstance(base, ast.Attribute):
            chain.append(base.attr)
            base = base.value
        chain.reverse()
        if isinstance(base, ast.Name) and base.id in self.roots:
            tree: dict | None = self.roots[base.id]
            value = self.modules[base.id]
            for attr in chain:
                if tree is None or attr not in tree:
                    return UNKNOWN  # refused by the policy before this runs
                tree, value = tree[attr], getattr(value, attr)
            return value
        value = self.evaluate(node.value, scopes)
        if not isinstance(value, _DATA_TYPES) or node.attr.startswith("_"):
            return UNKNOWN
        return self.attempt(lambda: getattr(value, node.attr), node)

    # -- calls --

    def call(self, node: ast.Call, scopes) -> Any:
        function, name = self.callee(node.func)
        if function is None:
            raise CostlyConstant(
                node,
                f"`{_snippet(node.func)}` is not a function the policy can evaluate at load "
                "time (only math functions, torch.finfo/torch.iinfo and the builtins "
                f"{', '.join(sorted(_CONSTANT_CALLS))})",
            )
        args = []
        for argument in node.args:  # a comprehension argument is passed as the tuple of what it yields
            if isinstance(argument, (ast.GeneratorExp, ast.ListComp, ast.SetComp)):
                args.append(self.comprehension(argument, scopes))
            else:
                args.extend(self.elements([argument], scopes, node))
        keywords = {}
        for keyword in node.keywords:
            value = self.evaluate(keyword.value, scopes)
            if keyword.arg is None:
                raise _LoadFails("** of a non-mapping")  # no dicts exist at load time: TypeError
            keywords[keyword.arg] = value
        if any(value is UNKNOWN for value in [*args, *keywords.values()]):
            if name in _SIZE_SENSITIVE_CALLS:
                raise CostlyConstant(node, f"an argument of `{name}` has a value the policy cannot compute")
            return UNKNOWN
        check = _CALL_CHECKS.get(name)
        if check is not None:
            result = check(self, node, function, args, keywords)
            if result is not _CALL:
                return result
        else:
            self.charge(sum(self.weight(a) for a in [*args, *keywords.values()]), node)
        return self.attempt(lambda: function(*args, **keywords), node)

    def callee(self, func: ast.expr) -> tuple[Callable | None, str]:
        if isinstance(func, ast.Name) and func.id in _CONSTANT_CALLS and func.id not in self.values:
            return self.builtins.get(func.id), func.id
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            root, attr = func.value.id, func.attr
            if root == "math" and attr in self.roots["math"] and callable(getattr(math, attr, None)):
                return getattr(math, attr), f"math.{attr}"
            if root == "torch" and attr in ("finfo", "iinfo"):
                return getattr(torch, attr), f"torch.{attr}"
        return None, ""

    def comprehension(self, node: ast.GeneratorExp | ast.ListComp | ast.SetComp, scopes) -> Any:
        """The elements a comprehension yields, as a tuple (a set comprehension's as Python's set would
        iterate them), each iteration charged; at most MAX_SIZE of them."""
        results: list = []
        generators = node.generators

        def loop(index: int, inner: tuple[dict, ...]):
            if index == len(generators):
                results.append(self.evaluate(node.elt, inner))
                if len(results) > MAX_SIZE:
                    raise CostlyConstant(node, f"`{_snippet(node)}` yields more than {MAX_SIZE:,} elements")
                return
            generator = generators[index]
            for item in self.items(self.evaluate(generator.iter, inner), generator.iter):
                self.charge(NODE_STEPS, node)
                scope: dict = {}
                self.bind_local(generator.target, item, scope)
                nested = inner + (scope,)
                tests = [self.evaluate(condition, nested) for condition in generator.ifs]
                if all(test is UNKNOWN or test for test in tests):
                    loop(index + 1, nested)

        loop(0, scopes)
        if isinstance(node, ast.SetComp):
            return self.attempt(lambda: tuple(set(results)), node)
        return self.admit(tuple(results), node)

    def bind_local(self, target: ast.AST, value: Any, scope: dict):
        if isinstance(target, ast.Name):
            scope[target.id] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            if value is UNKNOWN:
                parts = (UNKNOWN,) * len(target.elts)
            elif isinstance(value, (tuple, str, bytes)) and len(value) == len(target.elts):
                parts = tuple(value)
            else:
                raise _LoadFails("cannot unpack")  # ValueError or TypeError when loading
            for index, element in enumerate(target.elts):
                self.bind_local(element, parts[index], scope)


def check_load_time(tree: ast.Module, roots: dict[str, dict], builtins: dict[str, Any]) -> tuple[ast.AST, str] | None:
    """The first load-time expression of `tree` (a module that passed the rest of the policy) that
    cannot be proven cheap, as (node, message); None when all of them are."""
    return LoadTimeEvaluator(roots, builtins).run(tree)
