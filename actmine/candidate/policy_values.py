"""Candidate-policy rules about values (a base class of the policy's `_Checker`): top-level values
and defaults are immutable constants (`check_constant`), every loop is provably bounded
(`check_bounded`), and text shows no tensor values (`shows_no_values`).
"""

from __future__ import annotations

import ast
import sys

from .load_time_bounds import _snippet
from .policy_lists import (
    _CONSTANT_AGGREGATES,
    _CONSTANT_BUILTINS,
    _CONSTANT_RULE,
    _CONSTANT_TORCH_CALLS,
    _LOOP_HELPERS,
    _METADATA_ATTRIBUTES,
    _METADATA_METHODS,
    MAX_LOOP_ITERATIONS,
    PREIMPORTED,
)
from .policy_scopes import _attribute_chain, _int_literal


class _ValueRules:
    """The value rules of `_Checker`, which provides `flag`, `bound_anywhere` (every name the program
    binds), `globals` (its top-level names) and `literal_tuples` (top-level tuples bound once)."""

    def check_constant(self, node: ast.expr, what: str):
        """Flag `mutable_state` unless `node` is an immutable constant expression (see `_CONSTANT_RULE`).

        Names are accepted here (whether they resolve is `visit_name`'s job): a global holds a
        constant or a function, a builtin is immutable, and in a nested function's default a local
        of the enclosing function lives only as long as that call. Lambdas are accepted (their own
        defaults are checked as every function's are).
        """
        stack = [node]
        while stack:
            part = stack.pop()
            problem, fix = None, "compute the value inside the function instead"
            if isinstance(part, (ast.Constant, ast.Name, ast.Lambda)):
                continue
            elif isinstance(part, ast.Tuple):
                stack.extend(part.elts)
            elif isinstance(part, ast.Starred):
                stack.append(part.value)
            elif isinstance(part, ast.UnaryOp):
                stack.append(part.operand)
            elif isinstance(part, ast.BinOp):
                stack.extend([part.left, part.right])
            elif isinstance(part, ast.BoolOp):
                stack.extend(part.values)
            elif isinstance(part, ast.Compare):
                stack.extend([part.left, *part.comparators])
            elif isinstance(part, ast.IfExp):
                stack.extend([part.test, part.body, part.orelse])
            elif isinstance(part, ast.Subscript):
                stack.extend([part.value, part.slice])
            elif isinstance(part, ast.Slice):
                stack.extend(p for p in (part.lower, part.upper, part.step) if p is not None)
            elif isinstance(part, ast.JoinedStr):
                stack.extend(part.values)
            elif isinstance(part, ast.FormattedValue):
                stack.extend(p for p in (part.value, part.format_spec) if p is not None)
            elif isinstance(part, ast.Attribute):
                base, _links = _attribute_chain(part)
                if not (isinstance(base, ast.Name) and base.id in PREIMPORTED):
                    stack.append(part.value)  # `torch.finfo(torch.float32).eps`; module chains are constants
            elif isinstance(part, ast.Call):
                problem, fix = self.constant_call_problem(part)
                if problem is None:
                    stack.extend([*part.args, *(k.value for k in part.keywords)])
                    for argument in part.args:
                        if isinstance(argument, (ast.GeneratorExp, ast.ListComp, ast.SetComp)):
                            stack.remove(argument)  # an aggregate's comprehension (constant_call_problem)
                            stack.extend([argument.elt, *(c for g in argument.generators for c in g.ifs)])
                            iterables = [g.iter for g in argument.generators]
                            while iterables:  # enumerate/zip/reversed only wrap what they iterate over
                                iterable = iterables.pop()
                                if (
                                    isinstance(iterable, ast.Call)
                                    and isinstance(iterable.func, ast.Name)
                                    and iterable.func.id in _LOOP_HELPERS - {"range"}
                                    and iterable.func.id not in self.bound_anywhere
                                ):
                                    iterables.extend([*iterable.args, *(k.value for k in iterable.keywords)])
                                else:
                                    stack.append(iterable)
            elif isinstance(part, (ast.List, ast.ListComp)):
                problem = "a list, which is mutable"
                fix = "use a tuple, e.g. `(1.0, 0.5)` or `tuple(... for k in range(8))`"
            elif isinstance(part, (ast.Dict, ast.DictComp)):
                problem, fix = "a dict, which is mutable", "use a tuple or separate constants"
            elif isinstance(part, (ast.Set, ast.SetComp)):
                problem, fix = "a set, which is mutable", "use a tuple"
            elif isinstance(part, ast.GeneratorExp):
                problem, fix = "a generator, which keeps its position between uses", "use a tuple"
            else:
                problem = f"`{_snippet(part)}`, not a constant expression"
            if problem is not None:
                self.flag(part, "mutable_state", f"{what} is {problem}: {_CONSTANT_RULE}; {fix}")
                return

    def constant_call_problem(self, call: ast.Call) -> tuple[str | None, str]:
        """(None, "") when `call` computes an immutable constant from constants, else (what it is, the fix)."""
        function = call.func
        if isinstance(function, ast.Attribute):
            base, links = _attribute_chain(function)
            if isinstance(base, ast.Name) and base.id in PREIMPORTED:
                path = ".".join([base.id, *(link.attr for link in links)])
                if base.id == "math" or (
                    base.id == "torch" and len(links) == 1 and links[0].attr in _CONSTANT_TORCH_CALLS
                ):
                    return None, ""
                return (
                    f"a call of `{path}`, which makes a tensor (a tensor can be changed in place, e.g. by add_)",
                    "create tensors inside the function, e.g. `torch.tensor(0.5, dtype=x.dtype)`, or keep "
                    "plain numbers",
                )
        elif (
            isinstance(function, ast.Name)
            and function.id in _CONSTANT_BUILTINS
            and function.id not in self.bound_anywhere
        ):
            comprehensions = [a for a in call.args if isinstance(a, (ast.GeneratorExp, ast.ListComp, ast.SetComp))]
            if not comprehensions or (function.id in _CONSTANT_AGGREGATES and len(call.args) == 1):
                return None, ""
        return (
            f"a call of `{_snippet(function)}`, whose result may be mutable",
            f"only math functions, torch.finfo/torch.iinfo and the builtins "
            f"{', '.join(sorted(_CONSTANT_BUILTINS))} of constants may compute it; compute it inside the "
            "function instead",
        )

    def shows_no_values(self, node: ast.expr, scopes) -> bool:
        """Whether text made of `node` (an f-string field, a `%` operand) cannot hold tensor values:
        a constant, a global (globals are constants) or tensor metadata such as `x.shape[0]`."""
        if isinstance(node, ast.Constant):
            return True
        if isinstance(node, ast.Tuple):
            return all(self.shows_no_values(element, scopes) for element in node.elts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):  # x.size(-1)
            return self.shows_no_values(node.operand, scopes)
        if isinstance(node, ast.Name):
            return node.id in self.globals and not any(node.id in scope for scope in scopes)
        if isinstance(node, ast.Subscript):
            return self.shows_no_values(node.value, scopes) or (
                isinstance(node.value, ast.Attribute) and node.value.attr in _METADATA_ATTRIBUTES
            )
        if isinstance(node, ast.Attribute):
            return node.attr in _METADATA_ATTRIBUTES
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            return node.func.attr in _METADATA_METHODS and all(
                self.shows_no_values(argument, scopes) for argument in node.args
            )
        return False

    # -- loops --

    def check_bounded(self, iterable: ast.AST, where: ast.AST):
        """Flag `unbounded_loop` unless a loop over `iterable` provably ends within MAX_LOOP_ITERATIONS.

        Each loop is bounded on its own: nested loops multiply, and a bounded loop can call a function
        that loops; time limits on the worker, not this check, stop programs that are merely slow.
        """
        count = self.iteration_bound(iterable)
        if count is None:
            # Flagged at the end of the iterable, so that what is wrong inside it is reported first.
            self.flag(
                where,
                "unbounded_loop",
                f"cannot bound the loop over `{_snippet(iterable)}`: `for` loops and comprehensions must "
                "iterate over range(...) with integer-literal arguments, a literal list or tuple (or a "
                "top-level tuple constant assigned once), or "
                f"enumerate/zip/reversed of those (at most {MAX_LOOP_ITERATIONS} iterations)",
                line=getattr(iterable, "end_lineno", None),
                col=getattr(iterable, "end_col_offset", None),
            )
        elif count > MAX_LOOP_ITERATIONS:
            self.flag(
                where,
                "unbounded_loop",
                f"the loop over `{_snippet(iterable)}` runs {count} times, more than the "
                f"{MAX_LOOP_ITERATIONS} a loop may; use tensor operations",
            )

    def tuple_of_comprehension(self, node: ast.AST) -> bool:
        return (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "tuple"
            and "tuple" not in self.bound_anywhere
            and len(node.args) == 1
            and not node.keywords
            and isinstance(node.args[0], (ast.GeneratorExp, ast.ListComp))
        )

    def iteration_bound(self, node: ast.AST, depth: int = 0) -> int | None:
        if depth > 20:  # top-level tuples made of each other, or deeply nested helpers: give up
            return None
        if isinstance(node, ast.Name) and node.id in self.literal_tuples:
            node = self.literal_tuples[node.id]
            if self.tuple_of_comprehension(node):  # at most the product of its loops' lengths
                total = 1
                for generator in node.args[0].generators:
                    count = self.iteration_bound(generator.iter, depth + 1)
                    if count is None:
                        return None
                    total *= count
                return total
        if isinstance(node, (ast.List, ast.Tuple)):
            if any(isinstance(element, ast.Starred) for element in node.elts):
                return None
            return len(node.elts)
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            return None
        name = node.func.id
        if name not in _LOOP_HELPERS or name in self.bound_anywhere:
            return None
        if any(isinstance(arg, ast.Starred) for arg in node.args) or any(k.arg is None for k in node.keywords):
            return None
        if name == "range":
            values = [_int_literal(arg) for arg in node.args]
            if node.keywords or not 1 <= len(values) <= 3 or None in values or (len(values) == 3 and values[2] == 0):
                return None
            try:
                return len(range(*values))
            except OverflowError:  # more than sys.maxsize iterations
                return sys.maxsize
        if name == "reversed":
            return self.iteration_bound(node.args[0], depth + 1) if len(node.args) == 1 and not node.keywords else None
        if name == "enumerate":  # enumerate(iterable[, start])
            if not 1 <= len(node.args) <= 2 or any(k.arg != "start" for k in node.keywords):
                return None
            return self.iteration_bound(node.args[0], depth + 1)
        # zip: as long as its shortest argument; take the longest to stay safe.
        if not node.args or any(k.arg != "strict" for k in node.keywords):
            return None
        counts = [self.iteration_bound(arg, depth + 1) for arg in node.args]
        return None if None in counts else max(counts)
