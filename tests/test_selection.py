"""Selection: MAP-Elites cells, parent and inspiration sampling, ring migration."""

from __future__ import annotations

import itertools
import random
from collections import Counter

import pytest

from actmine.evolve.database import ProgramDatabase, ProgramRecord
from actmine.evolve.selection import (cell_distance, cell_of, migrate_ring, parse_cell, rank_weights,
                                      sample_inspirations, sample_parent)


def descriptors(growth_pos=1.0, growth_neg=0.0, sign_changes=0, bounded=False) -> dict:
    return {"value_at_0": 0.0, "slope_at_0": 0.0, "growth_pos": growth_pos, "growth_neg": growth_neg,
            "sign_changes": sign_changes, "monotone": sign_changes == 0, "bounded": bounded, "mean_curvature": 0.1}


def test_cell_of_bins():
    def axes(flops=1.0, **kw):
        return parse_cell(cell_of(descriptors(**kw), {"flops_per_element": flops}))

    assert cell_of(descriptors(), {"flops_per_element": 1.0}) == "gp2.gn1.sc0.b0.fl0"   # relu
    for value, expected in [(-3.0, 0), (0.0, 0), (0.2, 0), (0.21, 1), (0.8, 1), (0.81, 2), (1.2, 2), (1.21, 3), (10, 3)]:
        assert axes(growth_pos=value)[0] == expected, value
    for value, expected in [(-10.0, 0), (-0.21, 0), (-0.2, 1), (0.0, 1), (0.01, 1), (0.2, 1), (0.21, 2), (1.0, 2)]:
        assert axes(growth_neg=value)[1] == expected, value
    for value, expected in [(0, 0), (1, 1), (2, 2), (3, 2), (4, 3), (17, 3)]:
        assert axes(sign_changes=value)[2] == expected, value
    assert axes(bounded=True)[3] == 1 and axes(bounded=False)[3] == 0
    for value, expected in [(1.0, 0), (4.0, 0), (4.5, 1), (16.0, 1), (16.01, 2), (64.0, 2), (64.5, 3), (200.0, 3)]:
        assert axes(flops=value)[4] == expected, value
    with pytest.raises(ValueError):
        cell_of({"growth_pos": 1.0}, {"flops_per_element": 1.0})
    with pytest.raises(ValueError):
        cell_of(descriptors(), {})
    with pytest.raises(ValueError):
        parse_cell("gp1.gn1")
    assert cell_distance("gp2.gn1.sc0.b0.fl0", "gp2.gn1.sc0.b0.fl0") == 0
    assert cell_distance("gp2.gn1.sc0.b0.fl0", "gp2.gn1.sc1.b0.fl0") == 1
    assert cell_distance("gp2.gn1.sc0.b0.fl0", "gp0.gn1.sc0.b1.fl1") == 3


def test_cell_of_real_probes():
    import torch

    from actmine.candidate.probes import run_probes

    def cell(f):
        probes = run_probes(f)
        return cell_of(probes["descriptors"], probes)

    assert cell(torch.relu) == "gp2.gn1.sc0.b0.fl0"
    assert cell(torch.tanh) == "gp0.gn1.sc0.b1.fl1"
    assert cell(torch.sin) == "gp0.gn1.sc3.b1.fl1"
    assert cell(torch.nn.functional.gelu) == "gp2.gn1.sc1.b0.fl1"


# --------------------------------------------------------------------------------------------
# A populated database
# --------------------------------------------------------------------------------------------

CELLS = [f"gp{a}.gn{b}.sc{c}.b0.fl0" for a, b, c in itertools.product(range(4), range(3), range(4))]


class Search:
    def __init__(self, path):
        self.db = ProgramDatabase(path)
        self.run = self.db.create_run({"test": True}, seed=0)
        self.index = 0

    def add(self, fitness, cell, island=0, status="ok", parent_ids=()):
        rec = ProgramRecord(run_id=self.run, proposal_index=self.index, source=f"# program {self.index}",
                            fitness=fitness, cell=cell, island=island, status=status, parent_ids=list(parent_ids),
                            failure_stage=None if status == "ok" else "train",
                            failure_code=None if status == "ok" else "non_finite")
        self.index += 1
        return self.db.add_program(rec)


