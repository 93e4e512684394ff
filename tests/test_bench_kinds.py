"""The kinds benchmark (benchmarks/bench_kinds.py), short: one pool per kind the search draws, on
indexes no other side draws; gaps to GELU paired by task, decided by the worst kind; and the score
journal (bench_winner_rules.CandidateScores) that scores a program only on the labs it lacks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_kinds as bench  # noqa: E402
import bench_validation_size  # noqa: E402
from bench_winner_rules import CandidateScores, source_digest  # noqa: E402

from actmine.config import Config  # noqa: E402
from actmine.evolve.search_tasks import split_spec  # noqa: E402
from actmine.evolve.seeds import SEED_EXPRESSIONS, program  # noqa: E402
from actmine.lab.distribution import PoolSpec, check_split  # noqa: E402
from actmine.lab.ensemble import TrainingProtocol  # noqa: E402
from actmine.lab.fitness import Lab  # noqa: E402
from actmine.lab.tasks import Suite, feynman, polynomial  # noqa: E402


def test_each_operator_group_and_each_other_generator_is_a_kind_on_indexes_no_other_side_draws():
    config = Config()
    search = split_spec(config).search
    pools = bench.kind_pools(config, size=40)
    groups = next(s.params["operators"] for s in search if s.generator == "expression")
    others = [s.generator for s in search if s.generator != "expression"]
    assert list(pools) == [f"expression/{g}" for g in groups] + others
    for group in groups:
        assert pools[f"expression/{group}"]["params"]["operators"] == [group]
    assert {p["start"] for p in pools.values()} == {bench.KINDS_START}
    assert {p["size"] for p in pools.values()} == {40} and {tuple(p["seeds"]) for p in pools.values()} == {(0, 1)}
    check_split(split_spec(config.with_overrides({"tasks.validation": list(pools.values())})))  # not the search's
    large = bench_validation_size.large_validation(config, scale=4, min_size=120)
    earlier = [*split_spec(config).validation, *(PoolSpec.from_dict(p) for p in large)]
    assert all(spec.index_range().stop <= bench.KINDS_START for spec in earlier)  # nor any validation's


def test_gaps_are_paired_by_task_clipped_as_the_lab_scores_and_decided_by_the_worst_kind():
    kind_of = {"a": "smooth", "b": "smooth", "c": "bumpy"}
    gelu = {"a": [0.0, 0.2], "b": [-0.5], "c": [4.0]}
    generalist = {"a": [-0.1, 0.1], "b": [-0.7], "c": [2.5]}  # better on every kind
    specialist = {"a": [-2.0, -2.0], "b": [-2.0], "c": [3.5]}  # far better on one, worse on the other
    gaps = bench.kind_gaps(generalist, gelu, kind_of)
    assert gaps == pytest.approx({"smooth": ((0.0 - 0.1) + (-0.7 + 0.5)) / 2, "bumpy": 2.5 - 3.0})  # 4.0 clips to 3
    assert bench.worst_gap(gaps) < 0
    specialist_gaps = bench.kind_gaps(specialist, gelu, kind_of)
    assert specialist_gaps["bumpy"] == 0.0  # 3.5 and 4.0 both clip to the lab's bound
    assert bench.worst_gap(specialist_gaps) == 0.0 and specialist_gaps["smooth"] < gaps["smooth"]


def test_unseen_gains_are_fitness_minus_gelu_over_all_tasks_and_per_suite():
    gelu = {"feynman": {"t": [0.2], "u": [0.0]}, "bump": {"t": [-1.0]}}
    entry = {"feynman": {"t": [0.0], "u": [0.1]}, "bump": {"t": [-1.6]}}
    gains = bench.unseen_gains(entry, gelu, ["feynman", "bump"])
    assert gains["feynman"] == pytest.approx(-(0.05) + 0.1)
    assert gains["bump"] == pytest.approx(0.6)
    assert gains["all"] == pytest.approx(-(0.0 + 0.1 - 1.6) / 3 + (0.2 + 0.0 - 1.0) / 3)


@pytest.fixture(scope="module")
def two_labs(tmp_path_factory):
    protocol = TrainingProtocol(steps=6, n_train=64, n_eval=32, batch_size=16, hidden=16)
    cache = tmp_path_factory.mktemp("cache")
    return {
        "first": Lab(Suite("first", (polynomial(dim=1, seed=0),), (0,)), protocol=protocol, cache_dir=cache),
        "second": Lab(Suite("second", (feynman("I.14.3"),), (0,)), protocol=protocol, cache_dir=cache),
    }


def test_a_journal_entry_that_lacks_a_lab_is_scored_on_that_lab_only(tmp_path, two_labs):
    journal = tmp_path / "scores.json"
    kept = {"first": {"kept task": [0.25]}}  # not what training gives: it must survive untouched
    journal.write_text(json.dumps({"run#1": kept, "run#9": {"other": {}}}))
    gelu = program(SEED_EXPRESSIONS["gelu"])
    with CandidateScores(journal, 1, two_labs) as scorer:
        submitted = []
        submit = scorer.pool.submit
        scorer.pool.submit = lambda source, lab, label: submitted.append(lab.suite.name) or submit(source, lab, label)
        entry = scorer.score_source("run#1", gelu)
        again = scorer.score_source("run#2", gelu)  # the same source under another key: nothing trained
    assert submitted == ["second"]
    assert entry["first"] == kept["first"] and list(entry["second"]) == [two_labs["second"].suite.tasks[0].name]
    assert again == entry
    on_disk = json.loads(journal.read_text())
    assert on_disk["run#1"] == on_disk["run#2"] == entry and on_disk["run#9"] == {"other": {}}


def test_the_summary_prints_a_candidates_source_escaped(capsys):
    hostile = "def activation_function(x):\n    return torch.relu(x)  # \x1b]0;title\x07\x1b[2J\n"
    rows = [("run#3", {"smooth": 0.1, "bumpy": -0.2}, {"all": 0.01, "feynman": -0.1})]
    rows.append(("run#4", {"smooth": 0.3, "bumpy": 0.2}, {"all": -0.2, "feynman": -0.3}))
    summary = {
        "rows": rows,
        "ρ": [{"all": 0.5, "feynman": 0.1}],
        "worst kind": [rows[0][2]],
        "mean over kinds": [rows[0][2]],
    }
    bench.report_summary(
        summary, {"run#3": hostile, "run#4": "def activation_function(x):\n    return x\n"}, ["feynman"]
    )
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b]0;title\\x07" in out  # shown, not obeyed
    assert "2 distinct programs, 0 better than GELU on every kind" in out


def test_a_journal_entry_scored_for_another_source_at_the_same_key_is_scored_again(tmp_path, two_labs, capsys):
    journal = tmp_path / "scores.json"
    relu, gelu = program(SEED_EXPRESSIONS["relu"]), program(SEED_EXPRESSIONS["gelu"])
    with CandidateScores(tmp_path / "reference.json", 1, two_labs) as scorer:
        trained = scorer.score_source("reference#1", gelu)  # what scoring GELU gives
    with CandidateScores(journal, 1, two_labs) as scorer:
        scorer.score_source("runs/a#7", relu)
    stale = {"first": {"stale task": [0.5]}, "second": {"stale task": [0.5]}}
    journal.write_text(json.dumps({"runs/a#7": stale, "legacy#1": stale}))  # ReLU's place, and a legacy entry
    with CandidateScores(journal, 1, two_labs) as scorer:
        assert scorer.score_source("runs/a#7", relu) == stale  # the same source: the journal is trusted
        reused = scorer.score_source("runs/a#7", gelu)  # the directory now holds another program
        assert scorer.score_source("legacy#1", gelu) == stale  # no digest recorded: kept
    assert reused == trained != stale
    assert "journal entry runs/a#7 was scored for another source" in capsys.readouterr().out
    assert json.loads(journal.read_text())["runs/a#7"] == trained
    digests = json.loads((tmp_path / "scores.json.sources.json").read_text())
    assert digests["runs/a#7"] == digests["legacy#1"] == source_digest(gelu) != source_digest(relu)
