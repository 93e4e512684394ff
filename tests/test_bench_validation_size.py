"""The validation-size benchmark (benchmarks/bench_validation_size.py), short: its large validation
is the default one, larger, on indexes no other side draws; and the winner rules pick from per-task
validation scores as the search's final check does. (Scoring is the sandbox's, tested there.)"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_validation_size as bench  # noqa: E402
from bench_winner_rules import refuse_unfinished  # noqa: E402

from actmine.config import Config, ConfigError  # noqa: E402
from actmine.evolve.search_tasks import split_spec  # noqa: E402
from actmine.lab.distribution import check_split  # noqa: E402
from actmine.lab.estimate import WINNER_RULES  # noqa: E402


def test_the_large_validation_is_the_default_one_scaled_and_shares_no_index_with_the_other_sides():
    config = Config()
    default = split_spec(config).validation
    pools = bench.large_validation(config, scale=4, min_size=120)
    assert [(p["generator"], p["params"], p["seeds"]) for p in pools] == [
        (s.generator, dict(s.params), list(s.seeds)) for s in default
    ]
    assert [p["size"] for p in pools] == [max(120, 4 * s.size) for s in default]
    assert {p["start"] for p in pools} == {bench.LARGE_VALIDATION_START}
    assert all(s.index_range().stop <= bench.LARGE_VALIDATION_START for s in default)  # no default validation task
    check_split(split_spec(config.with_overrides({"tasks.validation": pools})))  # no overlap with search or tests
    overlapping = [{**pools[0], "start": 0}]  # the search pool's own indexes: refused
    with pytest.raises(ConfigError, match="overlap"):
        config.with_overrides({"tasks.validation": overlapping})


def _validation() -> tuple[np.ndarray, list[str]]:
    """Log-ratios (lower is better) of a specialist (0: far ahead on expression tasks, behind ReLU on
    polynomials) and a generalist (1: a little ahead on both) on 6 expression and 2 polynomial tasks."""
    families = ["expression"] * 6 + ["polynomial"] * 2
    specialist = [-1.0] * 6 + [0.8] * 2
    generalist = [-0.2] * 6 + [-0.2] * 2
    return np.array([specialist, generalist]), families


def test_the_mean_rule_picks_the_specialist_and_the_family_rules_the_generalist():
    validation, families = _validation()
    columns = bench.family_columns(families)
    assert [list(c) for c in columns.values()] == [[0, 1, 2, 3, 4, 5], [6, 7]]
    assert bench.pick("mean", validation, columns) == 0  # mean −0.55 against −0.2
    # family_mean −0.1 against −0.2, maximin +0.8 against −0.2, softmin ≈ maximin
    for rule in ("family_mean", "maximin", "softmin"):
        assert bench.pick(rule, validation, columns) == 1, rule


def test_picks_draw_the_asked_sizes_per_family_or_bootstrap_them():
    validation, families = _validation()
    rng = np.random.default_rng(0)
    # 3 expression tasks and 1 polynomial: the mean is (3·(−1.0) + 0.8)/4 = −0.55 against −0.2 for
    # the specialist, whichever tasks are drawn
    some = bench.picks("mean", validation, families, {"expression": 3, "polynomial": 1}, 20, rng)
    assert some.shape == (20,) and set(some) == {0}
    for sizes in (None, {"expression": 100, "polynomial": 100}):  # bootstrap, and sizes beyond the tasks
        assert set(bench.picks("maximin", validation, families, sizes, 20, rng)) == {1}


@pytest.mark.parametrize("rule", sorted(WINNER_RULES))
def test_a_candidate_better_on_every_task_is_picked_by_every_rule_from_any_draw(rule):
    rng = np.random.default_rng(1)
    validation = rng.normal(0, 1, (5, 30))
    validation[3] = validation.min(axis=0) - 0.1  # candidate 3 beats every other on every task
    families = ["expression"] * 20 + ["harmonic"] * 5 + ["polynomial"] * 5
    assert set(bench.picks(rule, validation, families, {"expression": 4, "harmonic": 2, "polynomial": 2}, 30, rng)) == {
        3
    }


def test_an_unfinished_run_directory_is_refused_with_what_it_lacks(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="bench")
    (tmp_path / "programs.sqlite").write_bytes(b"")
    with pytest.raises(SystemExit) as exited:
        refuse_unfinished(parser, [tmp_path])
    assert exited.value.code == 2
    assert f"{tmp_path} is not a finished run directory (it needs heldout.json" in capsys.readouterr().err
    (tmp_path / "heldout.json").write_text("{}")
    refuse_unfinished(parser, [tmp_path])  # both files: accepted
