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
"""

from __future__ import annotations

import ast
import math
import operator
import re
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F

#: The largest integer a load-time expression may make (bits). Python's own literals stay below it
#: (4,300 decimal digits at most).
MAX_INT_BITS = 16_384
#: The most elements a string, bytes or tuple made at load time may hold (tuples count through nesting).
MAX_SIZE = 100_000
#: The largest width or precision a format spec or `%`-format may ask for.
MAX_FORMAT_NUMBER = 1_000
#: The most (estimated) machine-word operations all of a program's load-time code may take.
MAX_STEPS = 5_000_000
#: What one evaluated node or one comprehension iteration costs (Python's interpreter overhead).
NODE_STEPS = 50

_LOG2_10 = math.log2(10)
#: Value types whose attributes the evaluator reads (after the policy refused private, dunder and
#: dangerous attribute names): plain data, dtypes and `torch.finfo`/`torch.iinfo` results.
_DATA_TYPES = (int, float, complex, bool, str, bytes, tuple, range, slice, type(None), type(Ellipsis),
               torch.dtype, torch.finfo, torch.iinfo)
_AGGREGATES = frozenset("tuple sum min max any all".split())
#: `%`-format directives: flags, width, precision.
_PERCENT_DIRECTIVE = re.compile(rb"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)", re.S)


class CostlyConstant(Exception):
    """A load-time expression the evaluator cannot prove cheap; `node` is where, the text says why."""

    def __init__(self, node: ast.AST, reason: str):
        super().__init__(reason)
        self.node = node
        self.reason = reason


class _LoadFails(Exception):
    """An operation of the program raises: Python stops loading the program there (it has no `try` at
    the top level), cheaply."""


class _Unknown:
    """A value the evaluator does not know (an attribute of a function or a type, a name bound by a
    statement that raised): it may not meet a size-sensitive operation."""

    def __repr__(self):
        return "<unknown>"


UNKNOWN = _Unknown()


class _Function:
    """A function the program defines (a top-level `def`, a lambda): opaque, never called at load time."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self):
        return f"<function {self.name}>"


def _unpack(value: Any, count: int) -> list:
    """What `a, b, ... = value` binds, reading at most count + 1 elements, as Python does."""
    iterator = iter(value)
    parts = [next(iterator) for _ in range(count)]
    for _extra in iterator:
        raise ValueError(f"too many values to unpack (expected {count})")
    return parts


def _statement_targets(statement: ast.stmt) -> list[str]:
    if isinstance(statement, ast.FunctionDef):
        return [statement.name]
    targets = (statement.targets if isinstance(statement, ast.Assign) else
               [statement.target] if isinstance(statement, (ast.AnnAssign, ast.AugAssign)) else [])
    return [node.id for target in targets for node in ast.walk(target) if isinstance(node, ast.Name)]


def _bits_text(bits: int | float) -> str:
    """'about 1,228,093,894' for a size in bits, however large."""
    if bits == math.inf or bits > 10 ** 15:
        return f"far more than {MAX_INT_BITS:,}"
    return f"about {int(bits):,}"


def _words(value: int) -> int:
    return value.bit_length() // 64 + 1


def _is_int(value: Any) -> bool:
    return type(value) in (int, bool)


def _snippet(node: ast.AST, limit: int = 50) -> str:
    try:
        text = ast.unparse(node)
    except (RecursionError, ValueError, TypeError, AttributeError):
        return type(node).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _format_numbers_problem(spec: str | bytes) -> str | None:
    """Why a format spec or `%`-format string asks for too much, or None."""
    if isinstance(spec, str):
        spec = spec.encode("utf-8", "surrogatepass")
    for digits in re.findall(rb"\d+", spec):
        if len(digits) > 6 or int(digits) > MAX_FORMAT_NUMBER:
            return (f"the format asks for a width or precision of {digits.decode()[:12]}, over the "
                    f"{MAX_FORMAT_NUMBER:,} a load-time format may")
    return None


