"""Tests of actmine.candidate.source: compiling and loading candidate programs."""

from __future__ import annotations

import math
import textwrap

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from actmine.candidate.source import (
    ENTRY_POINT,
    CandidateError,
    candidate_namespace,
    compile_candidate,
    load_candidate_file,
)

USES_NAMESPACE = textwrap.dedent("""
    def activation_function(x):
        # torch, F and math are available without imports
        return F.relu(x) + math.pi * torch.sin(x)
""")


def _expected(x):
    return torch.relu(x) + math.pi * torch.sin(x)


def test_namespace_has_torch_f_and_math():
    namespace = candidate_namespace()
    assert namespace["torch"] is torch
    assert namespace["F"] is torch.nn.functional
    # math's constants and functions, for Python numbers only (see test_policy for the refusals)
    assert namespace["math"].pi == math.pi and namespace["math"].tanh(0.5) == math.tanh(0.5)
    # a fresh dict each time: one candidate cannot leave names for the next
    namespace["leak"] = 1
    namespace["math"].leak = 1
    assert "leak" not in candidate_namespace() and not hasattr(candidate_namespace()["math"], "leak")


def test_compile_returns_the_activation_function():
    fn = compile_candidate(USES_NAMESPACE)
    assert callable(fn) and fn.__name__ == ENTRY_POINT == "activation_function"
    x = torch.linspace(-3, 3, 13)
    torch.testing.assert_close(fn(x), _expected(x))


def test_candidates_do_not_share_globals():
    first = compile_candidate("SCALE = 2.0\ndef activation_function(x):\n    return SCALE * x\n")
    assert torch.equal(first(torch.ones(2)), torch.full((2,), 2.0))
    # a name the program does not define is refused before it runs ...
    with pytest.raises(CandidateError) as info:
        compile_candidate("def activation_function(x):\n    return SCALE * x\n")
    assert info.value.code == "undefined_name" and "`SCALE`" in str(info.value)
    # ... and would not be found at run time either: each candidate gets its own globals
    with pytest.raises(NameError):
        exec(compile("y = SCALE", "<unchecked>", "exec"), candidate_namespace())


@settings(max_examples=20, deadline=None)
@given(scale=st.floats(-10, 10, allow_nan=False), shift=st.floats(-10, 10, allow_nan=False))
def test_compiled_source_computes_what_it_says(scale, shift):
    fn = compile_candidate(f"def activation_function(x):\n    return {scale!r} * torch.tanh(x) + {shift!r}\n")
    x = torch.linspace(-4, 4, 9, dtype=torch.float64)
    torch.testing.assert_close(fn(x), scale * torch.tanh(x) + shift)


@pytest.mark.parametrize(
    "source, line",
    [
        ("def activation_function(x)\n    return x\n", 1),
        ("import math\n\ndef activation_function(x):\n    return x +* 2\n", 4),
        ("def activation_function(x):\n    y = x\n   return y\n", 3),
    ],
)
def test_syntax_error_reports_the_line(source, line):
    with pytest.raises(CandidateError) as info:
        compile_candidate(source, filename="cand.py")
    assert info.value.code == "syntax_error"
    assert f"line {line}" in str(info.value)
    assert "cand.py" in str(info.value)


@pytest.mark.parametrize(
    "source",
    [
        "def activation(x):\n    return x\n",
        "activation_function = 3\n",
        "",
    ],
)
def test_missing_function(source):
    with pytest.raises(CandidateError) as info:
        compile_candidate(source)
    assert info.value.code == "missing_function"
    assert "activation_function" in str(info.value)


_DEFINES = "\ndef activation_function(x):\n    return x\n"


@pytest.mark.parametrize(
    "source, exception",
    [
        ("x = 1 / 0" + _DEFINES, "ZeroDivisionError"),
        ("C = math.sqrt(-1)" + _DEFINES, "ValueError"),
        ("C = math.exp(1000.0)" + _DEFINES, "OverflowError"),
        ("C = (1.0, 2.0)[5]" + _DEFINES, "IndexError"),
        ("C = D\nD = 1.0" + _DEFINES, "NameError"),  # the program's own global, read before it is assigned
    ],
)
def test_module_level_exception_is_a_load_error(source, exception):
    with pytest.raises(CandidateError) as info:
        compile_candidate(source, filename="cand.py")
    assert info.value.code == "load_error"
    assert exception in str(info.value) and "cand.py" in str(info.value)


