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
   top level, and a top-level `def activation_function(x)`.

2. **The restricted runtime namespace** (`candidate_namespace`). The compiled code runs with
   `SAFE_BUILTINS` as its `__builtins__`: a few dozen harmless builtins and exception types, no
   `open`, `getattr`, `eval`, `type`, ... -- so even code the static check missed cannot name
   them -- and an `__import__` that imports nothing (torch's C++ code needs one to exist).

This is defence in depth, **not** the only barrier: Python cannot be sandboxed from inside itself,
and pure tensor math can still exhaust memory or time. Candidates are compiled and run only in the
sandboxed worker processes (resource limits, no network, killed on timeout); `compile_candidate` is
what those workers call. The parent process only ever reads source (`read_candidate_file`) and
checks it (`check_source`).

Choices the policy makes (documented here because they are judgement calls):

- a single-underscore attribute on `torch`/`F`/`math` (`torch._C`) is `torch_forbidden` (it is not
  on the allow-list); on any other object (`x._base`) it is `dangerous_attribute`; any name or
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
  would overflow its stack on them anyway).
"""

from __future__ import annotations

import ast
import builtins
import math
import sys
import types
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

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
    "load_error": "running the module's top level raised an exception",
    "not_python": "the candidate file is not a .py file",
    "not_found": "the candidate file does not exist",
    "unreadable": "the candidate file cannot be read as UTF-8 text",
}

# ------------------------------------------------------------------------------------------------
# Allow-lists (pure tensor math) and deny-lists
# ------------------------------------------------------------------------------------------------

#: `torch.<name>` a candidate may use: pure tensor math, constructors, dtypes and constants.
#: No randomness (the global RNG is shared state), no I/O, no global settings, no autograd control.
TORCH_ALLOWED: frozenset[str] = frozenset("""
    abs absolute neg negative sin cos tan asin acos atan atan2 arcsin arccos arctan arctan2
    sinh cosh tanh asinh acosh atanh arcsinh arccosh arctanh
    exp exp2 expm1 log log2 log10 log1p sqrt rsqrt square pow float_power reciprocal
    sign sgn signbit floor ceil round trunc frac fix fmod remainder
    clamp clip clamp_min clamp_max maximum minimum fmax fmin max min where
    erf erfc erfinv sigmoid logit relu sinc hypot lerp logaddexp logaddexp2 heaviside nan_to_num
    isfinite isnan isinf isposinf isneginf copysign deg2rad rad2deg xlogy i0 lgamma digamma
    polygamma mvlgamma softmax log_softmax
    add sub subtract mul multiply div divide true_divide floor_divide addcmul addcdiv
    cumsum cumprod cummax cummin logcumsumexp sum nansum mean nanmean std var std_mean var_mean
    prod amax amin aminmax argmax argmin logsumexp norm median quantile sort argsort topk kthvalue
    eq ne lt le gt ge equal isclose allclose logical_and logical_or logical_not logical_xor
    any all count_nonzero
    roll flip fliplr flipud cat concat concatenate stack hstack vstack reshape flatten unflatten
    unsqueeze squeeze transpose swapaxes swapdims permute movedim chunk split narrow gather
    index_select masked_fill repeat_interleave tile broadcast_to broadcast_tensors expand_copy
    clone detach tril triu diff gradient trapezoid matmul mm bmm outer dot inner einsum
    zeros_like ones_like full_like empty_like tensor as_tensor zeros ones full arange linspace
    logspace eye
    pi e inf nan
    float32 float64 float16 bfloat16 int64 int32 int16 int8 uint8 bool float double half long int
    Tensor is_tensor is_floating_point is_complex numel finfo iinfo result_type promote_types
""".split())

#: `torch.special.<name>`: special functions, all pure.
TORCH_SPECIAL_ALLOWED: frozenset[str] = frozenset("""
    airy_ai bessel_j0 bessel_j1 bessel_y0 bessel_y1 digamma entr erf erfc erfcx erfinv exp2 expit
    expm1 gammainc gammaincc gammaln i0 i0e i1 i1e log1p log_ndtr log_softmax logit logsumexp
    modified_bessel_i0 modified_bessel_i1 modified_bessel_k0 modified_bessel_k1 multigammaln ndtr
    ndtri polygamma psi round scaled_modified_bessel_k0 scaled_modified_bessel_k1 sinc softmax
    spherical_bessel_j0 xlog1py xlogy zeta
