"""Text edits of a program: every rewrite edits the parsed tree and records the text range it
replaces, and `render` writes the result.

The edits are spliced into the original text, which keeps the author's comments and layout, and
the result is parsed back and compared with the edited tree; if the two differ (an unusual layout:
`import torch; x = 1`, parenthesised annotations), the edited tree is written out with
`ast.unparse` instead. Either way the rendered source means exactly the edited tree.
`_SourceEditor` is the base the normaliser's rules (`normalise_rules._Normaliser`) build on, and
what the class conversion (`normalise_classes._ClassConverter`) edits through.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Callable


@dataclass
class _Edit:
    start: int
    end: int
    text: Callable[[], str]  # computed at the end, from the final tree
    order: int


class _SourceEditor:
    """A parsed program, its text, and the edits made to both so far (`changes`: one line per rule
    application, for `Normalised.changes`)."""

    def __init__(self, source: str):
        self.source = source
        self.tree = ast.parse(source)
        self.changes: list[str] = []
        self.edits: list[_Edit] = []
        self.text_ok = True  # False once an edit has no place in the text: written with ast.unparse
        starts, offset = [0], 0
        for line in re.split(r"(?<=\r\n)|(?<=\r)(?!\n)|(?<=\n)", source):
            offset += len(line)
            starts.append(offset)
        self.line_starts = starts
        self.lines = [source[a:b] for a, b in zip(starts, starts[1:])]

    # -- positions --

    def offset(self, line: int, col: int) -> int:
        """The character offset of (line, UTF-8 byte column)."""
        text = self.lines[line - 1] if line - 1 < len(self.lines) else ""
        return self.line_starts[line - 1] + len(text.encode("utf-8")[:col].decode("utf-8", "replace"))

    def span(self, node: ast.AST) -> tuple[int, int] | None:
        if getattr(node, "end_lineno", None) is None or getattr(node, "lineno", None) is None:
            return None
        return self.offset(node.lineno, node.col_offset), self.offset(node.end_lineno, node.end_col_offset)

    def statement_span(self, node: ast.stmt) -> tuple[int, int] | None:
        """The span of a statement with its decorators."""
        span = self.span(node)
        if span is None:
            return None
        decorators = getattr(node, "decorator_list", None)
        if decorators:
            first = self.span(decorators[0])
            if first is not None:
                at = self.source.rfind("@", 0, first[0])
                span = (at if at >= 0 else first[0], span[1])
        return span

    def edit(self, span: tuple[int, int] | None, text: Callable[[], str] | str):
        if span is None:
            self.text_ok = False
            return
        render = text if callable(text) else (lambda t=text: t)
        self.edits.append(_Edit(span[0], span[1], render, len(self.edits)))

    def replace_node(self, old: ast.AST, new: ast.AST, parent: ast.AST):
        """Put `new` where `old` is in `parent`, and edit the text of `old` into `new`'s."""
        for field, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, field, new)
                break
            if isinstance(value, list) and any(v is old for v in value):
                value[[i for i, v in enumerate(value) if v is old][0]] = new
                break
        else:
            raise ValueError("node not found in its parent")
        ast.copy_location(new, old)
        if hasattr(old, "end_lineno"):
            new.end_lineno, new.end_col_offset = old.end_lineno, old.end_col_offset
        span = self.statement_span(old) if isinstance(old, ast.stmt) else self.span(old)
        indent = (
            self.lines[old.lineno - 1][: len(self.lines[old.lineno - 1]) - len(self.lines[old.lineno - 1].lstrip())]
            if isinstance(old, ast.stmt) and getattr(old, "lineno", None)
            else ""
        )
        self.edit(span, lambda: ast.unparse(new).replace("\n", "\n" + indent))

    def remove_statement(self, body: list[ast.stmt], statement: ast.stmt):
        """Remove `statement` from `body` (a `pass` takes its place if the body would be empty)."""
        index = [i for i, s in enumerate(body) if s is statement][0]
        span = self.statement_span(statement)
        if len(body) == 1 and body is not self.tree.body:
            body[0] = ast.copy_location(ast.Pass(), statement)
            self.edit(span, "pass")
            return
        del body[index]
        if span is None:
            self.text_ok = False
            return
        start, end = span
        line_start = self.source.rfind("\n", 0, start) + 1
        line_start = max(line_start, self.source.rfind("\r", 0, start) + 1)
        tail = re.match(r"[ \t\f]*(#[^\r\n]*)?(\r\n|\r|\n|$)", self.source[end:])
        if self.source[line_start:start].strip() == "" and tail is not None:
            start, end = line_start, end + tail.end()
            # a blank line on both sides: take the ones after too, so no gap of blank lines is left
            before = self.source[:start]
            if before.endswith(("\n\n", "\r\n\r\n", "\r\r")) or start == 0:
                blank = re.match(r"(?:[ \t\f]*(?:\r\n|\r|\n))+", self.source[end:])
                if blank:
                    end += blank.end()
        self.edit((start, end), "")

    def bodies(self):
        """Every statement list of the tree, with the list itself."""
        for node in ast.walk(self.tree):
            for field in ("body", "orelse", "finalbody"):
                value = getattr(node, field, None)
                if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                    yield node, value
            if isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
                for handler in node.handlers:
                    yield handler, handler.body

    def render(self) -> str:
        expected = ast.dump(self.tree)
        if self.text_ok:
            text = self.splice()
            if text is not None:
                try:
                    if ast.dump(ast.parse(text)) == expected:
                        return text
                except (SyntaxError, ValueError, RecursionError, MemoryError):
                    pass
        return ast.unparse(self.tree) + "\n"

    def splice(self) -> str | None:
        """The source with every edit applied; None when two edits overlap without nesting."""
        # outermost first; an edit inside another is already part of the outer one's new text
        edits = sorted(self.edits, key=lambda e: (e.start, -e.end, -e.order))
        kept: list[_Edit] = []
        for edit in edits:
            if kept and edit.start < kept[-1].end:
                if edit.end <= kept[-1].end:
                    continue  # nested in the previous edit (same span: the later edit was sorted first)
                return None
            kept.append(edit)
        out, position = [], 0
        for edit in kept:
            out.append(self.source[position : edit.start])
            out.append(edit.text())
            position = edit.end
        out.append(self.source[position:])
        text = "".join(out)
        text = re.sub(r"\A(?:[ \t\f]*(?:\r\n|\r|\n))+", "", text)
        return text.rstrip() + "\n"