@pytest.mark.parametrize(
    "source, code",
    [
        # Refused by the static policy before anything runs (they were load errors before it existed).
        ("raise RuntimeError('at import')" + _DEFINES, "forbidden_statement"),
        ("import numpy_does_not_exist_anywhere" + _DEFINES, "import"),
        ("x = 1 / 0\n", "missing_function"),
        ("C = torch.zeros(2) + torch.zeros(3)" + _DEFINES, "mutable_state"),
        ("C = NOT_DEFINED_ANYWHERE" + _DEFINES, "undefined_name"),
    ],
)
def test_policy_refuses_before_running(source, code):
    with pytest.raises(CandidateError) as info:
        compile_candidate(source, filename="cand.py")
    assert info.value.code == code
    assert "cand.py, line" in str(info.value) or code == "missing_function"


def test_candidate_error_is_a_value_error():
    with pytest.raises(ValueError):
        compile_candidate("def")


def test_load_candidate_file_rejects_non_python(tmp_path):
    path = tmp_path / "candidate.txt"
    path.write_text(USES_NAMESPACE)  # exists, and valid Python, but not a .py file
    with pytest.raises(CandidateError) as info:
        load_candidate_file(path)
    assert info.value.code == "not_python"


def test_load_candidate_file_missing(tmp_path):
    with pytest.raises(CandidateError) as info:
        load_candidate_file(tmp_path / "absent.py")
    assert info.value.code == "not_found"
    assert "absent.py" in str(info.value)


