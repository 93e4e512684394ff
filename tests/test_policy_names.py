"""What the policy does with names: binding them (function names, parameters, exception variables,
assignment targets), reading them (undefined names and the builtins a refusal offers instead), chains
of attributes of the pre-imported `torch`, `F` and `math`, function definitions (defaults, return
annotations, nested defs), and where a refusal is placed when one line holds several problems.

Refusal messages are checked whole where the message is the product: users and the LLM that must
fix its program read them. `tests/test_policy.py` and `tests/test_policy_denylist.py` check the
reason codes of most of these rules; here are their exact texts, lines and boundaries.
"""

from __future__ import annotations

import pytest

from actmine.candidate import source as policy
from actmine.candidate.source import SAFE_BUILTINS, check_source
from case_ids import readable_id
from policy_cases import ENTRY, body, refusal


#: The reason given after a chain of torch, F or math that leaves the allow-list, per root.
ROOT_HINTS = {
    "torch": "torch offers only pure tensor math (allow-lists: actmine.candidate.source.TORCH_ALLOWED, and "
    "TORCH_NAMESPACES for torch.special, torch.nn.functional, torch.fft, torch.linalg; all derived from "
    "actmine.language.ops.OPS)",
    "F": "F offers only deterministic activations and normalisations (allow-list: "
    "actmine.candidate.source.F_ALLOWED, from actmine.language.ops.OPS)",
    "math": "math offers its pure functions and constants (actmine.candidate.source.MATH_ALLOWED, from "
    "actmine.language.ops.OPS)",
}

# --------------------------------------------------------------------------------------------
# Binding a name: a function name, a parameter, an exception variable
# --------------------------------------------------------------------------------------------

BINDINGS = [  # (program, code, the whole message)
    (
        "def __helper(t):\n    return t\n" + ENTRY,
        "dunder",
        "line 1: a function name `__helper`: names starting with `__` are not allowed",
    ),
    (
        body("def __inner(t):", "    return t"),
        "dunder",
        "line 2: a function name `__inner`: names starting with `__` are not allowed",
    ),
    (
        "def activation_function(x, __scale=1.0):\n    return x\n",
        "dunder",
        "line 1: the parameter `__scale`: names starting with `__` are not allowed",
    ),
    (
        body("try:", "    y = x", "except ValueError as __error:", "    y = x"),
        "dunder",
        "line 4: an exception variable `__error`: names starting with `__` are not allowed",
    ),
    (
        body("def F(t):", "    return t"),
        "module_alias",
        "line 2: a function name `F` rebinds the pre-imported `F`; choose another name",
    ),
    (
        body("try:", "    y = x", "except ValueError as math:", "    y = x"),
        "module_alias",
        "line 4: an exception variable `math` rebinds the pre-imported `math`; choose another name",
    ),
    (
        "C = 1.0\n\ndef eval(t):\n    return t\n" + ENTRY,
        "forbidden_builtin",
        "line 3: a function name `eval` at the top level shadows a forbidden builtin; choose another name",
    ),
]


@pytest.mark.parametrize("source, code, message", BINDINGS, ids=[readable_id(case[2], 60) for case in BINDINGS])
def test_a_refused_binding_says_what_binds_which_name_on_its_line(source, code, message):
    error = refusal(source)
    assert (error.code, str(error)) == (code, message)
    assert error.line == int(message.split(":")[0].removeprefix("line "))


@pytest.mark.parametrize("name", ["eval", "open", "input", "type"])
def test_a_nested_function_or_exception_variable_may_take_a_forbidden_builtin_s_name(name):
    """Inside a function such a name is the function's own local: Python never looks it up in builtins."""
    check_source(body(f"def {name}(t):", "    return t * 2.0", f"y = {name}(x)"))
    check_source(body("try:", "    y = x", f"except ValueError as {name}:", "    y = x"))
    check_source(
        body("def outer(t):", f"    def {name}(u):", "        return u", f"    return {name}(t)", "y = outer(x)")
    )


# --------------------------------------------------------------------------------------------
# Assigning to a name: the pre-imported modules and, at the top level, forbidden builtins
# --------------------------------------------------------------------------------------------

