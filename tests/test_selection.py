"""Selection: MAP-Elites cells, parent and inspiration sampling, ring migration."""

from __future__ import annotations

import itertools
import math
import random
import re
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actmine.evolve.database import ProgramDatabase, ProgramRecord
from actmine.evolve.selection import (
    AXES,
    AXIS_BINS,
    cell_distance,
    cell_of,
    migrate_ring,
    parse_cell,
    rank_weights,
    sample_inspirations,
    sample_parent,
)


def descriptors(growth_pos=1.0, growth_neg=0.0, sign_changes=0, bounded=False) -> dict:
    return {
        "value_at_0": 0.0,
        "slope_at_0": 0.0,
        "growth_pos": growth_pos,
        "growth_neg": growth_neg,
        "sign_changes": sign_changes,
        "monotone": sign_changes == 0,
        "bounded": bounded,
        "mean_curvature": 0.1,
    }


def test_cell_of_bins():
    def axes(flops=1.0, **kw):
        return parse_cell(cell_of(descriptors(**kw), {"flops_per_element": flops}))

    assert cell_of(descriptors(), {"flops_per_element": 1.0}) == "gp2.gn1.sc0.b0.fl0"  # relu
    for value, expected in [
        (-3.0, 0),
        (0.0, 0),
        (0.2, 0),
        (0.21, 1),
        (0.8, 1),
        (0.81, 2),
        (1.2, 2),
        (1.21, 3),
        (10, 3),
    ]:
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

    def add(self, fitness, cell, island=0, status="ok", parent_ids=(), score=None):
        rec = ProgramRecord(
            run_id=self.run,
            proposal_index=self.index,
            source=f"# program {self.index}",
            fitness=fitness,
            cell=cell,
            island=island,
            status=status,
            parent_ids=list(parent_ids),
            failure_stage=None if status == "ok" else "train",
            failure_code=None if status == "ok" else "non_finite",
            score=score,
        )
        self.index += 1
        return self.db.add_program(rec)


@pytest.fixture
def search(tmp_path):
    s = Search(tmp_path / "search.db")
    yield s
    s.db.close()


def test_no_parent_on_an_empty_island(search):
    assert sample_parent(search.db, search.run, 0, random.Random(0)) is None
    search.add(None, CELLS[0], status="failed")  # failures never make a parent
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
    ids = [search.add(i * 0.1, CELLS[i]) for i in range(10)]  # ids[9] is the fittest
    rng = random.Random(3)
    picks = Counter(
        sample_parent(search.db, search.run, 0, rng, exploitation=1.0, exploration=0.0, novelty_bonus=0.0).id
        for _ in range(1000)
    )
    # weights exp(-rank / 3) over 10 programs: shares 0.29, 0.11, 0.04, 0.015 for ranks 0, 3, 6, 9
    assert picks[ids[9]] > picks[ids[6]] > picks[ids[3]] >= picks[ids[0]]
    assert picks[ids[9]] > 240 and picks[ids[0]] < 40
    uniform = Counter(
        sample_parent(search.db, search.run, 0, rng, exploitation=0.0, exploration=1.0, novelty_bonus=0.0).id
        for _ in range(1000)
    )
    assert set(uniform) == set(ids) and all(60 < n < 140 for n in uniform.values())
    weights = rank_weights(search.db.elites(search.run, 0), temperature=3.0)
    assert weights == sorted(weights, reverse=True) and weights[0] == 1.0


def test_rank_weights_give_ties_equal_weight(search):
    a, b, c = search.add(0.5, CELLS[0]), search.add(0.5, CELLS[1]), search.add(0.1, CELLS[2])
    weights = rank_weights(search.db.elites(search.run, 0), temperature=2.0)
    assert [e.id for e in search.db.elites(search.run, 0)] == [a, b, c]  # the weights are in this order
    assert weights[0] == weights[1] == 1.0 and weights[2] == pytest.approx(math.exp(-2 / 2.0))  # rank 2, not 1


def test_children_make_a_parent_less_likely(search):
    busy = search.add(0.2, CELLS[0])
    fresh = search.add(0.2, CELLS[1])
    for _ in range(8):  # 8 failed children of `busy`
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
    picks = Counter(
        sample_parent(search.db, search.run, 0, rng, exploitation=0.0, exploration=0.0).id for _ in range(200)
    )
    assert picks[far] > 80
    picks = Counter(
        sample_parent(search.db, search.run, 0, rng, exploitation=0.5, exploration=0.5).id for _ in range(200)
    )
    assert picks[far] == 0