def test_load_candidate_file(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(USES_NAMESPACE, encoding="utf-8")
    for where in (path, str(path)):
        fn = load_candidate_file(where)
        x = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(fn(x), _expected(x))


def test_load_candidate_file_errors_name_the_file(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("def activation_function(x):\n    return (x\n")
    with pytest.raises(CandidateError) as info:
        load_candidate_file(path)
    assert info.value.code == "syntax_error"
    assert str(path) in str(info.value)


def test_a_search_best_activation_module_reads_as_its_candidate(tmp_path):
    """`best_activation.py` (imports, a docstring with the lineage, an nn.Module class) is usable
    wherever a candidate file is: only the namespace imports, the docstring and the class go."""
    from actmine.candidate.source import DEFAULT_MAX_SOURCE_CHARS, check_source, compile_candidate, read_candidate_file
    from actmine.language.normalise import normalise
    from actmine.evolve.controller import write_best_program
    from actmine.evolve.database import ProgramDatabase, ProgramRecord

    body = (
        "SCALE = 0.1\n\ndef helper(x):\n    return torch.sin(x)\n\ndef activation_function(x):\n"
        "    return F.gelu(x) + SCALE * helper(x) * math.pi\n"
    )
    with ProgramDatabase(tmp_path / "p.sqlite") as db:
        run = db.create_run({}, 0, {})
        record = ProgramRecord(
            id=None,
            run_id=run,
            proposal_index=0,
            source=body,
            rationale="r" * 12000,
            mutator="symbolic",
            status="ok",
            fitness=0.2,
            family_log_ratios={"polynomial": -0.2},
        )
        record.id = db.add_program(record)
        write_best_program(tmp_path / "best_activation.py", record, db)
    text = (tmp_path / "best_activation.py").read_text()
    assert len(text) > DEFAULT_MAX_SOURCE_CHARS  # the lineage alone is over the limit
    source = read_candidate_file(tmp_path / "best_activation.py")
    assert "import" not in source and "class" not in source and body.strip() in source
    fn = compile_candidate(source)
    x = torch.linspace(-3, 3, 13)
    torch.testing.assert_close(fn(x), torch.nn.functional.gelu(x) + 0.1 * torch.sin(x) * math.pi)
    # anything else stays, for the policy to refuse with its reason (normalisation: test_language_normalise.py)
    hostile = "import os\nimport torch\n\nclass A:\n    pass\n\ndef activation_function(x):\n    return x\n"
    (tmp_path / "hostile.py").write_text(hostile)
    assert (
        read_candidate_file(tmp_path / "hostile.py").split()
        == "import os class A: pass def activation_function(x): return x".split()
    )
    with pytest.raises(CandidateError) as refused:
        check_source(normalise(hostile).source)
    assert refused.value.code == "import"
    plain = "def activation_function(x):\n    return x\n"
    (tmp_path / "plain.py").write_text(plain)
    assert read_candidate_file(tmp_path / "plain.py") == plain


# --------------------------------------------------------------------------------------------
# Plain module files: what reading keeps and drops
# --------------------------------------------------------------------------------------------


def _read(tmp_path, text: str, name: str = "candidate.py") -> str:
    from actmine.candidate.source import read_candidate_file

    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return read_candidate_file(path)


def test_a_module_file_loses_its_docstring_with_its_imports(tmp_path):
    """A normalised module (an older best_activation.py) drops its docstring: there it holds lineage."""
    text = (
        '"""Lineage: parent 3, rationale ' + "r" * 500 + '."""\nimport torch\nimport torch.nn.functional as F\n\n'
        "def activation_function(x):\n    return F.relu(x)\n"
    )
    assert _read(tmp_path, text) == "def activation_function(x):\n    return F.relu(x)\n"


def test_a_plain_file_keeps_its_docstring_and_a_lone_docstring_stays(tmp_path):
    plain = '"""Doc."""\n\ndef activation_function(x):\n    return x\n'
    assert _read(tmp_path, plain) == plain  # nothing normalised: kept as written
    assert _read(tmp_path, '"""Doc only."""\nimport torch\n') == '"""Doc only."""\n'  # nothing else to keep
    assert _read(tmp_path, "import torch\n").strip() == ""  # nothing at all left: no error


def test_a_file_too_large_to_be_any_program_is_refused_before_reading(tmp_path):
    from actmine.candidate.source import read_candidate_file
    from actmine.language.files import MAX_FILE_BYTES

    path = tmp_path / "huge.py"
    path.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    with pytest.raises(CandidateError) as info:
        read_candidate_file(path)
    assert info.value.code == "too_long"
    assert f"is {MAX_FILE_BYTES + 1:,} bytes, too long for the limit of 20,000 characters" in str(info.value)


def test_a_file_that_is_not_utf8_is_unreadable(tmp_path):
    from actmine.candidate.source import read_candidate_file

    path = tmp_path / "latin.py"
    path.write_bytes(b"def activation_function(x):\n    return x  # caf\xe9\n")
    with pytest.raises(CandidateError) as info:
        read_candidate_file(path)
    assert info.value.code == "unreadable" and "latin.py" in str(info.value)


def _pack(tmp_path, names: tuple[str, ...] = ("first", "second")):
    from actmine.language.files import ProgramEntry, render_program_file

    programs = [
        ProgramEntry(
            name=name, class_name=name.title(), source=f"def activation_function(x):\n    return x * {index + 2}\n"
        )
        for index, name in enumerate(names)
    ]
    path = tmp_path / "pack.py"
    path.write_text(render_program_file(programs, "a test pack"))
    return path


def test_programs_of_a_pack_are_read_by_reference_as_data(tmp_path):
    from actmine.candidate.source import read_candidate_file, read_candidate_reference, read_program_file_at

    path = _pack(tmp_path)
    assert read_candidate_reference(f"{path}:second") == ("second", "def activation_function(x):\n    return x * 3\n")
    assert read_program_file_at(path).names == ["first", "second"]
    with pytest.raises(CandidateError) as info:
        read_candidate_file(path)  # two programs: which one?
    assert info.value.code == "unknown_program" and "first, second" in str(info.value)
    with pytest.raises(CandidateError) as info:
        read_candidate_reference(f"{path}:third")
    assert info.value.code == "unknown_program" and str(info.value).startswith(f"{path}: ")
    single = _pack(tmp_path, ("only",))
    assert read_candidate_file(single) == "def activation_function(x):\n    return x * 2\n"
    assert read_candidate_reference(str(single)) == ("pack", "def activation_function(x):\n    return x * 2\n")


def test_a_damaged_pack_is_refused_naming_the_file(tmp_path):
    from actmine.candidate.source import read_candidate_file, read_program_file_at

    path = _pack(tmp_path)
    path.write_text(path.read_text().replace("from actmine", "import os\nfrom actmine"))
    for read in (read_candidate_file, read_program_file_at):
        with pytest.raises(CandidateError) as info:
            read(path)
        assert info.value.code == "bad_program_file" and str(path) in str(info.value)


def test_a_statement_python_refuses_only_when_compiling_is_a_syntax_error_with_its_line():
    with pytest.raises(CandidateError) as info:
        compile_candidate("def activation_function(x):\n    y = x\n    break\n    return y\n", "cand.py")
    assert (info.value.code, info.value.line) == ("syntax_error", 3)
    assert str(info.value) == "cand.py, line 3: 'break' outside loop"