ASSIGNMENTS = [  # (program, code, the whole message)
    ("C = 1.0\ntorch = 2.0\n" + ENTRY, "module_alias", "line 2: rebinding the pre-imported `torch` is not allowed"),
    (body("y = x", "F = x"), "module_alias", "line 3: rebinding the pre-imported `F` is not allowed"),
    (
        body("for math in (1, 2):", "    y = x"),
        "module_alias",
        "line 2: rebinding the pre-imported `math` is not allowed",
    ),
    (
        "C = 1.0\nopen = 2.0\n" + ENTRY,
        "forbidden_builtin",
        "line 2: the top level may not bind `open`, the name of a forbidden builtin; choose another name",
    ),
    (
        "C = 1.0\n\nD, input = 1.0, 2.0\n" + ENTRY,
        "forbidden_builtin",
        "line 3: the top level may not bind `input`, the name of a forbidden builtin; choose another name",
    ),
]


@pytest.mark.parametrize("source, code, message", ASSIGNMENTS, ids=[readable_id(case[2], 60) for case in ASSIGNMENTS])
def test_a_refused_assignment_names_the_name_on_its_line(source, code, message):
    error = refusal(source)
    assert (error.code, str(error)) == (code, message)
    assert error.line == int(message.split(":")[0].removeprefix("line "))


# --------------------------------------------------------------------------------------------
# Reading an undefined name: the refusal lists what the program may use instead
# --------------------------------------------------------------------------------------------


def offered_builtins(message: str) -> list[str]:
    """The builtins an undefined-name refusal offers, in the order it lists them."""
    return message.split("and the builtins ", 1)[1].split(", ")


def test_a_program_without_top_level_names_is_offered_no_list_of_its_own():
    """`C: zzz` binds nothing (an annotation without a value), so the program has no names of its own."""
    message = str(refusal("C: zzz\n"))
    assert message.startswith(
        "line 1: the name `zzz` is not defined: a candidate may use the locals of its "
        "functions, its own top-level definitions, torch, F and math, and the builtins "
    )


def test_the_program_s_own_names_are_listed_in_order():
    message = str(refusal("B = 1.0\nA = 2.0\n" + body("y = zzz")))
    assert "its own top-level definitions (A, B, activation_function), torch, F and math, and the builtins " in message


def test_every_builtin_an_undefined_name_refusal_offers_is_usable_and_sorted():
    """The list is what a candidate may really write instead: each offered name passes the policy, none
    is missing, and none is Python's internal `__import__` (a dunder name is refused)."""
    offered = offered_builtins(str(refusal(body("y = zzz"))))
    assert offered == sorted(offered)
    assert "__import__" not in offered and all(not name.startswith("_") for name in offered)
    assert set(offered) == set(SAFE_BUILTINS) - {"__import__"}
    for name in offered:
        check_source(body(f"y = {name}"))


# --------------------------------------------------------------------------------------------
# Chains of attributes of torch, F and math
# --------------------------------------------------------------------------------------------

MODULE_CHAINS = [  # (the expression, code, the whole message after "line 2: ")
    ("torch.__dict__", "dunder", "`torch.__dict__`: attributes starting with `__` are not allowed"),
    ("torch.special.__doc__", "dunder", "`torch.special.__doc__`: attributes starting with `__` are not allowed"),
    ("F.relu.__globals__", "dunder", "`F.relu.__globals__`: attributes starting with `__` are not allowed"),
    (
        "torch.sin.foo",
        "torch_forbidden",
        "`torch.sin.foo`: attributes of the allow-listed `torch.sin` are not "
        f"allowed (use `torch.sin` itself, or methods of tensors); {ROOT_HINTS['torch']}",
    ),
    (
        "torch.special.erf.foo",
        "torch_forbidden",
        "`torch.special.erf.foo`: attributes of the allow-listed `torch.special.erf` are not allowed (use "
        f"`torch.special.erf` itself, or methods of tensors); {ROOT_HINTS['torch']}",
    ),
    (
        "F.relu.x",
        "torch_forbidden",
        "`F.relu.x`: attributes of the allow-listed `F.relu` are not allowed (use "
        f"`F.relu` itself, or methods of tensors); {ROOT_HINTS['F']}",
    ),
    (
        "math.pi.real",
        "torch_forbidden",
        "`math.pi.real`: attributes of the allow-listed `math.pi` are not allowed "
        f"(use `math.pi` itself, or methods of tensors); {ROOT_HINTS['math']}",
    ),
    ("torch.special.foo", "torch_forbidden", f"`torch.special.foo` is not allowed: {ROOT_HINTS['torch']}"),
    ("math.foo", "torch_forbidden", f"`math.foo` is not allowed: {ROOT_HINTS['math']}"),
]


