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

# Also keeps candidates' annotations unevaluated: compile() inherits this module's future flags.
from __future__ import annotations

import ast
import functools
import math
import types
import weakref
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from actmine.language.normalise import normalise
from actmine.language.program import ast_depth

# The policy's parts; every public name (and the few private ones tests read) stays importable from here.
from .load_time_bounds import _snippet as _snippet
from .policy_checker import _Checker
from .policy_lists import (
    _ROOT_TREES as _ROOT_TREES,
    DANGEROUS_ATTRIBUTES as DANGEROUS_ATTRIBUTES,
    DEFAULT_MAX_SOURCE_CHARS as DEFAULT_MAX_SOURCE_CHARS,
    ENTRY_POINT as ENTRY_POINT,
    F_ALLOWED as F_ALLOWED,
    FORBIDDEN_BUILTINS as FORBIDDEN_BUILTINS,
    MATH_ALLOWED as MATH_ALLOWED,
    MAX_AST_DEPTH as MAX_AST_DEPTH,
    MAX_LOOP_ITERATIONS as MAX_LOOP_ITERATIONS,
    PREIMPORTED as PREIMPORTED,
    PYTHON_ESCAPE_BUILTINS as PYTHON_ESCAPE_BUILTINS,
    PYTHON_VALUE_ATTRIBUTES as PYTHON_VALUE_ATTRIBUTES,
    REASON_CODES as REASON_CODES,
    RNG_METHODS as RNG_METHODS,
    SAFE_BUILTINS as SAFE_BUILTINS,
    TORCH_ALLOWED as TORCH_ALLOWED,
    TORCH_NAMESPACES as TORCH_NAMESPACES,
    TORCH_SPECIAL_ALLOWED as TORCH_SPECIAL_ALLOWED,
    CandidateError as CandidateError,
    _import_guard as _import_guard,
    _namespaces as _namespaces,
)


def check_source(source: str, max_chars: int = DEFAULT_MAX_SOURCE_CHARS, filename: str | None = None) -> ast.Module:
    """Check `source` against the candidate policy without running it; return its parsed module.

    Raises `CandidateError` for the first violation in source order (see `REASON_CODES`); the
    message starts with "line N:" (prefixed by `filename` when one is given) and `line` is set.
    """
    where = f"{filename}, " if filename else ""
    if not isinstance(source, str):
        raise CandidateError("syntax_error", f"{where}candidate source must be text, got {type(source).__name__}")
    if len(source) > max_chars:
        raise CandidateError(
            "too_long",
            f"{where}candidate source is {len(source):,} characters, over the limit "
            f"of {max_chars:,}; shorten it or raise the config key "
            "`candidate.max_source_chars`",
        )
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
        raise CandidateError(
            "syntax_error",
            f"{where}{at}the program nests more than {MAX_AST_DEPTH} levels deep; "
            "split long expressions into several assignments",
            line,
        )

    violations = _Checker(tree).run()
    if violations:
        line, _col, _seq, code, message = violations[0]
        if code == "missing_function" and line == 10**9:
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
            args = tuple(
                tuple(a) if not isinstance(a, torch.Tensor) and hasattr(type(a), "__iter__") else a for a in args
            )
            values = [*(v for a in args for v in (a if isinstance(a, tuple) else (a,))), *kwargs.values()]
        if any(isinstance(value, torch.Tensor) for value in values):
            raise TypeError(
                f"math.{self._name} takes Python numbers, not tensors: use torch.{self._name} or a "
                "tensor method, whose work is counted and differentiable"
            )
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
    return {
        "__builtins__": dict(SAFE_BUILTINS),
        "torch": torch,
        "F": F,
        "math": _numbers_only_math(),
        "__name__": "candidate",
    }


