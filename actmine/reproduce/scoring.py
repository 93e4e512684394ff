"""Scoring trusted registry activations in the lab, seed by seed (program files are only ever run in
the sandbox: see `parts.part_search`).

A function's score on one training seed is the lab's `ood_log_ratio` computed on that seed alone;
an entry holds the official score, the per-seed scores and their 95% intervals, overall and per
family. The parts (`parts`) build their results from these entries.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from .rules import mean_ci, paired_ci
from .settings import Settings


def _make_lab(settings: Settings, suite: Any, keep_seeds: bool = False, allow_batch_dependent: bool = True):
    """The lab of a part: ``suite`` with seeds 0..settings.seeds-1 (or its own with ``keep_seeds``),
    built as every lab is (`Config.build_lab`) from a config with the settings' steps and budget."""
    from ..config import Config
    from ..lab.tasks import get_suite

    config = Config.from_dict(
        {
            "lab": {"steps": settings.steps} if settings.steps else {},
            "probes": {"allow_batch_dependent": allow_batch_dependent},
        },
        source="reproduce settings",
    )
    chosen = get_suite(suite)
    return config.build_lab(chosen if keep_seeds else chosen.with_seeds(settings.seeds), device=settings.device)


def _per_model_vmap(activation: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """A batch-statistics activation applied to each model's slice of the stacked ensemble on its
    own (what `ensemble.per_model_activation` does with a loop), vectorised with `torch.func.vmap`."""

    def apply(h: torch.Tensor) -> torch.Tensor:
        return torch.func.vmap(activation)(h)

    return apply


def _train(activation: Callable, lab, pointwise: bool, in_batches: bool):
    """Train the lab's ensemble; a non-pointwise activation sees one model's batch at a time and is
    scored either on each model's whole evaluation batch (``in_batches``) or one example at a time
    (as `Lab.evaluate` scores it)."""
    from ..lab.ensemble import train_ensemble

    if pointwise:
        return train_ensemble(activation, lab.workload)
    try:
        return train_ensemble(_per_model_vmap(activation), lab.workload, pointwise=True, per_example=not in_batches)
    except Exception:  # code that vmap cannot trace: the ensemble's own per-model loop (same numbers)
        return train_ensemble(activation, lab.workload, pointwise=False, per_example=not in_batches)


def score_matrix(lab, ood_error: torch.Tensor) -> list[list[float]]:
    """Per (task, seed) clipped ln(OOD error ÷ ReLU's): a tasks × seeds list of lists."""
    ratios = lab.log_ratios(ood_error).clamp(-lab.log_ratio_clip, lab.log_ratio_clip)
    seeds = len(lab.suite.seeds)
    return ratios.reshape(len(lab.suite.tasks), seeds).tolist()


def _seed_scores(
    lab, families: Sequence[str], matrix: list[list[float]] | None, per_seed_evaluations: Sequence[Any] | None
) -> tuple[list[float], dict[str, list[float]]]:
    """The per-seed scores, overall and ``{family: per-seed scores}``: from the tasks × seeds
    ``matrix``, or from one single-seed evaluation per seed (program files, scored in the sandbox)."""
    if matrix is not None:
        seeds = len(lab.suite.seeds)
        per_seed = [sum(row[s] for row in matrix) / len(matrix) for s in range(seeds)]
        by_family = {}
        for family in families:
            rows = [row for row, task in zip(matrix, lab.suite.tasks) if task.family == family]
            by_family[family] = [sum(row[s] for row in rows) / len(rows) for s in range(seeds)]
    else:
        per_seed = [e.ood_log_ratio for e in per_seed_evaluations]
        by_family = {f: [e.by_family()[f]["log_ratio"] for e in per_seed_evaluations] for f in families}
    return per_seed, by_family


def _entry(
    lab,
    name: str,
    matrix: list[list[float]] | None,
    official: float | None,
    tasks: list | None,
    seconds: float,
    pointwise: bool | None,
    error: dict | None = None,
    per_seed_evaluations: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """One function on one suite: the official score, the per-seed scores and their intervals,
    overall and per family."""
    entry: dict[str, Any] = {
        "name": name,
        "ok": error is None,
        "error": error,
        "seconds": round(seconds, 3),
        "pointwise": pointwise,
    }
    if error is not None:
        return entry
    families = sorted({t.family for t in lab.suite.tasks})
    per_seed, by_family = _seed_scores(lab, families, matrix, per_seed_evaluations)
    from ..lab.fitness import geometric_mean

    geo = {}
    for family in families:
        errors = [t.ood_error for t in tasks if t.family == family]
        geo[family] = geometric_mean(errors) if errors else None
    entry.update(
        {
            "ood_log_ratio": official,
            "fitness": None if official is None else 0.0 - official,
            "per_seed": per_seed,
            "ci": mean_ci(per_seed),
            "families": {
                f: {"per_seed": by_family[f], "ci": mean_ci(by_family[f]), "ood_error": geo[f]} for f in families
            },
            "max_id_error": max(t.id_error for t in tasks),
        }
    )
    return entry


def score_activation(
    lab, activation: Callable, name: str, in_batches: bool = False, probe: dict | None = None
) -> dict[str, Any]:
    """A trusted activation on ``lab``: probes (batch dependence allowed), training, the lab's
    score and the per-seed scores. Non-finite training is an entry with ``ok`` False."""
    from ..candidate import probes

    started = time.perf_counter()
    try:
        probe = probe or probes.run_probes(activation, dtype=lab.protocol.torch_dtype, budget=lab.budget)
    except probes.ProbeFailure as failure:
        return _entry(
            lab,
            name,
            None,
            None,
            None,
            time.perf_counter() - started,
            None,
            {"code": failure.code, "message": str(failure), "stage": "probes"},
        )
    pointwise = bool(probe["pointwise"])
    result = _train(activation, lab, pointwise, in_batches)
    if result.non_finite:
        return _entry(
            lab,
            name,
            None,
            None,
            None,
            time.perf_counter() - started,
            pointwise,
            {"code": "non_finite", "message": f"non-finite on {len(result.non_finite)} models", "stage": "train"},
        )
    official, tasks = lab.score(result)
    return _entry(
        lab, name, score_matrix(lab, result.ood_error), official, tasks, time.perf_counter() - started, pointwise
    )


def _add_paired(entries: Mapping[str, dict[str, Any]], against: str, key: str) -> None:
    base = entries.get(against)
    for entry in entries.values():
        if base and base.get("ok") and entry.get("ok") and len(entry["per_seed"]) == len(base["per_seed"]):
            entry[key] = paired_ci(entry["per_seed"], base["per_seed"])
        else:
            entry[key] = None
