"""Tests of the static candidate policy (`check_source`) and the restricted runtime namespace."""

from __future__ import annotations

import ast
import sys
import textwrap

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actmine.candidate import source as source_module
from actmine.candidate.source import (
    DANGEROUS_ATTRIBUTES, F_ALLOWED, FORBIDDEN_BUILTINS, MATH_ALLOWED, MAX_AST_DEPTH, REASON_CODES,
    SAFE_BUILTINS, TORCH_ALLOWED, TORCH_NAMESPACES, TORCH_SPECIAL_ALLOWED, CandidateError, candidate_namespace,
    check_source, compile_candidate, read_candidate_file,
)


def returns(expression: str) -> str:
    """A candidate whose line 2 is `return <expression>`."""
    return f"def activation_function(x):\n    return {expression}\n"


def body(*lines: str) -> str:
    """A candidate whose body (from line 2 on) is `lines`, followed by `return x`."""
    return "def activation_function(x):\n" + "".join(f"    {line}\n" for line in lines) + "    return x\n"


ENTRY = "\ndef activation_function(x):\n    return x\n"

# (source, expected code, expected line or None)
REFUSED = [
    # -- escapes through Python's object model
    (returns("().__class__.__bases__[0].__subclasses__()"), "dunder", 2),
    (returns("getattr(torch, 'load')"), "forbidden_builtin", 2),
    (body("t = torch", "t.load('x')"), "module_alias", 2),
    (returns("torch.__dict__"), "dunder", 2),
    (returns("F.__globals__"), "dunder", 2),
    (returns("x.__class__"), "dunder", 2),
    (returns("[c for c in ().__class__.__mro__]"), "dunder", 2),
    (returns("(lambda: 0).__globals__"), "dunder", 2),
    (returns("'{0.__class__}'.format(x)"), "dangerous_attribute", 2),
    (returns("'{x}'.format_map({'x': x})"), "dangerous_attribute", 2),
    (returns("f'{x.__class__}'"), "dunder", 2),
    (body("gen = (i for i in range(3))", "g = gen.gi_frame.f_globals"), "dangerous_attribute", 3),
    (body("try:", "    pass", "except Exception as e:", "    e.__traceback__.tb_frame"), "dunder", 5),
    (returns("int.mro()"), "dangerous_attribute", 2),
    (returns("F.relu(x, __x=1)"), "dunder", 2),
    (body("def __init__(y):", "    return y"), "dunder", 2),
    # -- imports, in any spelling
    ("import os" + ENTRY, "import", 1),
    ("from os import path" + ENTRY, "import", 1),
    ("import torch as t" + ENTRY, "import", 1),
    (body("import math"), "import", 2),
    ("from __future__ import annotations" + ENTRY, "import", 1),
    (returns("__import__('os')"), "dunder", 2),
    (returns("__builtins__"), "dunder", 2),
    # -- forbidden builtins
    (returns("eval('1')"), "forbidden_builtin", 2),
    (body("exec('import os')"), "forbidden_builtin", 2),
    (returns("open('/etc/passwd')"), "forbidden_builtin", 2),
    (body("breakpoint()"), "forbidden_builtin", 2),
    (body("input()"), "forbidden_builtin", 2),
    (returns("type(x)"), "forbidden_builtin", 2),
    (returns("vars()"), "forbidden_builtin", 2),
    (returns("globals()"), "forbidden_builtin", 2),
    (returns("compile('1', 'f', 'eval')"), "forbidden_builtin", 2),
    (returns("object"), "forbidden_builtin", 2),
    (returns("list(iter(int, 1))"), "forbidden_builtin", 2),
    (returns("\uff45\uff56\uff41\uff4c('1')"), "forbidden_builtin", 2),  # fullwidth "eval", NFKC-normalised
    ("open = abs" + ENTRY, "forbidden_builtin", 1),
    # a local of one function does not make the name safe in another
    ("def g(open):\n    return open\n" + returns("open('/etc/passwd')").replace("def", "\ndef", 1),
     "forbidden_builtin", 5),
    # a comprehension's first iterable is evaluated outside the comprehension
    (returns("[open for open in open]"), "forbidden_builtin", 2),
    # -- torch, F and math beyond their allow-lists
    (body("torch.manual_seed(0)"), "torch_forbidden", 2),
    (body("torch.set_num_threads(4)"), "torch_forbidden", 2),
    (body("torch.set_default_dtype(torch.float64)"), "torch_forbidden", 2),
    (returns("torch.load('f')"), "torch_forbidden", 2),
    (body("torch.save(x, 'f')"), "torch_forbidden", 2),
    (returns("torch.hub.load('owner/repo', 'model')"), "torch_forbidden", 2),
    (returns("torch.ops.aten.sin(x)"), "torch_forbidden", 2),
    (returns("torch.utils.data"), "torch_forbidden", 2),
    (returns("torch._C"), "torch_forbidden", 2),
    (body("torch.cuda.synchronize()"), "torch_forbidden", 2),
    (returns("torch.randn_like(x)"), "torch_forbidden", 2),
    (returns("torch.rand(3)"), "torch_forbidden", 2),
    (returns("torch.jit.script(F.relu)"), "torch_forbidden", 2),
    (returns("torch.compile(F.relu)(x)"), "torch_forbidden", 2),
    (returns("torch.autograd.grad(x, x)"), "torch_forbidden", 2),
    (returns("torch.nn.Module"), "torch_forbidden", 2),
    (returns("torch.nn.functional.dropout(x)"), "torch_forbidden", 2),
    (returns("F.dropout(x)"), "torch_forbidden", 2),
    (returns("F.rrelu(x)"), "torch_forbidden", 2),
    (returns("F.torch.load('f')"), "torch_forbidden", 2),
    (returns("torch.special.sys"), "torch_forbidden", 2),
    (returns("torch.fft.fftn(x)"), "torch_forbidden", 2),
    (returns("torch.Tensor.register_hook(x, print)"), "torch_forbidden", 2),
    (returns("math._x"), "torch_forbidden", 2),
    # -- the modules themselves used as values, or rebound
    (returns("torch"), "module_alias", 2),
    (returns("[math]"), "module_alias", 2),
    (returns("F.relu(x) if F else x"), "module_alias", 2),
    (body("s = torch.special"), "module_alias", 2),
    (returns("len(torch.nn.functional)"), "module_alias", 2),
    ("torch = None" + ENTRY, "module_alias", 1),
    ("def activation_function(x, torch=None):\n    return x\n", "module_alias", 1),
    (body("for math in range(3):", "    pass"), "module_alias", 2),
    (returns("(F := 1)"), "module_alias", 2),
    # -- monkeypatching
    ("torch.sin = torch.cos" + ENTRY, "attribute_assignment", 1),
    ("F.relu = None" + ENTRY, "attribute_assignment", 1),
    (body("x.data = x"), "attribute_assignment", 2),
    (body("x.requires_grad += True"), "attribute_assignment", 2),
    (body("del x.grad"), "attribute_assignment", 2),
    (body("a, x.y = 1, 2"), "attribute_assignment", 2),
    (body("y = x.clone()", "y[0], x.z = 1, 2"), "attribute_assignment", 3),
    (body("[*x.q] = [1]"), "attribute_assignment", 2),
    (body("for x.t in range(3):", "    pass"), "attribute_assignment", 2),
    (returns("[0 for x.t in range(3)]"), "attribute_assignment", 2),
    # -- loops that may not end
    (body("while True:", "    pass"), "unbounded_loop", 2),
    (body("for i in range(10**9):", "    pass"), "unbounded_loop", 2),
    (body("for i in range(100000):", "    pass"), "unbounded_loop", 2),
    (body("for row in x:", "    pass"), "unbounded_loop", 2),
    (body("n = 3", "for i in range(n):", "    pass"), "unbounded_loop", 3),
    (returns("sum(i for i in range(0, 20001))"), "unbounded_loop", 2),
    (body("for i in range(3):", "    for j in range(-20000, 0):", "        pass"), "unbounded_loop", 3),
    (returns("[i * j for i in range(3) for j in range(0, 30000, 2)]"), "unbounded_loop", 2),
    (returns("{k: 0 for k in reversed(range(10001))}"), "unbounded_loop", 2),
    (body("for i in [*range(5)]:", "    pass"), "unbounded_loop", 2),
    (body("for i in range(10000000000000000000000000000000):", "    pass"), "unbounded_loop", 2),
    (body("for i in range(True):", "    pass"), "unbounded_loop", 2),
    (body("for i in range(0, 10, 0):", "    pass"), "unbounded_loop", 2),
    (body("for i in range(3.0):", "    pass"), "unbounded_loop", 2),
    (body("for i, j in zip(range(3), x):", "    pass"), "unbounded_loop", 2),
    ("def range(n):\n    return [n]\n" + body("for i in range(3):", "    pass").replace("def", "\ndef", 1),
     "unbounded_loop", 5),
    # -- statements that are not allowed
    ("class A:\n    pass\n" + ENTRY, "forbidden_statement", 1),
    (body("with torch.no_grad():", "    x = x + 1"), "forbidden_statement", 2),
    (body("global y"), "forbidden_statement", 2),
    (body("def f():", "    y = 1", "    def g():", "        nonlocal y", "    return g"), "forbidden_statement", 5),
    (returns("(yield x)"), "forbidden_statement", 2),
    ("def activation_function(x):\n    yield from [x]\n", "forbidden_statement", 2),
    ("async def activation_function(x):\n    return x\n", "forbidden_statement", 1),
    ("@torch.jit.script\ndef activation_function(x):\n    return x\n", "forbidden_statement", 1),
    ("def deco(f):\n    return f\n@deco\ndef activation_function(x):\n    return x\n", "forbidden_statement", 3),
    (body("match x:", "    case 1:", "        pass"), "forbidden_statement", 2),
    ("print('loading')" + ENTRY, "forbidden_statement", 1),
    ("if True:\n    C = 1" + ENTRY, "forbidden_statement", 1),
    ("for i in range(3):\n    C = i" + ENTRY, "forbidden_statement", 1),
    ("raise SystemExit" + ENTRY, "forbidden_statement", 1),
    # -- dangerous attributes of objects
    (body("x.register_hook(print)"), "dangerous_attribute", 2),
    (body("x.backward()"), "dangerous_attribute", 2),
    (returns("x.numpy()"), "dangerous_attribute", 2),
    (returns("x.untyped_storage()"), "dangerous_attribute", 2),
    (returns("x.grad_fn.next_functions"), "dangerous_attribute", 2),
    (returns("x.apply_(abs)"), "dangerous_attribute", 2),
    (returns("x.cuda()"), "dangerous_attribute", 2),
    (returns("x._base"), "dangerous_attribute", 2),
    (returns("(x\n        .data)"), "dangerous_attribute", 3),  # reported on the line of the attribute
    # -- the entry point
    ("def activation(x):\n    return x\n", "missing_function", None),
    ("activation_function = lambda x: x\n", "missing_function", None),
    ("", "missing_function", None),
    ("def activation_function():\n    return 1\n", "missing_function", 1),
    ("def activation_function(x, y):\n    return x\n", "missing_function", 1),
    ("def activation_function(*, x):\n    return x\n", "missing_function", 1),
    ("def f():\n    def activation_function(x):\n        return x\n    return activation_function\n",
     "missing_function", None),
    # -- size and syntax
    ("x" * 20_001, "too_long", None),
    ("def activation_function(x)\n    return x\n", "syntax_error", 1),
    ("def activation_function(x):\n    return x\x00\n", "syntax_error", None),
    ("C = 1" + "0" * 5000 + ENTRY, "syntax_error", 1),
    ("C = " + "-" * 5000 + "1" + ENTRY, "syntax_error", None),
    ("C = " + " + ".join(["1"] * (MAX_AST_DEPTH + 10)) + ENTRY, "syntax_error", 1),
    ("return 1\n", "forbidden_statement", 1),
]


