"""The results report: formulas from sources (ast only), figures, the self-contained HTML page."""

import json
import math
import re
import shutil
import sqlite3
import subprocess
import threading
import time

import pytest
import torch
import yaml

from actmine import run_files
from actmine.config import Config
from actmine.evolve.controller import Search
from actmine.evolve.database import ProgramDatabase, ProgramRecord
from actmine.lab.fitness import Evaluation, TaskScore
from actmine.report import (
    curves_figure,
    family_bars_figure,
    fitness_over_time_figure,
    heatmap_figure,
    plot_comparison,
    png_bytes,
    safe_function,
    simplified_formula,
    sympy_expression,
    write_report,
)
from figure_checks import assert_png_about, bar_heights, line, png_size
from special_files import KINDS, make_special

SMALL_SUITE = {
    "name": "tiny",
    "seeds": [0],
    "tasks": [
        {"family": "polynomial", "dim": 1, "seed": 0},
        {"family": "harmonic", "seed": 1},
        {"family": "feynman", "equation": "I.14.3"},
    ],
}
HELDOUT_SUITE = {
    "name": "tiny-heldout",
    "seeds": [7],
    "tasks": [{"family": "polynomial", "dim": 1, "seed": 9}, {"family": "feynman", "equation": "I.25.13"}],
}
HOSTILE = "<script>alert(1)</script>"
PNG = b"\x89PNG\r\n\x1a\n"


def make_run(base):
    (base / "tiny.yaml").write_text(yaml.safe_dump(SMALL_SUITE))
    (base / "heldout.yaml").write_text(yaml.safe_dump(HELDOUT_SUITE))
    config = {
        "search": {
            "budget": 12,
            "time_limit": 0,
            "islands": 2,
            "migration_interval": 5,
            "heldout_top": 3,
            "initial_programs": ["relu"],
        },
        "executor": {"workers": 2},
        "lab": {
            "suite": str(base / "tiny.yaml"),
            "heldout_suite": str(base / "heldout.yaml"),
            "steps": 20,
            "training_seeds": 1,
        },
        "sandbox": {"timeout_s": 60, "cpu_s": 60, "memory_mb": 3072},
    }
    run_dir = base / "run"
    Search(Config.from_dict(config), run_dir, live=False).run()
    return run_dir


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("report-run"))


@pytest.fixture(scope="module")
def report(run_dir):
    path = write_report(run_dir)
    return path, path.read_text()


def latest(run_dir):
    with ProgramDatabase(run_dir / "programs.sqlite", readonly=True) as db:
        run = db.latest_run()
        return db.top(run["id"], 5), db.programs(run["id"])


# ---- formulas ---------------------------------------------------------------------------------


def src(body: str) -> str:
    return f"def activation_function(x):\n    return {body}\n"


def test_formula_of_known_sources():
    import sympy as sp

    x = sp.Symbol("x", real=True)
    assert sympy_expression(src("torch.relu(x)")) == sp.Max(0, x)
    assert simplified_formula(src("torch.relu(x)")) == sp.latex(sp.Max(0, x))
    gelu_sin = sympy_expression(src("F.gelu(x) + 0.1*torch.sin(x)"))
    assert gelu_sin.has(sp.erf) and gelu_sin.has(sp.sin)
    latex = simplified_formula(src("F.gelu(x) + 0.1*torch.sin(x)"))
    assert "erf" in latex and "sin" in latex
    assert sympy_expression(src("F.gelu(x, approximate='tanh')")).has(sp.tanh)
    assert sympy_expression(src("torch.sigmoid(x) * x")).equals(x / (1 + sp.exp(-x)))
    # locals and module-level helpers are inlined
    helper = (
        "def helper(y):\n    return y * 2\n\ndef activation_function(x):\n    a = helper(x)\n    a += 1\n    return a\n"
    )
    assert sp.simplify(sympy_expression(helper) - (2 * x + 1)) == 0
    assert sympy_expression(src("x * math.pi")) == sp.pi * x


def test_formula_refuses_what_it_does_not_understand_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    hostile = f"import os\ndef activation_function(x):\n    os.system('touch {marker}')\n    return x\n"
    assert simplified_formula(hostile) is None and safe_function(hostile) is None
    assert simplified_formula(src("open('/etc/passwd')")) is None
    assert (
        simplified_formula("def activation_function(x):\n    for i in range(3):\n        x = x + 1\n    return x")
        is None
    )
    assert simplified_formula("not python (") is None
    started = time.monotonic()
    assert simplified_formula(src("x ** 10 ** 10 ** 10")) is None  # no big-integer hang
    assert time.monotonic() - started < 5
    assert not marker.exists()


def test_safe_function_matches_the_source():
    source = src("(F.mish(torch.relu(x)) + 0.13 * torch.exp(-0.52 * x * x)) * torch.sigmoid(1.1 * x) + x.sin()")
    x = torch.linspace(-5, 5, 101)
    namespace = {"torch": torch, "F": torch.nn.functional, "math": __import__("math")}
    exec(source, namespace)  # the test's own trusted text
    torch.testing.assert_close(safe_function(source)(x), namespace["activation_function"](x))


