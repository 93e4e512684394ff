"""The results report: formulas from sources (ast only), figures, the self-contained HTML page."""

import re
import shutil
import subprocess
import time

import pytest
import torch
import yaml

from actmine.config import Config
from actmine.evolve.controller import Search
from actmine.evolve.database import ProgramDatabase, ProgramRecord
from actmine.lab.fitness import Evaluation, TaskScore
from actmine.report import (
    curves_figure, family_bars_figure, fitness_over_time_figure, heatmap_figure, plot_comparison,
    png_bytes, safe_function, simplified_formula, sympy_expression, write_report,
)

SMALL_SUITE = {"name": "tiny", "seeds": [0],
               "tasks": [{"family": "polynomial", "dim": 1, "seed": 0}, {"family": "harmonic", "seed": 1},
                         {"family": "feynman", "equation": "I.14.3"}]}
HELDOUT_SUITE = {"name": "tiny-heldout", "seeds": [7],
                 "tasks": [{"family": "polynomial", "dim": 1, "seed": 9}, {"family": "feynman", "equation": "I.25.13"}]}
HOSTILE = "<script>alert(1)</script>"
PNG = b"\x89PNG\r\n\x1a\n"


def make_run(base):
    (base / "tiny.yaml").write_text(yaml.safe_dump(SMALL_SUITE))
    (base / "heldout.yaml").write_text(yaml.safe_dump(HELDOUT_SUITE))
    config = {"search": {"budget": 12, "time_limit": 0, "islands": 2, "migration_interval": 5, "heldout_top": 3},
              "executor": {"workers": 2},
              "lab": {"suite": str(base / "tiny.yaml"), "heldout_suite": str(base / "heldout.yaml"), "steps": 20,
                      "seeds": 1},
              "sandbox": {"timeout_s": 60, "cpu_s": 60, "memory_mb": 3072}}
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
    helper = "def helper(y):\n    return y * 2\n\ndef activation_function(x):\n    a = helper(x)\n    a += 1\n    return a\n"
    assert sp.simplify(sympy_expression(helper) - (2 * x + 1)) == 0
    assert sympy_expression(src("x * math.pi")) == sp.pi * x


def test_formula_refuses_what_it_does_not_understand_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    hostile = f"import os\ndef activation_function(x):\n    os.system('touch {marker}')\n    return x\n"
    assert simplified_formula(hostile) is None and safe_function(hostile) is None
    assert simplified_formula(src("open('/etc/passwd')")) is None
    assert simplified_formula("def activation_function(x):\n    for i in range(3):\n        x = x + 1\n    return x") is None
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


def assert_png(path):
    data = path.read_bytes()
    assert data.startswith(PNG) and len(data) > 1024


def test_figures_are_written(tmp_path, run_dir):
    functions = {"tanh": torch.tanh, "broken": lambda x: 1 / 0}
    evaluations = [evaluation("a", {"polynomial": -0.2, "harmonic": 0.3}),
                   evaluation("b", {"polynomial": 0.1, "harmonic": -0.5})]
    _, records = latest(run_dir)
    curves_figure(functions, tmp_path / "curves.png")
    family_bars_figure(evaluations, tmp_path / "bars.png")
    fitness_over_time_figure(records, tmp_path / "fitness.png")
    heatmap_figure({"a": {"t1": 0.4, "t2": -1.0}, "b": {"t1": 0.0}}, tmp_path / "heat.png")
    plot_comparison(evaluations, {"tanh": torch.tanh}, tmp_path / "compare.png")
    for name in ("curves", "bars", "fitness", "heat", "compare"):
        assert_png(tmp_path / f"{name}.png")
    assert png_bytes(curves_figure({"tanh": torch.tanh})).startswith(PNG)


# ---- the HTML report --------------------------------------------------------------------------

def test_report_is_complete_and_self_contained(run_dir, report):
    path, text = report
    assert path == run_dir / "report.html"
    top, records = latest(run_dir)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.I)
    assert "<link" not in text.lower() and "@import" not in text
    images = re.findall(r"<img[^>]*src=\"([^\"]*)\"", text)
    assert len(images) >= len(top) + 2 and all(src.startswith("data:image/png;base64,") for src in images)
    board = text[text.index("id='leaderboard'"):text.index("id='candidates'")]
    for record in top:
        assert f'href="#program-{record.id}">#{record.id}</a>' in board
        assert f"{record.fitness:+.4f}" in board
    import html
    assert f"<pre class='source'>{html.escape(top[0].source)}</pre>" in text
    assert "id='lineage'" in text and "class=\"lineage\"" in text
    assert "id='failures'" in text and "class=\"failures\"" in text
    heat = text[text.index("id='heatmap'"):]
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
        hostile_id = db.add_program(ProgramRecord(
            run_id=run_id, proposal_index=index, parent_ids=[parent.id],
            source=src("torch.relu(x)") + f"# </pre>{HOSTILE}\n", rationale=HOSTILE, mutator=HOSTILE,
            model="<img src=x onerror=alert(2)>", fitness=99.0,
            tasks=[{"name": "<b>t</b>", "family": "polynomial", "ood_error": 0.1, "id_error": 0.1, "log_ratio": -1.0}],
            family_log_ratios={"polynomial": -1.0}, probes={"pointwise": True, "flops_per_element": 1.0},
            original_answer=f"Here.</pre></details>{HOSTILE}\n```python\ndef activation_function(x):\n"
                            "    return torch.relu(x)\n```", normalisation_changes=[f"dropped `{HOSTILE}`"]))
        db.add_program(ProgramRecord(run_id=run_id, proposal_index=index + 1, source="x", rationale=HOSTILE,
                                     status="failed", failure_stage="policy", failure_code=HOSTILE))
    text = write_report(copy, references=()).read_text()
    assert HOSTILE not in text and "<img src=x" not in text and "<script" not in text.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert f'href="#program-{hostile_id}"' in text
    failures = text[text.index("id='failures'"):text.index("id='lineage'")]
    assert "policy" in failures and "&lt;script&gt;" in failures
    section = text[text.index(f"id='program-{hostile_id}'"):text.index("id='progress'")]
    assert "<li>dropped `&lt;script&gt;alert(1)&lt;/script&gt;`</li>" in section      # the normaliser's changes
    answer = section[section.index("<details class='original-answer'>"):]
    assert answer.startswith("<details class='original-answer'><summary>the model's original answer")
    assert "Here.&lt;/pre&gt;&lt;/details&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in answer   # collapsed, escaped


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--enable-logging=stderr", "--v=0"]


def chromium(tmp_path, *args):
    binary = shutil.which("chromium")
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    return subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)


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
    curves_figure({"recorded": recorded, "bad": {"x": [1.0]}}, tmp_path / "rec.png")
    assert_png(tmp_path / "rec.png")


def test_random_search_baseline_is_drawn_beside_the_run(tmp_path, run_dir):
    out = write_report(run_dir, out=tmp_path / "with-baseline.html", references=(), baseline=run_dir)
    text = out.read_text()
    assert "random-search run in" in text and text.count("data:image/png;base64,") >= 3
