"""Cross-candidate batches: K candidates stacked in one batched model train exactly what K calls would."""

import argparse
import sqlite3
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import yaml

from actmine import activations
from actmine.config import Config
from actmine.evolve.seeds import SEED_EXPRESSIONS, program
from actmine.lab.ensemble import TrainingProtocol, build_workload, train_ensemble
from actmine.lab.stacked import stack_workloads, train_sliced, train_stacked
from actmine.lab.tasks import Suite, feynman, harmonic, polynomial

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_stacked  # noqa: E402
from search_runs import SMALL_POOLS  # noqa: E402

PROTOCOL = TrainingProtocol(steps=6, dtype="float64", n_train=128, n_eval=64, hidden=16, batch_size=32)

# input widths 1, 3, 1 and 2 (feynman I.29.4: two variables): stacking pads them to the widest
TASKS = (
    polynomial(dim=1, seed=0),
    polynomial(dim=3, seed=1, degree=2, n_terms=3),
    harmonic(seed=0),
    feynman("I.29.4"),
)
NAMES = ("relu", "gelu", "gelu_sine", "tanh", "silu")


@pytest.fixture(scope="module")
def workloads():
    """Three candidates' workloads: different tasks, widths and seeds, as search rounds differ."""
    return [
        build_workload(Suite("a", TASKS[:2], (0, 1)), PROTOCOL),
        build_workload(Suite("b", TASKS[2:3], (3,)), PROTOCOL),
        build_workload(Suite("c", TASKS[1:], (0, 5)), PROTOCOL),
    ]


def assert_same(stacked, alone):
    torch.testing.assert_close(stacked.losses, alone.losses, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(stacked.id_error, alone.id_error, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(stacked.ood_error, alone.ood_error, rtol=1e-8, atol=1e-12)
    assert stacked.non_finite == alone.non_finite


def test_each_candidate_trains_as_in_its_own_call(workloads):
    acts = [activations.get(n) for n in ("relu", "gelu_sine", "silu")]
    stacked = train_stacked(acts, workloads)
    assert len(stacked) == 3
    for act, workload, result in zip(acts, workloads, stacked):
        assert_same(result, train_ensemble(act, workload))
    # and the activations really differ: a slice trained with another candidate's function differs
    assert not torch.allclose(stacked[0].ood_error, train_ensemble(acts[1], workloads[0]).ood_error)


def exploding(x):
    return torch.exp(torch.exp(x * 50))  # overflows, as in test_ensemble


def test_a_failing_candidate_fails_only_its_own_models(workloads):
    stacked = train_stacked([torch.relu, exploding, torch.tanh], workloads)
    assert stacked[0].non_finite == [] and stacked[2].non_finite == []
    assert stacked[1].non_finite == train_ensemble(exploding, workloads[1]).non_finite != []
    assert_same(stacked[2], train_ensemble(torch.tanh, workloads[2]))


def test_the_stacked_workload_pads_and_keeps_every_model(workloads):
    stacked, slices = stack_workloads(workloads)
    assert [s.stop - s.start for s in slices] == [w.models for w in workloads]
    assert stacked.labels == [label for w in workloads for label in w.labels]
    assert stacked.batches_x.shape[-1] == max(w.batches_x.shape[-1] for w in workloads) == 3
    narrow = workloads[1]  # width 1: its padded input columns are zero
    part = slices[1]
    assert torch.equal(stacked.batches_x[:, part, :, :1], narrow.batches_x)
    assert not stacked.batches_x[:, part, :, 1:].any()
    assert stacked.init.numel() > sum(w.init.numel() for w in workloads)  # padded first-layer rows


def test_protocols_and_lengths_must_agree(workloads):
    other = build_workload(Suite("d", TASKS[:1], (0,)), TrainingProtocol(steps=7, dtype="float64"))
    with pytest.raises(ValueError, match="one training protocol"):
        stack_workloads([workloads[0], other])
    with pytest.raises(ValueError, match="at least one"):
        stack_workloads([])
    with pytest.raises(ValueError, match="2 activations for 3 workloads"):
        train_stacked([torch.relu, torch.tanh], workloads)
    stacked, slices = stack_workloads(workloads)
    with pytest.raises(ValueError, match="1 activations for 3 slices"):
        train_sliced([torch.relu], stacked, slices)


@settings(max_examples=8, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(NAMES), st.sets(st.integers(0, len(TASKS) - 1), min_size=1), st.integers(0, 9)),
        min_size=1,
        max_size=3,
    )
)
def test_any_stack_of_candidates_matches_their_own_calls(candidates):
    acts, workloads = [], []
    for k, (name, tasks, seed) in enumerate(candidates):
        acts.append(activations.get(name))
        suite = Suite(f"s{k}", tuple(TASKS[i] for i in sorted(tasks)), (seed,))
        workloads.append(build_workload(suite, PROTOCOL))
    for act, workload, result in zip(acts, workloads, train_stacked(acts, workloads)):
        assert_same(result, train_ensemble(act, workload))


