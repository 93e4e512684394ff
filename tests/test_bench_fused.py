"""The fused-kernel benchmark's search-round mode (benchmarks/bench_fused.py --run RUN_DIR --rounds),
short: each program is evaluated on its own first search round, eagerly and fused, cold and cached,
beside ReLU and the matmul-only bound, and the report's totals come from those rows."""

from __future__ import annotations

import re
import sqlite3
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_fused as bench  # noqa: E402

from actmine.config import Config  # noqa: E402
from actmine.evolve.seeds import SEED_EXPRESSIONS, program  # noqa: E402
from actmine.candidate.sandbox import SandboxPool  # noqa: E402
from actmine.lab.ensemble import TrainingProtocol  # noqa: E402
from actmine.lab.fitness import Lab  # noqa: E402
from actmine.lab.tasks import Suite, get_suite  # noqa: E402
from search_runs import SMALL_POOLS  # noqa: E402


@pytest.fixture()
def finished_run(tmp_path) -> Path:
    """A run directory with the run's config and three scored programs (the columns the benchmark reads)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(Config.from_dict(SMALL_POOLS).to_dict()))
    database = sqlite3.connect(run / "programs.sqlite")
    database.execute("CREATE TABLE programs (source TEXT, proposal_index INTEGER, status TEXT, fitness REAL)")
    sources = [program(SEED_EXPRESSIONS[name]) for name in ("gelu_sine", "gelu_sinc_perturbation", "gmtu")]
    database.executemany(
        "INSERT INTO programs VALUES (?, ?, ?, ?)",
        [(source, index, "ok", 0.1 * index) for index, source in enumerate(sources)]
        + [("def activation_function(x):\n    return x\n", 7, "failed", None)],
    )
    database.commit()
    database.close()
    return run


def test_each_program_is_timed_on_its_own_search_round_every_way(finished_run, tmp_path, capsys, monkeypatch):
    def in_this_process(*args, **kwargs):
        raise AssertionError("a run's program ran in the benchmark's own process, outside a sandboxed worker")

    monkeypatch.setattr(Lab, "evaluate_source", in_this_process)  # ReLU's `Lab.evaluate` runs here: it is ours
    assert [index for _, index in bench.program_rounds(finished_run, 10)] == [0, 1, 2]  # the failed one is left out
    bench.search_rounds(finished_run, 10, tmp_path / "cache")
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if re.match(r"\s+\d+\s+\d", line)]
    assert len(rows) == 3
    for row in rows:
        build, eager, cold, warm, relu, bound = map(float, row[1:7])
        assert min(build, eager, cold, warm, relu, bound) > 0
        assert row[7] == "fused"  # three multi-op library functions: every one has a kernel
    assert "3 programs, each on its own first search round" in out
    per_hour = dict(re.findall(r"(eager|fused cold|fused|relu) (\d+) \(×", out))
    assert set(per_hour) == {"eager", "fused cold", "fused", "relu"}
    assert re.search(r"Spearman ρ \(eager vs fused fitness\) 1\.0000", out)  # three programs, the same order


def test_the_suite_mode_times_both_paths_in_a_worker_and_counts_the_first_compile(tmp_path, monkeypatch, capsys):
    def in_this_process(*args, **kwargs):
        raise AssertionError("a program ran in the benchmark's own process, outside a sandboxed worker")

    monkeypatch.setattr(Lab, "evaluate_source", in_this_process)
    small = Suite("lab-small", get_suite("lab").tasks[:3], (0,))
    labs = {
        flag: Lab(small, protocol=TrainingProtocol(steps=20), cache_dir=tmp_path, fused=flag) for flag in (False, True)
    }
    sources = [program(SEED_EXPRESSIONS[name]) for name in ("gelu_sine", "gmtu")] + ["def activation_function(x):\n"]
    with SandboxPool(1) as pool:
        rows, compile_s = bench.time_suite(pool, labs, sources)
    assert len(rows) == 2  # the third does not parse: refused on both paths, left out
    assert re.search(r"\n\s+2 refused: eager syntax", capsys.readouterr().out)
    for eager, fused in rows:
        assert eager.workload["kernel"].startswith("eager") and fused.workload["kernel"] == "fused"
        assert fused.fitness == pytest.approx(eager.fitness, abs=1e-3)
    assert compile_s > 0  # each program's first fused evaluation compiled its kernel in the worker
