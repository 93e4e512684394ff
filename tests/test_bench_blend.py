"""The blend benchmark (benchmarks/bench_blend.py), short: the validation's choice is read from a
run's rows without the blend's own row, and the comparisons are paired by task and seed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_blend as bench  # noqa: E402


def _row(program_id, fitness, families, name=None):
    return {
        "split": "validation",
        "name": name or f"program {program_id}",
        "program_id": program_id,
        "heldout_fitness": fitness,
        "families": families,
    }


def test_the_choice_is_the_rules_best_without_the_blend_and_the_references_are_the_runs_test_rows(tmp_path):
    tests = [
        {"name": ref, "program_id": None, "suite": suite, "tasks": {"t": [value]}}
        for ref, value in (("relu", 0.0), ("gelu", -0.2), ("gelu_sine", 0.1))
        for suite in ("feynman", "bump")
    ]
    final = {
        "winner": 9,
        "winner_rule": "softmin",
        "blend": {"program_id": 9, "chosen": 3},
        "validation": [
            _row(None, 0.0, {"a": 0.0}, name="relu"),
            _row(3, 0.30, {"a": -0.30, "b": -0.30}),  # balanced: softmin's choice
            _row(4, 0.60, {"a": -1.5, "b": 0.3}),  # the higher mean, one family lost
            _row(9, 0.90, {"a": -0.9, "b": -0.9}),  # the blend: never the choice
        ],
        "test": tests + [{"name": "program 9", "program_id": 9, "suite": "bump", "tasks": {"t": [0.0]}}],
    }
    (tmp_path / "heldout.json").write_text(json.dumps(final))
    _, chosen, references = bench.choice(tmp_path)
    assert chosen["program_id"] == 3
    assert set(references) == set(bench.REFERENCES) and set(references["gelu"]) == {"feynman", "bump"}


def test_comparisons_are_paired_by_task_and_seed_overall_and_per_suite():
    references = {
        "relu": {"s": {"t": [0.0, 0.0]}, "u": {"v": [0.0]}},
        "gelu": {"s": {"t": [-0.2, -0.4]}, "u": {"v": [0.5]}},
        "gelu_sine": {"s": {"t": [0.1, 0.1]}, "u": {"v": [0.1]}},
    }
    entry = {"s": {"t": [-0.5, -0.5]}, "u": {"v": [0.2]}}
    numbers = bench.compare(entry, references)
    # per task: the mean over seeds, then the mean over tasks of the difference
    assert numbers["gelu"] == pytest.approx(((-0.5 + 0.3) + (0.2 - 0.5)) / 2)
    assert numbers["relu"] == pytest.approx((-0.5 + 0.2) / 2)
    assert numbers["gelu/s"] == pytest.approx(-0.2) and numbers["gelu/u"] == pytest.approx(-0.3)


def test_the_interval_over_runs_is_students_t():
    values = [-0.05, -0.17, -0.06, 0.07, -0.15]
    mean, low, high = bench.t_interval(values)
    expected = stats.t.interval(0.95, len(values) - 1, loc=sum(values) / 5, scale=stats.sem(values))
    assert mean == pytest.approx(sum(values) / 5) and (low, high) == pytest.approx(expected)


def test_one_run_has_no_interval_and_says_so():
    mean, low, high = bench.t_interval([0.25])
    assert bench.interval_text(mean, low, high) == "+0.250 (one run: no interval)"
    assert bench.interval_text(-0.05, -0.1, 0.0) == "-0.050 [-0.100, +0.000]"
