"""Name-or-callable registry for activation functions.

Modelled on timm's ``get_act_layer``: configuration files, the command line
and the search loop all refer to activations by *name* (``"gelu_sine"``), while
library code and tests may pass a callable or a ready-made module.  :func:`get`
turns any of those into an ``nn.Module`` so callers never branch on the type.

Every registered activation also carries metadata (:class:`ActivationInfo`):
a human-readable formula, its source, and whether it is *pointwise*.  The last
flag matters to the search: a pointwise activation can be plotted, compared
and simplified as a scalar function ``R -> R``, while a batch-dependent one
(e.g. ``turbulent``, which normalises by statistics of the whole tensor) cannot.

Example::

    >>> from actmine import activations
    >>> act = activations.get("GELU-Sine", alpha=0.3)
    >>> act
    GELUSine(alpha=0.3, approximate='tanh')
    >>> activations.info("swish").name
    'silu'
"""

from __future__ import annotations

import builtins
import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from torch import Tensor, nn

__all__ = [
    "Activation",
    "ActivationFromCallable",
    "ActivationInfo",
    "ActivationRegistry",
    "REGISTRY",
    "UnknownActivationError",
    "get",
    "info",
    "is_pointwise",
    "list",
    "load_pack",
    "register",
]


class Activation(nn.Module):
    """Base class for the activation modules of this package.

    It only adds the ``pointwise`` class attribute, so that code holding a
    module instance (rather than a registry name) can still ask whether the
    activation acts element by element.  Subclasses that mix information
    across elements (batch statistics, softmax-like normalisation) must set
    ``pointwise = False``.
    """

    pointwise: ClassVar[bool] = True


class UnknownActivationError(ValueError):
    """Raised when a name is not in the registry.

    The message lists every known name and, when one is close enough, a
    suggestion -- typos in config files are the common cause.
    """

    def __init__(
        self,
        name: str,
        known: Iterable[str],
        suggestions: Iterable[str] = (),
        aliases: dict[str, str] | None = None,
    ):
        self.name = name
        self.known = tuple(known)
        self.suggestions = tuple(suggestions)
        self.aliases = dict(aliases or {})
        hint = ""
        if self.suggestions:
            hint = " (did you mean " + " or ".join(repr(s) for s in self.suggestions) + "?)"
        message = f"unknown activation {name!r}{hint}; known: {', '.join(self.known)}"
        if self.aliases:
            message += "; aliases: " + ", ".join(f"{a} -> {c}" for a, c in sorted(self.aliases.items()))
        super().__init__(message)

    def __reduce__(self):
        # Exceptions are pickled from their args (here only the message), which
        # would not fit __init__; workers of a process pool must be able to
        # send this error back to the parent.
        return type(self), (self.name, self.known, self.suggestions, self.aliases)


@dataclass(frozen=True)
class ActivationInfo:
    """Metadata of one registered activation.

    Attributes:
        name: canonical (normalised) name, e.g. ``"gelu_sine"``.
        formula: short human-readable formula with default constants.
        source: citation of where the activation comes from.
        pointwise: ``True`` if the output at each element depends only on the
            input at that element.
        module_cls: the ``nn.Module`` subclass :func:`get` instantiates.
        aliases: other (normalised) names resolving to this entry.
        function: the plain tensor function behind the module, if any.
    """

    name: str
    formula: str
    source: str
    pointwise: bool
    module_cls: type[nn.Module]
    aliases: tuple[str, ...] = ()
    function: Callable[..., Tensor] | None = field(default=None, compare=False)


