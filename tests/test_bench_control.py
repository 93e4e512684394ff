"""GELU's cached scores as a control variate (benchmarks/bench_control.py): the adjusted estimate keeps
its expectation, shrinks the spread GELU explains, and the report reads a real run's pools."""

from __future__ import annotations

import json
import re
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_control as bench  # noqa: E402

from actmine.config import Config  # noqa: E402
from search_runs import SMALL_POOLS  # noqa: E402


finite = st.floats(-3, 3, allow_nan=False)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(finite, finite), min_size=3, max_size=30), st.sampled_from(bench.WAYS))
def test_over_a_whole_pool_the_control_changes_nothing_in_the_mean(pairs, way):
    """Summed over every task of a pool, the controls minus their pool mean add up to zero: the
    adjusted estimate has the plain one's expectation, whatever β."""
    scores, controls = (np.array(v) for v in zip(*pairs))
    offsets = controls - controls.mean()  # the pool's mean taken off, as `control_offsets` does
    assert bench.adjusted(scores, offsets, way).mean() == pytest.approx(scores.mean(), abs=1e-9)


def test_the_control_removes_the_spread_it_explains():
    rng = np.random.default_rng(0)
    controls = rng.normal(0, 1.0, 400)
    scores = 0.8 * controls + rng.normal(0, 0.3, 400)  # a GELU-like program: most of its spread is GELU's
    assert bench.fitted_beta(scores, controls) == pytest.approx(0.8, abs=0.05)
    plain = np.var(scores)
    assert np.var(bench.adjusted(scores, controls, "beta fitted")) < 0.2 * plain
    assert np.var(bench.adjusted(scores, controls, "beta 1")) < 0.3 * plain
    unrelated = rng.normal(0, 1.0, 400)  # a program GELU says nothing about: β = 1 only adds noise
    assert np.var(bench.adjusted(unrelated, controls, "beta 1")) > 1.5 * np.var(unrelated)
    assert abs(bench.fitted_beta(unrelated, controls)) < 0.15
    assert bench.fitted_beta(scores, np.ones_like(scores)) == 0.0  # controls that do not vary
    # one β for a run: programs differ in level (their own means), not in how they follow GELU
    shifted = [(scores[:200] + 5.0, controls[:200]), (scores[200:] - 5.0, controls[200:])]
    assert bench.run_beta(shifted) == pytest.approx(0.8, abs=0.05)
    assert bench.adjusted(scores, controls, "beta run", 0.8) == pytest.approx(scores - 0.8 * controls)


@pytest.fixture()
def finished_run(tmp_path) -> Path:
    """A run directory: the small pools' config, and programs whose two rounds score GELU's tasks
    as GELU does plus noise (so the control explains most of their spread)."""
    run = tmp_path / "run"
    run.mkdir()
    config = Config.from_dict(SMALL_POOLS)
    (run / "config.yaml").write_text(yaml.safe_dump(config.to_dict()))
    score = bench.gelu_offsets(config)
    names = [t.name for t in bench.SearchTasks.from_config(config, progress=False).split.search.tasks]
    rng = np.random.default_rng(1)
    database = sqlite3.connect(run / "programs.sqlite")
    database.execute("CREATE TABLE evaluations (program_id INTEGER, round INTEGER, tasks TEXT)")
    for program_id in range(6):
        offset = rng.normal(0, 0.5)
        for round_ in range(2):
            tasks = [
                {"name": n, "log_ratio": -(score(n) + offset + rng.normal(0, 0.05))}
                for n in rng.choice(names, 8, replace=False)
            ]
            database.execute("INSERT INTO evaluations VALUES (?, ?, ?)", (program_id, round_, json.dumps(tasks)))
    database.commit()
    database.close()
    return run


def test_the_report_reads_the_runs_pools_and_shows_the_gain(finished_run, capsys):
    bench.summarise(finished_run, min_tasks=8)
    out = capsys.readouterr().out
    assert "6 programs" in out
    ratio = float(re.search(r"variance ratio, all \(6 programs\), beta 1: median ([\d.]+)", out).group(1))
    assert ratio < 0.5  # the programs are GELU plus an offset and a little noise
    sd = dict(
        re.findall(
            r"split-half \(6 programs\), (plain|beta 1|beta fitted|beta run|beta config): .* sd of round 0 − round 1 ([\d.]+)",
            out,
        )
    )
    assert set(sd) == set(bench.WAYS)
    assert float(sd["beta 1"]) < float(sd["beta config"]) < float(sd["plain"])


def test_a_directory_that_is_not_a_run_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["bench_control.py", str(tmp_path)])
    with pytest.raises(SystemExit, match="not a finished run directory"):
        bench.main()