def _id(case):
    source, code, _line = case
    return f"{code}:{source[:40]!r}"


@pytest.mark.parametrize("source, code, line", REFUSED, ids=[_id(case) for case in REFUSED])
def test_refused(source, code, line):
    with pytest.raises(CandidateError) as info:
        check_source(source)
    assert info.value.code == code, str(info.value)
    assert info.value.line == line
    if line is not None:
        assert str(info.value).startswith(f"line {line}: ")


def test_the_table_covers_every_policy_code():
    file_codes = {"load_error", "not_python", "not_found", "unreadable"}
    assert {code for _source, code, _line in REFUSED} == set(REASON_CODES) - file_codes


def test_compile_candidate_refuses_too():
    """compile_candidate (what the sandbox worker calls) runs the same check first, and names the file."""
    for source, code, _line in REFUSED:
        with pytest.raises(CandidateError) as info:
            compile_candidate(source, filename="cand.py")
        assert info.value.code == code
        assert str(info.value).startswith("cand.py")


def test_first_violation_in_source_order_wins():
    source = "def activation_function(x):\n    y = torch.load('f')\n    import os\n    return eval('x')\n"
    with pytest.raises(CandidateError) as info:
        check_source(source)
    assert (info.value.code, info.value.line) == ("torch_forbidden", 2)
    # on one line, the leftmost
    with pytest.raises(CandidateError) as info:
        check_source(returns("eval(x.__class__)"))
    assert info.value.code == "forbidden_builtin"
    # a decorator's line comes before its function's
    with pytest.raises(CandidateError) as info:
        check_source("@torch.no_grad()\ndef activation_function(x):\n    return x.__class__\n")
    assert (info.value.code, info.value.line) == ("forbidden_statement", 1)


