"""The blend benchmark (benchmarks/bench_blend.py), short: the validation's choice is read from a
run's rows without the blend's own row, and the comparisons are paired by task and seed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_blend as bench  # noqa: E402


def _row(program_id, fitness, families, name=None):
    return {
        "split": "validation",
        "name": name or f"program {program_id}",
        "program_id": program_id,
        "heldout_fitness": fitness,
        "families": families,
    }


def test_the_choice_is_the_rules_best_without_the_blend_and_the_references_are_the_runs_test_rows(tmp_path):
    tests = [
        {"name": ref, "program_id": None, "suite": suite, "tasks": {"t": [value]}}
        for ref, value in (("relu", 0.0), ("gelu", -0.2), ("gelu_sine", 0.1))
        for suite in ("feynman", "bump")
    ]
    final = {
        "winner": 9,
        "winner_rule": "softmin",
        "blend": {"program_id": 9, "chosen": 3},
        "validation": [
            _row(None, 0.0, {"a": 0.0}, name="relu"),
            _row(3, 0.30, {"a": -0.30, "b": -0.30}),  # balanced: softmin's choice
            _row(4, 0.60, {"a": -1.5, "b": 0.3}),  # the higher mean, one family lost
            _row(9, 0.90, {"a": -0.9, "b": -0.9}),  # the blend: never the choice
        ],
        "test": tests + [{"name": "program 9", "program_id": 9, "suite": "bump", "tasks": {"t": [0.0]}}],
    }
    (tmp_path / "heldout.json").write_text(json.dumps(final))
    _, chosen, references = bench.choice(tmp_path)
    assert chosen["program_id"] == 3
    assert set(references) == set(bench.REFERENCES) and set(references["gelu"]) == {"feynman", "bump"}


def test_comparisons_are_paired_by_task_and_seed_overall_and_per_suite():
    references = {
        "relu": {"s": {"t": [0.0, 0.0]}, "u": {"v": [0.0]}},
        "gelu": {"s": {"t": [-0.2, -0.4]}, "u": {"v": [0.5]}},
        "gelu_sine": {"s": {"t": [0.1, 0.1]}, "u": {"v": [0.1]}},
    }
    entry = {"s": {"t": [-0.5, -0.5]}, "u": {"v": [0.2]}}
    numbers = bench.compare(entry, references)
    # per task: the mean over seeds, then the mean over tasks of the difference
    assert numbers["gelu"] == pytest.approx(((-0.5 + 0.3) + (0.2 - 0.5)) / 2)
    assert numbers["relu"] == pytest.approx((-0.5 + 0.2) / 2)
    assert numbers["gelu/s"] == pytest.approx(-0.2) and numbers["gelu/u"] == pytest.approx(-0.3)


def test_the_interval_over_runs_is_students_t():
    values = [-0.05, -0.17, -0.06, 0.07, -0.15]
    mean, low, high = bench.t_interval(values)
    expected = stats.t.interval(0.95, len(values) - 1, loc=sum(values) / 5, scale=stats.sem(values))
    assert mean == pytest.approx(sum(values) / 5) and (low, high) == pytest.approx(expected)


def test_one_run_has_no_interval_and_says_so():
    mean, low, high = bench.t_interval([0.25])
    assert bench.interval_text(mean, low, high) == "+0.250 (one run: no interval)"
    assert bench.interval_text(-0.05, -0.1, 0.0) == "-0.050 [-0.100, +0.000]"


CHOICE = "def activation_function(x):\n    return F.gelu(x) + 0.1 * torch.tanh(x)\n"
CURVE = {"x": [-2.0, -1.0, 0.0, 1.0, 2.0], "y": [-0.05, -0.16, 0.0, 0.84, 1.95]}  # GELU-like, not mirrored


def _function(source):
    """The blend's function through the checked namespace (the test wrote the choice: no run's program runs)."""
    from actmine.candidate.source import compile_candidate

    return compile_candidate(source)


def test_the_ways_are_the_choice_its_blends_with_each_partner_and_their_equal_mix():
    import torch

    from actmine.activations import get

    got = bench.ways(CHOICE, CURVE, [0.5], ["gelu", "gelu_sine"])
    assert list(got) == ["choice", "blend 0.5", "blend 0.5 gelu_sine", "mix"]
    x = torch.linspace(-6, 6, 101)
    choice, gelu, gelu_sine = _function(CHOICE)(x), get("gelu")(x), get("gelu_sine")(x)
    assert torch.allclose(_function(got["blend 0.5"])(x), (choice + gelu) / 2, atol=1e-6)
    assert torch.allclose(_function(got["blend 0.5 gelu_sine"])(x), (choice + gelu_sine) / 2, atol=1e-6)
    assert torch.allclose(_function(got["mix"])(x), (choice + gelu + gelu_sine) / 3, atol=1e-6)
    assert list(bench.ways(CHOICE, CURVE, [0.25, 0.75], ["gelu"])) == ["choice", "blend 0.25", "blend 0.75"]


def test_a_choice_the_language_cannot_blend_leaves_only_the_choice(capsys):
    source = "F = 2\ndef activation_function(x):\n    return F * x\n"  # binds F, which GELU's expression reads
    assert list(bench.ways(source, None, [0.5], ["gelu", "gelu_sine"])) == ["choice"]
    assert "cannot be blended" in capsys.readouterr().out


def test_kind_groups_are_paired_by_task_and_the_issue_13_group_adds_the_bump_suite():
    kind_of = {"p1": "expression/periodic", "s1": "expression/saturating", "k1": "expression/kinked"}
    kind_of |= {"h1": "harmonic", "q1": "polynomial"}
    entry = {
        bench.KIND_LABS[0]: {"p1": [-1.0, -0.6], "s1": [0.4, 0.4], "k1": [5.0, 5.0]},  # k1 clips at +3
        bench.KIND_LABS[1]: {"h1": [0.0, 0.2], "q1": [1.0, 1.0]},
        "expression-bump": {"b1": [-0.3, -0.3, -0.3]},
        "feynman": {"f1": [2.0, 2.0, 2.0]},
    }
    mine = bench.task_scores(entry, kind_of, ["expression-bump", "feynman"])
    assert mine["expression/kinked|k1"] == 3.0 and mine["expression/periodic|p1"] == pytest.approx(-0.8)
    reference = {key: 0.5 for key in mine}
    groups = bench.kind_groups(kind_of)
    assert groups["search kinds"] == set(kind_of.values())
    search = [-0.8, 0.4, 3.0, 0.1, 1.0]
    assert bench.group_gap(mine, reference, groups["search kinds"]) == pytest.approx(sum(search) / 5 - 0.5)
    issue = [-0.8, 0.4, 3.0, 0.1, -0.3]  # periodic, saturating, kinked, harmonic, bump; not polynomial, not feynman
    assert bench.group_gap(mine, reference, groups["issue 13's kinds"]) == pytest.approx(sum(issue) / 5 - 0.5)
    row = bench.compare_kinds(mine, {ref: reference for ref in bench.REFERENCES}, groups)
    assert set(row) == {f"{g} vs {ref}" for g in groups for ref in bench.REFERENCES}


def test_kind_groups_refuse_a_search_that_lost_a_kind_of_issue_13():
    with pytest.raises(SystemExit, match="expression/kinked"):
        bench.kind_groups({"p": "expression/periodic", "s": "expression/saturating", "h": "harmonic"})


def test_compare_reads_only_the_references_suites():
    references = {ref: {"s": {"t": [0.0]}} for ref in bench.REFERENCES}
    numbers = bench.compare({"s": {"t": [-0.5]}, bench.KIND_LABS[0]: {"p1": [1.0]}}, references)
    assert numbers["gelu"] == pytest.approx(-0.5) and set(numbers) == {*bench.REFERENCES, "gelu/s"}


def test_a_tie_within_float_rounding_meets_no_bar():
    assert bench.better(-0.01) and not bench.better(-1e-9) and not bench.better(0.0) and not bench.better(0.02)


def _way(unseen: tuple[float, float, float], kinds: tuple[float, float, float] | None = None) -> dict:
    row = dict(zip(bench.REFERENCES, unseen))
    if kinds is not None:
        row.update({f"issue 13's kinds vs {ref}": v for ref, v in zip(bench.REFERENCES, kinds)})
        row.update({f"search kinds vs {ref}": v / 2 for ref, v in zip(bench.REFERENCES, kinds)})
    return row


def test_both_bars_need_every_reference_beaten_on_both_groups_and_a_tie_is_not_a_win():
    assert bench.bars_met(_way((-0.2, -0.01, -0.2), (-0.4, -0.05, -0.01))) == (True, True)
    assert bench.bars_met(_way((-0.2, -0.01, -0.2), (-0.4, -0.05, +0.01))) == (True, False)
    assert bench.bars_met(_way((-0.2, 0.0, -0.2), (-0.4, -0.05, -0.01))) == (False, True)  # tie with GELU
    assert bench.bars_met(_way((-0.2, -0.01, -0.2))) == (True, False)  # no kinds scored: that bar not met


def test_against_pairs_each_way_by_run_and_says_which_it_cannot_compare(capsys):
    now = {
        "choice": [_way((0.1, 0.2, 0.0), (0.0, 0.1, 0.2)), _way((0.0, 0.1, 0.1), (-0.1, -0.1, 0.1))],
        "mix": [_way((0.0, 0.0, 0.0), (0.0, 0.0, 0.0))],
    }
    before = {"choice": [_way((0.3, 0.1, 0.0), (0.0, 0.2, 0.2)), _way((0.0, 0.3, 0.1), (-0.1, 0.1, 0.1))]}
    bench.report_against(now, before)
    out = capsys.readouterr().out
    mean, low, high = bench.t_interval([0.2 - 0.1, 0.1 - 0.3])  # this call − the other, per run (vs GELU)
    assert f"choice     all unseen {bench.interval_text(mean, low, high)}" in out
    mean, low, high = bench.t_interval([0.1 - 0.2, -0.1 - 0.1])
    assert f"issue 13's kinds {bench.interval_text(mean, low, high)}" in out
    assert "mix        not in the --against summary for 1 runs: not compared" in out
