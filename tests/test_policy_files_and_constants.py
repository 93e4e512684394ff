"""Reading candidate files and what a program may keep at its top level, with the whole messages.

Reading (`read_candidate_file`, `read_program_file_at`, `read_candidate_reference`,
`load_candidate_file`): a plain file may hold 4 UTF-8 bytes per allowed character, or as much as a
program file may, whichever is more; a file over that is refused *before* it is read; what is read
is UTF-8 whatever the machine's locale; a raised `max_chars` counts when reading as well as when
compiling; a plain file that only mentions the program-file format is a plain candidate; and a
module file loses its docstring and nothing else. Compiling (`compile_candidate`): the default file
name and a failing compiler in the messages, the module name of what it compiles, the numbers-only
`math` presenting itself as math. Top-level values (`check_constant`, `check_global_target`): the
whole message for each kind of non-constant, constants hidden anywhere in an expression, and the
names that tuple and starred targets bind.

`tests/test_source.py` and `tests/test_policy.py` check which files and values are accepted and the
reason codes; here the whole message is checked where it is the product (users and the LLM that
must fix its program read it), and each limit at its edge.
"""

from __future__ import annotations

import ast
import io
import math

import pytest
import torch

from actmine.candidate import source as policy
from actmine.candidate.source import (
    CandidateError,
    candidate_namespace,
    check_source,
    compile_candidate,
    load_candidate_file,
    read_candidate_file,
    read_candidate_reference,
    read_program_file_at,
)
from actmine.language.files import MAX_FILE_BYTES, MAX_FILE_ITEMS, ProgramEntry, render_program_file
from policy_cases import ENTRY, refusal

LIMIT_KEY = "shorten it or raise the config key `candidate.max_source_chars`"
#: What the policy requires of every top-level value and default argument (the start of the fix).
CONSTANT_RULE = (
    "top-level values and default arguments must be immutable constants -- numbers, strings, booleans, "
    "None, tuples of those, arithmetic on them, math functions and constants, torch constants and dtypes "
    "(torch.pi, torch.float32), torch.finfo(...).eps -- so that nothing can keep state from one call to "
    "the next"
)


def file_of_size(path, size: int, first: bytes = b"#"):
    """A file of exactly `size` bytes starting with `first`, the rest zero bytes (sparse: cheap to write)."""
    with open(path, "wb") as handle:
        handle.write(first)
        handle.seek(size - 1)
        handle.write(b"\0")
    assert path.stat().st_size == size
    return path


def file_error(read, *args, **kwargs) -> CandidateError:
    with pytest.raises(CandidateError) as info:
        read(*args, **kwargs)
    return info.value


# --------------------------------------------------------------------------------------------
# How large a file may be, and that a file too large is never read
# --------------------------------------------------------------------------------------------


def test_a_plain_file_may_hold_four_bytes_per_allowed_character(tmp_path):
    """The byte limit of a plain file is 4 * max_chars (UTF-8's widest character), at its edge."""
    exact = tmp_path / "exact.py"
    exact.write_bytes(b"#" * 39 + b"\n")  # 40 bytes = 4 * 10
    assert read_candidate_file(exact, max_chars=10) == "#" * 39 + "\n"
    over = tmp_path / "over.py"
    over.write_bytes(b"#" * 40 + b"\n")  # 41 bytes
    error = file_error(read_candidate_file, over, max_chars=10)
    assert error.code == "too_long"
    assert (
        str(error) == f"candidate file {str(over)!r} is 41 bytes, too long for the limit of 10 characters; {LIMIT_KEY}"
    )