def test_inspirations_prefer_neighbours_exclude_the_parent_and_are_distinct(search):
    parent_cell = "gp2.gn1.sc0.b0.fl0"
    parent = search.add(1.0, parent_cell)
    neighbours = {
        search.add(0.1, "gp2.gn1.sc1.b0.fl0"),
        search.add(0.2, "gp1.gn1.sc0.b0.fl0"),
        search.add(0.3, "gp2.gn1.sc0.b1.fl0"),
    }
    distant = {search.add(0.9, "gp0.gn0.sc3.b1.fl3"), search.add(0.8, "gp3.gn2.sc0.b0.fl2")}
    elsewhere = {search.add(5.0, CELLS[0], island=1), search.add(4.0, CELLS[1], island=1)}
    record = search.db.get(parent)
    rng = random.Random(11)
    seen_orders = set()
    for _ in range(20):
        chosen = [r.id for r in sample_inspirations(search.db, search.run, 0, record, 3, rng)]
        assert set(chosen) == neighbours  # the neighbours first, in random order
        seen_orders.add(tuple(chosen))
    assert len(seen_orders) > 1
    chosen = [r.id for r in sample_inspirations(search.db, search.run, 0, record, 5, rng)]
    assert set(chosen[:3]) == neighbours and chosen[3:] == [min(distant), max(distant)]  # then fittest others
    everything = [r.id for r in sample_inspirations(search.db, search.run, 0, record, 20, rng)]
    assert parent not in everything and len(everything) == len(set(everything)) == 7
    assert set(everything) == neighbours | distant | elsewhere  # the global top fills the gap
    assert sample_inspirations(search.db, search.run, 0, record, 0, rng) == []
    no_parent = [r.id for r in sample_inspirations(search.db, search.run, 0, None, 2, rng)]
    assert no_parent == [parent, min(distant)]  # fittest of the island
    # a parent from another island is excluded from the global top too
    visitor = search.db.get(min(elsewhere))
    assert visitor.id not in [r.id for r in sample_inspirations(search.db, search.run, 0, visitor, 20, rng)]


def test_migration_ring_moves_top_elites_one_step(search):
    db, run = search.db, search.run
    best = {i: search.add(1.0 + i, f"gp{i}.gn0.sc0.b0.fl0", island=i) for i in range(3)}
    second = {i: search.add(0.5 + i, f"gp{i}.gn2.sc0.b0.fl0", island=i) for i in range(3)}
    moved = migrate_ring(db, run, 3)  # k = 1 by default
    assert sorted(moved) == sorted([(best[0], 0, 1), (best[1], 1, 2), (best[2], 2, 0)])
    for i in range(3):
        grid = db.grid(run, i)
        assert grid[f"gp{(i - 1) % 3}.gn0.sc0.b0.fl0"] == best[(i - 1) % 3]  # the migrant arrived in its cell
        assert best[(i + 1) % 3] not in grid.values()  # nothing travelled two steps
        assert len(grid) == 3
    for i in range(3):  # only the k = 1 fittest travelled
        assert db.grid(run, i)[f"gp{i}.gn2.sc0.b0.fl0"] == second[i]
        assert all(second[i] not in db.grid(run, j).values() for j in range(3) if j != i)
    # a worse migrant does not displace a fitter occupant of the same cell
    strong = search.add(10.0, "gp3.gn1.sc0.b0.fl0", island=1)
    weak = search.add(9.0, "gp3.gn1.sc0.b0.fl0", island=0)
    moved = migrate_ring(db, run, [0, 1], k=1)
    assert (weak, 0, 1) not in moved and db.grid(run, 1)["gp3.gn1.sc0.b0.fl0"] == strong
    assert (strong, 1, 0) in moved and db.grid(run, 0)["gp3.gn1.sc0.b0.fl0"] == strong
    assert migrate_ring(db, run, 1) == [] and migrate_ring(db, run, [0], k=3) == []


# --------------------------------------------------------------------------------------------
# Cells: every axis at its edges, what is refused, the key format
# --------------------------------------------------------------------------------------------


def _expected_axes(growth_pos, growth_neg, sign_changes, bounded, flops) -> tuple[int, ...]:
    """The bins as the module docstring's table states them, written independently of the code."""
    gp = sum(growth_pos > edge for edge in (0.2, 0.8, 1.2))
    gn = 0 if growth_neg < -0.2 else 2 if growth_neg > 0.2 else 1
    sc = sum(sign_changes >= edge for edge in (1, 2, 4))
    fl = sum(flops > edge for edge in (4.0, 16.0, 64.0))
    return gp, gn, sc, int(bounded), fl


