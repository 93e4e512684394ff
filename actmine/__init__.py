"""actmine: mine activation functions that extrapolate."""

__version__ = "0.1.0"
