"""actmine: mine activation functions that extrapolate.

The Python API (`actmine.api`, docs/api.md) is exported here lazily: `actmine.search`,
`actmine.open_run`, `actmine.evaluate`, `actmine.compare`, `actmine.Run` import pandas and torch
only when first used, so that `import actmine` (and `actmine --version`) stays light. The
package's own modules never import from here (they read `__version__` from `actmine.version`):
these lazy exports reach the top layer, so such an import would be a cycle.
"""

from .version import __version__

_API_NAMES = ("search", "open_run", "evaluate", "compare", "load_config", "Run", "Heldout")
__all__ = ["__version__", *_API_NAMES]


def __getattr__(name: str):
    if name in _API_NAMES:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'actmine' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API_NAMES))
