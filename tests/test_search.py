"""`actmine search` end to end: a short run, a real kill -9 and resume, Ctrl-C, config changes."""

import importlib.util
import io
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from actmine.config import Config, ConfigError
from actmine.evolve.controller import Search
from actmine.evolve.database import ProgramDatabase
from actmine.lab.estimate import WINNER_RULES
from search_runs import programs, programs_so_far, run_cli, write_tiny_config


@pytest.fixture()
def config_file(tmp_path):
    return write_tiny_config(tmp_path)


def test_short_search_end_to_end(tmp_path, config_file):
    run_dir = tmp_path / "run"
    log = io.StringIO()  # what a search writes where its output is not a terminal
    summary = Search(Config.load(config_file), run_dir, live=False, log=log).run()
    assert summary["evaluated"] == 16 and not summary["interrupted"]
    lines = log.getvalue().splitlines()  # a budget of 16: a tenth is one evaluation, a line at each update
    assert lines.pop(0).startswith("preparing the search's tasks")
    assert lines.pop().startswith("validation: the top 2 and the seeds on the validation tasks")  # the last phase
    counts = [int(re.match(r"evaluated (\d+)/16 · [\d.]+ evals/s", line).group(1)) for line in lines]
    assert counts == sorted(set(counts)) and counts[-1] == 16
    assert re.search(r"· best #\d+ [+-]\d\.\d{3} ± \d\.\d{3} \(\d+ rounds\) · \d+ waiting for confirmation", lines[-1])
    records = programs(run_dir)
    assert len(records) == 16
    assert sorted(r.proposal_index for r in records) == list(range(16))
    assert records[0].mutator == "seed" and records[0].status == "ok"
    assert any(r.mutator == "symbolic" for r in records)
    assert all(r.rationale for r in records)
    assert {p for r in records for p in r.parent_ids} <= {r.id for r in records}
    assert "report_error" not in summary
    for name in ("programs.sqlite", "config.yaml", "best_activation.py", "heldout.json", "report.html"):
        assert (run_dir / name).is_file()

    # best_activation.py is a plain module that computes the program the validation chose
    final = json.loads((run_dir / "heldout.json").read_text())
    best = next(r for r in records if r.id == final["winner"])
    spec = importlib.util.spec_from_file_location("best_activation", run_dir / "best_activation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    x = torch.linspace(-4, 4, 33)
    namespace = {"torch": torch, "F": torch.nn.functional, "math": __import__("math")}
    exec(best.source, namespace)
    torch.testing.assert_close(module.BestActivation()(x), namespace["activation_function"](x))
    assert f"#{best.id}" in module.__doc__

    heldout = {row["name"]: row for row in final["validation"]}
    assert heldout["relu"]["heldout_fitness"] == 0.0
    assert {"gelu", "gelu_sine", "gelu_sinc_perturbation"} <= set(heldout)
    # the top list of 2, and the seed (relu) when it is not in it
    top = sorted((r for r in records if r.status == "ok"), key=lambda r: (-r.score, r.id))[:2]
    seed = next(r for r in records if r.mutator == "seed")
    assert {row["program_id"] for row in heldout.values() if row["program_id"] is not None} == {r.id for r in top} | {
        seed.id
    }
    # the winner is the validation's best of the top list by the run's rule, whatever its search fitness
    programs_rows = [row for row in heldout.values() if row["program_id"] is not None]
    rule = WINNER_RULES[final["winner_rule"]]
    assert final["winner_rule"] == Config().search.winner_rule
    assert heldout[f"program {best.id}"]["winner"]
    assert rule(heldout[f"program {best.id}"]["heldout_fitness"], heldout[f"program {best.id}"]["families"]) == max(
        rule(r["heldout_fitness"], r["families"]) for r in programs_rows
    )
    # ... and best_activation.py carries the winner's validation score, rewritten after the check
    assert module.BestActivation.heldout_fitness == heldout[f"program {best.id}"]["heldout_fitness"]
    assert module.BestActivation.heldout_fitness is not None


def test_the_same_function_is_recorded_once_and_linked(tmp_path, config_file):
    same = tmp_path / "relu_again.py"
    same.write_text("def activation_function(x):\n    # ReLU, spelled differently\n    return F.relu(x)\n")
    config = Config.load(config_file).with_overrides(
        {"search.budget": 3, "search.initial_programs": ["relu", str(same), "relu"]}
    )
    Search(config, tmp_path / "run", live=False).run()
    records = {r.proposal_index: r for r in programs(tmp_path / "run")}
    originals = [r for r in records.values() if r.status == "ok" and r.mutator == "seed"]
    duplicates = [r for r in records.values() if r.status == "duplicate"]
    assert len(originals) == 1 and len(duplicates) == 2
    assert all(d.duplicate_of == originals[0].id and d.fitness == originals[0].fitness for d in duplicates)


def test_kill_minus_nine_then_resume_loses_nothing_and_repeats_nothing(tmp_path, config_file):
    run_dir = tmp_path / "run"
    process = run_cli(config_file, run_dir, "--budget", "40")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if len(programs_so_far(run_dir)) >= 8:
            break
    os.killpg(process.pid, signal.SIGKILL)  # the controller and its workers, no clean-up at all
    process.wait()
    with ProgramDatabase(run_dir / "programs.sqlite", readonly=True) as db:  # as report and serve read it
        assert db.latest_run().status == "interrupted"  # nothing marked it, but nobody holds its lock
    before = {r.proposal_index: (r.id, r.source, r.fitness, r.status) for r in programs(run_dir)}
    assert 8 <= len(before) < 40
    with sqlite3.connect(run_dir / "programs.sqlite") as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    resumed = run_cli(config_file, run_dir, "--budget", "40")
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    after = programs(run_dir)
    assert len(after) == 40
    indexes = [r.proposal_index for r in after]
    assert len(set(indexes)) == 40  # nothing evaluated twice
    by_index = {r.proposal_index: (r.id, r.source, r.fitness, r.status) for r in after}
    assert all(by_index[i] == before[i] for i in before)  # nothing that finished was lost or changed
    assert sorted(indexes) == list(range(40))  # gap-free: work lost in flight was proposed anew


def test_resume_with_a_changed_config_is_refused(tmp_path, config_file):
    run_dir = tmp_path / "run"
    Search(Config.load(config_file).with_overrides({"search.budget": 3}), run_dir, live=False).run()
    changed = Config.load(config_file).with_overrides({"search.budget": 3, "search.seed": 11})
    with pytest.raises(ConfigError, match="search.seed"):
        Search(changed, run_dir, live=False).run()
    more = Config.load(config_file).with_overrides({"search.budget": 5})  # a larger budget is fine
    # the run's own config.yaml, broken by hand: named, not a YAML traceback or a bare codec error
    snapshot = run_dir / "config.yaml"
    for broken, why in ((b"search: [\n", "while parsing"), (b"search:\n  budget: 3 # \xff\n", "not UTF-8")):
        snapshot.write_bytes(broken)
        with pytest.raises(
            ConfigError, match=f"{re.escape(str(snapshot))}, the run's own config, cannot be used: .*{why}"
        ):
            Search(more, run_dir, live=False).run()
    snapshot.unlink()  # as the error says: the config recorded in the database is used
    assert Search(more, run_dir, live=False).run()["evaluated"] == 5
    assert snapshot.read_bytes() != b"" and Config.load(snapshot).search.budget == 5


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_stop_signal_stops_cleanly(tmp_path, config_file, stop):
    """Ctrl-C, and alike SIGTERM (`timeout`, `docker stop`, Slurm) and SIGHUP (a closed terminal):
    the work in flight finishes, the run is "interrupted" with its files, the exit status is the
    shell's 128 + the signal (so `search && export` does not go on), and the same command resumes."""
    run_dir = tmp_path / "run"
    process = run_cli(config_file, run_dir, "--budget", "200")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(programs_so_far(run_dir)) < 4:
        time.sleep(0.5)
    process.send_signal(stop)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 128 + stop, err
    assert "search interrupted" in out and "Traceback" not in err
    with ProgramDatabase(run_dir / "programs.sqlite", readonly=True) as db:
        assert db.latest_run()["status"] == "interrupted"
    assert (run_dir / "best_activation.py").is_file()


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        ("proposal_ready:2:INT,result_ready:3:INT", 130),  # a second Ctrl-C: stop waiting for work in flight
        ("heldout_write:2:INT", 130),  # Ctrl-C during the final check
        ("heldout_write:1:TERM", 143),
    ],
)
def test_a_stop_signal_outside_the_loop_is_one_line_and_the_same_command_finishes_the_run(
    tmp_path, config_file, fault, status
):
    run_dir = tmp_path / "run"
    process = run_cli(config_file, run_dir, env={**os.environ, "ACTMINE_FAULT": fault})
    out, err = process.communicate(timeout=300)
    assert process.returncode == status, err
    lines = [line for line in err.splitlines() if not line.startswith("actmine fault:")]
    assert lines == [
        f"actmine: search interrupted; every evaluation committed is kept: run the same command again to resume {run_dir}"
    ]
    with ProgramDatabase(run_dir / "programs.sqlite", readonly=True) as db:
        assert db.latest_run()["status"] == "interrupted"  # not "running" with no process behind it
    assert not (run_dir / "heldout.json").exists()
    again = run_cli(config_file, run_dir)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    with ProgramDatabase(run_dir / "programs.sqlite", readonly=True) as db:
        assert db.latest_run()["status"] == "finished"
    assert sorted(r.proposal_index for r in programs(run_dir) if r.mutator != "blend") == list(range(16))
    assert (run_dir / "heldout.json").is_file() and (run_dir / "report.html").is_file()


