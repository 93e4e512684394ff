"""Parent selection on MAP-Elites islands: cells, parent and inspiration sampling, ring migration.

Each island keeps a MAP-Elites grid (table `elites`): one program per behaviour cell, the fittest
the island has seen in that cell. The cell key (`cell_of`, defined in `cells.py`
with the bins of its five axes) is re-exported here. Two cells are neighbours when they differ on one axis.

Selection (`sample_parent`) mixes exploitation (rank-weighted over the island's elites),
exploration (uniform over the island's occupied cells) and a global fallback (rank-weighted over
the run's top programs), and divides every weight by (1 + children)^novelty_bonus so that parents
that have already been mutated often give way to fresh ones. All randomness comes from the `rng`
argument and every candidate list is in a fixed order, so a seeded rng gives the same choices.
"""

from __future__ import annotations

import math
import random
from typing import Sequence

from .cells import (  # noqa: F401  (re-exported: the cell functions were defined here)
    AXES,
    AXIS_BINS,
    FLOPS_EDGES,
    GROWTH_POS_EDGES,
    _bin,
    _number,
    cell_distance,
    cell_of,
    parse_cell,
)
from .database import ProgramDatabase, ProgramRecord


def rank_weights(records: Sequence[ProgramRecord], temperature: float) -> list[float]:
    """exp(−rank / temperature) with ranks by selection score (the lower confidence bound of the
    fitness, or the fitness where there is none; 0 = best; equal scores, equal rank)."""
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    fitnesses = [r.score if r.score is not None else r.fitness if r.fitness is not None else -math.inf for r in records]
    ordered = sorted(fitnesses, reverse=True)
    first_rank: dict[float, int] = {}
    for rank, value in enumerate(ordered):
        first_rank.setdefault(value, rank)
    return [math.exp(-first_rank[f] / temperature) for f in fitnesses]


def _with_bonus(
    db: ProgramDatabase, pool: Sequence[ProgramRecord], weights: list[float], novelty_bonus: float
) -> list[float]:
    if not novelty_bonus:
        return weights
    counts = db.children_counts([r.id for r in pool])
    return [w * (1.0 + counts[r.id]) ** -novelty_bonus for w, r in zip(weights, pool)]


def sample_parent(
    db: ProgramDatabase,
    run_id: int,
    island: int,
    rng: random.Random,
    exploitation: float = 0.6,
    exploration: float = 0.3,
    novelty_bonus: float = 0.5,
    temperature: float = 3.0,
    top_k: int = 10,
) -> ProgramRecord | None:
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


def sample_inspirations(
    db: ProgramDatabase, run_id: int, island: int, parent: ProgramRecord | None, k: int, rng: random.Random
) -> list[ProgramRecord]:
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
        close = (
            parent is not None
            and parent.cell is not None
            and elite.cell is not None
            and cell_distance(parent.cell, elite.cell) <= 1
        )
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


def migrate_ring(
    db: ProgramDatabase, run_id: int, islands: int | Sequence[int], k: int = 1
) -> list[tuple[int, int, int]]:
    """Each island's k fittest elites are offered to the next island on the ring (island i to
    island (i + 1) mod n), each taking its own cell there if the cell is empty or it is fitter.
    The elites are chosen before any move, so a program travels one step per call; all moves are
    one transaction. `islands` is a count n (islands 0 … n−1) or the ring's island ids in order.
    Returns (program_id, from_island, to_island) for each move that took a cell."""
    ring = list(range(islands)) if isinstance(islands, int) else list(islands)
    if len(ring) < 2 or k <= 0:
        return []
    outgoing = [(source, target, db.elites(run_id, source)[:k]) for source, target in zip(ring, ring[1:] + ring[:1])]
    moved = []
    with db.transaction():
        for source, target, elites in outgoing:
            for elite in elites:
                if db.move_to_island(run_id, elite.id, target):
                    moved.append((elite.id, source, target))
    return moved
