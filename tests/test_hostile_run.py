"""A run whose database holds a hostile program and a hostile rationale, inserted directly (the
policy never saw them): nothing that writes, exports, loads, evaluates or reports it runs the
program as code, the checked path refuses it with its reason code, and the rationale lands only
as escaped text (Python literal, HTML, terminal)."""

import importlib
import importlib.util
import io
import json
import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
import torch

from actmine import activations
from actmine.candidate.source import CandidateError, check_source, read_candidate_file, read_candidate_reference
from actmine.cli import main, print_search_summary
from actmine.config import Config
from actmine.evolve.controller import Search, SearchState, write_best_program
from actmine.evolve.database import ProgramDatabase, ProgramRecord
from actmine.report import export_pack
from actmine.terminal import terminal_text
from test_export import import_plainly

ONE_TASK_SUITE = "name: one\nseeds: [0]\ntasks:\n  - family: polynomial\n    dim: 1\n    seed: 0\n"
TERMINAL_ATTACK = "\x1b]0;owned\x07\x1b[2J\x9b31m\r\x08"
CONTROLS = set("\x1b\x07\x9b\r\x08")
GOOD_SOURCE = "def activation_function(x):\n    return torch.relu(x) * 2.0\n"


def hostile_source(marker):
    """Harmless as data; as plain module code it would write `marker` (twice over)."""
    return (
        f"def activation_function(x):\n    return x\n\nimport os\nos.system('touch {marker}')\n"
        f"open({str(marker)!r}, 'w').write('ran')\n"
    )


def nn_escape_source(marker):
    """The issue's payload: accepted by the old policy (the NameError hid in the sandbox) and run for
    real by old packs, whose header imported `nn`."""
    return (
        "def activation_function(x):\n    try:\n"
        f"        nn.functional.torch.os.system('touch {marker}')\n"
        "    except Exception:\n        pass\n    return torch.relu(x)\n"
    )


def hostile_rationale(marker):
    return (
        f'"""; import os; os.system("touch {marker}"); """\n\'\'\'; open({str(marker)!r}, "w"); \'\'\'\n'
        f"{TERMINAL_ATTACK}</script><script>alert(1)</script>"
    )


@pytest.fixture()
def hostile_run(tmp_path):
    """RUN/programs.sqlite: a parent and the top program, both hostile, and a good runner-up."""
    marker = tmp_path / "MARKER"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with ProgramDatabase(run_dir / "programs.sqlite") as db:
        run_id = db.create_run({}, 0, {})
        common = dict(
            run_id=run_id,
            status="ok",
            mutator="llm</script>\x1b[31m",
            model="m\x07\r",
            family_log_ratios={"polynomial": -1.0},
            probes={"pointwise": True},
        )
        parent = db.add_program(
            ProgramRecord(
                proposal_index=0, source=GOOD_SOURCE, fitness=1.0, rationale=hostile_rationale(marker), **common
            )
        )
        best = db.add_program(
            ProgramRecord(
                proposal_index=1,
                source=hostile_source(marker),
                fitness=100.0,
                parent_ids=[parent],
                rationale=hostile_rationale(marker),
                **common,
            )
        )
        escape = db.add_program(
            ProgramRecord(proposal_index=3, source=nn_escape_source(marker), fitness=80.0, rationale="nn", **common)
        )
        good = db.add_program(
            ProgramRecord(
                proposal_index=2,
                source=GOOD_SOURCE.replace("2.0", "3.0"),
                fitness=50.0,
                rationale="fine",
                **{**common, "mutator": "symbolic"},
            )
        )
        write_best_program(run_dir / "best_activation.py", db.get(best), db)
    pack = export_pack(run_dir, 4, tmp_path / "pack.py")
    return {
        "run_dir": run_dir,
        "marker": marker,
        "pack": pack,
        "best": best,
        "good": good,
        "parent": parent,
        "escape": escape,
        "best_file": run_dir / "best_activation.py",
    }


def refused_with_import(call):
    with pytest.raises(CandidateError) as refused:
        call()
    assert refused.value.code == "import", str(refused.value)
    return str(refused.value)


def test_the_generated_files_hold_the_hostile_text_as_data_only(hostile_run):
    marker = hostile_run["marker"]
    for path in (hostile_run["pack"], hostile_run["best_file"]):
        text = path.read_text()
        assert text.isascii() and "\x1b" not in text and "</script>" not in text.split("PROGRAMS =")[0]
        # every line of the hostile texts is inside a string literal: the only statements are the format's
        assert "\nimport os" not in text and "\nos.system" not in text and '\n"""; import' not in text
    assert not marker.exists()


