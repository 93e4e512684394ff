"""The validity study (`actmine validate`): its statistics against scipy and hand-made cases, the
stratified choice of random programs, and one tiny real study (a 3-task lab, a benchmark of this
module's own) that resumes without recomputing and escapes a hostile function name.

`TinyFit` is registered only while a test needs it; the transfer runner's job processes import it
from this module (pytest put tests/ on sys.path, which spawned children inherit).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from actmine.transfer import base
from actmine.transfer.base import BenchmarkScore
from actmine.transfer.runner import JobBudget
from actmine.validity import Settings, ValidityInputError, correlation, correlations, run_validity, stratified_choice
from actmine.validity.report import markdown_text
from figure_checks import assert_png_about
from search_runs import SMALL_SUITE

HOSTILE = "evil|`x`<b>*y*[z](u)"


class TinyFit:
    """Two classes in the plane, an MLP 2 → 8 → 2 trained full-batch for 20 steps: a real training in
    milliseconds whose accuracy depends on the activation."""

    name = "tinyfit"
    metric = "accuracy"
    job_budget = JobBudget({"cpu": 60.0}, memory_mb=4096, base_s=120.0)

    def __init__(self, *, steps: int = 20):
        self.steps = steps

    def check_data(self, data_dir: Path) -> None:
        """Nothing to download: the data are generated."""

    def run(self, make_activation, seed: int, data_dir: Path, device: str) -> BenchmarkScore:
        generator = torch.Generator().manual_seed(1234)
        x = torch.rand(600, 2, generator=generator) * 4 - 2
        y = ((x[:, 0].abs() + 0.5 * torch.sin(3 * x[:, 1])) > 1.0).long()
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(2, 8), make_activation(), nn.Linear(8, 2))
        params = list(model.parameters())
        for _ in range(self.steps):  # plain gradient descent: torch.optim's first step imports dynamo (slow)
            grads = torch.autograd.grad(nn.functional.cross_entropy(model(x[:300]), y[:300]), params)
            with torch.no_grad():
                for p, g in zip(params, grads):
                    p -= 0.5 * g
        with torch.no_grad():
            accuracy = (model(x[300:]).argmax(1) == y[300:]).float().mean().item()
        return BenchmarkScore(accuracy, self.metric, {})


@pytest.fixture()
def tinyfit():
    base.register_benchmark(TinyFit)
    yield TinyFit
    base._BENCHMARKS.pop("tinyfit", None)


# -- statistics ------------------------------------------------------------------------------------

matrices = st.integers(4, 12).flatmap(
    lambda n: st.tuples(
        st.lists(st.lists(st.floats(-3, 3), min_size=3, max_size=3), min_size=n, max_size=n),
        st.lists(st.lists(st.floats(-3, 3), min_size=2, max_size=2), min_size=n, max_size=n),
    )
)


@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")
@settings(max_examples=30, deadline=None)
@given(matrices)
def test_rho_is_scipys_spearman_of_the_fitness_means(data):
    lab, downstream = (np.array(m) for m in data)
    x, y = -lab.mean(axis=1), -downstream.mean(axis=1)
    result = correlation(lab, [downstream], replicates=20)
    expected = scipy.stats.spearmanr(x, y).statistic
    if not math.isfinite(expected):  # a constant side: scipy says nan, we say undefined
        assert result["rho"] is None
    else:
        assert result["rho"] == pytest.approx(expected, abs=1e-9)
        assert result["n"] == len(x) and result["tasks"] == 3 and result["seeds"] == [2]


def test_monotone_data_give_rho_one_with_a_tight_interval():
    # Every resample of tasks and seeds keeps the order: ρ = 1 in every replicate.
    n = 10
    rank = np.arange(n, dtype=float)[:, None]
    lab = -(rank + np.array([0.0, 0.3, -0.2, 1.0]))  # fitness = rank + a task constant
    downstream = -(0.1 * rank + np.array([0.5, -0.4, 0.0]))
    result = correlation(lab, [downstream], replicates=300)
    assert result["rho"] == pytest.approx(1.0)
    assert result["low"] == pytest.approx(1.0) and result["high"] == pytest.approx(1.0)
    assert result["replicates"] == 300 and result["dropped"] == 0


def test_independent_noise_gives_an_interval_around_zero():
    rng = np.random.default_rng(7)
    lab, downstream = rng.normal(size=(30, 20)), rng.normal(size=(30, 3))
    result = correlation(lab, [downstream], replicates=1000)
    assert result["low"] < 0.0 < result["high"]
    assert result["high"] - result["low"] > 0.3  # 30 functions cannot pin ρ down


def test_noise_in_the_seeds_widens_the_interval():
    # The same means; one version has seed noise: resampling the seeds must show it.
    n = 12
    rank = np.arange(n, dtype=float)[:, None]
    lab = -np.repeat(rank, 5, axis=1)
    quiet = -np.repeat(rank, 4, axis=1)
    noisy = quiet + np.random.default_rng(1).normal(scale=8.0, size=quiet.shape)
    tight, wide = (correlation(lab, [d], replicates=400) for d in (quiet, noisy))
    assert tight["high"] - tight["low"] < wide["high"] - wide["low"]


def test_pooled_uses_the_functions_that_have_every_benchmark_and_families_their_tasks():
    rng = np.random.default_rng(3)
    lab = rng.normal(size=(8, 4))
    first, second = rng.normal(size=(8, 2)), rng.normal(size=(8, 2))
    second[2] = np.nan  # function 2 failed every job of the second benchmark
    result = correlations(lab, ["a", "a", "b", "b"], {"one": first, "two": second}, replicates=50)
    assert result["per_benchmark"]["one"]["n"] == 8 and result["per_benchmark"]["two"]["n"] == 7
    assert result["pooled"]["n"] == 7
    keep = [i for i in range(8) if i != 2]
    pooled_y = -(first.mean(1) + second.mean(1)) / 2
    assert result["pooled"]["rho"] == pytest.approx(scipy.stats.spearmanr(-lab.mean(1)[keep], pooled_y[keep]).statistic)
    family_a = result["families"]["a"]["one"]
    assert family_a["tasks"] == 2
    assert family_a["rho"] == pytest.approx(scipy.stats.spearmanr(-lab[:, :2].mean(1), -first.mean(1)).statistic)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=1, max_size=40), st.integers(0, 45))
def test_stratified_choice_spans_the_range_evenly(values, k):
    chosen = stratified_choice(values, k)
    n = len(values)
    assert len(chosen) == min(k, n) and len(set(chosen)) == len(chosen)
    if k >= 2:  # the lowest and the highest are in
        assert min(values[i] for i in chosen) == min(values) and max(values[i] for i in chosen) == max(values)
    if 2 <= k < n:  # evenly spaced ranks: no gap wider than the spacing, rounded up
        order = sorted(range(n), key=lambda i: (values[i], i))
        ranks = [order.index(i) for i in chosen]
        assert ranks == sorted(ranks)
        assert max(b - a for a, b in zip(ranks, ranks[1:])) <= math.ceil((n - 1) / (k - 1))


def test_markdown_text_neutralises_markup():
    text = markdown_text(HOSTILE + "\nnext line &amp;")
    assert "|" not in text.replace("\\|", "") and "`" not in text.replace("\\`", "")
    assert "<b>" not in text and "\n" not in text and "&amp;amp;" in text


# -- the functions -----------------------------------------------------------------------------------


def test_a_search_winner_is_read_as_data_and_copied_under_its_run_name(tmp_path):
    from actmine.validity.functions import winner_functions

    run = tmp_path / "runs" / "night|1"
    run.mkdir(parents=True)
    (run / "best_activation.py").write_text("def activation_function(x):\n    return x * torch.sigmoid(x)\n")
    taken = {"winner_night|1"}  # a clash: the second gets a suffix
    (winner,) = winner_functions([str(run)], tmp_path / "functions", taken)
    assert winner.name == "winner_night|1_2" and winner.origin == "winner" and not winner.trusted
    assert Path(winner.reference) == tmp_path / "functions" / "winner_night|1_2.py"
    assert "torch.sigmoid(x)" in winner.source and Path(winner.reference).read_text() == winner.source


def test_program_names_are_file_stems_that_cannot_pass_for_registry_activations():
    from actmine.validity.functions import program_name

    taken: set[str] = set()
    assert program_name("a/b\\c:d\x1b[31m", taken) == "a_b_c_d_[31m"
    assert program_name("GELU", taken) == "GELU_2"  # the registry's gelu (names are case-blind)
    assert program_name("../x", taken) == "_x" and program_name("_x", taken) == "_x_2"


# -- a tiny real study -------------------------------------------------------------------------------


def tiny_lab(tmp_path: Path):
    from actmine.lab.ensemble import TrainingProtocol
    from actmine.lab.fitness import Lab

    suite = tmp_path / "tiny.yaml"
    suite.write_text(yaml.safe_dump(SMALL_SUITE))
    # no screening stage: at 20 steps it refuses most random programs, and the test needs some scored
    return {"tiny": Lab(str(suite), protocol=TrainingProtocol(steps=20), seeds=1, screen_max_id_error=None)}


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_a_tiny_study_resumes_without_recomputing_and_escapes_names(tmp_path, tinyfit):
    hostile = tmp_path / f"{HOSTILE}.py"
    hostile.write_text("def activation_function(x):\n    return torch.tanh(x) + 0.5 * x\n")
    out = tmp_path / "study"
    study = Settings(
        benchmarks=("tinyfit",),
        seeds=2,
        random=2,
        random_pool=6,
        functions=("gelu", "tanh", str(hostile)),
        workers=2,
        replicates=200,
    )
    labs = tiny_lab(tmp_path)
    first = run_validity(study, out, labs=labs)

    names = [f["name"] for f in first["functions"]]
    assert names[:4] == ["relu", "gelu", "tanh", HOSTILE]  # ReLU added: it is the reference
    assert {f["origin"] for f in first["functions"]} >= {"library", "given", "random"}
    pool = first["random_pool"]
    assert len(pool) == 6 and sum(p["chosen"] for p in pool) == 2
    kept = [p["fitness"] for p in pool if p["chosen"]]  # the lowest and the highest the lab scored
    scored_pool = [p["fitness"] for p in pool if p["ok"]]
    assert len(scored_pool) >= 2 and sorted(kept) == [min(scored_pool), max(scored_pool)]
    scored = [f for f in first["functions"] if f["lab"]["ok"]]
    cell = first["correlations"]["per_benchmark"]["tinyfit"]
    assert cell["n"] == len(scored) >= 3 and cell["seeds"] == [2] and cell["tasks"] == 3
    assert set(first["correlations"]["families"]) == {"tiny:polynomial", "tiny:harmonic", "tiny:feynman"}
    relu = next(f for f in first["functions"] if f["name"] == "relu")
    assert relu["downstream"]["tinyfit"]["fitness"] == 0.0 and abs(relu["lab"]["fitness"]) < 1e-6
    assert_png_about((out / "scatter-tinyfit.png").read_bytes(), (7.5, 6.0), dpi=100, slack=0.25)  # the scatter
    assert (out / "functions" / f"{HOSTILE}.py").is_file()
    assert first["cost"]["transfer"]["jobs"] == 2 * len(scored) and first["cost"]["lab"]["functions"] == 4 + 6

    report = (out / "validity.md").read_text()
    # Outside the command (an indented code block: one line, shown as is) the name is escaped.
    code = [line for line in report.splitlines() if line.startswith("    ")]
    assert len(code) == 1 and code[0].startswith("    actmine validate")
    prose = "\n".join(line for line in report.splitlines() if not line.startswith("    "))
    assert HOSTILE not in prose and markdown_text(HOSTILE) in prose
    assert json.loads((out / "validity.json").read_text())["correlations"] == first["correlations"]

    # Rerun: nothing is scored or trained again, and the numbers are the same.
    lab_lines, job_lines = lines(out / "lab.jsonl"), lines(out / "transfer" / "results.jsonl")
    second = run_validity(study, out, labs=labs)
    assert lines(out / "lab.jsonl") == lab_lines and lines(out / "transfer" / "results.jsonl") == job_lines
    assert second["correlations"] == first["correlations"]

    # A half-written last line (an interrupted run) is ignored: that one function alone is scored again.
    (out / "lab.jsonl").write_text("\n".join(lab_lines[:-1] + [lab_lines[-1][:40]]))
    run_validity(study, out, labs=labs)
    again = lines(out / "lab.jsonl")
    assert again[:-2] == lab_lines[:-1] and len(again) == len(lab_lines) + 1
    assert json.loads(again[-1])["key"] == json.loads(lab_lines[-1])["key"]


# -- the command's errors ----------------------------------------------------------------------------


def run_cli(capsys, *argv):
    from actmine.cli import main

    code = main(["validate", *argv])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--benchmarks", "digitz"], "unknown benchmark 'digitz' (did you mean 'digits'?)"),
        (["--benchmarks", "imagenet", "--data-dir", "{tmp}"], "imagenet: its data are missing"),
        (["--run", "{tmp}"], "no best_activation.py there"),
        (["--run", "{tmp}/nowhere"], "no such directory"),
        (["--functions", "relu", "gelu", "--random", "0"], "a rank correlation needs at least 3"),
        (["--functions", "no_such_function"], "unknown activation"),
        (["--random", "5", "--random-pool", "2"], "is more than --random-pool"),
        (["--lab-suites", "no-such-suite"], "unknown suite"),
        (["--workers", "0"], "--workers must be positive"),
        (["--workers", "-1"], "--workers must be positive"),
        (["--option", "diabetes.nonsense=1", "--benchmarks", "diabetes"], "has no option 'nonsense'"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(capsys, tmp_path, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, err = run_cli(capsys, "--out", str(tmp_path / "study"), "--quiet", *argv)
    assert code == 2
    assert err.startswith("actmine: error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "study" / "lab.jsonl").exists()  # nothing ran


def test_a_lost_dask_scheduler_is_one_line_exit_1_and_says_how_to_resume(capsys, tmp_path, monkeypatch):
    """What `run_validity` raises when its cluster is lost (the executor's and the job pool's
    `ExecutorLost`, tests/test_dask_scheduler_loss.py) reaches the user as one line, not a traceback."""
    import actmine.validity as validity
    from actmine.executors import ExecutorLost

    def lost(*args, **kwargs):
        raise ExecutorLost("the connection to the Dask scheduler at tcp://127.0.0.1:9 was lost while a job ran")

    monkeypatch.setattr(validity, "run_validity", lost)
    code, err = run_cli(capsys, "--out", str(tmp_path / "study"), "--quiet", "--executor", "dask")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "Dask scheduler at tcp://127.0.0.1:9 was lost" in err and "run the same command again to resume" in err


def test_validate_parses_repeated_runs_and_functions():
    from actmine.cli import build_parser

    args = build_parser().parse_args(
        ["validate", "--out", "d", "--run", "a", "b", "--run", "c", "--functions", "relu", "x.py"]
    )
    assert args.runs == ["a", "b", "c"] and args.functions == ["relu", "x.py"] and args.seeds == 3


@pytest.mark.parametrize(
    "workers, message",
    [(0, "must be an integer of at least 1"), (-1, "at least 1"), (True, "at least 1"), (10**5, "per core")],
)
def test_the_api_refuses_bad_workers_before_any_work(tmp_path, workers, message):
    """The Python API has no argparse in front of it: the study's own check refuses the value."""
    from actmine.validity import Settings, run_validity

    with pytest.raises(ValidityInputError, match=f"--workers .*{message}"):
        run_validity(
            Settings(functions=("relu", "gelu", "tanh"), random=0, benchmarks=("diabetes",), workers=workers),
            tmp_path / "study",
        )
    assert not (tmp_path / "study" / "lab.jsonl").exists()


