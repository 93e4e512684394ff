"""Tests of the static candidate policy (`check_source`) and the restricted runtime namespace."""

from __future__ import annotations

import ast
import keyword
import math
import sys
import textwrap

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from case_ids import readable_id

from actmine.candidate import source as source_module
from actmine.candidate.source import (
    DANGEROUS_ATTRIBUTES,
    F_ALLOWED,
    FORBIDDEN_BUILTINS,
    MATH_ALLOWED,
    MAX_AST_DEPTH,
    REASON_CODES,
    PYTHON_ESCAPE_BUILTINS,
    PYTHON_VALUE_ATTRIBUTES,
    RNG_METHODS,
    SAFE_BUILTINS,
    TORCH_ALLOWED,
    TORCH_NAMESPACES,
    TORCH_SPECIAL_ALLOWED,
    CandidateError,
    candidate_namespace,
    check_source,
    compile_candidate,
    read_candidate_file,
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
    (
        "def g(open):\n    return open\n" + returns("open('/etc/passwd')").replace("def", "\ndef", 1),
        "forbidden_builtin",
        5,
    ),
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
    (
        "def range(n):\n    return [n]\n" + body("for i in range(3):", "    pass").replace("def", "\ndef", 1),
        "unbounded_loop",
        5,
    ),
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
    (returns("x.new_empty(3)"), "dangerous_attribute", 2),
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
    (
        "def f():\n    def activation_function(x):\n        return x\n    return activation_function\n",
        "missing_function",
        None,
    ),
    # -- size and syntax
    ("x" * 20_001, "too_long", None),
    ("def activation_function(x)\n    return x\n", "syntax_error", 1),
    ("def activation_function(x):\n    return x\x00\n", "syntax_error", None),
    ("C = 1" + "0" * 5000 + ENTRY, "syntax_error", 1),
    ("C = " + "-" * 5000 + "1" + ENTRY, "syntax_error", None),
    ("C = " + " + ".join(["1"] * (MAX_AST_DEPTH + 10)) + ENTRY, "syntax_error", 1),
    ("return 1\n", "forbidden_statement", 1),
    ("C = 1\ndel C" + ENTRY, "forbidden_statement", 2),
    # -- names: only locals, the program's own globals, torch/F/math and SAFE_BUILTINS
    (body("try:", "    nn.functional.torch.os.system('id')", "except Exception:", "    pass"), "undefined_name", 3),
    (body("f = lambda z, s=nn.functional: z"), "undefined_name", 2),
    ("def activation_function(x, m=nn):\n    return x\n", "undefined_name", 1),
    (returns("np.sin(x)"), "undefined_name", 2),
    (body("try:", "    y = x", "except NameError:", "    pass"), "undefined_name", 4),
    (returns("x * id(x)"), "undefined_name", 2),
    (
        "def helper(y):\n    secret = 2.0\n    return y\n" + returns("x * secret").replace("def", "\ndef", 1),
        "undefined_name",
        6,
    ),
    ("C: float" + ENTRY.replace("return x", "return x * C"), "undefined_name", 3),
    (returns("[k for k in range(3)] and k"), "undefined_name", 2),  # comprehension variables stay inside
    # -- state that could outlive a call: mutable top-level values and default arguments
    ("CALLS = []" + ENTRY, "mutable_state", 1),
    ("SEEN = {}" + ENTRY, "mutable_state", 1),
    ("S = {1, 2}" + ENTRY, "mutable_state", 1),
    ("S = dict()" + ENTRY, "mutable_state", 1),
    ("T = torch.zeros(1)" + ENTRY, "mutable_state", 1),
    ("T = torch.tensor([1.0, 2.0])" + ENTRY, "mutable_state", 1),
    ("T = (1.0, [2.0])" + ENTRY, "mutable_state", 1),
    ("C = [k for k in range(3)]" + ENTRY, "mutable_state", 1),
    ("G = (k for k in range(3))" + ENTRY, "mutable_state", 1),
    ("T = tuple([[], []])" + ENTRY, "mutable_state", 1),
    ("def make():\n    return [0]\nSTATE = make()" + ENTRY, "mutable_state", 3),
    ("L = 'a b'.split()" + ENTRY, "mutable_state", 1),
    ("A, *B = (1, 2, 3)" + ENTRY, "mutable_state", 1),
    ("A = (1, 2)\nA[0] = 3" + ENTRY, "mutable_state", 2),
    ("C = (D := 2)" + ENTRY, "mutable_state", 1),
    ("count = lambda c=[0]: c" + ENTRY, "mutable_state", 1),
    ("def activation_function(x, cache=[]):\n    return x\n", "mutable_state", 1),
    ("def activation_function(x, t=torch.zeros(1)):\n    return x\n", "mutable_state", 1),
    ("def activation_function(x, *, seen=set()):\n    return x\n", "mutable_state", 1),
    (body("def g(z, acc={}):", "    return z"), "mutable_state", 2),
    # -- randomness
    (returns("x * torch.zeros_like(x).bernoulli_(0.5)"), "randomness", 2),
    (returns("x + x.clone().normal_()"), "randomness", 2),
    (returns("x + x.new_zeros(x.shape).uniform_(-1, 1)"), "randomness", 2),
    (returns("x + x.bernoulli()"), "randomness", 2),
    # -- tensor values turned into Python values or text
    (returns("x.numpy()"), "python_escape", 2),
    (returns("x * x.sum().item()"), "python_escape", 2),
    (body("v = x.tolist()"), "python_escape", 2),
    (returns("torch.tensor(list(map(math.sin, x)))"), "python_escape", 2),
    (returns("torch.stack(list(filter(None, x)))"), "python_escape", 2),
    (body("t = str(x)"), "python_escape", 2),
    (body("t = repr(x)"), "python_escape", 2),
    (body("t = f'{x}'"), "python_escape", 2),
    (body("t = f'{x.sum():.3f}'"), "python_escape", 2),
    (body("t = '%s' % x"), "python_escape", 2),
    (body("t = '%f %f' % (x.dim(), x.max())"), "python_escape", 2),
    # -- uninitialised memory: torch.Tensor is a type name only, torch.empty_like is not in the language
    (returns("torch.Tensor(3)"), "torch_forbidden", 2),
    (body("y = torch.Tensor(x.shape)"), "torch_forbidden", 2),
    ("T = torch.Tensor" + ENTRY, "torch_forbidden", 1),
    ("def activation_function(x, make=torch.Tensor):\n    return make(3)\n", "torch_forbidden", 1),
    (returns("(torch.Tensor,)[0](3)"), "torch_forbidden", 2),
    (body("def g(z: torch.Tensor(3)) -> torch.Tensor:", "    return z"), "torch_forbidden", 2),
    (returns("torch.empty_like(x)"), "torch_forbidden", 2),
    # -- load-time code (top-level values, defaults, annotations) that cannot be proven cheap
    ("X = 9 ** 9 ** 9 ** 9" + ENTRY, "costly_constant", 1),
    ("X = 10 ** 60\nY = ((X ** 60) ** 60) ** 60" + ENTRY, "costly_constant", 2),
    ("X = math.factorial(10 ** 8)" + ENTRY, "costly_constant", 1),
    ("X = math.comb(10 ** 7, 5 * 10 ** 6)" + ENTRY, "costly_constant", 1),
    ("X = 'a' * 10 ** 10" + ENTRY, "costly_constant", 1),
    ("X = (0,) * 10 ** 10" + ENTRY, "costly_constant", 1),
    ("X = round(5, -10 ** 8)" + ENTRY, "costly_constant", 1),
    ("X = 1 << 10 ** 9" + ENTRY, "costly_constant", 1),
    ("X = sum(range(10 ** 12))" + ENTRY, "costly_constant", 1),
    ("X = 0.5 in range(10 ** 18)" + ENTRY, "costly_constant", 1),
    ("W = 10 ** 9\nX = f'{1.0:>{W}}'" + ENTRY, "costly_constant", 2),
    ("W = 10 ** 9\nX = '%*d' % (W, 1)" + ENTRY, "costly_constant", 2),
    ("T = (1.0,)\n" + "T = (T, T)\n" * 20 + "S = f'{T}'" + ENTRY, "costly_constant", 17),
    ("X = 3\nX **= 10 ** 9" + ENTRY, "costly_constant", 2),
    ("X = max((1, 2), key=lambda v: 9 ** 9 ** 9)" + ENTRY, "costly_constant", 1),
    ("g = lambda z, a=10 ** 10 ** 10: z" + ENTRY, "costly_constant", 1),
    ("def g(z, a=9 ** 9 ** 9):\n    return z" + ENTRY, "costly_constant", 1),
    ("def activation_function(x, *, pad='-' * 10 ** 11):\n    return x\n", "costly_constant", 1),
    ("def activation_function(x: 'a' * 10 ** 10):\n    return x\n", "costly_constant", 1),
    ("def activation_function(x) -> torch.zeros(10 ** 10):\n    return x\n", "costly_constant", 1),
    ("C: 9 ** 9 ** 9 = 1.0" + ENTRY, "costly_constant", 1),
    ("M = float.fromhex\nX = 5 ** M" + ENTRY, "costly_constant", 2),  # unknown to the policy: no power
]


