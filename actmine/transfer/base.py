"""The transfer plug-in point: a downstream benchmark that trains a real model with a given activation.

A benchmark is a small class with configuration-only constructor arguments (scikit-learn style) and
two methods:

* ``check_data(data_dir)`` raises :class:`DatasetMissing` (where it looked, how to obtain the data)
  before any training starts, so that a missing dataset is one clear error and not a traceback;
* ``run(make_activation, seed, data_dir, device)`` trains one model from scratch and returns a
  :class:`BenchmarkScore` (higher is better).

``make_activation`` is a zero-argument callable returning a fresh ``nn.Module``: the benchmark calls
it once for every place its architecture has a nonlinearity, so the activation is pluggable
everywhere.  Benchmarks register themselves with :func:`register_benchmark`; the runner
(:mod:`actmine.transfer.runner`) turns (activation × benchmark × seed) into independent jobs.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from torch import nn

__all__ = [
    "Benchmark",
    "BenchmarkScore",
    "DatasetMissing",
    "UnknownBenchmarkError",
    "get_benchmark",
    "list_benchmarks",
    "register_benchmark",
    "registered_benchmark",
]

ActivationFactory = Callable[[], nn.Module]


class DatasetMissing(FileNotFoundError):
    """A benchmark's data is not where it was looked for.

    The message says which path(s) were searched and how to obtain the data (a download address or
    command), so that the user can fix it without reading code.
    """


class UnknownBenchmarkError(ValueError):
    pass


@dataclass
class BenchmarkScore:
    """What one training run of one benchmark produced.

    Attributes:
        score: the headline metric, higher is better (accuracy, ROC-AUC, mean CLRS score).
        metric: its name, e.g. ``"accuracy"``.
        details: further numbers worth keeping (per-algorithm scores, final training loss,
            epochs, examples seen); JSON-serialisable values only.
    """

    score: float
    metric: str
    details: dict[str, Any] = field(default_factory=dict)


class Benchmark(Protocol):
    name: ClassVar[str]
    metric: ClassVar[str]

    def check_data(self, data_dir: Path) -> None: ...

    def run(self, make_activation: ActivationFactory, seed: int, data_dir: Path, device: str) -> BenchmarkScore: ...


_BENCHMARKS: dict[str, type] = {}


def register_benchmark(cls: type) -> type:
    """Class decorator: make ``cls`` available by its ``name`` to :func:`get_benchmark`."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__} needs a class attribute `name`")
    _BENCHMARKS[name] = cls
    return cls


def _load_builtin() -> None:
    # The modules of this package that register a benchmark (`@register_benchmark` in their text)
    # are imported on the first lookup, so that `import actmine` stays light, a new benchmark is one
    # new file, and the data loaders and models of the others load only with them. A missing
    # dependency propagates.
    import sys

    from ..plugins import import_registering_modules

    import_registering_modules(__package__, sys.modules[__package__].__path__, "register_benchmark")


def registered_benchmark(name: str) -> type | None:
    """The benchmark class registered as `name` (case and spaces ignored), importing the built-in
    benchmark modules only when it is not registered yet; None when there is none."""
    key = name.strip().lower()
    if key not in _BENCHMARKS:
        _load_builtin()
    return _BENCHMARKS.get(key)


def list_benchmarks() -> list[str]:
    _load_builtin()
    return sorted(_BENCHMARKS)


def get_benchmark(name: str, **options: Any):
    """An instance of the benchmark registered as ``name``, constructed with ``options``."""
    _load_builtin()
    benchmark = registered_benchmark(name)
    if benchmark is None:
        close = difflib.get_close_matches(name.strip().lower(), list(_BENCHMARKS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UnknownBenchmarkError(f"unknown benchmark {name!r}{hint} Known: {', '.join(sorted(_BENCHMARKS))}")
    return benchmark(**options)
