"""Reading a chat model's answer: the program it wrote and why, whatever the answer's shape.

`parse_response` finds the program in an answer (several code blocks, missing fences, `<think>`
text), normalises it (`actmine.language.normalise`) and takes the prose around it as the rationale.
The LLM mutator (`actmine.evolve.mutators.llm`) parses every answer with it, and `actmine llm check`
too; nothing here runs the model's code.
"""

from __future__ import annotations

import ast
import itertools
import re
from dataclasses import dataclass

from ...language.normalise import normalise

ENTRY = "activation_function"
#: An answer is kept (stored, parsed, shown) up to this many characters: `max_tokens` keeps an
#: honest answer far below it (1,000 tokens ≈ 4 KB), and the rest of a runaway one is cut.
MAX_ANSWER_CHARS = 200_000
#: How many trimmings of an unfenced block `_unfenced_program` tries (each an `ast.parse`).
MAX_UNFENCED_ATTEMPTS = 400
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n(.*?)(?:\n[ \t]*```|\Z)", re.S)
_THINK = re.compile(r"<(think|thinking|reasoning)>.*?(</\1>|\Z)", re.S | re.I)
_CODE_START = re.compile(r"^(def |async def |import |from \S+ import |@|[A-Za-z_]\w*\s*(:[^=]+)?=[^=]|#)")


@dataclass(frozen=True)
class ParsedAnswer:
    source: str | None  # the normalised program; None: none could be found (the proposal fails as `no_code`)
    rationale: str
    error: str | None = None
    changes: tuple[str, ...] = ()  # what the normaliser changed in the chosen code, one line each


def answer_text(text: object) -> str | None:
    """A model's answer as text this program can store and show: a string (None stays None), its
    lone surrogates (which no UTF-8 encoder accepts: SQLite, a file, a terminal) replaced by U+FFFD,
    cut to `MAX_ANSWER_CHARS`."""
    if text is None:
        return None
    text = str(text)[:MAX_ANSWER_CHARS]
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
        return True
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False


def _defines_entry(code: str) -> bool:
    return re.search(rf"^\s*def\s+{ENTRY}\s*\(", code, re.M) is not None


def _unfenced_program(text: str) -> str | None:
    """The code around `def activation_function` in an answer without fences."""
    lines = text.splitlines()
    entry = next((i for i, line in enumerate(lines) if re.match(rf"\s*def\s+{ENTRY}\s*\(", line)), None)
    if entry is None:
        return None
    start = entry
    while start > 0 and (
        not lines[start - 1].strip() or lines[start - 1].startswith((" ", "\t")) or _CODE_START.match(lines[start - 1])
    ):
        start -= 1
    end = entry + 1
    while end < len(lines) and (
        not lines[end].strip() or lines[end].startswith((" ", "\t")) or _CODE_START.match(lines[end])
    ):
        end += 1
    # trim prose picked up at either end until the block parses (a bounded number of tries: each is
    # a parse of the block, and a block of n lines has n² trimmings)
    trimmings = ((lo, hi) for lo in range(start, entry + 1) for hi in range(end, entry, -1))
    for lo, hi in itertools.islice(trimmings, MAX_UNFENCED_ATTEMPTS):
        code = "\n".join(lines[lo:hi]).strip("\n")
        if _parses(code) and _defines_entry(code):
            return code + "\n"
    return None


def _one_line(text: str, limit: int = 300) -> str:
    text = re.sub(r"\s+", " ", text).strip().strip("#*: ").strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _defines_entry_at_top(code: str) -> bool:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return any(isinstance(node, ast.FunctionDef) and node.name == ENTRY for node in tree.body)


def parse_response(text: str | None) -> ParsedAnswer:
    """The program and rationale in a model's answer.

    Thinking sections are dropped, and each fenced code block is normalised
    (`actmine.language.normalise`) before it is judged: of the blocks, the last one whose
    normalised form parses and defines `activation_function` at its top level wins (models often
    show the parent first; a block whose only problem is boilerplate the normaliser removes, such
    as a `__main__` self-test or an nn.Module wrapper it turns into a function, still counts).
    Failing that, the last block that mentions `def activation_function` is taken anyway, so that
    the policy says what is wrong with it (a syntax error, a method instead of a function).
    Without fences the code around `def activation_function` is taken. The rationale is the prose
    before the program (or after it, when there is none before), as one line. `changes` lists what
    the normaliser changed in the chosen code.
    """
    text = answer_text(text)
    if not text or not text.strip():
        return ParsedAnswer(None, "", "the answer was empty")
    visible = _THINK.sub("", text)
    if "</think>" in visible:  # an opening tag cut off by the server's chat template
        visible = visible.rsplit("</think>", 1)[1]
    blocks = [
        (m.start(), m.end(), normalise(m.group(2).strip("\n") + "\n"))
        for m in _FENCE.finditer(visible)
        if m.group(1).lower() in ("", "python", "py", "python3", "pytorch")
    ]
    chosen = next((block for block in reversed(blocks) if _defines_entry_at_top(block[2].source)), None)
    if chosen is None:  # one that defines it but does not parse, or not at the top level: the policy says why
        chosen = next((block for block in reversed(blocks) if _defines_entry(block[2].source)), None)
    if chosen is not None:
        start, end, normalised = chosen
        before, after = visible[:start], visible[end:]
        rationale = _one_line(_FENCE.sub(" ", before)) or _one_line(_FENCE.sub(" ", after))
        return ParsedAnswer(normalised.source, rationale or "(no rationale given)", changes=normalised.changes)
    code = _unfenced_program(visible)
    if code is not None:
        rationale = _one_line(visible.split(code.strip().splitlines()[0])[0])
        normalised = normalise(code)
        return ParsedAnswer(normalised.source, rationale or "(no rationale given)", changes=normalised.changes)
    why = "no code block" if not blocks else f"no code block defines {ENTRY}(x)"
    return ParsedAnswer(None, _one_line(visible), f"{why} in the answer")