def _id(case):
    source, code, _line = case
    return f"{code}:{readable_id(source)}"


@pytest.mark.parametrize("source, code, line", REFUSED, ids=[_id(case) for case in REFUSED])
def test_refused(source, code, line):
    with pytest.raises(CandidateError) as info:
        check_source(source)
    assert info.value.code == code, str(info.value)
    assert info.value.line == line
    if line is not None:
        assert str(info.value).startswith(f"line {line}: ")


def test_the_table_covers_every_policy_code():
    file_codes = {
        "load_error",
        "not_python",
        "not_found",
        "unreadable",
        "stale_program_file",
        "bad_program_file",
        "unknown_program",
    }
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
    source = "C = 1 / 0\ndef activation_function(x):\n    print('function ran')\n    return x\n"
    check_source(source)  # the top level would raise ZeroDivisionError if it ran
    with pytest.raises(CandidateError) as info:
        compile_candidate(source)  # this one does run the top level (in a worker, normally)
    assert info.value.code == "load_error" and "ZeroDivisionError" in str(info.value)
    fn = compile_candidate(source.replace("1 / 0", "1 / 2"))
    assert capsys.readouterr().out == ""  # compiling never calls the function
    fn(torch.zeros(1))
    assert capsys.readouterr().out == "function ran\n"


