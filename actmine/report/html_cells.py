"""The HTML building blocks of the report: escaping, number formats, table cells, tables, images.

Every cell that shows text from a run goes through `_e` (markup escaped, control characters made
visible), so the sections build their tables from these and never write a raw `<td>` of their own.
"""

from __future__ import annotations

import html
import math
from typing import Any, Iterable, Sequence

import actmine.report.plots as plots

from ..terminal import terminal_text
from .results import _program_id


def _e(value: Any) -> str:
    """Untrusted text as HTML: markup characters escaped, and control characters (ESC, BEL, ...;
    invalid in HTML, and live if the page is printed on a terminal) shown as visible escapes."""
    return html.escape(terminal_text("" if value is None else value), quote=True)


TABLE_TEXT = 300  # a rationale in a table (the program's own section shows more)
SECTION_TEXT = 200_000  # one text of a program shown at all (LLM answers are stored up to this)


def cut_text(value: Any, limit: int) -> str:
    """Text from a run cut to `limit` characters, saying how much is left out (a hand-edited row
    of megabytes must not make the page megabytes)."""
    text = "" if value is None else str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]} … ({len(text) - limit:,} more characters in the run's database)"


def _num(value: Any, digits: int = 4, signed: bool = True) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    try:
        return f"{float(value):+.{digits}f}" if signed else f"{float(value):.{digits}g}"
    except (TypeError, ValueError):
        return _e(value)


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], css_class: str = "") -> str:
    """`rows` cells are already-escaped HTML. The table sits in a box that scrolls sideways
    (`table-box`), so a table wider than the window (many families, long rationales) never widens
    the page."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(rows_cell for rows_cell in row) + "</tr>" for row in rows)
    return (
        f'<div class="table-box"><table class="{css_class}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _td(text: str, num: bool = False, raw: bool = False, css: str = "") -> str:
    classes = " ".join(c for c in ("num" if num else "", css) if c)
    return (
        f'<td class="{classes}">' + (text if raw else _e(text)) + "</td>"
        if classes
        else "<td>" + (text if raw else _e(text)) + "</td>"
    )


def _img(fig: Any, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="{plots.data_uri(fig)}">'


def _finite(value: Any) -> float | None:
    """A number from a results row as a float, or None (missing, text, bool, not finite)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _with_se(fitness: Any, se: Any) -> str:
    """`+0.1234 ± 0.0100` (the ± part only when a standard error is known)."""
    spread = _finite(se)
    return _num(fitness) + (f" ± {spread:.4f}" if spread is not None else "")


def _signed(value: Any, digits: int = 3) -> str:
    """A signed number with a real minus sign (for the comparisons' sentences)."""
    number = _finite(value)
    return "—" if number is None else f"{number:+.{digits}f}".replace("-", "\u2212")


def _program_cell(program_id: Any, linked: set[int]) -> str:
    """The program column: a link to its section when the report has one, `—` for a reference."""
    pid = _program_id(program_id)
    if pid is None:
        return _td("—")
    return _td(f'<a href="#program-{pid}">#{pid}</a>', raw=True) if pid in linked else _td(f"#{pid}")