def test_bad_config_is_a_usage_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("search:\n  budgte: 3\n")
    exe = Path(sys.executable).with_name("actmine")
    done = subprocess.run(
        [str(exe), "search", "--config", str(bad), "--run-dir", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "search.budgte" in done.stderr


def test_seed_override_applies_to_the_search_suite_only():

    config = Config().with_overrides({"lab.training_seeds": 6})
    assert config.build_lab().suite.seeds == tuple(range(6))
    assert config.build_lab("lab-heldout").suite.seeds == (100, 101, 102)


def test_a_search_the_disk_stops_says_so_in_one_line_and_resumes(tmp_path):
    """A file-size limit stands in for a full disk: SQLite cannot grow the database mid-run."""
    config = write_tiny_config(tmp_path, search={"budget": 8})
    run_dir = tmp_path / "run"
    limited = subprocess.run(
        ["bash", "-c", f'ulimit -f 200; exec "{Path(sys.executable).with_name("actmine")}" "$@"', "actmine"]
        + ["search", "--config", str(config), "--run-dir", str(run_dir), "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert limited.returncode == 1, limited.stderr
    assert limited.stderr.count("\n") == 1 and "Traceback" not in limited.stderr
    assert "the search stopped" in limited.stderr and "run the same command again to resume" in limited.stderr
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    resumed = run_cli(config, run_dir)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert len(programs(run_dir)) == 8
