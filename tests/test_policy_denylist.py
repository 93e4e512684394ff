"""The policy's deny-lists entry by entry: each refused with its own code and reason, wherever it is
written, by both layers (the static check and the runtime namespace); near misses stay allowed.

The reference lists are written out here on purpose (a test that draws names from the lists it
checks cannot notice a removed entry). `tests/test_policy.py` holds the list-equality check; this
file checks what each entry does. Adding an entry to a deny-list means adding it here, with its reason.
"""

from __future__ import annotations

import builtins

import pytest

from actmine.candidate import policy_lists
from actmine.candidate import source as policy
from actmine.candidate.source import SAFE_BUILTINS, candidate_namespace, check_source
from policy_cases import refusal, returns


#: Each denied attribute with its reason code and a phrase of the reason the message must give.
FRAMES = "it reaches frames, code objects, globals or classes"
STATE = "it changes autograd, memory or device state, or exposes raw memory"
UNINITIALISED = "it returns uninitialised memory"
FORMAT = "str.format reads attributes named in its format string"
RANDOM = "it draws random numbers"
PYTHON_VALUES = "it turns tensor values into Python values"
DENIED_ATTRIBUTES: dict[str, tuple[str, str]] = {
    **{
        name: ("dangerous_attribute", STATE)
        for name in """
        register_hook register_post_accumulate_grad_hook backward retain_grad requires_grad_ detach_ grad grad_fn
        data share_memory_ storage untyped_storage typed_storage data_ptr apply_ map_ map2_ cuda pin_memory set_
        resize_ resize_as_ resize_as_sparse_ sparse_resize_ sparse_resize_and_clear_ record_stream as_subclass
        module_load const_data_ptr storage_type xpu ipu mtia hpu mps""".split()
    },
    **{name: ("dangerous_attribute", UNINITIALISED) for name in "new new_empty new_empty_strided".split()},
    **{
        name: ("dangerous_attribute", FRAMES)
        for name in """
        gi_frame gi_code gi_yieldfrom cr_frame cr_code cr_await ag_frame ag_code
        f_globals f_locals f_back f_builtins f_code f_trace tb_frame tb_next
        co_code co_consts co_names func_globals func_code func_closure im_func im_self mro""".split()
    },
    **{name: ("dangerous_attribute", FORMAT) for name in "format format_map".split()},
    **{
        name: ("randomness", RANDOM)
        for name in """
        bernoulli bernoulli_ cauchy cauchy_ exponential exponential_ geometric geometric_ log_normal log_normal_
        multinomial normal normal_ random random_ uniform uniform_ poisson""".split()
    },
    **{name: ("python_escape", PYTHON_VALUES) for name in "tolist item numpy tobytes".split()},
}

#: The builtins a candidate may not name (`forbidden_builtin`).
FORBIDDEN = """open exec eval compile globals locals vars getattr setattr delattr hasattr breakpoint input help
               memoryview type object super classmethod staticmethod property exit quit dir iter aiter anext
            """.split()

#: Exactly the builtins a candidate's namespace holds (besides the import guard).
SAFE = """abs min max range len float int bool sum round enumerate zip list tuple dict set pow divmod
          sorted reversed any all isinstance print slice complex
          ValueError TypeError ZeroDivisionError ArithmeticError Exception RuntimeError IndexError KeyError
          OverflowError""".split()


def test_the_reference_lists_are_the_policy_s():
    """Update this file deliberately when a deny-list changes: every entry needs its reason here."""
    assert policy.DANGEROUS_ATTRIBUTES == set(DENIED_ATTRIBUTES)
    assert policy.FORBIDDEN_BUILTINS == set(FORBIDDEN)
    assert set(SAFE_BUILTINS) == {*SAFE, "__import__"}


# --------------------------------------------------------------------------------------------
# Denied attributes: the code and the reason, in every position an attribute can take
# --------------------------------------------------------------------------------------------

PLACES = [  # (a body line with the attribute, the line the refusal names)
    ("y = x.{}", 2),  # on a parameter
    ("y = x[0].{}", 2),  # on a subscript
    ("y = torch.tanh(x).{}", 2),  # on a call of an allow-listed function
    ("y = (lambda t: t.{})(x)", 2),  # inside a lambda
    ("y = [v.{} for v in (x, x)]", 2),  # inside a comprehension
    ("def g(t):\n        return t.{}\n    y = g(x)", 3),  # inside a nested function
]


@pytest.mark.parametrize("name", sorted(DENIED_ATTRIBUTES))
def test_every_denied_attribute_is_refused_with_its_code_and_reason(name):
    code, reason = DENIED_ATTRIBUTES[name]
    for place, line in PLACES:
        error = refusal("def activation_function(x):\n    " + place.format(name) + "\n    return x\n")
        assert (error.code, error.line) == (code, line), place
        message = str(error)
        assert message.startswith(f"line {line}: the attribute `.{name}` is not allowed: {reason}")
        assert "(deny-list: actmine.candidate.source.DANGEROUS_ATTRIBUTES)" in message


@pytest.mark.parametrize("name", ["grad", "set_", "numpy", "normal_", "f_globals", "format"])
def test_a_denied_attribute_is_flagged_where_its_name_is_written(name):
    """A chain over several lines is reported at the line of the denied name, not of the chain's start."""
    error = refusal(f"def activation_function(x):\n    y = (x\n         .abs()\n         .{name})\n    return x\n")
    assert error.line == 4 and error.code == DENIED_ATTRIBUTES[name][0]