def test_a_program_is_journalled_while_the_library_still_trains(tmp_path, monkeypatch):
    """Sandbox results are journalled as they finish, not after the in-process (library) functions:
    an interrupt during the library's training loses no program that had finished. The library's
    evaluation here waits until the program's record is in the journal; if programs were journalled
    only afterwards, it would wait in vain."""
    import time

    from actmine.lab.fitness import Lab
    from actmine.validity import labscore
    from actmine.validity.functions import registry_function, write_program

    labs = tiny_lab(tmp_path)
    program = write_program(
        tmp_path / "functions", "soft", "def activation_function(x):\n    return F.softplus(x)\n", "given", "soft.py"
    )
    journal = tmp_path / "lab.jsonl"
    original, seen = Lab.evaluate, []

    def evaluate_after_the_program(self, module, name="activation"):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (journal.is_file() and '"name": "soft"' in journal.read_text()):
            time.sleep(0.1)
        seen.append(journal.is_file() and '"name": "soft"' in journal.read_text())
        return original(self, module, name=name)

    monkeypatch.setattr(Lab, "evaluate", evaluate_after_the_program)  # this process only: workers are unpatched
    records = labscore.score_functions([registry_function("gelu"), program], labs, journal, workers=1)
    assert seen == [True] and set(records) == {"gelu", "soft"} and all(r["ok"] for r in records.values())
    written = [json.loads(line)["name"] for line in lines(journal)]
    assert written == ["soft", "gelu"]  # the program first: it finished while the library trained


def test_a_journal_line_without_what_the_study_reads_is_unreadable_not_a_crash(tmp_path):
    """`lab.jsonl` lines are resumed from; a line whose suites lack `ok`, `error` or `fitness` passed
    the check and ended the analysis in a KeyError after the transfer had run."""
    from actmine.validity.labscore import read_journal

    task = {"name": "t1", "family": "poly", "log_ratio": 0.1}
    suite = {"ok": True, "fitness": -0.1, "error": None, "seconds": 1.0, "tasks": [task]}
    good = {"key": "a", "name": "relu", "origin": "paper", "ok": True, "fitness": -0.1, "seconds": 1.0}
    lines = [
        {**good, "suites": {"lab": suite}},
        {**good, "key": "b", "suites": {"lab": {"tasks": [task]}}},
        {**good, "key": "c", "suites": {"lab": {**suite, "ok": "yes"}}},
        {**good, "key": "d", "suites": {"lab": {**suite, "error": 5}}},
        {**good, "key": "e", "ok": False, "suites": {"lab": {**suite, "ok": False, "error": {"code": "x"}}}},
    ]
    journal = tmp_path / "lab.jsonl"
    journal.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    done, bad = read_journal(journal)
    assert sorted(done) == ["a", "e"] and bad == 3