# ---- figures ----------------------------------------------------------------------------------


def evaluation(name, ratios):
    tasks = [TaskScore(f"{family}-{i}", family, 0.1, 0.05, r) for i, (family, r) in enumerate(ratios.items())]
    return Evaluation(activation=name, ok=True, fitness=-sum(ratios.values()) / len(ratios), tasks=tasks)


def assert_png(path, inches, dpi=100):
    """A PNG of about ``inches`` at ``dpi`` (`plots` saves at 100 dpi with a tight bounding box)."""
    data = path.read_bytes()
    assert data.startswith(PNG) and len(data) > 1024
    return assert_png_about(data, inches, dpi, slack=0.1)


def test_figures_are_written(tmp_path, run_dir):
    functions = {"tanh": torch.tanh, "broken": lambda x: 1 / 0}
    evaluations = [
        evaluation("a", {"polynomial": -0.2, "harmonic": 0.3}),
        evaluation("b", {"polynomial": 0.1, "harmonic": -0.5}),
    ]
    _, records = latest(run_dir)
    curves = curves_figure(functions, tmp_path / "curves.png")
    bars = family_bars_figure(evaluations, tmp_path / "bars.png")
    fitness = fitness_over_time_figure(records, tmp_path / "fitness.png")
    heat = heatmap_figure({"a": {"t1": 0.4, "t2": -1.0}, "b": {"t1": 0.0}}, tmp_path / "heat.png")
    compare = plot_comparison(evaluations, {"tanh": torch.tanh}, tmp_path / "compare.png")
    # each file has its figure's size: figsize × 100 dpi, give or take the tight bounding box
    for name, inches in (
        ("curves", (10, 3.6)),
        ("bars", (8, 3.8)),
        ("fitness", (8, 3.6)),
        ("heat", (5.2, 2.5)),
        ("compare", (11, 7.5)),
    ):
        assert_png(tmp_path / f"{name}.png", inches)
    assert png_size(png_bytes(curves)) == png_size((tmp_path / "curves.png").read_bytes())
    # the curves: ReLU and GELU for reference, tanh where tanh is, its slope in the second panel; no "broken"
    assert [line.get_label() for line in curves.axes[0].get_lines() if not line.get_label().startswith("_")] == [
        "ReLU",
        "GELU",
        "tanh",
    ]
    for drawn in (curves, compare):
        tanh, slope = line(drawn.axes[0], "tanh"), line(drawn.axes[1], "tanh")
        x = torch.tensor(tanh.get_xdata(), dtype=torch.float64)
        assert x[0] == -6 and x[-1] == 6 and len(x) == 481
        torch.testing.assert_close(torch.tensor(tanh.get_ydata()), torch.tanh(x), atol=1e-6, rtol=0)
        torch.testing.assert_close(torch.tensor(slope.get_ydata()), 1 - torch.tanh(x) ** 2, atol=1e-5, rtol=0)
    # family bars, families in sorted order, one group per evaluation: a = (0.3, -0.2), b = (-0.5, 0.1)
    for ax in (bars.axes[0], compare.axes[2]):
        assert bar_heights(ax) == pytest.approx([0.3, -0.2, -0.5, 0.1])
        assert [t.get_text() for t in ax.get_xticklabels()] == ["harmonic", "polynomial"]
    # fitness over time: the best-so-far step line is the running maximum in proposal order
    scored = sorted((r.proposal_index, r.fitness) for r in records if r.status == "ok" and r.fitness is not None)
    step = line(fitness.axes[0], "best so far")
    assert list(step.get_xdata()) == [i for i, _ in scored]
    assert list(step.get_ydata()) == pytest.approx([max(f for _, f in scored[: k + 1]) for k in range(len(scored))])
    # the heat map: one row per activation, tasks sorted, a missing score left blank
    cells = heat.axes[0].images[0].get_array()
    assert cells.tolist() == [[0.4, -1.0], [0.0, None]] and bool(cells.mask[1][1])


# ---- the HTML report --------------------------------------------------------------------------


def test_report_is_complete_and_self_contained(run_dir, report):
    path, text = report
    assert path == run_dir / "report.html"
    top, records = latest(run_dir)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.I)
    assert "<link" not in text.lower() and "@import" not in text
    images = re.findall(r"<img[^>]*src=\"([^\"]*)\"", text)
    assert len(images) >= len(top) + 2 and all(src.startswith("data:image/png;base64,") for src in images)
    board = text[text.index("id='leaderboard'") : text.index("id='candidates'")]
    for record in top:
        assert f'href="#program-{record.id}">#{record.id}</a>' in board
        assert f"{record.fitness:+.4f}" in board
    import html

    assert f"<pre class='source'>{html.escape(top[0].source)}</pre>" in text
    assert "id='lineage'" in text and 'class="lineage"' in text
    assert "id='failures'" in text and 'class="failures"' in text
    heat = text[text.index("id='heatmap'") :]
    assert "per-task OOD log-ratio heatmap" in heat and "not evaluated" not in heat
    assert "<code class='formula'>" in text


