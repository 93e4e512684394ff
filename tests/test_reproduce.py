"""`actmine reproduce`: statistics, claim rules, lab scoring, and a tiny run of the command."""

import dataclasses
import json
import math

import pytest

from actmine import activations, reproduce
from actmine.cli import main
from actmine.reproduce import (NOT_CHECKABLE, NOT_REPRODUCED, REPRODUCED, average_ranks, mean_ci, paired_ci,
                               rule_all_beat, rule_alpha, rule_batch_statistics, rule_below_zero, rule_best,
                               rule_no_failures, rule_validity, rule_probe, rule_seconds, spearman,
                               spearman_p_value, t_quantile_975)

TINY_SUITE = """
name: tiny
seeds: [0, 1]
tasks:
  - {family: polynomial, dim: 1, seed: 0}
  - {family: harmonic, seed: 2}
"""
TINY_FUNCTIONS = "gelu,gelu_sine,gelu_sinc_perturbation,turbulent"


# -- statistics ------------------------------------------------------------------------------------

def test_t_quantiles_match_the_table_and_the_expansion():
    assert t_quantile_975(1) == 12.706 and t_quantile_975(4) == 2.776 and t_quantile_975(30) == 2.042
    assert t_quantile_975(40) == pytest.approx(2.0211, abs=1e-3)     # tables: 2.021
    assert t_quantile_975(120) == pytest.approx(1.9799, abs=1e-3)    # tables: 1.980
    assert t_quantile_975(10**9) == pytest.approx(1.95996, abs=1e-4)
    with pytest.raises(ValueError):
        t_quantile_975(0)


def test_mean_ci_by_hand():
    # mean 2.5, sd = sqrt(5/3), half = t(3) * sd / 2 = 3.182 * 1.290994 / 2
    ci = mean_ci([1, 2, 3, 4])
    assert ci["mean"] == 2.5 and ci["n"] == 4
    assert ci["sd"] == pytest.approx(math.sqrt(5 / 3))
    assert ci["half"] == pytest.approx(2.053972, abs=1e-6)
    assert (ci["low"], ci["high"]) == pytest.approx((0.446028, 4.553972), abs=1e-6)
    assert mean_ci([0.7])["low"] is None and mean_ci([0.7])["mean"] == 0.7
    assert mean_ci([])["mean"] is None


def test_paired_ci_uses_the_differences():
    # differences [1, 2, 2]: mean 5/3, sd = sqrt(1/3), half = 4.303 * sqrt(1/3) / sqrt(3) = 4.303 / 3
    ci = paired_ci([1, 2, 3], [0, 0, 1])
    assert ci["mean"] == pytest.approx(5 / 3)
    assert ci["half"] == pytest.approx(4.303 / 3)
    with pytest.raises(ValueError):
        paired_ci([1, 2], [1])


def test_spearman_with_ties_by_hand():
    assert average_ranks([10, 20, 20, 30]) == [1, 2.5, 2.5, 4]
    assert average_ranks([3, 3, 3]) == [2, 2, 2]
    # ranks x = [1, 2.5, 2.5, 4], y = [1, 3, 2, 4]: cov 4.5, var 4.5 and 5 → 4.5 / sqrt(22.5) = 3 / sqrt(10)
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(3 / math.sqrt(10))
    assert spearman([1, 2, 3, 4, 5], [50, 40, 30, 20, 10]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [5, 5, 5]) is None
    assert spearman([1, 2], [1, 2]) is None


def test_spearman_p_value_exact_and_sampled():
    # ρ = 1 on 4 pairs: only the identity of the 24 orders reaches it
    assert spearman_p_value([1, 2, 3, 4], [1, 2, 3, 4]) == pytest.approx(1 / 24)
    assert spearman_p_value([1, 2, 3, 4], [4, 3, 2, 1]) == 1.0
    x = list(range(10))
    p = spearman_p_value(x, x, permutations=2000)
    assert p == spearman_p_value(x, x, permutations=2000)          # a fixed generator
    assert p < 0.01 and spearman_p_value(x, x[::-1], permutations=2000) > 0.99


