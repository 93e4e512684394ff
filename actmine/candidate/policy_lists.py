"""The candidate policy's vocabulary: reason codes, `CandidateError`, the allow-lists derived from
the language's op table, the deny-lists and the candidate's builtins. The rules that use them are in
`policy_checker.py` and `policy_values.py`; `source.py` explains the policy as a whole and re-exports
every public name here.
"""

from __future__ import annotations

import ast
import builtins
import sys

from actmine.language import ops as _language
from actmine.terminal import terminal_text

ENTRY_POINT = "activation_function"
DEFAULT_MAX_SOURCE_CHARS = 20_000
MAX_LOOP_ITERATIONS = 10_000
MAX_AST_DEPTH = 200

#: Stable reason codes of `CandidateError`, with what each means.
REASON_CODES: dict[str, str] = {
    "too_long": "the source is longer than candidate.max_source_chars characters",
    "syntax_error": "the source is not valid Python (or nests too deeply to compile)",
    "import": "an import statement, in any spelling",
    "dunder": "a name, attribute, parameter or keyword starting with `__`",
    "forbidden_builtin": "use of an escape-prone builtin (open, eval, getattr, type, ...)",
    "torch_forbidden": "an attribute of torch, F or math that is not on the allow-lists",
    "module_alias": "torch, F or math used other than as the root of an attribute chain, or rebound",
    "attribute_assignment": "assigning to, augmenting or deleting an attribute (monkeypatching)",
    "unbounded_loop": "a while loop, or a for loop / comprehension not provably bounded",
    "forbidden_statement": "class, with, async, await, yield, global, nonlocal, match, decorators, "
    "or a top-level statement other than a definition or assignment",
    "dangerous_attribute": "a state-changing, frame-reaching or private attribute of an object",
    "missing_function": "no top-level `def activation_function(x)` taking one positional argument",
    "undefined_name": "a name that is not a local, a top-level definition of the program, torch/F/math "
    "or an allowed builtin (`SAFE_BUILTINS`)",
    "mutable_state": "a top-level value or a default argument that is not an immutable constant (a list, "
    "dict, set, tensor, call result, ...): it could keep state between calls",
    "randomness": "a tensor method that draws random numbers (bernoulli_, normal_, uniform_, ...)",
    "python_escape": "tensor values turned into Python values or text (tolist, item, numpy, str, "
    "f-string interpolation, ...) or a builtin that applies Python code element by "
    "element (map, filter): work the op counter cannot see",
    "costly_constant": "a top-level value, default argument or annotation (code that runs when the program "
    "is loaded, with no time or memory limit) that the policy cannot prove cheap to "
    "compute (huge integers, strings or tuples; see actmine.candidate.load_time)",
    "load_error": "running the module's top level raised an exception",
    "not_python": "the candidate file is not a .py file",
    "not_found": "the candidate file does not exist",
    "unreadable": "the candidate file cannot be read as UTF-8 text",
    "stale_program_file": "a generated program file (export pack, best_activation.py) in the plain-code "
    "format of an older actmine: refused unrun; regenerate it",
    "bad_program_file": "a generated program file that is not exactly data and the loader call (edited "
    "or damaged): regenerate it",
    "unknown_program": "FILE.py:NAME names no program of the file, or FILE.py holds several programs",
}

# ------------------------------------------------------------------------------------------------
# Allow-lists (pure tensor math) and deny-lists
# ------------------------------------------------------------------------------------------------

#: The allow-lists are derived from the one table of the candidate language
#: (`actmine.language.ops.OPS`): a name is allowed exactly when some op or constant spells it.
#: Adding a function to the language is one `Op(...)` entry there, never an edit here.
#: The table holds pure tensor math, constructors, dtypes and constants -- no randomness (the global
#: RNG is shared state), no I/O, no global settings, no autograd control; `F` holds deterministic
#: activations and normalisations (not dropout, rrelu or gumbel_softmax, not batch_norm).
_ROOT_TREES: dict[str, dict] = _language.root_trees()

#: `torch.<name>` a candidate may use (leaves only; the sub-namespaces are in TORCH_NAMESPACES).
TORCH_ALLOWED: frozenset[str] = _language.allowed_names("torch")
#: `torch.special.<name>`: special functions, all pure.
TORCH_SPECIAL_ALLOWED: frozenset[str] = _language.allowed_names("torch.special")
#: `F.<name>` and `torch.nn.functional.<name>`: deterministic activations and normalisations.
F_ALLOWED: frozenset[str] = _language.allowed_names("F")
#: `math.<name>`: the math module's pure functions and constants.
MATH_ALLOWED: frozenset[str] = _language.allowed_names("math")


def _namespaces(tree: dict) -> dict[str, frozenset[str] | dict]:
    """The sub-namespaces of a tree: a namespace of leaves as a frozenset, a deeper one as a dict."""
    out: dict[str, frozenset[str] | dict] = {}
    for name, sub in tree.items():
        if sub is None:
            continue
        out[name] = _namespaces(sub) if any(v is not None for v in sub.values()) else frozenset(sub)
    return out


