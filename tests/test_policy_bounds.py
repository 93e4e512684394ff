"""Loop bounds, load-time constants and the numbers-only `math`, at their edges and in their messages.

`tests/test_policy.py` checks which loops and constants the policy accepts; this file checks how the
bounds count (signed literals, products of a top-level tuple's loops, the depth at which the policy
gives up), which calls may compute a top-level constant, that each refusal names its line and says
exactly what was found and how to fix it (the message is what the user and the LLM see), and that
the runtime `math` passes every argument through while refusing tensors of any shape.
"""

from __future__ import annotations

import math

import pytest
import torch

from actmine.candidate.source import candidate_namespace, check_source, compile_candidate
from policy_cases import ENTRY, refusal, returns


def loop_over(iterable: str, prefix: str = "") -> str:
    """A candidate with top-level lines `prefix` and a `for` loop over `iterable` in its function."""
    return f"{prefix}def activation_function(x):\n    for v in {iterable}:\n        x = x + 1\n    return x\n"


#: What the policy requires of every top-level value and default argument (the start of the fix).
CONSTANT_RULE = (
    "top-level values and default arguments must be immutable constants -- numbers, strings, booleans, "
    "None, tuples of those, arithmetic on them, math functions and constants, torch constants and dtypes "
    "(torch.pi, torch.float32), torch.finfo(...).eps -- so that nothing can keep state from one call to "
    "the next"
)
#: The builtins that may compute a top-level constant, as the message lists them (sorted).
CONSTANT_BUILTINS = (
    "abs, all, any, bool, complex, divmod, float, int, isinstance, len, max, min, pow, range, round, slice, sum, tuple"
)


# --------------------------------------------------------------------------------------------
# How many times a loop runs
# --------------------------------------------------------------------------------------------

PRODUCT_TUPLE = "T = tuple(i * j for i in range(100) for j in range(101))\n"  # 100 * 101 = 10100 elements


@pytest.mark.parametrize(
    "prefix, iterable, count",
    [
        ("", "range(-6000, +6000)", 12000),  # signs of literals count: -6000 .. 5999
        ("", "range(+10001)", 10001),
        ("", "range(-1, -20002, -2)", 10001),
        ("", "reversed(range(10, -10001, -1))", 10011),
        ("", "enumerate(range(20000), start=5)", 20000),
        ("", "zip(range(3), range(10001))", 10001),  # zip counts its longest argument, to stay safe
        (PRODUCT_TUPLE, "T", 10100),  # a tuple of a comprehension: the product of its loops
        (PRODUCT_TUPLE, "enumerate(T)", 10100),
    ],
    ids=[
        "signed-range",
        "plus-sign",
        "negative-step",
        "reversed",
        "enumerate",
        "zip",
        "tuple-product",
        "enumerate-tuple",
    ],
)
def test_a_loop_over_too_many_iterations_says_how_many(prefix, iterable, count):
    """The refusal names the loop's iterable and its exact iteration count, on the loop's line."""
    error = refusal(loop_over(iterable, prefix))
    line = prefix.count("\n") + 2
    assert (error.code, error.line) == ("unbounded_loop", line)
    assert str(error) == (
        f"line {line}: the loop over `{iterable}` runs {count} times, more than the 10000 a loop "
        "may; use tensor operations"
    )


@pytest.mark.parametrize(
    "prefix, iterable",
    [
        ("", "range(-5000, +5000)"),
        ("", "range(+10000)"),
        ("", "range(-10000, 0)"),
        ("T = tuple(i for i in range(100) for j in range(100))\n", "T"),  # exactly 10000
        ("T = tuple(i for i in (1.0, 2.0) for j in range(5000))\n", "zip(T, range(10000))"),
    ],
    ids=["signed-range", "plus-sign", "negative-start", "tuple-product", "zip-tuple"],
)
def test_loops_of_exactly_the_limit_pass(prefix, iterable):
    check_source(loop_over(iterable, prefix))


def test_a_loop_over_a_top_level_tuple_runs_as_often_as_the_tuple_is_long():
    """The bound of a tuple of a comprehension is the product of its loops, the real length."""
    program = (
        "T = tuple(0.5 * i + j for i in range(3) for j in range(4))\n"
        "def activation_function(x):\n    n = 0\n    for v in T:\n        n = n + 1\n    return x * n\n"
    )
    assert compile_candidate(program)(torch.ones(1)).item() == 12.0


# --------------------------------------------------------------------------------------------
# Iterables the policy cannot bound
# --------------------------------------------------------------------------------------------

CANNOT_BOUND = (
    "`for` loops and comprehensions must iterate over range(...) with integer-literal arguments, a literal "
    "list or tuple (or a top-level tuple constant assigned once), or enumerate/zip/reversed of those "
    "(at most 10000 iterations)"
)


