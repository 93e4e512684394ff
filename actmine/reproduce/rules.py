"""The reproduction's verdict rules and the small statistics they use.

Every claim of `actmine reproduce` gets its verdict from one of the `rule_*` functions below: pure
functions of measured numbers that return ``(verdict, one line of why)``, the verdict one of
`REPRODUCED`, `NOT_REPRODUCED` and `NOT_CHECKABLE`. Kept apart from the runs that measure the numbers
(`actmine.reproduce`) so that each rule can be read, and tested at its boundaries, on its own.

Statistics: 95% Student-t intervals over training seeds (`mean_ci`, paired by seed in `paired_ci`)
and Spearman's rank correlation with ties averaged (`spearman`) and its one-sided permutation
p-value (`spearman_p_value`).
"""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
NOT_CHECKABLE = "not checkable here"

LAB_SECONDS_LIMIT = 10.0  # "seconds per evaluation"

SHORT = {
    "relu": "ReLU",
    "gelu": "GELU",
    "gelu_sine": "GELUSine",
    "gelu_sinc_perturbation": "GSP",
    "gmtu": "GMTU",
    "turbulent": "Turbulent",
    "silu": "SiLU",
    "mish": "Mish",
    "snake": "Snake",
    "search_winner": "search winner",
}


def short(name: str) -> str:
    """The display name of a function (its registry name when it has none)."""
    return SHORT.get(name, name)


# ------------------------------------------------------------------------------------------------
# Statistics
# ------------------------------------------------------------------------------------------------