def test_hostile_text_is_escaped(tmp_path, run_dir):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "report.html").unlink(missing_ok=True)
    with ProgramDatabase(copy / "programs.sqlite") as db:
        run_id = db.latest_run()["id"]
        index = db.max_proposal_index(run_id) + 1
        parent = db.best(run_id)
        hostile_id = db.add_program(
            ProgramRecord(
                run_id=run_id,
                proposal_index=index,
                parent_ids=[parent.id],
                source=src("torch.relu(x)") + f"# </pre>{HOSTILE}\n",
                rationale=HOSTILE,
                mutator=HOSTILE,
                model="<img src=x onerror=alert(2)>",
                fitness=99.0,
                tasks=[
                    {"name": "<b>t</b>", "family": "polynomial", "ood_error": 0.1, "id_error": 0.1, "log_ratio": -1.0}
                ],
                family_log_ratios={"polynomial": -1.0},
                probes={"pointwise": True, "flops_per_element": 1.0},
                original_answer=f"Here.</pre></details>{HOSTILE}\n```python\ndef activation_function(x):\n"
                "    return torch.relu(x)\n```",
                normalisation_changes=[f"dropped `{HOSTILE}`"],
            )
        )
        db.add_program(
            ProgramRecord(
                run_id=run_id,
                proposal_index=index + 1,
                source="x",
                rationale=HOSTILE,
                status="failed",
                failure_stage="policy",
                failure_code=HOSTILE,
            )
        )
    text = write_report(copy, references=()).read_text()
    assert HOSTILE not in text and "<img src=x" not in text and "<script" not in text.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert f'href="#program-{hostile_id}"' in text
    failures = text[text.index("id='failures'") : text.index("id='lineage'")]
    assert "policy" in failures and "&lt;script&gt;" in failures
    section = text[text.index(f"id='program-{hostile_id}'") : text.index("id='progress'")]
    assert "<li>dropped `&lt;script&gt;alert(1)&lt;/script&gt;`</li>" in section  # the normaliser's changes
    answer = section[section.index("<details class='original-answer'>") :]
    assert answer.startswith("<details class='original-answer'><summary>the model's original answer")
    assert "Here.&lt;/pre&gt;&lt;/details&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in answer  # collapsed, escaped


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]


def chromium(tmp_path, *args):
    binary = shutil.which("chromium")
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    return subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=120
    )