def test_messages_explain():
    cases = {
        returns("torch.load('f')"): ["torch.load", "TORCH_ALLOWED"],
        "import os" + ENTRY: ["import", "torch, F and math pre-imported"],
        returns("F.dropout(x)"): ["F.dropout", "F_ALLOWED"],
        "x = 1\n" * 5000: ["20,000", "candidate.max_source_chars"],
        body("while x.sum() > 0:", "    x = x - 1"): ["while", "range"],
        returns("x.register_hook(print)"): ["register_hook", "DANGEROUS_ATTRIBUTES"],
    }
    for source, fragments in cases.items():
        with pytest.raises(CandidateError) as info:
            check_source(source)
        for fragment in fragments:
            assert fragment in str(info.value), (fragment, str(info.value))


def test_max_chars_is_configurable():
    source = returns("x")
    with pytest.raises(CandidateError) as info:
        check_source(source, max_chars=len(source) - 1)
    assert info.value.code == "too_long" and f"{len(source) - 1}" in str(info.value)
    check_source(source, max_chars=len(source))
    with pytest.raises(CandidateError) as info:
        compile_candidate(source, max_chars=10)
    assert info.value.code == "too_long"


def test_filename_prefixes_the_message():
    with pytest.raises(CandidateError) as info:
        check_source(returns("eval('x')"), filename="cand.py")
    assert str(info.value).startswith("cand.py, line 2: ")
    assert info.value.line == 2