def test_a_large_max_chars_raises_the_byte_limit_which_is_checked_before_reading(tmp_path):
    """With 4 * max_chars over the program-file size, a file of exactly 4 * max_chars bytes is read (it is
    then refused as not UTF-8); one byte more is refused by its size alone, before anything is read."""
    max_chars = MAX_FILE_BYTES // 4 + 1
    limit = 4 * max_chars
    assert limit > MAX_FILE_BYTES
    within = file_of_size(tmp_path / "within.py", limit, first=b"\xff")
    error = file_error(read_candidate_file, within, max_chars)
    assert error.code == "unreadable" and str(error).startswith(f"cannot read {str(within)!r}: ")
    over = file_of_size(tmp_path / "over.py", limit + 1, first=b"\xff")
    error = file_error(read_candidate_file, over, max_chars)
    assert error.code == "too_long"
    assert str(error) == (
        f"candidate file {str(over)!r} is {limit + 1:,} bytes, too long for the limit of "
        f"{max_chars:,} characters; {LIMIT_KEY}"
    )


def test_a_program_file_over_its_size_is_refused_with_that_size(tmp_path):
    path = file_of_size(tmp_path / "pack.py", MAX_FILE_BYTES + 1)
    for read in (read_program_file_at, lambda p: read_candidate_reference(f"{p}:first")):
        error = file_error(read, path)
        assert error.code == "too_long"
        assert str(error) == (
            f"candidate file {str(path)!r} is {MAX_FILE_BYTES + 1:,} bytes, more than a program "
            f"file may hold ({MAX_FILE_BYTES:,} bytes)"
        )