def console_problems(stderr):
    return [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_renders_in_chromium_without_console_errors(tmp_path, report):
    path, _ = report
    shot = tmp_path / "shot.png"
    result = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", path.resolve().as_uri())
    assert shot.is_file() and shot.read_bytes().startswith(PNG) and shot.stat().st_size > 10_000, result.stderr[-2000:]
    assert console_problems(result.stderr) == []
    dom = chromium(tmp_path, "--dump-dom", path.resolve().as_uri())
    assert console_problems(dom.stderr) == []
    assert "<title>actmine run run</title>" in dom.stdout
    assert "Leaderboard" in dom.stdout and "Lineage of the best" in dom.stdout


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed (apt-get install chromium)")
def test_chromium_check_does_see_console_errors(tmp_path):
    """The flags really surface console messages: a page with an error is caught."""
    page = tmp_path / "bad.html"
    page.write_text("<html><body>x<script>undefinedFunction();</script></body></html>")
    result = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert any("Uncaught" in line for line in console_problems(result.stderr))


def test_curves_from_a_recorded_curve(tmp_path):
    recorded = {"x": [-6.0, 0.0, 6.0], "y": [0.0, None, 6.0], "dy": [0.0, 0.5, 1.0]}
    figure = curves_figure({"recorded": recorded, "bad": {"x": [1.0]}}, tmp_path / "rec.png")
    assert_png(tmp_path / "rec.png", (10, 3.6))
    drawn = line(figure.axes[0], "recorded")
    assert list(drawn.get_xdata()) == [-6.0, 0.0, 6.0]
    assert drawn.get_ydata()[0] == 0.0 and math.isnan(drawn.get_ydata()[1]) and drawn.get_ydata()[2] == 6.0
    assert list(line(figure.axes[1], "recorded").get_ydata()) == [0.0, 0.5, 1.0]
    assert "bad" not in [artist.get_label() for artist in figure.axes[0].get_lines()]  # unequal lengths: left out


def test_random_search_baseline_is_drawn_beside_the_run(tmp_path, run_dir):
    out = write_report(run_dir, out=tmp_path / "with-baseline.html", references=(), baseline=run_dir)
    text = out.read_text()
    assert "random-search run in" in text and text.count("data:image/png;base64,") >= 3


# ---- end-of-run results: validation, test, generalisation gap (data built by hand) -------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from actmine.language.files import read_program_file  # noqa: E402
from actmine.report import export_pack  # noqa: E402
from actmine.report import html as report_html  # noqa: E402
from actmine.report.html import final_results, heldout_results  # noqa: E402
from actmine.report.plots import generalisation_gap_figure  # noqa: E402

FAMILIES = {"polynomial": -0.10, "harmonic": 0.05}


def section(text, start, end):
    """The report's text from the heading with id `start` to the one with id `end`."""
    return text[text.index(f"id='{start}'") : text.index(f"id='{end}'")]


def make_results_run(
    base, name="relu", suite="feynman", against="gelu", family="polynomial", error_message="fell over", validated=True
):
    """A run directory built directly in a database (no search): three programs with estimates
    (rounds, standard errors), two validations of the best, and end-of-run validation, test and
    comparison rows in both the database and a dict-format heldout.json. The winner (program c)
    is last by search score, so it is outside a top-2 leaderboard. Text fields are parameters so
    that a test can make them hostile; `validated=False` leaves the validations out (an older run)."""
    run_dir = base / "results-run"
    run_dir.mkdir()
    with ProgramDatabase(run_dir / "programs.sqlite") as db:
        run_id = db.create_run({"search": {"budget": 10}}, seed=0)
        ids = []
        for index, (body, fitness, se, score, rounds) in enumerate(
            [
                ("torch.relu(x)", 0.2, 0.05, 0.1, 3),
                ("torch.tanh(x) + x", 0.3, 0.2, -0.1, 1),
                ("F.gelu(x)", 0.15, 0.04, -0.2, 2),
            ]
        ):
            ids.append(
                db.add_program(
                    ProgramRecord(
                        run_id=run_id,
                        proposal_index=index,
                        source=src(body),
                        fitness=fitness,
                        fitness_se=se,
                        score=score,
                        rounds=rounds,
                        mutator="test",
                        family_log_ratios={family: -fitness},
                    )
                )
            )
            for round in range(rounds):
                db.add_evaluation(run_id, ids[-1], round, "search" if round == 0 else "confirm", fitness, [])
        a, b, c = ids
        if validated:
            db.add_validation(
                run_id,
                a,
                4,
                0.25,
                0.06,
                0.10,
                {"families": {family: -0.08, "harmonic": -0.12}, "search_families": {family: -0.3}},
            )
            db.add_validation(
                run_id,
                b,
                9,
                0.30,
                0.05,
                0.12,
                {"families": {family: -0.10, "harmonic": -0.14}, "search_families": {family: -0.40, "harmonic": -0.20}},
            )
        validation = [
            {
                "split": "validation",
                "name": f"program {a}",
                "program_id": a,
                "search_fitness": 0.2,
                "search_se": 0.05,
                "heldout_fitness": 0.05,
                "families": {family: -0.05},
                "error": None,
                "winner": False,
            },
            {
                "split": "validation",
                "name": f"program {b}",
                "program_id": b,
                "search_fitness": 0.3,
                "search_se": 0.2,
                "heldout_fitness": None,
                "families": {},
                "error": {"stage": "train", "message": error_message},
                "winner": False,
            },
            {
                "split": "validation",
                "name": f"program {c}",
                "program_id": c,
                "search_fitness": 0.15,
                "search_se": 0.04,
                "heldout_fitness": 0.11,
                "families": {family: -0.11},
                "error": None,
                "winner": True,
            },
            {
                "split": "validation",
                "name": name,
                "program_id": None,
                "search_fitness": None,
                "search_se": None,
                "heldout_fitness": 0.0,
                "families": {family: 0.0},
                "error": None,
                "winner": False,
            },
        ]
        test = [
            {
                "split": "test",
                "suite": suite,
                "name": f"program {c}",
                "program_id": c,
                "fitness": 0.09,
                "families": {family: -0.09},
                "tasks": {"I.14.3": [-0.1, -0.08], "II.2.42": [-0.1, -0.08]},
            },
            {
                "split": "test",
                "suite": suite,
                "name": name,
                "program_id": None,
                "fitness": 0.0,
                "families": {family: 0.0},
                "tasks": {"I.14.3": [0.0, 0.0], "II.2.42": [0.0, 0.0]},
            },
        ]
        comparisons = [
            {
                "split": "comparison",
                "suite": suite,
                "name": f"program {c} vs {against}",
                "program_id": c,
                "against": against,
                "mean": -0.12,
                "low": -0.20,
                "high": -0.04,
                "tasks": 60,
                "seeds": 3,
            },
            {
                "split": "comparison",
                "suite": suite,
                "name": f"program {c} vs {name}",
                "program_id": c,
                "against": name,
                "mean": 0.01,
                "low": -0.03,
                "high": 0.05,
                "tasks": 60,
                "seeds": 3,
            },
            {
                "split": "comparison",
                "suite": "all unseen",
                "name": f"program {c} vs {against}",
                "program_id": c,
                "against": against,
                "mean": 0.10,
                "low": 0.05,
                "high": 0.20,
                "tasks": 90,
                "seeds": 3,
            },
        ]
        for row in validation + test + comparisons:
            db.add_heldout(run_id, row["name"], row["program_id"], row)
        db.update_run(run_id, status="finished")
    (run_dir / "heldout.json").write_text(
        json.dumps({"winner": c, "validation": validation, "test": test, "comparisons": comparisons})
    )
    return run_dir, {"a": a, "b": b, "c": c}


@pytest.fixture
def results_run(tmp_path):
    return make_results_run(tmp_path)


def test_new_sections_render_from_a_hand_made_run(results_run):
    run_dir, ids = results_run
    b, c = ids["b"], ids["c"]
    text = write_report(run_dir, top=2, references=()).read_text()
    board = section(text, "leaderboard", "validation")
    assert "+0.2000 ± 0.0500" in board and "+0.3000 ± 0.2000" in board  # fitness ± se
    assert f'href="#program-{c}"' not in board  # the winner is not in the top 2
    assert re.search(r'<td class="num">3</td>', board) and "+0.1000" in board  # rounds and score of program a
    validation = section(text, "validation", "test")
    rows = re.findall(r"<tr>(.*?)</tr>", validation)
    winner_rows = [row for row in rows if "<td>winner</td>" in row]
    assert len(winner_rows) == 1 and f"program {c}" in winner_rows[0]
    assert [f"program {c}" in rows[1], "relu" in rows[3], f"program {b}" in rows[4]] == [True, True, True]  # by fitness
    assert "stage: train; message: fell over" in validation
    test = section(text, "test", "gap")
    assert "<h3 class='suite'>feynman</h3>" in test and "<h3 class='suite'>all unseen</h3>" in test
    assert "winner − gelu: −0.120 [−0.200, −0.040] over 60 tasks × 3 seeds</td><td>better</td>" in test
    assert "winner − relu: +0.010 [−0.030, +0.050] over 60 tasks × 3 seeds</td><td>not distinguishable</td>" in test
    unseen = test[test.index("all unseen") :]
    assert "winner − gelu: +0.100 [+0.050, +0.200] over 90 tasks × 3 seeds</td><td>worse</td>" in unseen
    feynman = test[: test.index("all unseen")]
    assert "<td>winner</td><td>program" in feynman and "+0.0900" in feynman and '<td class="num">2</td>' in feynman
    gap = section(text, "gap", "candidates")
    assert re.search(r'<img alt="generalisation gap[^"]*" src="data:image/png;base64,', gap)
    latest = re.findall(r"<tr>(.*?)</tr>", gap[: gap.index("<details>")])
    assert latest[1] == (
        '<td>fitness</td><td class="num">+0.3000 ± 0.0500</td><td class="num">+0.1200</td><td class="num">+0.1800</td>'
    )
    assert latest[2] == (
        '<td>harmonic log-ratio</td><td class="num">-0.200</td><td class="num">-0.140</td><td class="num">+0.060</td>'
    )
    assert latest[3].startswith("<td>polynomial log-ratio</td>") and latest[3].endswith('"num">+0.300</td>')
    assert f"program {b} after 9 proposals" in gap
    # the winner gets its own section although it is outside the top 2
    candidates = text[text.index("id='candidates'") : text.index("id='progress'")]
    assert f"<h3>the winner: program {c} — fitness +0.1500 ± 0.0400</h3>" in candidates
    assert f"id='program-{c}'" in candidates and f'href="#program-{c}"' in validation


def test_database_and_heldout_json_give_the_same_results(results_run):
    run_dir, ids = results_run
    with ProgramDatabase(run_dir / "programs.sqlite", readonly=True) as db:
        run_id = db.latest_run()["id"]
        from_file = final_results(run_dir, db, run_id)
        (run_dir / "heldout.json").unlink()
        from_database = final_results(run_dir, db, run_id)
        assert from_database == from_file and from_file["winner"] == ids["c"]
        assert [len(from_file[k]) for k in ("validation", "test", "comparisons")] == [4, 2, 3]
        fitness, rows = heldout_results(run_dir, db, run_id)
    assert fitness == {ids["a"]: 0.05, ids["b"]: None, ids["c"]: 0.11} and len(rows) == 4
    text = write_report(run_dir, references=()).read_text()
    assert "winner − gelu: −0.120" in text and "not available" not in text


def test_old_list_format_heldout_json_still_works(tmp_path):
    run_dir, ids = make_results_run(tmp_path, validated=False)
    with ProgramDatabase(run_dir / "programs.sqlite") as db:  # an older run: no validations, no split
        run_id = db.latest_run()["id"]
        db.clear_heldout(run_id)
    old = [
        {"name": "relu", "program_id": None, "search_fitness": None, "heldout_fitness": 0.0},
        {
            "name": f"program {ids['a']}",
            "program_id": ids["a"],
            "search_fitness": 0.2,
            "heldout_fitness": 0.07,
            "error": None,
        },
        "junk",
        3,
    ]
    (run_dir / "heldout.json").write_text(json.dumps(old))
    with ProgramDatabase(run_dir / "programs.sqlite", readonly=True) as db:
        fitness, rows = heldout_results(run_dir, db, run_id)
        results = final_results(run_dir, db, run_id)
    assert fitness == {ids["a"]: 0.07} and rows == old[:2]
    assert results == {"winner": None, "validation": old[:2], "test": [], "comparisons": []}
    text = write_report(run_dir, references=()).read_text()
    validation = section(text, "validation", "test")
    assert "+0.0700" in validation and "<td>winner</td>" not in validation
    assert "not available: this run recorded no test results" in section(text, "test", "gap")
    assert "not available: this run recorded no validation of its best" in section(text, "gap", "candidates")
    # the pack takes the validation fitness as its held-out fitness, in either format
    (program,) = [
        p
        for p in read_program_file(export_pack(run_dir, 3, tmp_path / "old.py").read_text()).programs
        if p.info["program_id"] == ids["a"]
    ]
    assert program.info["heldout_fitness"] == 0.07
    (tmp_path / "new-format").mkdir()
    new_dir, _ = make_results_run(tmp_path / "new-format")
    entries = read_program_file(export_pack(new_dir, 3, tmp_path / "new.py").read_text()).programs
    assert sorted(p.info["heldout_fitness"] for p in entries if p.info["heldout_fitness"] is not None) == [0.05, 0.11]


@pytest.mark.parametrize(
    "content",
    ["", "not json {", "null", '{"winner": "x", "validation": 5}', "[1, 2]", "[" * 100_000 + "]" * 100_000],
    ids=["empty", "not-json", "null", "wrong-types", "list-of-ints", "nested-100000-deep"],
)
def test_missing_or_damaged_results_never_break_the_report(results_run, content):
    run_dir, _ = results_run
    with ProgramDatabase(run_dir / "programs.sqlite") as db:
        db.clear_heldout(db.latest_run()["id"])
    (run_dir / "heldout.json").write_text(content)
    text = write_report(run_dir, references=()).read_text()
    assert "not available: this run recorded no validation results" in text
    assert "not available: this run recorded no test results" in text and "</html>" in text


@pytest.mark.parametrize("kind", [*KINDS, "too-large"])
def test_a_results_file_that_is_no_file_a_search_wrote_is_not_read(results_run, kind, monkeypatch):
    """heldout.json as a FIFO blocked report, export and serve forever; a link to /dev/zero filled
    memory. Neither is read now, nor a file past the cap: the database's rows are shown instead."""
    run_dir, _ = results_run
    path = run_dir / "heldout.json"
    kept = path.read_text()
    path.unlink()
    if kind == "too-large":
        monkeypatch.setattr(run_files, "MAX_RESULTS_BYTES", len(kept) - 1)
        path.write_text(kept)
    else:
        make_special(path, kind)
    finished = []
    reader = threading.Thread(target=lambda: finished.append(write_report(run_dir, references=()).read_text()))
    reader.daemon = True  # on the old code it blocks in open() for ever
    reader.start()
    reader.join(120)
    assert finished, "the report did not finish"
    assert "not available: this run recorded no validation results" not in finished[0]  # the database's rows


def test_hostile_names_are_escaped_in_the_new_sections(tmp_path):
    run_dir, _ = make_results_run(
        tmp_path,
        name=HOSTILE,
        suite=HOSTILE + "\x1b[2J",
        against="<img src=x onerror=1>",
        family=HOSTILE,
        error_message=HOSTILE,
    )
    text = write_report(run_dir, references=()).read_text()
    assert "<script" not in text.lower() and "<img src=x" not in text and "\x1b" not in text
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    for start, end in (("validation", "test"), ("test", "gap"), ("gap", "candidates")):
        assert escaped in section(text, start, end), start
    assert f"<h3 class='suite'>{escaped}\\x1b[2J</h3>" in text
    assert "winner − &lt;img src=x onerror=1&gt;: −0.120" in text


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8) | st.just(HOSTILE),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6) | st.just(HOSTILE), inner, max_size=5)
    ),
    max_leaves=25,
)
ROW = st.dictionaries(
    st.sampled_from(
        [
            "split",
            "suite",
            "name",
            "program_id",
            "against",
            "mean",
            "low",
            "high",
            "tasks",
            "seeds",
            "families",
            "error",
            "winner",
            "search_fitness",
            "search_se",
            "heldout_fitness",
            "fitness",
            HOSTILE,
        ]
    ),
    JSON,
    max_size=10,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.one_of(
        JSON,
        st.lists(ROW | JSON, max_size=4),
        st.fixed_dictionaries(
            {
                "winner": JSON,
                "validation": st.lists(ROW, max_size=3),
                "test": st.lists(ROW, max_size=3),
                "comparisons": st.lists(ROW, max_size=3),
            }
        ),
    )
)
def test_any_heldout_json_gives_results_that_render_escaped(results_run, data):
    """Whatever heldout.json holds, the results are lists of dicts and their sections render with
    every piece of text escaped (the sections are rendered directly: the figures are slow)."""
    run_dir, _ = results_run
    (run_dir / "heldout.json").write_text(json.dumps(data))
    with ProgramDatabase(run_dir / "programs.sqlite", readonly=True) as db:
        run_id = db.latest_run()["id"]
        results = final_results(run_dir, db, run_id)
        fitness, rows = heldout_results(run_dir, db, run_id)
    assert all(isinstance(row, dict) for key in ("validation", "test", "comparisons") for row in results[key])
    assert results["winner"] is None or isinstance(results["winner"], int)
    assert all(isinstance(pid, int) for pid in fitness) and rows == results["validation"]
    rendered = "".join(report_html._validation_section(results, {1, 2}) + report_html._test_section(results, {1}))
    assert HOSTILE not in rendered and "<script" not in rendered


