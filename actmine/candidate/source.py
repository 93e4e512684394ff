"""Candidate programs: Python source that defines `activation_function(x)`.

The namespace a candidate sees is `torch`, `F` (torch.nn.functional) and `math`, pre-imported.
For now a file is compiled and executed in this process; the static policy and the sandboxed
worker processes that make untrusted candidates safe are the next layer (issue 3).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

ENTRY_POINT = "activation_function"


class CandidateError(ValueError):
    """A candidate program cannot be used; `code` is a stable reason code, the message says why."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def candidate_namespace() -> dict:
    """The globals a candidate program starts with."""
    return {"torch": torch, "F": F, "math": math, "__name__": "candidate"}


def compile_candidate(source: str, filename: str = "<candidate>") -> Callable[[torch.Tensor], torch.Tensor]:
    """Compile `source` and return its `activation_function`."""
    try:
        code = compile(source, filename, "exec")
    except SyntaxError as exc:
        raise CandidateError("syntax_error", f"{filename}, line {exc.lineno}: {exc.msg}") from None
    namespace = candidate_namespace()
    try:
        exec(code, namespace)  # trusted files only until the sandbox lands (issue 3)
    except Exception as exc:
        raise CandidateError("load_error", f"{filename}: running the module raised {type(exc).__name__}: {exc}") from None
    function = namespace.get(ENTRY_POINT)
    if not callable(function):
        raise CandidateError("missing_function", f"{filename} must define a function `{ENTRY_POINT}(x)` "
                                                 "that takes and returns a torch.Tensor")
    return function


def load_candidate_file(path: str | Path) -> Callable[[torch.Tensor], torch.Tensor]:
    """Read and compile a `.py` file that defines `activation_function(x)`."""
    path = Path(path)
    if path.suffix != ".py":
        raise CandidateError("not_python", f"{str(path)!r} is not a .py file; give a registry name or a .py file")
    if not path.is_file():
        raise CandidateError("not_found", f"candidate file {str(path)!r} does not exist")
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CandidateError("unreadable", f"cannot read {str(path)!r}: {exc}") from None
    return compile_candidate(source, str(path))