@pytest.fixture
def search(tmp_path):
    s = Search(tmp_path / "search.db")
    yield s
    s.db.close()


def test_no_parent_on_an_empty_island(search):
    assert sample_parent(search.db, search.run, 0, random.Random(0)) is None
    search.add(None, CELLS[0], status="failed")                     # failures never make a parent
    assert sample_parent(search.db, search.run, 0, random.Random(0)) is None
    search.add(0.1, CELLS[0], island=1)
    assert sample_parent(search.db, search.run, 0, random.Random(0)) is None
    assert sample_parent(search.db, search.run, 1, random.Random(0)).island == 1
    with pytest.raises(ValueError):
        sample_parent(search.db, search.run, 1, random.Random(0), exploitation=0.8, exploration=0.3)


def test_sampling_is_deterministic_given_the_seed(search):
    for i in range(12):
        search.add(i * 0.1, CELLS[i])
    for i in range(4):
        search.add(i * 0.3, CELLS[i], island=1)

    def draws(seed):
        rng = random.Random(seed)
        parents = [sample_parent(search.db, search.run, 0, rng) for _ in range(40)]
        inspirations = [[r.id for r in sample_inspirations(search.db, search.run, 0, p, 3, rng)] for p in parents[:10]]
        return [p.id for p in parents], inspirations

    assert draws(1) == draws(1)
    assert draws(1) != draws(2)


def test_exploitation_favours_fitter_parents(search):
    ids = [search.add(i * 0.1, CELLS[i]) for i in range(10)]          # ids[9] is the fittest
    rng = random.Random(3)
    picks = Counter(sample_parent(search.db, search.run, 0, rng, exploitation=1.0, exploration=0.0,
                                  novelty_bonus=0.0).id for _ in range(2000))
    assert picks[ids[9]] > picks[ids[6]] > picks[ids[3]] >= picks[ids[0]]
    assert picks[ids[9]] > 500 and picks[ids[0]] < 100
    uniform = Counter(sample_parent(search.db, search.run, 0, rng, exploitation=0.0, exploration=1.0,
                                    novelty_bonus=0.0).id for _ in range(2000))
    assert set(uniform) == set(ids) and all(120 < n < 280 for n in uniform.values())
    weights = rank_weights(search.db.elites(search.run, 0), temperature=3.0)
    assert weights == sorted(weights, reverse=True) and weights[0] == 1.0


def test_rank_weights_give_ties_equal_weight(search):
    a, b, c = search.add(0.5, CELLS[0]), search.add(0.5, CELLS[1]), search.add(0.1, CELLS[2])
    weights = rank_weights(search.db.elites(search.run, 0), temperature=2.0)
    assert weights[0] == weights[1] == 1.0 and weights[2] == pytest.approx(2.718281828 ** -1)
    assert {a, b, c}


def test_children_make_a_parent_less_likely(search):
    busy = search.add(0.2, CELLS[0])
    fresh = search.add(0.2, CELLS[1])
    for _ in range(8):                                               # 8 failed children of `busy`
        search.add(None, None, status="failed", parent_ids=[busy])
    assert search.db.children_count(busy) == 8
    rng = random.Random(5)
    picks = Counter(sample_parent(search.db, search.run, 0, rng).id for _ in range(1500))
    # weights 1/sqrt(9) vs 1: about a quarter of the draws
    assert 0.15 < picks[busy] / 1500 < 0.35 and picks[fresh] > 2 * picks[busy]
    flat = Counter(sample_parent(search.db, search.run, 0, rng, novelty_bonus=0.0).id for _ in range(1500))
    assert 0.4 < flat[busy] / 1500 < 0.6