def test_verdict_follows_the_interval():
    @given(st.floats(-5, 5), st.floats(0, 5))
    def check(low, width):
        high = low + width
        verdict = report_html._verdict({"low": low, "high": high})
        assert verdict == ("better" if high < 0 else "worse" if low > 0 else "not distinguishable")

    check()
    assert report_html._verdict({"low": None, "high": 0.1}) == "not available"


def test_generalisation_gap_figure(tmp_path):
    rows = [
        {"evaluated": 4, "search_fitness": 0.25, "search_se": 0.06, "fitness": 0.1},
        {"evaluated": 9, "search_fitness": 0.3, "search_se": None, "fitness": None},
        {"evaluated": "x", "search_fitness": "bad", "fitness": float("inf")},
        "junk",
    ]
    figure = generalisation_gap_figure(rows, tmp_path / "gap.png", until=30)
    search_line = figure.axes[0].lines[0]
    assert list(search_line.get_xdata()) == [4, 9, 30]  # the last best holds to the end of the run
    assert list(search_line.get_ydata()) == [0.25, 0.3, 0.3]
    generalisation_gap_figure([], tmp_path / "empty.png")
    assert_png(tmp_path / "gap.png", (8, 3.6))
    assert_png(tmp_path / "empty.png", (8, 3.6))
    assert (tmp_path / "gap.png").read_bytes() != (tmp_path / "empty.png").read_bytes()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed (apt-get install chromium)")
