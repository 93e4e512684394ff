"""The corpus of realistic LLM answers (`tests/llm_answers/`): reading its files, and the outcome of one answer.

Shared by `tests/test_llm_answers.py` (which asserts each answer's expected outcome) and
`benchmarks/bench_llm_answers.py` (which prints acceptance and refusal rates, also for an outside
corpus in the same format). The file format is described in `tests/llm_answers/README.md`.

An answer goes the way a model's answer goes in a search, minus the sandbox: the LLM mutator's
parser (`parse_response`, which normalises the program), the static policy (`check_source`), the
restricted compile (`compile_candidate`) and the probes (`run_probes`). It runs in the caller's
process, so only a source the policy accepted is ever compiled: a hostile answer is stopped by the
parser or the policy before any of its code runs, except the probe-level classes (in-place changes,
batch statistics, shape branches), which are pure tensor code that the probes exist to catch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from actmine.candidate.probes import PROBE_CODES, ProbeFailure, run_probes
from actmine.candidate.source import REASON_CODES, CandidateError, check_source, compile_candidate
from actmine.evolve.mutators.llm import parse_response

CORPUS_DIR = Path(__file__).resolve().parent / "llm_answers"
FORMAT = "actmine-llm-answer/1"
SEPARATOR = "=== answer ==="
HEADER_KEYS = ("format", "expect", "style", "note")
#: The outcome of an answer the parser finds no program in.
NO_CODE = "no_code"
ACCEPTED = "candidate"


class CorpusFormatError(ValueError):
    """A corpus file that does not follow the format of `tests/llm_answers/README.md`."""


def stage_of(code: str) -> str:
    """Where in the pipeline an outcome code is decided: parse, policy, compile, probes or accepted."""
    if code == ACCEPTED:
        return "accepted"
    if code == NO_CODE:
        return "parse"
    if code == "load_error":
        return "compile"
    if code in REASON_CODES:
        return "policy"
    if code in PROBE_CODES:
        return "probes"
    raise CorpusFormatError(
        f"unknown outcome code {code!r}: use `candidate`, `refused:{NO_CODE}`, or "
        "`refused:CODE` with a code of actmine.candidate.source.REASON_CODES or "
        "actmine.candidate.probes.PROBE_CODES"
    )


@dataclass(frozen=True)
class Answer:
    """One corpus file: the model's verbatim answer and what must become of it."""

    name: str  # the file name without its suffix
    expect: str  # "candidate", or the code it must be refused with
    style: str  # the model family or answer shape it imitates (gpt-4, claude, hostile, ...)
    note: str  # what the answer exercises, and why the expected outcome is the right one
    text: str  # the answer, exactly as a model would send it

    @property
    def well_meaning(self) -> bool:
        return self.expect == ACCEPTED


def read_answer(path: str | Path) -> Answer:
    """Read one corpus file; raises `CorpusFormatError` saying what is wrong with it."""
    path = Path(path)
    raw = path.read_bytes().decode("utf-8")  # bytes as written: no newline translation of the answer
    head, sep, text = raw.partition("\n" + SEPARATOR + "\n")
    if not sep:
        raise CorpusFormatError(f"{path}: no line `{SEPARATOR}` after the header; the answer follows that line")
    header: dict[str, str] = {}
    for number, line in enumerate(head.split("\n"), 1):
        match = re.fullmatch(r"([a-z]+): (.*\S)", line)
        if not match or match.group(1) not in HEADER_KEYS:
            raise CorpusFormatError(
                f"{path}, header line {number}: {line!r} is not `KEY: VALUE` with KEY one of {', '.join(HEADER_KEYS)}"
            )
        if match.group(1) in header:
            raise CorpusFormatError(f"{path}, header line {number}: `{match.group(1)}` given twice")
        header[match.group(1)] = match.group(2)
    missing = [key for key in HEADER_KEYS if key not in header]
    if missing:
        raise CorpusFormatError(f"{path}: the header lacks {', '.join(missing)}")
    if header["format"] != FORMAT:
        raise CorpusFormatError(f"{path}: format {header['format']!r}, expected {FORMAT!r}")
    expect = header["expect"]
    if expect != ACCEPTED:
        if not expect.startswith("refused:"):
            raise CorpusFormatError(f"{path}: expect {expect!r} is neither `{ACCEPTED}` nor `refused:CODE`")
        expect = expect.removeprefix("refused:")
        try:
            stage_of(expect)
        except CorpusFormatError as exc:
            raise CorpusFormatError(f"{path}: {exc}") from None
    if not text.strip():
        raise CorpusFormatError(f"{path}: the answer after `{SEPARATOR}` is empty")
    return Answer(path.stem, expect, header["style"], header["note"], text)


def read_corpus(directory: str | Path = CORPUS_DIR) -> list[Answer]:
    """Every `*.txt` answer of `directory`, sorted by name; raises `CorpusFormatError` for a bad file or none."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CorpusFormatError(f"{directory} is not a directory of answers")
    answers = [read_answer(path) for path in sorted(directory.glob("*.txt"))]
    if not answers:
        raise CorpusFormatError(f"{directory} holds no *.txt answers")
    return answers


@dataclass(frozen=True)
class Outcome:
    """What the pipeline made of an answer."""

    code: str  # "candidate" when accepted, otherwise the refusal's code
    stage: str  # accepted, parse, policy, compile or probes
    message: str  # the refusal's message ("" when accepted)
    source: str | None  # the program the parser took out (normalised), None when it found none

    @property
    def accepted(self) -> bool:
        return self.code == ACCEPTED


def evaluate_answer(text: str) -> Outcome:
    """Take an answer through the parser, the policy, the compile and the probes (see the module docstring).

    Runs candidate code in this process: call it only from trusted tests and benchmarks. Code runs
    only after `check_source` accepted the source.
    """
    parsed = parse_response(text)
    if parsed.source is None:
        return Outcome(NO_CODE, "parse", parsed.error or "no program in the answer", None)
    try:
        check_source(parsed.source)
    except CandidateError as exc:
        return Outcome(exc.code, "policy", str(exc), parsed.source)
    try:
        function = compile_candidate(parsed.source)
    except CandidateError as exc:
        return Outcome(exc.code, "compile", str(exc), parsed.source)
    try:
        run_probes(function)
    except ProbeFailure as exc:
        return Outcome(exc.code, "probes", str(exc), parsed.source)
    return Outcome(ACCEPTED, "accepted", "", parsed.source)
