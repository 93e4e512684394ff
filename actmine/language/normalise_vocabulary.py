"""What the normaliser's rules know: the pre-imported names, the modules and decorators they may
drop, the calls test code makes, numpy's constants, and the language's own spelling of a dotted path.

Everything here is read from the language table (`actmine.language.ops`) or written once as a
constant, and nothing here looks at a program: the rules (`normalise_rules.py`) and the class
conversion (`normalise_classes.py`) ask these questions of every program they rewrite.
`ACTIVATION_MODULES` is public (re-exported by `actmine.language.normalise`).
"""

from __future__ import annotations

import ast
import inspect

from . import ops as _ops

#: The names a candidate starts with, and the module each stands for.
_PREIMPORTED = {"torch": "torch", "F": "torch.nn.functional", "math": "math"}
#: Modules whose imports may be dropped once every name they bind is rewritten or unused.
_KNOWN_MODULES = frozenset({"torch", "math", "numpy", "functools", "typing", "typing_extensions"})

#: Decorators (dotted paths after resolving the imports) that return the function itself or one that
#: computes the same values; `_TRANSPARENT_DECORATOR_CALLS` may also be called with constant arguments.
_TRANSPARENT_DECORATORS = frozenset(
    {
        "torch.jit.script",
        "torch.jit.ignore",
        "torch.jit.unused",
        "torch.jit.export",
        "torch.compile",
        "functools.lru_cache",
        "functools.cache",
        "typing.final",
        "typing.no_type_check",
        "typing_extensions.final",
    }
)
_TRANSPARENT_DECORATOR_CALLS = frozenset({"torch.compile", "functools.lru_cache", "torch.jit.ignore"})

#: torch functions outside the language that test code calls (`x = torch.randn(10)`, `torch.manual_seed(0)`):
#: they change no state a candidate can see (a candidate cannot draw random numbers).
_TEST_CALLS = frozenset(
    f"torch.{name}"
    for name in (
        "randn rand randint randn_like rand_like randperm normal linspace logspace arange tensor as_tensor zeros "
        "ones full empty zeros_like ones_like full_like eye allclose isclose equal manual_seed".split()
    )
)

#: numpy's constants (plain Python floats) and their spelling in the language.
_NUMPY_CONSTANTS: dict[str, ast.expr | str] = {
    "numpy.pi": "math.pi",
    "numpy.e": "math.e",
    "numpy.inf": "math.inf",
    "numpy.nan": "math.nan",
    "numpy.euler_gamma": "0.5772156649015329",  # float(numpy.euler_gamma); math has no name for it
}

_SPELLINGS = frozenset(_ops.OP_BY_SPELLING) | frozenset(_ops.CONSTANT_BY_SPELLING)


def _activation_modules() -> dict[str, tuple[str, tuple[str, ...]]]:
    """`torch.nn.<Class>` -> (`F.<name>`, the constructor's parameters in order) for the stateless
    activation modules whose functional twin is in the language with the same parameters.

    Derived, not listed: every `nn.Module` class of `torch.nn.modules.activation` whose lower-case
    name is an `F.` spelling of the table without underscores (`LeakyReLU` ↔ `F.leaky_relu`), and
    whose constructor parameters are all keywords of that op (or `inplace`, which changes only the
    input). Where Python can read both signatures, the defaults must agree too (the builtins among
    the functionals, such as `F.gelu`, have none to read: there the table's keywords decide).
    """
    torch = _ops.ROOTS["torch"]
    functional = _ops.ROOTS["F"]
    activation = getattr(getattr(torch.nn, "modules", None), "activation", None)
    if activation is None:
        return {}
    names = {name.replace("_", ""): name for name in _ops.allowed_names("F")}
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for class_name in dir(activation):
        cls = getattr(activation, class_name)
        twin = names.get(class_name.lower())
        if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module) and twin):
            continue
        try:
            parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
        except (TypeError, ValueError):
            continue
        if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters):
            parameters = []  # `Tanh(*args, **kwargs)`: takes nothing that matters
        keywords = _ops.keywords_of(f"F.{twin}") | {"inplace"}
        if any(p.name not in keywords for p in parameters):
            continue  # PReLU (learned weight), Hardtanh's deprecated min_value/max_value
        try:
            functional_defaults = {
                p.name: p.default for p in inspect.signature(getattr(functional, twin)).parameters.values()
            }
        except (TypeError, ValueError):
            functional_defaults = {}
        if any(
            p.name in functional_defaults
            and p.default is not inspect.Parameter.empty
            and functional_defaults[p.name] != p.default
            for p in parameters
        ):
            continue
        out[f"torch.nn.{class_name}"] = (f"F.{twin}", tuple(p.name for p in parameters))
    return out


#: The stateless activation modules of torch.nn and their functional twins (`_activation_modules`).
ACTIVATION_MODULES: dict[str, tuple[str, tuple[str, ...]]] = _activation_modules()


def _spell(path: str) -> ast.expr | None:
    """The language's own spelling of the object at dotted `path` (an expression), or None."""
    if path.startswith("torch.nn.functional."):
        path = "F." + path[len("torch.nn.functional.") :]
    elif path in _NUMPY_CONSTANTS:
        path = _NUMPY_CONSTANTS[path]
    if path not in _SPELLINGS and not path[0].isdigit():
        return None
    return _fresh(path)


def _fresh(text: str) -> ast.expr:
    """The expression `text` as new nodes, without positions (they have no place in the source)."""
    node = ast.parse(text, mode="eval").body
    for part in ast.walk(node):
        for attribute in ("lineno", "col_offset", "end_lineno", "end_col_offset"):
            if hasattr(part, attribute):
                delattr(part, attribute)
    return node