def test_the_benchmark_times_both_ways_on_the_same_candidates(capsys):
    """benchmarks/bench_stacked.py, short: per K, seconds per candidate both ways and the bound,
    and the two ways' OOD errors agree (stacking changes the float rounding only)."""
    protocol = TrainingProtocol(steps=6, n_train=128, n_eval=64, hidden=16, batch_size=32)  # float32, as the lab
    workloads = [build_workload(Suite(f"s{i}", TASKS[i : i + 2], (i,)), protocol) for i in range(3)]
    acts = [activations.get(n) for n in ("relu", "gelu", "tanh")]
    assert bench_stacked.groups(3, 2) == [[0, 1], [2]]
    row = bench_stacked.compare(acts, workloads, 2, repeats=1)
    assert set(row) == {"one by one", "stacked", "bound", "stacked bound", "difference"}
    assert all(row[k] > 0 for k in ("one by one", "stacked", "bound", "stacked bound"))
    assert row["difference"] < 1e-4  # the same arithmetic up to float32 rounding
    lines = bench_stacked.report("small", acts, workloads, [1, 3], repeats=1)
    assert lines[0].strip().startswith("small: 3 candidates")
    assert [line.split()[0] for line in lines[-2:]] == ["1", "3"]


def hostile_run(tmp_path: Path, marker: Path) -> Path:
    """A finished run's directory (a small pools config) whose programs are GELUSine and a hostile
    text: Python that would touch `marker`, with a terminal escape in its comment."""
    hostile = (
        f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"
        "def activation_function(x):\n    return x  # \x1b]0;title\x07\n"
    )
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(Config.from_dict(SMALL_POOLS).to_dict()))
    database = sqlite3.connect(run / "programs.sqlite")
    database.execute("CREATE TABLE programs (source TEXT, proposal_index INTEGER, status TEXT, fitness REAL)")
    database.executemany(
        "INSERT INTO programs VALUES (?, ?, ?, ?)",
        [(program(SEED_EXPRESSIONS["gelu_sine"]), 3, "ok", 0.2), (hostile, 5, "ok", 0.1)],
    )
    database.commit()
    database.close()
    return run


def test_a_runs_programs_are_read_by_the_language_and_never_executed(tmp_path):
    """What the isolated child does with a run's programs: reads them with the language's
    interpreter, so a program's own Python never runs, and its text is shown escaped."""
    marker = tmp_path / "MARKER"
    run = hostile_run(tmp_path, marker)
    lines: list[str] = []
    chosen = bench_stacked.run_candidates(bench_stacked.program_rounds(run, 10), tmp_path / "cache", lines)
    assert [label for label, _, _ in chosen] == ["#3 fused"]
    assert not marker.exists()
    assert any("#5 left out" in line for line in lines) and not any("\x1b" in line for line in lines)
    x = torch.linspace(-3, 3, 50)
    torch.testing.assert_close(chosen[0][1](x), activations.get("gelu_sine")(x), rtol=1e-5, atol=1e-6)


def test_the_run_mode_trains_a_runs_programs_only_in_an_isolated_child(tmp_path, monkeypatch):
    """`bench_stacked.py --run`: the benchmark's process reads the run's rows and builds the rounds'
    labs; the programs are read and trained only in the isolated child, whose lines come back."""
    marker = tmp_path / "MARKER"
    run = hostile_run(tmp_path, marker)

    def not_here(*args, **kwargs):
        raise AssertionError("a run's program was read in the benchmark's own process")

    monkeypatch.setattr(bench_stacked, "parse_program", not_here)
    monkeypatch.setattr(bench_stacked.fusion, "fused_or_reason", not_here)
    args = argparse.Namespace(run=run, candidates=10, k=[1, 2], repeats=1, timeout=600.0)
    lines = bench_stacked.run_mode(args)
    assert not marker.exists() and not any("\x1b" in line for line in lines)
    assert any("#5 left out" in line for line in lines)
    assert any(line.startswith("candidates: #3 fused;") for line in lines)
    tables = [i for i, line in enumerate(lines) if "candidates," in line]
    assert len(tables) == 2  # the suite `lab`, then each program on its own search round
    for start in tables:
        assert [line.split()[0] for line in lines[start + 2 : start + 4]] == ["1", "2"]


def test_a_child_that_overruns_its_time_is_killed_with_a_clear_error(tmp_path, capsys):
    run = hostile_run(tmp_path, tmp_path / "MARKER")
    args = argparse.Namespace(run=run, candidates=10, k=[1], repeats=1, timeout=0.5)
    with pytest.raises(SystemExit, match="the isolated child failed: timed out after 0.5 s"):
        bench_stacked.run_mode(args)
