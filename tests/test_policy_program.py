"""The policy's view of a whole program: the steps `check_source` takes before its walk (text, size,
syntax, nesting depth) and their order, the entry point `activation_function` (missing, a wrong
signature, defined twice), what the top level may hold, and which bindings of a name keep a
top-level tuple from being looped over like a literal.

Refusal messages are checked whole where the message is the product: users and the LLM that must
fix its program read them. `tests/test_policy.py` and `tests/test_source.py` check the reason codes
of these rules; here are their exact texts, lines and order.
"""

from __future__ import annotations

import ast
import warnings

import pytest

from actmine.candidate import source as policy
from actmine.candidate.source import MAX_AST_DEPTH, CandidateError, check_source
from actmine.language.program import ast_depth
from case_ids import readable_id

ENTRY = "def activation_function(x):\n    return x\n"
LIMIT_KEY = "shorten it or raise the config key `candidate.max_source_chars`"
TOO_DEEP = f"the program nests more than {MAX_AST_DEPTH} levels deep; split long expressions into several assignments"
MISSING = (
    "the program must define a top-level function `def activation_function(x):` that takes and returns a torch.Tensor"
)
TOP_LEVEL_RULE = (
    "the top level may only define functions and assign constants (it runs when the candidate "
    "loads); put logic inside activation_function"
)


def refusal(source, filename: str | None = None, max_chars: int = policy.DEFAULT_MAX_SOURCE_CHARS) -> CandidateError:
    with pytest.raises(CandidateError) as info:
        check_source(source, max_chars, filename)
    return info.value


def returns(expression: str) -> str:
    return f"def activation_function(x):\n    return {expression}\n"


def python_syntax_error(source: str) -> SyntaxError:
    """What Python's own parser says about `source` (its wording differs between Python versions)."""
    with pytest.raises(SyntaxError) as info:
        ast.parse(source)
    return info.value


# --------------------------------------------------------------------------------------------
# Size
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("filename, prefix", [(None, ""), ("cand.py", "cand.py, ")], ids=["no-file", "file"])
def test_a_source_over_the_limit_says_its_size_the_limit_and_the_config_key(filename, prefix):
    source = "#" * 1235
    error = refusal(source, filename, max_chars=1234)
    assert (error.code, error.line) == ("too_long", None)
    assert str(error) == f"{prefix}candidate source is 1,235 characters, over the limit of 1,234; {LIMIT_KEY}"


# --------------------------------------------------------------------------------------------
# Source Python cannot parse
# --------------------------------------------------------------------------------------------


def test_a_syntax_error_gives_python_s_reason_and_line():
    source = "C = 1.0\n" + ENTRY + "def g(y):\n    return y +* 2\n"
    error = refusal(source, "cand.py")
    assert (error.code, error.line) == ("syntax_error", 5)
    assert str(error) == f"cand.py, line 5: {python_syntax_error(source).msg}"


def test_a_syntax_error_without_a_line_gives_python_s_reason_alone():
    """Python places no line on a null byte: the message is its reason, with no made-up line."""
    source = "C = 1.0\n\0" + ENTRY
    reason = python_syntax_error(source)
    assert not reason.lineno
    for filename, prefix in [(None, ""), ("cand.py", "cand.py, ")]:
        error = refusal(source, filename)
        assert (error.code, error.line, str(error)) == ("syntax_error", None, f"{prefix}{reason.msg}")


def test_a_source_the_parser_cannot_take_names_the_parser_s_reason():
    """A lone surrogate cannot be encoded for the parser (a ValueError, not a SyntaxError)."""
    source = "C = '\ud800'\n" + ENTRY
    error = refusal(source, "cand.py")
    assert (error.code, error.line) == ("syntax_error", None)
    assert str(error) == (
        "cand.py, cannot parse the candidate: 'utf-8' codec can't encode character '\\ud800' in "
        "position 5: surrogates not allowed"
    )


def test_a_parser_that_runs_out_of_stack_says_the_program_nests_too_deeply():
    error = refusal("C = " + "-" * 5000 + "1\n" + ENTRY, "cand.py")
    assert (error.code, error.line) == ("syntax_error", None)
    assert str(error) == "cand.py, cannot parse the candidate: nested too deeply"


@pytest.mark.parametrize(
    "failure, reason",
    [
        (MemoryError(), "MemoryError"),  # no text of its own: its type
        (MemoryError("parser out of memory"), "parser out of memory"),
        (ValueError("bad source"), "bad source"),
    ],
    ids=["bare-memory", "memory", "value"],
)
def test_a_parser_failure_is_a_syntax_error_that_says_what_failed(monkeypatch, failure, reason):
    def failing_parse(*args, **kwargs):
        raise failure

    monkeypatch.setattr(policy.ast, "parse", failing_parse)
    error = refusal(ENTRY)
    assert (error.code, error.line, str(error)) == ("syntax_error", None, f"cannot parse the candidate: {reason}")


