"""The step-count study (benchmarks/bench_steps.py), its parts: a lab with other steps keeps its
tasks, seeds and every other setting, and a kind's row gives the effect size and the compute to
resolve it from the paired differences."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_steps as bench  # noqa: E402

from actmine.lab.ensemble import TrainingProtocol  # noqa: E402
from actmine.lab.fitness import Lab  # noqa: E402


def test_a_lab_with_other_steps_changes_nothing_else(tmp_path):
    lab = Lab("lab", protocol=TrainingProtocol(steps=50), seeds=2, cache_dir=tmp_path, fused=False)
    longer = bench.with_steps(lab, 200)
    assert longer.protocol.steps == 200 and lab.protocol.steps == 50
    assert longer.to_spec() | {"protocol": None} == lab.to_spec() | {"protocol": None}
    assert {k: v for k, v in longer.protocol.to_dict().items() if k != "steps"} == {
        k: v for k, v in lab.protocol.to_dict().items() if k != "steps"
    }
    assert longer.cache_dir == lab.cache_dir


def test_a_kinds_row_is_the_effect_size_and_the_compute_to_resolve_it():
    differences = [0.3, -0.1, 0.5, 0.1, 0.2]
    row = bench.difference_row(differences, seconds_per_task=0.5)
    mean, sd = np.mean(differences), np.std(differences, ddof=1)
    assert row["n"] == 5 and math.isclose(row["mean"], mean) and math.isclose(row["sd"], sd)
    assert math.isclose(row["d"], mean / sd)
    # two standard errors: 2·sd/√n = |mean| at n = (2/d)² tasks, each 0.5 core-seconds
    n = (2 / row["d"]) ** 2
    assert math.isclose(2 * sd / math.sqrt(n), abs(mean)) and math.isclose(row["core_s"], 0.5 * n)
    assert bench.difference_row([0.0, 0.0, 0.0], 1.0)["core_s"] == math.inf  # nothing to resolve
