"""Candidate programs: Python source that defines `activation_function(x)`, and the policy they must pass.

A candidate is written by an LLM or a mutator, so it is treated as hostile until proven otherwise.
It sees three pre-imported names -- `torch`, `F` (torch.nn.functional) and `math` -- and nothing
else worth having. Two layers of this module stand between a candidate and the machine:

1. **The static policy** (`check_source`). The source is parsed with `ast` -- never executed, so it
   is safe to run in the parent process -- and walked. The first violation in source order raises a
   `CandidateError` whose `code` is one of `REASON_CODES` and whose message names the line. In short:
   no imports, no dunder names or attributes, no escape-prone builtins (`open`, `eval`, `getattr`,
   `type`, ...), attribute chains rooted at `torch`, `F` or `math` must end in an allow-listed
   function or constant (`TORCH_ALLOWED`, `TORCH_NAMESPACES`, `F_ALLOWED`, `MATH_ALLOWED`), the
   three modules cannot be aliased, passed around or rebound, no attribute assignment
   (monkeypatching), only provably bounded loops, no classes / `with` / async / generators /
   `global` / decorators / `match`, no state-changing or frame-reaching attributes on objects
   (`DANGEROUS_ATTRIBUTES`, anything starting with `_`), only definitions and assignments at the
   top level, and a top-level `def activation_function(x)`. Every name the program reads is one it
   defines (a local, or its own top-level definition), `torch`/`F`/`math`, or a key of
   `SAFE_BUILTINS` (`undefined_name`: the same source must mean the same thing wherever it is
   written down, not fall back on a NameError that a try/except hides); top-level values and
   default arguments are immutable constants (`mutable_state`: nothing can count calls or keep
   state between them); no tensor method that draws random numbers (`RNG_METHODS`, `randomness`);
   and no way to turn tensor values into Python values or text, or to apply Python code to a
   tensor element by element (`PYTHON_VALUE_ATTRIBUTES`, `PYTHON_ESCAPE_BUILTINS`, f-strings of
   anything but constants and metadata: `python_escape`), where work hides from the op counter.
   Last, on a program that passed all of that, **what runs when the program is loaded must be
   provably cheap** (`costly_constant`): top-level values, and the default values and annotations
   of top-level functions and lambdas, run with no time or memory limit wherever a program is
   compiled -- also in the user's own process, for an exported pack or `best_activation.py`
   (`actmine.candidate.loader`). The policy computes each of those expressions itself, in source
   order, with a bounded evaluator (`actmine.candidate.load_time`): integers of at most
   `load_time.MAX_INT_BITS` bits, strings and tuples of at most `load_time.MAX_SIZE` elements
   (counted through nesting), `**`, `*`, `<<`, `round(n, -k)` and the growing math functions
   (factorial, comb, perm, prod, lcm, ...) checked from their operands' sizes *before* they are
   computed, format widths bounded, and at most `load_time.MAX_STEPS` steps of work in all. What it
   cannot prove cheap is refused, naming the line; `X = 9 ** 9 ** 9 ** 9`, `math.factorial(10**8)`,
   `"a" * 10**10`, `def f(x: torch.zeros(10**10))` and `max(T, key=lambda v: ...)` are.

2. **The restricted runtime namespace** (`candidate_namespace`). The compiled code runs with
   `SAFE_BUILTINS` as its `__builtins__`: a few dozen harmless builtins and exception types, no
   `open`, `getattr`, `eval`, `type`, ... -- so even code the static check missed cannot name
   them -- and an `__import__` that imports nothing (torch's C++ code needs one to exist). Its
   `math` is a fresh module whose functions take Python numbers and refuse tensors, so that no
   spelling the static check missed computes on tensor elements in Python (`map(math.sin, x)`,
   `math.sin(x[0])`).

This is defence in depth, **not** the only barrier: Python cannot be sandboxed from inside itself,
and pure tensor math can still exhaust memory or time. Candidates are compiled and run only in the
sandboxed worker processes (resource limits, no network, killed on timeout); `compile_candidate` is
what those workers call. The parent process only ever reads source (`read_candidate_file`) and
checks it (`check_source`).

Choices the policy makes (documented here because they are judgement calls):

- a single-underscore attribute on `torch`/`F`/`math` (`torch._C`) is `torch_forbidden` (it is not
  on the allow-list); `torch.Tensor` is a type name only: it may appear in annotations and as the
  class of `isinstance(obj, torch.Tensor)`, and anywhere else (called, stored, passed) it is
  `torch_forbidden` -- `torch.Tensor(3)` is uninitialised memory, like `torch.empty_like`, which
  the language does not have; on any other object (`x._base`) it is `dangerous_attribute`; any name or
  attribute starting with `__` anywhere is `dunder`;
- attributes *past* an allow-listed leaf (`torch.Tensor.abs`, `torch.sin.foo`) are `torch_forbidden`;
  a bare sub-namespace used as a value (`s = torch.special`) is `module_alias`;
- a forbidden builtin's name may be bound as a local of a function (`def f(input): ...` is fine --
  Python then never looks the name up in builtins); at the top level, binding or using it is
  refused;
- `for` loops and comprehension generators need `range(...)` with integer-literal arguments, a
  literal list/tuple, or `enumerate`/`zip`/`reversed` of those, each at most `MAX_LOOP_ITERATIONS`
  iterations (each loop on its own: nested loops, recursion and C-level loops such as
  `sum(range(10**12))` are left to the worker's time limit); a program that rebinds `range`,
  `enumerate`, `zip` or `reversed` anywhere gets no bounded loops;
- expressions nested more than `MAX_AST_DEPTH` levels are a `syntax_error` (Python's compiler
  would overflow its stack on them anyway);
- names follow Python's scopes: a name bound anywhere in a function is its local (also before the
  binding, and also when bound by an assignment expression inside a comprehension); a
  comprehension's variables stay inside it; a top-level name assigned after a `def` is still a
  global when the function is called; an annotation without a value (`C: float`) binds nothing;
- a constant (`check_constant`) is a number, string, bytes, bool, None or Ellipsis; a tuple, an
  arithmetic/comparison/boolean/conditional expression, a subscript or an f-string of constants;
  a name (a global holds a constant or a function; in a nested function's default, an enclosing
  local lives only as long as that call); an allow-listed `torch`/`F`/`math` attribute
  (`torch.pi`, `torch.float32`, `F.gelu`); an attribute of a constant (`torch.finfo(...).eps`); a
  lambda (its own defaults are checked); a call of a `math` function, `torch.finfo`/`torch.iinfo`
  or one of the builtins in `_CONSTANT_BUILTINS` on constants -- `tuple`, `sum`, `min`, `max`,
  `any` and `all` may also take one comprehension of constants. Lists, dicts, sets, generators,
  tensors and any other call are refused. Top-level targets are names (no `*rest`, no `C[0] =`),
  and a top-level `del` is refused. A top-level tuple bound once may be looped over like a literal;
- text may show constants, globals and tensor metadata (`x.shape`, `x.dtype`, `x.dim()`); an
  f-string field or `%` operand that could be a tensor is `python_escape`. At module scope (top-level
  values, defaults and annotations of top-level functions) every expression is a constant, so text
  there may show any of them (`NAME = f"gelu-{2 * ALPHA}"`), bounded by `costly_constant`. Not closed statically:
  `%` on a string held in a variable, and the one-bit or small-int conversions (`if t:`,
  `list[t]`); explicit `float(t)`/`int(t)` stay allowed (they pass through torch's dispatcher as
  `aten._local_scalar_dense`, where the probes can see them).
"""

