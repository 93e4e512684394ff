"""What the policy does with attribute access: the full reason a denied attribute is refused with,
which of several problems on one line is reported (the one whose name is written first), what text
may show (tensor metadata such as `.shape`, `.dtype`, `x.size(0)`: no element values), the torch
sub-namespaces a candidate may reach, and the runtime import guard's message.

`tests/test_policy_denylist.py` checks each deny-list entry's code and the start of its reason;
here the whole message is checked, because it is the product: users and the LLM that must fix its
program read it.
"""

from __future__ import annotations

import pytest

from actmine.candidate import source as policy
from actmine.candidate.source import candidate_namespace, check_source
from policy_cases import body, refusal


DENY_LIST = "(deny-list: actmine.candidate.source.DANGEROUS_ATTRIBUTES)"

# --------------------------------------------------------------------------------------------
# Denied attributes: the whole message, one case per kind of reason
# --------------------------------------------------------------------------------------------

FULL_REASONS = [  # (attribute, code, the whole reason the message gives)
    (
        "normal_",
        "randomness",
        "it draws random numbers: the RNG is shared state and training would differ from "
        "the probes; write a deterministic function",
    ),
    (
        "bernoulli",
        "randomness",
        "it draws random numbers: the RNG is shared state and training would differ from "
        "the probes; write a deterministic function",
    ),
    (
        "item",
        "python_escape",
        "it turns tensor values into Python values, where work is invisible to the op "
        "counter and to autograd; keep the computation in tensor operations",
    ),
    (
        "tolist",
        "python_escape",
        "it turns tensor values into Python values, where work is invisible to the op "
        "counter and to autograd; keep the computation in tensor operations",
    ),
    ("format", "dangerous_attribute", "str.format reads attributes named in its format string"),
    ("new_empty", "dangerous_attribute", "it returns uninitialised memory; use new_zeros or torch.zeros_like"),
    ("f_back", "dangerous_attribute", "it reaches frames, code objects, globals or classes"),
    ("mro", "dangerous_attribute", "it reaches frames, code objects, globals or classes"),
    ("grad", "dangerous_attribute", "it changes autograd, memory or device state, or exposes raw memory"),
]


@pytest.mark.parametrize("attribute, code, reason", FULL_REASONS, ids=[case[0] for case in FULL_REASONS])
def test_a_denied_attribute_s_message_is_exactly_its_reason(attribute, code, reason):
    error = refusal(body(f"y = x.{attribute}"))
    assert (error.code, error.line) == (code, 2)
    assert str(error) == f"line 2: the attribute `.{attribute}` is not allowed: {reason} {DENY_LIST}"


def test_private_and_dunder_attribute_messages_are_exact():
    assert str(refusal(body("y = x._version"))) == "line 2: the private attribute `._version` is not allowed"
    assert str(refusal(body("y = x.__dict__"))) == (
        "line 2: the attribute `.__dict__` is not allowed (attributes starting with `__` reach Python's internals)"
    )


# --------------------------------------------------------------------------------------------
# Several problems on one line: the one written first is reported (an attribute is where its name is)
# --------------------------------------------------------------------------------------------

FIRST_WRITTEN = [  # (a body line with two problems, the code of the one whose text comes first)
    ("y = x[x.item()].grad", "python_escape"),  # `.item` is written before `.grad`
    ("y = x.grad[x.item()]", "dangerous_attribute"),  # `.grad` is written before `.item`
    ("y = x[x.numpy()]._base", "python_escape"),
    ("y = x._base[x.numpy()]", "dangerous_attribute"),
    ("y = x[x.tolist()].__class__", "python_escape"),
    ("y = x.__class__[x.tolist()]", "dunder"),
    ("y = torch.tanh(x.item()).normal_()", "python_escape"),
    ("y = x.normal_(x.item())", "randomness"),
    ("y = x[zzz].grad", "undefined_name"),  # a name inside the chain, before `.grad`
    ("y = (x + zzz).data", "undefined_name"),
    ("y = (x.f_back, zzz)", "dangerous_attribute"),
]


@pytest.mark.parametrize("line, code", FIRST_WRITTEN, ids=[case[0] for case in FIRST_WRITTEN])
def test_of_two_problems_on_a_line_the_first_written_is_reported(line, code):
    """A denied attribute is placed at its name, not at the start of the expression it is read from:
    in `x[x.item()].grad` the `.item` inside the brackets comes first."""
    error = refusal(body(line))
    assert (error.code, error.line) == (code, 2)


def test_a_denied_attribute_after_a_multi_line_expression_is_placed_at_its_name():
    """`.grad` on line 3 is reported although the expression it is read from starts on line 2."""
    error = refusal(body("y = (x[0]", "     ).grad + x[x.item()]"))
    assert (error.code, error.line) == ("dangerous_attribute", 3)
    error = refusal(body("y = (x[", "     x.item()]).grad"))
    assert (error.code, error.line) == ("python_escape", 3)


