"""`actmine reproduce`: the paper's claims, checked by our own lab.

Runs the paper's comparisons on this package's lab and transfer benchmarks and writes a report
(`docs/reproduction.md`) with every number it measured, each claim of the paper stated next to our
measurement and a verdict decided by an explicit rule (see `CLAIM_RULES` and the `rule_*`
functions), plus the plots and the raw JSON under the output directory (`reproduction/`).

The run is made of parts, each a function returning plain JSON-able data:

    search    a short search from ReLU (offline symbolic mutator); its winner is scored like the rest
    lab       ReLU, GELU, the paper's functions, SiLU, Mish and Snake on `lab` and `lab-heldout`,
              with 95% confidence intervals over training seeds (overall and per family)
    alpha     GELUSine's α swept over a grid around 0.1 (α = 0 is GELU, tanh approximation)
    batch     Turbulent scored with batch statistics vs one example at a time; the probe's verdict
    transfer  the same functions (and the winner) on `digits`, `clrs` and any benchmark whose data
              is present (`actmine.transfer.runner.run_transfer`)
    analysis  the rank correlation between lab fitness and downstream score; the claims table

Each part's result is saved as `OUT/<part>.json` with the settings that produced it as soon as it
finishes; a later run with the same settings reads it back instead of recomputing it (so an
interrupted run resumes where it stopped), `force=True` (`--force`) recomputes everything. The
transfer part resumes job by job as well (`OUT/transfer/results.jsonl`), and the search part's run
directory (`OUT/runs/search-<hash>/`) resumes like any `actmine search`.

Statistics: a function's score on one training seed is the lab's `ood_log_ratio` computed on that
seed alone (mean over tasks of ln(OOD error ÷ ReLU's), each (task, seed) clipped to ±3); the
interval is the mean over seeds ± the 95% Student-t quantile × the standard error (paired by seed
for differences between two functions: the same seed means the same data and initial weights).

The modules, lowest first: `rules` (verdict rules and statistics), `settings`, `progress`,
`formatting`, `scoring` (a function in the lab, seed by seed), `parts`, `cache` (each part saved and
reused), `claims` (the table of claims), `plots`, `markdown` (the report, section by section) and
`runinfo`. This module runs them in order (`run_reproduce`) and re-exports every name that callers
import from `actmine.reproduce`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .cache import PART_FORMAT, PartStore, _atomic_write_json, _jsonable, clear_resumable_state
from .claims import CLAIM_RULES, CLAIMS, Claim, ClaimCheck, Evidence, _lab_functions, _validity_measured, build_claims
from .formatting import _duration, _f, _names
from .markdown import _lab_table, _lab_text, write_markdown
from .parts import analysis, available_benchmarks, part_alpha, part_batch, part_lab, part_search, part_transfer
from .plots import (
    _grouped_bars,
    _plt,
    _save,
    _yerr,
    alpha_figure,
    batch_figure,
    correlation_figure,
    lab_figure,
    transfer_figure,
)
from .progress import Progress

# the verdict rules and their statistics live in `rules`; re-exported here, where they always were
from .rules import (
    LAB_SECONDS_LIMIT,
    NOT_CHECKABLE,
    NOT_REPRODUCED,
    REPRODUCED,
    SHORT,
    _ci_text,
    _pearson,
    average_ranks,
    load_validity,
    mean_ci,
    paired_ci,
    rule_all_beat,
    rule_alpha,
    rule_batch_statistics,
    rule_below_zero,
    rule_best,
    rule_no_failures,
    rule_not_above_zero,
    rule_probe,
    rule_seconds,
    rule_validity,
    short,
    spearman,
    spearman_p_value,
    t_quantile_975,
)
from .runinfo import FULL_ESTIMATE, _load, _machine, run_info
from .scoring import _add_paired, _entry, _make_lab, _per_model_vmap, _train, score_activation, score_matrix
from .settings import (
    FUNCTIONS,
    OPTIONAL_BENCHMARKS,
    PAPER_FUNCTIONS,
    QUICK_TRANSFER_OPTIONS,
    REFERENCE,
    REQUIRED_BENCHMARKS,
    VALIDITY_FILE,
    WINNER_FILE,
    Settings,
    _search_config,
    _settings_key,
    full_settings,
    quick_settings,
)

__all__ = [
    "Claim",
    "Settings",
    "quick_settings",
    "full_settings",
    "run_reproduce",
    "t_quantile_975",
    "mean_ci",
    "paired_ci",
    "average_ranks",
    "spearman",
    "spearman_p_value",
    "rule_all_beat",
    "rule_below_zero",
    "rule_alpha",
    "rule_batch_statistics",
    "rule_probe",
    "rule_best",
    "rule_validity",
    "load_validity",
    "rule_seconds",
    "rule_no_failures",
    "rule_not_above_zero",
    "REPRODUCED",
    "NOT_REPRODUCED",
    "NOT_CHECKABLE",
]


# ------------------------------------------------------------------------------------------------
# Plots: drawn in `plots`, saved through this module's `_save` (a test keeps each figure on its way)
# ------------------------------------------------------------------------------------------------


def plot_lab(lab_part: Mapping, winner: Mapping | None, path: Path) -> Path:
    """Per suite: grouped bars (families and "all"), one bar per function, 95% intervals."""
    return _save(lab_figure(lab_part, winner), path)


def plot_alpha(alpha_part: Mapping, path: Path) -> Path:
    """GELUSine's score over the α grid."""
    return _save(alpha_figure(alpha_part), path)


