"""The blocks every page of `actmine serve` is made of, the viewer's URLs, and text and numbers as shown.

Every page is a set of named **blocks**, each a small dict that both the Jinja templates (first
render) and `static/viewer.js` (every poll) know how to draw, so the two can never disagree:

- `{"type": "table", "columns": [...], "rows": [[cell, ...], ...], "sortable", "filterable",
  "facets": [column index, ...], "empty": text}`; a **cell** is `{"text", "href", "sort", "cls"}`
  (`sort`: the number a sortable column orders by, None for text);
- `{"type": "tree", "root": node}`, a node `{"text", "href", "cls", "children": [...], "more": n}`;
- `{"type": "image", "src", "alt"}` (the src carries the data's version, so a new picture is
  fetched only when the data changed);
- `{"type": "sections", "sections": [{"title", "table"}, ...]}` (the grid: one table per island).

The pages themselves are built in `run_pages.py` (overview, run, leaderboard, comparison),
`program_page.py` (one program) and `lineage_grid.py` (lineage tree, MAP-Elites grids), from the
read-only snapshots of `runs.py`.

Text from the database (sources, rationales, names, messages) is untrusted: it is kept as text
here (control and bidirectional characters made visible by `terminal_text`, as in the report) and
escaped where it lands: by Jinja's autoescape in HTML, by `textContent` in the browser. The only
markup made anywhere in the viewer is Pygments' highlighting of a source (Pygments escapes the text
it wraps) and the typeset formula (`report.typeset.formula_svg`: outlines only, nothing from the
text), both wrapped in `Markup` in `program_page.py` so that no template ever needs `|safe`.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

from ..evolve.database import ProgramRecord
from ..terminal import terminal_text

SHORT_TEXT = 160  # rationales in tables are cut to this many characters (the program page has it all)


# --------------------------------------------------------------------------------------------
# URLs (the routes of app.py; keys are digits, ids integers: nothing from the database in a URL)
# --------------------------------------------------------------------------------------------


def run_url(key: str) -> str:
    return f"/run/{key}"


def leaderboard_url(key: str) -> str:
    return f"/run/{key}/leaderboard"


def grid_url(key: str) -> str:
    return f"/run/{key}/grid"


def program_url(key: str, program_id: int) -> str:
    return f"/run/{key}/program/{int(program_id)}"


def lineage_url(key: str, program_id: int) -> str:
    return f"/run/{key}/lineage/{int(program_id)}"


# --------------------------------------------------------------------------------------------
# Cells, tables and numbers
# --------------------------------------------------------------------------------------------


def text(value: Any, newlines: bool = False) -> str:
    """Untrusted text as shown: control and bidirectional characters visible (`terminal_text`);
    without `newlines`, one line (line breaks and tabs become spaces)."""
    value = "" if value is None else str(value)
    if not newlines:
        value = value.replace("\r\n", " ").replace("\n", " ").replace("\t", " ")
    return terminal_text(value, keep_newlines=newlines)


def short(value: Any, limit: int = SHORT_TEXT) -> str:
    """One line of text, cut to `limit` characters."""
    line = text(value)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def finite(value: Any) -> float | None:
    """A number from the database as a float, or None (missing, text, bool, NaN, ±inf)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def number(value: Any, digits: int = 4, signed: bool = True) -> str:
    """`+0.1234` (or `0.1234` unsigned); `—` when there is no finite number."""
    value = finite(value)
    if value is None:
        return "—"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}g}"


def cell(value: Any, href: str | None = None, sort: Any = None, cls: str = "") -> dict[str, Any]:
    """A table cell: text (untrusted text made visible), an optional link built here, the number
    a sortable column orders it by, a CSS class chosen here."""
    return {"text": short(value, 10_000), "href": href, "sort": finite(sort), "cls": cls}


def num(value: Any, digits: int = 4, signed: bool = True) -> dict[str, Any]:
    """A number cell, right-aligned, sorted by its value."""
    return cell(number(value, digits, signed), sort=value, cls="num")


def count(value: int) -> dict[str, Any]:
    return cell(f"{value:,}", sort=value, cls="num")


def program_cell(key: str, program_id: Any) -> dict[str, Any]:
    """`#12` linking to the program's page, `—` where there is none."""
    if isinstance(program_id, bool) or not isinstance(program_id, int):
        return cell("—")
    return cell(f"#{program_id}", href=program_url(key, program_id), sort=program_id)


def table(
    columns: Sequence[str],
    rows: Iterable[Sequence[dict[str, Any]]],
    *,
    sortable: bool = False,
    filterable: bool = False,
    facets: Sequence[int] = (),
    empty: str = "nothing yet",
) -> dict[str, Any]:
    return {
        "type": "table",
        "columns": list(columns),
        "rows": [list(row) for row in rows],
        "sortable": sortable,
        "filterable": filterable,
        "facets": list(facets),
        "empty": empty,
    }


def fields(pairs: Iterable[tuple[str, dict[str, Any] | str]]) -> dict[str, Any]:
    """A two-column table of labelled values (a value: a cell, or text)."""
    return table(["", ""], [[cell(label), value if isinstance(value, dict) else cell(value)] for label, value in pairs])


def image(src: str, alt: str) -> dict[str, Any]:
    return {"type": "image", "src": src, "alt": alt}


def with_se(fitness: Any, se: Any) -> str:
    """`+0.1234 ± 0.0100` (the ± part only when a standard error is known)."""
    spread = finite(se)
    return number(fitness) + (f" ± {spread:.4f}" if spread is not None else "")


def selection_score(record: ProgramRecord) -> float | None:
    """What selection ranks by: the score (lower confidence bound), else the fitness."""
    return finite(record.score) if finite(record.score) is not None else finite(record.fitness)


def failure_text(record: ProgramRecord) -> str:
    """`stage:code` of a failed program, as shown (`text`: the database's words are untrusted)."""
    if record.status != "failed":
        return ""
    return text(":".join(str(part) for part in (record.failure_stage, record.failure_code) if part) or "failed")