@pytest.mark.parametrize("expression, code, message", MODULE_CHAINS, ids=[case[0] for case in MODULE_CHAINS])
def test_a_refused_module_chain_names_the_whole_path(expression, code, message):
    error = refusal(body("y = x", f"z = {expression}"))
    assert (error.code, error.line) == (code, 3)
    assert str(error) == f"line 3: {message}"


@pytest.mark.parametrize("namespace", ["torch.special", "torch.fft", "torch.linalg", "torch.nn.functional"])
def test_a_namespace_used_as_a_value_is_refused_with_its_first_function_as_the_example(namespace):
    """The example is the alphabetically first function of the namespace (stable from run to run),
    and it is one the candidate may really use."""
    leaves = policy.TORCH_NAMESPACES
    for part in namespace.split(".")[1:]:
        leaves = leaves[part]
    example = f"{namespace}.{sorted(leaves)[0]}"
    check_source(body(f"y = {example}"))
    error = refusal(body("y = x", f"z = max({namespace}, x)"))
    assert (error.code, error.line) == ("module_alias", 3)
    assert str(error) == (
        f"line 3: `{namespace}` is a namespace: use its allow-listed functions directly, e.g. "
        f"`{example}`; it cannot be aliased, passed, stored or returned"
    )


# --------------------------------------------------------------------------------------------
# Function definitions: defaults, return annotations
# --------------------------------------------------------------------------------------------

DEFAULTS = [  # (program, the parameter, what its default is said to be)
    ("def activation_function(x, k=[1.0]):\n    return x\n", "k", "a list, which is mutable"),
    ("def activation_function(x, *, table={}):\n    return x\n", "table", "a dict, which is mutable"),
    ("def activation_function(x, a=1.0, *, b=2.0, c={1}):\n    return x\n", "c", "a set, which is mutable"),
    (body("g = lambda t, s=[2.0]: t"), "s", "a list, which is mutable"),
]


@pytest.mark.parametrize("source, parameter, problem", DEFAULTS, ids=[readable_id(case[0], 60) for case in DEFAULTS])
def test_a_mutable_default_is_refused_naming_its_parameter(source, parameter, problem):
    error = refusal(source)
    assert error.code == "mutable_state"
    assert str(error).startswith(f"line {error.line}: the default value of `{parameter}` is {problem}: ")


RETURN_ANNOTATIONS = [  # (the return annotation, the code its refusal has)
    ("zzz", "undefined_name"),
    ("__T", "dunder"),
    ("open", "forbidden_builtin"),
    ("torch.nn", "module_alias"),
    ("torch.nope", "torch_forbidden"),
    ("x.grad", "undefined_name"),  # `x` is the parameter, which does not exist where the annotation runs
]


@pytest.mark.parametrize("annotation, code", RETURN_ANNOTATIONS, ids=[case[0] for case in RETURN_ANNOTATIONS])
def test_a_return_annotation_is_checked_like_any_expression(annotation, code):
    """The return annotation runs when the function is defined, outside it."""
    error = refusal(f"C = 1.0\ndef activation_function(x) -> {annotation}:\n    return x\n")
    assert (error.code, error.line) == (code, 2)
    check_source("C = 1.0\ndef activation_function(x) -> torch.Tensor:\n    return x\n")


def test_a_decorator_of_a_nested_function_is_refused_on_its_line():
    error = refusal(body("y = x", "@zzz", "def g(t):", "    return t"))
    assert (error.code, str(error)) == ("forbidden_statement", "line 3: decorators are not allowed (`@zzz`)")


# --------------------------------------------------------------------------------------------
# Several problems on one line: the one written first is reported, whichever rule found it first
# --------------------------------------------------------------------------------------------

FIRST_WRITTEN = [  # (program, the code and line of the problem written first)
    ("C = (__x, [1])\n" + ENTRY, "dunder", 1),  # the value is checked before its names are walked
    ("C = ([1], __x)\n" + ENTRY, "mutable_state", 1),
    ("C = (zzz, {})\n" + ENTRY, "undefined_name", 1),
    (body("__a, x.b = 1, 2"), "dunder", 2),  # targets are checked before their names are walked
    (body("x.b, __a = 1, 2"), "attribute_assignment", 2),
]


@pytest.mark.parametrize("source, code, line", FIRST_WRITTEN, ids=[readable_id(case[0], 60) for case in FIRST_WRITTEN])
def test_of_two_problems_on_a_line_the_one_written_first_is_reported(source, code, line):
    error = refusal(source)
    assert (error.code, error.line) == (code, line)
