"""The validity-suites benchmark (benchmarks/bench_validity_suites.py), short: it rebuilds the committed
study's functions and downstream numbers exactly, so a new lab suite is correlated with the same data."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_validity_suites as bench  # noqa: E402

STUDY = Path(__file__).resolve().parent.parent / "validity"


def test_the_study_functions_are_rebuilt_as_the_study_scored_them():
    functions, entries = bench.study_functions(STUDY)
    document = json.loads((STUDY / "validity.json").read_text())
    assert [f.name for f in functions] == [e["name"] for e in document["functions"] if e.get("downstream")]
    assert len(functions) == document["counts"]["in_correlations"]
    by_name = {f.name: f for f in functions}
    assert by_name["gelu_sine"].trusted and by_name["gelu_sine"].origin == "paper"
    winner = by_name["winner_search-default"]
    assert not winner.trusted and "def activation_function" in winner.source  # read as data, checked
    assert entries["relu"]["origin"] == "library"


def test_downstream_matrices_hold_the_study_log_ratios_by_function_and_seed():
    functions, entries = bench.study_functions(STUDY)
    names = [f.name for f in functions]
    matrices = bench.downstream(entries, names)
    assert set(matrices) == {"series", "diabetes", "digits", "clrs"}
    for benchmark, matrix in matrices.items():
        assert matrix.shape == (len(names), 3)
        row = names.index("gelu")
        recorded = entries["gelu"]["downstream"][benchmark]
        assert np.allclose(matrix[row], [recorded["log_ratios"][str(s)] for s in range(3)])
        # the study's downstream fitness is minus the mean over seeds
        assert np.isclose(-matrix[row].mean(), recorded["fitness"])
    assert np.all(matrices["series"][names.index("relu")] == 0)
