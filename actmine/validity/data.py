"""From the study's raw results to the arrays its statistics take (`stats`).

- lab: per function its task log-ratios (``lab.jsonl`` records, `labscore.lab_record`), one column
  per task of every lab (named ``SUITE/TASK``), and each column's lab group: the suite's name when
  all its tasks are of one family (``feynman``, ``expression-bump``), else ``SUITE:FAMILY``
  (``lab-heldout:polynomial``);
- downstream: per benchmark and function the per-seed log-ratio vs ReLU on the same seed,
  clip(ln(error / ReLU's error), ±3) (`actmine.transfer.runner.log_ratio`, the formula the runner's
  summary averages), computed from the transfer results.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["downstream_log_ratios", "downstream_matrix", "lab_matrix"]


def lab_matrix(records: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, list[str], list[str]]:
    """``(matrix, columns, groups)``: rows follow ``records``, columns are the tasks of every
    record (first appearance order), NaN where a record lacks a task (a refused function)."""
    columns: dict[str, str] = {}
    suite_families: dict[str, set[str]] = {}
    for record in records:
        for suite, result in record["suites"].items():
            for task in result["tasks"]:
                columns.setdefault(f"{suite}/{task['name']}", suite)
                suite_families.setdefault(suite, set()).add(task["family"])
    families = {
        f"{suite}/{task['name']}": task["family"]
        for record in records
        for suite, result in record["suites"].items()
        for task in result["tasks"]
    }
    names = list(columns)
    index = {name: i for i, name in enumerate(names)}
    matrix = np.full((len(records), len(names)), np.nan)
    for row, record in enumerate(records):
        for suite, result in record["suites"].items():
            for task in result["tasks"]:
                matrix[row, index[f"{suite}/{task['name']}"]] = float(task["log_ratio"])
    groups = [columns[c] if len(suite_families[columns[c]]) == 1 else f"{columns[c]}:{families[c]}" for c in names]
    return matrix, names, groups


def downstream_log_ratios(results: Iterable[Any], reference: str = "relu") -> dict[str, dict[str, dict[int, float]]]:
    """``{benchmark: {activation: {seed: log-ratio vs reference}}}`` from transfer results
    (`TransferResult`s); ok results only, seeds the reference also scored. A benchmark's scores
    are taken as bounded (error = 1 − score) when they all lie in [0, 1], as the runner's summary does."""
    from ..transfer.runner import log_ratio

    scores: dict[str, dict[str, dict[int, float]]] = {}
    for result in results:
        if result.ok:
            scores.setdefault(result.benchmark, {}).setdefault(result.activation, {})[result.seed] = result.score
    out: dict[str, dict[str, dict[int, float]]] = {}
    for benchmark, by_activation in scores.items():
        bounded = all(0.0 <= s <= 1.0 for seeds in by_activation.values() for s in seeds.values())
        base = by_activation.get(reference, {})
        out[benchmark] = {}
        for activation, seeds in by_activation.items():
            ratios = {seed: log_ratio(score, base[seed], bounded) for seed, score in seeds.items() if seed in base}
            out[benchmark][activation] = {s: v for s, v in sorted(ratios.items()) if math.isfinite(v)}
    return out


def downstream_matrix(
    ratios: Mapping[str, Mapping[int, float]], names: Sequence[str], seeds: Sequence[int]
) -> np.ndarray:
    """(functions × seeds) log-ratios of one benchmark; NaN where missing."""
    matrix = np.full((len(names), len(seeds)), np.nan)
    for row, name in enumerate(names):
        for column, seed in enumerate(seeds):
            value = ratios.get(name, {}).get(seed)
            if value is not None:
                matrix[row, column] = value
    return matrix