def test_new_sections_render_in_chromium(tmp_path, results_run):
    run_dir, _ = results_run
    path = write_report(run_dir, references=())
    dom = chromium(tmp_path, "--dump-dom", path.resolve().as_uri())
    assert console_problems(dom.stderr) == []
    assert "Generalisation gap" in dom.stdout and "not distinguishable" in dom.stdout


# ---- a run database edited by hand ------------------------------------------------------------

FIRST = "(SELECT MIN(id) FROM programs)"
EDITS = {
    "not JSON": f"UPDATE programs SET family_log_ratios = 'not json' WHERE id = {FIRST}",
    "JSON too deep": f"UPDATE programs SET probes = '{'[' * 100_000}{']' * 100_000}' WHERE id = {FIRST}",
    "an integer of 5000 digits": f"UPDATE programs SET probes = '{{\"a\": {'9' * 5000}}}' WHERE id = {FIRST}",
    "text for a number": f"UPDATE programs SET fitness = 'abc' WHERE id = {FIRST}",
    "a list of text for ids": f"UPDATE programs SET parent_ids = '[\"x\"]' WHERE id = {FIRST}",
    "a list for a mapping": f"UPDATE programs SET family_log_ratios = '[1, 2]' WHERE id = {FIRST}",
    "a time beyond any clock": "UPDATE runs SET created_at = 1e300",
    "a table dropped": "DROP TABLE validations",
    "a column dropped": "ALTER TABLE programs DROP COLUMN settled",
}