def test_check_source_returns_the_module():
    tree = check_source(returns("F.gelu(x)"))
    assert isinstance(tree, ast.Module)
    assert ast.unparse(tree) == ast.unparse(ast.parse(returns("F.gelu(x)")))


def test_check_source_never_runs_the_candidate(capsys):
    source = ("C = print('top level ran')\n"
              "def activation_function(x):\n"
              "    print('function ran')\n"
              "    return x\n")
    check_source(source)
    assert capsys.readouterr().out == ""
    compile_candidate(source)  # this one does run the top level (in a worker, normally)
    assert capsys.readouterr().out == "top level ran\n"


# --------------------------------------------------------------------------------------------
# Programs that must pass
# --------------------------------------------------------------------------------------------

GELU_SINC = '''
"""GELU-Sinc-Perturbation (Vitvitskyi et al. 2026): GELU(x) * (1 + alpha * sinc(x))."""
ALPHA = 0.5


def activation_function(x):
    gelu = F.gelu(x, approximate="tanh")
    return gelu * (1.0 + ALPHA * torch.sinc(x))
'''

VALID = {
    "paper_gelu_sinc": GELU_SINC,
    "helpers_and_constants": textwrap.dedent("""
        SQRT2 = math.sqrt(2.0)
        C: float = 0.044715

        def _phi(z):
            return 0.5 * (1.0 + torch.special.erf(z / SQRT2))

        def activation_function(x):
            return x * _phi(x) + C * torch.tanh(x)
    """),
    "comprehension_over_range": textwrap.dedent("""
        COEFFS = [1.0 / math.factorial(k) for k in range(8)]

        def activation_function(x):
            return sum(COEFFS[k] * x ** k for k in range(8)) / (1 + x.abs()) ** 7
    """),
    "for_loop": textwrap.dedent("""
        def activation_function(x):
            y = torch.zeros_like(x)
            for k in range(3):
                y = y + torch.sin((k + 1) * x) / (k + 1)
            return y
    """),
    "where_and_math_pi": "def activation_function(x):\n    return torch.where(x > 0, x, math.pi * F.silu(x))\n",
    "methods": "def activation_function(x):\n    return x.abs().sqrt() * x.sign() + x.clamp(min=0).pow(2)\n",
    "subscript_assignment": textwrap.dedent("""
        def activation_function(x):
            y = x.clone()
            y[y < 0] = 0.1 * y[y < 0]
            return y
    """),
    "lambda_and_tuple_unpacking": textwrap.dedent("""
        def activation_function(x):
            scale, shift = 1.5, -0.25
            f = lambda z, a=scale: a * torch.tanh(z)
            return f(x) + shift
    """),
    "nested_function_and_if_else": textwrap.dedent("""
        def activation_function(x, alpha=0.1):
            def leak(z):
                if alpha > 0:
                    return alpha * z
                else:
                    return torch.zeros_like(z)
            return torch.maximum(x, leak(x))
    """),
    "torch_nn_functional_and_namespaces": textwrap.dedent("""
        def activation_function(x):
            a = torch.nn.functional.softplus(x) - torch.special.expit(x)
            return a + 0.0 * torch.linalg.vector_norm(x) + F.hardtanh(x)
    """),
    "loop_over_literals": textwrap.dedent("""
        def activation_function(x):
            out = x
            for i, (w, f) in enumerate(zip([0.5, 0.25], [torch.sin, torch.cos])):
                out = out + w * f(x) * (i + 1)
            for j in reversed(range(10, 0, -2)):
                out = out + 0 * j
            return out
    """),
    "try_except_raise_assert": textwrap.dedent("""
        def activation_function(x):
            assert isinstance(x, torch.Tensor)
            try:
                y = torch.log1p(x.exp())
            except RuntimeError:
                raise ValueError("bad input")
            return y
    """),
    "forbidden_builtin_names_as_locals": textwrap.dedent("""
        def activation_function(input):
            type = 2.0
            return torch.relu(input) * type + sum(object for object in range(3))
    """),
    "nested_loops_within_budget": textwrap.dedent("""
        def activation_function(x):
            total = 0
            for i in range(100):
                for j in range(100):
                    total += 0
            return x + total + sum(a * b for a in range(10) for b in range(10)) * 0
    """),
    "docstring_pass_print_fstring": textwrap.dedent('''
        """A docstring."""
        pass

        def activation_function(x):
            """Identity plus zero."""
            label = f"{x.shape} {x.dtype!r}"
            return x + 0 * len(label)
    '''),
    "type_annotations": textwrap.dedent("""
        def _gate(z: torch.Tensor, k: float = 1.702) -> torch.Tensor:
            return torch.sigmoid(k * z)

        def activation_function(x: torch.Tensor) -> torch.Tensor:
            return x * _gate(x)
    """),
    "constants_dtypes_finfo": textwrap.dedent("""
        EPS = torch.finfo(torch.float32).eps

        def activation_function(x):
            return x / (1 + x.abs() + EPS) + torch.tensor(math.e, dtype=x.dtype) * 0
    """),
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_programs_pass_and_run(name):
    source = VALID[name]
    check_source(source)
    fn = compile_candidate(source, filename=f"{name}.py")
    x = torch.linspace(-3, 3, 12).reshape(3, 4)
    y = fn(x)
    assert isinstance(y, torch.Tensor) and y.shape == x.shape
    assert torch.isfinite(y).all()


def test_paper_candidate_matches_the_registry():
    from actmine.activations.paper import gelu_sinc_perturbation

    fn = compile_candidate(GELU_SINC)
    x = torch.linspace(-4, 4, 33)
    torch.testing.assert_close(fn(x), gelu_sinc_perturbation(x))


def test_each_loop_is_bounded_on_its_own():
    """Nested loops multiply; the policy bounds each loop, and the worker's time limit does the rest."""
    check_source(body("for i in range(10000):", "    for j in range(10000):", "        x = x + 0"))
    check_source(returns("[i * j for i in range(10000) for j in range(10000)]"))


def test_replacing_the_entry_point_with_a_non_function_is_refused_at_load():
    with pytest.raises(CandidateError) as info:
        compile_candidate("def activation_function(x):\n    return x\nactivation_function = abs\n")
    assert info.value.code == "missing_function"


# --------------------------------------------------------------------------------------------
# Property tests
# --------------------------------------------------------------------------------------------

_UNARY = ["torch.sin", "torch.tanh", "torch.sigmoid", "torch.abs", "torch.exp", "torch.erf", "torch.sinc",
          "torch.special.expit", "F.gelu", "F.silu", "F.softplus", "F.relu", "F.elu", "F.mish", "F.softsign",
          "torch.nn.functional.hardtanh"]
_METHODS = [".abs()", ".tanh()", ".clamp(min=-1.0, max=1.0)", ".sigmoid()", ".square()"]
_OPERATORS = ["+", "-", "*"]
_SCALARS = st.one_of(st.floats(-5, 5, allow_nan=False).map(repr), st.sampled_from(["math.pi", "torch.pi", "math.e"]),
                     st.tuples(st.sampled_from(["math.sqrt", "math.exp", "math.tanh"]), st.floats(0, 3)).map(
                         lambda t: f"{t[0]}({t[1]!r})"))
# Tensor-valued expressions over x built from allow-listed functions, methods and operators.
_TENSOR_EXPRESSIONS = st.recursive(
    st.one_of(st.just("x"), _SCALARS.map(lambda c: f"({c} * x)")),
    lambda inner: st.one_of(
        st.tuples(st.sampled_from(_UNARY), inner).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(inner, st.sampled_from(_METHODS)).map(lambda t: f"({t[0]}){t[1]}"),
        st.tuples(inner, st.sampled_from(_OPERATORS), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(inner, st.sampled_from(_OPERATORS), _SCALARS).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(inner, inner).map(lambda t: f"torch.where({t[0]} > 0, {t[1]}, x)"),
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expression=_TENSOR_EXPRESSIONS)
def test_allow_listed_expressions_pass_and_compile(expression):
    source = f"def activation_function(x):\n    return {expression}\n"
    check_source(source)
    fn = compile_candidate(source)
    x = torch.linspace(-2, 2, 5)
    assert fn(x).shape == x.shape


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300))
def test_arbitrary_text_gives_a_candidate_error_or_a_module(text):
    try:
        assert isinstance(check_source(text), ast.Module)
    except CandidateError as exc:
        assert exc.code in REASON_CODES


@settings(max_examples=100, deadline=None)
@given(name=st.sampled_from(sorted(FORBIDDEN_BUILTINS)),
       template=st.sampled_from(["return {}", "y = {}", "y = [{}]", "return F.relu(x) if {} else x",
                                 "return {}(x)", "y = (lambda: {})()"]))
def test_forbidden_builtins_are_refused_wherever_they_appear(name, template):
    with pytest.raises(CandidateError) as info:
        check_source("def activation_function(x):\n    " + template.format(name) + "\n    return x\n")
    assert info.value.code == "forbidden_builtin" and info.value.line == 2


# --------------------------------------------------------------------------------------------
# The runtime namespace: the second layer, checked with the static policy skipped
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("snippet", ["open('/etc/passwd')", "getattr(torch, 'load')", "eval('1')", "exec('1')",
                                     "type(1)", "globals()", "breakpoint()", "compile('1', 'f', 'eval')", "vars()",
                                     "input()", "setattr(x, 'y', 1)", "object", "__build_class__"])
def test_runtime_namespace_lacks_dangerous_builtins(snippet):
    code = compile(snippet, "<unchecked>", "exec")  # no check_source: the namespace alone must refuse
    with pytest.raises(NameError):
        exec(code, candidate_namespace())


@pytest.mark.parametrize("snippet", ["import os", "from os import path", "import torch", "__import__('os')",
                                     "__import__('os', None, None, ('path',))", "__import__('os', level=1)",
                                     "__import__('antigravity', None, None, [])"])
def test_runtime_namespace_cannot_import(snippet):
    """`__import__` exists (torch's C++ code needs it, see `_import_guard`) but imports nothing."""
    with pytest.raises(ImportError):
        exec(compile(snippet, "<unchecked>", "exec"), candidate_namespace())
    assert "antigravity" not in sys.modules


def test_runtime_import_guard_hands_out_nothing():
    namespace = candidate_namespace()
    # the one call it answers (PyImport_Import's), for a module already imported: None, not the module
    exec(compile("m = __import__('os', None, None, [])", "<unchecked>", "exec"), namespace)
    assert namespace["m"] is None
    # and torch's C++ code that makes that call works in the namespace
    exec(compile("y = torch.tensor([1.0, 2.0], dtype=torch.float64)", "<unchecked>", "exec"), namespace)
    assert namespace["y"].dtype == torch.float64


def test_runtime_namespace_contents():
    namespace = candidate_namespace()
    assert set(namespace) == {"__builtins__", "torch", "F", "math", "__name__"}
    assert namespace["__builtins__"] == SAFE_BUILTINS
    assert namespace["__builtins__"] is not SAFE_BUILTINS  # a copy: one candidate cannot alter the next's
    assert not set(SAFE_BUILTINS) & FORBIDDEN_BUILTINS
    assert "__build_class__" not in SAFE_BUILTINS
    assert set(SAFE_BUILTINS) <= {"abs", "min", "max", "range", "len", "float", "int", "bool", "sum", "round",
                                  "enumerate", "zip", "list", "tuple", "dict", "set", "pow", "divmod", "sorted",
                                  "reversed", "any", "all", "isinstance", "map", "filter", "print", "slice",
                                  "complex", "str", "repr", "ValueError", "TypeError", "ZeroDivisionError",
                                  "ArithmeticError", "Exception", "RuntimeError", "IndexError", "KeyError",
                                  "OverflowError", "__import__"}
    for name in ["abs", "range", "enumerate", "zip", "print", "isinstance", "ValueError", "Exception"]:
        assert name in SAFE_BUILTINS
    exec(compile("y = sum(abs(i) for i in range(-3, 3))", "<t>", "exec"), namespace)
    assert namespace["y"] == 9


# --------------------------------------------------------------------------------------------
# The allow-lists themselves
# --------------------------------------------------------------------------------------------

def test_allow_listed_names_exist():
    assert not [name for name in TORCH_ALLOWED if not hasattr(torch, name)]
    assert not [name for name in TORCH_SPECIAL_ALLOWED if not hasattr(torch.special, name)]
    assert not [name for name in F_ALLOWED if not hasattr(torch.nn.functional, name)]
    assert not [name for name in TORCH_NAMESPACES["fft"] if not hasattr(torch.fft, name)]
    assert not [name for name in TORCH_NAMESPACES["linalg"] if not hasattr(torch.linalg, name)]
    assert MATH_ALLOWED >= {"pi", "sqrt", "erf", "tanh", "inf"}


def test_allow_lists_hold_nothing_stateful_or_private():
    stateful = {"load", "save", "manual_seed", "seed", "set_num_threads", "set_default_dtype", "hub", "cuda", "ops",
                "utils", "_C", "distributed", "multiprocessing", "backends", "compile", "jit", "library", "autograd",
                "rand", "randn", "rand_like", "randn_like", "randint", "normal", "bernoulli", "multinomial",
                "no_grad", "set_grad_enabled", "from_file", "from_numpy", "empty"}
    assert not stateful & TORCH_ALLOWED and not stateful & set(TORCH_NAMESPACES)
    assert not {"dropout", "rrelu", "gumbel_softmax", "alpha_dropout", "batch_norm"} & F_ALLOWED
    for names in (TORCH_ALLOWED, TORCH_SPECIAL_ALLOWED, F_ALLOWED, MATH_ALLOWED):
        assert not [name for name in names if name.startswith("_")]
    must_deny = {"register_hook", "backward", "data", "grad", "numpy", "gi_frame", "f_globals", "format"}
    assert must_deny <= DANGEROUS_ATTRIBUTES
    assert not {"item", "tolist", "to", "detach", "new_tensor", "abs", "clamp"} & DANGEROUS_ATTRIBUTES


def test_every_reason_code_is_documented():
    documented = source_module.__doc__ + "".join(REASON_CODES.values())
    assert "defence in depth" in documented
    assert set(REASON_CODES) >= {"too_long", "syntax_error", "import", "dunder", "forbidden_builtin",
                                 "torch_forbidden", "module_alias", "attribute_assignment", "unbounded_loop",
                                 "forbidden_statement", "dangerous_attribute", "missing_function"}


def test_read_candidate_file_does_not_compile(tmp_path):
    path = tmp_path / "evil.py"
    path.write_text("import os\nos.system('touch pwned')\n", encoding="utf-8")
    assert read_candidate_file(path).startswith("import os")  # read, never run
    assert not (tmp_path / "pwned").exists()
    big = tmp_path / "big.py"
    big.write_text("x = 1\n" * 20_000, encoding="utf-8")
    with pytest.raises(CandidateError) as info:
        read_candidate_file(big)
    assert info.value.code == "too_long"
    assert len(read_candidate_file(big, max_chars=10 ** 6)) == 6 * 20_000
