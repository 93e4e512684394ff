"""`actmine reproduce`: lab scoring, the claims built from the parts, and a tiny run of the command (the
rules and statistics themselves: tests/test_reproduce_rules.py)."""

import dataclasses
import json
import math

import pytest

from actmine import activations, reproduce
from actmine.cli import main
from actmine.reproduce import NOT_CHECKABLE, NOT_REPRODUCED, REPRODUCED, mean_ci
from figure_checks import assert_png_about, bar_heights, png_size

TINY_SUITE = """
name: tiny
seeds: [0, 1]
tasks:
  - {family: polynomial, dim: 1, seed: 0}
  - {family: harmonic, seed: 2}
"""
TINY_FUNCTIONS = "gelu,gelu_sine,gelu_sinc_perturbation,turbulent"


# -- lab scoring ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_suite(tmp_path_factory):
    path = tmp_path_factory.mktemp("suite") / "tiny.yaml"
    path.write_text(TINY_SUITE)
    return str(path)


def tiny_settings(suite):
    return reproduce.Settings(
        seeds=2,
        suite=suite,
        heldout_suite=suite,
        steps=10,
        workers=1,
        functions=("relu", "gelu", "turbulent"),
        alphas=(0.0, 0.1),
    )


def test_score_activation_matches_the_lab_and_its_per_seed_scores(tiny_suite):
    from actmine.lab.tasks import Suite

    settings = tiny_settings(tiny_suite)
    lab = reproduce._make_lab(settings, tiny_suite)
    entries = {}
    for name in ("gelu", "turbulent"):  # turbulent: vmap over the models, scored per example like the Lab
        entry = entries[name] = reproduce.score_activation(lab, activations.get(name), name)
        official = lab.evaluate(activations.get(name), name=name)
        assert entry["ok"] and official.ok
        assert entry["ood_log_ratio"] == pytest.approx(official.ood_log_ratio, abs=1e-5)
        assert entry["pointwise"] is (name != "turbulent")
        assert len(entry["per_seed"]) == 2 and entry["ci"]["n"] == 2
    # one seed's score is the lab's score on a one-seed suite
    single = reproduce._make_lab(settings, Suite(lab.suite.name, lab.suite.tasks, (1,)), keep_seeds=True)
    assert entries["turbulent"]["per_seed"][1] == pytest.approx(
        single.evaluate(activations.get("turbulent")).ood_log_ratio, abs=1e-5
    )
    in_batches = reproduce.score_activation(lab, activations.get("turbulent"), "turbulent", in_batches=True)
    assert in_batches["ok"] and in_batches["ood_log_ratio"] != entries["turbulent"]["ood_log_ratio"]


# -- the command ------------------------------------------------------------------------------------


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_suite):
    """One tiny run of the command (no search, no transfer), shared by the tests below."""
    out = tmp_path_factory.mktemp("reproduction")
    argv = [
        "reproduce",
        "--skip-search",
        "--skip-transfer",
        "--suite",
        tiny_suite,
        "--heldout-suite",
        tiny_suite,
        "--steps",
        "10",
        "--seeds",
        "2",
        "--alphas",
        "0,0.1,0.2",
        "--functions",
        TINY_FUNCTIONS,
        "--out-dir",
        str(out / "rep"),
        "--doc",
        str(out / "docs" / "reproduction.md"),
        "--workers",
        "1",
    ]
    code = main(argv)
    return code, out, argv