def _describe_callable(fn: Callable[..., Any]) -> str:
    """A short, recognisable description of ``fn`` for reprs.

    ``repr`` of a function includes a memory address, which is useless in a
    printed model; the qualified name (plus file and line for lambdas, which
    all share the name ``<lambda>``) tells the reader what is actually run.
    """
    qualname = getattr(fn, "__qualname__", None)
    if qualname is None:  # functools.partial, callable instances, ...
        return repr(fn)
    module = getattr(fn, "__module__", None)
    name = f"{module}.{qualname}" if module and module != "builtins" else qualname
    if "<lambda>" in qualname or "<locals>" in qualname:
        code = getattr(fn, "__code__", None)
        if code is not None:
            name += f" at {code.co_filename.rsplit('/', 1)[-1]}:{code.co_firstlineno}"
    return name


class ActivationFromCallable(nn.Module):
    """Wraps an arbitrary callable ``fn(x, **kwargs) -> Tensor`` as a module.

    Like Keras' ``Lambda`` layer.  Nothing is known about ``fn``, so
    ``pointwise`` is ``None`` ("unknown") rather than a guess.

    Example::

        >>> import torch
        >>> act = ActivationFromCallable(torch.nn.functional.leaky_relu, negative_slope=0.2)
        >>> act
        ActivationFromCallable(fn=torch.nn.functional.leaky_relu, negative_slope=0.2)
        >>> act(torch.tensor([-1.0, 1.0]))
        tensor([-0.2000,  1.0000])
    """

    pointwise: ClassVar[bool | None] = None

    def __init__(self, fn: Callable[..., Tensor], **kwargs: Any):
        super().__init__()
        if not callable(fn):
            raise TypeError(f"expected a callable, got {type(fn).__name__}")
        self.fn = fn
        self.kwargs = kwargs

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x, **self.kwargs)

    def extra_repr(self) -> str:
        parts = [f"fn={_describe_callable(self.fn)}"]
        parts += [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return ", ".join(parts)


def normalize_name(name: str) -> str:
    """Canonical spelling of a name: case-insensitive, ``-`` and ``_`` equivalent."""
    return name.strip().lower().replace("-", "_")


class ActivationRegistry:
    """A table of named activations.

    The package uses one shared instance, :data:`REGISTRY`, whose methods are
    exposed as the module-level functions :func:`register`, :func:`get`,
    :func:`list`, :func:`info` and :func:`is_pointwise`.  Separate instances
    are useful for tests and for experiments that must not leak names into
    the global table.
    """

    def __init__(self) -> None:
        self._entries: dict[str, ActivationInfo] = {}  # canonical name -> info
        self._aliases: dict[str, str] = {}  # alias -> canonical name
        self._by_class: dict[type[nn.Module], ActivationInfo] = {}

    # -- registration ---------------------------------------------------------

    def register(
        self,
        name: str,
        module_cls: type[nn.Module],
        *,
        formula: str,
        source: str,
        pointwise: bool = True,
        aliases: Iterable[str] = (),
        function: Callable[..., Tensor] | None = None,
    ) -> ActivationInfo:
        """Add an activation under ``name`` (and ``aliases``).

        Args:
            name: canonical name; normalised (lower case, ``-`` -> ``_``).
            module_cls: ``nn.Module`` subclass; :meth:`get` calls
                ``module_cls(**kwargs)``.
            formula: short human string, e.g. ``"GELU(x) + α·sin(x), α=0.1"``.
            source: citation.
            pointwise: whether the activation acts element by element.  Must
                agree with ``module_cls.pointwise`` when the class defines it.
            aliases: alternative names.
            function: the plain tensor function implementing the module.

        Returns:
            The stored :class:`ActivationInfo`.

        Raises:
            ValueError: on a name or alias clash, or a ``pointwise`` flag that
                contradicts the class attribute.
            TypeError: if ``module_cls`` is not an ``nn.Module`` subclass.
        """
        if not (isinstance(module_cls, type) and issubclass(module_cls, nn.Module)):
            raise TypeError(f"module_cls must be an nn.Module subclass, got {module_cls!r}")
        declared = getattr(module_cls, "pointwise", None)
        if declared is not None and bool(declared) != bool(pointwise):
            raise ValueError(
                f"{module_cls.__qualname__}.pointwise is {declared} but register() was told pointwise={pointwise}"
            )
        canonical = normalize_name(name)
        alias_names = tuple(dict.fromkeys(normalize_name(a) for a in aliases))
        alias_names = tuple(a for a in alias_names if a != canonical)

        for key in (canonical, *alias_names):
            owner = self._aliases.get(key, key if key in self._entries else None)
            # Re-registering the same class under the same name is not a
            # clash: it happens when a module is reloaded (importlib.reload,
            # notebook autoreload), which creates a new but identical class.
            reloaded = owner == canonical and self._same_class(owner, module_cls)
            if owner is not None and not reloaded:
                raise ValueError(f"activation name {key!r} is already registered (as {owner!r})")

        if canonical in self._entries:  # reload: drop the stale entry first
            self._remove(canonical)

        entry = ActivationInfo(
            name=canonical,
            formula=formula,
            source=source,
            pointwise=bool(pointwise),
            module_cls=module_cls,
            aliases=alias_names,
            function=function,
        )
        self._entries[canonical] = entry
        for alias in alias_names:
            self._aliases[alias] = canonical
        self._by_class[module_cls] = entry
        return entry

    def _same_class(self, name: str, module_cls: type[nn.Module]) -> bool:
        old = self._entries[name].module_cls
        return old is module_cls or (
            old.__module__ == module_cls.__module__ and old.__qualname__ == module_cls.__qualname__
        )

    def _remove(self, canonical: str) -> None:
        entry = self._entries.pop(canonical)
        for alias in entry.aliases:
            self._aliases.pop(alias, None)
        if self._by_class.get(entry.module_cls) is entry:
            del self._by_class[entry.module_cls]

    # -- lookup ---------------------------------------------------------------

    def _resolve(self, name: str) -> str:
        key = normalize_name(name)
        key = self._aliases.get(key, key)
        if key not in self._entries:
            known = self.list()
            candidates = known + sorted(self._aliases)
            close = difflib.get_close_matches(key, candidates, n=3, cutoff=0.6)
            # Suggest canonical names only, without duplicates.
            suggestions = dict.fromkeys(self._aliases.get(c, c) for c in close)
            raise UnknownActivationError(name, known, suggestions, self._aliases)
        return key

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = normalize_name(name)
        return key in self._entries or key in self._aliases

    def list(self) -> builtins.list[str]:
        """Sorted canonical names (aliases are not listed separately)."""
        return sorted(self._entries)

    def info(self, name: str) -> ActivationInfo:
        """Metadata for ``name`` (aliases and any spelling accepted by :meth:`get`)."""
        return self._entries[self._resolve(name)]

    def get(
        self,
        name_or_callable: str | nn.Module | type[nn.Module] | Callable[..., Tensor],
        /,
        **kwargs: Any,
    ) -> nn.Module:
        """Resolve a name, module, module class or callable to an ``nn.Module``.

        * ``str``: a registered name (case-insensitive, ``-`` == ``_``,
          aliases accepted); returns a *new* instance ``module_cls(**kwargs)``
          on every call, so modules are never shared between layers.
        * ``nn.Module`` instance: returned unchanged (``kwargs`` not allowed,
          they could not be applied to an existing instance).
        * ``nn.Module`` subclass: instantiated with ``kwargs``.
        * any other callable: wrapped in :class:`ActivationFromCallable`,
          with ``kwargs`` passed to it on every call.

        Raises:
            UnknownActivationError: unknown name (message lists known names).
            TypeError: unsupported type, or ``kwargs`` with a module instance.
        """
        obj = name_or_callable
        if isinstance(obj, str):
            entry = self._entries[self._resolve(obj)]
            try:
                return entry.module_cls(**kwargs)
            except TypeError as err:
                err.add_note(f"while building activation {entry.name!r} with {kwargs}")
                raise
        if isinstance(obj, nn.Module):
            if kwargs:
                raise TypeError(
                    f"get() received an already-built module ({type(obj).__name__}); "
                    f"keyword arguments {sorted(kwargs)} cannot be applied to it"
                )
            return obj
        if isinstance(obj, type) and issubclass(obj, nn.Module):
            return obj(**kwargs)
        if callable(obj):
            return ActivationFromCallable(obj, **kwargs)
        raise TypeError(f"expected an activation name, nn.Module or callable, got {type(obj).__name__}")

    def is_pointwise(self, name_or_module: str | nn.Module | type[nn.Module] | Callable[..., Tensor]) -> bool | None:
        """Whether an activation acts element by element.

        Returns ``True``/``False`` for registered names and for modules (or
        module classes) that are registered or declare a ``pointwise`` class
        attribute, and ``None`` ("unknown") for anything else -- wrapped
        callables and foreign modules -- since guessing ``True`` could let a
        batch-dependent function be treated as a scalar one.

        Raises:
            UnknownActivationError: for an unknown name.
        """
        obj = name_or_module
        if isinstance(obj, str):
            return self.info(obj).pointwise
        cls = obj if isinstance(obj, type) else type(obj)
        if cls in self._by_class:
            return self._by_class[cls].pointwise
        if issubclass(cls, nn.Module):
            declared = getattr(cls, "pointwise", None)
            return None if declared is None else bool(declared)
        return None


#: The package-wide registry; the module-level functions below delegate to it.
REGISTRY = ActivationRegistry()

register = REGISTRY.register
info = REGISTRY.info
is_pointwise = REGISTRY.is_pointwise
list = REGISTRY.list  # noqa: A001 -- the public name asked for; shadows the builtin only here


def load_pack(path: str | Path, registry: ActivationRegistry | None = None) -> builtins.list[str]:
    """Load a generated program file -- a pack written by `actmine.report.export_pack`, or a
    search's ``best_activation.py`` -- and register each of its programs under its name
    (``mined_<id>``, ``best_activation``), with its ``pointwise`` flag, its formula and source
    ``"exported from <path>"``. Returns the registered names.

    The file is read as data (``ast``, never imported); each program is checked by the candidate
    policy and compiled in the restricted namespace (`actmine.candidate.loader`), never run as
    plain code. A program the policy refuses raises its `CandidateError` (with its reason code);
    a file in the plain-code format of an older actmine is refused (``stale_program_file``) with
    a message saying how to regenerate it. Loading the same file again re-registers its names (a
    reload); a name already taken by another activation raises ``ValueError``.
    """
    # The checked loader lives with the candidate policy (a layer above this library); imported
    # only when a program file is loaded.
    from ..candidate.loader import load_program_file

    registry = REGISTRY if registry is None else registry
    return _register_programs(load_program_file(path), path, registry)


def _register_programs(classes: dict, path: str | Path, registry: ActivationRegistry) -> builtins.list[str]:
    origin = Path(path).expanduser().resolve()
    names = []
    for name, module_cls in classes.items():
        entry = registry.register(
            name,
            module_cls,
            formula=module_cls.formula,
            source=f"exported from {origin}",
            pointwise=module_cls.pointwise,
            function=module_cls.function,
        )
        names.append(entry.name)
    return names


def get(name_or_callable: str | nn.Module | type[nn.Module] | Callable[..., Tensor], /, **kwargs: Any) -> nn.Module:
    """:meth:`ActivationRegistry.get` on the package registry, plus ``"path/to/pack.py:name"``:
    read that generated program file (never importing it), check and compile only the program
    ``name`` through the candidate policy (see :func:`load_pack`), register it and return a module."""
    if isinstance(name_or_callable, str):
        from ..language.files import split_program_reference

        reference = split_program_reference(name_or_callable)
        if reference is not None:
            from ..candidate.loader import load_program_file

            path, name = reference
            (registered,) = _register_programs(load_program_file(path, [name]), path, REGISTRY)
            return REGISTRY.get(registered, **kwargs)
    return REGISTRY.get(name_or_callable, **kwargs)