# -- claim rules ------------------------------------------------------------------------------------

def ci(low, high):
    return {"mean": (low + high) / 2, "low": low, "high": high}


def test_rule_all_beat():
    assert rule_all_beat({"a": ci(-0.5, -0.1), "b": ci(-0.3, -0.01)})[0] == REPRODUCED
    verdict, why = rule_all_beat({"a": ci(-0.5, -0.1), "b": ci(-0.3, 0.2), "c": ci(0.1, 0.4)})
    assert verdict == NOT_REPRODUCED and "worse: c" in why and "not significantly better: b" in why
    assert rule_all_beat({"a": ci(-0.5, -0.1), "b": None})[0] == NOT_CHECKABLE
    assert rule_all_beat({"a": ci(0.1, 0.5), "b": None})[0] == NOT_REPRODUCED    # one loser refutes it
    assert rule_all_beat({})[0] == NOT_CHECKABLE


def test_rule_alpha():
    alphas = [0, 0.05, 0.1, 0.2, 0.5]
    assert rule_alpha(alphas, [0.0, -0.1, -0.2, -0.1, 0.1], ci(0, 0))[0] == REPRODUCED          # optimum at 0.1
    assert rule_alpha(alphas, [0.0, -0.1, -0.15, -0.2, 0.1], ci(-0.1, 0.2))[0] == REPRODUCED    # optimum 0.2
    assert rule_alpha(alphas, [0.0, -0.1, -0.15, -0.1, -0.3], ci(-0.1, 0.2))[0] == REPRODUCED   # 0.5, within noise
    verdict, why = rule_alpha(alphas, [0.0, -0.1, -0.15, -0.1, -0.3], ci(0.05, 0.2))
    assert verdict == NOT_REPRODUCED and "significantly worse" in why
    verdict, why = rule_alpha(alphas, [-0.3, -0.1, -0.15, -0.1, 0.3], ci(-0.1, 0.4))
    assert verdict == NOT_REPRODUCED and "plain GELU" in why
    assert rule_alpha([0, 0.2], [0.0, -0.1], None)[0] == NOT_CHECKABLE                          # 0.1 not scored


def test_rule_batch_statistics_and_probe():
    assert rule_batch_statistics(True, True)[0] == REPRODUCED
    assert rule_batch_statistics(True, False)[0] == NOT_REPRODUCED
    assert rule_batch_statistics(False, None)[0] == NOT_REPRODUCED
    assert rule_batch_statistics(True, None)[0] == NOT_CHECKABLE
    assert rule_batch_statistics(None, True)[0] == NOT_CHECKABLE
    expected = {"relu": True, "turbulent": False}
    assert rule_probe({"relu": True, "turbulent": False}, expected)[0] == REPRODUCED
    assert rule_probe({"relu": True, "turbulent": True}, expected)[0] == NOT_REPRODUCED
    assert rule_probe({"relu": True}, expected)[0] == NOT_CHECKABLE
    assert rule_probe({"relu": True}, {"relu": True})[0] == NOT_CHECKABLE   # nothing batch-dependent to flag