def test_a_denied_attribute_at_the_start_of_a_continued_line_comes_before_what_follows_it():
    """After a line continuation the name `_` is at column 0 of line 3; the unbounded loop over `x._` is
    reported where that iterable ends, just after the name: the attribute comes first."""
    error = refusal("def activation_function(x):\n    for v in x.\\\n_:\n        pass\n    return x\n")
    assert (error.code, error.line) == ("dangerous_attribute", 3)
    assert str(error) == "line 3: the private attribute `._` is not allowed"


# --------------------------------------------------------------------------------------------
# Text may show constants, globals and tensor metadata -- never values a tensor holds
# --------------------------------------------------------------------------------------------

SHOWS_NO_VALUES = [  # f-string fields and `%` operands that hold no tensor values
    'f"{3}"',
    "f\"{'gelu'}\"",
    "'%d items' % (2,)",
    "'%s' % 'a'",
    'f"{x.shape}"',
    'f"{x.dtype}"',
    'f"{x.device}"',
    'f"{x.ndim}"',
    'f"{x.requires_grad}"',
    'f"{x.shape[0]}"',
    'f"{x.shape[1:]}"',
    'f"{x.abs().shape[-1]}"',
    'f"{x.dim()}"',
    'f"{x.numel()}"',
    'f"{x.size()}"',
    'f"{x.size(0)}"',
    'f"{x.size(dim=0)}"',
    'f"{x.size()[0]}"',
    'f"{x.size(AXIS)}"',
    "'%s %s' % (x.size(AXIS), x.dtype)",
    'f"{SIZES}"',
    'f"{SIZES[0]}"',
    'f"{SIZES[AXIS]}"',
    "'%s' % (SIZES[0],)",
    'f"{(AXIS, x.shape)}"',
    'f"{x.size(-1)}"',
    'f"{-x.shape[0]}"',
    'f"{+AXIS}"',
    "'%d' % -x.dim()",  # a sign shows what its operand shows
]
GLOBALS = "AXIS = 0\nSIZES = (2, 3)\n"


@pytest.mark.parametrize("text", SHOWS_NO_VALUES)
def test_text_of_constants_globals_and_metadata_is_allowed(text):
    check_source(GLOBALS + body(f"s = {text}"))


SHOWS_VALUES = [  # (the text, the expression the message names)
    ('f"{x[0]}"', "x[0]"),  # an element of a tensor
    ('f"{x.T[0]}"', "x.T[0]"),  # a subscript of a non-metadata attribute
    ('f"{x.mT}"', "x.mT"),
    ('f"{x * 2}"', "x * 2"),  # arithmetic on a tensor
    ('f"{-x}"', "-x"),
    ('f"{-x[0]}"', "-x[0]"),  # a sign of a value is a value
    ('f"{x.size(-d)}"', "x.size(-d)"),
    ('f"{~x.shape[0]}"', "~x.shape[0]"),  # only + and - pass through
    ('f"{AXIS + x.sum()}"', "AXIS + x.sum()"),
    ('f"{float(x)}"', "float(x)"),  # a call of a builtin
    ('f"{x.size(d)}"', "x.size(d)"),  # a metadata method of a local's value: d may be a tensor
    ('f"{x.size(x.argmax())}"', "x.size(x.argmax())"),
    ('f"{x.abs()}"', "x.abs()"),
    ('f"{(AXIS, x)}"', "(AXIS, x)"),
    ('f"{SIZES if x.any() else AXIS}"', "SIZES if x.any() else AXIS"),
    ('f"{abs}"', "abs"),  # a builtin is neither a constant nor a global of the program
    ('f"{d}"', "d"),  # a local
    ('f"{AXIS}"', "AXIS"),  # the local AXIS (d = AXIS = x below), not the global
    ('f"{SIZES[0]}"', "SIZES[0]"),  # the local SIZES, which shadows the global tuple
]


@pytest.mark.parametrize("text, shown", SHOWS_VALUES, ids=[case[0] for case in SHOWS_VALUES])
def test_text_that_may_show_tensor_values_is_a_python_escape(text, shown):
    source = GLOBALS + body("d = AXIS = SIZES = x", f"s = {text}")
    error = refusal(source)
    assert (error.code, error.line) == ("python_escape", 5)
    assert str(error) == (
        f"line 5: the f-string interpolates `{shown}`, which may hold tensor values: text turns "
        "values into Python data the op counter cannot see; interpolate only constants and "
        "metadata such as x.shape, x.dtype or x.dim()"
    )


@pytest.mark.parametrize("operand", ["x[0]", "(x * 2)", "(x.shape, x + 1)", "x.T[0]", "SIZES[0]", "abs"])
def test_percent_formatting_of_what_may_hold_values_is_a_python_escape(operand):
    error = refusal(GLOBALS + body("SIZES = x", f"s = '%s' % {operand}"))
    assert (error.code, error.line) == ("python_escape", 5)
    shown = operand[1:-1] if operand == "(x * 2)" else operand
    assert str(error) == (
        f"line 5: `%`-formatting `{shown}` turns values (tensors too) into text the op counter "
        "cannot see; format only constants and metadata such as x.shape"
    )


