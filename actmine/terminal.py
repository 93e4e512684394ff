"""`terminal_text`: untrusted text made safe to print on a terminal.

Messages that reach the terminal often carry text a candidate or a model wrote: an exception
message raised by a program, a rationale, a model's name, a source. A terminal interprets some
characters as commands -- ESC starts CSI/OSC sequences (colours, cursor moves, window titles,
hyperlinks, on some terminals clipboard writes), BEL rings, a carriage return or backspace
overwrites what was printed, C1 controls (U+0080..U+009F) are single-byte CSI/OSC on some
terminals, and bidirectional overrides reorder what the reader sees. `terminal_text` writes every
such character as a visible escape (`\\x1b`, `\\r`, `\\u202e`), so the text shows what it holds
and does nothing. Rich markup is another channel: print untrusted text as `rich.text.Text` or with
`markup=False`, never inside a markup string.
"""

from __future__ import annotations

from typing import Any

__all__ = ["progress_bar", "progress_text", "terminal_text"]


def progress_bar(label: str, console: Any) -> Any:
    """The project's progress bar on `console`: `label`, the bar, done of total, the time elapsed and
    the task's description (`progress_text` of it: it may quote a candidate's or a model's text); transient, so
    that it leaves the terminal as it found it. Start it, add a task, update it, stop it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}", markup=False),  # plain text: no markup, no :emoji: codes
        console=console,
        transient=True,
    )


def progress_text(text: object) -> str:
    """Untrusted text for a progress bar's description: one line, control characters as visible
    escapes. The bars show descriptions as plain text (`TextColumn(markup=False)`): as markup,
    `a[/]b` raised, `[red]` styled, `:smile:` became an emoji, and rich's own escaping showed a
    name ending in a backslash with two and `a\\[` as `a[`."""
    return terminal_text(text, keep_newlines=False)


def _visible(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def terminal_text(text: object, keep_newlines: bool = True) -> str:
    """`text` (any object, as `str`) with every non-printable character -- C0 and C1 controls
    (ESC, BEL, CR, BS, DEL, ...), format characters such as bidirectional overrides, separators
    other than the space, lone surrogates -- written as a visible backslash escape. Line feeds
    and tabs are kept when `keep_newlines` (multi-line messages, sources), escaped otherwise
    (one-line table cells)."""
    text = "" if text is None else str(text)
    kept = "\n\t" if keep_newlines else ""
    if text.isprintable() and not any(c in text for c in "\n\t"):
        return text
    return "".join(c if c.isprintable() or c in kept else _visible(c) for c in text)
