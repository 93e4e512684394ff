"""The MAP-Elites cell of a program: the one place it is computed (`cell_of`), read back
(`parse_cell`) and compared (`cell_distance`). Used by the database, which stores a program's
cell, and by selection, which samples parents by cell; it imports neither.

The cell key (`cell_of`) has five axes, each a small integer,
written `gp<i>.gn<j>.sc<k>.b<l>.fl<m>`:

====  ===========================  ===============================================================
axis  from                          bins
====  ===========================  ===============================================================
gp    descriptors["growth_pos"]     0: ≤ 0.2 (flat or falling towards +∞: bounded, sin, …),
      (lim f(x)/x at +∞)            1: ≤ 0.8 (sub-linear), 2: ≤ 1.2 (about linear: relu, gelu),
                                    3: > 1.2 (super-linear)
gn    descriptors["growth_neg"]     0: < −0.2 (f → +∞ as x → −∞: |x|-like),
      (lim f(x)/x at −∞)            1: |·| ≤ 0.2 (flat-ish: relu, gelu, tanh, leaky relu),
                                    2: > 0.2 (f → −∞ as x → −∞: identity-like)
sc    descriptors["sign_changes"]   0: 0 (monotone), 1: 1 (one dip or bump: gelu, silu),
      (of f' on [−5, 5])            2: 2–3, 3: ≥ 4 (oscillating: sin)
b     descriptors["bounded"]        0: unbounded, 1: bounded (|f| < 10 on [−100, 100])
fl    probes["flops_per_element"]   cost, in octaves of 4 (log2 ≤ 2, 4, 6, > 6):
                                    0: ≤ 4 (relu = 1), 1: ≤ 16 (gelu, tanh = 8), 2: ≤ 64, 3: > 64
====  ===========================  ===============================================================

4 × 3 × 4 × 2 × 4 = 384 cells per island. Two cells are neighbours when they differ on one axis.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

AXES = ("gp", "gn", "sc", "b", "fl")
AXIS_BINS = {"gp": 4, "gn": 3, "sc": 4, "b": 2, "fl": 4}
GROWTH_POS_EDGES = (0.2, 0.8, 1.2)  # bin = number of edges strictly below the value
FLOPS_EDGES = (4.0, 16.0, 64.0)


def _bin(value: float, edges: Sequence[float]) -> int:
    """0 for value ≤ edges[0], 1 for ≤ edges[1], …, len(edges) above the last."""
    for i, edge in enumerate(edges):
        if value <= edge:
            return i
    return len(edges)


def _number(mapping: dict[str, Any], key: str, what: str) -> float:
    value = mapping.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"cell_of needs a number for {what}[{key!r}], got {value!r}")
    value = float(value)
    return 0.0 if math.isnan(value) else value


def cell_of(descriptors: dict[str, Any], probes: dict[str, Any]) -> str:
    """The MAP-Elites cell key of a program from its behaviour descriptors and its probed cost
    (see the module docstring for the axes), e.g. relu -> "gp2.gn1.sc0.b0.fl0"."""
    growth_pos = _number(descriptors, "growth_pos", "descriptors")
    growth_neg = _number(descriptors, "growth_neg", "descriptors")
    sign_changes = _number(descriptors, "sign_changes", "descriptors")
    flops = _number(probes, "flops_per_element", "probes")
    bounded = descriptors.get("bounded")
    if not isinstance(bounded, bool):
        raise ValueError(f"cell_of needs a bool for descriptors['bounded'], got {bounded!r}")
    gp = _bin(growth_pos, GROWTH_POS_EDGES)
    gn = 0 if growth_neg < -0.2 else (1 if growth_neg <= 0.2 else 2)
    sc = 0 if sign_changes < 1 else 1 if sign_changes < 2 else 2 if sign_changes < 4 else 3
    fl = _bin(flops, FLOPS_EDGES)
    return f"gp{gp}.gn{gn}.sc{sc}.b{int(bounded)}.fl{fl}"


def parse_cell(cell: str) -> tuple[int, ...]:
    """The bin on each axis of `AXES`, e.g. "gp2.gn1.sc0.b0.fl0" -> (2, 1, 0, 0, 0)."""
    parts = cell.split(".")
    if len(parts) != len(AXES) or any(not p.startswith(a) for p, a in zip(parts, AXES)):
        raise ValueError(f"not a cell key: {cell!r}")
    return tuple(int(p[len(a) :]) for p, a in zip(parts, AXES))


def cell_distance(a: str, b: str) -> int:
    """On how many axes two cells differ (0: the same cell, 1: neighbours)."""
    return sum(x != y for x, y in zip(parse_cell(a), parse_cell(b)))