finite = st.floats(-1e6, 1e6, allow_nan=False)
edges = st.sampled_from([-0.2, 0.2, 0.8, 1.2, 1, 2, 3, 4, 16.0, 64.0, 0.0])


@settings(max_examples=100, deadline=None)
@given(
    growth_pos=finite | edges,
    growth_neg=finite | edges,
    sign_changes=st.integers(0, 40) | finite,
    bounded=st.booleans(),
    flops=finite | edges,
)
def test_cell_of_follows_the_documented_bins(growth_pos, growth_neg, sign_changes, bounded, flops):
    cell = cell_of(descriptors(growth_pos, growth_neg, sign_changes, bounded), {"flops_per_element": flops})
    expected = _expected_axes(growth_pos, growth_neg, sign_changes, bounded, flops)
    assert cell == "gp{}.gn{}.sc{}.b{}.fl{}".format(*expected)
    assert parse_cell(cell) == expected
    assert all(0 <= value < AXIS_BINS[axis] for axis, value in zip(AXES, expected))


def test_cell_of_reads_nan_as_zero_and_accepts_ints():
    nan = float("nan")
    assert cell_of(descriptors(nan, nan, nan, True), {"flops_per_element": nan}) == "gp0.gn1.sc0.b1.fl0"
    assert cell_of(descriptors(2, -1, 5, False), {"flops_per_element": 65}) == "gp3.gn0.sc3.b0.fl3"
    assert cell_of(descriptors(0.5, 0.5, 1.5, True), {"flops_per_element": 5}) == "gp1.gn2.sc1.b1.fl1"
    assert (
        cell_of(descriptors(float("inf"), float("-inf"), 3.99, False), {"flops_per_element": float("inf")})
        == "gp3.gn0.sc2.b0.fl3"
    )


@pytest.mark.parametrize(
    "key, bad", [("growth_pos", True), ("growth_neg", "0.1"), ("sign_changes", None), ("growth_pos", [1.0])]
)
def test_cell_of_refuses_what_is_not_a_number(key, bad):
    values = descriptors()
    values[key] = bad
    with pytest.raises(ValueError, match=re.escape(f"cell_of needs a number for descriptors[{key!r}], got {bad!r}")):
        cell_of(values, {"flops_per_element": 1.0})
    with pytest.raises(ValueError, match=r"number for probes\['flops_per_element'\], got False"):
        cell_of(descriptors(), {"flops_per_element": False})
    missing = descriptors()
    del missing[key]
    with pytest.raises(ValueError, match=rf"\['{key}'\], got None"):
        cell_of(missing, {"flops_per_element": 1.0})


@pytest.mark.parametrize("bad", [1, 0, None, "True"])
def test_cell_of_needs_a_bool_for_bounded(bad):
    with pytest.raises(ValueError, match=re.escape(f"cell_of needs a bool for descriptors['bounded'], got {bad!r}")):
        cell_of(descriptors(bounded=bad), {"flops_per_element": 1.0})


def test_every_cell_key_parses_back_and_distances_count_differing_axes():
    keys = [
        f"gp{a}.gn{b}.sc{c}.b{d}.fl{e}"
        for a, b, c, d, e in itertools.product(*(range(AXIS_BINS[axis]) for axis in AXES))
    ]
    assert len(keys) == 4 * 3 * 4 * 2 * 4 == 384
    for key in keys[::7]:
        parsed = parse_cell(key)
        assert "gp{}.gn{}.sc{}.b{}.fl{}".format(*parsed) == key
        for other in keys[::29]:
            expected = sum(x != y for x, y in zip(parsed, parse_cell(other)))
            assert cell_distance(key, other) == cell_distance(other, key) == expected
    assert parse_cell("gp12.gn0.sc3.b1.fl10") == (12, 0, 3, 1, 10)


@pytest.mark.parametrize(
    "bad", ["", "gp1.gn1", "gp1.gn1.sc0.b0.fl0.x1", "gn1.gp1.sc0.b0.fl0", "xgp1.gn1.sc0.b0.fl0", "gp1.gn1.sc0.b0.f0"]
)
def test_parse_cell_refuses_other_keys(bad):
    with pytest.raises(ValueError, match=re.escape(f"not a cell key: {bad!r}")):
        parse_cell(bad)
    with pytest.raises(ValueError):  # the right prefixes, not a number
        parse_cell("gp1.gn1.sc0.bb0.fl0")