""".split())

#: `F.<name>` and `torch.nn.functional.<name>`: deterministic activations and normalisations.
#: Not dropout, rrelu or gumbel_softmax (random), not batch_norm (updates running statistics).
F_ALLOWED: frozenset[str] = frozenset("""
    relu relu6 gelu silu mish softplus elu selu celu leaky_relu hardtanh hardswish hardsigmoid
    hardshrink softshrink tanhshrink softsign sigmoid tanh logsigmoid softmax log_softmax softmin
    glu normalize layer_norm rms_norm group_norm threshold prelu pad cosine_similarity
""".split())

#: `math.<name>`: every public name of the math module is a pure function or a constant.
MATH_ALLOWED: frozenset[str] = frozenset(name for name in dir(math) if not name.startswith("_"))

#: The sub-namespaces of torch a candidate may reach, and their allow-lists.
TORCH_NAMESPACES: dict[str, frozenset[str] | dict] = {
    "special": TORCH_SPECIAL_ALLOWED,
    "nn": {"functional": F_ALLOWED},
    "fft": frozenset({"fft", "rfft", "irfft", "ifft"}),
    "linalg": frozenset({"norm", "vector_norm"}),
}


def _tree(allowed: frozenset[str] | dict) -> dict:
    """An allow-list as a tree: name -> None (a leaf) or a sub-tree (a namespace)."""
    if isinstance(allowed, dict):
        return {name: _tree(sub) for name, sub in allowed.items()}
    return dict.fromkeys(allowed)


_ROOT_TREES: dict[str, dict] = {
    "torch": {**dict.fromkeys(TORCH_ALLOWED), **_tree(TORCH_NAMESPACES)},
    "F": dict.fromkeys(F_ALLOWED),
    "math": dict.fromkeys(MATH_ALLOWED),
}
_ROOT_HINTS = {
    "torch": "torch offers only pure tensor math (allow-lists: actmine.candidate.source.TORCH_ALLOWED, "
             "and TORCH_NAMESPACES for torch.special, torch.nn.functional, torch.fft, torch.linalg)",
    "F": "F offers only deterministic activations and normalisations "
         "(allow-list: actmine.candidate.source.F_ALLOWED)",
    "math": "math offers its public functions and constants (actmine.candidate.source.MATH_ALLOWED)",
}
PREIMPORTED: frozenset[str] = frozenset(_ROOT_TREES)

#: Builtin names a candidate may not use: they open files, run code, reach attributes by name,
#: reach classes and their subclasses, or wait for a user.
FORBIDDEN_BUILTINS: frozenset[str] = frozenset("""
    open exec eval compile globals locals vars getattr setattr delattr hasattr breakpoint input help
    memoryview type object super classmethod staticmethod property exit quit
    dir iter aiter anext
""".split())

#: Attributes a candidate may not read on any object: autograd and memory state, device moves,
#: element-wise Python callbacks, frame and code objects, and str.format (which reaches attributes
#: through its format string). Anything starting with `_` is refused too.
DANGEROUS_ATTRIBUTES: frozenset[str] = frozenset("""
    register_hook register_post_accumulate_grad_hook backward retain_grad requires_grad_ grad grad_fn
    data share_memory_ storage untyped_storage typed_storage data_ptr numpy apply_ map_ map2_ cuda
    pin_memory set_ resize_ resize_as_ resize_as_sparse_ sparse_resize_ sparse_resize_and_clear_
    record_stream as_subclass module_load const_data_ptr storage_type xpu ipu mtia hpu mps
    gi_frame gi_code gi_yieldfrom cr_frame cr_code cr_await ag_frame ag_code
    f_globals f_locals f_back f_builtins f_code f_trace tb_frame tb_next
    co_code co_consts co_names func_globals func_code func_closure im_func im_self mro
    format format_map
""".split())


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
    sorted reversed any all isinstance map filter print slice complex str repr
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

def _snippet(node: ast.AST, limit: int = 60) -> str:
    try:
        text = ast.unparse(node)
    except (RecursionError, ValueError, TypeError, AttributeError):
        return type(node).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


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

    An under-approximation is safe (it only refuses more): bindings made by walrus inside a nested
    comprehension are not counted.
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
        elif isinstance(child, (ast.Lambda, *_COMPREHENSIONS)):
            continue
        elif isinstance(child, ast.ExceptHandler) and child.name:
            names.add(child.name)
        stack.extend(ast.iter_child_nodes(child))
    return frozenset(names)


def _all_bound_names(tree: ast.Module) -> frozenset[str]:
    """Every name the program binds anywhere (assignments, parameters, defs, except ... as)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
    return frozenset(names)