def _percent_problem(template: str | bytes) -> str | None:
    data = template.encode("utf-8", "surrogatepass") if isinstance(template, str) else template
    for match in _PERCENT_DIRECTIVE.finditer(data):
        width, precision = match.group(1), match.group(2)
        if b"*" in (width, precision):
            return "`%`-formatting with a `*` width or precision takes it from the operands; write it out"
        for number in (width, precision):
            if number is not None and (len(number) > 6 or int(number) > MAX_FORMAT_NUMBER):
                return (f"the `%`-format asks for a width or precision of {number.decode()[:12]}, over the "
                        f"{MAX_FORMAT_NUMBER:,} a load-time format may")
    return None


def _log2_factorial(n: int) -> float:
    return math.lgamma(n + 1) / math.log(2)


class LoadTimeEvaluator:
    """Computes a checked module's load-time code under the bounds above (see the module docstring).

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
        self._alive: list[tuple] = []   # tuples whose weight is memoised by id: kept alive so ids stay unique

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
                return statement, (f"the policy could not evaluate the top-level statement "   # fail closed
                                   f"`{_snippet(statement)}` ({type(exc).__name__}); write its values out as literals")
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
                self.bind(statement.target,
                          self.about(statement.value, f"the top-level value of `{what}`"))
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
        pairs = [*zip(positional[len(positional) - len(args.defaults):], args.defaults),
                 *zip(args.kwonlyargs, args.kw_defaults)]
        for arg, default in pairs:
            if default is None:
                continue
            if isinstance(node, ast.Lambda):   # inside an expression: its refusal names the whole value
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
                reason += ("; annotations run when the function is defined: write a type such as torch.Tensor, "
                           "float or tuple[float, ...], or a string")
            raise CostlyConstant(exc.node, self.message(what, node, reason)) from None

    @staticmethod
    def message(what: str, node: ast.AST, reason: str) -> str:
        return (f"{what} (`{_snippet(node)}`) cannot be proven cheap to compute: {reason}. Top-level values, "
                "default arguments and annotations run whenever the program is loaded -- also outside the "
                f"sandbox, with no time or memory limit -- so they are held to integers of at most {MAX_INT_BITS:,} "
                f"bits, strings and tuples of at most {MAX_SIZE:,} elements and {MAX_STEPS:,} steps of work; "
                "write the value out as a literal, or compute it inside activation_function")

    def bind(self, target: ast.AST, value: Any):
        if isinstance(target, ast.Name):
            self.values[target.id] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            if value is UNKNOWN:
                parts = (UNKNOWN,) * len(target.elts)
            elif isinstance(value, (tuple, str, bytes)) and len(value) == len(target.elts):
                parts = tuple(value)
            else:   # a range is unpacked element by element, at most len(targets) + 1 of them
                parts = self.attempt(lambda: tuple(_unpack(value, len(target.elts))), target)
            for index, element in enumerate(target.elts):
                self.bind(element, parts[index])

    # -- expressions --

    def charge(self, steps: int | float, node: ast.AST):
        self.steps += steps
        if self.steps > MAX_STEPS:
            raise CostlyConstant(node, f"the program's load-time code takes more than {MAX_STEPS:,} steps "
                                       f"(at `{_snippet(node)}`)")

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
        raise _LoadFails(f"name {name!r} is not bound yet")   # NameError when the program loads

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
            if test is UNKNOWN:   # evaluate both: either may run
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
        raise _LoadFails(f"{type(iterable).__name__} is not iterable")   # TypeError when loading

    # -- operators --

    def binary(self, op: ast.operator, left: Any, right: Any, node: ast.AST) -> Any:
        symbol = _SYMBOLS.get(type(op), "?")
        sensitive = isinstance(op, (ast.Mult, ast.Pow, ast.LShift, ast.Mod, ast.MatMult))
        if left is UNKNOWN or right is UNKNOWN:
            if sensitive:
                raise CostlyConstant(node, f"an operand of `{symbol}` has a value the policy cannot compute")
            return UNKNOWN
        function = _BINARY[type(op)]
        both_int = _is_int(left) and _is_int(right)
        if both_int:
            self.int_binary(op, left, right, node)
        elif isinstance(op, ast.Mult) and (_is_int(left) or _is_int(right)):
            sequence, count = (right, left) if _is_int(left) else (left, right)
            if isinstance(sequence, (str, bytes, tuple)):
                size = (self.weight(sequence) - 1) * max(int(count), 0)   # elements, through nesting
                if size > MAX_SIZE:
                    raise CostlyConstant(node, f"`{_snippet(node)}` repeats a sequence into about {size:,} elements")
                self.charge(size, node)
        elif isinstance(op, ast.Add) and isinstance(left, (str, bytes, tuple)) and type(left) is type(right):
            size = self.weight(left) + self.weight(right)
            if size > MAX_SIZE:
                raise CostlyConstant(node, f"`{_snippet(node)}` concatenates into {size:,} elements")
            self.charge(size, node)
        elif isinstance(op, ast.Mod) and isinstance(left, (str, bytes)):
            problem = _percent_problem(left)
            if problem:
                raise CostlyConstant(node, problem)
            self.charge(self.weight(left) + 8 * self.weight(right), node)
        elif isinstance(op, ast.Pow) and (_is_int(left) or _is_int(right)):
            self.charge(_words(left) if _is_int(left) else 1, node)   # int ** float, float ** int: floats
        return self.attempt(lambda: function(left, right), node)

    def int_binary(self, op: ast.operator, left: int, right: int, node: ast.AST):
        """Check an operation on two ints from their sizes, before it is computed."""
        a, b = _words(left), _words(right)
        if isinstance(op, ast.Mult):
            if left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
                raise CostlyConstant(node, f"`{_snippet(node)}` would be an integer of about "
                                           f"{left.bit_length() + right.bit_length():,} bits")
            self.charge(a * b, node)
        elif isinstance(op, ast.Pow):
            self.power(left, right, None, node)
        elif isinstance(op, ast.LShift):
            if left and right > 0 and left.bit_length() + right > MAX_INT_BITS:
                raise CostlyConstant(node, f"`{_snippet(node)}` would be an integer of about "
                                           f"{left.bit_length() + right:,} bits")
            self.charge(a + max(right, 0) // 64, node)
        elif isinstance(op, (ast.FloorDiv, ast.Mod)):
            self.charge(a * b, node)
        else:
            self.charge(a + b, node)

    def power(self, base: int, exponent: int, modulus: int | None, node: ast.AST):
        """Check `base ** exponent` (`% modulus`) on ints before it is computed."""
        if modulus is not None:
            if modulus == 0:
                return   # ValueError
            steps = (exponent.bit_length() + 1) * 2 * _words(modulus) ** 2
            self.charge(steps, node)
            return
        if exponent < 0 or abs(base) <= 1:
            self.charge(_words(base) + _words(exponent), node)   # a float, or 0, 1, -1
            return
        bits = exponent * math.log2(abs(base)) if exponent.bit_length() < 64 else math.inf
        if bits > MAX_INT_BITS:
            raise CostlyConstant(node, f"`{_snippet(node)}` would be an integer of {_bits_text(bits)} bits")
        self.charge((exponent.bit_length() + 1) * (int(bits) // 64 + 1) ** 2, node)

    def compare(self, node: ast.Compare, scopes) -> Any:
        left = self.evaluate(node.left, scopes)
        for op, right_node in zip(node.ops, node.comparators):
            right = self.evaluate(right_node, scopes)
            if left is UNKNOWN or right is UNKNOWN:
                return UNKNOWN
            if isinstance(op, (ast.In, ast.NotIn)):
                if isinstance(right, range) and not _is_int(left):
                    try:
                        length = len(right)
                    except OverflowError:
                        length = MAX_STEPS + 1
                    self.charge(length * 4, node)   # a non-int is looked for element by element
                elif isinstance(right, (str, bytes)):
                    self.charge(self.weight(left) * self.weight(right), node)
                elif isinstance(right, tuple):
                    self.charge(self.weight(right) + self.weight(left) * len(right), node)
            else:
                self.charge(self.weight(left) + self.weight(right), node)
            result = self.attempt(lambda: _COMPARE[type(op)](left, right), node)
            if result is UNKNOWN or not result:
                return result
            left = right
        return result

    def subscript(self, node: ast.Subscript, scopes) -> Any:
        value = self.evaluate(node.value, scopes)
        index = self.evaluate(node.slice, scopes)
        if value is UNKNOWN or index is UNKNOWN:
            return UNKNOWN
        if isinstance(value, (str, bytes, tuple)) and isinstance(index, slice):
            self.charge(self.weight(value), node)
        else:
            self.charge(self.weight(index), node)   # an element, or a generic alias such as tuple[float, ...]
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
                    return UNKNOWN   # refused by the policy before this runs
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
            raise CostlyConstant(node, f"`{_snippet(node.func)}` is not a function the policy can evaluate at load "
                                       "time (only math functions, torch.finfo/torch.iinfo and the builtins "
                                       f"{', '.join(sorted(_CONSTANT_CALLS))})")
        args = []
        for argument in node.args:   # a comprehension argument is passed as the tuple of what it yields
            if isinstance(argument, (ast.GeneratorExp, ast.ListComp, ast.SetComp)):
                args.append(self.comprehension(argument, scopes))
            else:
                args.extend(self.elements([argument], scopes, node))
        keywords = {}
        for keyword in node.keywords:
            value = self.evaluate(keyword.value, scopes)
            if keyword.arg is None:
                raise _LoadFails("** of a non-mapping")   # no dicts exist at load time: TypeError
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
                raise _LoadFails("cannot unpack")   # ValueError or TypeError when loading
            for index, element in enumerate(target.elts):
                self.bind_local(element, parts[index], scope)


_CALL = object()   # a call check's answer: go ahead and call the function with the checked arguments

_CONSTANT_CALLS = frozenset("float int bool complex abs round pow divmod min max sum len tuple range slice any all "
                            "isinstance enumerate zip reversed".split())
_SIZE_SENSITIVE_CALLS = frozenset({"pow", "round", "math.factorial", "math.comb", "math.perm", "math.prod",
                                   "math.lcm", "math.sumprod", "tuple", "sum", "min", "max", "int"})


def _bind(args: list, keywords: dict, names: tuple[str, ...], required: int) -> list:
    """The arguments of a builtin with parameters `names` (the first `required` of them required, the
    others None by default), bound as Python binds them; a call Python refuses fails to load."""
    if len(args) > len(names) or len(args) + len(keywords) < required:
        raise _LoadFails("bad arguments")
    values = [*args, *[None] * (len(names) - len(args))]
    for name, value in keywords.items():
        if name not in names or names.index(name) < len(args):
            raise _LoadFails("bad keyword")
        values[names.index(name)] = value
    if any(value is None for value in values[:required]):
        raise _LoadFails("missing argument")
    return values


def _check_pow(self: LoadTimeEvaluator, node, function, args, keywords):
    base, exponent, modulus = _bind(args, keywords, ("base", "exp", "mod"), 2)
    if modulus is None:   # pow(a, b) and pow(a, b, None) are a ** b
        return self.binary(ast.Pow(), base, exponent, node)
    if _is_int(base) and _is_int(exponent) and _is_int(modulus):
        self.power(base, exponent, modulus, node)
    return _CALL   # three ints, checked; anything else is a TypeError


def _check_round(self: LoadTimeEvaluator, node, function, args, keywords):
    number, digits = _bind(args, keywords, ("number", "ndigits"), 1)
    if _is_int(digits) and digits < 0:
        # int.__round__(-k) computes 10 ** k whatever the number is
        if -digits > MAX_INT_BITS or -digits * _LOG2_10 > MAX_INT_BITS:
            raise CostlyConstant(node, f"`{_snippet(node)}` computes 10 ** {-digits:,}"[:200])
        self.charge(int(-digits * _LOG2_10 / 64 + 1) ** 2 * 4, node)
    self.charge(self.weight(number) + self.weight(digits), node)
    return _CALL


def _check_int(self: LoadTimeEvaluator, node, function, args, keywords):
    values = [*args, *keywords.values()]
    if values and isinstance(values[0], (str, bytes)):
        self.charge(len(values[0]) ** 2 // 64 + len(values[0]), node)   # parsing digits is quadratic
    else:
        self.charge(sum(self.weight(v) for v in values), node)
    return _CALL


def _check_divmod(self: LoadTimeEvaluator, node, function, args, keywords):
    if len(args) == 2 and not keywords and _is_int(args[0]) and _is_int(args[1]):
        self.charge(_words(args[0]) * _words(args[1]), node)
    return _CALL


def _check_aggregate(self: LoadTimeEvaluator, node, function, args, keywords):
    """tuple, sum, min, max, any, all: over one iterable (or min/max over several arguments)."""
    name = node.func.id
    key = keywords.get("key")
    if key is not None and not any(key is cheap for cheap in (abs, len, bool, float)):
        raise CostlyConstant(node, f"`{name}(..., key=...)` calls its key for every element at load time: only "
                                   "abs, len, bool and float may be keys there")
    if name == "tuple" and (len(args) != 1 or keywords):
        return _CALL   # tuple() is empty; anything else is a TypeError
    if name in ("min", "max") and len(args) > 1:
        items = list(args)
    elif len(args) >= 1:
        items = self.items(args[0], node)
    else:
        return _CALL
    if name == "tuple":
        return self.admit(tuple(items), node)
    if name == "sum":   # sum adds left to right: check each partial sum, then let sum compute them
        total = args[1] if len(args) > 1 else keywords.get("start", 0)
        for item in items:
            total = self.binary(ast.Add(), total, item, node)
            if total is UNKNOWN:
                return UNKNOWN
        return self.attempt(lambda: function(items, *args[1:], **keywords), node)
    self.charge(sum(self.weight(item) for item in items) * 2, node)
    return self.attempt(lambda: function(*args, **keywords), node)


def _check_materialise(self: LoadTimeEvaluator, node, function, args, keywords):
    """enumerate, zip, reversed (only as comprehension iterables): their elements, as a tuple."""
    for argument in args:
        self.items(argument, node)
    return self.attempt(lambda: tuple(function(*args, **keywords)), node)


def _check_isinstance(self: LoadTimeEvaluator, node, function, args, keywords):
    self.charge(sum(self.weight(v) for v in args), node)
    return _CALL


def _check_factorial(self: LoadTimeEvaluator, node, function, args, keywords):
    if len(args) == 1 and not keywords and _is_int(args[0]) and args[0] > 1:
        n = args[0]
        bits = _log2_factorial(n) if n < 10 ** 9 else math.inf
        if bits > MAX_INT_BITS:
            raise CostlyConstant(node, f"`{_snippet(node)}` would be an integer of {_bits_text(bits)} bits")
        self.charge((int(bits) // 64 + 1) ** 2 * 4, node)
    return _CALL


def _check_comb_perm(self: LoadTimeEvaluator, node, function, args, keywords):
    values = [*args, *keywords.values()]
    if not all(_is_int(v) for v in values) or not 1 <= len(values) <= 2:
        return _CALL   # TypeError, or a bad call
    n = values[0]
    k = values[1] if len(values) == 2 else n
    if n < 0 or k < 0 or k > n:
        return _CALL   # ValueError or 0
    comb = node.func.attr == "comb"
    m = min(k, n - k) if comb else k
    if n < 2 ** 50:
        bits = (_log2_factorial(n) - _log2_factorial(n - k) - (_log2_factorial(k) if comb else 0)) * 1.01 + 64
    else:
        bits = m * n.bit_length()
    if bits > MAX_INT_BITS:
        raise CostlyConstant(node, f"`{_snippet(node)}` would be an integer of {_bits_text(bits)} bits")
    self.charge((int(bits) // 64 + 1) ** 2 * 4 + m, node)
    return _CALL


def _check_prod(self: LoadTimeEvaluator, node, function, args, keywords):
    if len(args) != 1:
        return _CALL
    total = keywords.get("start", 1)
    for item in self.items(args[0], node):
        total = self.binary(ast.Mult(), total, item, node)
        if total is UNKNOWN:
            return UNKNOWN
    return _CALL   # every partial product was within the bounds: math.prod computes the same ones


def _check_lcm(self: LoadTimeEvaluator, node, function, args, keywords):
    if all(_is_int(v) for v in args):
        bits = sum(v.bit_length() for v in args)
        if bits > MAX_INT_BITS:
            raise CostlyConstant(node, f"`{_snippet(node)}` may be an integer of up to {bits:,} bits")
        self.charge(sum(_words(v) for v in args) ** 2, node)
    return _CALL


def _check_iterable_math(self: LoadTimeEvaluator, node, function, args, keywords):
    """fsum, dist, hypot, sumprod, gcd and the like: every element goes through once (sumprod multiplies)."""
    flat = []
    for argument in args:
        flat.extend(self.items(argument, node) if isinstance(argument, (tuple, range)) else [argument])
    if node.func.attr == "sumprod" and len(args) == 2:
        for a, b in zip(self.items(args[0], node), self.items(args[1], node)):
            self.binary(ast.Mult(), a, b, node)
    self.charge(sum(self.weight(v) ** 2 if _is_int(v) else self.weight(v) for v in flat), node)
    return _CALL


_CALL_CHECKS: dict[str, Callable] = {
    "pow": _check_pow, "round": _check_round, "int": _check_int, "divmod": _check_divmod,
    **dict.fromkeys(_AGGREGATES, _check_aggregate),
    **dict.fromkeys(("enumerate", "zip", "reversed"), _check_materialise),
    "isinstance": _check_isinstance,
    "math.factorial": _check_factorial, "math.comb": _check_comb_perm, "math.perm": _check_comb_perm,
    "math.prod": _check_prod, "math.lcm": _check_lcm,
    **dict.fromkeys(("math.fsum", "math.dist", "math.hypot", "math.sumprod", "math.gcd", "math.isqrt"),
                    _check_iterable_math),
}

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
           ast.LShift: operator.lshift, ast.RShift: operator.rshift, ast.BitOr: operator.or_,
           ast.BitXor: operator.xor, ast.BitAnd: operator.and_, ast.MatMult: operator.matmul}
_SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
            ast.Pow: "**", ast.LShift: "<<", ast.RShift: ">>", ast.BitOr: "|", ast.BitXor: "^", ast.BitAnd: "&",
            ast.MatMult: "@"}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert, ast.Not: operator.not_}
_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Is: operator.is_, ast.IsNot: operator.is_not,
            ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b}


def check_load_time(tree: ast.Module, roots: dict[str, dict], builtins: dict[str, Any]) -> tuple[ast.AST, str] | None:
    """The first load-time expression of `tree` (a module that passed the rest of the policy) that
    cannot be proven cheap, as (node, message); None when all of them are."""
    return LoadTimeEvaluator(roots, builtins).run(tree)
