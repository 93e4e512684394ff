"""actmine.api: a search from Python, a run read as DataFrames and modules, and evaluate/compare giving
what the CLI gives. One tiny real search (1 worker, 6 proposals, 3 small tasks) is shared by the
tests that read a run; the others build their databases by hand or only score activations."""

import functools
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import actmine
from actmine import api
from actmine.candidate.source import CandidateError
from actmine.config import ConfigError
from actmine.evolve.database import ProgramDatabase, ProgramRecord
from actmine.report import html as report_html
from actmine.report.formula import safe_function

from search_runs import SMALL_SUITE, write_tiny_config

#: what varies between two evaluations of the same thing: wall-clock times only
TIMES = ("seconds", "timings")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished tiny search, run through actmine.search with a config dict."""
    base = tmp_path_factory.mktemp("api-run")
    config = yaml.safe_load(write_tiny_config(base).read_text())
    config["search"]["budget"] = 6
    config["executor"]["workers"] = 1
    config["lab"]["steps"] = 10
    with pytest.MonkeyPatch.context() as mp:
        # the end-of-run report's reference training is not what these tests are about
        mp.setattr(report_html, "write_report", functools.partial(report_html.write_report, references=()))
        return actmine.search(config, base / "run")


def database_records(run_dir):
    with ProgramDatabase(run_dir / "programs.sqlite", readonly=True) as db:
        return db.programs(db.latest_run().id)


# ---- search and the run handle -------------------------------------------------------------


def test_search_returns_a_handle_on_the_finished_run(run):
    assert run.summary["evaluated"] == 6 and not run.summary["interrupted"]
    assert run.status() == "finished"
    assert run.config().search.budget == 6 and run.config().executor.workers == 1
    assert api.open_run(run.run_dir) == run  # the same run, found again from its directory


def test_programs_rows_are_the_database_rows(run):
    frame = run.programs()
    records = database_records(run.run_dir)
    assert list(frame.columns) == list(api.PROGRAM_COLUMNS)
    assert frame["id"].tolist() == [r.id for r in records]
    for row, record in zip(frame.to_dict("records"), records):
        for column in api.PROGRAM_COLUMNS:
            expected = (
                record.parent_ids[0]
                if column == "parent_id" and record.parent_ids
                else None
                if column == "parent_id"
                else getattr(record, column)
            )
            value = row[column]
            if expected is None:
                assert pd.isna(value), column
            else:
                assert value == expected, column
    ok = run.programs(status="ok")
    assert ok["id"].tolist() == [r.id for r in records if r.status == "ok"]


def test_best_is_the_search_ranking(run):
    records = [r for r in database_records(run.run_dir) if r.status == "ok" and r.settled]
    ranked = sorted(records, key=lambda r: (-(r.score if r.score is not None else r.fitness), r.id))
    assert run.best(3)["id"].tolist() == [r.id for r in ranked[:3]]
    assert run.best(100)["id"].tolist() == [r.id for r in ranked]


def test_lineage_follows_first_parents_to_a_seed(run):
    frame = run.programs()
    by_id = frame.set_index("id")
    for program_id in frame["id"]:
        chain = run.lineage(int(program_id))
        assert chain["id"].iloc[0] == program_id
        assert chain["parent_id"].iloc[:-1].tolist() == chain["id"].iloc[1:].tolist()
        assert pd.isna(chain["parent_id"].iloc[-1]) and chain["mutator"].iloc[-1] == "seed"
        assert chain["source"].tolist() == by_id.loc[chain["id"], "source"].tolist()


def test_heldout_is_the_end_of_run_check(run):
    final = json.loads((run.run_dir / "heldout.json").read_text())
    heldout = run.heldout()
    assert heldout.winner == final["winner"] and heldout.winner is not None
    assert heldout.winner_chosen_by == final["winner_chosen_by"]
    assert heldout.blend is None and final["blend"] is None  # a fixed suite: no blend (pools runs: test_search_noise)
    expected = pd.DataFrame(final["validation"]).astype({"program_id": "Int64"})
    pd.testing.assert_frame_equal(heldout.validation, expected)
    assert heldout.validation["program_id"].dropna().tolist() == [
        row["program_id"] for row in final["validation"] if row["program_id"] is not None
    ]
    assert {"relu", "gelu"} <= set(heldout.validation["name"])


def test_best_takes_a_count(run):
    everything = run.best(10**30)  # more than the run holds: all of them (LIMIT past int64 was an OverflowError)
    assert len(everything) == len(run.best(1000)) > 2 and run.best(0).empty
    assert run.best(2)["id"].tolist() == everything["id"].iloc[:2].tolist()
    for bad in (-1, 2.5, True):  # -1 gave every program
        with pytest.raises(ValueError, match="a whole number ≥ 0"):
            run.best(bad)


def test_heldout_ids_no_row_can_have_are_missing_not_an_overflow(run, tmp_path):
    """A hand-edited heldout.json with program ids beyond SQLite's integers: report, export and serve
    read it; `heldout()` raised OverflowError converting the ids to pandas' Int64."""
    copy = tmp_path / "run"
    shutil.copytree(run.run_dir, copy)
    final = json.loads((copy / "heldout.json").read_text())
    edited = [{**row, "program_id": 2**64 + 7} for row in final["validation"]]
    (copy / "heldout.json").write_text(json.dumps({**final, "validation": edited}))
    validation = actmine.open_run(copy).heldout().validation
    assert validation["program_id"].isna().all() and len(validation) == len(edited)
    assert validation["name"].tolist() == [row["name"] for row in edited]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-50, 50, allow_nan=False), min_size=1, max_size=40))