def edited_copy(run_dir, tmp_path, edit: str):
    import sqlite3

    copy = tmp_path / "edited"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("*.html", "*-wal", "*-shm"))
    with sqlite3.connect(copy / "programs.sqlite") as conn:
        conn.execute(edit)
    return copy


@pytest.mark.parametrize(
    "command, edit",
    [("report", edit) for edit in EDITS]
    + [("export", edit) for edit in EDITS if edit != "a table dropped"],  # an export reads no validations
)
def test_an_edited_database_is_one_line_of_error_not_a_traceback(run_dir, tmp_path, capsys, command, edit):
    from actmine.cli import main

    edit = EDITS[edit]
    copy = edited_copy(run_dir, tmp_path, edit)
    argv = [command, str(copy), "--out", str(tmp_path / ("out.html" if command == "report" else "pack.py"))]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "edited or damaged" in err and "restore it, or start a new --run-dir" in err


def test_a_served_run_whose_database_is_edited_says_so_on_its_pages(run_dir, tmp_path):
    import sqlite3

    from actmine.serve.app import create_app

    copy = edited_copy(run_dir, tmp_path, "SELECT 1")
    client = create_app([copy]).test_client()
    assert client.get("/run/0").status_code == 200
    with sqlite3.connect(copy / "programs.sqlite") as conn:
        conn.execute(EDITS["not JSON"])
        conn.execute("UPDATE runs SET status = 'running'")  # the viewer reads again
    page = client.get("/run/0")
    assert page.status_code == 500 and page.mimetype == "text/plain"
    assert "edited or damaged" in page.get_data(as_text=True) and "family_log_ratios" in page.get_data(as_text=True)