def test_rules_for_transfer_correlation_search_and_time():
    assert rule_best({"a": -0.3, "b": -0.1, "relu": 0.0}, "a")[0] == REPRODUCED
    verdict, why = rule_best({"a": -0.3, "b": -0.1, "relu": 0.0}, "b")
    assert verdict == NOT_REPRODUCED and "2th of 3" in why
    assert rule_best({"a": -0.3, "b": None}, "b")[0] == NOT_CHECKABLE
    assert rule_below_zero(ci(-0.2, -0.01))[0] == REPRODUCED
    assert rule_below_zero(ci(-0.2, 0.1))[0] == NOT_REPRODUCED
    assert rule_below_zero({"mean": -0.2, "low": None, "high": None})[0] == NOT_CHECKABLE
    cell = {"rho": 0.5, "low": 0.01, "high": 0.8, "n": 24}
    assert rule_validity(cell)[0] == REPRODUCED
    assert rule_validity({**cell, "low": 0.0})[0] == NOT_REPRODUCED        # the interval touches 0
    assert rule_validity({**cell, "rho": -0.4, "low": -0.7, "high": -0.1})[0] == NOT_REPRODUCED
    assert rule_validity({**cell, "n": 3})[0] == NOT_CHECKABLE
    assert rule_validity({**cell, "low": None, "high": None})[0] == NOT_CHECKABLE
    assert rule_validity(None)[0] == NOT_CHECKABLE
    assert rule_seconds(2.5)[0] == REPRODUCED and rule_seconds(30.0)[0] == NOT_REPRODUCED
    assert rule_seconds(None)[0] == NOT_CHECKABLE
    assert rule_no_failures({"relu": 0, "gelu": 0})[0] == REPRODUCED
    assert rule_no_failures({"relu": 0, "gelu": 2})[0] == NOT_REPRODUCED
    assert rule_no_failures(None)[0] == NOT_CHECKABLE


# -- lab scoring ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_suite(tmp_path_factory):
    path = tmp_path_factory.mktemp("suite") / "tiny.yaml"
    path.write_text(TINY_SUITE)
    return str(path)


def tiny_settings(suite):
    return reproduce.Settings(seeds=2, suite=suite, heldout_suite=suite, steps=10, workers=1,
                              functions=("relu", "gelu", "turbulent"), alphas=(0.0, 0.1))


def test_score_activation_matches_the_lab_and_its_per_seed_scores(tiny_suite):
    from actmine.lab.tasks import Suite

    settings = tiny_settings(tiny_suite)
    lab = reproduce._make_lab(settings, tiny_suite)
    entries = {}
    for name in ("gelu", "turbulent"):   # turbulent: vmap over the models, scored per example like the Lab
        entry = entries[name] = reproduce.score_activation(lab, activations.get(name), name)
        official = lab.evaluate(activations.get(name), name=name)
        assert entry["ok"] and official.ok
        assert entry["ood_log_ratio"] == pytest.approx(official.ood_log_ratio, abs=1e-5)
        assert entry["pointwise"] is (name != "turbulent")
        assert len(entry["per_seed"]) == 2 and entry["ci"]["n"] == 2
    # one seed's score is the lab's score on a one-seed suite
    single = reproduce._make_lab(settings, Suite(lab.suite.name, lab.suite.tasks, (1,)), keep_seeds=True)
    assert entries["turbulent"]["per_seed"][1] == pytest.approx(single.evaluate(activations.get("turbulent")).ood_log_ratio,
                                                            abs=1e-5)
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
    argv = ["reproduce", "--skip-search", "--skip-transfer", "--suite", tiny_suite, "--heldout-suite", tiny_suite,
            "--steps", "10", "--seeds", "2", "--alphas", "0,0.1,0.2", "--functions", TINY_FUNCTIONS,
            "--out-dir", str(out / "rep"), "--doc", str(out / "docs" / "reproduction.md"), "--workers", "1"]
    code = main(argv)
    return code, out, argv


