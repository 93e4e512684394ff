"""Test ids that can be passed back to pytest on its command line.

pytest escapes a parameter's text in a test id (a newline becomes `\\n`, `é` becomes `\\xe9`), and an id
with such an escape cannot be selected again by its node id: `pytest 'file.py::test[...]'` says
"not found". mutmut (benchmarks/mutation.py) runs each mutant's tests by node id, so every id must
be selectable; `conftest.py` builds ids with `readable_id` and refuses a collection that has an
escaped one.
"""

from __future__ import annotations

import re


def readable_id(text: str, limit: int = 40) -> str:
    """`text` as a test id: whitespace runs as one space, other characters pytest would escape as "?"."""
    flat = re.sub(r"\s+", " ", text).strip()
    return "".join(c if " " <= c <= "~" and c != "\\" else "?" for c in flat)[:limit]


def unselectable(node_ids: list[str]) -> list[str]:
    """The node ids that pytest cannot select again from its command line (they hold an escape)."""
    return [node_id for node_id in node_ids if "\\" in node_id]
