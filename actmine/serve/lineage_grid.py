"""Where a program stands among the others, for `actmine serve`: its lineage tree and the MAP-Elites grids.

The lineage page follows first parents (the program each was mutated from; the others were
inspirations): the ancestors from the seed down to the program, then its descendants, bounded by
`TREE_DEPTH` levels and `TREE_NODES` nodes. The grid page draws each island's grid as a table,
`GRID_ROWS` bins down and `GRID_COLUMNS` bins across, each occupied cell coloured by its elite's
selection score within the island, with the island's elites listed below.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Mapping, Sequence

from ..evolve.database import ProgramRecord
from ..evolve.selection import AXES, AXIS_BINS, parse_cell
from .pages import (
    cell,
    count,
    failure_text,
    lineage_url,
    num,
    number,
    program_cell,
    program_url,
    selection_score,
    short,
    table,
    text,
)
from .runs import ServedRun, Snapshot

TREE_DEPTH = 8  # descendants shown under a program in its lineage tree
TREE_NODES = 400  # and at most this many nodes in all
HEAT_LEVELS = 10  # grid cells coloured by score in this many classes (heat0 … heat9)
GRID_ROWS = ("gp", "gn")  # the MAP-Elites grid's axes (selection.AXES) laid out as rows …
GRID_COLUMNS = ("b", "sc", "fl")  # … and as columns: 12 × 32 cells per island


# ---- lineage ----------------------------------------------------------------------------------


def _node_text(record: ProgramRecord) -> str:
    what = f"{number(record.fitness)}" if record.status != "failed" else failure_text(record)
    return f"#{record.id} · {record.status} · {what} · {text(record.mutator)}: {short(record.rationale, 100)}"


def _descendants(
    key: str, record: ProgramRecord, children: Mapping[int, list[ProgramRecord]], depth: int, budget: list[int]
) -> list[dict[str, Any]]:
    """The tree below `record` through first parents, `depth` levels and `budget[0]` nodes at most."""
    nodes = []
    kids = children.get(record.id, [])
    for child in kids:
        if budget[0] <= 0:
            break
        budget[0] -= 1
        below = _descendants(key, child, children, depth - 1, budget) if depth > 1 else []
        hidden = len(children.get(child.id, [])) - len(below)
        nodes.append(
            {
                "text": _node_text(child),
                "href": lineage_url(key, child.id),
                "cls": child.status,
                "children": below,
                "more": max(hidden, 0),
            }
        )
    return nodes


def lineage_blocks(snapshot: Snapshot, program_id: int) -> dict[str, Any] | None:
    """The program's ancestors through first parents (the program each was mutated from; the
    others are listed as inspirations) from the seed down, and its descendants below it."""
    served, key = snapshot.served, snapshot.served.key
    by_id = {record.id: record for record in snapshot.records}
    if program_id not in by_id:
        return None
    chain = [int(pid) for pid in served.run.lineage(program_id)["id"].tolist()]  # newest first
    ancestors = [by_id[pid] for pid in reversed(chain) if pid in by_id]
    tree = _lineage_tree(key, by_id[program_id], ancestors, _first_parent_children(snapshot.records))
    rows = [
        [
            program_cell(key, r.id),
            count(r.proposal_index),
            cell(r.status),
            num(r.fitness),
            cell(r.mutator),
            cell(", ".join(f"#{pid}" for pid in r.parent_ids[1:]) or "—"),
            cell(short(r.rationale), cls="rationale"),
        ]
        for r in ancestors
    ]
    return {
        "tree": {"type": "tree", "root": tree},
        "ancestors": table(["program", "proposal", "status", "fitness", "mutator", "inspirations", "rationale"], rows),
    }


def _first_parent_children(records: Sequence[ProgramRecord]) -> dict[int, list[ProgramRecord]]:
    """Program id → the programs mutated from it (it is their first parent)."""
    children: dict[int, list[ProgramRecord]] = defaultdict(list)
    for record in records:
        if record.parent_ids:
            children[record.parent_ids[0]].append(record)
    return children


def _lineage_tree(
    key: str, program: ProgramRecord, ancestors: Sequence[ProgramRecord], children: Mapping[int, list[ProgramRecord]]
) -> dict[str, Any]:
    """The tree's root node: the program with its descendants, wrapped in its ancestors (seed first,
    the program last in `ancestors`), each ancestor counting its other children as `more`."""
    node = {
        "text": _node_text(program),
        "href": program_url(key, program.id),
        "cls": "current",
        "children": _descendants(key, program, children, TREE_DEPTH, [TREE_NODES]),
        "more": 0,
    }
    for ancestor in reversed(ancestors[:-1]):  # wrap the program in its ancestors, nearest first
        node = {
            "text": _node_text(ancestor),
            "href": lineage_url(key, ancestor.id),
            "cls": ancestor.status,
            "children": [node],
            "more": len(children.get(ancestor.id, [])) - 1,
        }
    return node


# ---- the MAP-Elites grid ----------------------------------------------------------------------


def _bins(axes: Sequence[str]) -> list[tuple[int, ...]]:
    """Every combination of bins of `axes`, in order."""
    combos: list[tuple[int, ...]] = [()]
    for axis in axes:
        combos = [combo + (i,) for combo in combos for i in range(AXIS_BINS[axis])]
    return combos


def _label(axes: Sequence[str], bins: tuple[int, ...]) -> str:
    return " ".join(f"{axis}{b}" for axis, b in zip(axes, bins))


def _heat(value: float | None, low: float, high: float) -> str:
    if value is None:
        return "cell heat-none"
    level = 0 if high <= low else min(HEAT_LEVELS - 1, int((value - low) / (high - low) * HEAT_LEVELS))
    return f"cell heat{level}"


def island_grid(key: str, elites: Sequence[ProgramRecord]) -> dict[str, Any]:
    """One island's grid as a table: rows are the bins of `GRID_ROWS`, columns of `GRID_COLUMNS`,
    each occupied cell the elite's id coloured by its score within the island (heat0 worst …
    heat9 best). Cells whose key is not a grid key are listed in a last row."""
    scores = [s for s in (selection_score(r) for r in elites) if s is not None]
    low, high = (min(scores), max(scores)) if scores else (0.0, 0.0)
    placed, strays = _place_elites(elites)
    columns = ["", *[_label(GRID_COLUMNS, c) for c in _bins(GRID_COLUMNS)]]
    rows = []
    for row in _bins(GRID_ROWS):
        line = [cell(_label(GRID_ROWS, row), cls="axis")]
        for column in _bins(GRID_COLUMNS):
            record = placed.get((row, column))
            if record is None:
                line.append(cell("", cls="cell empty"))
            else:
                line.append(
                    cell(
                        f"#{record.id}",
                        href=program_url(key, record.id),
                        sort=selection_score(record),
                        cls=_heat(selection_score(record), low, high),
                    )
                )
        rows.append(line)
    if strays:
        shown = strays[: len(columns) - 1]
        rows.append(
            [
                cell("other cells", cls="axis"),
                *[cell(f"#{r.id} {text(r.cell)}", href=program_url(key, r.id)) for r in shown],
            ]
        )
    return table(columns, rows, empty="empty grid")


Place = tuple[tuple[int, ...], tuple[int, ...]]  # (bins of GRID_ROWS, bins of GRID_COLUMNS)


def _place_elites(elites: Sequence[ProgramRecord]) -> tuple[dict[Place, ProgramRecord], list[ProgramRecord]]:
    """Each elite at its (row, column) of the grid, the first one kept where two share a place, and
    the elites whose cell key does not parse (listed apart)."""
    index = {axis: i for i, axis in enumerate(AXES)}
    placed: dict[Place, ProgramRecord] = {}
    strays = []
    for record in elites:
        try:
            bins = parse_cell(record.cell or "")
        except (ValueError, TypeError):
            strays.append(record)
            continue
        where = (tuple(bins[index[a]] for a in GRID_ROWS), tuple(bins[index[a]] for a in GRID_COLUMNS))
        placed.setdefault(where, record)
    return placed, strays


def grid_blocks(served: ServedRun) -> dict[str, Any]:
    """Each island's MAP-Elites grid, and its elites as a sortable list."""
    key, run_id = served.key, served.run.run_id
    sections = []
    with served.database() as db:
        for island in db.islands(run_id):
            elites = db.elites(run_id, island)
            sections.append(
                {"title": f"island {island}: {len(elites)} occupied cells", "table": island_grid(key, elites)}
            )
            rows = [
                [
                    program_cell(key, r.id),
                    cell(r.cell or "—"),
                    num(selection_score(r)),
                    num(r.fitness),
                    count(r.island),
                    cell(short(r.rationale), cls="rationale"),
                ]
                for r in elites
            ]
            sections.append(
                {
                    "title": f"island {island}: elites",
                    "table": table(
                        ["program", "cell", "score", "fitness", "from island", "rationale"], rows, sortable=True
                    ),
                }
            )
    return {"grids": {"type": "sections", "sections": sections}}