def test_a_candidates_print_shows_control_characters_as_escapes(capsys):
    """A pack or `best_activation.py` runs the program in the user's own process: its print must not
    drive the terminal (window title, colours, clearing the screen)."""
    fn = compile_candidate(body('print("\\x1b]0;TITLE\\x07", "\\x1b[31mred", x.shape, sep="|")'))
    fn(torch.zeros(2))
    out = capsys.readouterr().out
    assert out == "\\x1b]0;TITLE\\x07|\\x1b[31mred|torch.Size([2])\n" and "\x1b" not in out
    with pytest.raises(TypeError, match="stdout only"):
        compile_candidate(body("print(x, file=x)"))(torch.zeros(1))


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
        COEFFS = tuple(1.0 / math.factorial(k) for k in range(8))

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
    # What a well-meaning model writes: helpers, module constants, tuples of constants, loops over
    # them, comprehensions over range, a default taken from a constant, metadata in messages.
    "llm_module_constants_and_helpers": textwrap.dedent("""
        # Smooth gated unit with a small periodic term.
        ALPHA: float = 1.702
        BETA = 0.1
        WEIGHTS = (0.5, 0.25, 0.125)
        SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
        HALF_PI = math.pi / 2
        EPS = 1e-6
        LIMITS = (-10.0, 10.0)
        DTYPE = torch.float32
        TAYLOR = tuple((-1) ** k / math.factorial(2 * k + 1) for k in range(4))

        def _gate(z, alpha=ALPHA):
            return torch.sigmoid(alpha * z)

        def _periodic(z, weights=WEIGHTS):
            total = torch.zeros_like(z)
            for i, w in enumerate(WEIGHTS):
                total = total + w * torch.sin((i + 1) * z)
            return total

        def activation_function(x, beta=BETA, *, clip=LIMITS):
            if x.dim() == 0:
                raise ValueError(f"expected a batch, got shape {x.shape} and dtype {x.dtype}")
            z = x.clamp(*clip)
            poly = sum(c * z ** (2 * k + 1) for k, c in enumerate(TAYLOR)) * 0
            return z * _gate(z) + beta * _periodic(z) + poly + EPS * SQRT_2_OVER_PI * HALF_PI * 0
    """),
    "llm_closure_and_walrus": textwrap.dedent("""
        def activation_function(x):
            scale = 1.0 / math.sqrt(2.0)

            def smooth(z):
                return z * torch.special.ndtr(z * scale / scale)

            parts = [(last := smooth(x * k)) / (k + 1) for k in range(3)]
            return sum(parts) + 0 * last
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

_UNARY = [
    "torch.sin",
    "torch.tanh",
    "torch.sigmoid",
    "torch.abs",
    "torch.exp",
    "torch.erf",
    "torch.sinc",
    "torch.special.expit",
    "F.gelu",
    "F.silu",
    "F.softplus",
    "F.relu",
    "F.elu",
    "F.mish",
    "F.softsign",
    "torch.nn.functional.hardtanh",
]
_METHODS = [".abs()", ".tanh()", ".clamp(min=-1.0, max=1.0)", ".sigmoid()", ".square()"]
_OPERATORS = ["+", "-", "*"]
_SCALARS = st.one_of(
    st.floats(-5, 5, allow_nan=False).map(repr),
    st.sampled_from(["math.pi", "torch.pi", "math.e"]),
    st.tuples(st.sampled_from(["math.sqrt", "math.exp", "math.tanh"]), st.floats(0, 3)).map(
        lambda t: f"{t[0]}({t[1]!r})"
    ),
)
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
@given(
    name=st.sampled_from(sorted(FORBIDDEN_BUILTINS)),
    template=st.sampled_from(
        ["return {}", "y = {}", "y = [{}]", "return F.relu(x) if {} else x", "return {}(x)", "y = (lambda: {})()"]
    ),
)
def test_forbidden_builtins_are_refused_wherever_they_appear(name, template):
    with pytest.raises(CandidateError) as info:
        check_source("def activation_function(x):\n    " + template.format(name) + "\n    return x\n")
    assert info.value.code == "forbidden_builtin" and info.value.line == 2


# --------------------------------------------------------------------------------------------
# The runtime namespace: the second layer, checked with the static policy skipped
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "snippet",
    [
        "open('/etc/passwd')",
        "getattr(torch, 'load')",
        "eval('1')",
        "exec('1')",
        "type(1)",
        "globals()",
        "breakpoint()",
        "compile('1', 'f', 'eval')",
        "vars()",
        "input()",
        "setattr(x, 'y', 1)",
        "object",
        "__build_class__",
        "map(abs, [1])",
        "filter(None, [1])",
        "str(1)",
        "repr(1)",
        "nn",
        "NameError",
    ],
)
def test_runtime_namespace_lacks_dangerous_builtins(snippet):
    code = compile(snippet, "<unchecked>", "exec")  # no check_source: the namespace alone must refuse
    with pytest.raises(NameError):
        exec(code, candidate_namespace())


@pytest.mark.parametrize(
    "snippet",
    [
        "import os",
        "from os import path",
        "import torch",
        "__import__('os')",
        "__import__('os', None, None, ('path',))",
        "__import__('os', level=1)",
        "__import__('antigravity', None, None, [])",
    ],
)
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
    assert set(SAFE_BUILTINS) <= {
        "abs",
        "min",
        "max",
        "range",
        "len",
        "float",
        "int",
        "bool",
        "sum",
        "round",
        "enumerate",
        "zip",
        "list",
        "tuple",
        "dict",
        "set",
        "pow",
        "divmod",
        "sorted",
        "reversed",
        "any",
        "all",
        "isinstance",
        "map",
        "filter",
        "print",
        "slice",
        "complex",
        "str",
        "repr",
        "ValueError",
        "TypeError",
        "ZeroDivisionError",
        "ArithmeticError",
        "Exception",
        "RuntimeError",
        "IndexError",
        "KeyError",
        "OverflowError",
        "__import__",
    }
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
    stateful = {
        "load",
        "save",
        "manual_seed",
        "seed",
        "set_num_threads",
        "set_default_dtype",
        "hub",
        "cuda",
        "ops",
        "utils",
        "_C",
        "distributed",
        "multiprocessing",
        "backends",
        "compile",
        "jit",
        "library",
        "autograd",
        "rand",
        "randn",
        "rand_like",
        "randn_like",
        "randint",
        "normal",
        "bernoulli",
        "multinomial",
        "no_grad",
        "set_grad_enabled",
        "from_file",
        "from_numpy",
        "empty",
    }
    assert not stateful & TORCH_ALLOWED and not stateful & set(TORCH_NAMESPACES)
    assert not {"dropout", "rrelu", "gumbel_softmax", "alpha_dropout", "batch_norm"} & F_ALLOWED
    for names in (TORCH_ALLOWED, TORCH_SPECIAL_ALLOWED, F_ALLOWED, MATH_ALLOWED):
        assert not [name for name in names if name.startswith("_")]
    must_deny = {
        "register_hook",
        "backward",
        "data",
        "grad",
        "numpy",
        "gi_frame",
        "f_globals",
        "format",
        "item",
        "tolist",
        "bernoulli_",
        "normal_",
    }
    assert must_deny <= DANGEROUS_ATTRIBUTES
    assert not {"to", "detach", "new_tensor", "new_zeros", "abs", "clamp", "shape", "dim"} & DANGEROUS_ATTRIBUTES


def test_every_reason_code_is_documented():
    documented = source_module.__doc__ + "".join(REASON_CODES.values())
    assert "defence in depth" in documented
    assert set(REASON_CODES) >= {
        "too_long",
        "syntax_error",
        "import",
        "dunder",
        "forbidden_builtin",
        "torch_forbidden",
        "module_alias",
        "attribute_assignment",
        "unbounded_loop",
        "forbidden_statement",
        "dangerous_attribute",
        "missing_function",
        "undefined_name",
        "mutable_state",
        "randomness",
        "python_escape",
    }


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
    assert len(read_candidate_file(big, max_chars=10**6)) == 6 * 20_000


# --------------------------------------------------------------------------------------------
# The deny-lists, named entry by entry: removing one from the code fails here
# --------------------------------------------------------------------------------------------

# Hard-coded on purpose (a test that draws names from the lists themselves cannot notice a removal).
EXPECTED_FORBIDDEN_BUILTINS = """
    open exec eval compile globals locals vars getattr setattr delattr hasattr breakpoint input help
    memoryview type object super classmethod staticmethod property exit quit dir iter aiter anext
""".split()
EXPECTED_ESCAPE_BUILTINS = "map filter str repr ascii format".split()
EXPECTED_ATTRIBUTES = {
    "dangerous_attribute": """
        register_hook register_post_accumulate_grad_hook backward retain_grad requires_grad_ detach_ grad grad_fn
        data share_memory_ storage untyped_storage typed_storage data_ptr apply_ map_ map2_ cuda
        pin_memory set_ resize_ resize_as_ resize_as_sparse_ sparse_resize_ sparse_resize_and_clear_
        record_stream as_subclass module_load const_data_ptr storage_type xpu ipu mtia hpu mps
        new new_empty new_empty_strided
        gi_frame gi_code gi_yieldfrom cr_frame cr_code cr_await ag_frame ag_code
        f_globals f_locals f_back f_builtins f_code f_trace tb_frame tb_next
        co_code co_consts co_names func_globals func_code func_closure im_func im_self mro
        format format_map""".split(),
    "randomness": """bernoulli bernoulli_ cauchy cauchy_ exponential exponential_ geometric geometric_ log_normal
        log_normal_ multinomial normal normal_ random random_ uniform uniform_ poisson""".split(),
    "python_escape": "tolist item numpy tobytes".split(),
}


@pytest.mark.parametrize("name", EXPECTED_FORBIDDEN_BUILTINS)
def test_every_forbidden_builtin_is_refused(name):
    assert name in FORBIDDEN_BUILTINS and name not in SAFE_BUILTINS
    for source in (returns(f"{name}(x)"), body(f"f = {name}"), body(f"f = lambda: {name}")):
        with pytest.raises(CandidateError) as info:
            check_source(source)
        assert info.value.code == "forbidden_builtin" and f"`{name}`" in str(info.value)


@pytest.mark.parametrize("name", EXPECTED_ESCAPE_BUILTINS)
def test_every_escape_builtin_is_refused(name):
    assert name in PYTHON_ESCAPE_BUILTINS and name not in SAFE_BUILTINS
    with pytest.raises(CandidateError) as info:
        check_source(returns(f"torch.tensor(list({name}(math.sin, x)))"))
    assert info.value.code == "python_escape" and f"`{name}`" in str(info.value)
    check_source(body(f"{name} = 2.0", f"y = x * {name}"))  # a local of that name is the program's own


@pytest.mark.parametrize("code, name", [(code, name) for code, names in EXPECTED_ATTRIBUTES.items() for name in names])
def test_every_denied_attribute_is_refused(code, name):
    assert name in DANGEROUS_ATTRIBUTES
    for source in (returns(f"x.{name}"), returns(f"x.abs().{name}(1)"), body(f"y = (x + 1).{name}")):
        with pytest.raises(CandidateError) as info:
            check_source(source)
        assert info.value.code == code and f".{name}" in str(info.value)


def test_the_deny_lists_hold_nothing_unreviewed():
    """A new entry needs a line in the reference lists above (and a reason code)."""
    assert FORBIDDEN_BUILTINS == set(EXPECTED_FORBIDDEN_BUILTINS)
    assert PYTHON_ESCAPE_BUILTINS == set(EXPECTED_ESCAPE_BUILTINS)
    assert DANGEROUS_ATTRIBUTES == set().union(*map(set, EXPECTED_ATTRIBUTES.values()))
    assert RNG_METHODS == set(EXPECTED_ATTRIBUTES["randomness"])
    assert PYTHON_VALUE_ATTRIBUTES == set(EXPECTED_ATTRIBUTES["python_escape"])


def _seeded_tensor_methods() -> set[str]:
    """Tensor methods whose aten op is tagged nondeterministic_seeded (draws from the RNG), from torch itself."""
    seeded = set()
    for name in dir(torch.Tensor):
        if name.startswith("_"):
            continue
        try:
            packet = getattr(torch.ops.aten, name)
        except (AttributeError, RuntimeError):
            continue
        if not hasattr(packet, "overloads"):
            continue
        if any(torch.Tag.nondeterministic_seeded in getattr(packet, overload).tags for overload in packet.overloads()):
            seeded.add(name)
    return seeded


def test_every_random_tensor_method_is_refused():
    seeded = _seeded_tensor_methods()
    assert {"bernoulli_", "normal_", "uniform_", "random_", "exponential_"} <= seeded  # the enumeration works
    assert seeded <= RNG_METHODS, f"Tensor methods that draw random numbers, not refused: {seeded - RNG_METHODS}"
    # and the functional forms of torch that draw random numbers stay off the allow-lists
    torch_seeded = {
        name
        for name in dir(torch)
        if not name.startswith("_")
        and hasattr(getattr(torch.ops.aten, name, None), "overloads")
        and any(
            torch.Tag.nondeterministic_seeded in getattr(getattr(torch.ops.aten, name), o).tags
            for o in getattr(torch.ops.aten, name).overloads()
        )
    }
    assert {"rand", "randn", "bernoulli", "dropout"} <= torch_seeded
    assert not torch_seeded & TORCH_ALLOWED and not torch_seeded & F_ALLOWED


# --------------------------------------------------------------------------------------------
# Names: every name a program loads is one it defines, torch/F/math, or an allowed builtin
# --------------------------------------------------------------------------------------------

_DEFINED = (
    set(SAFE_BUILTINS)
    | FORBIDDEN_BUILTINS
    | PYTHON_ESCAPE_BUILTINS
    | {"torch", "F", "math", "x", "y", "f", "z", "k", "s"}
)
_UNDEFINED_NAMES = st.from_regex(r"[a-zA-Z][a-zA-Z0-9_]{0,8}", fullmatch=True).filter(
    lambda name: name not in _DEFINED and not keyword.iskeyword(name) and not keyword.issoftkeyword(name)
)
_HIDING_PLACES = [
    "return {}",
    "y = {}.functional.torch",
    "try:\n        {}.os.system('id')\n    except Exception:\n        pass",
    "f = lambda z, s={}: z",
    "f = lambda z: z * {}",
    "y = [k * {} for k in range(3)]",
    "y = [k for k in range(3) if {}]",
    "def f(z, s={}):\n        return z",
    "def f(z):\n        return z + {}\n    y = f",
    "y = x if x.dim() else {}",
    "assert True, {}",
]


@settings(max_examples=150, deadline=None)
@given(name=_UNDEFINED_NAMES, place=st.sampled_from(_HIDING_PLACES))
def test_undefined_names_are_refused_wherever_they_hide(name, place):
    source = "def activation_function(x):\n    " + place.format(name) + "\n    return x\n"
    with pytest.raises(CandidateError) as info:
        check_source(source)
    assert info.value.code == "undefined_name" and f"`{name}`" in str(info.value)
    assert "abs" in str(info.value) and "torch, F and math" in str(info.value)  # says what is available
    # defined as a top-level constant (also after the function: it is read at call time) or a local, it is fine
    check_source(f"{name} = 1.0\n" + source)
    check_source(source + f"{name} = 1.0\n")
    if "def f" not in place and "lambda" not in place:
        check_source(source.replace("    return x\n", f"    {name} = 1.0\n    return x\n"))


def test_names_follow_pythons_scopes():
    accepted = [
        body("if False:", "    y = 1", "y = x"),  # assigned later: a local
        "def activation_function(x):\n    return x * K\nK = 2.0\n",  # a global assigned after the def
        body("a = 2.0", "def g(z):", "    return z * a", "x = g(x)"),  # a closure
        body("s = [(t := k) for k in range(3)]", "x = x * t"),  # walrus binds in the function
        body("try:", "    y = x", "except ValueError as e:", "    y = e"),  # except ... as
        body("g = lambda z, a=x: (b := z) * a + b"),  # lambda's own names
        "def helper(z):\n    return z\n" + returns("helper(x)").replace("def", "\ndef", 1),
        "def activation_function(x):\n    return activation_function(x) if False else x\n",
    ]
    for source in accepted:
        check_source(source)
    refused = [
        body("g = lambda z: (b := z)", "y = b"),  # the lambda's walrus stays inside
        body("def g(z):", "    inner = z", "    return z", "y = inner"),
        body("y = [k for k in range(3)]", "z = k"),
        "def helper(z):\n    def inner(w):\n        return w\n    return z\n"
        + returns("inner(x)").replace("def", "\ndef", 1),
    ]
    for source in refused:
        with pytest.raises(CandidateError) as info:
            check_source(source)
        assert info.value.code == "undefined_name", source


# --------------------------------------------------------------------------------------------
# State: top-level values and default arguments are immutable constants
# --------------------------------------------------------------------------------------------

_NUMBERS = st.recursive(
    st.one_of(
        st.integers(-1000, 1000).map(repr),
        st.floats(-1e3, 1e3, allow_nan=False).map(repr),
        st.sampled_from(
            [
                "math.pi",
                "torch.pi",
                "math.e",
                "math.sqrt(2.0)",
                "torch.finfo(torch.float32).eps",
                "float('inf')",
                "-1.5",
                "abs(-2)",
                "math.inf",
                "sum(k / 2 for k in range(4))",
                "math.exp(0.5) / math.factorial(3)",
                "max(1.0, 2.0)",
                "round(2.5)",
            ]
        ),
    ),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        inner.map(lambda c: f"(-{c} if True else 0)"),
    ),
    max_leaves=6,
)
_CONSTANTS = st.recursive(
    st.one_of(
        _NUMBERS,
        st.sampled_from(
            [
                "None",
                "True",
                "'tanh'",
                "torch.float32",
                "F.gelu",
                "abs",
                "tuple(k / 2 for k in range(4))",
                "lambda z, a=0.5: a * z",
            ]
        ),
    ),
    lambda inner: st.lists(inner, min_size=1, max_size=3).map(lambda items: "(" + ", ".join(items) + ",)"),
    max_leaves=6,
)
_MUTABLE = st.sampled_from(
    [
        "[]",
        "[0.5]",
        "{}",
        "{'n': 0}",
        "{1.0}",
        "set()",
        "dict()",
        "list()",
        "[k for k in range(3)]",
        "{k: k for k in range(3)}",
        "(k for k in range(3))",
        "torch.zeros(1)",
        "torch.tensor(0.5)",
        "torch.ones(3, dtype=torch.float64)",
        "torch.linspace(0, 1, 5)",
        "math.pi * torch.ones(1)",
        "'a b'.split()",
        "sorted((2, 1))",
        "helper()",
        "(1.0, [])",
        "((0, {}),)",
        "tuple([[], []])",
        "torch.arange(3)[:1]",
    ]
)
_STATE_PLACES = [
    "C = {}\n" + ENTRY,
    "C: float = {}\n" + ENTRY,
    "A, C = 1, {}\n" + ENTRY,
    "def activation_function(x, state={}):\n    return x\n",
    "def activation_function(x, *, state={}):\n    return x\n",
    "def g(z, state={}):\n    return z\n" + ENTRY,
    "g = lambda z, state={}: z\n" + ENTRY,
    "C = (1.0, lambda z, s={}: z)\n" + ENTRY,
    "def activation_function(x):\n    def g(z, state={}):\n        return z\n    return g(x)\n",
]


@settings(max_examples=150, deadline=None)
@given(value=_MUTABLE, place=st.sampled_from(_STATE_PLACES))
def test_mutable_state_is_refused(value, place):
    source = "def helper():\n    return 1.0\n" + place.format(value)
    with pytest.raises(CandidateError) as info:
        check_source(source)
    assert info.value.code == "mutable_state", str(info.value)
    assert "immutable constants" in str(info.value)


@settings(max_examples=60, deadline=None)
@given(value=_CONSTANTS, place=st.sampled_from(_STATE_PLACES))
def test_constant_values_and_defaults_pass_and_compile(value, place):
    source = place.format(value)
    check_source(source)
    fn = compile_candidate(source)
    assert fn(torch.ones(2)).shape == (2,)


def test_the_call_counter_cannot_be_written():
    """The classic trick, in every spelling the policy knows: refused before anything runs."""
    spellings = [
        "CALLS = []\ndef activation_function(x):\n    CALLS.append(1)\n    return x if len(CALLS) < 9 else -x\n",
        "def activation_function(x, calls=[]):\n    calls.append(1)\n    return x if len(calls) < 9 else -x\n",
        "N = torch.zeros(1)\ndef activation_function(x):\n    N.add_(1)\n    return torch.where(N < 9, x, -x)\n",
        "def activation_function(x, n=torch.zeros(1)):\n    n += 1\n    return torch.where(n < 9, x, -x)\n",
        "def activation_function(x):\n    activation_function.calls = 1\n    return x\n",
        "def activation_function(x):\n    global CALLS\n    CALLS = 1\n    return x\n",
    ]
    for source in spellings:
        with pytest.raises(CandidateError) as info:
            check_source(source)
        assert info.value.code in {"mutable_state", "attribute_assignment", "forbidden_statement"}, source


# --------------------------------------------------------------------------------------------
# The namespace's math takes numbers, not tensors
# --------------------------------------------------------------------------------------------


def test_namespace_math_refuses_tensors():
    namespace_math = candidate_namespace()["math"]
    assert set(MATH_ALLOWED) <= set(dir(namespace_math))
    assert namespace_math.pi == math.pi and namespace_math.inf == math.inf
    assert namespace_math.sqrt(2.0) == math.sqrt(2.0) and namespace_math.factorial(5) == 120
    assert namespace_math.fsum((0.1,) * 10) == 1.0 and namespace_math.prod(range(1, 5)) == 24
    assert namespace_math.isclose(1.0, 1.0 + 1e-12) and namespace_math.hypot(3, 4) == 5.0
    t = torch.tensor(0.5)
    for call in (
        lambda: namespace_math.sin(t),
        lambda: namespace_math.pow(2.0, t),
        lambda: namespace_math.atan2(t, 1.0),
        lambda: namespace_math.isclose(1.0, b=t),
        lambda: namespace_math.fsum([1.0, t]),
        lambda: namespace_math.prod(torch.ones(3)),
        lambda: namespace_math.dist((t,), (1.0,)),
        lambda: list(map(namespace_math.sin, torch.ones(3))),
    ):
        with pytest.raises(TypeError, match="not tensors"):
            call()
    assert candidate_namespace()["math"] is not namespace_math  # fresh: a candidate cannot alter the next's


def test_unchecked_code_cannot_compute_in_python_on_tensor_elements():
    """The second layer, with the static policy skipped: no map, no str, and math refuses tensor elements."""
    namespace = candidate_namespace()
    namespace["x"] = torch.linspace(-1, 1, 5)
    for snippet in (
        "y = [math.sin(v) for v in x]",
        "y = sorted(x, key=math.exp)",
        "y = map(math.sin, x)",
        "y = str(x)",
    ):
        with pytest.raises((TypeError, NameError)):
            exec(compile(snippet, "<unchecked>", "exec"), namespace)


# --------------------------------------------------------------------------------------------
# Load-time code must be provably cheap (costly_constant, actmine.candidate.load_time)
# --------------------------------------------------------------------------------------------


def test_torch_tensor_stays_usable_as_a_type():
    source = (
        "def _gate(z: torch.Tensor, k: float = 1.0) -> torch.Tensor:\n"
        "    return z if isinstance(z, (torch.Tensor, float)) else torch.zeros(1)\n"
        "def activation_function(x: torch.Tensor) -> tuple[torch.Tensor, ...][0]:\n"
        "    y: torch.Tensor = _gate(x)\n"
        "    return y if isinstance(y, torch.Tensor) else x\n"
    )
    check_source(source)
    assert torch.equal(compile_candidate(source)(torch.ones(2)), torch.ones(2))
    with pytest.raises(CandidateError) as info:  # isinstance rebound: no longer a type position
        check_source("isinstance = abs\n" + source)
    assert info.value.code in {"torch_forbidden", "mutable_state"}


def test_costly_constant_messages_say_where_and_how_to_fix():
    with pytest.raises(CandidateError) as info:
        check_source("ALPHA = 0.1\nBIG = 2 ** 10 ** 9" + ENTRY, filename="cand.py")
    message = str(info.value)
    assert info.value.code == "costly_constant" and info.value.line == 2
    assert message.startswith("cand.py, line 2: the top-level value of `BIG`")
    assert "bits" in message and "literal" in message and "inside activation_function" in message


def test_the_policy_only_evaluates_a_program_that_passed_every_other_rule():
    """Another violation is reported, not the cost: the evaluator never sees unchecked code."""
    with pytest.raises(CandidateError) as info:
        check_source("X = 9 ** 9 ** 9 ** 9\nY = nn" + ENTRY)
    assert info.value.code == "undefined_name"


# Constant expressions of every size: small and huge integers, strings and tuples, and the operations
# and functions whose cost grows with their operands.
_SMALL_INTS = st.integers(-40, 40).map(str)
_BIG_INTS = st.integers(0, 7).map(lambda k: f"(10 ** {10**k})")
_COSTLY_LEAVES = st.one_of(
    _SMALL_INTS,
    _BIG_INTS,
    st.sampled_from(
        [
            "0.5",
            "-2.25",
            "'ab'",
            "b'x'",
            "(1, 2.0)",
            "()",
            "True",
            "None",
            "math.pi",
            "torch.finfo(torch.float32).eps",
            "N",
            "T",
            "S",
        ]
    ),
)


def _costly_node(inner):
    return st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "**", "//", "%", "<<", ">>", "&", "|", "/"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(
            st.sampled_from(
                [
                    "math.factorial",
                    "math.isqrt",
                    "abs",
                    "int",
                    "float",
                    "len",
                    "tuple",
                    "sum",
                    "max",
                    "math.prod",
                    "math.lcm",
                    "math.fsum",
                ]
            ),
            inner,
        ).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(st.sampled_from(["math.comb", "math.perm", "pow", "round", "divmod", "math.gcd"]), inner, inner).map(
            lambda t: f"{t[0]}({t[1]}, {t[2]})"
        ),
        st.tuples(inner, inner, inner).map(lambda t: f"pow({t[0]}, {t[1]}, {t[2]})"),
        st.tuples(inner, inner).map(lambda t: f"({t[0]}, {t[1]})"),
        st.tuples(inner, inner).map(lambda t: f"({t[0]}, *{t[1]})"),
        st.tuples(inner, inner).map(lambda t: f"{t[0]}[{t[1]}]"),
        st.tuples(inner, inner).map(lambda t: f"({t[0]} if {t[1]} else 'no')"),
        st.tuples(inner, inner).map(lambda t: f"({t[0]} in {t[1]})"),
        st.tuples(inner, inner).map(lambda t: f"range({t[0]}, {t[1]})"),
        st.tuples(inner, inner).map(lambda t: f"tuple(k * {t[0]} for k in range(3) if k != {t[1]})"),
        st.tuples(inner, inner).map(lambda t: "f'{" + t[0] + "!r:>{" + t[1] + "}}'"),
        st.tuples(inner, inner).map(lambda t: f"('%s %5d' % ({t[0]}, {t[1]}))"),
    )


_COSTLY_EXPRESSIONS = st.recursive(_COSTLY_LEAVES, _costly_node, max_leaves=7)
_COSTLY_PLACES = [
    "X = {}\n" + ENTRY,
    "X: float = {}\n" + ENTRY,
    "X = 1\nX += {}\n" + ENTRY,
    "def activation_function(x, X={}):\n    return x\n",
    "X = lambda z, a={}: z\n" + ENTRY,
]


def _same_value(a, b) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same_value(p, q) for p, q in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expression=_COSTLY_EXPRESSIONS, place=st.sampled_from(_COSTLY_PLACES))
def test_accepted_constants_are_what_python_computes_and_within_the_bounds(expression, place):
    """Whatever load-time expression the policy accepts, Python computes the very value the policy
    computed (or fails where the policy found it fails) -- so no work is done that the policy did not
    already do under its bounds -- and that value is within the bounds."""
    from actmine.candidate import load_time

    source = "N = 7\nT = (0.5, 3)\nS = 'text'\n" + place.format(expression)
    try:
        tree = check_source(source)
    except CandidateError as exc:
        assert exc.code in {"costly_constant", "python_escape", "syntax_error"}, str(exc)
        return
    evaluator = load_time.LoadTimeEvaluator(source_module._ROOT_TREES, SAFE_BUILTINS)
    assert evaluator.run(tree) is None
    assert evaluator.steps <= load_time.MAX_STEPS
    namespace = candidate_namespace()
    try:
        exec(compile(tree, "<property>", "exec"), namespace)  # noqa: S102 -- the accepted program itself
    except Exception:  # noqa: BLE001 -- loading may fail: exactly where the policy saw it fail
        assert evaluator.fails_at is not None, expression
        return
    assert evaluator.fails_at is None, expression
    if "X" in namespace and not callable(namespace["X"]):
        values = [namespace["X"]]
        assert _same_value(values[0], evaluator.values["X"]), (values[0], evaluator.values["X"])
    else:  # a default value
        function = namespace["X"] if "X" in namespace else namespace["activation_function"]
        values = [*(function.__defaults__ or ()), *(function.__kwdefaults__ or {}).values()]
    for value in values:
        if isinstance(value, int):
            assert value.bit_length() <= load_time.MAX_INT_BITS
        if isinstance(value, (str, bytes, tuple)):
            assert evaluator.weight(value) <= load_time.MAX_SIZE


# The constants LLM-written and mutator-written programs use: they must all stay accepted, in any mix.
_LLM_CONSTANT_LINES = [
    "ALPHA = 0.1",
    "BETA: float = 1.702",
    "C = math.sqrt(2 / math.pi)",
    "EPS = torch.finfo(torch.float32).eps",
    "WEIGHTS = (1.0, -0.5, 0.25)",
    "K = 2 ** -3",
    "QUARTER_PI = torch.pi / 4",
    "HALF = 1 / 2",
    "NAME = f'gelu-{ALPHA:.3f}-{len(COEFFS)}'",
    "TAYLOR = tuple((-1) ** k / math.factorial(2 * k + 1) for k in range(8))",
    "INV_FACT = 1.0 / math.factorial(12)",
    "BIG = 2 ** 64",
    "LIMITS = (-10.0, 10.0)",
    "DTYPE = torch.float32",
    "LOG2 = math.log(2.0)",
    "TAU = 2 * math.pi",
    "SCALE = 1.0507009873554805",
    "SQRT2 = 2 ** 0.5",
    "GRID = tuple(i / 10 for i in range(-30, 31))",
    "PAIRS = tuple((a, b) for a in range(4) for b in range(4) if a < b)",
    "BINOM = math.comb(20, 10)",
    "MAXI = torch.iinfo(torch.int32).max",
    "SIGNS = (1, -1) * 4",
    "BAR = '-' * 40",
    "FMT = '%.3f' % 0.25",
    "TOTAL = sum(COEFFS)",
    "PEAK = max(abs(c) for c in COEFFS)",
    "ODD = tuple(range(1, 20, 2))",
]
_LLM_FUNCTIONS = [
    "def activation_function(x: torch.Tensor, alpha: float = ALPHA) -> torch.Tensor:\n"
    "    return x * torch.sigmoid(alpha * 17.02 * x) + 0 * EPS\n",
    "def _poly(z, scale=C):\n    out = torch.zeros_like(z)\n    for c in COEFFS:\n        out = out * z + c\n"
    "    return out\n\ndef activation_function(x, *, clip=LIMITS):\n    return _poly(x.clamp(*clip)) * C\n",
    "smooth = lambda z, k=K: F.softplus(z, beta=1.0) * k\n\ndef activation_function(x):\n    return smooth(x) + x\n",
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.permutations(_LLM_CONSTANT_LINES).flatmap(lambda p: st.integers(1, len(p)).map(lambda n: p[:n])),
    function=st.sampled_from(_LLM_FUNCTIONS),
)
def test_llm_style_constants_stay_accepted(lines, function):
    # the lines that name others come after them (ALPHA, COEFFS, EPS, C, K and LIMITS first)
    base = ["ALPHA = 0.1", "COEFFS = (1.0, -0.5, 0.25)", "EPS = 1e-6", "C = 0.5", "K = 0.125", "LIMITS = (-3.0, 3.0)"]
    source = "\n".join([*base, *lines]) + "\n\n" + function
    check_source(source)
    assert compile_candidate(source)(torch.linspace(-2, 2, 5)).shape == (5,)


# --------------------------------------------------------------------------------------------
# Loops at the edges of what the policy can bound
# --------------------------------------------------------------------------------------------


def _nested_reversed(levels: int) -> str:
    return "reversed(" * levels + "range(3)" + ")" * levels


@pytest.mark.parametrize(
    "iterable, bounded",
    [
        (_nested_reversed(20), True),  # helpers nested 20 deep: still bounded
        (_nested_reversed(21), False),  # deeper: the policy gives up
        ("reversed(range(3), range(4))", False),
        ("reversed((1.0, 2.0))", True),
        ("enumerate((1.0, 2.0), start=1)", True),
        ("enumerate((1.0, 2.0), 1)", True),
        ("enumerate((1.0, 2.0), 1, 2)", False),
        ("enumerate((1.0, 2.0), step=1)", False),
        ("zip()", False),
        ("zip(range(3), foo=1)", False),
        ("zip(range(3), (1.0, 2.0), strict=False)", True),
        ("range(+3)", True),
        ("range(10, -10001, -1)", False),  # 10011 iterations: negative literals count
        ("range(-10, 10, 0)", False),  # a zero step never ends
        ("range(*(1, 2))", False),
    ],
)
def test_loop_bounds_at_the_edges(iterable, bounded):
    source = body(f"for v in {iterable}:", "    pass")
    if bounded:
        check_source(source)
    else:
        with pytest.raises(CandidateError) as info:
            check_source(source)
        assert (info.value.code, info.value.line) == ("unbounded_loop", 2)


def test_a_rebound_isinstance_does_not_make_torch_tensor_a_type_position():
    """Only the real `isinstance` may receive torch.Tensor: a local of that name could call it."""
    source = "def activation_function(x, isinstance=max):\n    return x if isinstance(x, torch.Tensor) else x\n"
    with pytest.raises(CandidateError) as info:
        check_source(source)
    assert info.value.code == "torch_forbidden"
    check_source(returns("x if isinstance(x, torch.Tensor) else x"))
    with pytest.raises(CandidateError) as info:
        check_source(returns("x if isinstance(x, torch.Tensor, 1) else x"))  # not the two-argument form
    assert info.value.code == "torch_forbidden"


# --------------------------------------------------------------------------------------------
# Messages: each refusal says what was found and what to do
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source, message",
    [
        (
            "async def activation_function(x):\n    return x\n",
            "line 1: async functions, `async for` and `await` are not allowed",
        ),
        (
            body("match x:", "    case 1:", "        pass"),
            "line 2: `match` statements are not allowed (class patterns read attributes by name)",
        ),
        (
            body("while True:", "    pass"),
            "line 2: `while` loops are not allowed (they may never end); use `for i in range(N)` with an integer "
            "literal N <= 10000",
        ),
        (body("y = [v async for v in x]"), "line 2: `async for` is not allowed"),
        (body("def g():", "    yield 1"), "line 3: `yield` is not allowed (no generator functions)"),
        (body("global G"), "line 2: `global` statements are not allowed"),
        (
            returns("__builtins__"),
            "line 2: the name `__builtins__` is not allowed (names starting with `__` reach Python's internals)",
        ),
        (
            returns("torch"),
            "line 2: `torch` may only be used as the root of an attribute chain such as `torch.sin(x)`; "
            "it cannot be aliased, passed, stored or returned",
        ),
        (
            returns("F"),
            "line 2: `F` may only be used as the root of an attribute chain such as `F.relu(x)`; "
            "it cannot be aliased, passed, stored or returned",
        ),
        (
            returns("filter(None, (x,))"),
            "line 2: `filter` is not available to candidates: it applies a Python function "
            "element by element, work the op counter and autograd cannot see; use tensor "
            "operations",
        ),
        (
            returns("repr(x)"),
            "line 2: `repr` is not available to candidates: it turns values (tensors too) into text, "
            "work the op counter and autograd cannot see; use tensor operations",
        ),
        (
            "def activation_function(torch):\n    return torch\n",
            "line 1: the parameter `torch` rebinds the pre-imported `torch`; choose another name",
        ),
        ("C = [1.0]\n" + ENTRY, "line 1: the top-level value of `C` is a list, which is mutable: "),
        ("C = {'a': 1.0}\n" + ENTRY, "line 1: the top-level value of `C` is a dict, which is mutable: "),
        (
            "C = max\nD = C(1, 2)\n" + ENTRY,
            "line 2: the top-level value of `D` is a call of `C`, whose result may be mutable: ",
        ),
        (
            body("x.y, z = 1, 2"),
            "line 2: assigning to an attribute (`x.y`) is not allowed; compute a new value instead",
        ),
    ],
)
def test_refusal_messages_say_what_was_found(source, message):
    with pytest.raises(CandidateError) as info:
        check_source(source)
    assert str(info.value).startswith(message), str(info.value)


def test_fix_hints_of_mutable_constants():
    assert "use a tuple or separate constants" in str(refusal_of("C = {'a': 1.0}\n" + ENTRY))
    assert "use a tuple, e.g. `(1.0, 0.5)`" in str(refusal_of("C = [1.0]\n" + ENTRY))


def refusal_of(source: str) -> CandidateError:
    with pytest.raises(CandidateError) as info:
        check_source(source)
    return info.value


def test_undefined_name_messages_list_the_program_s_own_names_and_hint_at_usual_ones():
    def globals_source(count: int) -> str:
        return "".join(f"G{i} = {i}\n" for i in range(count)) + returns("undefined_thing")

    eight = str(refusal_of(globals_source(8)))
    assert "its own top-level definitions (G0, G1, G2, G3, G4, G5, G6, G7, activation_function)" not in eight
    assert "(G0, G1, G2, G3, G4, G5, G6, G7, ...)" in eight  # 9 names with the entry point: cut after 8
    seven = str(refusal_of(globals_source(7)))
    assert "(G0, G1, G2, G3, G4, G5, G6, activation_function)," in seven  # 8 names: all shown
    assert "the builtins ArithmeticError, Exception, IndexError, KeyError, OverflowError, RuntimeError, " in seven
    assert str(refusal_of(returns("nn.relu(x)"))).startswith(
        "line 2: the name `nn` is not defined (`nn` is not pre-imported; use F.<function> or "
        "torch.nn.functional.<function>)"
    )
    assert "the name `hex` is not defined (a Python builtin that candidates do not get)" in str(
        refusal_of(returns("hex(3)"))
    )
    assert "the name `zzz` is not defined: a candidate" in str(refusal_of(returns("zzz")))


def test_long_expressions_are_cut_in_messages():
    name = "a_rather_long_helper_name_" * 4
    error = refusal_of(f"def {name}(t):\n    return t\n" + body(f"for v in {name}(x, x, x):", "    pass"))
    snippet = f"{name}(x, x, x)"
    assert f"cannot bound the loop over `{snippet[:57]}...`" in str(error)


def test_the_torch_tensor_message_says_where_it_may_appear():
    assert (
        "`torch.Tensor` may only be named as a type -- in an annotation (`x: torch.Tensor`) or in "
        "`isinstance(obj, torch.Tensor)`" in str(refusal_of(returns("torch.Tensor(3)")))
    )


def test_percent_formatting_may_show_globals_and_metadata_but_not_values():
    check_source("G = 2\ndef activation_function(x):\n    s = '%s' % G\n    t = '%s %s' % (G, x.shape)\n    return x\n")
    error = refusal_of("G = 2\ndef activation_function(x):\n    s = '%s %s' % (G, x)\n    return x\n")
    assert (error.code, error.line) == ("python_escape", 3)
    error = refusal_of("def activation_function(x):\n    G = 2\n    s = '%s' % G\n    return x\n")  # a local
    assert (error.code, error.line) == ("python_escape", 3)


@pytest.mark.parametrize(
    "signature, accepted",
    [
        ("x", True),
        ("x, k=1.0", True),
        ("x, *, k=1.0", True),
        ("x, /", True),
        ("x=None", True),
        ("x, *, k", False),
        ("x, k", False),
        ("", False),
        ("*, x", False),
        ("*args", False),
    ],
)
def test_the_entry_point_takes_one_required_positional_argument(signature, accepted):
    source = f"def activation_function({signature}):\n    return 0.0\n"
    if accepted:
        check_source(source)
    else:
        error = refusal_of(source)
        assert (error.code, error.line) == ("missing_function", 1)


@pytest.mark.parametrize(
    "function",
    [
        "def activation_function(x, W=(1.0,)):\n    for v in W:\n        x = x * v\n    return x\n",
        "def activation_function(x, W=(1.0,)):\n    W = x\n    for v in W:\n        x = x * v\n    return x\n",
        "def activation_function(x):\n    W = x\n    for v in W:\n        x = x * v\n    return x\n",
    ],
)
def test_a_top_level_tuple_shadowed_anywhere_is_no_bounded_loop(function):
    """Loops over a top-level tuple are bounded only when no other binding of its name exists."""
    error = refusal_of("W = (1.0, 2.0)\n" + function)
    assert error.code == "unbounded_loop"
    check_source("W = (1.0, 2.0)\ndef activation_function(x):\n    for v in W:\n        x = x * v\n    return x\n")


def test_parameter_problems_name_the_parameter_s_line():
    error = refusal_of(body("def g(y,", "      torch):", "    return y"))
    assert (error.code, error.line) == ("module_alias", 3)
    error = refusal_of(body("h = lambda y, __z: y"))
    assert (error.code, error.line) == ("dunder", 2)


@pytest.mark.parametrize("source", [b"def activation_function(x):\n    return x\n", None, 3])
def test_source_that_is_not_text_is_refused(source):
    error = refusal_of(source)
    assert error.code == "syntax_error" and f"candidate source must be text, got {type(source).__name__}" in str(error)


@pytest.mark.parametrize(
    "source, message",
    [
        (
            body("with x:", "    pass"),
            "line 2: `with` statements are not allowed (context managers change global state, e.g. torch.no_grad)",
        ),
        (
            "print(1)\n" + ENTRY,
            "line 1: a top-level expression statement is not allowed: the top level may only define "
            "functions and assign constants (it runs when the candidate loads); put logic inside "
            "activation_function",
        ),
        ("if True:\n    pass\n" + ENTRY, "line 1: a top-level `if` statement is not allowed: "),
        (
            "@staticmethod\ndef activation_function(x):\n    return x\n",
            "line 1: decorators are not allowed (`@staticmethod`)",
        ),
        (
            returns("map(abs, (x,))"),
            "line 2: `map` is not available to candidates: it applies a Python function element by element",
        ),
        (
            returns("torch.Tensor(3)"),
            "line 2: `torch.Tensor` may only be named as a type -- in an annotation "
            "(`x: torch.Tensor`) or in `isinstance(obj, torch.Tensor)`: called, it makes a tensor "
            "of uninitialised memory (`torch.Tensor(3)`), and stored or passed it could be called "
            "later; create tensors with torch.zeros, torch.zeros_like, torch.full_like or "
            "torch.tensor",
        ),
        (
            "C = torch.zeros(3).dtype\n" + ENTRY,
            "line 1: the top-level value of `C` is a call of `torch.zeros`, which makes a tensor",
        ),
    ],
)
def test_more_refusal_messages(source, message):
    assert str(refusal_of(source)).startswith(message)


def test_an_unbounded_iterable_over_several_lines_is_reported_at_its_end():
    error = refusal_of(body("for v in zip(range(3),", "             x):", "    pass"))
    assert (error.code, error.line) == ("unbounded_loop", 3)


def test_programs_exactly_as_deep_as_the_limit_pass():
    from actmine.language.program import ast_depth

    def nested(levels: int) -> str:
        return returns("-" * levels + "x")

    levels = next(k for k in range(MAX_AST_DEPTH) if ast_depth(ast.parse(nested(k)))[0] == MAX_AST_DEPTH)
    check_source(nested(levels))
    error = refusal_of(nested(levels + 1))
    assert error.code == "syntax_error" and f"nests more than {MAX_AST_DEPTH} levels deep" in str(error)


def test_the_load_time_missing_function_message_says_what_is_needed():
    with pytest.raises(CandidateError) as info:
        compile_candidate("def activation_function(x):\n    return x\nactivation_function = abs\n", "c.py")
    assert (
        str(info.value) == "c.py must define a function `activation_function(x)` that takes and returns a torch.Tensor"
    )
