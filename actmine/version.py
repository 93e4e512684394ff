"""The package's version, in a module that imports nothing: every layer may read it without
importing the top package (whose lazy exports reach the Python API, the top layer)."""

__version__ = "0.1.0"