def test_no_load_path_runs_the_hostile_program(hostile_run, tmp_path, restore_registry, monkeypatch):
    marker, pack, best, good = hostile_run["marker"], hostile_run["pack"], hostile_run["best"], hostile_run["good"]
    # import the pack and best_activation.py as plain Python
    message = refused_with_import(lambda: import_plainly(pack, "hostile_pack"))
    assert f"mined_{best}" in message and f"mined_{good}" in message  # names the refused one and the others
    monkeypatch.syspath_prepend(str(hostile_run["run_dir"]))
    refused_with_import(lambda: importlib.import_module("best_activation"))
    # the loaders of the library
    refused_with_import(lambda: activations.load_pack(pack))
    refused_with_import(lambda: activations.load_pack(hostile_run["best_file"]))
    refused_with_import(lambda: activations.get(f"{pack}:mined_{best}"))
    assert f"mined_{best}" not in activations.REGISTRY
    with pytest.raises(CandidateError) as refused:
        activations.get(f"{pack}:mined_{hostile_run['escape']}")
    assert refused.value.code == "undefined_name" and "nn" in str(refused.value)
    # the good program of the same pack loads alone, and computes its own function
    module = activations.get(f"{pack}:mined_{good}")
    torch.testing.assert_close(module(torch.tensor([-1.0, 2.0])), torch.tensor([0.0, 6.0]))
    doc = type(module).__doc__  # `help()` prints it: the model name's BEL and CR are shown, not sent
    assert "Made by: symbolic (m\\x07" in doc and not CONTROLS & set(doc)
    # read as candidates: the source comes back as text, and the policy refuses it
    for source in (read_candidate_file(hostile_run["best_file"]), read_candidate_reference(f"{pack}:mined_{best}")[1]):
        assert "os.system" in source
        refused_with_import(lambda: check_source(source))
    assert not marker.exists()


def test_the_cli_sends_pack_programs_to_the_sandbox_and_escapes_what_it_prints(hostile_run, tmp_path, capsys):
    suite = tmp_path / "one.yaml"
    suite.write_text(ONE_TASK_SUITE)
    pack, best = hostile_run["pack"], hostile_run["best"]
    options = ["--suite", str(suite), "--seeds", "1", "--steps", "5"]
    for target in (f"{pack}:mined_{best}", str(hostile_run["best_file"])):
        code = main(["evaluate", target, "--json", *options])
        data = json.loads(capsys.readouterr().out)
        assert code == 1 and data["stage"] == "policy" and data["error"]["code"] == "import"
    # the report: every database text escaped, no script
    assert main(["report", str(hostile_run["run_dir"])]) == 0
    capsys.readouterr()
    html = (hostile_run["run_dir"] / "report.html").read_text()
    assert "<script" not in html.lower() and "\x1b" not in html and "\x07" not in html
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert not hostile_run["marker"].exists()


def test_terminal_output_escapes_control_sequences(hostile_run, capsys):
    with ProgramDatabase(hostile_run["run_dir"] / "programs.sqlite", readonly=True) as db:
        record = db.get(hostile_run["best"])
    summary = {
        "run_id": 1,
        "evaluated": 3,
        "interrupted": False,
        "seconds": 1.0,
        "idle_fraction": 0.0,
        "failures": {f"policy:{TERMINAL_ATTACK}": 1},
        "stopped": TERMINAL_ATTACK,
        "best": {"id": record.id, "fitness": record.fitness, "source": record.source, "rationale": record.rationale},
        "report_error": f"[red]{TERMINAL_ATTACK}",
        "heldout": [{"name": TERMINAL_ATTACK, "search_fitness": None, "heldout_fitness": None}],
    }
    print_search_summary(summary, "run")
    out = capsys.readouterr().out
    assert not set(out) & CONTROLS
    assert "\\x1b]0;owned\\x07" in out and "[red]" in out  # shown, escaped, and not read as markup
    # the live view of the search
    from rich.console import Console

    state = SearchState(budget=3, top=[record], failures={TERMINAL_ATTACK: 2}, last=TERMINAL_ATTACK)
    view = Search(Config(), hostile_run["run_dir"], live=False)._render(state)
    console = Console(file=io.StringIO(), width=200, color_system=None, force_terminal=False)
    console.print(view)
    rendered = console.file.getvalue()
    assert not set(rendered) & CONTROLS and "\\x1b" in rendered