def test_a_program_file_of_millions_of_tiny_literals_is_refused_before_it_is_parsed(tmp_path):
    """Under the byte limit, 8 MB of `[],` is 2.8 million nodes: `ast.parse` took 4 GB and 40 s."""
    good = render_program_file([ProgramEntry("first", "First", ENTRY)], "a pack")
    bloated = good.replace("'source':", "'x': [" + "[]," * (MAX_FILE_ITEMS // 2) + "], 'source':", 1)
    path = tmp_path / "pack.py"
    path.write_text(bloated)
    assert len(bloated) < MAX_FILE_BYTES
    error = file_error(read_program_file_at, path)
    assert "commas and brackets, more than a program file has" in str(error)


def test_a_program_file_naming_one_program_twice_is_refused(tmp_path):
    """A dict literal keeps the last of two equal keys: `pack.py:first` would be a program nobody saw."""
    good = render_program_file([ProgramEntry("first", "First", ENTRY), ProgramEntry("second", "Second", ENTRY)], "")
    path = tmp_path / "pack.py"
    path.write_text(good.replace("'second':", "'first':"))
    for read in (read_program_file_at, lambda p: read_candidate_reference(f"{p}:first")):
        assert "names the program(s) first twice" in str(file_error(read, path))


def test_a_pack_read_once_per_program_is_parsed_once_and_a_changed_one_again(tmp_path):
    """`compare PACK.py` resolves each program as `PACK.py:NAME`: a thousand-program export was parsed
    a thousand times."""
    path = tmp_path / "pack.py"
    path.write_text(
        render_program_file([ProgramEntry("first", "First", ENTRY), ProgramEntry("second", "S", ENTRY)], "")
    )
    first = read_program_file_at(path)
    assert read_program_file_at(path) is first and read_program_file_at(str(path)) is first
    path.write_text(render_program_file([ProgramEntry("third", "Third", ENTRY)], ""))
    assert read_program_file_at(path).names == ["third"]


def test_a_file_that_is_not_python_is_refused_naming_it(tmp_path):
    path = tmp_path / "candidate.txt"
    path.write_text(ENTRY)
    for read in (read_candidate_file, read_program_file_at, load_candidate_file):
        error = file_error(read, path)
        assert error.code == "not_python"
        assert str(error) == f"{str(path)!r} is not a .py file; give a registry name or a .py file"


def test_a_raised_max_chars_counts_when_reading_and_when_compiling(tmp_path):
    """24,000 four-byte characters (96,000 bytes) are over the default limit of 20,000 characters (80,000
    bytes) and within a limit of 25,000: passing that limit must reach every step."""
    program = "# " + "\U0001f600" * 24_000 + "\nSCALE = 2.0\ndef activation_function(x):\n    return SCALE * x\n"
    path = tmp_path / "wide.py"
    path.write_text(program, encoding="utf-8")
    assert file_error(read_candidate_file, path).code == "too_long"  # the default limit
    assert file_error(load_candidate_file, path).code == "too_long"
    assert read_candidate_reference(str(path), max_chars=25_000) == ("wide", program)
    assert torch.equal(load_candidate_file(path, max_chars=25_000)(torch.ones(2)), torch.full((2,), 2.0))


# --------------------------------------------------------------------------------------------
# What is read
# --------------------------------------------------------------------------------------------


def test_a_candidate_file_is_read_as_utf8_whatever_the_locale(tmp_path, monkeypatch):
    """On a machine whose locale encoding is Latin-1, a UTF-8 candidate still reads as written."""
    program = "NAME = 'café ≤ 3 µs'\ndef activation_function(x):\n    return x\n"
    path = tmp_path / "accents.py"
    path.write_text(program, encoding="utf-8")
    monkeypatch.setattr(io, "text_encoding", lambda encoding, stacklevel=2: encoding or "latin-1")
    assert read_candidate_file(path) == program


def test_a_plain_file_that_mentions_the_program_file_format_is_a_plain_candidate(tmp_path):
    """Only a file that assigns ACTMINE_FORMAT is a generated program file; the word alone is not."""
    program = "# unlike an ACTMINE_FORMAT pack, this is one plain candidate\n" + ENTRY
    path = tmp_path / "plain.py"
    path.write_text(program)
    assert read_candidate_file(path) == program
    assert read_candidate_reference(str(path)) == ("plain", program)


def test_a_pack_of_several_programs_read_as_one_says_how_to_name_one(tmp_path):
    programs = [ProgramEntry(name=name, class_name=name.title(), source=ENTRY) for name in ("first", "second")]
    path = tmp_path / "pack.py"
    path.write_text(render_program_file(programs, "a test pack"))
    error = file_error(read_candidate_file, path)
    assert error.code == "unknown_program"
    assert str(error) == f"{str(path)!r} holds 2 programs; name one as {path}:NAME with NAME one of first, second"


@pytest.mark.parametrize(
    "after_docstring, kept",
    [
        ("\n\n  # an indented note\nSCALE = 2.0\n", "  # an indented note\nSCALE = 2.0\n"),
        ("\n\t\n \nSCALE = 2.0\n", "\t\n \nSCALE = 2.0\n"),
        ("\nXSCALE = 2.0\n", "XSCALE = 2.0\n"),
    ],
    ids=["indented-comment", "blank-lines-with-spaces", "name-starting-with-X"],
)
def test_a_module_file_loses_its_docstring_and_the_empty_lines_after_it_only(tmp_path, after_docstring, kept):
    """The lines after a dropped module docstring stay exactly as written, but for the empty lines that
    directly follow it (a comment keeps its indentation, a line of spaces stays)."""
    function = "def activation_function(x):\n    return SCALE * x\n"
    text = '"""Lineage: parent 3."""\nimport torch\n' + after_docstring + function
    path = tmp_path / "best_activation.py"
    path.write_text(text, encoding="utf-8")
    assert read_candidate_file(path) == kept + function


# --------------------------------------------------------------------------------------------
# Compiling
# --------------------------------------------------------------------------------------------


def test_without_a_file_name_messages_name_the_candidate():
    with pytest.raises(CandidateError) as info:
        compile_candidate("C = 1 / 0\n" + ENTRY)
    assert str(info.value) == "<candidate>: running the module raised ZeroDivisionError: division by zero"
    with pytest.raises(CandidateError) as info:
        compile_candidate("def activation_function(x):\n    return x +* 2\n")
    assert str(info.value).startswith("<candidate>, line 2: ")


@pytest.mark.parametrize(
    "failure",
    [
        RecursionError("maximum recursion depth exceeded during compilation"),
        ValueError("field 'body' is required"),
        MemoryError("compiler out of memory"),
    ],
    ids=["recursion", "value", "memory"],
)
def test_a_compiler_failure_on_a_checked_program_is_a_syntax_error_naming_the_file(monkeypatch, failure):
    """Python's compiler may give up on what its parser accepted (its stack, its memory): the candidate is
    then refused as a syntax error that names the file and what the compiler said."""

    def failing_compile(*args, **kwargs):
        raise failure

    monkeypatch.setattr(policy, "compile", failing_compile, raising=False)
    with pytest.raises(CandidateError) as info:
        compile_candidate(ENTRY, "cand.py")
    assert info.value.code == "syntax_error"
    assert str(info.value) == f"cand.py: cannot compile the candidate: {type(failure).__name__}: {failure}"


def test_compiled_functions_belong_to_the_candidate_module():
    """What a candidate defines says it comes from `candidate` (not from actmine or the caller's module)."""
    function = compile_candidate("def helper(z):\n    return z\ndef activation_function(x):\n    return helper(x)\n")
    assert function.__module__ == "candidate" and function.__globals__["helper"].__module__ == "candidate"
    assert candidate_namespace()["__name__"] == "candidate"


def test_the_numbers_only_math_presents_itself_as_math():
    module = candidate_namespace()["math"]
    assert module.__name__ == "math" and repr(module) == "<module 'math'>"
    assert module.__doc__ == "math for candidates: its functions take Python numbers, not tensors"
    assert module.sqrt(4.0) == math.sqrt(4.0)


def test_a_node_that_cannot_be_written_back_is_named_by_its_type():
    """Messages quote source through `_snippet`; a node `ast.unparse` cannot write is named by its type."""
    assert policy._snippet(ast.Name(id=3, ctx=ast.Load())) == "Name"  # a name that is no text
    assert policy._snippet(ast.parse("x + 1").body[0].value) == "x + 1"


# --------------------------------------------------------------------------------------------
# Top-level values: the whole message for each kind of non-constant
# --------------------------------------------------------------------------------------------

LIST_FIX = "use a tuple, e.g. `(1.0, 0.5)` or `tuple(... for k in range(8))`"
NOT_CONSTANT = [  # (value of C, what it is said to be, the fix)
    ("[1.0]", "a list, which is mutable", LIST_FIX),
    ("[k for k in range(2)]", "a list, which is mutable", LIST_FIX),
    ("{'a': 1.0}", "a dict, which is mutable", "use a tuple or separate constants"),
    ("{k: k for k in range(2)}", "a dict, which is mutable", "use a tuple or separate constants"),
    ("{1.0}", "a set, which is mutable", "use a tuple"),
    ("{k for k in range(2)}", "a set, which is mutable", "use a tuple"),
    ("(k for k in range(2))", "a generator, which keeps its position between uses", "use a tuple"),
    ("(D := 2.0)", "`(D := 2.0)`, not a constant expression", "compute the value inside the function instead"),
    # a mutable value anywhere inside an expression of constants
    ("0.0 or [0.0]", "a list, which is mutable", LIST_FIX),
    ("(1.0, {2.0})", "a set, which is mutable", "use a tuple"),
    ("-(1.0 if {} else 2.0)", "a dict, which is mutable", "use a tuple or separate constants"),
    ("(1.0, 2.0, 3.0)[0:2:[1][0]]", "a list, which is mutable", LIST_FIX),
    ("f'{[1.0]}'", "a list, which is mutable", LIST_FIX),
    ("tuple(v for v in [1.0, 2.0])", "a list, which is mutable", LIST_FIX),
    ("tuple(v for _, v in enumerate([1.0, 2.0]))", "a list, which is mutable", LIST_FIX),
    (
        "tuple(a for a, b in zip((1.0,), reversed({2.0: 1})))",
        "a dict, which is mutable",
        "use a tuple or separate constants",
    ),
]


@pytest.mark.parametrize("value, problem, fix", NOT_CONSTANT, ids=[case[0] for case in NOT_CONSTANT])
def test_a_top_level_value_that_is_no_constant_is_refused_with_what_it_is(value, problem, fix):
    error = refusal(f"C = {value}\n{ENTRY}")
    assert (error.code, error.line) == ("mutable_state", 1)
    assert str(error) == f"line 1: the top-level value of `C` is {problem}: {CONSTANT_RULE}; {fix}"


CONSTANTS = [
    "0.0 or 1.0",
    "(1.0, 2.0, 3.0)[:2]",
    "(1.0, 2.0, 3.0)[::2]",
    "(1.0, 2.0, 3.0)[0:2:1]",
    "tuple(i for i, v in enumerate((1.0, 2.0)))",
    "tuple(a * b for a, b in zip((1.0, 2.0), reversed((3.0, 4.0))))",
    "sum(v for v in reversed(range(3)))",
    "tuple(k for k in enumerate((1.0,), start=2))",
]


@pytest.mark.parametrize("value", CONSTANTS)
def test_constant_expressions_pass(value):
    """Boolean operations, slices with parts left out, and comprehensions over enumerate/zip/reversed of
    constants are constants (the helpers only wrap what they iterate over)."""
    check_source(f"C = {value}\n{ENTRY}")


def test_a_rebound_loop_helper_is_no_constant_call():
    error = refusal(f"C = tuple(v for v in zip((1.0,)))\n{ENTRY}def g(zip):\n    return zip\n")
    assert (error.code, error.line) == ("mutable_state", 1)
    assert str(error).startswith("line 1: the top-level value of `C` is a call of `zip`, whose result may be mutable")


@pytest.mark.parametrize("length, shown", [(40, "C" * 40), (41, "C" * 37 + "...")], ids=["40", "41"])
def test_a_target_is_quoted_whole_up_to_forty_characters(length, shown):
    error = refusal(f"{'C' * length} = [1.0]\n{ENTRY}")
    assert str(error).startswith(f"line 1: the top-level value of `{shown}` is a list, which is mutable")


# --------------------------------------------------------------------------------------------
# Top-level targets
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "assignment, message",
    [
        (
            "A, *B = (1, 2, 3)",
            "the starred target `*B` makes a list (mutable); top-level names must hold immutable "
            "constants: unpack into names",
        ),
        (
            "A, (B, *C) = (1, (2, 3))",
            "the starred target `*C` makes a list (mutable); top-level names must hold "
            "immutable constants: unpack into names",
        ),
        (
            "A[0] = 3",
            "assigning to `A[0]` at the top level changes a value in place; top-level names must hold "
            "immutable constants",
        ),
        (
            "B, A[1:] = 1, (2,)",
            "assigning to `A[1:]` at the top level changes a value in place; top-level names must "
            "hold immutable constants",
        ),
    ],
    ids=["starred", "nested-starred", "subscript", "slice-in-tuple"],
)
def test_a_top_level_target_that_is_no_name_is_refused_on_its_line(assignment, message):
    error = refusal(f"A = (1, 2)\n{assignment}\n{ENTRY}")
    assert (error.code, error.line) == ("mutable_state", 2)
    assert str(error) == f"line 2: {message}"


def test_names_bound_by_tuple_targets_are_the_program_s_own():
    program = "A, (B, C) = 1.0, (2.0, 3.0)\ndef activation_function(x):\n    return A * x + B * C\n"
    assert torch.equal(compile_candidate(program)(torch.ones(1)), torch.full((1,), 7.0))


def test_a_name_bound_by_a_starred_target_is_the_program_s_own():
    """The refusal is the star (line 3), not a name said to be undefined where the function reads it."""
    error = refusal("def activation_function(x):\n    return x * B\nA, *B = (1, 2, 3)\n")
    assert (error.code, error.line) == ("mutable_state", 3)


def test_a_tuple_made_by_a_rebound_tuple_gives_no_bounded_loop():
    """`tuple(...)` makes a tuple only while `tuple` is the builtin: with it rebound anywhere, a loop over
    the value is not bounded (reported first here: the loop comes before the value's own refusal)."""
    program = (
        "def activation_function(x):\n    for v in W:\n        x = x * v\n    return x\n"
        "W = tuple(k / 2 for k in range(3))\n"
    )
    check_source(program)
    error = refusal(program + "def g(tuple):\n    return tuple\n")
    assert (error.code, error.line) == ("unbounded_loop", 2)