#: The sub-namespaces of torch a candidate may reach, and their allow-lists.
TORCH_NAMESPACES: dict[str, frozenset[str] | dict] = _namespaces(_ROOT_TREES["torch"])
_ROOT_HINTS = {
    "torch": "torch offers only pure tensor math (allow-lists: actmine.candidate.source.TORCH_ALLOWED, "
    "and TORCH_NAMESPACES for torch.special, torch.nn.functional, torch.fft, torch.linalg; "
    "all derived from actmine.language.ops.OPS)",
    "F": "F offers only deterministic activations and normalisations "
    "(allow-list: actmine.candidate.source.F_ALLOWED, from actmine.language.ops.OPS)",
    "math": "math offers its pure functions and constants (actmine.candidate.source.MATH_ALLOWED, "
    "from actmine.language.ops.OPS)",
}
PREIMPORTED: frozenset[str] = frozenset(_ROOT_TREES)

#: Builtin names a candidate may not use: they open files, run code, reach attributes by name,
#: reach classes and their subclasses, or wait for a user.
FORBIDDEN_BUILTINS: frozenset[str] = frozenset(
    """
    open exec eval compile globals locals vars getattr setattr delattr hasattr breakpoint input help
    memoryview type object super classmethod staticmethod property exit quit
    dir iter aiter anext
""".split()
)

#: Builtins refused as `python_escape`: `map` and `filter` apply a Python function to a tensor element
#: by element (`map(math.sin, x)`: the work is invisible to the op counter and to autograd), and
#: `str`, `repr`, `ascii` and `format` turn tensor values into text that Python code can parse back.
PYTHON_ESCAPE_BUILTINS: frozenset[str] = frozenset("map filter str repr ascii format".split())

#: Tensor methods that draw random numbers (refused as `randomness`): the global RNG is shared state,
#: and a random mask makes training differ from the probes. Every Tensor method whose aten op is
#: tagged `nondeterministic_seeded` is here (a test enumerates them), plus the names of their
#: functional forms in case a later torch adds them as methods.
RNG_METHODS: frozenset[str] = frozenset(
    """
    bernoulli bernoulli_ cauchy cauchy_ exponential exponential_ geometric geometric_ log_normal log_normal_
    multinomial normal normal_ random random_ uniform uniform_ poisson
""".split()
)

#: Attributes that turn tensor values into Python values (refused as `python_escape`): Python code
#: can then compute element by element where the op counter cannot see it, without gradients.
PYTHON_VALUE_ATTRIBUTES: frozenset[str] = frozenset("tolist item numpy tobytes".split())

#: Attributes a candidate may not read on any object (refused as `dangerous_attribute`, or with the
#: codes above for `RNG_METHODS` and `PYTHON_VALUE_ATTRIBUTES`, which it includes): autograd and
#: memory state, device moves, uninitialised memory, element-wise Python callbacks, frame and code
#: objects, and str.format (which reaches attributes through its format string). Anything starting
#: with `_` is refused too.
DANGEROUS_ATTRIBUTES: frozenset[str] = (
    frozenset(
        """
    register_hook register_post_accumulate_grad_hook backward retain_grad requires_grad_ detach_ grad grad_fn
    data share_memory_ storage untyped_storage typed_storage data_ptr apply_ map_ map2_ cuda
    pin_memory set_ resize_ resize_as_ resize_as_sparse_ sparse_resize_ sparse_resize_and_clear_
    record_stream as_subclass module_load const_data_ptr storage_type xpu ipu mtia hpu mps
    new new_empty new_empty_strided
    gi_frame gi_code gi_yieldfrom cr_frame cr_code cr_await ag_frame ag_code
    f_globals f_locals f_back f_builtins f_code f_trace tb_frame tb_next
    co_code co_consts co_names func_globals func_code func_closure im_func im_self mro
    format format_map
""".split()
    )
    | RNG_METHODS
    | PYTHON_VALUE_ATTRIBUTES
)


def _import_guard(name, globals=None, locals=None, fromlist=(), level=0):
    """The `__import__` of a candidate's builtins: it never imports anything and never returns a module.

    It exists because some of torch's C++ code (`torch.tensor`, for one) calls `PyImport_Import`,
    which looks `__import__` up in the *calling frame's* builtins -- the candidate's -- calls it
    "for its side effect" with an empty list as `fromlist`, ignores the result and then reads
    `sys.modules` itself. Without an `__import__` there, `torch.tensor(2.0)` fails with an internal
    assertion. So: that exact call, for a module already imported, returns None (no side effect,
    nothing handed out); everything else -- an `import` statement, a direct call -- is refused.
    """
    if type(fromlist) is list and not fromlist and level == 0 and type(name) is str and name in sys.modules:
        return None
    raise ImportError(f"candidates cannot import modules (tried {name!r}); torch, F and math are pre-imported")


