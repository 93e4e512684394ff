"""Plug-in discovery: a plug point's package finds its modules itself, so that a new module
registers itself (a mutator, an executor, a task generator, a transfer benchmark: adding one is one
new file, docs/architecture.md)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path
from typing import Iterable

_SCANNED: set[tuple[str, tuple[str, ...]]] = set()  # (package, path) pairs already scanned


def import_modules(package: str, path: Iterable[str]) -> None:
    """Import every public module of `package` (its `__path__`); modules already imported are cached."""
    for module in pkgutil.iter_modules(path):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package}.{module.name}")


def import_registering_modules(package: str, path: Iterable[str], decorator: str) -> None:
    """Import every module of `package` whose source applies `@decorator`, e.g. `register_benchmark`.

    For packages that hold more than plug-ins (the transfer package's runner and training loops,
    the lab's pools): a lookup imports the modules that register something and no other. Each file
    is read once per search path; an import error (a missing dependency) propagates, and the next
    lookup tries again."""
    key = (package, tuple(path))
    if key in _SCANNED:  # a lookup is frequent (every task draw asks for its generator)
        return
    for module in pkgutil.iter_modules(key[1]):
        name = f"{package}.{module.name}"
        file = Path(getattr(module.module_finder, "path", "")) / f"{module.name}.py"
        if module.ispkg or module.name.startswith("_") or name in sys.modules:
            continue
        try:
            registers = f"@{decorator}" in file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if registers:
            importlib.import_module(name)
    _SCANNED.add(key)
