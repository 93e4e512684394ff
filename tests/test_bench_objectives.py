"""The objectives benchmark (benchmarks/bench_objectives.py), short: it reads a run's recorded task
scores as the search pools them, ranks programs by every aggregate, and picks the union of each
aggregate's first programs to score. (Scoring on the test suites is the sandbox's, tested there.)"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_objectives  # noqa: E402

from actmine.lab.estimate import OBJECTIVES, bounded_estimate  # noqa: E402
from actmine.run_files import DATABASE  # noqa: E402


def _run(tmp_path: Path, rounds: list[tuple[int, list[tuple[str, str, float]]]]) -> Path:
    """A run directory whose evaluations table holds `rounds`: (program id, [(task, family, log-ratio)])."""
    connection = sqlite3.connect(tmp_path / DATABASE)
    connection.execute("CREATE TABLE evaluations (program_id INTEGER, tasks TEXT)")
    for program_id, tasks in rounds:
        rows = [{"name": name, "family": family, "log_ratio": ratio} for name, family, ratio in tasks]
        connection.execute("INSERT INTO evaluations VALUES (?, ?)", (program_id, json.dumps(rows)))
    connection.commit()
    connection.close()
    return tmp_path


def _tasks(n: int, ratio: float, family: str = "expression", start: int = 0) -> list[tuple[str, str, float]]:
    return [(f"t{i}", family, ratio) for i in range(start, start + n)]


def test_task_scores_pool_rounds_per_task_and_skip_programs_with_few_tasks(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_objectives, "MIN_TASKS", 4)
    run = _run(
        tmp_path,
        [
            (1, _tasks(3, -0.5) + [("t3", "harmonic", 2.0)]),
            (1, [("t3", "harmonic", 0.0), ("t4", "polynomial", -1.0)]),  # a second round: t3 again, t4 new
            (2, _tasks(3, 0.1)),  # three tasks: fewer than MIN_TASKS
        ],
    )
    scores = bench_objectives.task_scores(run)
    assert set(scores) == {1}
    assert sorted(scores[1]) == sorted(
        [("expression", 0.5)] * 3 + [("harmonic", -1.0), ("polynomial", 1.0)]
    )  # fitness = −(the task's mean log-ratio over its rounds)


def test_every_aggregate_ranks_and_the_union_of_their_leaders_is_chosen():
    specialist = [("expression", 3.0)] + [("expression", -0.3)] * 9  # mean 0.03, bounded −0.17
    generalist = [("expression", 0.1)] * 10
    loser = [("expression", -0.5)] * 10
    ranked = bench_objectives.rankings({1: specialist, 2: generalist, 3: loser})
    assert set(OBJECTIVES) <= set(ranked) and {"median", "win rate"} <= set(ranked)
    assert ranked["mean"][1] == pytest.approx(0.03) and ranked["mean"][1] < ranked["mean"][2]
    assert ranked["bounded"][1] == pytest.approx(bounded_estimate([s for _, s in specialist]).mean)
    assert ranked["win rate"] == pytest.approx({1: 0.1 - 0.9, 2: 1.0, 3: -1.0})
    assert bench_objectives.chosen(ranked, 1) == [2]  # every aggregate puts the generalist first
    assert bench_objectives.chosen(ranked, 2) == [1, 2]