@pytest.mark.parametrize("filename, shown", [(None, "<candidate>"), ("cand.py", "cand.py")], ids=["no-file", "file"])
def test_warnings_python_gives_while_parsing_name_the_candidate(filename, shown):
    """An invalid escape sequence is a warning, not an error: it points at the candidate, not at actmine."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_source('C = "\\d"\n' + ENTRY, filename=filename)
    escapes = [w for w in caught if "invalid escape sequence" in str(w.message)]
    assert [(w.filename, w.lineno) for w in escapes] == [(shown, 1)]


# --------------------------------------------------------------------------------------------
# Nesting depth
# --------------------------------------------------------------------------------------------


def deepest_levels_allowed(program) -> int:
    """The largest `levels` for which `program(levels)` is exactly MAX_AST_DEPTH deep."""
    return next(k for k in range(MAX_AST_DEPTH) if ast_depth(ast.parse(program(k)))[0] == MAX_AST_DEPTH)


def negations(levels: int) -> str:
    return "C = 1.0\n" + returns("-" * levels + "x")  # the expression is on line 3


def sums(levels: int) -> str:
    return "C = 1.0\n" + returns("x * " + " + ".join(["1.0"] * (levels + 1)))


@pytest.mark.parametrize(
    "program, past",
    [(negations, 2), (negations, 3), (negations, 40), (sums, 2), (sums, 5)],
    ids=["negations+2", "negations+3", "negations+40", "sums+2", "sums+5"],
)
def test_a_program_past_the_depth_limit_is_refused_on_the_line_of_its_expression(program, past):
    source = program(deepest_levels_allowed(program) + past)
    for filename, prefix in [(None, ""), ("cand.py", "cand.py, ")]:
        error = refusal(source, filename)
        assert (error.code, error.line, str(error)) == ("syntax_error", 3, f"{prefix}line 3: {TOO_DEEP}")


@pytest.mark.parametrize(
    "program, past",
    [(negations, 1), (negations, 2), (sums, 1), (sums, 2)],
    ids=["negations+1", "negations+2", "sums+1", "sums+2"],
)
def test_a_depth_refusal_names_a_line_exactly_when_it_has_one(program, past):
    """One level past the limit the node found may have no position (the `Load` context of a name); the
    message then says no line at all rather than a wrong one."""
    error = refusal(program(deepest_levels_allowed(program) + past), "cand.py")
    at = f"line {error.line}: " if error.line is not None else ""
    assert (error.code, str(error)) == ("syntax_error", f"cand.py, {at}{TOO_DEEP}")


# --------------------------------------------------------------------------------------------
# The order of the steps: the first step a source fails decides its refusal
# --------------------------------------------------------------------------------------------

TOO_DEEP_LINE = "C = " + " + ".join(["1"] * (MAX_AST_DEPTH + 10)) + "\n"
STEP_ORDER = [  # (source, the code of the step that refuses it, max_chars)
    ("def activation_function(x)\n" + "#" * 100, "too_long", 100),  # size before syntax
    ("import os\n" + "-" * 5000 + "x\n", "syntax_error", 20_000),  # parsing before the policy
    ("import os\n" + TOO_DEEP_LINE + ENTRY, "syntax_error", 20_000),  # depth before the policy
    ("import os\n", "import", 20_000),  # any problem before a missing function
    ("D = 10 ** 10 ** 10\nC = [1.0]\n" + ENTRY, "mutable_state", 20_000),  # the policy before load-time cost
]


@pytest.mark.parametrize("source, code, max_chars", STEP_ORDER, ids=[case[1] for case in STEP_ORDER])
def test_the_first_step_a_source_fails_decides_its_refusal(source, code, max_chars):
    assert refusal(source, max_chars=max_chars).code == code


# --------------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    ["", "C = 1.0\n", "def activation(x):\n    return x\n", "activation_function = abs\n"],
    ids=["empty", "constant", "other-name", "alias"],
)
def test_a_program_without_the_entry_point_says_what_to_define(source):
    error = refusal(source)
    assert (error.code, error.line, str(error)) == ("missing_function", None, MISSING)
    assert str(refusal(source, "cand.py")) == f"cand.py, {MISSING}"


@pytest.mark.parametrize("signature", ["x, y", "", "*, x", "x, *, k", "*args", "x, /, y", "x=1.0, /, *, k"])
def test_a_wrong_signature_is_refused_on_the_def_s_line_quoting_the_parameters(signature):
    error = refusal(f"C = 1.0\n\ndef activation_function({signature}):\n    return C\n")
    assert (error.code, error.line) == ("missing_function", 3)
    assert str(error) == (
        f"line 3: `activation_function` must take exactly one required positional argument, the "
        f"tensor x (further parameters need defaults), not `({signature})`"
    )


def test_of_two_definitions_the_last_is_the_entry_point():
    """Python keeps the last `def`: its signature is the one that counts."""
    wrong, right = "def activation_function(x, y):\n    return x\n", ENTRY
    check_source(wrong + right)
    error = refusal(right + wrong)
    assert (error.code, error.line) == ("missing_function", 3)


def test_a_missing_entry_point_comes_after_every_other_problem():
    error = refusal("C = 1.0\nD = [C]\n")
    assert (error.code, error.line) == ("mutable_state", 2)


# --------------------------------------------------------------------------------------------
# The top level: definitions, assignments of constants, and statements with no effect
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("statement", ["pass", '"""A docstring."""', "...", "1.0", "'a note'"])
def test_statements_without_effect_may_stand_at_the_top_level(statement):
    check_source(f"{statement}\nC = 1.0\n{statement}\n{ENTRY}")


TOP_LEVEL_STATEMENTS = [  # (a statement at line 2, how the refusal names it)
    ("print(C)", "expression statement"),
    ("C", "expression statement"),
    ("if C:\n    D = 2.0", "`if` statement"),
    ("for i in range(3):\n    D = i", "`for` statement"),
    ("try:\n    D = 1.0\nexcept ValueError:\n    D = 2.0", "`try` statement"),
    ("assert C", "`assert` statement"),
    ("raise ValueError", "`raise` statement"),
]


@pytest.mark.parametrize(
    "statement, kind", TOP_LEVEL_STATEMENTS, ids=[readable_id(case[0]) for case in TOP_LEVEL_STATEMENTS]
)
def test_a_top_level_statement_with_an_effect_is_refused_on_its_line(statement, kind):
    error = refusal(f"C = 1.0\n{statement}\n{ENTRY}")
    assert (error.code, error.line) == ("forbidden_statement", 2)
    assert str(error) == f"line 2: a top-level {kind} is not allowed: {TOP_LEVEL_RULE}"


def test_a_top_level_del_is_refused_on_its_line():
    error = refusal(f"C = 1.0\n{ENTRY}del C\n")
    assert (error.code, error.line) == ("forbidden_statement", 4)
    assert str(error) == (
        "line 4: a top-level `del` is not allowed: the top level may only define functions and assign constants"
    )


# --------------------------------------------------------------------------------------------
# Bindings: a top-level tuple bound anywhere else is no literal to loop over
# --------------------------------------------------------------------------------------------

#: A program that loops (line 3) over its top-level tuple T: accepted while T is bound only there.
LOOP_OVER_T = "T = (1.0, 2.0)\ndef activation_function(x):\n    for w in T:\n        x = x * w\n    return x\n"
#: Later bindings of the name T, each in a function of its own (an import is refused too, but after the loop).
REBINDINGS = {
    "nested-def": "def g(y):\n    def T(z):\n        return z\n    return y\n",
    "top-level-def": "def T(z):\n    return z\n",
    "exception": "def g(y):\n    try:\n        return y\n    except ValueError as T:\n        return y\n",
    "import": "def g(y):\n    import T\n    return y\n",
    "dotted-import": "def g(y):\n    import T.linalg\n    return y\n",
    "import-as": "def g(y):\n    import os as T\n    return y\n",
    "from-import": "def g(y):\n    from os import T\n    return y\n",
}
LOCAL_ASSIGNMENT = "def h(y):\n    T = y\n    return T\n"


def test_a_top_level_tuple_bound_once_is_looped_over_like_a_literal():
    check_source(LOOP_OVER_T)
    check_source(LOOP_OVER_T + "def g(y, U=T):\n    V = y\n    return V * U[0]\n")


@pytest.mark.parametrize("also_assigned", [False, True], ids=["alone", "with-a-local-assignment"])
@pytest.mark.parametrize("rebinding", list(REBINDINGS.values()), ids=list(REBINDINGS))
def test_a_top_level_tuple_bound_again_anywhere_gives_no_bounded_loop(rebinding, also_assigned):
    """Every binding counts once, however it binds (a def, an exception variable, an import's first name):
    with T bound anywhere else, the loop over T is refused as the first problem of the program."""
    error = refusal(LOOP_OVER_T + rebinding + (LOCAL_ASSIGNMENT if also_assigned else ""))
    assert (error.code, error.line) == ("unbounded_loop", 3)


def test_only_the_first_name_of_a_dotted_import_is_bound():
    """`import U.T` binds U, not T: the loop over T stays bounded (the import is refused, on its own line)."""
    error = refusal(LOOP_OVER_T + "def g(y):\n    import U.T\n    return y\n")
    assert (error.code, error.line) == ("import", 7)
