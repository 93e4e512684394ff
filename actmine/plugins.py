"""Plug-in discovery: a plug point's package imports every module in it, so that a new module
registers itself (a mutator, an executor: adding one is one new file, docs/architecture.md)."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Iterable


def import_modules(package: str, path: Iterable[str]) -> None:
    """Import every public module of `package` (its `__path__`); modules already imported are cached."""
    for module in pkgutil.iter_modules(path):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package}.{module.name}")