@pytest.mark.parametrize("text", [TERMINAL_ATTACK, "a\u202eb\u2028c\x00d\x7fe\x85f", "\ud800", "plain [b]text[/b]"])
def test_terminal_text_leaves_nothing_a_terminal_acts_on(text):
    for keep in (True, False):
        safe = terminal_text(text, keep_newlines=keep)
        assert all(c.isprintable() or (keep and c in "\n\t") for c in safe)
    assert terminal_text("line\n\tnext") == "line\n\tnext" and terminal_text("a\nb", keep_newlines=False) == "a\\x0ab"


@given(st.text(max_size=80))
@example("\\")
@example("a\\[b")
@example("a[/]b")
@example(":smile:")
def test_a_progress_description_is_the_names_visible_text_never_markup(text):
    """A target's file name in a progress bar (`evaluate`, `compare`, `transfer`, `reproduce`): `a[/]b`
    raised rich's MarkupError, `[red]` styled the bar, ESC reached the terminal."""
    from rich.console import Console

    from actmine.terminal import progress_bar, progress_text

    bar = progress_bar("label", Console(file=io.StringIO()))
    bar.add_task(progress_text(text), total=1)
    shown = bar.columns[-1].render(bar.tasks[0])  # the description column, as the bar draws it
    # as markup, a trailing backslash showed twice and `\\[` lost its backslash (found by this test)
    assert shown.plain == terminal_text(text, keep_newlines=False) and not shown.spans


@pytest.mark.parametrize("name", ["m$\\foo{$", "a$b$c", "t\x1b]0;PWNED\x07x", "$\\frac{1}{0}$"])
def test_a_name_in_a_figure_is_drawn_as_text(name, tmp_path, recwarn):
    """matplotlib parsed `$…$` in a label as mathtext (an unknown command raised and the figure was
    lost) and warned with a raw ESC on stderr about the missing glyph."""
    from actmine.report import plots
    from actmine.transfer.report import plot_log_ratios

    row = {"benchmark": "digits", "log_ratio_vs_relu": 0.1, "log_ratio_std": 0.0}
    plot_log_ratios([{**row, "activation": name}, {**row, "activation": "relu"}], tmp_path / "t.png")
    figure = plots.family_bars_figure([])  # the bars and curves of `compare --plot` use the same labels
    axes = figure.subplots()
    axes.plot([0, 1], [0, 1], label=plots.plot_label(name))
    axes.legend()
    plots.png_bytes(figure)
    # a suite's task names are free text: the report's heatmap labels its columns with them
    plots.png_bytes(plots.heatmap_figure({name: {name: 0.5, "harmonic-s1": -0.2}, "relu": {name: 0.0}}))
    assert (tmp_path / "t.png").stat().st_size > 0
    assert not [w for w in recwarn if "\x1b" in str(w.message)]


def test_a_name_with_a_pipe_keeps_the_markdown_table_whole():
    from actmine.commands.scoring import comparison_markdown
    from actmine.lab.fitness import Evaluation

    failed = Evaluation(activation="a|b<script>`x`", ok=False).fail("policy", "unbounded_loop", "no")
    header, rule, row = comparison_markdown([failed], ["polynomial"]).splitlines()
    cells = lambda line: len(re.split(r"(?<!\\)\|", line))  # noqa: E731
    assert cells(row) == cells(header) and "<script>" not in row


@pytest.mark.parametrize("command", ["evaluate", "compare"])
def test_a_suites_names_reach_the_terminal_as_text(tmp_path, capsys, command):
    """A suite's task and suite names are free text: rich read `[/]` as markup (a MarkupError after
    the training) and printed ESC sequences raw into the tables of `evaluate` and `compare`."""
    suite = tmp_path / "names.yaml"
    suite.write_text(
        'name: "s[/]\\e]0;TITLE\\a"\nseeds: [0]\ntasks:\n'
        '  - {family: formula, name: "a[/]b\\e[31mRED", expression: sin(3*x), id: {x: [0, 2]}, ood: {x: [2, 3]}}\n'
    )
    targets = ["relu", "gelu"] if command == "compare" else ["gelu"]
    assert main([command, *targets, "--suite", str(suite), "--steps", "5"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b]0;TITLE\\x07" in out  # the suite's name, shown escaped
    if command == "evaluate":
        assert "a[/]b\\x1b[31mRED" in out  # the task's name, whole
