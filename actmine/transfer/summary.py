"""The summary of a transfer run: per (activation, benchmark), the raw score's mean ± std over seeds
and the log-ratio against ReLU's, paired by seed.

    log_ratio = mean over common seeds of clip(ln(error_act / error_relu), ±LOG_RATIO_CLIP),
    error = 1 − score, floored at ERROR_FLOOR

for a benchmark whose scores all lie in [0, 1] (*bounded*: accuracies, AUCs); for any other
benchmark −ln(score_act / score_relu) (higher-is-better positive scores). Negative beats ReLU, the
sign of the lab's `ood_log_ratio`. Pure arithmetic on finished results: no training, no processes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .jobs import TransferResult

REFERENCE = "relu"  # the activation every other one is compared with
ERROR_FLOOR = 1e-6  # errors (1 − score) below this count as this (ln 0 is −∞)
LOG_RATIO_CLIP = 3.0  # each seed's log-ratio is clipped to ±3, as in the lab's score


def log_ratio(score: float, reference: float, bounded: bool = True) -> float:
    """One seed's clipped log-ratio of a higher-is-better ``score`` against ReLU's ``reference``.

    ``bounded`` (scores in [0, 1]): ln((1 − score) / (1 − reference)), errors floored at
    `ERROR_FLOOR`; otherwise −ln(score / reference) (positive scores; NaN when either is not).
    Clipped to ±`LOG_RATIO_CLIP`. Negative: better than ReLU.
    """
    if bounded:
        value = math.log(max(1.0 - score, ERROR_FLOOR) / max(1.0 - reference, ERROR_FLOOR))
    else:
        if score <= 0 or reference <= 0:
            return math.nan
        value = -math.log(score / reference)
    return max(-LOG_RATIO_CLIP, min(LOG_RATIO_CLIP, value))


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """The mean and the sample standard deviation (n − 1) of ``values``: (None, None) for none,
    std None for one."""
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _as_result(item: "TransferResult | Mapping[str, Any]") -> "TransferResult":
    """A result as is; a mapping validated by `TransferResult.from_dict`."""
    if isinstance(item, Mapping):
        return TransferResult.from_dict(item)
    return item


def summarise(results: Iterable["TransferResult | Mapping[str, Any]"]) -> list[dict[str, Any]]:
    """One row per (activation, benchmark), in order of first appearance.

    Row keys: ``activation``, ``benchmark``, ``metric``, ``n`` (seeds scored), ``failed``,
    ``mean`` and ``std`` (sample standard deviation, None below two seeds) of the score,
    ``log_ratio_vs_relu`` (mean over the seeds that both this activation and ReLU scored of
    `log_ratio`) and ``log_ratio_std`` (their sample std). None where there is nothing to compute
    (no ReLU result on the benchmark, no common seed). A later result for the same (activation,
    benchmark, seed) replaces an earlier one. A benchmark is bounded when every activation's
    scores on it lie in [0, 1].
    """
    cells: dict[tuple[str, str], dict[int, TransferResult]] = {}
    for item in results:
        result = _as_result(item)
        cells.setdefault((result.activation, result.benchmark), {})[result.seed] = result
    bounded: dict[str, bool] = {}
    for (_, benchmark), by_seed in cells.items():
        scores = [r.score for r in by_seed.values() if r.ok]
        bounded[benchmark] = bounded.get(benchmark, True) and all(0.0 <= s <= 1.0 for s in scores)
    rows = []
    for (activation, benchmark), by_seed in cells.items():
        ok = {seed: r.score for seed, r in sorted(by_seed.items()) if r.ok}
        mean, std = _mean_std(list(ok.values()))
        reference = {seed: r.score for seed, r in cells.get((REFERENCE, benchmark), {}).items() if r.ok}
        ratios = [log_ratio(ok[s], reference[s], bounded[benchmark]) for s in ok if s in reference]
        ratios = [r for r in ratios if math.isfinite(r)]
        ratio, ratio_std = _mean_std(ratios)
        metric = next((r.metric for r in by_seed.values() if r.metric), "")
        rows.append(
            {
                "activation": activation,
                "benchmark": benchmark,
                "metric": metric,
                "n": len(ok),
                "failed": len(by_seed) - len(ok),
                "mean": mean,
                "std": std,
                "log_ratio_vs_relu": ratio,
                "log_ratio_std": ratio_std,
            }
        )
    return rows