@pytest.mark.parametrize(
    "iterable",
    [
        "range()",
        "range(3, foo=1)",  # keywords: not the builtin's spelling
        "range(0, 5, 1, 1)",  # four arguments
        "range(-x)",
        "range(+3.0)",
        "range(-True)",
        "zip(*(range(3),))",
        "enumerate(range(3), **{})",
        "reversed(*(range(3),))",
        "zip(range(3), **{'strict': True})",
    ],
)
def test_iterables_that_cannot_be_bounded_are_refused_with_the_rule(iterable):
    error = refusal(loop_over(iterable))
    assert (error.code, error.line) == ("unbounded_loop", 2)
    assert str(error) == f"line 2: cannot bound the loop over `{iterable}`: {CANNOT_BOUND}"


def test_a_comprehension_that_cannot_be_bounded_is_refused_with_the_rule():
    error = refusal(returns("[v for v in x]"))
    assert str(error) == f"line 2: cannot bound the loop over `x`: {CANNOT_BOUND}"


# --------------------------------------------------------------------------------------------
# The depth at which the policy gives up (helpers nested in helpers, tuples made of tuples)
# --------------------------------------------------------------------------------------------


def nested(helper: str, levels: int) -> str:
    """`levels` calls of the loop helper `helper` around `range(3)`."""
    return f"{helper}(" * levels + "range(3)" + ")" * levels


def tuple_chain(links: int) -> str:
    """Top-level tuples T0 .. T<links>, each a comprehension over the one before: a loop over the last one
    reaches the literal T0 through `links` tuples."""
    return "T0 = (1.0, 2.0)\n" + "".join(f"T{k} = tuple(v for v in T{k - 1})\n" for k in range(1, links + 1))


@pytest.mark.parametrize("helper", ["reversed", "enumerate", "zip"])
def test_each_nested_helper_counts_one_level(helper):
    """20 nested helpers are bounded; a 21st makes the policy give up (`unbounded_loop`)."""
    check_source(loop_over(nested(helper, 20)))
    error = refusal(loop_over(nested(helper, 21)))
    assert (error.code, error.line) == ("unbounded_loop", 2)


def test_each_top_level_tuple_made_of_another_counts_one_level():
    check_source(loop_over("T20", tuple_chain(20)))
    error = refusal(loop_over("T21", tuple_chain(21)))  # T0 .. T21 on lines 1-22, the loop on line 24
    assert (error.code, error.line) == ("unbounded_loop", 24)


def test_helpers_inside_a_top_level_tuple_count_from_the_tuple_s_level():
    """`for v in T` with T = tuple(v for v in <k helpers>(range(3))): the tuple is one level, its helpers k more."""
    check_source(loop_over("T", f"T = tuple(v for v in {nested('reversed', 19)})\n"))
    error = refusal(loop_over("T", f"T = tuple(v for v in {nested('reversed', 20)})\n"))
    assert (error.code, error.line) == ("unbounded_loop", 3)


# --------------------------------------------------------------------------------------------
# Comprehensions: scopes of their iterables, targets, async
# --------------------------------------------------------------------------------------------


def test_later_iterables_of_a_comprehension_see_its_earlier_variables():
    """The first iterable runs in the enclosing scope, the later ones inside the comprehension."""
    function = compile_candidate(returns("sum(j for i in (x, 2 * x) for j in (i, i))"))
    assert function(torch.ones(1)).item() == 6.0
    check_source(returns("[k for i in (x,) for j in (i,) for k in (j, i)]"))
    error = refusal(returns("[i for i in (i,)]"))
    assert (error.code, error.line) == ("undefined_name", 2)
    assert str(error).startswith("line 2: the name `i` is not defined")


def test_a_comprehension_may_not_assign_to_an_attribute():
    error = refusal(returns("[0 for x.y in (1, 2)]"))
    assert (error.code, error.line) == ("attribute_assignment", 2)
    assert str(error) == (
        "line 2: assigning to an attribute (`x.y`) is not allowed; compute a new value instead "
        "(subscript assignment such as `y[mask] = 0` is fine)"
    )


def test_async_comprehensions_are_a_forbidden_statement():
    error = refusal(returns("[v async for v in (1, 2)]"))
    assert (error.code, error.line, str(error)) == ("forbidden_statement", 2, "line 2: `async for` is not allowed")
    error = refusal(returns("[w for v in (1, 2)\n            for w in (v,)\n            async for u in (w,)]"))
    assert (error.code, error.line) == ("forbidden_statement", 4)


# --------------------------------------------------------------------------------------------
# Which calls may compute a top-level constant
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "sum(v for v in range(3))",
        "max([v * 0.5 for v in range(3)])",
        "tuple(v for v in (1.0, 2.0) if v > 1)",
        "any(v > 1 for v in range(3))",
        "min(3, 4)",
        "math.fsum((0.5, 0.25))",
        "torch.finfo(torch.float32).eps",
    ],
    ids=["sum-gen", "max-list", "tuple-gen", "any-gen", "min-args", "math-call", "finfo"],
)
def test_constant_calls_pass(value):
    check_source(f"C = {value}\n{ENTRY}")