def _max_depth(tree: ast.AST) -> tuple[int, ast.AST | None]:
    """The depth of the deepest node (iteratively: the tree may be too deep to recurse over)."""
    deepest, where = 0, None
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > deepest:
            deepest, where = depth, node
            if depth > MAX_AST_DEPTH:
                break
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest, where


def _danger_reason(attr: str) -> str:
    if attr in ("format", "format_map"):
        return "str.format reads attributes named in its format string; use f-strings or str()"
    if attr[:3] in ("gi_", "cr_", "ag_", "tb_", "co_") or attr[:2] == "f_" or attr in (
            "func_globals", "func_code", "func_closure", "im_func", "im_self", "mro"):
        return "it reaches frames, code objects, globals or classes"
    return "it changes autograd, memory or device state, or exposes raw memory"


def _attribute_chain(node: ast.Attribute) -> tuple[ast.AST, list[ast.Attribute]]:
    """`a.b.c` -> (the base expression `a`, [the Attribute nodes for .b and .c, in source order])."""
    links = []
    while isinstance(node, ast.Attribute):
        links.append(node)
        node = node.value
    return node, links[::-1]


class _Checker:
    """Walks a module iteratively (candidates may nest deeply) and records every violation.

    Each stack entry carries the scope chain: the locals of the enclosing functions, lambdas and
    comprehensions, innermost last (the module scope is not in it).
    """

    def __init__(self, tree: ast.Module):
        self.tree = tree
        self.violations: list[tuple[int, int, int, str, str]] = []
        self.bound_anywhere = _all_bound_names(tree)

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
        return sorted(self.violations)

    def visit(self, node, scopes) -> list[tuple[ast.AST, tuple]]:
        """Check one node; return its children to walk, each with its scope chain."""
        default = [(child, scopes) for child in ast.iter_child_nodes(node)]

        if isinstance(node, (ast.Import, ast.ImportFrom)):
            self.flag(node, "import", "import statements are not allowed "
                                      "(candidates get torch, F and math pre-imported)")
            return []
        if isinstance(node, ast.ClassDef):
            self.flag(node, "forbidden_statement", "class definitions are not allowed; write functions")
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

        if isinstance(node, ast.Attribute):
            return self.visit_attribute(node, scopes)

        return default

    # -- statements and scopes --

    def check_top_level(self, statement: ast.stmt):
        allowed = (ast.FunctionDef, ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Delete, ast.Pass)
        if isinstance(statement, allowed):
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

    def visit_function(self, node, scopes):
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                self.flag(decorator, "forbidden_statement", f"decorators are not allowed (`@{_snippet(decorator)}`)")
            self.check_binding(node.name, node, scopes, what="a function name")
        args = node.args
        inner = scopes + (_scope_locals(node),)
        outer_parts = [*args.defaults, *(d for d in args.kw_defaults if d is not None)]
        if isinstance(node, ast.FunctionDef):
            outer_parts += [*node.decorator_list, *([node.returns] if node.returns else [])]
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
                      "iterate over range(...) with integer-literal arguments, a literal list or tuple, or "
                      f"enumerate/zip/reversed of those (at most {MAX_LOOP_ITERATIONS} iterations)",
                      line=getattr(iterable, "end_lineno", None), col=getattr(iterable, "end_col_offset", None))
        elif count > MAX_LOOP_ITERATIONS:
            self.flag(where, "unbounded_loop",
                      f"the loop over `{_snippet(iterable)}` runs {count} times, more than the "
                      f"{MAX_LOOP_ITERATIONS} a loop may; use tensor operations")

    def iteration_bound(self, node: ast.AST) -> int | None:
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
            return self.iteration_bound(node.args[0]) if len(node.args) == 1 and not node.keywords else None
        if name == "enumerate":  # enumerate(iterable[, start])
            if not 1 <= len(node.args) <= 2 or any(k.arg != "start" for k in node.keywords):
                return None
            return self.iteration_bound(node.args[0])
        # zip: as long as its shortest argument; take the longest to stay safe.
        if not node.args or any(k.arg != "strict" for k in node.keywords):
            return None
        counts = [self.iteration_bound(arg) for arg in node.args]
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
        elif name in FORBIDDEN_BUILTINS:
            if not scopes:
                if isinstance(node.ctx, ast.Load):
                    self.flag(node, "forbidden_builtin", f"`{name}` is not available to candidates")
                else:
                    self.flag(node, "forbidden_builtin", f"the top level may not bind `{name}`, the name of a "
                                                         "forbidden builtin; choose another name")
            elif isinstance(node.ctx, ast.Load) and not any(name in scope for scope in scopes):
                self.flag(node, "forbidden_builtin", f"`{name}` is not available to candidates")

    def visit_attribute(self, node: ast.Attribute, scopes):
        base, links = _attribute_chain(node)
        if isinstance(base, ast.Name) and base.id in PREIMPORTED:
            self.check_module_chain(base.id, links)
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
                self.flag_attribute(link, "dangerous_attribute",
                                    f"the attribute `.{attr}` is not allowed: {_danger_reason(attr)} "
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

    depth, deepest = _max_depth(tree)
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

def candidate_namespace() -> dict:
    """The globals a candidate program starts with: the three modules and a copy of `SAFE_BUILTINS`."""
    return {"__builtins__": dict(SAFE_BUILTINS), "torch": torch, "F": F, "math": math, "__name__": "candidate"}


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


def read_candidate_file(path: str | Path, max_chars: int = DEFAULT_MAX_SOURCE_CHARS) -> str:
    """Read a candidate `.py` file's source without compiling it (safe in the parent process).

    Files too large to hold `max_chars` characters (4 UTF-8 bytes each at most) are refused as
    `too_long` before they are read.
    """
    path = Path(path)
    if path.suffix != ".py":
        raise CandidateError("not_python", f"{str(path)!r} is not a .py file; give a registry name or a .py file")
    if not path.is_file():
        raise CandidateError("not_found", f"candidate file {str(path)!r} does not exist")
    try:
        size = path.stat().st_size
        if size > 4 * max_chars:
            raise CandidateError("too_long", f"candidate file {str(path)!r} is {size:,} bytes, too long for the limit "
                                             f"of {max_chars:,} characters; shorten it or raise the config key "
                                             "`candidate.max_source_chars`")
        return candidate_from_module(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CandidateError("unreadable", f"cannot read {str(path)!r}: {exc}") from None


# Imports that only bind what the candidate namespace holds anyway (or `nn`, for module classes).
_NAMESPACE_IMPORTS = {("torch", None), ("torch", "torch"), ("math", None), ("math", "math"),
                      ("torch.nn.functional", "F"), ("torch.nn", "nn")}


def candidate_from_module(source: str) -> str:
    """The candidate inside a plain PyTorch module file, such as a search's `best_activation.py`.

    Such a file imports torch, math and F and wraps `activation_function` in an `nn.Module` class.
    When the source parses, has top-level imports or classes and defines `activation_function`,
    its docstring, the imports of `torch`, `math`, `torch.nn.functional as F` and `torch.nn as nn` (and
    `from torch import nn` / `from torch.nn import functional as F`) and the class definitions are
    dropped; everything else is kept as written and still goes through `check_source`, so any
    other import is refused with its reason. Other sources are returned unchanged.
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return source
    defines = any(isinstance(n, ast.FunctionDef) and n.name == ENTRY_POINT for n in tree.body)

    def namespace_import(node: ast.stmt) -> bool:
        if isinstance(node, ast.Import):
            return all((a.name, a.asname) in _NAMESPACE_IMPORTS for a in node.names)
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            return all((f"{node.module}.{a.name}", a.asname or a.name) in _NAMESPACE_IMPORTS for a in node.names)
        return False

    drop = [n for n in tree.body if namespace_import(n) or isinstance(n, ast.ClassDef)]
    if not defines or not drop:
        return source
    first = tree.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        drop.append(first)   # the module's docstring (a search's lineage can outgrow the size limit)
    lines = source.splitlines(keepends=True)
    dropped = {i for n in drop for i in range((n.decorator_list[0].lineno if getattr(n, "decorator_list", None)
                                                else n.lineno), (n.end_lineno or n.lineno) + 1)}
    return "".join(line for i, line in enumerate(lines, 1) if i not in dropped).strip("\n") + "\n"


def load_candidate_file(path: str | Path,
                        max_chars: int = DEFAULT_MAX_SOURCE_CHARS) -> Callable[[torch.Tensor], torch.Tensor]:
    """Read, check and compile a `.py` file that defines `activation_function(x)` (sandboxed workers only)."""
    return compile_candidate(read_candidate_file(path, max_chars), str(path), max_chars)
