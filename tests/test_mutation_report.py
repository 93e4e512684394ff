"""benchmarks/mutation.py's own arithmetic: which module a mutant belongs to, the scores, the
reasons quoted from the equivalents file, merging reports (mutmut itself is not run here)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def mutation(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("mutation_script", ROOT / "benchmarks" / "mutation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    equivalent = tmp_path / "equivalent.toml"
    equivalent.write_text('["actmine/evolve/selection.py"]\n"actmine.evolve.selection.x_bin__mutmut_3" = "same bins"\n')
    monkeypatch.setattr(module, "EQUIVALENT", equivalent)
    return module


def _row(killed, survivors):
    statuses = [s[1] for s in survivors]
    row = {
        "killed": killed,
        "survived": statuses.count("survived"),
        "no tests": statuses.count("no tests"),
        "timeout": statuses.count("timeout"),
        "other": 0,
        "survivors": [{"name": n, "status": st, "diff": "x"} for n, st in survivors],
    }
    row["score"] = killed / (killed + len(survivors))
    return row


def test_a_mutant_name_maps_to_its_module_for_functions_and_methods(mutation):
    modules = ["actmine/evolve/selection.py", "actmine/evolve/mutators/spend.py"]
    assert mutation.module_of("actmine.evolve.selection.x_cell_of__mutmut_4", modules) == modules[0]
    assert mutation.module_of("actmine.evolve.mutators.spend.xǁSpendǁsettle__mutmut_16", modules) == modules[1]
    assert mutation.module_of("actmine.evolve.database.x_add__mutmut_1", modules) is None


def test_the_report_scores_quotes_reasons_and_lists_what_was_not_measured(mutation, tmp_path):
    report = tmp_path / "mutation.md"
    rows = {
        "actmine/evolve/selection.py": _row(
            7,
            [
                ("actmine.evolve.selection.x_bin__mutmut_3", "survived"),
                ("actmine.evolve.selection.x_bin__mutmut_9", "timeout"),
                ("actmine.evolve.selection.x_rank__mutmut_1", "no tests"),
            ],
        )
    }
    mutation.write_report(rows, report)
    text = report.read_text()
    # 10 mutants, 7 killed: 70.0%; one explained survivor left out: 7 / 9 = 77.8%
    assert "| `actmine/evolve/selection.py` | 10 | 7 | 1 | 1 | 1 | 1 | 70.0% | 77.8% |" in text
    assert "`actmine.evolve.selection.x_bin__mutmut_3` (survived): `x`: same bins" in text
    assert "`actmine.evolve.selection.x_bin__mutmut_9` (timeout): `x`: not yet explained" in text
    assert "`actmine/lab/tasks.py`" in text.split("Not measured in this report")[1]
    assert json.loads(report.with_suffix(".json").read_text())["actmine/evolve/selection.py"]["killed"] == 7


def test_a_later_report_of_one_module_keeps_the_others_and_merge_runs_nothing(mutation, tmp_path):
    report = tmp_path / "mutation.md"
    mutation.write_report(
        {"actmine/lab/estimate.py": _row(9, [("actmine.lab.estimate.x_of__mutmut_1", "survived")])}, report
    )
    mutation.write_report({"actmine/evolve/selection.py": _row(4, [])}, report)
    merged = json.loads(report.with_suffix(".json").read_text())
    assert set(merged) == {"actmine/lab/estimate.py", "actmine/evolve/selection.py"}
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"actmine/lab/fitness.py": _row(3, []), "not/core.py": _row(1, [])}))
    assert mutation.main(["--merge", str(other), "--report", str(report)]) == 0
    merged = json.loads(report.with_suffix(".json").read_text())
    assert set(merged) == {"actmine/lab/estimate.py", "actmine/evolve/selection.py", "actmine/lab/fitness.py"}


def test_an_unknown_module_is_refused_with_the_known_ones(mutation, capsys):
    assert mutation.main(["actmine/nowhere.py"]) == 2
    err = capsys.readouterr().err
    assert "not a core module: actmine/nowhere.py" in err and "actmine/lab/fitness.py" in err