def test_an_output_that_cannot_be_written_is_one_line_and_leaves_nothing(run_dir, tmp_path, capsys):
    from actmine.cli import main

    for command, name in (("report", "taken.html"), ("export", "taken.py")):
        (tmp_path / name).mkdir()  # a directory where the output should go
        assert main([command, str(run_dir), "--out", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "cannot write" in err and "give another --out" in err
        assert f"cannot write {tmp_path / name} (" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.html", "taken.py"]


def test_a_database_the_machine_cannot_read_now_is_not_called_damaged():
    import sqlite3

    from actmine.evolve.database_file import read_failure_message

    assert "check the disk" in read_failure_message(sqlite3.OperationalError("disk I/O error"))
    assert "edited or damaged" not in read_failure_message(sqlite3.OperationalError("database or disk is full"))
    assert "edited or damaged" in read_failure_message(sqlite3.OperationalError("no such table: validations"))
    assert "edited or damaged" in read_failure_message(sqlite3.DatabaseError("database disk image is malformed"))


def test_a_megabyte_rationale_or_source_is_cut_on_the_page(run_dir, tmp_path):
    """Texts are capped where they are stored (LLM answers, the policy's source length), but a row
    edited by hand is not: the page shows a bounded part of each and says how much is left out."""
    from actmine.report.html_cells import SECTION_TEXT, TABLE_TEXT

    long = SECTION_TEXT + 50_000
    copy = edited_copy(run_dir, tmp_path, f"UPDATE programs SET rationale = '{'R' * long}'")
    with sqlite3.connect(copy / "programs.sqlite") as conn:
        source = "def activation_function(x):\n    return torch.tanh(x)  # " + "S" * long + "\n"
        conn.execute("UPDATE programs SET source = ?, original_answer = ?", (source, "A" * long))
    page = write_report(copy, references=()).read_text()
    leaderboard = page.split("<h2 id='leaderboard'>")[1].split("</table>")[0]
    assert "R" * TABLE_TEXT in leaderboard and "R" * (TABLE_TEXT + 1) not in leaderboard
    for letter in "RSA":
        assert letter * (SECTION_TEXT - 100) in page and letter * (SECTION_TEXT + 1) not in page
    assert "50,000 more characters in the run&#x27;s database" in page
    from actmine.serve.app import create_app

    served = create_app([copy]).test_client().get("/run/0/program/1").get_data(as_text=True)
    for letter in "RA":  # the program page of `actmine serve`: the same bound
        assert letter * (SECTION_TEXT - 100) in served and letter * (SECTION_TEXT + 1) not in served
    assert len(served) < 4 * SECTION_TEXT


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed (apt-get install chromium)")
def test_a_wide_leaderboard_scrolls_inside_its_box_not_the_page(tmp_path):
    """A default run's leaderboard (three families, rationales, a model) was 1228 px wide and widened
    the page past a 1200-px window; with more families it grows further. The table scrolls itself."""
    run_dir = tmp_path / "wide-run"
    run_dir.mkdir()
    families = ("expression", "harmonic", "polynomial", "feynman", "periodic")
    with ProgramDatabase(run_dir / "programs.sqlite") as db:
        run_id = db.create_run({"search": {"budget": 10}}, seed=0)
        for index in range(6):
            db.add_program(
                ProgramRecord(
                    run_id=run_id,
                    proposal_index=index,
                    source=src(f"F.gelu(x) + {index / 10} * torch.tanh(0.64 * x)"),
                    fitness=0.4317 - index / 100,
                    fitness_se=0.0865,
                    score=0.3453 - index / 100,
                    rounds=3,
                    mutator="symbolic",
                    model="HuggingFaceTB/SmolLM2-1.7B-Instruct-Q4_K_M",
                    rationale="add a saturating step perturbation 0.25 * torch.tanh(0.64 * x) to shift the two "
                    "tails apart by a bounded step, keeping the slope at the origin",
                    family_log_ratios={family: -0.352 - index / 100 for family in families},
                    probes={"pointwise": True, "flops_per_element": 22},
                )
            )
    page = write_report(run_dir, references=())
    probe = tmp_path / "probe.html"  # the report's own policy forbids inline scripts: a copy measures it
    probe.write_text(
        re.sub(r"<meta http-equiv=[^>]*Content-Security-Policy[^>]*>", "", page.read_text()).replace(
            "</body>",
            "<script>document.title = 'W=' + document.documentElement.scrollWidth + ' T=' + "
            "document.querySelector('table.leaderboard').scrollWidth</script></body>",
        )
    )
    dom = chromium(tmp_path, "--window-size=1200,900", "--dump-dom", probe.resolve().as_uri())
    widths = re.search(r"<title>W=(\d+) T=(\d+)</title>", dom.stdout)
    assert widths, dom.stdout[:500]
    page_width, table_width = int(widths.group(1)), int(widths.group(2))
    assert table_width > 1200  # the case: a leaderboard wider than the window ...
    assert page_width <= 1200  # ... that no longer widens the page