def test_tiny_run_writes_the_report_json_and_plots(tiny_run):
    code, out, _ = tiny_run
    assert code == 0
    rep = out / "rep"
    for name in ("lab.json", "alpha.json", "batch.json", "analysis.json", "claims.json", "lab.png", "alpha.png",
                 "batch.png"):
        assert (rep / name).is_file(), name
    doc = (out / "docs" / "reproduction.md").read_text()
    assert "| # | the paper's claim |" in doc
    claims = json.loads((rep / "claims.json").read_text())["claims"]
    assert len(claims) >= 10 and {c["verdict"] for c in claims} <= {REPRODUCED, NOT_REPRODUCED, NOT_CHECKABLE}
    for c in claims:
        assert c["claim"] in doc and c["rule"] in doc
    by_id = {c["id"]: c for c in claims}
    assert by_id["probe"]["verdict"] == REPRODUCED                 # turbulent flagged, the rest pointwise
    assert by_id["search"]["verdict"] == NOT_CHECKABLE and by_id["gsp_clrs"]["verdict"] == NOT_CHECKABLE
    assert by_id["beats_relu"]["verdict"] in (NOT_REPRODUCED, NOT_CHECKABLE)   # gmtu was not in the run
    assert "](../rep/lab.png)" in doc and "](../rep/alpha.png)" in doc     # links relative to the report
    lab = json.loads((rep / "lab.json").read_text())
    entry = lab["result"]["suites"][lab["settings"]["suite"]]["functions"]["gelu_sine"]
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
    code, stdout, stderr = run_cli(capsys, *changed, "--force")
    assert code == 0 and "reused" not in stdout and "lab: running" in stderr