def test_tiny_run_writes_the_report_json_and_plots(tiny_run):
    code, out, _ = tiny_run
    assert code == 0
    rep = out / "rep"
    for name in (
        "lab.json",
        "alpha.json",
        "batch.json",
        "analysis.json",
        "claims.json",
        "lab.png",
        "alpha.png",
        "batch.png",
    ):
        assert (rep / name).is_file(), name
    doc = (out / "docs" / "reproduction.md").read_text()
    assert "| # | the paper's claim |" in doc
    claims = json.loads((rep / "claims.json").read_text())["claims"]
    assert [c["id"] for c in claims] == list(reproduce.CLAIM_RULES)  # every claim, in the rules' order
    assert {c["verdict"] for c in claims} <= {REPRODUCED, NOT_REPRODUCED, NOT_CHECKABLE}
    for c in claims:
        assert c["claim"] in doc and c["rule"] in doc
    by_id = {c["id"]: c for c in claims}
    assert by_id["probe"]["verdict"] == REPRODUCED  # turbulent flagged, the rest pointwise
    assert by_id["search"]["verdict"] == NOT_CHECKABLE and by_id["gsp_clrs"]["verdict"] == NOT_CHECKABLE
    lab = json.loads((rep / "lab.json").read_text())
    functions = lab["result"]["suites"][lab["settings"]["suite"]]["functions"]
    # gmtu was not in the run: the claim is not checkable, unless a function that was run does not beat ReLU
    highs = {n: functions[n]["ci"]["high"] for n in ("gelu_sine", "gelu_sinc_perturbation", "turbulent")}
    losers = [n for n, high in highs.items() if high >= 0]
    assert by_id["beats_relu"]["verdict"] == (NOT_REPRODUCED if losers else NOT_CHECKABLE), highs
    assert "GMTU" in by_id["beats_relu"]["why"] or losers
    assert all(reproduce.short(n) in by_id["beats_relu"]["why"] for n in losers)
    assert "](../rep/lab.png)" in doc and "](../rep/alpha.png)" in doc  # links relative to the report
    # the plots, at 90 dpi: lab (12 × 3.6 in, one suite), alpha (6.5 × 3.8), batch (6.5 × 3.4)
    for name, inches in (("lab", (12, 3.6)), ("alpha", (6.5, 3.8)), ("batch", (6.5, 3.4))):
        assert_png_about((rep / f"{name}.png").read_bytes(), inches, dpi=90, slack=0.15)
    entry = functions["gelu_sine"]
    assert entry["ci"]["n"] == 2 and set(entry["families"]) == {"polynomial", "harmonic"}
    assert lab["settings"]["seeds"] == 2 and lab["settings"]["steps"] == 10


def test_a_second_run_reuses_the_saved_parts_and_force_recomputes(tiny_run, capsys):
    code, out, argv = tiny_run
    rep = out / "rep"
    before = {p: (rep / p).read_text() for p in ("lab.json", "alpha.json", "batch.json")}
    code, stdout, stderr = run_cli(capsys, *argv)
    assert code == 0 and "reused: lab, alpha, batch" in " ".join(stdout.split())
    assert "lab: reusing" in stderr and "lab: running" not in stderr
    assert all((rep / p).read_text() == text for p, text in before.items())
    # other settings for one part: only that part is recomputed
    changed = [a if a != "0,0.1,0.2" else "0,0.1" for a in argv]
    code, stdout, stderr = run_cli(capsys, *changed)
    assert code == 0 and "reused: lab, batch" in " ".join(stdout.split()) and "alpha: running" in stderr
    assert json.loads((rep / "alpha.json").read_text())["settings"]["alphas"] == [0.0, 0.1]
    # a saved part that is not one (edited by hand: `[]`, a result of the wrong kind) is computed again
    batch = json.loads((rep / "batch.json").read_text())
    (rep / "batch.json").write_text(json.dumps({**batch, "result": []}))
    (rep / "alpha.json").write_text("[]")
    code, stdout, stderr = run_cli(capsys, *changed)
    assert code == 0 and "alpha: running" in stderr and "batch: running" in stderr and "lab: reusing" in stderr
    code, stdout, stderr = run_cli(capsys, *changed, "--force")
    assert code == 0 and "reused" not in stdout and "lab: running" in stderr


@pytest.mark.parametrize("skip_search, skip_transfer", [(False, False), (True, False), (False, True), (True, True)])
def test_force_removes_what_the_parts_that_run_would_resume(tmp_path, skip_search, skip_transfer):
    """`--force` recomputes everything: a finished search's run directory or the transfer's journal
    would be resumed (an earlier version's numbers back), so they go, unless their part is skipped."""
    from actmine.reproduce.cache import clear_resumable_state

    out = tmp_path / "rep"
    (out / "runs" / "search-abc").mkdir(parents=True)
    (out / "runs" / "search-abc" / "programs.sqlite").write_text("a finished run")
    (out / "transfer").mkdir()
    (out / "transfer" / "results.jsonl").write_text('{"activation": "gelu", "score": 0.52}\n')
    (out / "lab.json").write_text("{}")
    settings = reproduce.Settings(skip_search=skip_search, skip_transfer=skip_transfer)
    removed = clear_resumable_state(settings, out)
    assert removed == [
        p for p, skipped in ((out / "runs", skip_search), (out / "transfer", skip_transfer)) if not skipped
    ]
    assert (out / "runs").exists() == skip_search and (out / "transfer").exists() == skip_transfer
    assert (out / "lab.json").is_file()  # a part's saved result is ignored under --force, not removed
    assert clear_resumable_state(settings, out) == []  # nothing left to remove