# --------------------------------------------------------------------------------------------
# Rank weights
# --------------------------------------------------------------------------------------------


def _records(*pairs) -> list[ProgramRecord]:
    """Records with (fitness, score) pairs; no database needed for `rank_weights`."""
    return [ProgramRecord(run_id=1, proposal_index=i, source="", fitness=f, score=s) for i, (f, s) in enumerate(pairs)]


def test_rank_weights_exact_values():
    records = _records((0.1, 0.9), (0.9, None), (0.95, 0.5), (None, None), (0.2, 0.2))
    # selection scores 0.9, 0.9, 0.5, -inf, 0.2: ranks 0, 0, 2, 4, 3 (the score wins over the fitness)
    assert rank_weights(records, 0.5) == pytest.approx([1.0, 1.0, math.exp(-4), math.exp(-8), math.exp(-6)])
    assert rank_weights(records, 1.0) == pytest.approx([1.0, 1.0, math.exp(-2), math.exp(-4), math.exp(-3)])
    assert rank_weights([], 1.0) == []
    assert rank_weights(_records((None, None)), 2.0) == [1.0]


@pytest.mark.parametrize("temperature", [0, 0.0, -1.0])
def test_rank_weights_need_a_positive_temperature(temperature):
    with pytest.raises(ValueError, match="^temperature must be positive$"):
        rank_weights(_records((0.1, None)), temperature)


@settings(max_examples=100, deadline=None)
@given(
    scores=st.lists(st.one_of(st.none(), st.sampled_from([-1.0, 0.0, 0.5, 2.0])), max_size=10),
    temperature=st.floats(0.1, 10.0),
)
def test_rank_weights_are_exp_of_minus_the_number_of_better_programs(scores, temperature):
    records = _records(*[(s, None) for s in scores])
    key = [-math.inf if s is None else s for s in scores]
    expected = [math.exp(-sum(other > mine for other in key) / temperature) for mine in key]
    assert rank_weights(records, temperature) == pytest.approx(expected)


# --------------------------------------------------------------------------------------------
# Parent sampling: each branch's pool and exact weights
# --------------------------------------------------------------------------------------------


class Recording(random.Random):
    """A seeded rng whose first draws can be fixed (`draws`) and that records the pool (ids) and
    weights of every weighted choice, so a test sees the exact distribution a parent is drawn from."""

    def __init__(self, *draws: float, seed: int = 0):
        super().__init__(seed)
        self.draws = list(draws)
        self.choices_made: list[tuple[list[int], list[float]]] = []

    def random(self) -> float:
        return self.draws.pop(0) if self.draws else super().random()

    def choices(self, population, weights=None, *, cum_weights=None, k=1):
        self.choices_made.append(([r.id for r in population], list(weights) if weights is not None else None))
        return super().choices(population, weights=weights, cum_weights=cum_weights, k=k)


@pytest.fixture
def populated(search):
    """Island 0: four elites (fitness 0.4, 0.3, 0.3, 0.1; 0, 3, 0 and 8 children); island 1: eleven
    fitter programs, so the run's top 10 are all on island 1."""
    home = [search.add(f, CELLS[i]) for i, f in enumerate((0.4, 0.3, 0.3, 0.1))]
    for parent, children in ((home[1], 3), (home[3], 8)):
        for _ in range(children):
            search.add(None, None, status="failed", parent_ids=[parent])
    away = [search.add(1.0 + i / 10, CELLS[i], island=1) for i in range(11)]
    return home, away


def _parent_and_choice(search, *draws, **options):
    rng = Recording(*draws)
    parent = sample_parent(search.db, search.run, 0, rng, **options)
    assert len(rng.choices_made) == 1
    pool, weights = rng.choices_made[0]
    assert parent.id in pool
    return pool, weights


def test_the_default_mix_and_its_weights(search, populated):
    home, away = populated
    bonus = [1.0, 4**-0.5, 1.0, 9**-0.5]  # (1 + children) ** -0.5
    rank = [1.0, math.exp(-1 / 3), math.exp(-1 / 3), math.exp(-3 / 3)]  # temperature 3, tied ranks
    for draw in (0.0, 0.59):  # exploitation: draws below 0.6
        pool, weights = _parent_and_choice(search, draw)
        assert pool == home and weights == pytest.approx([r * b for r, b in zip(rank, bonus)])
    for draw in (0.6, 0.75, 0.8999):  # exploration: below 0.6 + 0.3
        pool, weights = _parent_and_choice(search, draw)
        assert pool == home and weights == pytest.approx(bonus)
    for draw in (0.9, 0.9999):  # the run's top 10, from any island
        pool, weights = _parent_and_choice(search, draw)
        assert pool == away[::-1][:10]
        assert weights == pytest.approx([math.exp(-r / 3) for r in range(10)])