def test_a_local_that_shadows_a_global_is_not_the_global():
    """Inside the function `G` is its local (bound to x), so showing it may show tensor values."""
    check_source("G = 2\ndef activation_function(x):\n    s = f'{G}'\n    return x\n")
    error = refusal("G = 2\ndef activation_function(x):\n    G = x\n    s = f'{G}'\n    return x\n")
    assert (error.code, error.line) == ("python_escape", 4)
    error = refusal("G = 2\ndef activation_function(x):\n    return [f'{G}' for G in (x, x)]\n")
    assert (error.code, error.line) == ("python_escape", 3)


def test_top_level_text_may_show_any_constant():
    """At module scope every expression is a constant (no tensor exists there): text may show it."""
    check_source("A = 2\nNAME = f'gelu-{A * 2}-{-A}-{abs(A)}'\nLABEL = '%s' % (A + 1,)\n" + body())


# --------------------------------------------------------------------------------------------
# The torch sub-namespaces (`_namespaces`, TORCH_NAMESPACES) and what the policy does with them
# --------------------------------------------------------------------------------------------


def test_namespaces_of_a_tree_are_its_inner_nodes():
    """A tree maps a name to None (a leaf: a function or constant) or to a sub-tree (a namespace).
    `_namespaces` keeps the namespaces only: one holding leaves only becomes the frozenset of its
    names, a deeper one a dict of its own namespaces; leaves at the top are dropped."""
    tree = {
        "sin": None,  # a leaf before a namespace
        "special": {"erf": None, "expit": None},
        "cos": None,
        "nn": {"functional": {"relu": None, "gelu": None}},
        "fft": {"rfft": None},
        "pi": None,
    }
    assert policy._namespaces(tree) == {
        "special": frozenset({"erf", "expit"}),
        "nn": {"functional": frozenset({"relu", "gelu"})},
        "fft": frozenset({"rfft"}),
    }
    assert policy._namespaces({"sin": None, "pi": None}) == {}
    assert policy._namespaces({}) == {}
    assert policy._namespaces({"a": {"b": {"c": {"d": None}}}}) == {"a": {"b": {"c": frozenset({"d"})}}}


def test_torch_namespaces_are_the_sub_namespaces_of_torch_s_allow_list():
    namespaces = policy._namespaces(policy._ROOT_TREES["torch"])
    assert namespaces == policy.TORCH_NAMESPACES
    assert set(namespaces) == {"special", "nn", "fft", "linalg"}
    assert namespaces["special"] == policy.TORCH_SPECIAL_ALLOWED
    assert namespaces["nn"] == {"functional": policy.F_ALLOWED}
    assert not set(namespaces) & policy.TORCH_ALLOWED  # a namespace is not a leaf
    assert policy._namespaces(policy._ROOT_TREES["F"]) == {} and policy._namespaces(policy._ROOT_TREES["math"]) == {}


@pytest.mark.parametrize(
    "path, leaf",
    [("torch.special", "erf"), ("torch.nn.functional", "relu"), ("torch.fft", "rfft"), ("torch.linalg", "vector_norm")],
)
def test_a_namespace_s_functions_are_allowed_and_the_namespace_is_no_value(path, leaf):
    namespace = policy.TORCH_NAMESPACES
    for part in path.split(".")[1:]:
        namespace = namespace[part]
    assert leaf in namespace
    check_source(body(f"y = {path}.{leaf}"))
    error = refusal(body(f"s = {path}"))
    assert (error.code, error.line) == ("module_alias", 2)
    assert f"`{path}` is a namespace: use its allow-listed functions directly, e.g. `{path}." in str(error)
    error = refusal(body(f"y = {path}.no_such_function(x)"))
    assert (error.code, error.line) == ("torch_forbidden", 2)
    assert str(error).startswith(
        f"line 2: `{path}.no_such_function` is not allowed: torch offers only pure tensor math"
    )


def test_the_nn_namespace_s_message_names_a_function_two_levels_down():
    error = refusal(body("s = torch.nn"))
    assert (error.code, error.line) == ("module_alias", 2)
    first = sorted(policy.F_ALLOWED)[0]
    assert str(error) == (
        f"line 2: `torch.nn` is a namespace: use its allow-listed functions directly, e.g. "
        f"`torch.nn.functional.{first}`; it cannot be aliased, passed, stored or returned"
    )


# --------------------------------------------------------------------------------------------
# The runtime import guard says why nothing is imported
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement, name", [("import os", "os"), ("from json import loads", "json"), ("__import__('torch')", "torch")]
)
def test_the_import_guard_s_message_names_the_module_and_the_pre_imported_names(statement, name):
    with pytest.raises(ImportError) as info:
        exec(compile(statement, "<unchecked>", "exec"), candidate_namespace())
    assert str(info.value) == (f"candidates cannot import modules (tried {name!r}); torch, F and math are pre-imported")