def test_best_module_computes_the_winners_program(run, values):
    """The module (compiled through the candidate policy) against the restricted-ast interpreter,
    which never runs the text."""
    module = run.best_module()
    winner = run.heldout().winner
    assert type(module).program_id == winner and isinstance(module, torch.nn.Module)
    source = run.programs().set_index("id").loc[winner, "source"]
    x = torch.tensor(values, dtype=torch.float32)
    torch.testing.assert_close(module(x), safe_function(source)(x))


def test_best_module_of_each_ok_program(run):
    x = torch.linspace(-6, 6, 49)
    for program in run.programs(status="ok").itertuples():
        module = run.best_module(program.id)
        assert type(module).program_id == program.id
        assert type(module).search_fitness == pytest.approx(program.fitness)
        torch.testing.assert_close(module(x), safe_function(program.source)(x))


# ---- runs built by hand: lineage, hostile sources, snapshots, errors -------------------------


def hand_made_run(run_dir, sources):
    """A run whose program k has source `sources[k]` and first parent k - 1 (and program 0 as a
    second parent: an inspiration, not lineage)."""
    db = ProgramDatabase(run_dir / "programs.sqlite")
    run_id = db.create_run({}, seed=0)
    ids = []
    for k, source in enumerate(sources):
        parents = [ids[-1], ids[0]] if ids else []
        ids.append(
            db.add_program(
                ProgramRecord(
                    run_id=run_id,
                    proposal_index=k,
                    source=source,
                    parent_ids=parents,
                    fitness=float(k),
                    score=float(k),
                    mutator="test",
                )
            )
        )
    return db, ids


def test_lineage_takes_the_first_parent_only(tmp_path):
    db, ids = hand_made_run(tmp_path, [f"def activation_function(x):\n    return x * {k}\n" for k in range(1, 5)])
    db.close()
    chain = api.open_run(tmp_path).lineage(ids[-1])
    assert chain["id"].tolist() == ids[::-1]
    assert chain["parent_ids"].iloc[0] == [ids[-2], ids[0]]


def test_a_refused_program_is_never_run(tmp_path):
    marker = tmp_path / "ran"
    hostile = f"import os\ndef activation_function(x):\n    os.system('touch {marker}')\n    return x\n"
    db, ids = hand_made_run(tmp_path, ["def activation_function(x):\n    return x\n", hostile])
    db.close()
    run = api.open_run(tmp_path)
    assert run.best(1)["id"].tolist() == [ids[1]]  # the best by score, and the default of best_module
    with pytest.raises(CandidateError) as refused:
        run.best_module()
    assert refused.value.code == "import" and not marker.exists()


def test_a_reader_sees_only_committed_programs(tmp_path):
    db, ids = hand_made_run(tmp_path, ["def activation_function(x):\n    return x\n"])
    run = api.open_run(tmp_path)
    with db.transaction():  # a search in the middle of writing a program
        db.add_program(
            ProgramRecord(
                run_id=run.run_id,
                proposal_index=1,
                source="def activation_function(x):\n    return -x\n",
                fitness=1.0,
                mutator="test",
            )
        )
        assert run.programs()["id"].tolist() == ids
    assert len(run.programs()) == 2
    db.close()


def test_open_run_without_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a run directory"):
        api.open_run(tmp_path / "missing")
    hand_made_run(tmp_path, ["def activation_function(x):\n    return x\n"])[0].close()
    with pytest.raises(LookupError, match="no program 99"):
        api.open_run(tmp_path).lineage(99)


def test_a_bad_config_dict_is_the_config_error_and_writes_nothing(tmp_path):
    with pytest.raises(ConfigError, match="unknown key search.budjet"):
        actmine.search({"search": {"budjet": 5}}, tmp_path / "run")
    with pytest.raises(ConfigError, match="'search.budget' must be positive"):
        actmine.search(None, tmp_path / "run", overrides={"search.budget": 0})
    assert not (tmp_path / "run").exists()


# ---- evaluate and compare ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def suite_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("api-suite") / "tiny.yaml"
    path.write_text(yaml.safe_dump({**SMALL_SUITE, "tasks": SMALL_SUITE["tasks"][:2]}))
    return path


