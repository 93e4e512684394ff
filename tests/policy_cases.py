"""Building blocks of the policy's tests (tests/test_policy*.py): candidates around a line or an
expression, and the refusal `check_source` raises for a program."""

from __future__ import annotations

import pytest

from actmine.candidate.source import CandidateError, check_source

#: The smallest valid candidate.
ENTRY = "def activation_function(x):\n    return x\n"


def refusal(source: str) -> CandidateError:
    """The CandidateError that `check_source(source)` raises (the test fails if it accepts the program)."""
    with pytest.raises(CandidateError) as info:
        check_source(source)
    return info.value


def body(*lines: str) -> str:
    """A candidate whose function runs `lines` (indented once, from line 2 on) and returns x."""
    return "def activation_function(x):\n" + "".join(f"    {line}\n" for line in lines) + "    return x\n"


def returns(expression: str) -> str:
    """A candidate whose line 2 is `return <expression>`."""
    return f"def activation_function(x):\n    return {expression}\n"