def test_claims_and_report_with_transfer_and_search_parts(tiny_run, tmp_path, monkeypatch):
    """The transfer, correlation and search sections, from synthetic parts (no training here)."""
    _, out, _ = tiny_run
    rep = out / "rep"
    settings = reproduce.Settings(
        seeds=2,
        suite=json.loads((rep / "lab.json").read_text())["settings"]["suite"],
        steps=10,
        functions=("relu",) + tuple(TINY_FUNCTIONS.split(",")),
        alphas=(0.0, 0.1),
    )
    settings = dataclasses.replace(settings, heldout_suite=settings.suite)
    parts = {p: json.loads((rep / f"{p}.json").read_text())["result"] for p in ("lab", "alpha", "batch")}
    scores = {
        "relu": [0.90, 0.92, 0.91],
        "gelu": [0.92, 0.93, 0.93],
        "gelu_sine": [0.93, 0.94, 0.93],
        "gelu_sinc_perturbation": [0.95, 0.96, 0.95],
        "search_winner": [0.91, 0.90, 0.92],
    }
    rows, failures = [], []
    for name, values in list(scores.items()) + [("turbulent", [0.5])]:
        per_seed = [math.log((1 - v) / (1 - r)) for v, r in zip(values, scores["relu"])]
        rows.append(
            {
                "activation": name,
                "benchmark": "digits",
                "metric": "accuracy",
                "n": len(values),
                "failed": 3 - len(values),
                "mean": sum(values) / len(values),
                "std": None,
                "log_ratio_vs_relu": sum(per_seed) / len(per_seed),
                "log_ratio_std": None,
                "ci": mean_ci(per_seed),
            }
        )
    failures.append(
        {
            "activation": "turbulent",
            "benchmark": "digits",
            "seed": 1,
            "error": {"code": "job_error", "message": "RuntimeError: out of memory"},
        }
    )
    parts["transfer"] = {
        "benchmarks": ["digits"],
        "missing": {"cifar10": "DatasetMissing: not here"},
        "seeds": [0, 1, 2],
        "options": {"digits": {"epochs": 1}},
        "rows": rows,
        "failures": failures,
    }
    winner_entry = dict(parts["lab"]["suites"][settings.suite]["functions"]["gelu"], name="search_winner")
    parts["search"] = {
        "config": {
            "search": {"budget": 4, "time_limit": 60, "heldout_top": 1},
            "lab": {"training_seeds": 2, "suite": settings.suite},
            "mutator": {"kind": "symbolic"},
            "executor": {"workers": 1},
        },
        "run_dir": "runs/x",
        "evaluated": 4,
        "seconds": 3.0,
        "winner": {
            "program_id": 7,
            "search_fitness": 0.2,
            "source": "def activation_function(x):\n    return F.gelu(x)\n",
            "sha256": "0",
            "suites": {settings.suite: winner_entry},
        },
    }
    parts["analysis"] = reproduce.analysis(settings, parts["lab"], parts["search"], parts["transfer"])
    corr = parts["analysis"]["correlations"]["digits"]
    assert corr["n"] == 6 and "search_winner" in corr["functions"] and "turbulent" in corr["functions"]
    claims = {c.id: c for c in reproduce.build_claims(settings, parts)}
    assert claims["gsp_best"].verdict == REPRODUCED  # GSP has the lowest digits log-ratio above
    assert claims["pointwise_transfer"].verdict == REPRODUCED
    assert claims["gsp_clrs"].verdict == NOT_CHECKABLE and claims["gsp_imagenet"].verdict == NOT_CHECKABLE
    # Turbulent fails downstream (2 failed jobs above): the claim stands or falls with its lab score in batches
    lab = parts["lab"]["suites"][settings.suite]["functions"]
    best_pointwise = min(e["ci"]["mean"] for e in lab.values() if e["ok"] and e["pointwise"])
    in_batches = parts["batch"]["suites"][settings.suite]["turbulent"]["in_batches"]
    wins = in_batches["ok"] and in_batches["ci"]["mean"] < best_pointwise
    assert claims["batch_statistics"].verdict == (REPRODUCED if wins else NOT_REPRODUCED)
    assert "2 failed jobs" in claims["batch_statistics"].measured
    # the claim is decided by the validity study, never by this run's digits correlation
    assert (
        claims["lab_predicts"].verdict == NOT_CHECKABLE
        and "validity study not found" in claims["lab_predicts"].measured
    )
    study = tmp_path / "validity.json"
    cells = {
        "series": {"rho": 0.41, "low": 0.05, "high": 0.7, "n": 26},
        "diabetes": {"rho": 0.1, "low": -0.3, "high": 0.45, "n": 26},
    }
    study.write_text(
        json.dumps(
            {
                "benchmarks": ["series", "diabetes"],
                "seeds": [0, 1, 2],
                "correlations": {"per_benchmark": cells, "pooled": {"rho": 0.3, "low": 0.02, "high": 0.6, "n": 26}},
            }
        )
    )
    parts["validity"] = reproduce.load_validity(study)
    decided = {c.id: c for c in reproduce.build_claims(settings, parts)}["lab_predicts"]
    assert decided.verdict == REPRODUCED and "ρ = +0.30 [+0.02, +0.60] over 26 functions" in decided.measured
    assert "series: +0.41 [+0.05, +0.70]" in decided.measured and "part 5" in decided.measured
    study.write_text(json.dumps({"correlations": {"per_benchmark": cells, "pooled": {**cells["diabetes"]}}}))
    parts["validity"] = reproduce.load_validity(study)
    assert {c.id: c for c in reproduce.build_claims(settings, parts)}["lab_predicts"].verdict == NOT_REPRODUCED
    # a pooled ρ without an interval cannot decide the claim, and the text still renders
    study.write_text(
        json.dumps(
            {
                "benchmarks": [],
                "correlations": {"per_benchmark": {"series": {"rho": 0.4}}, "pooled": {"rho": 0.4, "n": 26}},
            }
        )
    )
    parts["validity"] = reproduce.load_validity(study)
    undecided = {c.id: c for c in reproduce.build_claims(settings, parts)}["lab_predicts"]
    assert undecided.verdict == NOT_CHECKABLE and "validity study not found" not in undecided.measured
    assert f"validity study ({study}): no pooled Spearman ρ with a 95% interval" in undecided.measured
    study.write_text("{not json")
    assert reproduce.load_validity(study) is None and reproduce.load_validity(tmp_path / "absent.json") is None
    # hand-made files whose shapes the claim would trip over (a TypeError, a KeyError after hours)
    for document in (
        {"correlations": {"per_benchmark": {}}, "benchmarks": 5},
        {"correlations": {"per_benchmark": []}},
        {"correlations": {"per_benchmark": {"a": {}}}, "labs": "x"},
        [],
    ):
        study.write_text(json.dumps(document))
        assert reproduce.load_validity(study) is None, document
    study.write_text(
        json.dumps({"correlations": {"per_benchmark": cells, "pooled": {"rho": 0.3, "low": 0, "high": 1}}})
    )
    parts["validity"] = reproduce.load_validity(study)  # no count of functions: it cannot be quoted
    assert parts["validity"]["overall"] is None
    measured = {c.id: c for c in reproduce.build_claims(settings, parts)}["lab_predicts"].measured
    assert "no pooled Spearman ρ" in measured and "series: +0.41 [+0.05, +0.70]" in measured
    # the winner's held-out entry is GELU's: below 0 or not decides the claim
    assert claims["search"].verdict == (REPRODUCED if winner_entry["ci"]["high"] < 0 else NOT_REPRODUCED)
    info = {
        "date": "today",
        "machine": "test",
        "load_start": "0",
        "load_end": "0",
        "torch": "x",
        "python": "3",
        "actmine": "0",
        "wall_seconds": 1.0,
        "parts_seconds": 1.0,
        "part_seconds": {"lab": 1.0},
        "resumed": [],
        "full_estimate": "n/a",
    }
    doc = reproduce.write_markdown(tmp_path / "r.md", tmp_path, settings, parts, list(claims.values()), info)
    text = doc.read_text()
    assert "## 4. Transfer" in text and "`cifar10`: DatasetMissing" in text and "out of memory" in text
    assert "def activation_function(x):" in text and "Spearman" in text
    check_transfer_and_correlation_plots(parts, tmp_path, monkeypatch)