def test_the_options_change_the_mix_the_weights_and_the_pool(search, populated):
    home, away = populated
    options = dict(exploitation=0.25, exploration=0.5, novelty_bonus=0.0, temperature=0.5, top_k=3)
    pool, weights = _parent_and_choice(search, 0.2499, **options)
    assert pool == home and weights == pytest.approx([1.0, math.exp(-2), math.exp(-2), math.exp(-6)])
    pool, weights = _parent_and_choice(search, 0.25, **options)
    assert pool == home and weights == [1.0] * 4
    pool, weights = _parent_and_choice(search, 0.7499, **options)
    assert pool == home and weights == [1.0] * 4
    pool, weights = _parent_and_choice(search, 0.75, **options)
    assert pool == away[::-1][:3] and weights == pytest.approx([1.0, math.exp(-2), math.exp(-4)])
    pool, weights = _parent_and_choice(search, 0.5, **{**options, "novelty_bonus": 2.0})
    assert pool == home and weights == pytest.approx([1.0, 1 / 16, 1.0, 1 / 81])  # (1 + children) ** -2
    # all exploration, all exploitation: the bounds themselves are allowed
    assert _parent_and_choice(search, 0.99, exploitation=0.0, exploration=1.0)[0] == home
    assert _parent_and_choice(search, 0.99, exploitation=1.0, exploration=0.0)[0] == home
    assert _parent_and_choice(search, 0.99, exploitation=0.7, exploration=0.3)[0] == home
    assert _parent_and_choice(search, 0.99, exploitation=1.0, exploration=1e-12)[0] == home  # rounding is tolerated


@pytest.mark.parametrize("exploitation, exploration", [(-0.1, 0.5), (0.5, -0.1), (0.6, 0.41), (1.0, 0.01), (2.0, 0.0)])
def test_parent_sampling_refuses_a_mix_that_is_not_a_distribution(search, exploitation, exploration):
    search.add(0.1, CELLS[0])
    with pytest.raises(ValueError, match="^exploitation and exploration must be ≥ 0 and sum to at most 1$"):
        sample_parent(search.db, search.run, 0, random.Random(0), exploitation=exploitation, exploration=exploration)


def test_the_fallback_uses_the_island_when_the_run_has_no_settled_top(search):
    """An elite whose pooled estimate went back to unsettled is still in its grid but in no `top`."""
    only = search.add(0.5, CELLS[0])
    search.db.update_estimate(
        only,
        fitness=0.5,
        ood_log_ratio=0.0,
        family_log_ratios={},
        tasks=[],
        fitness_se=0.1,
        score=0.4,
        rounds=2,
        settled=False,
    )
    assert search.db.top(search.run, 10) == [] and [e.id for e in search.db.elites(search.run, 0)] == [only]
    pool, weights = _parent_and_choice(search, 0.95)
    assert pool == [only] and weights == [1.0]


def test_parents_follow_the_expected_distribution(search, populated):
    """Over many seeded draws each program's share matches the mix of the three pools' weights."""
    home, away = populated
    bonus = {home[0]: 1.0, home[1]: 0.5, home[2]: 1.0, home[3]: 1 / 3}
    rank = {home[0]: 1.0, home[1]: math.exp(-1 / 3), home[2]: math.exp(-1 / 3), home[3]: math.exp(-1)}
    exploit = {i: rank[i] * bonus[i] for i in home}
    top = {p: math.exp(-r / 3) for r, p in enumerate(away[::-1][:10])}
    expected = Counter()
    for share, weights in ((0.6, exploit), (0.3, bonus), (0.1, top)):
        for program, weight in weights.items():
            expected[program] += share * weight / sum(weights.values())
    rng = random.Random(2024)
    draws = 1500
    picks = Counter(sample_parent(search.db, search.run, 0, rng).id for _ in range(draws))
    assert set(picks) <= set(home) | set(away[1:])  # the weakest of island 1 is not in the top 10
    for program, probability in expected.items():
        assert abs(picks[program] / draws - probability) < 4 * math.sqrt(probability * (1 - probability) / draws) + 1e-3