def test_claims_and_report_with_transfer_and_search_parts(tiny_run, tmp_path):
    """The transfer, correlation and search sections, from synthetic parts (no training here)."""
    _, out, _ = tiny_run
    rep = out / "rep"
    settings = reproduce.Settings(seeds=2, suite=json.loads((rep / "lab.json").read_text())["settings"]["suite"],
                                  steps=10, functions=("relu",) + tuple(TINY_FUNCTIONS.split(",")), alphas=(0.0, 0.1))
    settings = dataclasses.replace(settings, heldout_suite=settings.suite)
    parts = {p: json.loads((rep / f"{p}.json").read_text())["result"] for p in ("lab", "alpha", "batch")}
    scores = {"relu": [0.90, 0.92, 0.91], "gelu": [0.92, 0.93, 0.93], "gelu_sine": [0.93, 0.94, 0.93],
              "gelu_sinc_perturbation": [0.95, 0.96, 0.95], "search_winner": [0.91, 0.90, 0.92]}
    rows, failures = [], []
    for name, values in list(scores.items()) + [("turbulent", [0.5])]:
        per_seed = [math.log((1 - v) / (1 - r)) for v, r in zip(values, scores["relu"])]
        rows.append({"activation": name, "benchmark": "digits", "metric": "accuracy", "n": len(values),
                     "failed": 3 - len(values), "mean": sum(values) / len(values), "std": None,
                     "log_ratio_vs_relu": sum(per_seed) / len(per_seed), "log_ratio_std": None,
                     "ci": mean_ci(per_seed)})
    failures.append({"activation": "turbulent", "benchmark": "digits", "seed": 1,
                     "error": {"code": "job_error", "message": "RuntimeError: out of memory"}})
    parts["transfer"] = {"benchmarks": ["digits"], "missing": {"cifar10": "DatasetMissing: not here"},
                         "seeds": [0, 1, 2], "options": {"digits": {"epochs": 1}}, "rows": rows, "failures": failures}
    winner_entry = dict(parts["lab"]["suites"][settings.suite]["functions"]["gelu"], name="search_winner")
    parts["search"] = {"config": {"search": {"budget": 4, "time_limit": 60, "heldout_top": 1},
                                  "lab": {"seeds": 2, "suite": settings.suite}, "mutator": {"kind": "symbolic"},
                                  "executor": {"workers": 1}},
                       "run_dir": "runs/x", "evaluated": 4, "seconds": 3.0,
                       "winner": {"program_id": 7, "search_fitness": 0.2, "source": "def activation_function(x):\n"
                                  "    return F.gelu(x)\n", "sha256": "0", "suites": {settings.suite: winner_entry}}}
    parts["analysis"] = reproduce.analysis(settings, parts["lab"], parts["search"], parts["transfer"])
    corr = parts["analysis"]["correlations"]["digits"]
    assert corr["n"] == 6 and "search_winner" in corr["functions"] and "turbulent" in corr["functions"]
    claims = {c.id: c for c in reproduce.build_claims(settings, parts)}
    assert claims["gsp_best"].verdict == REPRODUCED          # GSP has the lowest digits log-ratio above
    assert claims["pointwise_transfer"].verdict == REPRODUCED
    assert claims["gsp_clrs"].verdict == NOT_CHECKABLE and claims["gsp_imagenet"].verdict == NOT_CHECKABLE
    assert "1 failed" in claims["batch_statistics"].measured or claims["batch_statistics"].verdict == NOT_REPRODUCED
    # the claim is decided by the validity study, never by this run's digits correlation
    assert claims["lab_predicts"].verdict == NOT_CHECKABLE and "validity study not found" in claims["lab_predicts"].measured
    study = tmp_path / "validity.json"
    cells = {"series": {"rho": 0.41, "low": 0.05, "high": 0.7, "n": 26},
             "diabetes": {"rho": 0.1, "low": -0.3, "high": 0.45, "n": 26}}
    study.write_text(json.dumps({"benchmarks": ["series", "diabetes"], "seeds": [0, 1, 2],
                                 "correlations": {"per_benchmark": cells,
                                                  "pooled": {"rho": 0.3, "low": 0.02, "high": 0.6, "n": 26}}}))
    parts["validity"] = reproduce.load_validity(study)
    decided = {c.id: c for c in reproduce.build_claims(settings, parts)}["lab_predicts"]
    assert decided.verdict == REPRODUCED and "ρ = +0.30 [+0.02, +0.60] over 26 functions" in decided.measured
    assert "series: +0.41 [+0.05, +0.70]" in decided.measured and "part 5" in decided.measured
    study.write_text(json.dumps({"correlations": {"per_benchmark": cells, "pooled": {**cells["diabetes"]}}}))
    parts["validity"] = reproduce.load_validity(study)
    assert {c.id: c for c in reproduce.build_claims(settings, parts)}["lab_predicts"].verdict == NOT_REPRODUCED
    # a pooled ρ without an interval cannot decide the claim, and the text still renders
    study.write_text(json.dumps({"benchmarks": [], "correlations": {"per_benchmark": {"series": {"rho": 0.4}},
                                                                    "pooled": {"rho": 0.4, "n": 26}}}))
    parts["validity"] = reproduce.load_validity(study)
    undecided = {c.id: c for c in reproduce.build_claims(settings, parts)}["lab_predicts"]
    assert undecided.verdict == NOT_CHECKABLE and "validity study not found" in undecided.measured
    study.write_text("{not json")
    assert reproduce.load_validity(study) is None and reproduce.load_validity(tmp_path / "absent.json") is None
    assert claims["search"].verdict in (REPRODUCED, NOT_REPRODUCED)
    info = {"date": "today", "machine": "test", "load_start": "0", "load_end": "0", "torch": "x", "python": "3",
            "actmine": "0", "wall_seconds": 1.0, "parts_seconds": 1.0, "part_seconds": {"lab": 1.0}, "resumed": [],
            "full_estimate": "n/a"}
    doc = reproduce.write_markdown(tmp_path / "r.md", tmp_path, settings, parts, list(claims.values()), info)
    text = doc.read_text()
    assert "## 4. Transfer" in text and "`cifar10`: DatasetMissing" in text and "out of memory" in text
    assert "def activation_function(x):" in text and "Spearman" in text
    reproduce.plot_transfer(parts["transfer"], tmp_path / "transfer.png")
    reproduce.plot_correlation(parts["analysis"], tmp_path / "correlation.png")
    assert (tmp_path / "transfer.png").stat().st_size > 1000 and (tmp_path / "correlation.png").stat().st_size > 1000


@pytest.mark.parametrize("argv, message", [
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
])
def test_bad_arguments_exit_2_with_a_clear_message(capsys, argv, message, tmp_path):
    code, _, err = run_cli(capsys, "reproduce", "--out-dir", str(tmp_path / "o"), "--doc", str(tmp_path / "d.md"),
                           *argv)
    assert code == 2 and message in err
    assert not (tmp_path / "o").exists()
