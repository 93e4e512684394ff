"""The search-speed benchmark (benchmarks/bench_search_speed.py) measures the checkout it names: a
search started from this checkout's directory would import this checkout's `actmine` whatever
PYTHONPATH says (`python -m` puts the working directory first), so the benchmark starts each search
in its run directory and refuses a child that would import another checkout."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_search_speed as bench  # noqa: E402

CHECKOUT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def baseline(tmp_path) -> Path:
    """Another checkout: a copy of this one's package (what `git worktree add` would give)."""
    other = tmp_path / "baseline"
    shutil.copytree(CHECKOUT / "actmine", other / "actmine", ignore=shutil.ignore_patterns("__pycache__"))
    return other


def test_a_child_started_from_this_checkout_would_run_this_checkout_and_is_refused(baseline):
    env = {**os.environ, "PYTHONPATH": str(baseline)}
    with pytest.raises(SystemExit, match=rf"would import actmine from {CHECKOUT}/actmine/__init__.py, not from"):
        bench.check_imports(baseline, env, str(CHECKOUT))


def test_a_child_started_in_its_run_directory_runs_the_named_checkout(baseline, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    bench.check_imports(baseline, {**os.environ, "PYTHONPATH": str(baseline)}, str(run_dir))
    bench.check_imports(CHECKOUT, {**os.environ, "PYTHONPATH": str(CHECKOUT)}, str(run_dir))


def test_a_baseline_winner_this_lab_refuses_gives_way_to_the_next_of_its_ranking():
    """A pre-split baseline's best program that today's lab refuses (its probes let NaN at huge inputs
    through) is not scored as if it had passed: the next program of its ranking stands in, and says so."""
    scored = []

    def score(source, name):
        scored.append(name)
        return (None, "feynman: non_finite at probes") if "nan" in source else ({"t/a": [0.1]}, "")

    ranked = [(35, "nan program"), (12, "fine"), (40, "also fine")]
    winner, tasks, refused = bench.first_accepted(ranked, score)
    assert (winner, tasks) == (12, {"t/a": [0.1]}) and scored == ["program 35", "program 12"]
    assert refused == ["#35 (feynman: non_finite at probes)"]
    assert bench.first_accepted(ranked[1:], score)[:2] == (12, {"t/a": [0.1]})
    with pytest.raises(RuntimeError, match="all refused"):
        bench.first_accepted(ranked[:1], score)
