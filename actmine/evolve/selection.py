"""Parent selection on MAP-Elites islands: cells, parent and inspiration sampling, ring migration.

Each island keeps a MAP-Elites grid (table `elites`): one program per behaviour cell, the fittest
the island has seen in that cell. The cell key (`cell_of`) has five axes, each a small integer,
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

Selection (`sample_parent`) mixes exploitation (rank-weighted over the island's elites),
exploration (uniform over the island's occupied cells) and a global fallback (rank-weighted over
the run's top programs), and divides every weight by (1 + children)^novelty_bonus so that parents
that have already been mutated often give way to fresh ones. All randomness comes from the `rng`
argument and every candidate list is in a fixed order, so a seeded rng gives the same choices.
"""

from __future__ import annotations

import math
import random
from typing import Any, Sequence

from .database import ProgramDatabase, ProgramRecord

AXES = ("gp", "gn", "sc", "b", "fl")
AXIS_BINS = {"gp": 4, "gn": 3, "sc": 4, "b": 2, "fl": 4}
GROWTH_POS_EDGES = (0.2, 0.8, 1.2)        # bin = number of edges strictly below the value
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
    return tuple(int(p[len(a):]) for p, a in zip(parts, AXES))


def cell_distance(a: str, b: str) -> int:
    """On how many axes two cells differ (0: the same cell, 1: neighbours)."""
    return sum(x != y for x, y in zip(parse_cell(a), parse_cell(b)))


def rank_weights(records: Sequence[ProgramRecord], temperature: float) -> list[float]:
    """exp(−rank / temperature) with ranks by selection score (the lower confidence bound of the
    fitness, or the fitness where there is none; 0 = best; equal scores, equal rank)."""
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    fitnesses = [r.score if r.score is not None else r.fitness if r.fitness is not None else -math.inf
                 for r in records]
    ordered = sorted(fitnesses, reverse=True)
    first_rank: dict[float, int] = {}
    for rank, value in enumerate(ordered):
        first_rank.setdefault(value, rank)
    return [math.exp(-first_rank[f] / temperature) for f in fitnesses]


def _with_bonus(db: ProgramDatabase, pool: Sequence[ProgramRecord], weights: list[float],
                novelty_bonus: float) -> list[float]:
    if not novelty_bonus:
        return weights
    counts = db.children_counts([r.id for r in pool])
    return [w * (1.0 + counts[r.id]) ** -novelty_bonus for w, r in zip(weights, pool)]


def sample_parent(db: ProgramDatabase, run_id: int, island: int, rng: random.Random,
                  exploitation: float = 0.6, exploration: float = 0.3, novelty_bonus: float = 0.5,
                  temperature: float = 3.0, top_k: int = 10) -> ProgramRecord | None:
    """A parent for the next proposal on `island`, or None while the island's grid is empty (no
    ok program yet: the controller seeds it).

    With probability `exploitation`, one of the island's elites, weighted exp(−rank/temperature)
    by fitness rank; with probability `exploration`, one of the island's occupied cells uniformly;
    otherwise one of the run's `top_k` programs from any island, rank-weighted. Every weight is
    multiplied by (1 + children)^−novelty_bonus (0.5: 1/sqrt(1 + children); 0: no bonus).
    """
    if not (0 <= exploitation and 0 <= exploration and exploitation + exploration <= 1 + 1e-12):
        raise ValueError("exploitation and exploration must be ≥ 0 and sum to at most 1")
    elites = db.elites(run_id, island)
    if not elites:
        return None
    draw = rng.random()
    if draw < exploitation:
        pool, weights = elites, rank_weights(elites, temperature)
    elif draw < exploitation + exploration:
        pool, weights = elites, [1.0] * len(elites)
    else:
        pool = db.top(run_id, top_k) or elites
        weights = rank_weights(pool, temperature)
    weights = _with_bonus(db, pool, weights, novelty_bonus)
    return rng.choices(pool, weights=weights, k=1)[0]


def sample_inspirations(db: ProgramDatabase, run_id: int, island: int, parent: ProgramRecord | None, k: int,
                        rng: random.Random) -> list[ProgramRecord]:
    """Up to k distinct programs to show a mutator beside `parent` (never the parent itself).

    First the island's elites in the parent's cell or a neighbouring one (differing on one axis),
    in random order; then the island's other elites, fittest first; then, if the island has fewer
    than k others, the run's top programs from any island, fittest first.
    """
    if k <= 0:
        return []
    exclude = {parent.id} if parent is not None and parent.id is not None else set()
    elites = [e for e in db.elites(run_id, island) if e.id not in exclude]
    near: list[ProgramRecord] = []
    far: list[ProgramRecord] = []
    for elite in elites:
        close = parent is not None and parent.cell is not None and elite.cell is not None \
            and cell_distance(parent.cell, elite.cell) <= 1
        (near if close else far).append(elite)
    rng.shuffle(near)
    chosen: list[ProgramRecord] = []
    seen = set(exclude)
    for record in near + far:
        if len(chosen) == k:
            return chosen
        if record.id not in seen:
            seen.add(record.id)
            chosen.append(record)
    if len(chosen) < k:
        for record in db.top(run_id, k + len(seen)):
            if len(chosen) == k:
                break
            if record.id not in seen:
                seen.add(record.id)
                chosen.append(record)
    return chosen


def migrate_ring(db: ProgramDatabase, run_id: int, islands: int | Sequence[int], k: int = 1) -> list[tuple[int, int, int]]:
    """Each island's k fittest elites are offered to the next island on the ring (island i to
    island (i + 1) mod n), each taking its own cell there if the cell is empty or it is fitter.
    The elites are chosen before any move, so a program travels one step per call; all moves are
    one transaction. `islands` is a count n (islands 0 … n−1) or the ring's island ids in order.
    Returns (program_id, from_island, to_island) for each move that took a cell."""
    ring = list(range(islands)) if isinstance(islands, int) else list(islands)
    if len(ring) < 2 or k <= 0:
        return []
    outgoing = [(source, target, db.elites(run_id, source)[:k])
                for source, target in zip(ring, ring[1:] + ring[:1])]
    moved = []
    with db.transaction():
        for source, target, elites in outgoing:
            for elite in elites:
                if db.migrate(run_id, elite.id, target):
                    moved.append((elite.id, source, target))
    return moved
