"""The `actmine` command as a user runs it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from actmine import activations
from actmine.cli import main
from figure_checks import assert_png_about

SMALL_SUITE = """
name: small
seeds: [0, 1]
tasks:
  - family: polynomial
    dim: 1
    seed: 0
  - family: harmonic
    seed: 2
  - family: feynman
    equation: I.14.3
  - family: formula
    name: damped
    expression: exp(-x/4)*sin(3*x)
    id: {x: [0, 2]}
    ood: {x: [2, 3]}
"""


@pytest.fixture()
def suite_file(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(SMALL_SUITE)
    return str(path)


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_every_activation_with_its_formula(capsys):
    code, out, _ = run_cli(capsys, "list", "--json")
    assert code == 0
    entries = {e["name"]: e for e in json.loads(out)}
    assert set(entries) == set(activations.list())
    assert "sin" in entries["gelu_sine"]["formula"] and entries["turbulent"]["pointwise"] is False
    code, out, _ = run_cli(capsys, "list")
    assert code == 0 and "gelu_sinc_perturbation" in out


def test_evaluate_json_prints_the_contract(capsys, suite_file):
    code, out, _ = run_cli(capsys, "evaluate", "gelu_sine", "--json", "--suite", suite_file)
    assert code == 0
    data = json.loads(out)
    assert data["activation"] == "gelu_sine" and data["ok"] is True and data["error"] is None
    assert len(data["tasks"]) == 4 and data["workload"]["models"] == 8 and data["workload"]["seeds"] == 2
    assert data["fitness"] == pytest.approx(-data["ood_log_ratio"])
    assert data["probes"]["pointwise"] is True


def test_evaluate_a_python_file(capsys, suite_file, tmp_path):
    candidate = tmp_path / "cand.py"
    candidate.write_text("def activation_function(x):\n    return F.gelu(x) + 0.1 * torch.sin(x)\n")
    code, out, _ = run_cli(capsys, "evaluate", str(candidate), "--json", "--suite", suite_file, "--seeds", "1")
    data = json.loads(out)
    assert code == 0 and data["ok"] and data["workload"]["seeds"] == 1


def test_refused_candidate_exits_non_zero_with_the_same_json(capsys, suite_file, tmp_path):
    candidate = tmp_path / "explodes.py"
    candidate.write_text("def activation_function(x):\n    return torch.exp(x)\n")
    code, out, _ = run_cli(capsys, "evaluate", str(candidate), "--json", "--suite", suite_file)
    data = json.loads(out)
    assert code == 1 and data["ok"] is False and data["error"]["code"] == "non_finite"
    assert data["fitness"] is None


@pytest.mark.parametrize(
    "source,expected",
    [
        ("def activation_function(x:\n    return x\n", "line 1"),
        ("def act(x):\n    return x\n", "activation_function"),
    ],
)
def test_broken_candidate_files_are_refused_at_the_policy_stage(capsys, tmp_path, source, expected, suite_file):
    candidate = tmp_path / "broken.py"
    candidate.write_text(source)
    code, out, err = run_cli(capsys, "evaluate", str(candidate), "--suite", suite_file)
    assert code == 1 and "refused" in out and "policy" in out and expected in out


def test_missing_candidate_file_is_a_usage_error(capsys):
    code, out, err = run_cli(capsys, "evaluate", "no/such/file.py")
    assert code == 2 and out == "" and "does not exist" in err


def test_unknown_activation_lists_the_known_ones(capsys):
    code, _, err = run_cli(capsys, "evaluate", "gleu")
    assert code == 2 and "did you mean 'gelu'" in err and "gelu_sine" in err and "actmine list" in err


def test_malformed_suite_file_names_the_task_and_field(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks:\n  - family: polynomial\n    dim: 1\n  - family: harmonic\n    frequency: [1, 2]\n")
    code, _, err = run_cli(capsys, "evaluate", "relu", "--suite", str(bad))
    assert code == 2 and "task 2" in err and "frequency" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["evaluate", "relu", "--seeds", "0"],
        ["evaluate", "relu", "--suite", "nope"],
        ["evaluate", "relu", "--steps", "-3"],
    ],
)
def test_bad_arguments_exit_2_with_a_message(capsys, argv):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and err.startswith("actmine: error:")


def test_cuda_without_a_gpu_is_a_clear_error(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    code, _, err = run_cli(capsys, "evaluate", "relu", "--device", "cuda")
    assert code == 2 and "--device cpu" in err


def test_compare_prints_a_table_per_family(capsys, suite_file):
    code, out, _ = run_cli(
        capsys, "compare", "relu", "gelu_sine", "turbulent", "--suite", suite_file, "--allow-batch-dependent"
    )
    assert code == 0
    for word in ("relu", "gelu_sine", "turbulent", "feynman", "harmonic", "polynomial", "formula", "+0.000"):
        assert word in out
    code, out, _ = run_cli(capsys, "compare", "relu", "turbulent", "--suite", suite_file)
    assert code == 1 and "batch_dependent" in out  # refused by default, shown in the table
    code, out, _ = run_cli(capsys, "compare", "relu", "gelu", "--suite", suite_file, "--markdown")
    lines = out.strip().splitlines()
    assert code == 0 and lines[0].startswith("| activation") and len(lines) == 4
    assert lines[2].startswith("| relu") and lines[2].endswith("+0.000 |")


def test_console_script_runs_as_installed(tmp_path, suite_file):
    """The real `actmine` entry point in a subprocess, as a user's shell runs it."""
    exe = Path(sys.executable).with_name("actmine")
    env = {**os.environ, "ACTMINE_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run(
        [str(exe), "evaluate", "relu", "--json", "--suite", suite_file],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ood_log_ratio"] == 0.0


def test_compare_plot_writes_a_png(capsys, suite_file, tmp_path):
    candidate = tmp_path / "cand.py"
    candidate.write_text("def activation_function(x):\n    return F.gelu(x) + 0.1 * torch.sin(x)\n")
    out = tmp_path / "cmp.png"
    code, _, err = run_cli(capsys, "compare", "relu", str(candidate), "--suite", suite_file, "--plot", str(out))
    data = out.read_bytes()
    assert code == 0 and data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000 and "plot written" in err
    assert_png_about(data, (11, 7.5), dpi=100, slack=0.1)  # plot_comparison's curves above its bars


def test_report_and_export_need_a_run_directory(capsys, tmp_path):
    for argv in (["report", str(tmp_path)], ["export", str(tmp_path), "--out", str(tmp_path / "p.py")]):
        code, out, err = run_cli(capsys, *argv)
        assert code == 2 and "not a run directory" in err


# ---- programs of generated files (packs, best_activation.py): run only in the sandbox ------------


def write_pack(path, programs):
    from actmine.language.files import ProgramEntry, render_program_file

    entries = [
        ProgramEntry(name, name.title().replace("_", ""), source, {"rationale": "test"})
        for name, source in programs.items()
    ]
    path.write_text(render_program_file(entries, "a test pack"))
    return path


def test_pack_programs_are_evaluated_in_the_sandbox_never_here(capsys, tmp_path, suite_file, monkeypatch):
    """`evaluate PACK.py:NAME` and `compare` read the program as data and send it to a worker: with
    compilation broken in this process, they still score it."""
    import actmine.candidate.loader
    import actmine.candidate.source

    def never_here(*_args, **_kwargs):
        raise AssertionError("a program file was compiled in the CLI process")

    monkeypatch.setattr(actmine.candidate.source, "compile_candidate", never_here)
    monkeypatch.setattr(actmine.candidate.loader, "compile_candidate", never_here)
    pack = write_pack(
        tmp_path / "pack.py",
        {
            "mined_1": "def activation_function(x):\n    return F.gelu(x)\n",
            "mined_2": "def activation_function(x):\n    return torch.tanh(x)\n",
        },
    )
    code, out, err = run_cli(capsys, "evaluate", f"{pack}:mined_2", "--json", "--suite", suite_file, "--seeds", "1")
    data = json.loads(out)
    assert code == 0 and data["ok"] and data["activation"] == f"{pack}:mined_2", err
    # compare takes a pack as each of its programs
    code, out, err = run_cli(capsys, "compare", "relu", str(pack), "--json", "--suite", suite_file, "--seeds", "1")
    assert code == 0 and [e["activation"] for e in json.loads(out)] == ["relu", f"{pack}:mined_1", f"{pack}:mined_2"]
    # evaluate needs one program; an unknown name lists the known ones
    for target, words in (
        (str(pack), ["2 programs", "mined_1", "mined_2"]),
        (f"{pack}:mined_3", ["no program 'mined_3'", "mined_1, mined_2"]),
    ):
        code, out, err = run_cli(capsys, "evaluate", target, "--suite", suite_file)
        assert code == 2 and out == "" and all(w in err for w in words) and "[unknown_program]" in err


def test_an_old_plain_code_pack_is_a_usage_error_and_is_not_run(capsys, tmp_path):
    marker = tmp_path / "ran"
    old = tmp_path / "old.py"
    old.write_text(f"open({str(marker)!r}, 'w')\nACTIVATIONS = {{}}\n")
    code, out, err = run_cli(capsys, "evaluate", f"{old}:mined_1")
    assert code == 2 and "[stale_program_file]" in err and "actmine export" in err and not marker.exists()


def test_refusal_messages_are_printed_with_control_characters_escaped(capsys, tmp_path, suite_file):
    candidate = tmp_path / "loud.py"
    candidate.write_text("def activation_function(x):\n    raise ValueError('\\x1b]0;owned\\x07\\x1b[2J[red]boom')\n")
    code, out, _ = run_cli(capsys, "evaluate", str(candidate), "--suite", suite_file, "--seeds", "1", "--steps", "5")
    assert code == 1 and "refused" in out
    assert "\x1b" not in out and "\x07" not in out and "\\x1b]0;owned\\x07" in out and "[red]boom" in out
    code, _, err = run_cli(capsys, "evaluate", str(tmp_path / "no\x1b[2Jsuch.py"))
    assert code == 2 and "\x1b" not in err and "\\x1b[2J" in err


@pytest.mark.parametrize("command", [["report"], ["export", "--out", "pack.py"]])
def test_report_and_export_refuse_a_damaged_database_in_one_line(capsys, tmp_path, command):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    damaged = b"not a database " * 400
    (run_dir / "programs.sqlite").write_bytes(damaged)
    argv = [command[0], str(run_dir), *[str(tmp_path / a) if a.endswith(".py") else a for a in command[1:]]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a usable program database" in err and "Traceback" not in err
    assert (run_dir / "programs.sqlite").read_bytes() == damaged
    assert sorted(p.name for p in run_dir.iterdir()) == ["programs.sqlite"]


def test_every_subcommand_returns_its_exit_status():
    """`main` returns what a `cmd_*` function returns: each one's last statement is a `return` (or a
    `raise`), so none falls off its end and answers None (the refactor into commands/ once lost one)."""
    import ast
    import inspect

    import actmine.commands as commands
    from actmine.plugins import import_modules

    import_modules(commands.__name__, commands.__path__)
    found = []
    for module in [m for name, m in sorted(vars(commands).items()) if inspect.ismodule(m)]:
        for node in ast.parse(inspect.getsource(module)).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("cmd_"):
                found.append(node.name)
                assert isinstance(node.body[-1], (ast.Return, ast.Raise)), f"{module.__name__}.{node.name}"
    assert len(found) >= 10 and "cmd_validate" in found


def _run_made_with(run_dir: Path, config) -> None:
    """A run directory as `actmine search` leaves it: the database with the run, and its config.yaml."""
    import yaml

    from actmine.evolve.database import ProgramDatabase
    from actmine.run_files import CONFIG_SNAPSHOT, DATABASE

    run_dir.mkdir()
    database = ProgramDatabase(run_dir / DATABASE)
    database.create_run(config.to_dict(), config.search.seed, {})
    database.close()
    (run_dir / CONFIG_SNAPSHOT).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


def test_the_same_search_command_resumes_a_run_whose_defaults_have_changed_since(tmp_path, capsys):
    """`actmine search --run-dir D` with no --config starts from D's own config.yaml where D holds a
    run (a default changed by an upgrade does not refuse the resume); --config still wins, the
    options still apply on top, and a change that may not happen on resume is still refused."""
    from actmine.run_files import stored_config
    from actmine.config import Config, ConfigError
    from actmine.evolve.controller import Search

    older = Config().with_overrides({"sandbox.max_tasks_per_worker": 50, "search.seed": 7})
    run_dir = tmp_path / "run"
    _run_made_with(run_dir, older)
    assert stored_config(tmp_path / "new") is None  # a new run: the embedded defaults
    assert stored_config(run_dir) == run_dir / "config.yaml"
    # --config still wins over the run's own: a missing file is refused before anything runs
    assert main(["search", "--run-dir", str(run_dir), "--config", str(tmp_path / "my.yaml")]) == 2
    resumed = Config.load(stored_config(run_dir)).with_overrides({"search.budget": 600})
    assert resumed.search.seed == 7 and resumed.sandbox.max_tasks_per_worker == 50 and resumed.search.budget == 600
    Search(resumed, run_dir)._open()[0].close()  # accepted: the budget may change on resume
    with pytest.raises(ConfigError, match="max_tasks_per_worker"):
        Search(Config().with_overrides({"search.seed": 7}), run_dir)._open()  # today's defaults: refused
    with pytest.raises(ConfigError, match="search.seed"):
        Search(resumed.with_overrides({"search.seed": 8}), run_dir)._open()
    assert "my.yaml" in capsys.readouterr().err


def test_a_search_on_a_database_with_a_column_gone_is_a_usage_error_not_a_full_disk(tmp_path, capsys):
    """A table or column removed by hand is the database's fault: exit 2 and "edited or damaged",
    not exit 1 with "free disk space, permissions … run the same command again"."""
    import sqlite3

    from actmine.config import Config
    from actmine.evolve.database import ProgramDatabase
    from actmine.run_files import DATABASE

    from search_runs import write_tiny_config
    from test_database import record

    config = Config.load(write_tiny_config(tmp_path, search={"budget": 4}, executor={"workers": 1}))
    run_dir = tmp_path / "run"
    _run_made_with(run_dir, config)
    with ProgramDatabase(run_dir / DATABASE) as db:
        db.add_program(record(db.latest_run()["id"], 0, 0.5))
    with sqlite3.connect(run_dir / DATABASE) as connection:
        connection.execute("DROP INDEX IF EXISTS programs_fitness")
        connection.execute("ALTER TABLE programs DROP COLUMN fitness")
    connection.close()
    assert main(["search", "--run-dir", str(run_dir), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such column: fitness" in err and "edited or damaged" in err
    assert "free disk space" not in err


def test_an_ascii_terminal_gets_question_marks_not_a_traceback():
    """LC_ALL=C without Python's UTF-8 mode: stdout is ASCII. `list` printed "α=0.1" and "√(2/π)", the
    end of a search "±", `compare` "÷" -- each a UnicodeEncodeError after the work was done."""
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    exe = Path(sys.executable).with_name("actmine")
    result = subprocess.run([str(exe), "list"], capture_output=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr.decode("ascii", "backslashreplace")
    assert b"Traceback" not in result.stderr
    out = result.stdout.decode("ascii")  # every byte ASCII: what the terminal cannot show is "?"
    assert "gelu_sine" in out and "GELU(x) + ?" in out


def test_ctrl_c_in_any_command_is_one_line_and_130(monkeypatch, capsys):
    """Report, export, list …: a Ctrl-C printed KeyboardInterrupt's traceback."""
    import actmine.cli as cli

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_list", interrupted)
    assert main(["list"]) == 130
    assert capsys.readouterr().err == "actmine: interrupted\n"
    monkeypatch.setattr(cli, "build_parser", interrupted)  # while the command line is read (plugins import)
    assert main(["list"]) == 130