# Two-sided 95% quantiles of Student's t (the 0.975 quantile) for 1..30 degrees of freedom.
_T975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)
_Z975 = 1.959963984540054


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom: a table up to 30, then the
    Cornish-Fisher expansion around the normal quantile (error < 1e-3 there)."""
    if df < 1:
        raise ValueError("the t distribution needs at least one degree of freedom")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_ci(values: Sequence[float]) -> dict[str, Any]:
    """Mean and 95% t-interval of ``values`` (one per seed): ``{mean, low, high, half, sd, n}``;
    ``low``/``high``/``half``/``sd`` are None below two values."""
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        return {"mean": None, "low": None, "high": None, "half": None, "sd": None, "n": 0}
    mean = sum(values) / n
    if n < 2:
        return {"mean": mean, "low": None, "high": None, "half": None, "sd": None, "n": n}
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile_975(n - 1) * sd / math.sqrt(n)
    return {"mean": mean, "low": mean - half, "high": mean + half, "half": half, "sd": sd, "n": n}


def paired_ci(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """The 95% t-interval of the per-seed differences a − b (paired by position)."""
    if len(a) != len(b):
        raise ValueError(f"paired values of different lengths ({len(a)} and {len(b)})")
    return mean_ci([x - y for x, y in zip(a, b)])


def average_ranks(values: Sequence[float]) -> list[float]:
    """Ranks 1..n, ties sharing the average of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's ρ: the Pearson correlation of the average ranks (ties handled). None when fewer
    than three pairs or when one side is constant."""
    if len(x) != len(y):
        raise ValueError("x and y must have the same length")
    if len(x) < 3:
        return None
    return _pearson(average_ranks(x), average_ranks(y))


def spearman_p_value(x: Sequence[float], y: Sequence[float], permutations: int = 20_000, seed: int = 0) -> float | None:
    """One-sided permutation p-value of ρ ≥ the observed ρ (y permuted): exact for up to 8 pairs,
    else ``permutations`` draws from a fixed-seed generator (the observed order counted once)."""
    rho = spearman(x, y)
    if rho is None:
        return None
    rx, ry = average_ranks(x), average_ranks(y)
    n = len(rx)
    threshold = rho - 1e-12
    if n <= 8:
        perms = list(itertools.permutations(ry))
        hits = sum(1 for p in perms if (_pearson(rx, p) or 0.0) >= threshold)
        return hits / len(perms)
    rng = random.Random(seed)
    shuffled = list(ry)
    hits = 1
    for _ in range(permutations):
        rng.shuffle(shuffled)
        if (_pearson(rx, shuffled) or 0.0) >= threshold:
            hits += 1
    return hits / (permutations + 1)


# ------------------------------------------------------------------------------------------------
# Claim rules (pure functions of measured numbers; each returns (verdict, one line of why))
# ------------------------------------------------------------------------------------------------


def _ci_text(ci: Mapping[str, Any] | None, digits: int = 3) -> str:
    if not ci or ci.get("mean") is None:
        return "—"
    if ci.get("low") is None:
        return f"{ci['mean']:+.{digits}f}"
    return f"{ci['mean']:+.{digits}f} [{ci['low']:+.{digits}f}, {ci['high']:+.{digits}f}]"


def rule_all_beat(intervals: Mapping[str, Mapping[str, Any] | None]) -> tuple[str, str]:
    """Every function's 95% interval of its log-ratio (vs the reference) lies below 0. One function
    that does not beat it refutes the claim; otherwise a function not measured (None) leaves it not
    checkable."""
    measured = {n: ci for n, ci in intervals.items() if ci is not None and ci.get("high") is not None}
    missing = [n for n in intervals if n not in measured]
    losing = [n for n, ci in measured.items() if not ci["high"] < 0]
    if losing:
        worse = [n for n in losing if measured[n]["low"] > 0]
        tied = [n for n in losing if n not in worse]
        parts = []
        if worse:
            parts.append(f"significantly worse: {', '.join(map(short, worse))}")
        if tied:
            parts.append(f"not significantly better: {', '.join(map(short, tied))}")
        return NOT_REPRODUCED, "; ".join(parts)
    if missing or not intervals:
        return NOT_CHECKABLE, f"no interval for {', '.join(map(short, missing)) or 'any function'}"
    return REPRODUCED, "every 95% interval lies below 0"


def rule_below_zero(ci: Mapping[str, Any] | None) -> tuple[str, str]:
    """One 95% interval below 0 (better than ReLU)."""
    if ci is None or ci.get("high") is None:
        return NOT_CHECKABLE, "not measured"
    interval = f"[{ci['low']:+.3f}, {ci['high']:+.3f}]"
    if ci["high"] < 0:
        return REPRODUCED, f"the 95% interval {interval} lies below 0"
    if ci["low"] > 0:
        return NOT_REPRODUCED, f"the 95% interval {interval} lies above 0 (worse than ReLU)"
    return NOT_REPRODUCED, f"the 95% interval {interval} includes 0 (no significant difference)"


def rule_not_above_zero(ci: Mapping[str, Any] | None) -> tuple[str, str]:
    """No loss against the reference: the 95% interval of the log-ratio does not lie above 0 (a
    function that is no worse than ReLU, or not significantly so, passes)."""
    if ci is None or ci.get("mean") is None:
        return NOT_CHECKABLE, "not measured"
    if ci.get("low") is None:
        return NOT_CHECKABLE, "one seed: no interval"
    if ci["low"] <= 0:
        return REPRODUCED, f"the 95% interval does not lie above 0 (its low end is {ci['low']:+.3f})"
    return NOT_REPRODUCED, f"the 95% interval lies above 0 (its low end is {ci['low']:+.3f})"


def rule_alpha(
    alphas: Sequence[float],
    means: Sequence[float | None],
    best_vs_target: Mapping[str, Any] | None,
    target: float = 0.1,
    near: tuple[float, float] = (0.05, 0.2),
) -> tuple[str, str]:
    """α = ``target`` is near the optimum: the grid optimum α* lies in ``near``, or α* > 0 and
    ``target`` is not significantly worse than α* (the paired interval of score(target) − score(α*)
    includes 0). ``means`` are mean log-ratios (lower is better); ``best_vs_target`` is that paired
    interval."""
    scored = [(a, m) for a, m in zip(alphas, means) if m is not None]
    if not scored or target not in [a for a, _ in scored]:
        return NOT_CHECKABLE, f"α = {target:g} or the grid was not scored"
    best_alpha = min(scored, key=lambda am: am[1])[0]
    if near[0] <= best_alpha <= near[1]:
        return REPRODUCED, f"the grid optimum α* = {best_alpha:g} lies in [{near[0]:g}, {near[1]:g}]"
    if (
        best_alpha > 0
        and best_vs_target
        and best_vs_target.get("low") is not None
        and best_vs_target["low"] <= 0 <= best_vs_target["high"]
    ):
        return REPRODUCED, (f"the grid optimum is α* = {best_alpha:g}, but α = {target:g} is not significantly worse")
    why = "α = 0 (plain GELU) is best" if best_alpha == 0 else f"the grid optimum is α* = {best_alpha:g}"
    if best_vs_target and best_vs_target.get("low") is not None and best_vs_target["low"] > 0:
        why += f" and α = {target:g} is significantly worse"
    return NOT_REPRODUCED, why


def rule_batch_statistics(wins_lab: bool | None, fails_downstream: bool | None) -> tuple[str, str]:
    """A batch-statistics function wins the lab (scored in batches) and fails downstream."""
    if wins_lab is None:
        return NOT_CHECKABLE, "the batch-statistics function was not scored"
    if not wins_lab:
        return NOT_REPRODUCED, "it does not win our lab even with batch statistics"
    if fails_downstream is None:
        return NOT_CHECKABLE, "it wins the lab; downstream was not run"
    if fails_downstream:
        return REPRODUCED, "it wins the lab and fails downstream"
    return NOT_REPRODUCED, "it wins the lab but does not fail downstream"


def rule_probe(pointwise: Mapping[str, bool | None], expected: Mapping[str, bool]) -> tuple[str, str]:
    """The probe flags exactly the functions that are not pointwise."""
    checked = {n: pointwise.get(n) for n in expected}
    if not checked or any(v is None for v in checked.values()):
        return NOT_CHECKABLE, "not every function was probed"
    wrong = [n for n in expected if checked[n] != expected[n]]
    if wrong:
        return NOT_REPRODUCED, f"misclassified: {', '.join(map(short, wrong))}"
    flagged = [n for n in expected if not expected[n]]
    if not flagged:
        return NOT_CHECKABLE, "no batch-dependent function among those probed"
    return REPRODUCED, f"flagged {', '.join(map(short, flagged))}; every other function passed as pointwise"


def rule_best(values: Mapping[str, float | None], target: str) -> tuple[str, str]:
    """``target`` has the lowest value (log-ratio: lower is better) of all functions."""
    scored = {n: v for n, v in values.items() if v is not None}
    if target not in scored or len(scored) < 2:
        return NOT_CHECKABLE, f"{short(target)} or its competitors were not scored downstream"
    ranked = sorted(scored, key=lambda n: scored[n])
    if ranked[0] == target:
        return REPRODUCED, f"{short(target)} is first of {len(ranked)}"
    return NOT_REPRODUCED, (
        f"{short(target)} is {ranked.index(target) + 1}th of {len(ranked)}; best: {short(ranked[0])}"
    )


def rule_validity(cell: Mapping[str, Any] | None) -> tuple[str, str]:
    """The validity study's pooled ρ (lab fitness on unseen test suites vs downstream fitness) has a
    bootstrap 95% interval above 0 (reproduced), below or across 0 (not reproduced)."""
    if not cell or cell.get("rho") is None or cell.get("low") is None or (cell.get("n") or 0) < 4:
        return NOT_CHECKABLE, (
            "needs the validity study (`actmine validate`, at least 4 functions with an "
            "interval): the quick digits correlation of part 5 cannot decide it"
        )
    text = f"ρ = {cell['rho']:+.2f} [{cell['low']:+.2f}, {cell['high']:+.2f}] over {cell['n']} functions"
    if cell["low"] > 0:
        return REPRODUCED, f"{text}: the 95% interval lies above 0"
    return NOT_REPRODUCED, f"{text}: the 95% interval does not lie above 0"


def load_validity(path: str | Path | None) -> dict[str, Any] | None:
    """The validity study's result (``validity.json`` of `actmine validate`) for the claim: its
    pooled correlation (or its only benchmark's), the per-benchmark cells, the benchmarks and seeds;
    None when there is no such file or it is not a study's result."""
    if not path or not Path(path).is_file():
        return None
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        correlations = document["correlations"]
        per_benchmark = correlations["per_benchmark"]
        benchmarks, labs = document.get("benchmarks") or list(per_benchmark or []), document.get("labs") or []
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None
    if not (isinstance(per_benchmark, dict) and _strings(benchmarks) and isinstance(labs, list)):
        return None  # a hand-made file: the claim reads these as lists of names
    overall = correlations.get("pooled") or (next(iter(per_benchmark.values())) if len(per_benchmark) == 1 else None)
    if not isinstance(overall, Mapping) or not _is_correlation(overall):
        overall = None  # no interval: the study cannot decide the claim
    return {
        "path": str(path),
        "overall": overall,
        "per_benchmark": {b: c for b, c in per_benchmark.items() if isinstance(c, Mapping) and _is_correlation(c)},
        "benchmarks": list(benchmarks),
        "seeds": document.get("seeds"),
        "lab_suites": [str(lab) for lab in labs],
    }


def _strings(values: Any) -> bool:
    return isinstance(values, list) and all(isinstance(v, str) for v in values)


def _is_correlation(cell: Mapping[str, Any]) -> bool:
    """A correlation cell as `actmine validate` writes it: ρ, its interval and the count of functions."""
    numbers = all(
        isinstance(cell.get(k), (int, float)) and not isinstance(cell.get(k), bool) for k in ("rho", "low", "high")
    )
    return numbers and isinstance(cell.get("n"), int) and not isinstance(cell.get("n"), bool)


def rule_seconds(seconds: float | None, limit: float = LAB_SECONDS_LIMIT) -> tuple[str, str]:
    """The lab scores one function in seconds (median below ``limit``)."""
    if seconds is None:
        return NOT_CHECKABLE, "not timed"
    if seconds < limit:
        return REPRODUCED, f"median {seconds:.1f} s < {limit:g} s"
    return NOT_REPRODUCED, f"median {seconds:.1f} s ≥ {limit:g} s"


def rule_no_failures(failures: Mapping[str, int] | None) -> tuple[str, str]:
    """Every downstream job of the pointwise functions finished with a finite score."""
    if not failures:
        return NOT_CHECKABLE, "downstream was not run"
    failed = {n: k for n, k in failures.items() if k}
    if failed:
        return NOT_REPRODUCED, "failed jobs: " + ", ".join(f"{short(n)} ({k})" for n, k in failed.items())
    return REPRODUCED, f"all jobs of {len(failures)} pointwise functions scored"