def compile_candidate(
    source: str, filename: str = "<candidate>", max_chars: int = DEFAULT_MAX_SOURCE_CHARS
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Check `source` (`check_source`), run it in a restricted namespace and return its `activation_function`.

    This executes the candidate's top level: call it only inside a sandboxed worker process.
    """
    tree = check_source(source, max_chars, filename)
    try:
        code = compile(tree, filename, "exec")  # the checked tree is exactly what runs
    except SyntaxError as exc:
        raise CandidateError("syntax_error", f"{filename}, line {exc.lineno}: {exc.msg}", exc.lineno) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise CandidateError(
            "syntax_error", f"{filename}: cannot compile the candidate: {type(exc).__name__}: {exc}"
        ) from None
    namespace = candidate_namespace()
    try:
        exec(code, namespace)
    except Exception as exc:
        raise CandidateError(
            "load_error", f"{filename}: running the module raised {type(exc).__name__}: {exc}"
        ) from None
    function = namespace.get(ENTRY_POINT)
    if not isinstance(function, types.FunctionType):
        raise CandidateError(
            "missing_function",
            f"{filename} must define a function `{ENTRY_POINT}(x)` that takes and returns a torch.Tensor",
        )
    _COMPILED_SOURCES[function] = source
    return function


# The checked text of every function `compile_candidate` returned, kept beside it (weakly) rather than
# on it: a program's function stays marked as untrusted code wherever it travels in this process.
_COMPILED_SOURCES: "weakref.WeakKeyDictionary[types.FunctionType, str]" = weakref.WeakKeyDictionary()


def program_source(activation: object) -> str | None:
    """The source of a candidate program compiled in this process, or None for anything else.

    `activation` may be the function `compile_candidate` returned, a module or module class built
    on it (a generated file's `ProgramModule`: `actmine.activations.get("pack.py:NAME")`,
    `load_pack`, `Run.best_module()`, `best_activation.activation_function`), or an
    `ActivationFromCallable` or `functools.partial` wrapping one of those. Whatever would *train*
    such an activation sends this text to a sandboxed worker instead (`actmine.targets`): compiling
    it here went through the policy and the restricted namespace, but training it here would run it
    without a worker's limits."""
    for _ in range(4):  # a wrapper of a wrapper, at most a few levels
        if isinstance(activation, types.FunctionType):
            return _COMPILED_SOURCES.get(activation)
        if isinstance(activation, functools.partial):
            activation = activation.func
        elif isinstance(activation, torch.nn.Module):
            # a ProgramModule's class holds the function; ActivationFromCallable holds it as `fn`
            activation = getattr(type(activation), "function", None) or getattr(activation, "fn", None)
        elif isinstance(activation, type):
            activation = getattr(activation, "function", None)
        else:
            return None
    return None


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
    limit = (
        f"too long for the limit of {max_chars:,} characters; shorten it or raise the config key "
        "`candidate.max_source_chars`"
    )
    text = _read_text(path, max(MAX_FILE_BYTES, 4 * max_chars), limit)
    if FORMAT_NAME in text:  # perhaps a generated program file: read its data, never its code
        try:
            program_file = read_program_file(text, what=str(path))
        except ProgramFileError as exc:
            if exc.code != "stale_program_file":  # stale = plain code: read below like any candidate file
                raise CandidateError(exc.code, str(exc)) from None
        else:
            if len(program_file.programs) != 1:
                raise CandidateError(
                    "unknown_program",
                    f"{str(path)!r} holds {len(program_file.programs)} programs; name one as "
                    f"{path}:NAME with NAME one of {', '.join(program_file.names)}",
                )
            return program_file.programs[0].source
    if len(text.encode("utf-8")) > 4 * max_chars:
        raise CandidateError(
            "too_long", f"candidate file {str(path)!r} is {len(text.encode('utf-8')):,} bytes, {limit}"
        )
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
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
        and len(tree.body) > 1
    ):
        lines = source.splitlines(keepends=True)
        source = "".join(lines[first.end_lineno :]).lstrip("\n")
    return source


def load_candidate_file(
    path: str | Path, max_chars: int = DEFAULT_MAX_SOURCE_CHARS
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Read, check and compile a `.py` file that defines `activation_function(x)` (sandboxed workers only)."""
    return compile_candidate(read_candidate_file(path, max_chars), str(path), max_chars)