def drawn(monkeypatch, plot, *args):
    """The figure `plot` draws, and the path it wrote (the figure is kept on its way to `reproduce._save`)."""
    figures, save = [], reproduce._save
    with monkeypatch.context() as patch:
        patch.setattr(reproduce, "_save", lambda fig, path: figures.append(fig) or save(fig, path))
        path = plot(*args)
    assert len(figures) == 1
    return figures[0], path


def check_transfer_and_correlation_plots(parts, tmp_path, monkeypatch):
    """Each plot draws its data: a bar per function at its mean log-ratio, a point per function at
    (lab fitness, downstream fitness)."""
    figure, path = drawn(monkeypatch, reproduce.plot_transfer, parts["transfer"], tmp_path / "transfer.png")
    means = [r["ci"]["mean"] for r in parts["transfer"]["rows"] if r["activation"] != "relu"]
    assert bar_heights(figure.axes[0]) == pytest.approx(means)
    assert [t.get_text() for t in figure.axes[0].get_legend().get_texts()] == [
        reproduce.short(r["activation"]) for r in parts["transfer"]["rows"] if r["activation"] != "relu"
    ]
    width, height = png_size(path.read_bytes())
    assert 0.9 * 6.0 * 90 <= width and 0.9 * 3.8 * 90 <= height <= 1.1 * 3.8 * 90  # 6 × 3.8 in and a legend
    figure, path = drawn(monkeypatch, reproduce.plot_correlation, parts["analysis"], tmp_path / "correlation.png")
    corr, points = parts["analysis"]["correlations"]["digits"], parts["analysis"]["points"]
    offsets = figure.axes[0].collections[0].get_offsets()
    assert list(offsets[:, 0]) == pytest.approx([points[n]["lab_fitness"] for n in corr["functions"]])
    assert list(offsets[:, 1]) == pytest.approx([points[n]["downstream"]["digits"] for n in corr["functions"]])
    assert_png_about(path.read_bytes(), (5.0 * len(parts["analysis"]["correlations"]), 4.0), dpi=90, slack=0.15)