# --------------------------------------------------------------------------------------------
# Inspirations at their edges
# --------------------------------------------------------------------------------------------


def test_inspirations_edges(search):
    parent = search.db.get(search.add(1.0, "gp2.gn1.sc0.b0.fl0"))
    near = search.add(0.1, "gp2.gn1.sc0.b0.fl1")  # distance 1
    two_away = search.add(0.5, "gp2.gn1.sc1.b0.fl1")  # distance 2: not a neighbour
    three_away = search.add(0.4, "gp3.gn1.sc1.b0.fl1")
    elsewhere = [search.add(0.2 - i / 100, CELLS[i], island=1) for i in range(3)]  # weaker than island 0
    rng = random.Random(0)

    def ids(k, of=parent):
        return [r.id for r in sample_inspirations(search.db, search.run, 0, of, k, rng)]

    assert ids(-1) == [] and ids(0) == []
    assert ids(1) == [near] and ids(2) == [near, two_away] and ids(3) == [near, two_away, three_away]
    # the run's top is asked for enough programs to skip the ones already taken
    assert ids(6) == [near, two_away, three_away] + elsewhere
    assert ids(4) == [near, two_away, three_away, elsewhere[0]]
    assert ids(100) == ids(6)
    # a parent without a cell has no neighbours; one without an id excludes nothing
    no_cell = ProgramRecord(run_id=search.run, proposal_index=99, source="", id=parent.id, cell=None)
    assert ids(3, no_cell) == [two_away, three_away, near]
    unstored = ProgramRecord(run_id=search.run, proposal_index=99, source="", cell="gp3.gn1.sc1.b0.fl1")
    assert set(ids(2, unstored)) == {three_away, two_away}  # its cell and a neighbour of it
    assert ids(4, unstored)[2:] == [parent.id, near]


def test_inspirations_from_an_empty_island_are_the_run_top(search):
    best = [search.add(1.0 - i / 10, CELLS[i], island=1) for i in range(4)]
    got = [r.id for r in sample_inspirations(search.db, search.run, 0, None, 3, random.Random(0))]
    assert got == best[:3]
    visitor = search.db.get(best[0])
    got = [r.id for r in sample_inspirations(search.db, search.run, 0, visitor, 3, random.Random(0))]
    assert got == best[1:]


# --------------------------------------------------------------------------------------------
# Migration around a ring
# --------------------------------------------------------------------------------------------


def test_a_ring_given_as_ids_in_order_and_k_elites_each(search):
    db, run = search.db, search.run
    tops = {
        i: [search.add(3.0 + i - j, f"gp{j}.gn{i % 3}.sc{i}.b0.fl0", island=i) for j in range(3)] for i in (5, 2, 7)
    }
    moved = migrate_ring(db, run, [5, 2, 7], k=2)  # 5 -> 2 -> 7 -> 5
    expected = [
        (tops[5][0], 5, 2),
        (tops[5][1], 5, 2),
        (tops[2][0], 2, 7),
        (tops[2][1], 2, 7),
        (tops[7][0], 7, 5),
        (tops[7][1], 7, 5),
    ]
    assert moved == expected
    assert set(db.grid(run, 2).values()) == set(tops[2]) | set(tops[5][:2])
    assert set(db.grid(run, 5).values()) == set(tops[5]) | set(tops[7][:2])
    assert migrate_ring(db, run, [5, 2, 7], k=0) == [] and migrate_ring(db, run, [5, 2, 7], k=-1) == []
    assert migrate_ring(db, run, 0) == [] and migrate_ring(db, run, []) == []
    assert migrate_ring(db, run, 2) == []  # islands 0 and 1: both empty


def test_migration_is_one_transaction(search, monkeypatch):
    db, run = search.db, search.run
    a = search.add(1.0, CELLS[0], island=0)
    b = search.add(1.0, CELLS[1], island=1)
    real_migrate = db.move_to_island
    calls = []

    def failing_second(run_id, program_id, to_island):
        calls.append(program_id)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real_migrate(run_id, program_id, to_island)

    monkeypatch.setattr(db, "move_to_island", failing_second)
    with pytest.raises(RuntimeError):
        migrate_ring(db, run, 2)
    assert calls == [a, b]
    assert db.grid(run, 0) == {CELLS[0]: a} and db.grid(run, 1) == {CELLS[1]: b}  # the first move undone too