@pytest.mark.parametrize("name", ["grad", "set_", "numpy", "normal_", "f_back", "new"])
def test_a_denied_attribute_in_a_top_level_lambda_or_default_is_refused(name):
    code = DENIED_ATTRIBUTES[name][0]
    assert refusal(f"G = lambda t: t.{name}\n" + returns("x")).code == code
    assert refusal(f"def activation_function(x, k=lambda t: t.{name}):\n    return x\n").code == code


@pytest.mark.parametrize("name", ["_base", "_version", "_cdata", "_grad_fn", "_x"])
def test_private_attributes_are_dangerous(name):
    error = refusal(returns(f"x.{name}"))
    assert (error.code, error.line) == ("dangerous_attribute", 2)
    assert f"the private attribute `.{name}` is not allowed" in str(error)


@pytest.mark.parametrize("name", ["__class__", "__dict__", "__x"])
def test_double_underscore_attributes_are_dunder(name):
    error = refusal(returns(f"x.{name}"))
    assert (error.code, error.line) == ("dunder", 2) and f"`.{name}`" in str(error)


@pytest.mark.parametrize(
    "expression",
    [
        "x.new_zeros(x.shape)",
        "x.new_ones(x.shape)",
        "x.new_full(x.shape, 2.0)",
        "x.new_tensor(1.0)",
        "x.detach()",
        "x.requires_grad",
        "x.storage_offset()",
        "x.float()",
        "x.clamp(0, 1)",
        "x.t()",
        "x.exp()",
        "x.sum()",
        "x.square()",
        "x.abs().flip(0)",
    ],
)
def test_allowed_methods_next_to_denied_ones_pass(expression):
    check_source(returns(expression))


@pytest.mark.parametrize(
    "name",
    [
        "grads",
        "data_x",
        "new_",
        "f_global",
        "co_",
        "frame",
        "gi",
        "mro_",
        "formats",
        "items",
        "normals",
        "cudas",
        "setter",
        "random_state",
        "func",
        "im_",
        "storages",
        "numpy_",
    ],
)
def test_names_that_only_resemble_denied_ones_pass(name):
    """Near misses of deny-list entries are not refused: the lists hold exact names, not prefixes
    (other than `_` and `__`)."""
    check_source(returns(f"x.{name}"))


@pytest.mark.parametrize(
    "chain, code",
    [
        ("torch.set_", "torch_forbidden"),
        ("torch.grad", "torch_forbidden"),
        ("math.format", "torch_forbidden"),
        ("F.numpy", "torch_forbidden"),
        ("torch.normal", "torch_forbidden"),
    ],
)
def test_denied_names_on_the_modules_are_outside_the_allow_lists(chain, code):
    """On torch, F and math the allow-lists decide (torch_forbidden), not the object deny-list."""
    error = refusal(returns(f"{chain}(x)"))
    assert error.code == code and "DANGEROUS_ATTRIBUTES" not in str(error)


# --------------------------------------------------------------------------------------------
# Forbidden builtins: the static check refuses each name; the runtime namespace lacks each
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FORBIDDEN)
def test_every_forbidden_builtin_is_missing_from_the_runtime_namespace(name):
    """The second layer: code the static check never saw cannot name it either."""
    assert hasattr(builtins, name) or name in ("exit", "quit", "help")  # a real builtin (site adds these three)
    with pytest.raises(NameError):
        exec(compile(f"{name}", "<unchecked>", "exec"), candidate_namespace())


@pytest.mark.parametrize("name", FORBIDDEN)
def test_every_forbidden_builtin_is_refused_in_a_nested_scope_and_at_the_top_level(name):
    error = refusal(returns(f"[{name} for v in (1, 2)]"))
    assert (error.code, error.line) == ("forbidden_builtin", 2)
    assert str(error) == f"line 2: `{name}` is not available to candidates"
    # binding the name at the top level shadows the builtin for every function: refused
    for top_level in (f"{name} = 1.0\n", f"def {name}(t):\n    return t\n"):
        error = refusal(top_level + returns("x"))
        assert (error.code, error.line) == ("forbidden_builtin", 1), top_level
        assert f"`{name}`" in str(error)


@pytest.mark.parametrize("name", FORBIDDEN)
def test_a_forbidden_builtin_s_name_may_be_a_local(name):
    """Inside a function the name is the function's own local: Python never looks it up in builtins."""
    check_source(f"def activation_function(x, {name}=2.0):\n    return x * {name}\n")
    check_source(f"def activation_function(x):\n    {name} = 2.0\n    return x * {name}\n")
    check_source(f"def activation_function(x):\n    return (lambda {name}: x * {name})(2.0)\n")
    check_source(f"def activation_function(x):\n    return sum(x * {name} for {name} in (1.0, 2.0))\n")


def test_binding_messages_say_which_binding_shadows_the_builtin():
    assert "the top level may not bind `open`" in str(refusal("open = 1\n" + returns("x")))
    assert "a function name `eval` at the top level shadows a forbidden builtin" in str(
        refusal("def eval(t):\n    return t\n" + returns("x"))
    )


# --------------------------------------------------------------------------------------------
# The safe builtins: exactly these, and each the real builtin (print: one that escapes control characters)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SAFE)
def test_every_safe_builtin_is_the_real_one_and_usable(name):
    real = policy_lists._escaped_print if name == "print" else getattr(builtins, name)  # print: escapes controls
    assert SAFE_BUILTINS[name] is real
    namespace = candidate_namespace()
    assert namespace["__builtins__"][name] is real
    check_source(returns(f"x if {name} else x"))  # not an undefined name to the static check


def test_the_import_guard_is_the_namespace_s_import():
    assert SAFE_BUILTINS["__import__"] is policy._import_guard
    assert candidate_namespace()["__builtins__"]["__import__"] is policy._import_guard