def imagenet_claim(rows, missing=None):
    settings = reproduce.Settings(seeds=2, functions=("relu", "gelu_sinc_perturbation"))
    transfer = {"benchmarks": ["imagenet"], "rows": rows, "missing": missing or {}, "seeds": [0, 1]}
    return {c.id: c for c in reproduce.build_claims(settings, {"transfer": transfer})}["gsp_imagenet"]


@pytest.mark.parametrize(
    "per_seed, verdict",
    [
        ([-0.2, 0.0, 0.2], REPRODUCED),  # no significant loss
        ([0.3, 0.4, 0.5], NOT_REPRODUCED),  # the interval lies above 0: a loss
        ([0.1], NOT_CHECKABLE),  # one seed: no interval
    ],
)
def test_gsp_imagenet_claim_is_decided_by_the_no_loss_rule(per_seed, verdict):
    interval = mean_ci(per_seed)
    row = {
        "activation": "gelu_sinc_perturbation",
        "benchmark": "imagenet",
        "n": len(per_seed),
        "failed": 0,
        "log_ratio_vs_relu": interval["mean"],
        "ci": interval,
    }
    claim = imagenet_claim([row])
    assert (claim.verdict, claim.why) == reproduce.rule_not_above_zero(interval) and claim.verdict == verdict
    assert claim.measured == f"imagenet log-ratio vs ReLU {reproduce._ci_text(interval)}"


def test_gsp_imagenet_claim_without_imagenet():
    claim = imagenet_claim([], missing={"imagenet": "DatasetMissing: no ILSVRC here"})
    assert (claim.verdict, claim.why) == (NOT_CHECKABLE, "ImageNet was not run")
    assert claim.measured == "ImageNet not run: DatasetMissing: no ILSVRC here"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--seeds", "1"], "--seeds must be at least 2"),
        (["--alphas", "a,b"], "--alphas"),
        (["--alphas", "-1"], "--alphas"),
        (["--functions", "relu,nope"], "unknown activation 'nope'"),
        (["--benchmarks", "nope"], "--benchmarks: unknown nope"),
        (["--transfer-option", "digits.epochs"], "BENCHMARK.KEY=VALUE"),
        (["--data-dir", "/no/such/dir"], "is not a directory"),
        (["--workers", "0"], "--workers must be positive"),
        (["--suite", "nope"], "unknown suite"),
        (["--validity", "/no/such/validity.json"], "is not a validity study's result"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(capsys, argv, message, tmp_path):
    code, _, err = run_cli(
        capsys, "reproduce", "--out-dir", str(tmp_path / "o"), "--doc", str(tmp_path / "d.md"), *argv
    )
    assert code == 2 and message in err
    assert not (tmp_path / "o").exists()
