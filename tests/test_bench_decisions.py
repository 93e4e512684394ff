"""The decisions benchmark (benchmarks/bench_decisions.py), short: each program is evaluated the old way
(the fixed suite, eagerly), as a new program's first search round (fused, GELU's control) at two
sizes and eagerly, and on fresh rounds for its exact fitness; the report's rates and ranks come from those rows."""

from __future__ import annotations

import argparse
import re
import sqlite3
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_decisions as bench  # noqa: E402

from actmine.config import Config  # noqa: E402
from actmine.evolve.search_tasks import SearchTasks  # noqa: E402
from actmine.evolve.seeds import SEED_EXPRESSIONS, program  # noqa: E402
from actmine.lab.fitness import Evaluation, Lab, TaskScore  # noqa: E402
from search_runs import SMALL_POOLS  # noqa: E402

NAMES = ("gelu_sine", "gmtu", "tanh", "softplus")


@pytest.fixture()
def finished_run(tmp_path) -> Path:
    """A run directory of the small pools with four scored programs (the columns the benchmark reads)."""
    run = tmp_path / "run"
    run.mkdir()
    config = Config.from_dict({**SMALL_POOLS, "tasks": {**SMALL_POOLS["tasks"], "control_beta": 0.5}})
    (run / "config.yaml").write_text(yaml.safe_dump(config.to_dict()))
    database = sqlite3.connect(run / "programs.sqlite")
    database.execute("CREATE TABLE programs (source TEXT, proposal_index INTEGER, status TEXT, fitness REAL)")
    database.executemany(
        "INSERT INTO programs VALUES (?, ?, ?, ?)",
        [(program(SEED_EXPRESSIONS[name]), index, "ok", 0.1 * index) for index, name in enumerate(NAMES)],
    )
    database.commit()
    database.close()
    return run


def test_search_fitness_is_the_controllers_estimate(finished_run):
    """Controlled: each task's score less beta x GELU's offset on it; plain: the mean score."""
    config = Config.load(finished_run / "config.yaml")
    tasks = SearchTasks.from_config(config, progress=False)
    names = sorted(tasks.control)[:3]
    assert len(names) == 3 and any(tasks.control[n] != 0 for n in names)
    ratios = [0.3, -0.2, 0.05]
    evaluation = Evaluation(
        activation="x",
        ok=True,
        tasks=[TaskScore(n, "polynomial", 0.1, 0.1, r) for n, r in zip(names, ratios)],
    )
    plain = -sum(ratios) / 3
    assert bench.search_fitness(tasks, evaluation, controlled=False) == pytest.approx(plain)
    offsets = sum(tasks.control[n] for n in names) / 3
    assert bench.search_fitness(tasks, evaluation, controlled=True) == pytest.approx(plain - 0.5 * offsets)


def test_every_way_is_timed_and_ranked_against_the_exact_fitness(finished_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ACTMINE_BENCH_AS_WORKER", "1")  # already "in a worker": no re-exec of pytest

    def in_this_process(*args, **kwargs):
        raise AssertionError("a run's program ran in the benchmark's own process, outside a sandboxed worker")

    # A run's programs are untrusted text: every way evaluates them in sandbox workers, never here.
    monkeypatch.setattr(Lab, "evaluate_source", in_this_process)
    monkeypatch.setattr(Lab, "evaluate", in_this_process)
    argv = ["bench_decisions.py", str(finished_run), "--candidates", "4", "--exact-rounds", "2", "--small", "2"]
    monkeypatch.setattr(sys, "argv", argv + ["--before-seeds", "1", "--cache", str(tmp_path / "cache")])
    bench.main()
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if re.match(r"\s*\d+\s+\d+\.\d+\s", line)]
    assert len(rows) == 4
    seconds = [list(map(float, row[1:6])) for row in rows]
    assert all(s > 0 for row in seconds for s in row)
    # the filing's evaluation with today's kernels and closed-form training scores what it scored, and
    # today's round scores what its eager computation (the same tasks, seeds and weights) scores
    assert all(abs(float(row[6]) - float(row[7])) < 0.01 for row in rows)
    assert all(abs(float(row[8]) - float(row[9])) < 0.01 for row in rows)
    ways = (("before", 0), ("before, fused", 1), ("now", 2), ("now, eager", 3), ("now, 2 tasks", 4))
    for way, column in ways:
        against = r"; ρ vs before [^;]+" if way != "before" else ""
        against += r"; ρ vs now, eager [^;]+" if way == "now" else ""
        printed = re.search(
            rf"\s{re.escape(way)}: +(\d+) evaluations per core-hour \(×([\d.]+)\){against}; ρ vs exact", out
        )
        assert printed, way
        # the rows print seconds to 0.01 s, the rate uses the unrounded ones
        assert int(printed.group(1)) == pytest.approx(3600 * 4 / sum(row[column] for row in seconds), rel=0.03)
    assert re.search(r"exact = 2 fresh rounds of 4 tasks, its halves agree with ρ", out)
    assert re.search(r"matmul-only bound: [\d.]+ s ÷ [\d.]+ s = [\d.]+×", out)


def test_too_few_programs_is_a_clear_error(finished_run):
    row = {
        "seconds": {"before": 1.0, "now": 0.5},
        "fitness": {"before": 0.1, "now": 0.2},
        "exact": 0.1,
        "halves": [0, 0],
    }
    args = argparse.Namespace(run=finished_run, exact_rounds=2, cache=finished_run)
    with pytest.raises(SystemExit, match=r"only 2 programs were scored every way; a ranking needs at least 3"):
        bench.report([row, row], ("before", "now"), args, Config.load(finished_run / "config.yaml"))


def test_an_odd_number_of_exact_rounds_is_refused(finished_run, monkeypatch, capsys):
    monkeypatch.setenv("ACTMINE_BENCH_AS_WORKER", "1")
    monkeypatch.setattr(sys, "argv", ["bench_decisions.py", str(finished_run), "--exact-rounds", "3"])
    with pytest.raises(SystemExit):
        bench.main()
    assert "--exact-rounds must be even" in capsys.readouterr().err