def _escaped_print(
    *values: object, sep: object = " ", end: object = "\n", file: object = None, flush: bool = False
) -> None:
    """The `print` of a candidate's builtins: what it prints reaches stdout with every control
    character written as a visible escape (`terminal_text`), so a program loaded in a user's own
    process (a pack, `best_activation.py`) cannot send escape sequences to the terminal. Only
    stdout: a candidate holds no file objects, and `file=` is refused."""
    if file is not None:
        raise TypeError("a candidate's print writes to stdout only (file= is not supported)")
    text = (" " if sep is None else str(sep)).join(map(str, values)) + ("\n" if end is None else str(end))
    sys.stdout.write(terminal_text(text))
    if flush:
        sys.stdout.flush()


#: The builtins of a candidate's namespace (`__builtins__`); `candidate_namespace` gives a copy.
#: `__import__` is `_import_guard`, which imports nothing (see there for why it must exist);
#: `print` is `_escaped_print`.
SAFE_BUILTINS: dict[str, object] = {
    name: getattr(builtins, name)
    for name in """
    abs min max range len float int bool sum round enumerate zip list tuple dict set pow divmod
    sorted reversed any all isinstance slice complex
    ValueError TypeError ZeroDivisionError ArithmeticError Exception RuntimeError IndexError KeyError
    OverflowError
""".split()
}
SAFE_BUILTINS["__import__"] = _import_guard
SAFE_BUILTINS["print"] = _escaped_print

_LOOP_HELPERS = frozenset({"range", "enumerate", "zip", "reversed"})
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


class CandidateError(ValueError):
    """A candidate program cannot be used; `code` is a stable reason code (see `REASON_CODES`),
    `line` the 1-based source line at fault when there is one, and the message says why."""

    def __init__(self, code: str, message: str, line: int | None = None):
        super().__init__(message)
        self.code = code
        self.line = line


def _attribute_refusal(attr: str) -> tuple[str, str]:
    """The reason code and the reason for refusing `.attr` (one of `DANGEROUS_ATTRIBUTES`)."""
    if attr in RNG_METHODS:
        return "randomness", (
            "it draws random numbers: the RNG is shared state and training would differ "
            "from the probes; write a deterministic function"
        )
    if attr in PYTHON_VALUE_ATTRIBUTES:
        return "python_escape", (
            "it turns tensor values into Python values, where work is invisible to the op "
            "counter and to autograd; keep the computation in tensor operations"
        )
    if attr in ("format", "format_map"):
        return "dangerous_attribute", "str.format reads attributes named in its format string"
    if attr in ("new", "new_empty", "new_empty_strided"):
        return "dangerous_attribute", "it returns uninitialised memory; use new_zeros or torch.zeros_like"
    if (
        attr[:3] in ("gi_", "cr_", "ag_", "tb_", "co_")
        or attr[:2] == "f_"
        or attr in ("func_globals", "func_code", "func_closure", "im_func", "im_self", "mro")
    ):
        return "dangerous_attribute", "it reaches frames, code objects, globals or classes"
    return "dangerous_attribute", "it changes autograd, memory or device state, or exposes raw memory"


#: Builtins whose result, given immutable constants, is an immutable constant (a number, a tuple, a
#: range): they may compute top-level values and default arguments. The aggregates may also take one
#: comprehension (`tuple(1 / math.factorial(k) for k in range(8))`).
_CONSTANT_BUILTINS = frozenset(
    "float int bool complex abs round pow divmod min max sum len tuple range slice any all isinstance".split()
)
_CONSTANT_AGGREGATES = frozenset("tuple sum min max any all".split())
#: torch functions whose results are immutable: they may compute top-level values too.
_CONSTANT_TORCH_CALLS = frozenset({"finfo", "iinfo"})
_CONSTANT_RULE = (
    "top-level values and default arguments must be immutable constants -- numbers, strings, "
    "booleans, None, tuples of those, arithmetic on them, math functions and constants, torch "
    "constants and dtypes (torch.pi, torch.float32), torch.finfo(...).eps -- so that nothing can "
    "keep state from one call to the next"
)
#: Tensor metadata that text may show (`f"{x.shape}"`): it holds no element values.
_METADATA_ATTRIBUTES = frozenset("shape dtype device ndim layout requires_grad is_leaf".split())
_METADATA_METHODS = frozenset("dim size numel nelement ndimension is_floating_point is_complex".split())
#: Names an author may expect from a usual PyTorch module, with what to write instead.
_NAME_HINTS = {
    "nn": "`nn` is not pre-imported; use F.<function> or torch.nn.functional.<function>",
    "np": "numpy is not available; use torch",
    "numpy": "numpy is not available; use torch",
    "functional": "use F.<function>",
}
