"""What the policy does with statements: which ones a candidate may write (inside its functions) and
which it may not (imports, classes, `with`, async code, `yield`, `global`/`nonlocal`, `match`,
`while`), assignment targets that would change an attribute (in every statement that binds or
deletes), keyword arguments, `%` applied to numbers rather than text, and the line each refusal
is reported at.

Refusal messages are checked whole: users and the LLM that must fix its program read them, and the
line is how they find the problem. `tests/test_policy.py` checks the reason codes of most of these
rules at line 1 or 2; here each refusal sits on a later line, so that a refusal placed anywhere
but at its own statement shows.
"""

from __future__ import annotations

import pytest

from actmine.candidate.source import check_source
from case_ids import readable_id
from policy_cases import body, refusal


def after_entry(*lines: str) -> str:
    """A valid entry point on lines 1-2, then `lines` at the top level from line 3 on."""
    return "def activation_function(x):\n    return x\n" + "".join(f"{line}\n" for line in lines)


IMPORT = "import statements are not allowed (candidates get torch, F and math pre-imported)"
CLASS = (
    "class definitions are not allowed; write the module as a function: `def activation_function(x):` "
    "returning what forward(self, x) returns, with `self.<name>` attributes as top-level constants "
    "(no parameters, buffers or other state)"
)
WITH = "`with` statements are not allowed (context managers change global state, e.g. torch.no_grad)"
ASYNC = "async functions, `async for` and `await` are not allowed"
YIELD = "`yield` is not allowed (no generator functions)"
MATCH = "`match` statements are not allowed (class patterns read attributes by name)"
WHILE = "`while` loops are not allowed (they may never end); use `for i in range(N)` with an integer literal N <= 10000"

# --------------------------------------------------------------------------------------------
# Forbidden statements: the whole message, at the statement's own line
# --------------------------------------------------------------------------------------------

FORBIDDEN = [  # (program, reason code, line, the message after "line N: ")
    (body("y = x", "import os"), "import", 3, IMPORT),
    (body("y = x", "from math import pi"), "import", 3, IMPORT),
    (after_entry("import os"), "import", 3, IMPORT),
    (after_entry("from torch import nn as functional"), "import", 3, IMPORT),
    (after_entry("class Gate:", "    pass"), "forbidden_statement", 3, CLASS),
    (body("y = x", "class Gate:", "    pass"), "forbidden_statement", 3, CLASS),
    (body("y = x", "with x:", "    y = x"), "forbidden_statement", 3, WITH),
    (body("y = x", "async with x:", "    y = x"), "forbidden_statement", 3, WITH),
    (after_entry("with open('f') as handle:", "    pass"), "forbidden_statement", 3, WITH),
    (after_entry("async def helper(t):", "    return t"), "forbidden_statement", 3, ASYNC),
    (body("y = x", "async def helper(t):", "    return t"), "forbidden_statement", 3, ASYNC),
    (body("y = x", "y = await x"), "forbidden_statement", 3, ASYNC),
    (body("y = x", "async for v in x:", "    y = v"), "forbidden_statement", 3, ASYNC),
    (after_entry("async for v in (1, 2):", "    pass"), "forbidden_statement", 3, ASYNC),
    (body("def g():", "    y = 1", "    yield y"), "forbidden_statement", 4, YIELD),
    (body("def g():", "    y = 1", "    yield from (y,)"), "forbidden_statement", 4, YIELD),
    (body("y = x", "global G"), "forbidden_statement", 3, "`global` statements are not allowed"),
    (after_entry("global G"), "forbidden_statement", 3, "`global` statements are not allowed"),
    (
        body("y = 1", "def g():", "    nonlocal y", "    return 0"),
        "forbidden_statement",
        4,
        "`nonlocal` statements are not allowed",
    ),
    (body("y = x", "match y:", "    case 1:", "        pass"), "forbidden_statement", 3, MATCH),
    (after_entry("match 1:", "    case 1:", "        pass"), "forbidden_statement", 3, MATCH),
    (body("y = x", "while False:", "    pass"), "unbounded_loop", 3, WHILE),
    (after_entry("while False:", "    pass"), "unbounded_loop", 3, WHILE),
]


@pytest.mark.parametrize(
    "source, code, line, message", FORBIDDEN, ids=[readable_id(case[0][28:], 50) for case in FORBIDDEN]
)
def test_a_forbidden_statement_is_refused_with_its_own_message_at_its_line(source, code, line, message):
    """At the top level too the statement's own message is given (not the generic top-level one)."""
    error = refusal(source)
    assert (error.code, error.line, str(error)) == (code, line, f"line {line}: {message}")


@pytest.mark.parametrize("definition", ["class Gate:", "async def helper(t):"])
def test_a_refusal_in_the_decorator_of_a_forbidden_definition_comes_first(definition):
    """Decorators are written above the definition: what is wrong in them is reported first, so a refused
    class or async function is still walked."""
    error = refusal(after_entry("@eval", definition, "    pass"))
    assert (error.code, error.line) == ("forbidden_builtin", 3)
    assert str(error) == "line 3: `eval` is not available to candidates"