def plot_batch(batch_part: Mapping, path: Path) -> Path:
    """Batch-dependent functions scored in batches vs one example at a time."""
    return _save(batch_figure(batch_part), path)


def plot_transfer(transfer_part: Mapping, path: Path) -> Path:
    """Per benchmark: each function's log-ratio vs ReLU."""
    return _save(transfer_figure(transfer_part), path)


def plot_correlation(analysis_part: Mapping, path: Path) -> Path:
    """Lab fitness vs downstream fitness, a panel per downstream benchmark."""
    return _save(correlation_figure(analysis_part), path)


def _draw_plots(parts: Mapping[str, Any], out_dir: Path) -> None:
    """The plots of the parts that have something to show."""
    winner = (parts.get("search") or {}).get("winner")
    plot_lab(parts["lab"], winner, out_dir / "lab.png")
    plot_alpha(parts["alpha"], out_dir / "alpha.png")
    if parts["batch"]["batch_dependent"]:
        plot_batch(parts["batch"], out_dir / "batch.png")
    if parts.get("transfer") and parts["transfer"].get("rows"):
        plot_transfer(parts["transfer"], out_dir / "transfer.png")
    if parts["analysis"].get("correlations"):
        plot_correlation(parts["analysis"], out_dir / "correlation.png")


# ------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------


def _write_winner_file(out_dir: Path, winner: Mapping[str, Any] | None) -> Path | None:
    """The search winner's source as a program file for the transfer (rewritten only when it changed)."""
    if not winner:
        return None
    winner_file = out_dir / WINNER_FILE
    if not winner_file.is_file() or winner_file.read_text(encoding="utf-8").rstrip() != winner["source"].rstrip():
        winner_file.write_text(winner["source"].rstrip() + "\n", encoding="utf-8")
    return winner_file


def _transfer_part(
    settings: Settings, out_dir: Path, store: PartStore, progress: Progress, search_part: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The transfer part, keyed by the functions, the winner's source and the benchmarks present."""
    winner = (search_part or {}).get("winner")
    winner_file = _write_winner_file(out_dir, winner)
    benchmarks, missing = available_benchmarks(settings)
    return store.run(
        "transfer",
        {
            "functions": list(settings.functions),
            "winner": winner["sha256"] if winner else None,
            "benchmarks": benchmarks,
            "missing": sorted(missing),
            "transfer_seeds": settings.transfer_seeds,
            "options": settings.transfer_options,
            "data_dir": settings.data_dir,
        },
        lambda: part_transfer(settings, out_dir, progress, winner_file, benchmarks, missing),
    )


def _compute_parts(settings: Settings, out_dir: Path, store: PartStore, progress: Progress) -> dict[str, Any]:
    """Every part in order, each reused or computed (`store`), with one torch thread meanwhile; the
    analysis is always recomputed."""
    parts: dict[str, Any] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if not settings.skip_search:
            parts["search"] = store.run(
                "search",
                {"search": settings.search, "config": _search_config(settings)},
                lambda: part_search(settings, out_dir, progress),
            )
        parts["lab"] = store.run("lab", {"functions": list(settings.functions)}, lambda: part_lab(settings, progress))
        parts["alpha"] = store.run("alpha", {"alphas": list(settings.alphas)}, lambda: part_alpha(settings, progress))
        parts["batch"] = store.run(
            "batch", {"functions": list(settings.functions)}, lambda: part_batch(settings, progress, parts["lab"])
        )
        if not settings.skip_transfer:
            parts["transfer"] = _transfer_part(settings, out_dir, store, progress, parts.get("search"))
        parts["analysis"] = _jsonable(analysis(settings, parts.get("lab"), parts.get("search"), parts.get("transfer")))
        _atomic_write_json(out_dir / "analysis.json", {"part": "analysis", "result": parts["analysis"]})
    finally:
        torch.set_num_threads(threads)
    return parts


def run_reproduce(
    settings: Settings,
    out_dir: str | Path = "reproduction",
    doc: str | Path = "docs/reproduction.md",
    force: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run (or resume) every part, then write the plots, `claims.json` and the markdown report.

    Returns ``{"claims": [...], "doc": path, "wall_seconds": …, "resumed": [...], "computed": [...]}``.
    """
    started = time.perf_counter()
    load_start = _load()
    out_dir, doc = Path(out_dir), Path(doc)
    out_dir.mkdir(parents=True, exist_ok=True)
    progress = progress or Progress(enabled=False)
    store = PartStore(settings, out_dir, force, progress)
    if force:
        for path in clear_resumable_state(settings, out_dir):
            progress.say(f"--force: removed {path} (it would have been resumed)")
    parts = _compute_parts(settings, out_dir, store, progress)
    parts["validity"] = load_validity(settings.validity)
    claims = build_claims(settings, parts)
    _atomic_write_json(
        out_dir / "claims.json",
        {"command": settings.command(), "settings": settings.to_dict(), "claims": [c.to_dict() for c in claims]},
    )
    _draw_plots(parts, out_dir)
    wall = time.perf_counter() - started
    write_markdown(doc, out_dir, settings, parts, claims, run_info(settings, wall, load_start, store))
    return {
        "claims": claims,
        "doc": doc,
        "wall_seconds": wall,
        "resumed": store.resumed,
        "computed": store.computed,
        "parts": parts,
    }