def test_the_global_fallback_reaches_other_islands(search):
    search.add(0.0, CELLS[0])
    far = search.add(2.0, CELLS[1], island=1)
    rng = random.Random(0)
    picks = Counter(sample_parent(search.db, search.run, 0, rng, exploitation=0.0, exploration=0.0).id
                    for _ in range(200))
    assert picks[far] > 80
    picks = Counter(sample_parent(search.db, search.run, 0, rng, exploitation=0.5, exploration=0.5).id
                    for _ in range(200))
    assert picks[far] == 0


def test_inspirations_prefer_neighbours_exclude_the_parent_and_are_distinct(search):
    parent_cell = "gp2.gn1.sc0.b0.fl0"
    parent = search.add(1.0, parent_cell)
    neighbours = {search.add(0.1, "gp2.gn1.sc1.b0.fl0"), search.add(0.2, "gp1.gn1.sc0.b0.fl0"),
                  search.add(0.3, "gp2.gn1.sc0.b1.fl0")}
    distant = {search.add(0.9, "gp0.gn0.sc3.b1.fl3"), search.add(0.8, "gp3.gn2.sc0.b0.fl2")}
    elsewhere = {search.add(5.0, CELLS[0], island=1), search.add(4.0, CELLS[1], island=1)}
    record = search.db.get(parent)
    rng = random.Random(11)
    seen_orders = set()
    for _ in range(20):
        chosen = [r.id for r in sample_inspirations(search.db, search.run, 0, record, 3, rng)]
        assert set(chosen) == neighbours                              # the neighbours first, in random order
        seen_orders.add(tuple(chosen))
    assert len(seen_orders) > 1
    chosen = [r.id for r in sample_inspirations(search.db, search.run, 0, record, 5, rng)]
    assert set(chosen[:3]) == neighbours and chosen[3:] == [min(distant), max(distant)]   # then fittest others
    everything = [r.id for r in sample_inspirations(search.db, search.run, 0, record, 20, rng)]
    assert parent not in everything and len(everything) == len(set(everything)) == 7
    assert set(everything) == neighbours | distant | elsewhere        # the global top fills the gap
    assert sample_inspirations(search.db, search.run, 0, record, 0, rng) == []
    no_parent = [r.id for r in sample_inspirations(search.db, search.run, 0, None, 2, rng)]
    assert no_parent == [parent, min(distant)]                       # fittest of the island
    # a parent from another island is excluded from the global top too
    visitor = search.db.get(min(elsewhere))
    assert visitor.id not in [r.id for r in sample_inspirations(search.db, search.run, 0, visitor, 20, rng)]


def test_migration_ring_moves_top_elites_one_step(search):
    db, run = search.db, search.run
    best = {i: search.add(1.0 + i, f"gp{i}.gn0.sc0.b0.fl0", island=i) for i in range(3)}
    second = {i: search.add(0.5 + i, f"gp{i}.gn2.sc0.b0.fl0", island=i) for i in range(3)}
    moved = migrate_ring(db, run, 3, k=1)
    assert sorted(moved) == sorted([(best[0], 0, 1), (best[1], 1, 2), (best[2], 2, 0)])
    for i in range(3):
        grid = db.grid(run, i)
        assert grid[f"gp{(i - 1) % 3}.gn0.sc0.b0.fl0"] == best[(i - 1) % 3]   # the migrant arrived in its cell
        assert best[(i + 1) % 3] not in grid.values()                   # nothing travelled two steps
        assert len(grid) == 3
    assert second
    # a worse migrant does not displace a fitter occupant of the same cell
    strong = search.add(10.0, "gp3.gn1.sc0.b0.fl0", island=1)
    weak = search.add(9.0, "gp3.gn1.sc0.b0.fl0", island=0)
    moved = migrate_ring(db, run, [0, 1], k=1)
    assert (weak, 0, 1) not in moved and db.grid(run, 1)["gp3.gn1.sc0.b0.fl0"] == strong
    assert (strong, 1, 0) in moved and db.grid(run, 0)["gp3.gn1.sc0.b0.fl0"] == strong
    assert migrate_ring(db, run, 1) == [] and migrate_ring(db, run, [0], k=3) == []
