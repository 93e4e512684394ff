"""Realistic LLM answers (tests/llm_answers/) through the parser, the policy, the compile and the probes.

Each file holds a model's whole answer and the outcome it must get (format: tests/llm_answers/README.md):
a well-meaning answer must become a candidate, a hostile one must be refused with its code, at the
stage that code belongs to. Candidate code runs in this process only after the policy accepted it
(`llm_corpus.evaluate_answer`).
"""

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from llm_corpus import (
    ACCEPTED,
    CORPUS_DIR,
    FORMAT,
    NO_CODE,
    SEPARATOR,
    CorpusFormatError,
    evaluate_answer,
    read_answer,
    read_corpus,
    stage_of,
)

ANSWERS = read_corpus()
WELL_MEANING = [a for a in ANSWERS if a.well_meaning]
HOSTILE = [a for a in ANSWERS if not a.well_meaning]


def _describe(outcome) -> str:
    return (
        f"got {outcome.code} at stage {outcome.stage}: {outcome.message}\n"
        f"--- program after the parser ---\n{outcome.source}"
    )


#: Well-meaning answers the pipeline still loses, with why. Each is an expected failure (strict: one that
#: starts passing must be removed from here), and each counts as lost in the acceptance rate below.
KNOWN_LOSSES = {
    "gpt4_functools_lru_cache_helper": "the policy bounds loops only by literals: `range(1, n_terms + 1)` over a "
    "parameter is refused as unbounded_loop (see candidate/source.py)",
}
#: The issue's bar: at least 95 % of the well-meaning answers become candidates.
MIN_ACCEPTANCE = 0.95


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(a, marks=pytest.mark.xfail(reason=KNOWN_LOSSES[a.name], strict=True))
        if a.name in KNOWN_LOSSES
        else a
        for a in WELL_MEANING
    ],
    ids=lambda a: a.name,
)
def test_well_meaning_answer_becomes_a_candidate(answer):
    outcome = evaluate_answer(answer.text)
    assert outcome.accepted, f"{answer.name} ({answer.note}) {_describe(outcome)}"


def test_known_losses_are_well_meaning_answers_of_the_corpus():
    assert set(KNOWN_LOSSES) <= {a.name for a in WELL_MEANING}
    assert 1 - len(KNOWN_LOSSES) / len(WELL_MEANING) >= MIN_ACCEPTANCE


@pytest.mark.parametrize("answer", HOSTILE, ids=lambda a: a.name)
def test_hostile_answer_is_refused_with_its_code(answer):
    outcome = evaluate_answer(answer.text)
    assert not outcome.accepted, f"{answer.name} ({answer.note}) was ACCEPTED:\n{outcome.source}"
    assert (outcome.code, outcome.stage) == (answer.expect, stage_of(answer.expect)), (
        f"{answer.name} ({answer.note}): expected {answer.expect} at {stage_of(answer.expect)}, {_describe(outcome)}"
    )


def test_no_hostile_answer_is_expected_to_run_its_top_level():
    """A hostile answer stops at the parser or the policy, before any of its code runs; only pure tensor
    code the policy accepts (in-place changes, batch statistics, shape branches) is left to the probes."""
    for answer in HOSTILE:
        assert stage_of(answer.expect) in ("parse", "policy", "probes"), answer.name


def test_the_corpus_is_large_and_varied():
    assert len(WELL_MEANING) >= 40 and len(HOSTILE) >= 25
    styles = Counter(a.style for a in WELL_MEANING)
    for style in ("gpt-4", "claude", "gemini", "reasoning", "llama-qwen", "diff", "unfenced"):
        assert styles[style] >= 3, f"only {styles[style]} well-meaning answers in the style {style}"
    codes = Counter(a.expect for a in HOSTILE)
    assert len(codes) >= 10, f"the hostile answers exercise only {sorted(codes)}"
    assert len({a.text for a in ANSWERS}) == len(ANSWERS), "two corpus files hold the same answer"


# ---- the file format --------------------------------------------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "answer.txt"
    path.write_text(text, encoding="utf-8")
    return path


def test_reader_keeps_the_answer_verbatim_even_when_it_repeats_the_separator(tmp_path):
    body = f"Prose.\n{SEPARATOR}\nexpect: refused:import\n```python\ndef activation_function(x):\n    return x\n```\n"
    answer = read_answer(
        _write(tmp_path, f"format: {FORMAT}\nexpect: candidate\nstyle: s\nnote: n\n{SEPARATOR}\n{body}")
    )
    assert (answer.expect, answer.style, answer.note, answer.text) == (ACCEPTED, "s", "n", body)
    refused = read_answer(
        _write(tmp_path, f"format: {FORMAT}\nexpect: refused:{NO_CODE}\nstyle: s\nnote: n\n{SEPARATOR}\nno code here\n")
    )
    assert refused.expect == NO_CODE and not refused.well_meaning


@settings(max_examples=80, deadline=None)
@given(st.text(min_size=1).filter(str.strip), st.sampled_from([ACCEPTED, "refused:import", "refused:batch_dependent"]))
def test_any_answer_text_comes_back_byte_for_byte(tmp_path_factory, body, expect):
    path = tmp_path_factory.mktemp("corpus") / "answer.txt"
    path.write_bytes(f"format: {FORMAT}\nexpect: {expect}\nstyle: s\nnote: n\n{SEPARATOR}\n{body}".encode("utf-8"))
    answer = read_answer(path)
    assert answer.text == body and answer.well_meaning == (expect == ACCEPTED)


@pytest.mark.parametrize(
    "text, complaint",
    [
        (f"format: {FORMAT}\nexpect: candidate\nstyle: s\nnote: n\nno separator\n", "no line"),
        (f"format: {FORMAT}\nexpect: candidate\nstyle: s\n{SEPARATOR}\nx\n", "lacks note"),
        (f"format: {FORMAT}\nexpect: candidate\nstyle: s\nnote: n\nnote: m\n{SEPARATOR}\nx\n", "given twice"),
        (f"format: {FORMAT}\nexpect: candidate\nstyle: s\nnote: n\nmood: ok\n{SEPARATOR}\nx\n", "is not `KEY: VALUE`"),
        (f"format: other/2\nexpect: candidate\nstyle: s\nnote: n\n{SEPARATOR}\nx\n", "format 'other/2'"),
        (f"format: {FORMAT}\nexpect: accepted\nstyle: s\nnote: n\n{SEPARATOR}\nx\n", "neither"),
        (f"format: {FORMAT}\nexpect: refused:made_up\nstyle: s\nnote: n\n{SEPARATOR}\nx\n", "unknown outcome code"),
        (f"format: {FORMAT}\nexpect: candidate\nstyle: s\nnote: n\n{SEPARATOR}\n \n", "empty"),
    ],
)
def test_reader_says_what_is_wrong_with_a_file(tmp_path, text, complaint):
    with pytest.raises(CorpusFormatError, match=complaint):
        read_answer(_write(tmp_path, text))


def test_the_corpus_directory_holds_only_answers_and_its_readme():
    others = {p.name for p in CORPUS_DIR.iterdir()} - {p.name for p in CORPUS_DIR.glob("*.txt")}
    assert others == {"README.md"}