def without_times(result):
    return {k: v for k, v in result.items() if k not in TIMES}


def test_evaluate_gives_what_the_cli_gives(suite_file, tmp_path):
    program = tmp_path / "mine.py"
    program.write_text("def activation_function(x):\n    return F.gelu(x) + 0.1 * torch.sin(x)\n")
    options = ["--suite", str(suite_file), "--seeds", "1", "--steps", "5"]
    cli = subprocess.run(
        [str(Path(sys.executable).with_name("actmine")), "compare", "gelu", str(program), "--json", *options],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cli.returncode == 0, cli.stderr
    expected = [without_times(r) for r in json.loads(cli.stdout)]
    both = actmine.compare(["gelu", program], suite=str(suite_file), seeds=1, steps=5)  # the file: sandboxed
    one = actmine.evaluate("gelu", suite=str(suite_file), seeds=1, steps=5)  # a name: here
    assert [without_times(e.to_dict()) for e in both] == expected
    assert without_times(one.to_dict()) == expected[0]
    assert all(e.ok and math.isfinite(e.fitness) for e in both) and both[1].activation == str(program)


def test_a_module_is_scored_here_like_its_registry_name(suite_file):
    by_name, by_module = actmine.compare(["gelu", torch.nn.GELU()], suite=str(suite_file), seeds=1, steps=5)
    assert by_module.activation == "GELU" and by_module.ok and len(by_module.tasks) == 2
    assert by_module.fitness == by_name.fitness and by_module.tasks == by_name.tasks


def test_a_program_compiled_here_is_scored_in_a_sandboxed_worker(run, suite_file, monkeypatch):
    """A run's program is untrusted however it reaches evaluate/compare: as `Run.best_module()`, its
    class, its function, a pack program registered by `load_pack` (by name or module), or the
    function of an imported `best_activation.py`. Compiling it here went through the policy; training
    it here would run it without a worker's limits, so its text goes to a sandboxed worker."""
    import importlib.util

    import actmine.activations as activations
    from actmine.candidate.source import program_source
    from actmine.lab.fitness import Lab

    source = run.programs().set_index("id").loc[run.heldout().winner, "source"]
    module = run.best_module()
    (registered,) = activations.load_pack(run.run_dir / "best_activation.py")
    spec = importlib.util.spec_from_file_location("best_activation_under_test", run.run_dir / "best_activation.py")
    generated = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generated)
    objects = [
        module,
        type(module),
        type(module).function,
        activations.get(registered),
        generated.activation_function,
        functools.partial(generated.activation_function),
        activations.ActivationFromCallable(type(module).function),
    ]
    assert all(program_source(o) == source for o in objects)
    assert program_source(torch.nn.GELU()) is None and program_source(torch.relu) is None
    assert program_source(activations.get("gelu_sine")) is None  # the library's own code: trusted

    options = {"suite": str(suite_file), "seeds": 1, "steps": 5}
    program = run.run_dir / "winner_program.py"
    program.write_text(source)
    expected = without_times(actmine.evaluate(program, **options).to_dict())  # a file: sandboxed

    def not_here(*args, **kwargs):
        raise AssertionError("a program compiled from a run was trained in the caller's process")

    monkeypatch.setattr(Lab, "evaluate", not_here)
    monkeypatch.setattr(Lab, "evaluate_source", not_here)
    scored = actmine.compare([*objects, registered], **options)
    named = actmine.evaluate(module, name="the winner", **options)
    assert named.activation == "the winner" and named.fitness == expected["fitness"]
    for evaluation in scored:
        assert evaluation.ok
        assert {k: v for k, v in without_times(evaluation.to_dict()).items() if k != "activation"} == {
            k: v for k, v in expected.items() if k != "activation"
        }


def test_the_reports_references_are_the_librarys_only(run):
    """A program named as a report reference (PACK.py:NAME) is not trained in the report's process."""
    import actmine.activations as activations

    (name,) = activations.load_pack(run.run_dir / "best_activation.py")
    config = run.config().to_dict()
    rows, note = report_html._reference_rows(config, [f"{run.run_dir / 'best_activation.py'}:{name}", name])
    assert rows == {} and "not evaluated here" in note


def test_bad_evaluate_options_are_value_errors(suite_file):
    with pytest.raises(ValueError, match="no_such_activation"):
        actmine.evaluate("no_such_activation", suite=str(suite_file))
    with pytest.raises(ValueError, match="steps"):
        actmine.evaluate("gelu", suite=str(suite_file), steps=0)
    with pytest.raises(ValueError, match="list"):
        actmine.compare("gelu")


def test_import_actmine_stays_light():
    code = "import sys, actmine; print(sorted(m for m in ('pandas', 'torch', 'actmine.api') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
    assert (actmine.search, actmine.open_run, actmine.Run) == (api.search, api.open_run, api.Run)
    with pytest.raises(AttributeError, match="no attribute 'serach'"):
        actmine.serach