from __future__ import annotations

import ast
import builtins
import math
import sys
import types
from collections import Counter
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from actmine.language import ops as _language
from actmine.language.normalise import normalise
from actmine.language.program import ast_depth

from .load_time import check_load_time
from .load_time_bounds import _snippet

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
FORBIDDEN_BUILTINS: frozenset[str] = frozenset("""
    open exec eval compile globals locals vars getattr setattr delattr hasattr breakpoint input help
    memoryview type object super classmethod staticmethod property exit quit
    dir iter aiter anext
""".split())

#: Builtins refused as `python_escape`: `map` and `filter` apply a Python function to a tensor element
#: by element (`map(math.sin, x)`: the work is invisible to the op counter and to autograd), and
#: `str`, `repr`, `ascii` and `format` turn tensor values into text that Python code can parse back.
PYTHON_ESCAPE_BUILTINS: frozenset[str] = frozenset("map filter str repr ascii format".split())

#: Tensor methods that draw random numbers (refused as `randomness`): the global RNG is shared state,
#: and a random mask makes training differ from the probes. Every Tensor method whose aten op is
#: tagged `nondeterministic_seeded` is here (a test enumerates them), plus the names of their
#: functional forms in case a later torch adds them as methods.
RNG_METHODS: frozenset[str] = frozenset("""
    bernoulli bernoulli_ cauchy cauchy_ exponential exponential_ geometric geometric_ log_normal log_normal_
    multinomial normal normal_ random random_ uniform uniform_ poisson
""".split())

#: Attributes that turn tensor values into Python values (refused as `python_escape`): Python code
#: can then compute element by element where the op counter cannot see it, without gradients.
PYTHON_VALUE_ATTRIBUTES: frozenset[str] = frozenset("tolist item numpy tobytes".split())

#: Attributes a candidate may not read on any object (refused as `dangerous_attribute`, or with the
#: codes above for `RNG_METHODS` and `PYTHON_VALUE_ATTRIBUTES`, which it includes): autograd and
#: memory state, device moves, uninitialised memory, element-wise Python callbacks, frame and code
#: objects, and str.format (which reaches attributes through its format string). Anything starting
#: with `_` is refused too.
DANGEROUS_ATTRIBUTES: frozenset[str] = frozenset("""
    register_hook register_post_accumulate_grad_hook backward retain_grad requires_grad_ detach_ grad grad_fn
    data share_memory_ storage untyped_storage typed_storage data_ptr apply_ map_ map2_ cuda
    pin_memory set_ resize_ resize_as_ resize_as_sparse_ sparse_resize_ sparse_resize_and_clear_
    record_stream as_subclass module_load const_data_ptr storage_type xpu ipu mtia hpu mps
    new new_empty new_empty_strided
    gi_frame gi_code gi_yieldfrom cr_frame cr_code cr_await ag_frame ag_code
    f_globals f_locals f_back f_builtins f_code f_trace tb_frame tb_next
    co_code co_consts co_names func_globals func_code func_closure im_func im_self mro
    format format_map
""".split()) | RNG_METHODS | PYTHON_VALUE_ATTRIBUTES


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


#: The builtins of a candidate's namespace (`__builtins__`); `candidate_namespace` gives a copy.
#: `__import__` is `_import_guard`, which imports nothing (see there for why it must exist).
SAFE_BUILTINS: dict[str, object] = {name: getattr(builtins, name) for name in """
    abs min max range len float int bool sum round enumerate zip list tuple dict set pow divmod
    sorted reversed any all isinstance print slice complex
    ValueError TypeError ZeroDivisionError ArithmeticError Exception RuntimeError IndexError KeyError
    OverflowError
""".split()}
SAFE_BUILTINS["__import__"] = _import_guard

_LOOP_HELPERS = frozenset({"range", "enumerate", "zip", "reversed"})
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


class CandidateError(ValueError):
    """A candidate program cannot be used; `code` is a stable reason code (see `REASON_CODES`),
    `line` the 1-based source line at fault when there is one, and the message says why."""

    def __init__(self, code: str, message: str, line: int | None = None):
        super().__init__(message)
        self.code = code
        self.line = line


# ------------------------------------------------------------------------------------------------
# The static policy
# ------------------------------------------------------------------------------------------------

def _int_literal(node: ast.AST) -> int | None:
    """The value of an integer literal, `-3` included; None for anything else (bools too)."""
    sign = 1
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        sign = -1 if isinstance(node.op, ast.USub) else 1
        node = node.operand
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return sign * node.value
    return None


def _scope_locals(node: ast.AST) -> frozenset[str]:
    """Names bound as locals of a function, lambda or comprehension scope.

    Python's rule: a name bound anywhere in a function's body (assignment, `for` target, `del`,
    `except ... as`, a nested `def`, an assignment expression -- also one inside a comprehension,
    which binds in the enclosing function) is local to the whole function, even before the binding.
    A comprehension's locals are its `for` targets. An under-approximation is safe (it only refuses
    more): bindings by assignment expressions in a nested function's defaults are not counted.
    """
    names: set[str] = set()
    if isinstance(node, _COMPREHENSIONS):
        for generator in node.generators:
            names.update(n.id for n in ast.walk(generator.target) if isinstance(n, ast.Name))
        return frozenset(names)
    args = node.args
    for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
        if arg is not None:
            names.add(arg.arg)
    stack = list(node.body) if isinstance(node.body, list) else [node.body]
    while stack:
        child = stack.pop()
        if isinstance(child, ast.Name) and not isinstance(child.ctx, ast.Load):
            names.add(child.id)
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(child.name)
            continue
        elif isinstance(child, ast.Lambda):
            continue
        elif isinstance(child, _COMPREHENSIONS):
            names.update(_walrus_targets(child))
            continue
        elif isinstance(child, ast.ExceptHandler) and child.name:
            names.add(child.name)
        stack.extend(ast.iter_child_nodes(child))
    return frozenset(names)


