"""The design benchmark (benchmarks/bench_design.py), short: its functions are programs the lab
accepts, its comparisons are paired by task on the groups issue 13 names, and its noise split tells
training noise from what the tasks say."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_design as bench  # noqa: E402
import bench_kinds  # noqa: E402

from actmine import activations  # noqa: E402
from actmine.candidate.probes import run_probes  # noqa: E402
from actmine.candidate.source import compile_candidate  # noqa: E402
from actmine.config import Config  # noqa: E402
from actmine.evolve.search_tasks import split_spec  # noqa: E402
from actmine.evolve.seeds import program  # noqa: E402
from actmine.lab.distribution import PoolSpec  # noqa: E402


@pytest.mark.parametrize("name", sorted(bench.FUNCTIONS))
def test_every_function_is_a_program_the_lab_accepts(name):
    expression, why = bench.FUNCTIONS[name]
    function = compile_candidate(program(expression), name)
    x = torch.linspace(-8, 8, 401)
    assert torch.isfinite(function(x)).all() and why
    run_probes(function)  # raises ProbeFailure where the search would refuse it


def test_the_references_are_the_librarys():
    x = torch.linspace(-8, 8, 401, dtype=torch.float64)
    for name in bench.REFERENCES:
        function = compile_candidate(program(bench.FUNCTIONS[name][0]), name)
        torch.testing.assert_close(function(x), activations.get(name)(x), rtol=1e-10, atol=1e-12)


def test_its_draws_are_on_indexes_no_other_side_and_no_kinds_benchmark_draws():
    config = Config()
    start = bench.DESIGN_START
    pools = bench_kinds.kind_pools(config, size=100, start=start)
    assert {p["start"] for p in pools.values()} == {start}
    earlier = [
        *split_spec(config).search,
        *split_spec(config).validation,
        *(PoolSpec.from_dict(p) for p in bench_kinds.kind_pools(config, size=100).values()),
    ]
    assert all(spec.index_range().stop <= start for spec in earlier)


def scores_of(task_effects: dict[str, float], seeds: int, shift: float = 0.0) -> dict[str, list[float]]:
    return {key: [effect + shift] * seeds for key, effect in task_effects.items()}


def test_comparisons_are_paired_by_task_on_each_group_and_both_bars_need_both_means():
    kind_of = {"t1": "harmonic", "t2": "expression/kinked", "t3": "polynomial"}
    kind_of |= {"t4": "expression/periodic", "t5": "expression/saturating"}  # every kind of issue 13's group
    suites = ["feynman", "expression-bump"]
    entry = {
        "kinds": {"t1": [0.1, 0.3], "t2": [0.0, 0.0], "t3": [0.5, 0.5]},
        "feynman": {"f1": [1.0, 1.0, 1.0]},
        "expression-bump": {"b1": [-1.0, -1.0, -1.0]},
    }
    scores = bench.by_kind(entry, kind_of, suites)
    assert scores["harmonic|t1"] == [0.1, 0.3] and scores["feynman|f1"] == [1.0] * 3
    group_kinds = bench.groups(kind_of, suites)
    assert group_kinds["all unseen"] == set(suites) and "expression-bump" in group_kinds["issue 13's kinds"]
    assert group_kinds["suite feynman"] == {"feynman"} and group_kinds["suite expression-bump"] == {"expression-bump"}
    gelu = {k: [v[0] + 0.2] * len(v) for k, v in scores.items()}  # worse everywhere by 0.2 (or less)
    gelu_sine = {k: [v[0] - 0.1] * len(v) for k, v in scores.items()}  # better everywhere
    row = bench.compare(scores, {"gelu": gelu, "gelu_sine": gelu_sine}, group_kinds)
    assert row["all unseen vs gelu"]["mean"] == pytest.approx(-0.2)
    assert row["issue 13's kinds vs gelu_sine"]["mean"] > 0
    assert bench.both_bars(row) == ""
    assert row["suite feynman vs gelu"]["mean"] == pytest.approx(-0.2)  # one suite alone, paired the same way
    better = {k: [v[0] - 0.3] * len(v) for k, v in gelu_sine.items()}
    row = bench.compare(better, {"gelu": gelu, "gelu_sine": gelu_sine}, group_kinds)
    assert bench.both_bars(row) == "both, at 95%"


@settings(max_examples=25, deadline=None)
@given(
    within=st.floats(0.05, 0.6),
    between=st.floats(0.0, 0.3),
    seeds=st.integers(2, 4),
    seed=st.integers(0, 2**31 - 1),
)
def test_the_noise_split_recovers_training_and_task_variance(within, between, seeds, seed):
    rng = np.random.default_rng(seed)
    tasks = 4000
    effects = rng.normal(0.0, np.sqrt(between), tasks)
    gelu = {f"harmonic|t{i}": list(rng.normal(0.0, 0.3, seeds)) for i in range(tasks)}
    mine = {
        key: list(np.asarray(values) + effects[i] + rng.normal(0.0, np.sqrt(within), seeds))
        for i, (key, values) in enumerate(gelu.items())
    }
    split = bench.noise(mine, gelu, {"harmonic"})
    # mine is GELU's run plus the task's effect plus its own training noise: GELU's spread cancels
    assert split["within"] == pytest.approx(within, rel=0.1, abs=0.01)
    assert split["between"] == pytest.approx(between, rel=0.2, abs=0.03)
    per_task = split["within"] + split["between"]
    assert split["need 0.05"] == int(np.ceil(per_task * 1600))
    assert split["need 0.02"] >= 6 * split["need 0.05"]


def test_a_runs_winner_is_read_by_its_heldout_json_and_labelled_by_its_directory(tmp_path):
    import json

    from actmine.evolve.database import ProgramDatabase, ProgramRecord

    winners = {}
    for parent in ("a", "b"):
        run_dir = tmp_path / parent / "seed0"
        run_dir.mkdir(parents=True)
        with ProgramDatabase(run_dir / "programs.sqlite") as database:
            run_id = database.create_run({}, seed=0, versions={})
            ids = [
                database.add_program(
                    ProgramRecord(
                        run_id=run_id, proposal_index=i, source=program(f"torch.relu(x) * {i + 1}"), fitness=0.0
                    )
                )
                for i in range(3)
            ]
        (run_dir / "heldout.json").write_text(json.dumps({"winner": ids[1]}))
        winners[run_dir] = program("torch.relu(x) * 2")
    sources = bench.run_winners(list(winners))
    assert sources == {f"run:{run_dir}": source for run_dir, source in winners.items()}  # one name, two runs
    only = bench.run_winners([tmp_path / "a" / "seed0"])
    assert only == {"run:seed0": program("torch.relu(x) * 2")}


def test_scores_under_other_settings_or_of_another_source_are_journalled_apart():
    source = program(bench.FUNCTIONS["gs05"][0])
    key = bench.journal_key("gs05", [], source)
    assert key.startswith("design#gs05#") and key == bench.journal_key("gs05", [], source)
    assert bench.journal_key("gs05", [("lab.hidden", 256)], source) != key
    assert bench.journal_key("gs05", [("lab.hidden", 256)], source) != bench.journal_key(
        "gs05", [("lab.hidden", 128)], source
    )
    # two runs named alike (seed 50 of two studies) whose winners differ: never each other's scores
    assert bench.journal_key("run:50", [], program("x")) != bench.journal_key("run:50", [], program("2 * x"))


def test_the_per_model_table_pairs_each_function_with_gelu_by_task(capsys):
    from types import SimpleNamespace

    tasks = [
        SimpleNamespace(name="r1", description="planck (bump): …"),
        SimpleNamespace(name="r2", description="planck (bump): …"),
        SimpleNamespace(name="r3", description="logistic (saturating): …"),
    ]
    gelu = {"response|r1": [0.0, 0.0], "response|r2": [1.0, 1.0], "response|r3": [0.5, 0.5]}
    shifted = {k: [v[0] - 0.25] * 2 for k, v in gelu.items()}  # better than GELU by 0.25 on every task
    scores = {"gelu": gelu, "gelu_sine": shifted, "run:a": shifted, "run:b": gelu}  # the runs' mean: −0.125
    bench.report_by_model(scores, tasks, "response")
    lines = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[2:]}
    assert lines["planck"][1:] == ["2", "-0.125", "-0.250"] and lines["logistic"][1] == "1"