def test_the_statements_a_function_may_use_are_accepted():
    """Branches, bounded loops, exceptions, assertions, lambdas and every kind of assignment to names and items."""
    check_source(
        body(
            "y = x * 1.0",
            "y += 1.0",
            "z: torch.Tensor = y",
            "a, *rest = (1.0, 2.0, 3.0)",
            "y[y > 0] = 0.0",
            "del rest, z",
            "w = y.clone()",
            "del w[0]",
            "if y.dim() > 1:",
            "    y = y * 2.0",
            "elif y.dim() == 1:",
            "    pass",
            "else:",
            "    y = -y",
            "for i, v in enumerate((1.0, 2.0)):",
            "    if i == 1:",
            "        continue",
            "    y = y + v",
            "    if i > 5:",
            "        break",
            "else:",
            "    y = y * a",
            "try:",
            "    y = y / 2.0",
            "except (ValueError, RuntimeError) as error:",
            "    raise ValueError('bad input') from error",
            "else:",
            "    y = y + 0.0",
            "finally:",
            "    pass",
            "assert y.dim() >= 0, 'a tensor'",
            "square = lambda t: t * t",
            "x = square(y) if y.dim() else y",
        )
    )


# --------------------------------------------------------------------------------------------
# Assignment targets: an attribute anywhere in what a statement binds or deletes
# --------------------------------------------------------------------------------------------

INSTEAD = "is not allowed; compute a new value instead (subscript assignment such as `y[mask] = 0` is fine)"

ATTRIBUTE_TARGETS = [  # (the statement, written at line 3, and the verb and target the message names)
    ("x.scale = 2.0", "assigning to", "x.scale"),
    ("y, x.scale = (1.0, 2.0)", "assigning to", "x.scale"),
    ("y, *x.rest = (1.0, 2.0, 3.0)", "assigning to", "x.rest"),
    ("[y, (z, x.scale)] = (1.0, (2.0, 3.0))", "assigning to", "x.scale"),
    ("y = x.scale = 2.0", "assigning to", "x.scale"),
    ("x.scale += 2.0", "assigning to", "x.scale"),
    ("x.scale: float = 2.0", "assigning to", "x.scale"),
    ("del x.scale", "deleting", "x.scale"),
    ("del y, x.scale", "deleting", "x.scale"),
    ("for x.scale in (1.0, 2.0):\n        pass", "assigning to", "x.scale"),
    ("for i, x.scale in enumerate((1.0, 2.0)):\n        pass", "assigning to", "x.scale"),
]


@pytest.mark.parametrize(
    "statement, verb, target", ATTRIBUTE_TARGETS, ids=[readable_id(case[0]) for case in ATTRIBUTE_TARGETS]
)
def test_changing_an_attribute_is_refused_with_the_statement_s_verb(statement, verb, target):
    error = refusal(body("y = x", statement))
    assert (error.code, error.line) == ("attribute_assignment", 3)
    assert str(error) == f"line 3: {verb} an attribute (`{target}`) {INSTEAD}"


# --------------------------------------------------------------------------------------------
# Keyword arguments and `%` of numbers
# --------------------------------------------------------------------------------------------


def test_a_dunder_keyword_argument_is_refused_with_its_name():
    error = refusal(body("y = x", "y = F.relu(x,", "           __inplace=False)"))
    assert (error.code, str(error)) == (
        "dunder",
        "line 4: keyword argument `__inplace`: names starting with `__` are not allowed",
    )


@pytest.mark.parametrize(
    "call", ["F.relu(x, inplace=False)", "F.relu(x, _inplace=False)", "F.relu(x, **{'inplace': False})"]
)
def test_other_keyword_arguments_are_accepted(call):
    """Only names starting with `__` are refused; `**mapping` has no name to check."""
    check_source(body(f"y = {call}"))


@pytest.mark.parametrize(
    "expression",
    ["x % 2.0", "7.0 % x", "G % x", "x % G", "(x + 1.0) % 3", "x.shape[0] % 2", "-3 % x", "(2.0, 3.0)[0] % x"],
)
def test_the_remainder_of_numbers_and_tensors_is_no_text_formatting(expression):
    """`%` is formatting only when its left side is text; on numbers and tensors it is the remainder."""
    check_source("G = 2.0\n" + body(f"y = {expression}"))


@pytest.mark.parametrize("left", ["'%s'", "b'%s'", "f'{G}: %s'"])
def test_percent_formatting_of_a_tensor_from_any_text_is_refused(left):
    error = refusal("G = 2.0\n" + body(f"s = {left} % x"))
    assert (error.code, error.line) == ("python_escape", 3)


def test_a_field_in_a_format_spec_is_checked_like_any_field():
    """`f'{G:>{width}}'` interpolates `width` too: a global may size the field, a tensor value may not."""
    check_source("G = 2\n" + body("s = f'{G:>{G}}'"))
    error = refusal("G = 2\n" + body("y = x", "s = f'{G:>{y.sum()}}'"))
    assert (error.code, error.line) == ("python_escape", 4)
    assert str(error).startswith("line 4: the f-string interpolates `y.sum()`, which may hold tensor values")


def test_a_refused_percent_operand_over_several_lines_is_reported_at_its_end():
    """The whole operand is the problem: it is reported after what may be wrong inside it, at its last line."""
    error = refusal(body("y = x", "s = '%s %s' % (y,", "                x)"))
    assert (error.code, error.line) == ("python_escape", 4)
    assert str(error).startswith("line 4: `%`-formatting `(y, x)` turns values (tensors too) into text")


def test_a_refused_f_string_field_over_several_lines_is_reported_at_its_end():
    error = refusal(body("y = x", "s = f'''{y +", "x}'''"))
    assert (error.code, error.line) == ("python_escape", 4)
    assert str(error).startswith("line 4: the f-string interpolates `y + x`, which may hold tensor values")


def test_inside_a_refused_percent_operand_a_problem_is_reported_first():
    error = refusal(body("y = x", "s = '%s %s' % (y,", "                x.item())"))
    assert (error.code, error.line) == ("python_escape", 4)
    assert str(error).startswith("line 4: the attribute `.item` is not allowed")