def _walrus_targets(comprehension: ast.AST) -> set[str]:
    """Names that assignment expressions in `comprehension` (and comprehensions nested in it) bind in
    the enclosing scope; not those inside a lambda, which bind in the lambda."""
    names: set[str] = set()
    stack = [comprehension]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.NamedExpr) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        if not isinstance(node, (ast.Lambda, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            stack.extend(ast.iter_child_nodes(node))
    return names


def _target_names(target: ast.AST) -> list[str]:
    """The names an assignment target binds (`a`, `a, (b, *c)`); subscripts and attributes bind none."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [name for element in target.elts for name in _target_names(element)]
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    return []


def _top_level_names(tree: ast.Module) -> frozenset[str]:
    """The program's global definitions: top-level `def`s and names assigned at the top level.

    An augmented assignment (`C += 1`) does not count (it needs an earlier binding), nor does an
    annotation without a value (`C: float` binds nothing). Other top-level statements are refused.
    """
    names: set[str] = set()
    for statement in tree.body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(statement.name)
        elif isinstance(statement, ast.Assign):
            names.update(name for target in statement.targets for name in _target_names(target))
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            names.update(_target_names(statement.target))
    return frozenset(names)


def _binding_counts(tree: ast.Module) -> Counter[str]:
    """How often the program binds each name, anywhere (assignments, parameters, defs, except ... as)."""
    names: Counter[str] = Counter()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names[node.id] += 1
        elif isinstance(node, ast.arg):
            names[node.arg] += 1
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names[node.name] += 1
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names[node.name] += 1
        elif isinstance(node, ast.alias):
            names[(node.asname or node.name).split(".")[0]] += 1
    return names


def _attribute_refusal(attr: str) -> tuple[str, str]:
    """The reason code and the reason for refusing `.attr` (one of `DANGEROUS_ATTRIBUTES`)."""
    if attr in RNG_METHODS:
        return "randomness", ("it draws random numbers: the RNG is shared state and training would differ "
                              "from the probes; write a deterministic function")
    if attr in PYTHON_VALUE_ATTRIBUTES:
        return "python_escape", ("it turns tensor values into Python values, where work is invisible to the op "
                                 "counter and to autograd; keep the computation in tensor operations")
    if attr in ("format", "format_map"):
        return "dangerous_attribute", "str.format reads attributes named in its format string"
    if attr in ("new", "new_empty", "new_empty_strided"):
        return "dangerous_attribute", "it returns uninitialised memory; use new_zeros or torch.zeros_like"
    if attr[:3] in ("gi_", "cr_", "ag_", "tb_", "co_") or attr[:2] == "f_" or attr in (
            "func_globals", "func_code", "func_closure", "im_func", "im_self", "mro"):
        return "dangerous_attribute", "it reaches frames, code objects, globals or classes"
    return "dangerous_attribute", "it changes autograd, memory or device state, or exposes raw memory"


def _end(node: ast.AST) -> tuple[int | None, int | None]:
    """Where `node` ends: a problem with a whole expression is reported after the problems inside it."""
    return getattr(node, "end_lineno", None), getattr(node, "end_col_offset", None)


def _attribute_chain(node: ast.Attribute) -> tuple[ast.AST, list[ast.Attribute]]:
    """`a.b.c` -> (the base expression `a`, [the Attribute nodes for .b and .c, in source order])."""
    links = []
    while isinstance(node, ast.Attribute):
        links.append(node)
        node = node.value
    return node, links[::-1]


#: Builtins whose result, given immutable constants, is an immutable constant (a number, a tuple, a
#: range): they may compute top-level values and default arguments. The aggregates may also take one
#: comprehension (`tuple(1 / math.factorial(k) for k in range(8))`).
_CONSTANT_BUILTINS = frozenset("float int bool complex abs round pow divmod min max sum len tuple range slice "
                               "any all isinstance".split())
_CONSTANT_AGGREGATES = frozenset("tuple sum min max any all".split())
#: torch functions whose results are immutable: they may compute top-level values too.
_CONSTANT_TORCH_CALLS = frozenset({"finfo", "iinfo"})
_CONSTANT_RULE = ("top-level values and default arguments must be immutable constants -- numbers, strings, "
                  "booleans, None, tuples of those, arithmetic on them, math functions and constants, torch "
                  "constants and dtypes (torch.pi, torch.float32), torch.finfo(...).eps -- so that nothing can "
                  "keep state from one call to the next")
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


class _Checker:
    """Walks a module iteratively (candidates may nest deeply) and records every violation.

    Each stack entry carries the scope chain: the locals of the enclosing functions, lambdas and
    comprehensions, innermost last (the module scope is not in it).
    """

    def __init__(self, tree: ast.Module):
        self.tree = tree
        self.violations: list[tuple[int, int, int, str, str]] = []
        bindings = _binding_counts(tree)
        self.bound_anywhere = frozenset(bindings)
        self.globals = _top_level_names(tree)
        # Top-level tuples bound once in the whole program (so no local can shadow them), written as a
        # literal or as `tuple(<comprehension>)`: loops over them are as bounded as loops over what
        # they are made of (`for w in WEIGHTS:`).
        self.literal_tuples = {
            s.targets[0].id: s.value for s in tree.body
            if isinstance(s, ast.Assign) and len(s.targets) == 1 and isinstance(s.targets[0], ast.Name)
            and bindings[s.targets[0].id] == 1
            and (isinstance(s.value, ast.Tuple) or self.tuple_of_comprehension(s.value))}
        # `torch.Tensor` nodes in an annotation or as the class of `isinstance(obj, torch.Tensor)`: the
        # only places the class may be named (anywhere else it could be called: `torch.Tensor(3)` is
        # uninitialised memory). Filled in as the walk reaches those places, before their children.
        self.type_positions: set[int] = set()

    # -- recording --

    def flag(self, node: ast.AST, code: str, message: str, line: int | None = None, col: int | None = None):
        line = line if line is not None else getattr(node, "lineno", 1)
        col = col if col is not None else getattr(node, "col_offset", 0)
        self.violations.append((line, col, len(self.violations), code, message))

    def flag_attribute(self, link: ast.Attribute, code: str, message: str):
        """Flag at the attribute's name (the end of its node), which may be lines after the chain's start."""
        line = getattr(link, "end_lineno", None) or link.lineno
        end_col = getattr(link, "end_col_offset", None)
        col = max(0, end_col - len(link.attr)) if end_col is not None else link.col_offset
        self.flag(link, code, message, line, col)

    # -- walking --

    def run(self) -> list[tuple[int, int, int, str, str]]:
        for statement in self.tree.body:
            self.check_top_level(statement)
        stack: list[tuple[ast.AST, tuple[frozenset[str], ...]]] = [
            (statement, ()) for statement in reversed(self.tree.body)]
        while stack:
            node, scopes = stack.pop()
            children = self.visit(node, scopes)
            stack.extend(reversed(children))
        self.check_entry_point()
        if not self.violations:
            # Last, on a program that passed every other rule: its load-time code is then made of
            # constant expressions only, which `check_load_time` computes under its bounds.
            problem = check_load_time(self.tree, _ROOT_TREES, SAFE_BUILTINS)
            if problem is not None:
                node, message = problem
                self.flag(node, "costly_constant", message)
        return sorted(self.violations)

    def visit(self, node, scopes) -> list[tuple[ast.AST, tuple]]:
        """Check one node; return its children to walk, each with its scope chain."""
        default = [(child, scopes) for child in ast.iter_child_nodes(node)]

        if isinstance(node, (ast.Import, ast.ImportFrom)):
            self.flag(node, "import", "import statements are not allowed "
                                      "(candidates get torch, F and math pre-imported)")
            return []
        if isinstance(node, ast.ClassDef):
            self.flag(node, "forbidden_statement", "class definitions are not allowed; write the module as a function: `def activation_function(x):` returning what forward(self, x) returns, with `self.<name>` attributes as top-level constants (no parameters, buffers or other state)")
            return default
        if isinstance(node, (ast.With, ast.AsyncWith)):
            self.flag(node, "forbidden_statement", "`with` statements are not allowed "
                                                   "(context managers change global state, e.g. torch.no_grad)")
            return default
        if isinstance(node, (ast.AsyncFunctionDef, ast.AsyncFor, ast.Await)):
            self.flag(node, "forbidden_statement", "async functions, `async for` and `await` are not allowed")
            return default
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            self.flag(node, "forbidden_statement", "`yield` is not allowed (no generator functions)")
            return default
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            keyword = "global" if isinstance(node, ast.Global) else "nonlocal"
            self.flag(node, "forbidden_statement", f"`{keyword}` statements are not allowed")
            return default
        if isinstance(node, ast.Match):
            self.flag(node, "forbidden_statement", "`match` statements are not allowed "
                                                   "(class patterns read attributes by name)")
            return default
        if isinstance(node, ast.While):
            self.flag(node, "unbounded_loop", "`while` loops are not allowed (they may never end); use "
                                              f"`for i in range(N)` with an integer literal N <= {MAX_LOOP_ITERATIONS}")
            return default

        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            if isinstance(node, ast.AnnAssign):
                self.mark_type_positions(node.annotation)
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in targets:
                self.check_target(target, "deleting" if isinstance(node, ast.Delete) else "assigning to")
            return default

        if isinstance(node, ast.For):
            self.check_target(node.target, "assigning to")
            self.check_bounded(node.iter, node)
            return default

        if isinstance(node, _COMPREHENSIONS):
            return self.visit_comprehension(node, scopes)

        if isinstance(node, (ast.FunctionDef, ast.Lambda)):
            return self.visit_function(node, scopes)

        if isinstance(node, ast.ExceptHandler):
            if node.name:
                self.check_binding(node.name, node, scopes, what="an exception variable")
            return default

        if isinstance(node, ast.keyword):
            if node.arg is not None and node.arg.startswith("__"):
                self.flag(node, "dunder", f"keyword argument `{node.arg}`: names starting with `__` are not allowed")
            return default

        if isinstance(node, ast.Name):
            self.visit_name(node, scopes)
            return default

        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance" \
                and "isinstance" not in self.bound_anywhere and len(node.args) == 2:
            classes = [node.args[1]]
            while classes:   # isinstance(obj, (torch.Tensor, float)) nests class tuples
                part = classes.pop()
                if isinstance(part, ast.Tuple):
                    classes.extend(part.elts)
                elif isinstance(part, ast.Attribute):
                    self.type_positions.add(id(part))
            return default

        # At module scope (top-level values, and defaults and annotations of top-level functions) every
        # expression is a constant (`check_constant`): no tensor exists there, so text may show anything.
        if isinstance(node, ast.FormattedValue) and scopes and not self.shows_no_values(node.value, scopes):
            self.flag(node.value, "python_escape",
                      f"the f-string interpolates `{_snippet(node.value)}`, which may hold tensor values: text "
                      "turns values into Python data the op counter cannot see; interpolate only constants and "
                      "metadata such as x.shape, x.dtype or x.dim()", *_end(node.value))
            return default
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and scopes and (
                isinstance(node.left, ast.JoinedStr)
                or (isinstance(node.left, ast.Constant) and isinstance(node.left.value, (str, bytes)))) \
                and not self.shows_no_values(node.right, scopes):
            self.flag(node.right, "python_escape",
                      f"`%`-formatting `{_snippet(node.right)}` turns values (tensors too) into text the op counter "
                      "cannot see; format only constants and metadata such as x.shape", *_end(node.right))
            return default

        if isinstance(node, ast.Attribute):
            return self.visit_attribute(node, scopes)

        return default

    # -- statements and scopes --

    def check_top_level(self, statement: ast.stmt):
        if isinstance(statement, (ast.FunctionDef, ast.Pass)):
            return  # a def's defaults are checked with every function's (`visit_function`)
        if isinstance(statement, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            for target in targets:
                self.check_global_target(target)
            if statement.value is not None:
                self.check_constant(statement.value, f"the top-level value of `{_snippet(targets[0], 40)}`")
            return
        if isinstance(statement, ast.Delete):
            self.flag(statement, "forbidden_statement", "a top-level `del` is not allowed: the top level may only "
                                                        "define functions and assign constants")
            return
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            return  # a docstring (or any constant): no effect
        if isinstance(statement, (ast.Import, ast.ImportFrom, ast.ClassDef, ast.With, ast.AsyncWith,
                                  ast.AsyncFunctionDef, ast.AsyncFor, ast.Global, ast.Nonlocal, ast.Match,
                                  ast.While)):
            return  # refused with their own, more specific message
        name = type(statement).__name__.lower()
        kind = "expression statement" if isinstance(statement, ast.Expr) else f"`{name}` statement"
        self.flag(statement, "forbidden_statement",
                  f"a top-level {kind} is not allowed: the top level may only define functions and assign "
                  "constants (it runs when the candidate loads); put logic inside activation_function")

    def check_global_target(self, target: ast.AST):
        """Top-level assignments bind names (or tuples of names); they never change a value in place."""
        stack = [target]
        while stack:
            part = stack.pop()
            if isinstance(part, (ast.Tuple, ast.List)):
                stack.extend(part.elts)
            elif isinstance(part, ast.Starred):
                self.flag(part, "mutable_state", f"the starred target `{_snippet(part)}` makes a list (mutable); "
                                                 "top-level names must hold immutable constants: unpack into names")
            elif isinstance(part, ast.Subscript):
                self.flag(part, "mutable_state", f"assigning to `{_snippet(part)}` at the top level changes a value "
                                                 "in place; top-level names must hold immutable constants")
            # a Name is fine; an Attribute is `attribute_assignment` (check_target)

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
                                if isinstance(iterable, ast.Call) and isinstance(iterable.func, ast.Name) \
                                        and iterable.func.id in _LOOP_HELPERS - {"range"} \
                                        and iterable.func.id not in self.bound_anywhere:
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
                if base.id == "math" or (base.id == "torch" and len(links) == 1
                                         and links[0].attr in _CONSTANT_TORCH_CALLS):
                    return None, ""
                return (f"a call of `{path}`, which makes a tensor (a tensor can be changed in place, e.g. by add_)",
                        "create tensors inside the function, e.g. `torch.tensor(0.5, dtype=x.dtype)`, or keep "
                        "plain numbers")
        elif isinstance(function, ast.Name) and function.id in _CONSTANT_BUILTINS \
                and function.id not in self.bound_anywhere:
            comprehensions = [a for a in call.args if isinstance(a, (ast.GeneratorExp, ast.ListComp, ast.SetComp))]
            if not comprehensions or (function.id in _CONSTANT_AGGREGATES and len(call.args) == 1):
                return None, ""
        return (f"a call of `{_snippet(function)}`, whose result may be mutable",
                f"only math functions, torch.finfo/torch.iinfo and the builtins "
                f"{', '.join(sorted(_CONSTANT_BUILTINS))} of constants may compute it; compute it inside the "
                "function instead")

    def shows_no_values(self, node: ast.expr, scopes) -> bool:
        """Whether text made of `node` (an f-string field, a `%` operand) cannot hold tensor values:
        a constant, a global (globals are constants) or tensor metadata such as `x.shape[0]`."""
        if isinstance(node, ast.Constant):
            return True
        if isinstance(node, ast.Tuple):
            return all(self.shows_no_values(element, scopes) for element in node.elts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):   # x.size(-1)
            return self.shows_no_values(node.operand, scopes)
        if isinstance(node, ast.Name):
            return node.id in self.globals and not any(node.id in scope for scope in scopes)
        if isinstance(node, ast.Subscript):
            return self.shows_no_values(node.value, scopes) or (
                isinstance(node.value, ast.Attribute) and node.value.attr in _METADATA_ATTRIBUTES)
        if isinstance(node, ast.Attribute):
            return node.attr in _METADATA_ATTRIBUTES
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            return node.func.attr in _METADATA_METHODS and all(
                self.shows_no_values(argument, scopes) for argument in node.args)
        return False

    def visit_function(self, node, scopes):
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                self.flag(decorator, "forbidden_statement", f"decorators are not allowed (`@{_snippet(decorator)}`)")
            self.check_binding(node.name, node, scopes, what="a function name")
        args = node.args
        inner = scopes + (_scope_locals(node),)
        positional = [*args.posonlyargs, *args.args]
        for arg, default in [*zip(positional[len(positional) - len(args.defaults):], args.defaults),
                             *zip(args.kwonlyargs, args.kw_defaults)]:
            if default is not None:  # evaluated once, when the function is defined, and shared by every call
                self.check_constant(default, f"the default value of `{arg.arg}`")
        outer_parts = [*args.defaults, *(d for d in args.kw_defaults if d is not None)]
        if isinstance(node, ast.FunctionDef):
            outer_parts += [*node.decorator_list, *([node.returns] if node.returns else [])]
            for annotation in [node.returns, *(a.annotation for a in [*positional, *args.kwonlyargs, args.vararg,
                                                                       args.kwarg] if a is not None)]:
                if annotation is not None:
                    self.mark_type_positions(annotation)
        children = [(part, scopes) for part in outer_parts]
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if arg is not None:
                self.check_binding(arg.arg, arg, inner, what="the parameter")
                if arg.annotation is not None:  # evaluated when the function is defined, outside it
                    children.append((arg.annotation, scopes))
        body = node.body if isinstance(node.body, list) else [node.body]
        return children + [(statement, inner) for statement in body]

    def visit_comprehension(self, node, scopes):
        inner_scopes = scopes + (_scope_locals(node),)
        children = []
        for index, generator in enumerate(node.generators):
            # The first iterable is evaluated in the enclosing scope, the rest inside the comprehension.
            iter_scopes = scopes if index == 0 else inner_scopes
            if generator.is_async:
                self.flag(generator.iter, "forbidden_statement", "`async for` is not allowed")
            self.check_target(generator.target, "assigning to")
            self.check_bounded(generator.iter, generator.iter)
            children.append((generator.iter, iter_scopes))
            children.append((generator.target, inner_scopes))
            children.extend((condition, inner_scopes) for condition in generator.ifs)
        elements = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        return children + [(element, inner_scopes) for element in elements]

    def check_target(self, target: ast.AST, verb: str):
        """Attribute targets anywhere in an assignment target (`a.b = `, `x, y.z = `) are monkeypatching."""
        stack = [target]
        while stack:
            part = stack.pop()
            if isinstance(part, ast.Attribute):
                self.flag(part, "attribute_assignment",
                          f"{verb} an attribute (`{_snippet(part)}`) is not allowed; compute a new value "
                          "instead (subscript assignment such as `y[mask] = 0` is fine)")
            elif isinstance(part, (ast.Tuple, ast.List)):
                stack.extend(part.elts)
            elif isinstance(part, ast.Starred):
                stack.append(part.value)
            # a Name, or a Subscript (`y[...] =` is fine; what is inside it is walked as usual)

    def check_binding(self, name: str, node: ast.AST, scopes, what: str):
        """A name being bound: a parameter, a function name, an exception variable or an assignment target."""
        if name.startswith("__"):
            self.flag(node, "dunder", f"{what} `{name}`: names starting with `__` are not allowed")
        elif name in PREIMPORTED:
            self.flag(node, "module_alias", f"{what} `{name}` rebinds the pre-imported `{name}`; "
                                            "choose another name")
        elif name in FORBIDDEN_BUILTINS and not scopes:
            self.flag(node, "forbidden_builtin", f"{what} `{name}` at the top level shadows a forbidden builtin; "
                                                 "choose another name")

    def check_entry_point(self):
        defs = [s for s in self.tree.body if isinstance(s, ast.FunctionDef) and s.name == ENTRY_POINT]
        if not defs:
            self.flag(self.tree, "missing_function",
                      f"the program must define a top-level function `def {ENTRY_POINT}(x):` "
                      "that takes and returns a torch.Tensor", line=10 ** 9, col=0)
            return
        function = defs[-1]
        args = function.args
        positional = [*args.posonlyargs, *args.args]
        required_positional = len(positional) - len(args.defaults)
        required_keyword = sum(default is None for default in args.kw_defaults)
        if not positional or required_positional > 1 or required_keyword:
            self.flag(function, "missing_function",
                      f"`{ENTRY_POINT}` must take exactly one required positional argument, the tensor x "
                      f"(further parameters need defaults), not `({_snippet(args)})`")

    # -- loops --

    def check_bounded(self, iterable: ast.AST, where: ast.AST):
        """Flag `unbounded_loop` unless a loop over `iterable` provably ends within MAX_LOOP_ITERATIONS.

        Each loop is bounded on its own: nested loops multiply, and a bounded loop can call a function
        that loops; time limits on the worker, not this check, stop programs that are merely slow.
        """
        count = self.iteration_bound(iterable)
        if count is None:
            # Flagged at the end of the iterable, so that what is wrong inside it is reported first.
            self.flag(where, "unbounded_loop",
                      f"cannot bound the loop over `{_snippet(iterable)}`: `for` loops and comprehensions must "
                      "iterate over range(...) with integer-literal arguments, a literal list or tuple (or a "
                      "top-level tuple constant assigned once), or "
                      f"enumerate/zip/reversed of those (at most {MAX_LOOP_ITERATIONS} iterations)",
                      line=getattr(iterable, "end_lineno", None), col=getattr(iterable, "end_col_offset", None))
        elif count > MAX_LOOP_ITERATIONS:
            self.flag(where, "unbounded_loop",
                      f"the loop over `{_snippet(iterable)}` runs {count} times, more than the "
                      f"{MAX_LOOP_ITERATIONS} a loop may; use tensor operations")

    def tuple_of_comprehension(self, node: ast.AST) -> bool:
        return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "tuple"
                and "tuple" not in self.bound_anywhere and len(node.args) == 1 and not node.keywords
                and isinstance(node.args[0], (ast.GeneratorExp, ast.ListComp)))

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

    # -- names and attributes --

    def visit_name(self, node: ast.Name, scopes):
        name = node.id
        if name.startswith("__"):
            self.flag(node, "dunder", f"the name `{name}` is not allowed (names starting with `__` reach "
                                      "Python's internals)")
        elif name in PREIMPORTED:
            if isinstance(node.ctx, ast.Load):
                self.flag(node, "module_alias",
                          f"`{name}` may only be used as the root of an attribute chain such as "
                          f"`{name}.{'sin' if name != 'F' else 'relu'}(x)`; it cannot be aliased, passed, "
                          "stored or returned")
            else:
                self.flag(node, "module_alias", f"rebinding the pre-imported `{name}` is not allowed")
        elif not isinstance(node.ctx, ast.Load):
            if name in FORBIDDEN_BUILTINS and not scopes:
                self.flag(node, "forbidden_builtin", f"the top level may not bind `{name}`, the name of a "
                                                     "forbidden builtin; choose another name")
        elif any(name in scope for scope in scopes) or name in self.globals:
            pass  # a local of an enclosing function, lambda or comprehension, or the program's own global
        elif name in FORBIDDEN_BUILTINS:
            self.flag(node, "forbidden_builtin", f"`{name}` is not available to candidates")
        elif name in PYTHON_ESCAPE_BUILTINS:
            what = ("applies a Python function element by element" if name in ("map", "filter") else
                    "turns values (tensors too) into text")
            self.flag(node, "python_escape", f"`{name}` is not available to candidates: it {what}, work the op "
                                             "counter and autograd cannot see; use tensor operations")
        elif name not in SAFE_BUILTINS:
            # Undefined here, the name would raise NameError (which a try/except can hide) -- but the
            # same source, written into a module file with other imports, would reach something real.
            hint = _NAME_HINTS.get(name) or ("a Python builtin that candidates do not get"
                                             if hasattr(builtins, name) else "")
            own = sorted(self.globals)
            own_text = f" ({', '.join(own[:8])}{', ...' if len(own) > 8 else ''})" if own else ""
            available = ", ".join(sorted(n for n in SAFE_BUILTINS if not n.startswith("_")))
            self.flag(node, "undefined_name",
                      f"the name `{name}` is not defined{f' ({hint})' if hint else ''}: a candidate may use the "
                      f"locals of its functions, its own top-level definitions{own_text}, torch, F and math, and "
                      f"the builtins {available}")

    def mark_type_positions(self, annotation: ast.expr):
        """Annotations name types (`x: torch.Tensor`, `tuple[torch.Tensor, ...]`): torch.Tensor may appear there."""
        called = {id(part.func) for part in ast.walk(annotation) if isinstance(part, ast.Call)}
        self.type_positions.update(id(part) for part in ast.walk(annotation)
                                   if isinstance(part, ast.Attribute) and id(part) not in called)

    def visit_attribute(self, node: ast.Attribute, scopes):
        base, links = _attribute_chain(node)
        if isinstance(base, ast.Name) and base.id in PREIMPORTED:
            self.check_module_chain(base.id, links)
            if base.id == "torch" and [link.attr for link in links] == ["Tensor"] \
                    and id(node) not in self.type_positions:
                self.flag_attribute(links[-1], "torch_forbidden",
                                    "`torch.Tensor` may only be named as a type -- in an annotation "
                                    "(`x: torch.Tensor`) or in `isinstance(obj, torch.Tensor)`: called, it makes a "
                                    "tensor of uninitialised memory (`torch.Tensor(3)`), and stored or passed it "
                                    "could be called later; create tensors with torch.zeros, torch.zeros_like, "
                                    "torch.full_like or torch.tensor")
            return []  # the base is the module itself, used legitimately as a chain root
        for link in links:
            attr = link.attr
            if attr.startswith("__"):
                self.flag_attribute(link, "dunder", f"the attribute `.{attr}` is not allowed "
                                                    "(attributes starting with `__` reach Python's internals)")
            elif attr.startswith("_"):
                self.flag_attribute(link, "dangerous_attribute",
                                    f"the private attribute `.{attr}` is not allowed")
            elif attr in DANGEROUS_ATTRIBUTES:
                code, reason = _attribute_refusal(attr)
                self.flag_attribute(link, code, f"the attribute `.{attr}` is not allowed: {reason} "
                                                "(deny-list: actmine.candidate.source.DANGEROUS_ATTRIBUTES)")
        return [(base, scopes)]

    def check_module_chain(self, root: str, links: list[ast.Attribute]):
        tree: dict | None = _ROOT_TREES[root]
        path = root
        for link in links:
            attr = link.attr
            if attr.startswith("__"):
                self.flag_attribute(link, "dunder", f"`{path}.{attr}`: attributes starting with `__` are not allowed")
                return
            if tree is None:
                self.flag_attribute(link, "torch_forbidden",
                                    f"`{path}.{attr}`: attributes of the allow-listed `{path}` are not allowed "
                                    f"(use `{path}` itself, or methods of tensors); {_ROOT_HINTS[root]}")
                return
            if attr not in tree:
                self.flag_attribute(link, "torch_forbidden",
                                    f"`{path}.{attr}` is not allowed: {_ROOT_HINTS[root]}")
                return
            tree = tree[attr]
            path = f"{path}.{attr}"
        if tree is not None:
            example = path
            while tree is not None:  # descend to an allow-listed leaf, for the message
                name = sorted(tree)[0]
                example, tree = f"{example}.{name}", tree[name]
            self.flag_attribute(links[-1], "module_alias",
                                f"`{path}` is a namespace: use its allow-listed functions directly, e.g. "
                                f"`{example}`; it cannot be aliased, passed, stored or returned")


def check_source(source: str, max_chars: int = DEFAULT_MAX_SOURCE_CHARS, filename: str | None = None) -> ast.Module:
    """Check `source` against the candidate policy without running it; return its parsed module.

    Raises `CandidateError` for the first violation in source order (see `REASON_CODES`); the
    message starts with "line N:" (prefixed by `filename` when one is given) and `line` is set.
    """
    where = f"{filename}, " if filename else ""
    if not isinstance(source, str):
        raise CandidateError("syntax_error", f"{where}candidate source must be text, got {type(source).__name__}")
    if len(source) > max_chars:
        raise CandidateError("too_long", f"{where}candidate source is {len(source):,} characters, over the limit "
                                         f"of {max_chars:,}; shorten it or raise the config key "
                                         "`candidate.max_source_chars`")
    try:
        tree = ast.parse(source, filename or "<candidate>", "exec")
    except SyntaxError as exc:
        line = exc.lineno
        at = f"line {line}: " if line else ""
        raise CandidateError("syntax_error", f"{where}{at}{exc.msg}", line) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc) or type(exc).__name__
        raise CandidateError("syntax_error", f"{where}cannot parse the candidate: {reason}") from None

    depth, deepest = ast_depth(tree, MAX_AST_DEPTH)
    if depth > MAX_AST_DEPTH:
        line = getattr(deepest, "lineno", None)
        at = f"line {line}: " if line else ""
        raise CandidateError("syntax_error", f"{where}{at}the program nests more than {MAX_AST_DEPTH} levels deep; "
                                             "split long expressions into several assignments", line)

    violations = _Checker(tree).run()
    if violations:
        line, _col, _seq, code, message = violations[0]
        if code == "missing_function" and line == 10 ** 9:
            raise CandidateError(code, f"{where}{message}")
        raise CandidateError(code, f"{where}line {line}: {message}", line)
    return tree


# ------------------------------------------------------------------------------------------------
# Compiling and loading
# ------------------------------------------------------------------------------------------------

#: math functions that take iterables of numbers: their arguments are read into tuples and checked.
_MATH_ITERABLE_FUNCTIONS = frozenset({"fsum", "prod", "dist", "sumprod"})


class _NumbersOnly:
    """A math function that refuses tensors: `math.sin(x[0])` or `map(math.sin, x)` would turn tensor
    elements into Python floats, computing where the op counter and autograd cannot see."""

    __slots__ = ("_function", "_name")

    def __init__(self, function: Callable, name: str):
        self._function = function
        self._name = name

    def __call__(self, *args, **kwargs):
        values = [*args, *kwargs.values()]
        if self._name in _MATH_ITERABLE_FUNCTIONS:
            args = tuple(tuple(a) if not isinstance(a, torch.Tensor) and hasattr(type(a), "__iter__") else a
                         for a in args)
            values = [*(v for a in args for v in (a if isinstance(a, tuple) else (a,))), *kwargs.values()]
        if any(isinstance(value, torch.Tensor) for value in values):
            raise TypeError(f"math.{self._name} takes Python numbers, not tensors: use torch.{self._name} or a "
                            "tensor method, whose work is counted and differentiable")
        return self._function(*args, **kwargs)

    def __repr__(self):
        return f"<math.{self._name} (numbers only)>"


def _numbers_only_math() -> types.ModuleType:
    """A `math` module whose functions refuse tensors (constants are the same floats)."""
    module = types.ModuleType("math", "math for candidates: its functions take Python numbers, not tensors")
    for name in MATH_ALLOWED:
        value = getattr(math, name)
        setattr(module, name, _NumbersOnly(value, name) if callable(value) else value)
    return module


def candidate_namespace() -> dict:
    """The globals a candidate program starts with: torch, F, a fresh numbers-only `math`
    (`_NumbersOnly`) and a copy of `SAFE_BUILTINS` -- fresh objects each time, so that one candidate
    cannot leave anything for the next."""
    return {"__builtins__": dict(SAFE_BUILTINS), "torch": torch, "F": F, "math": _numbers_only_math(),
            "__name__": "candidate"}


def compile_candidate(source: str, filename: str = "<candidate>",
                      max_chars: int = DEFAULT_MAX_SOURCE_CHARS) -> Callable[[torch.Tensor], torch.Tensor]:
    """Check `source` (`check_source`), run it in a restricted namespace and return its `activation_function`.

    This executes the candidate's top level: call it only inside a sandboxed worker process.
    """
    tree = check_source(source, max_chars, filename)
    try:
        code = compile(tree, filename, "exec")  # the checked tree is exactly what runs
    except SyntaxError as exc:
        raise CandidateError("syntax_error", f"{filename}, line {exc.lineno}: {exc.msg}", exc.lineno) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise CandidateError("syntax_error", f"{filename}: cannot compile the candidate: "
                                             f"{type(exc).__name__}: {exc}") from None
    namespace = candidate_namespace()
    try:
        exec(code, namespace)
    except Exception as exc:
        raise CandidateError("load_error", f"{filename}: running the module raised {type(exc).__name__}: {exc}") from None
    function = namespace.get(ENTRY_POINT)
    if not isinstance(function, types.FunctionType):
        raise CandidateError("missing_function", f"{filename} must define a function `{ENTRY_POINT}(x)` "
                                                 "that takes and returns a torch.Tensor")
    return function


def _read_text(path: Path, max_bytes: int, limit_hint: str) -> str:
    """The UTF-8 text of the `.py` file at `path`, refused as `not_python`, `not_found`,
    `too_long` (over `max_bytes`, before reading) or `unreadable`."""
    if path.suffix != ".py":
        raise CandidateError("not_python", f"{str(path)!r} is not a .py file; give a registry name or a .py file")
    if not path.is_file():
        raise CandidateError("not_found", f"candidate file {str(path)!r} does not exist")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise CandidateError("too_long", f"candidate file {str(path)!r} is {size:,} bytes, {limit_hint}")
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CandidateError("unreadable", f"cannot read {str(path)!r}: {exc}") from None


def read_program_file_at(path: str | Path):
    """The data of the generated program file (`actmine export` pack, `best_activation.py`) at `path`,
    read with `ast` only (`actmine.language.files.read_program_file`), never imported. Raises
    `CandidateError`: the file codes above, or the reader's `stale_program_file` (plain code from an
    older actmine: regenerate it) and `bad_program_file`."""
    # Imported here, not at the top: only file reading needs the generated-file format.
    from ..language.files import MAX_FILE_BYTES, ProgramFileError, read_program_file

    path = Path(path).expanduser()
    text = _read_text(path, MAX_FILE_BYTES, f"more than a program file may hold ({MAX_FILE_BYTES:,} bytes)")
    try:
        return read_program_file(text, what=str(path))
    except ProgramFileError as exc:
        raise CandidateError(exc.code, str(exc)) from None


def read_candidate_file(path: str | Path, max_chars: int = DEFAULT_MAX_SOURCE_CHARS) -> str:
    """Read a candidate `.py` file's source without compiling it (safe in the parent process).

    A generated program file with one program (a search's `best_activation.py`) gives that
    program's source, read as data; one with several (an export pack) must be named as
    `FILE.py:NAME` (`read_candidate_reference`). Any other file is a plain candidate: its source,
    normalised (`actmine.language.normalise`: namespace imports, annotations, a stateless module
    class, ...; see `_candidate_in_module_file`), left for the policy to check. Plain
    files too large to hold `max_chars` characters (4 UTF-8 bytes each at most) are refused as
    `too_long` (generated files may be larger: their lineage and rationales are data).
    """
    from ..language.files import FORMAT_NAME, MAX_FILE_BYTES, ProgramFileError, read_program_file

    path = Path(path)
    limit = f"too long for the limit of {max_chars:,} characters; shorten it or raise the config key " \
            "`candidate.max_source_chars`"
    text = _read_text(path, max(MAX_FILE_BYTES, 4 * max_chars), limit)
    if FORMAT_NAME in text:  # perhaps a generated program file: read its data, never its code
        try:
            program_file = read_program_file(text, what=str(path))
        except ProgramFileError as exc:
            if exc.code != "stale_program_file":   # stale = plain code: read below like any candidate file
                raise CandidateError(exc.code, str(exc)) from None
        else:
            if len(program_file.programs) != 1:
                raise CandidateError("unknown_program",
                                     f"{str(path)!r} holds {len(program_file.programs)} programs; name one as "
                                     f"{path}:NAME with NAME one of {', '.join(program_file.names)}")
            return program_file.programs[0].source
    if len(text.encode("utf-8")) > 4 * max_chars:
        raise CandidateError("too_long", f"candidate file {str(path)!r} is {len(text.encode('utf-8')):,} bytes, {limit}")
    return _candidate_in_module_file(text)


def read_candidate_reference(text: str, max_chars: int = DEFAULT_MAX_SOURCE_CHARS) -> tuple[str, str]:
    """`(name, source)` of a program given as `FILE.py` (`read_candidate_file`; name: the file's
    stem) or `FILE.py:NAME` (program NAME of a generated program file such as an export pack,
    read as data; name: NAME). Never compiles or runs anything: the source is untrusted, for the
    policy and a sandboxed worker. Raises `CandidateError` (`not_found`, `stale_program_file` for
    a pack written by an older actmine, `unknown_program`, ...)."""
    from ..language.files import ProgramFileError, split_program_reference

    reference = split_program_reference(text)
    if reference is None:
        return Path(text).stem, read_candidate_file(text, max_chars)
    path, name = reference
    program_file = read_program_file_at(path)
    try:
        entry = program_file.get(name)
    except ProgramFileError as exc:
        raise CandidateError(exc.code, f"{path}: {exc}") from None
    return entry.name, entry.source


def _candidate_in_module_file(text: str) -> str:
    """The candidate in a plain Python file: the normalised program (`actmine.language.normalise`),
    which drops the namespace imports and turns a stateless `nn.Module` wrapper into a function.
    When normalising changed something (the file is a module, such as a `best_activation.py` of an
    older actmine), the module docstring goes too: there it holds the search's lineage, which can
    outgrow the size limit. Everything else stays for the policy to check."""
    normalised = normalise(text)
    source = normalised.source
    if not normalised.changes:
        return source
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return source
    first = tree.body[0] if tree.body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str) \
            and len(tree.body) > 1:
        lines = source.splitlines(keepends=True)
        source = "".join(lines[first.end_lineno:]).lstrip("\n")
    return source


def load_candidate_file(path: str | Path,
                        max_chars: int = DEFAULT_MAX_SOURCE_CHARS) -> Callable[[torch.Tensor], torch.Tensor]:
    """Read, check and compile a `.py` file that defines `activation_function(x)` (sandboxed workers only)."""
    return compile_candidate(read_candidate_file(path, max_chars), str(path), max_chars)