@pytest.mark.parametrize(
    "value, function",
    [
        ("len([v for v in range(3)])", "len"),  # a comprehension, not to an aggregate
        ("float(v for v in range(3))", "float"),
        ("sum((v for v in range(3)), 1)", "sum"),  # an aggregate's comprehension must be its only argument
        ("max(0, max(v for v in range(3)), (v for v in range(3)))", "max"),
    ],
    ids=["len-comprehension", "float-generator", "sum-with-start", "max-two-args"],
)
def test_builtin_calls_that_may_not_compute_a_constant(value, function):
    error = refusal(f"C = {value}\n{ENTRY}")
    assert (error.code, error.line) == ("mutable_state", 1)
    assert str(error) == (
        f"line 1: the top-level value of `C` is a call of `{function}`, whose result may be "
        f"mutable: {CONSTANT_RULE}; only math functions, torch.finfo/torch.iinfo and the builtins "
        f"{CONSTANT_BUILTINS} of constants may compute it; compute it inside the function instead"
    )


@pytest.mark.parametrize(
    "source, what, call",
    [
        (f"C = torch.zeros(3)\n{ENTRY}", "the top-level value of `C`", "torch.zeros"),
        (
            "def activation_function(x, k=torch.special.erf(x)):\n    return x\n",
            "the default value of `k`",
            "torch.special.erf",
        ),
        (f"C = F.relu(1.0)\n{ENTRY}", "the top-level value of `C`", "F.relu"),
    ],
    ids=["torch", "default", "F"],
)
def test_a_tensor_making_call_is_no_constant(source, what, call):
    error = refusal(source)
    assert (error.code, error.line) == ("mutable_state", 1)
    assert str(error) == (
        f"line 1: {what} is a call of `{call}`, which makes a tensor (a tensor can be changed in "
        f"place, e.g. by add_): {CONSTANT_RULE}; create tensors inside the function, e.g. "
        "`torch.tensor(0.5, dtype=x.dtype)`, or keep plain numbers"
    )


# --------------------------------------------------------------------------------------------
# Where a problem with a whole expression is reported
# --------------------------------------------------------------------------------------------


def test_a_formatting_problem_is_reported_at_the_end_of_its_operand():
    error = refusal(returns("'%s %s' % (x,\n        1)"))
    assert (error.code, error.line) == ("python_escape", 3)
    error = refusal(returns("'%s' % (x, open)"))  # inside it first: `open`, then the whole operand
    assert (error.code, error.line) == ("forbidden_builtin", 2)


# --------------------------------------------------------------------------------------------
# The runtime math: every argument passed through, tensors of any shape refused
# --------------------------------------------------------------------------------------------


@pytest.fixture()
def namespace_math():
    return candidate_namespace()["math"]


def test_namespace_math_passes_keyword_arguments(namespace_math):
    assert namespace_math.prod((2, 3), start=2) == 12
    assert namespace_math.isclose(1.0, 1.1, rel_tol=0.2) and not namespace_math.isclose(1.0, 1.1)
    assert namespace_math.log(8, 2) == math.log(8, 2)
    program = "C = math.prod((2, 3), start=5)\ndef activation_function(x):\n    return x * C\n"
    assert compile_candidate(program)(torch.ones(1)).item() == 30.0


def test_namespace_math_reads_an_iterator_argument_once(namespace_math):
    assert namespace_math.fsum(v for v in (0.1,) * 10) == 1.0
    assert namespace_math.dist(iter((0.0, 3.0)), (4.0, 0.0)) == 5.0
    assert namespace_math.prod(range(1, 5), start=2) == 48


@pytest.mark.parametrize(
    "name, call",
    [
        ("sin", lambda m: m.sin(torch.tensor(0.5))),
        ("prod", lambda m: m.prod(torch.tensor(2.0))),  # a 0-d tensor is no iterable either
        ("fsum", lambda m: m.fsum(torch.tensor(2.0))),
        ("dist", lambda m: m.dist((1.0,), torch.tensor(2.0))),
        ("prod", lambda m: m.prod((2.0,), start=torch.tensor(2.0))),
    ],
    ids=["sin", "prod-0d", "fsum-0d", "dist-0d", "prod-start"],
)
def test_namespace_math_refuses_tensors_with_the_fix(namespace_math, name, call):
    with pytest.raises(TypeError) as info:
        call(namespace_math)
    assert str(info.value) == (
        f"math.{name} takes Python numbers, not tensors: use torch.{name} or a tensor method, "
        "whose work is counted and differentiable"
    )
