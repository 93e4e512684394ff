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
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

# the verdict rules and their statistics live in `rules`; re-exported here, where they always were
from .rules import (LAB_SECONDS_LIMIT, NOT_CHECKABLE, NOT_REPRODUCED, REPRODUCED, SHORT, _ci_text, _pearson,
                    average_ranks, load_validity, mean_ci, paired_ci, rule_all_beat, rule_alpha,
                    rule_batch_statistics, rule_below_zero, rule_best, rule_no_failures, rule_not_above_zero,
                    rule_probe, rule_seconds, rule_validity, short, spearman, spearman_p_value, t_quantile_975)

__all__ = [
    "Claim", "Settings", "quick_settings", "full_settings", "run_reproduce",
    "t_quantile_975", "mean_ci", "paired_ci", "average_ranks", "spearman", "spearman_p_value",
    "rule_all_beat", "rule_below_zero", "rule_alpha", "rule_batch_statistics", "rule_probe",
    "rule_best", "rule_validity", "load_validity", "rule_seconds", "rule_no_failures", "rule_not_above_zero",
    "REPRODUCED", "NOT_REPRODUCED", "NOT_CHECKABLE",
]

PART_FORMAT = 1

REFERENCE = "relu"
PAPER_FUNCTIONS = ("gelu_sine", "gelu_sinc_perturbation", "gmtu", "turbulent")
FUNCTIONS = ("relu", "gelu") + PAPER_FUNCTIONS + ("silu", "mish", "snake")
REQUIRED_BENCHMARKS = ("digits", "clrs")
OPTIONAL_BENCHMARKS = ("cifar10", "imagenet", "molhiv")   # used when their data are present (full runs)
WINNER_FILE = "search_winner.py"
VALIDITY_FILE = "validity/validity.json"   # `actmine validate --out validity`: decides "lab predicts"


# ------------------------------------------------------------------------------------------------
# Settings
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    """Everything that changes what `actmine reproduce` measures (plus where and how fast)."""

    quick: bool = False
    seeds: int = 8                                  # lab training seeds 0..N-1 (both suites)
    suite: str = "lab"
    heldout_suite: str = "lab-heldout"
    steps: int | None = None                        # lab training steps (None: the protocol's 50)
    functions: tuple[str, ...] = FUNCTIONS
    alphas: tuple[float, ...] = (0.0, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.3, 0.5)
    transfer_seeds: int = 3
    benchmarks: tuple[str, ...] = REQUIRED_BENCHMARKS
    optional_benchmarks: tuple[str, ...] = OPTIONAL_BENCHMARKS
    transfer_options: dict = field(default_factory=dict)      # {benchmark: {option: value}}
    search: dict = field(default_factory=dict)                # Config overrides ({} = the default search)
    workers: int = 1
    device: str = "cpu"
    data_dir: str | None = None
    skip_transfer: bool = False
    skip_search: bool = False
    validity: str | None = VALIDITY_FILE            # the validity study that decides "lab predicts"

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    def command(self) -> str:
        """The `actmine reproduce` command line that gives these settings."""
        base = quick_settings(self.workers) if self.quick else full_settings(self.workers)
        words = ["actmine", "reproduce"] + (["--quick"] if self.quick else [])
        if self.seeds != base.seeds:
            words += ["--seeds", str(self.seeds)]
        if self.data_dir:
            words += ["--data-dir", self.data_dir]
        if self.device != "cpu":
            words += ["--device", self.device]
        if self.skip_transfer:
            words.append("--skip-transfer")
        if self.skip_search:
            words.append("--skip-search")
        if self.validity != base.validity:
            words += ["--validity", str(self.validity)]
        hidden = []
        for name in ("suite", "heldout_suite", "steps", "functions", "alphas", "transfer_seeds", "benchmarks",
                     "transfer_options", "search"):
            if getattr(self, name) != getattr(base, name):
                hidden.append(name)
        text = shlex.join(words)
        return text + (f" (and non-default {', '.join(hidden)})" if hidden else "")


QUICK_TRANSFER_OPTIONS = {
    "digits": {"epochs": 4},
    "clrs": {"algorithms": ["bellman_ford"], "train_steps": 100, "batch_size": 16, "hidden": 32,
             "num_train_samples": 100, "num_test_samples": 16},
}


def quick_settings(workers: int | None = None) -> Settings:
    """`--quick`: under 10 minutes on a 2-core machine."""
    return Settings(quick=True, seeds=5, alphas=(0.0, 0.05, 0.1, 0.2, 0.3, 0.5), transfer_seeds=3,
                    optional_benchmarks=(), transfer_options=json.loads(json.dumps(QUICK_TRANSFER_OPTIONS)),
                    search={"search.budget": 30, "search.time_limit": 180, "search.heldout_top": 2,
                            "lab.seeds": 3},
                    workers=workers or os.cpu_count() or 1)


def full_settings(workers: int | None = None) -> Settings:
    """The default: 8 seeds, the default search, the benchmarks' own settings."""
    return Settings(workers=workers or os.cpu_count() or 1)


def _settings_key(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]


# ------------------------------------------------------------------------------------------------
# Progress
# ------------------------------------------------------------------------------------------------

class Progress:
    """A rich progress bar per part on a terminal (stderr); one line per part elsewhere."""

    def __init__(self, console: Any = None, enabled: bool = True):
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.enabled = enabled
        self._bar = None
        self._task = None

    def say(self, message: str) -> None:
        if self.enabled:
            self.console.print(message, markup=False, highlight=False)

    def start(self, part: str, total: int) -> None:
        if self.enabled and self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(TextColumn(f"{part:9s}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), TextColumn("{task.description}"),
                                     console=self.console, transient=True)
            self._task = self._bar.add_task("", total=total)
            self._bar.start()

    def advance(self, description: str = "") -> None:
        if self._bar is not None:
            from rich.markup import escape

            self._bar.update(self._task, advance=1, description=escape(description))

    def describe(self, description: str) -> None:
        if self._bar is not None:
            from rich.markup import escape

            self._bar.update(self._task, description=escape(description))

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


# ------------------------------------------------------------------------------------------------
# Scoring in the lab (trusted registry activations run here; program files only in the sandbox)
# ------------------------------------------------------------------------------------------------

def _make_lab(settings: Settings, suite: Any, keep_seeds: bool = False, allow_batch_dependent: bool = True):
    """The lab of a part: ``suite`` with seeds 0..settings.seeds-1 (or its own with ``keep_seeds``)."""
    from ..candidate.probes import ProbeBudget
    from ..lab.ensemble import Protocol
    from ..lab.fitness import Lab

    protocol = Protocol(device=settings.device, steps=settings.steps) if settings.steps else \
        Protocol(device=settings.device)
    return Lab(suite, protocol=protocol, seeds=None if keep_seeds else settings.seeds,
               budget=ProbeBudget(allow_batch_dependent=allow_batch_dependent))


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


def _entry(lab, name: str, matrix: list[list[float]] | None, official: float | None, tasks: list | None,
           seconds: float, pointwise: bool | None, error: dict | None = None,
           per_seed_evaluations: Sequence[Any] | None = None) -> dict[str, Any]:
    """One function on one suite: the official score, the per-seed scores and their intervals,
    overall and per family."""
    entry: dict[str, Any] = {"name": name, "ok": error is None, "error": error, "seconds": round(seconds, 3),
                             "pointwise": pointwise}
    if error is not None:
        return entry
    families = sorted({t.family for t in lab.suite.tasks})
    if matrix is not None:
        seeds = len(lab.suite.seeds)
        per_seed = [sum(row[s] for row in matrix) / len(matrix) for s in range(seeds)]
        by_family = {}
        for family in families:
            rows = [row for row, task in zip(matrix, lab.suite.tasks) if task.family == family]
            by_family[family] = [sum(row[s] for row in rows) / len(rows) for s in range(seeds)]
    else:  # from one single-seed evaluation per seed (program files, scored in the sandbox)
        per_seed = [e.ood_log_ratio for e in per_seed_evaluations]
        by_family = {f: [e.by_family()[f]["log_ratio"] for e in per_seed_evaluations] for f in families}
    from ..lab.fitness import geometric_mean

    geo = {}
    for family in families:
        errors = [t.ood_error for t in tasks if t.family == family]
        geo[family] = geometric_mean(errors) if errors else None
    entry.update({
        "ood_log_ratio": official, "fitness": None if official is None else 0.0 - official,
        "per_seed": per_seed, "ci": mean_ci(per_seed),
        "families": {f: {"per_seed": by_family[f], "ci": mean_ci(by_family[f]), "ood_error": geo[f]}
                     for f in families},
        "max_id_error": max(t.id_error for t in tasks),
    })
    return entry


def score_activation(lab, activation: Callable, name: str, in_batches: bool = False,
                     probe: dict | None = None) -> dict[str, Any]:
    """A trusted activation on ``lab``: probes (batch dependence allowed), training, the lab's
    score and the per-seed scores. Non-finite training is an entry with ``ok`` False."""
    from ..candidate import probes

    started = time.perf_counter()
    try:
        probe = probe or probes.run_probes(activation, dtype=lab.protocol.torch_dtype, budget=lab.budget)
    except probes.ProbeFailure as failure:
        return _entry(lab, name, None, None, None, time.perf_counter() - started, None,
                      {"code": failure.code, "message": str(failure), "stage": "probes"})
    pointwise = bool(probe["pointwise"])
    result = _train(activation, lab, pointwise, in_batches)
    if result.non_finite:
        return _entry(lab, name, None, None, None, time.perf_counter() - started, pointwise,
                      {"code": "non_finite", "message": f"non-finite on {len(result.non_finite)} models",
                       "stage": "train"})
    official, tasks = lab.score(result)
    return _entry(lab, name, score_matrix(lab, result.ood_error), official, tasks,
                  time.perf_counter() - started, pointwise)


def _add_paired(entries: Mapping[str, dict[str, Any]], against: str, key: str) -> None:
    base = entries.get(against)
    for entry in entries.values():
        if base and base.get("ok") and entry.get("ok") and len(entry["per_seed"]) == len(base["per_seed"]):
            entry[key] = paired_ci(entry["per_seed"], base["per_seed"])
        else:
            entry[key] = None


# ------------------------------------------------------------------------------------------------
# The parts
# ------------------------------------------------------------------------------------------------

def part_lab(settings: Settings, progress: Progress) -> dict[str, Any]:
    """Every function on the search suite and the held-out suite."""
    import actmine.activations as activations

    suites = [settings.suite, settings.heldout_suite]
    progress.start("lab", len(suites) * len(settings.functions))
    out: dict[str, Any] = {"suites": {}}
    try:
        for suite in suites:
            lab = _make_lab(settings, suite)
            progress.describe(f"ReLU reference on {suite}")
            lab.reference
            entries = {}
            for name in settings.functions:
                progress.describe(f"{name} on {suite}")
                entries[name] = score_activation(lab, activations.get(name), name)
                progress.advance(f"{name} on {suite}")
            _add_paired(entries, "gelu", "vs_gelu")
            out["suites"][suite] = {"suite": lab.suite.name, "seeds": list(lab.suite.seeds),
                                    "tasks": len(lab.suite.tasks), "families": lab.suite.families,
                                    "steps": lab.protocol.steps, "functions": entries}
    finally:
        progress.stop()
    return out


def part_alpha(settings: Settings, progress: Progress) -> dict[str, Any]:
    """GELUSine's α over the grid on the search suite (α = 0 is GELU, tanh approximation)."""
    import actmine.activations as activations

    lab = _make_lab(settings, settings.suite)
    progress.start("alpha", len(settings.alphas))
    points = {}
    try:
        lab.reference
        for alpha in settings.alphas:
            progress.describe(f"α = {alpha:g}")
            points[f"{alpha:g}"] = score_activation(lab, activations.get("gelu_sine", alpha=alpha),
                                                    f"gelu_sine(alpha={alpha:g})")
            points[f"{alpha:g}"]["alpha"] = alpha
            progress.advance(f"α = {alpha:g}")
    finally:
        progress.stop()
    scored = [p for p in points.values() if p["ok"]]
    best = min(scored, key=lambda p: p["ci"]["mean"]) if scored else None
    target = points.get("0.1")
    for p in points.values():
        ok = p["ok"] and target is not None and target["ok"]
        p["vs_0.1"] = paired_ci(p["per_seed"], target["per_seed"]) if ok else None
        p["vs_best"] = paired_ci(p["per_seed"], best["per_seed"]) if p["ok"] and best else None
    return {"suite": lab.suite.name, "seeds": list(lab.suite.seeds), "alphas": list(settings.alphas),
            "points": [points[f"{a:g}"] for a in settings.alphas],
            "best_alpha": best["alpha"] if best else None}


def part_batch(settings: Settings, progress: Progress, lab_part: Mapping[str, Any]) -> dict[str, Any]:
    """Batch-dependent functions scored in batches (each model's whole evaluation batch shares the
    statistics, as in a lab that evaluates in batches) and one example at a time (the lab part's
    numbers: how `Lab.evaluate` scores them); the probe's verdict on every function."""
    import actmine.activations as activations
    from ..candidate import probes

    verdicts = {}
    for name in settings.functions:
        try:
            verdicts[name] = {"pointwise": probes.is_pointwise(activations.get(name)), "error": None}
        except probes.ProbeFailure as failure:
            verdicts[name] = {"pointwise": None, "error": f"[{failure.code}] {failure}"}
        try:  # the default budget: what a search (and `actmine evaluate`) does with it
            probes.run_probes(activations.get(name))
            verdicts[name]["default_budget"] = "accepted"
        except probes.ProbeFailure as failure:
            verdicts[name]["default_budget"] = f"refused [{failure.code}]"
    dependent = [n for n in settings.functions if verdicts[n]["pointwise"] is False]
    out: dict[str, Any] = {"probe": verdicts, "batch_dependent": dependent, "suites": {}}
    suites = [settings.suite, settings.heldout_suite]
    progress.start("batch", len(suites) * len(dependent))
    try:
        for suite in suites:
            lab = _make_lab(settings, suite)
            rows = {}
            for name in dependent:
                progress.describe(f"{name} in batches on {suite}")
                in_batches = score_activation(lab, activations.get(name), name, in_batches=True)
                per_example = lab_part["suites"][suite]["functions"].get(name)
                paired = (paired_ci(in_batches["per_seed"], per_example["per_seed"])
                          if in_batches.get("ok") and per_example and per_example.get("ok") else None)
                rows[name] = {"in_batches": in_batches, "per_example": per_example,
                              "batches_minus_per_example": paired}
                progress.advance(f"{name} on {suite}")
            out["suites"][suite] = rows
    finally:
        progress.stop()
    return out


def part_search(settings: Settings, out_dir: Path, progress: Progress) -> dict[str, Any]:
    """A short search from ReLU with the offline mutator; its best program scored on both suites
    (program text: only ever run in sandboxed workers)."""
    from ..candidate.sandbox import SandboxLimits, SandboxPool
    from ..config import Config
    from ..evolve.controller import Search
    from ..lab.tasks import Suite

    # The held-out suite is reported below, so it must not choose the winner: a top list of one
    # leaves the search's validation step nothing to choose from.
    overrides = {"lab.suite": settings.suite, "lab.heldout_suite": settings.heldout_suite,
                 "lab.steps": settings.steps, "executor.workers": settings.workers, "search.seeds": ["relu"],
                 **settings.search, "search.heldout_top": 1}
    config = Config().with_overrides(overrides)
    # what the search computes names its run directory (workers may change on resume)
    run_dir = out_dir / "runs" / f"search-{_settings_key({k: v for k, v in config.to_dict().items() if k != 'executor'})}"
    progress.say(f"search: {config.search.budget} evaluations ({config.mutator.kind} mutator, "
                 f"{config.lab.seeds} seeds, {config.executor.workers} workers) in {run_dir}")
    started = time.perf_counter()
    summary = Search(config, run_dir, live=False).run()
    if summary.get("interrupted"):
        raise KeyboardInterrupt
    search_seconds = time.perf_counter() - started
    best = summary.get("best")
    result: dict[str, Any] = {"config": config.to_dict(), "run_dir": str(run_dir),
                              "evaluated": summary["evaluated"], "seconds": round(search_seconds, 1),
                              "failures": summary.get("failures"), "heldout_check": summary.get("heldout"),
                              "winner": None}
    if best is None:
        return result
    source = best["source"]
    (out_dir / WINNER_FILE).write_text(source if source.endswith("\n") else source + "\n", encoding="utf-8")
    winner: dict[str, Any] = {"program_id": best["id"], "search_fitness": best["fitness"], "source": source,
                              "rationale": best.get("rationale"), "file": WINNER_FILE,
                              "sha256": hashlib.sha256(source.encode()).hexdigest(), "suites": {}}
    suites = [settings.suite, settings.heldout_suite]
    progress.start("winner", len(suites) * (settings.seeds + 1))
    try:
        with SandboxPool(workers=max(1, min(settings.workers, settings.seeds + 1)), limits=SandboxLimits()) as pool:
            for suite in suites:
                # the search's probe budget: batch dependence refused
                lab = _make_lab(settings, suite, allow_batch_dependent=False)
                singles = [_make_lab(settings, Suite(lab.suite.name, lab.suite.tasks, (seed,)), keep_seeds=True,
                                     allow_batch_dependent=False) for seed in lab.suite.seeds]
                started = time.perf_counter()
                futures = [pool.submit(source, lab, "search_winner")]
                futures += [pool.submit(source, single, f"search_winner seed {single.suite.seeds[0]}")
                            for single in singles]
                evaluations = []
                for future in futures:
                    evaluations.append(future.result())
                    progress.advance(f"winner on {suite}")
                full, per_seed = evaluations[0], evaluations[1:]
                failed = next((e for e in evaluations if not e.ok), None)
                if failed is not None:
                    entry = _entry(lab, "search_winner", None, None, None, time.perf_counter() - started, None,
                                   failed.error)
                else:
                    entry = _entry(lab, "search_winner", None, full.ood_log_ratio, full.tasks, full.seconds,
                                   bool(full.probes.get("pointwise")), per_seed_evaluations=per_seed)
                winner["suites"][suite] = entry
    finally:
        progress.stop()
    result["winner"] = winner
    return result


def available_benchmarks(settings: Settings) -> tuple[list[str], dict[str, str]]:
    """The benchmarks to run: the required ones, and the optional ones whose data are present
    (each benchmark's own ``check_data``); ``{name: why not}`` for the others."""
    from ..transfer.base import get_benchmark
    from ..transfer.runner import default_data_dir

    data = Path(settings.data_dir).expanduser() if settings.data_dir else default_data_dir()
    present, missing = [], {}
    for name in list(settings.benchmarks) + list(settings.optional_benchmarks):
        try:
            get_benchmark(name, **settings.transfer_options.get(name, {})).check_data(data)
        except Exception as exc:  # DatasetMissing, or an optional dependency that is not installed
            missing[name] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            continue
        present.append(name)
    return present, missing


def part_transfer(settings: Settings, out_dir: Path, progress: Progress, winner_file: Path | None,
                  benchmarks: Sequence[str], missing: Mapping[str, str]) -> dict[str, Any]:
    """The functions (and the search's winner, as a program file) on the benchmarks present."""
    from ..transfer.runner import log_ratio, run_transfer

    names = list(settings.functions) + ([str(winner_file)] if winner_file else [])
    options = {b: settings.transfer_options.get(b, {}) for b in benchmarks}
    result: dict[str, Any] = {"benchmarks": list(benchmarks), "missing": dict(missing),
                              "seeds": list(range(settings.transfer_seeds)), "options": options, "rows": [],
                              "per_seed": {}, "failures": []}
    if not benchmarks:
        return result
    run = run_transfer(names, benchmarks, settings.transfer_seeds, options=options, data_dir=settings.data_dir,
                       device=settings.device, workers=settings.workers, out=out_dir / "transfer",
                       progress=progress.enabled, notify=progress.say, console=progress.console)
    scores: dict[tuple[str, str], dict[int, float]] = {}
    for r in run.results:
        if r.ok:
            scores.setdefault((r.activation, r.benchmark), {})[r.seed] = r.score
        else:
            result["failures"].append({"activation": r.activation, "benchmark": r.benchmark, "seed": r.seed,
                                       "error": r.error})
    for row in run.rows:
        activation, benchmark = row["activation"], row["benchmark"]
        mine = scores.get((activation, benchmark), {})
        reference = scores.get((REFERENCE, benchmark), {})
        bounded = all(0.0 <= s <= 1.0 for (a, b), seeds in scores.items() if b == benchmark for s in seeds.values())
        per_seed = [log_ratio(mine[s], reference[s], bounded) for s in sorted(mine) if s in reference]
        per_seed = [v for v in per_seed if math.isfinite(v)]
        result["per_seed"].setdefault(activation, {})[benchmark] = per_seed
        result["rows"].append({**row, "ci": mean_ci(per_seed)})
    result["seconds_jobs"] = round(sum(r.seconds for r in run.results), 1)
    result["files"] = {k: str(v) for k, v in run.files.items()}
    return result


def analysis(settings: Settings, lab_part: Mapping | None, search_part: Mapping | None,
             transfer_part: Mapping | None) -> dict[str, Any]:
    """Spearman's ρ between lab fitness (−ood_log_ratio on the search suite) and downstream fitness
    (−log-ratio vs ReLU), per benchmark and for the mean over benchmarks, across every function."""
    out: dict[str, Any] = {"points": {}, "correlations": {}}
    if not lab_part or not transfer_part or not transfer_part.get("rows"):
        return out
    lab = dict(lab_part["suites"][settings.suite]["functions"])
    if search_part and search_part.get("winner"):
        lab["search_winner"] = search_part["winner"]["suites"].get(settings.suite)
    downstream: dict[str, dict[str, float]] = {}
    for row in transfer_part["rows"]:
        value = 0.0 if row["activation"] == REFERENCE and row["n"] else row["log_ratio_vs_relu"]
        if value is not None:
            downstream.setdefault(row["activation"], {})[row["benchmark"]] = value
    benchmarks = list(transfer_part["benchmarks"])
    points = {}
    for name, entry in lab.items():
        if not entry or not entry.get("ok") or name not in downstream:
            continue
        point = {"lab_fitness": entry["fitness"], "downstream": {b: -downstream[name][b]
                                                                 for b in benchmarks if b in downstream[name]}}
        if len(point["downstream"]) == len(benchmarks):
            point["downstream"]["mean"] = sum(point["downstream"][b] for b in benchmarks) / len(benchmarks)
        points[name] = point
    out["points"] = points
    for key in benchmarks + (["mean"] if len(benchmarks) > 1 else []):
        names = [n for n, p in points.items() if key in p["downstream"]]
        x = [points[n]["lab_fitness"] for n in names]
        y = [points[n]["downstream"][key] for n in names]
        rho = spearman(x, y) if len(names) >= 3 else None
        out["correlations"][key] = {"n": len(names), "functions": names, "rho": rho,
                                    "p_value": spearman_p_value(x, y) if rho is not None else None}
    return out


# ------------------------------------------------------------------------------------------------
# Claims
# ------------------------------------------------------------------------------------------------

@dataclass
class Claim:
    id: str
    claim: str
    source: str
    measured: str
    verdict: str
    why: str
    rule: str
    part: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


CLAIM_RULES = {
    "beats_relu": "reproduced iff the 95% t-interval over seeds of every discovered function's ood_log_ratio "
                  "(vs ReLU) on the search suite lies below 0",
    "beats_gelu": "reproduced iff the 95% paired t-interval of every discovered function's per-seed score minus "
                  "GELU's lies below 0 on the search suite",
    "alpha": "reproduced iff the grid optimum α* of GELUSine lies in [0.05, 0.2], or α* > 0 and α = 0.1 is not "
             "significantly worse than α* (paired 95% interval includes 0)",
    "batch_statistics": "reproduced iff Turbulent, scored with batch statistics, beats every pointwise function of "
                        "the comparison on the search suite (mean) AND downstream it fails a job or its mean "
                        "log-ratio over the benchmarks is above 0 (worse than ReLU)",
    "probe": "reproduced iff the batch-dependence probe flags exactly the functions that are not pointwise",
    "gsp_best": "reproduced iff GSP has the lowest mean downstream log-ratio (over the benchmarks run) of the "
                "registry functions compared",
    "gsp_clrs": "reproduced iff GSP's 95% t-interval over seeds of its CLRS log-ratio vs ReLU lies below 0",
    "gsp_imagenet": "reproduced iff the 95% interval of GSP's ImageNet log-ratio vs ReLU does not lie above 0",
    "pointwise_transfer": "reproduced iff every downstream job of every pointwise function finished with a "
                          "finite score",
    "lab_predicts": "decided by the validity study (`actmine validate`, docs/validity.md): reproduced iff the "
                    "bootstrap 95% interval of Spearman's ρ between lab fitness on the unseen test suites and "
                    "downstream fitness (mean over its benchmarks) lies above 0; not checkable without the study",
    "search": "reproduced iff the 95% interval of the search winner's ood_log_ratio on the held-out suite lies "
              "below 0",
    "lab_seconds": f"reproduced iff the median time to score one function on the search suite is below "
                   f"{LAB_SECONDS_LIMIT:g} s",
}


def _search_config(settings: Settings) -> dict[str, Any]:
    """The search part's effective config (its overrides on today's defaults): a saved search made
    under other defaults (another winner rule, other pools) is not reused."""
    from ..config import Config

    return Config().with_overrides({"executor.workers": settings.workers, **settings.search}).to_dict()


def _validity_measured(validity: Mapping[str, Any] | None) -> str:
    """The validity study's numbers as the claim's "measured" text."""
    if not validity or not validity.get("overall") or validity["overall"].get("rho") is None:
        return "validity study not found (run `actmine validate --out validity`)"
    c = validity["overall"]
    cells = ", ".join(f"{b}: {v['rho']:+.2f} [{v['low']:+.2f}, {v['high']:+.2f}]"
                      for b, v in validity["per_benchmark"].items()
                      if isinstance(v, Mapping) and all(isinstance(v.get(k), (int, float)) for k in ("rho", "low", "high")))
    benchmarks = validity["benchmarks"] or ["its benchmark"]
    scope = "mean over " + ", ".join(benchmarks) if len(benchmarks) > 1 else benchmarks[0]
    return (f"validity study ({validity['path']}): Spearman ρ = {c['rho']:+.2f} [{c['low']:+.2f}, {c['high']:+.2f}] "
            f"over {c['n']} functions ({scope}); per benchmark: {cells}")


def _lab_functions(lab_part: Mapping | None, suite: str) -> dict[str, Any]:
    if not lab_part:
        return {}
    return lab_part["suites"].get(suite, {}).get("functions", {})


def build_claims(settings: Settings, parts: Mapping[str, Any]) -> list[Claim]:
    lab_part, alpha_part, batch_part = parts.get("lab"), parts.get("alpha"), parts.get("batch")
    transfer_part, search_part, corr = parts.get("transfer"), parts.get("search"), parts.get("analysis") or {}
    lab = _lab_functions(lab_part, settings.suite)
    heldout = _lab_functions(lab_part, settings.heldout_suite)
    discovered = list(PAPER_FUNCTIONS)   # a function left out of the run is "not measured"
    claims = []

    def add(id_: str, text: str, source: str, measured: str, verdict: tuple[str, str], part: str) -> None:
        claims.append(Claim(id_, text, source, measured, verdict[0], verdict[1], CLAIM_RULES[id_], part))

    def interval_list(entries: Mapping, key: str) -> str:
        return "; ".join(f"{short(n)} {_ci_text(entries[n].get(key) if entries.get(n) else None)}"
                         for n in discovered)

    relu_cis = {n: (lab[n]["ci"] if lab.get(n, {}).get("ok") else None) for n in discovered}
    add("beats_relu", "Every function the search discovered (GELUSine, GSP, GMTU, Turbulent) has a lower OOD "
        "error than ReLU in the lab.", "issue #8's reading of the paper (the functions were selected on lab fitness)",
        f"ood_log_ratio on `{settings.suite}`: {interval_list(lab, 'ci')}; on `{settings.heldout_suite}`: "
        f"{interval_list(heldout, 'ci')}", rule_all_beat(relu_cis), "lab")
    gelu_cis = {n: (lab[n].get("vs_gelu") if lab.get(n, {}).get("ok") else None) for n in discovered}
    add("beats_gelu", "Every discovered function has a lower OOD error than GELU in the lab.",
        "issue #8's reading of the paper",
        f"score − GELU's on `{settings.suite}`: {interval_list(lab, 'vs_gelu')}; on `{settings.heldout_suite}`: "
        f"{interval_list(heldout, 'vs_gelu')}", rule_all_beat(gelu_cis), "lab")

    if alpha_part:
        points = alpha_part["points"]
        means = [p["ci"]["mean"] if p["ok"] else None for p in points]
        best = alpha_part["best_alpha"]
        best_point = next((p for p in points if p.get("alpha") == best), None)
        target = next((p for p in points if p.get("alpha") == 0.1), None)
        vs = (paired_ci(target["per_seed"], best_point["per_seed"])
              if best_point and target and target["ok"] else None)
        measured = (f"optimum of the grid α* = {best:g} ({_ci_text(best_point['ci'])}); α = 0.1: "
                    f"{_ci_text(target['ci']) if target and target['ok'] else '—'}; α = 0.1 minus α*: {_ci_text(vs)}"
                    if best_point else "no α scored")
        add("alpha", "GELUSine's α = 0.1 is near optimal.", "Appendix C (sweep of α)", measured,
            rule_alpha(alpha_part["alphas"], means, vs), "alpha")
    else:
        add("alpha", "GELUSine's α = 0.1 is near optimal.", "Appendix C (sweep of α)", "not run",
            (NOT_CHECKABLE, "not run"), "alpha")

    # batch statistics: Turbulent wins the lab (in batches) and fails downstream
    wins, fails, measured = None, None, "Turbulent not in the comparison"
    if batch_part and "turbulent" in batch_part["suites"].get(settings.suite, {}):
        row = batch_part["suites"][settings.suite]["turbulent"]
        in_batches = row["in_batches"]
        pointwise_means = {n: e["ci"]["mean"] for n, e in lab.items() if e.get("ok") and e.get("pointwise")}
        if in_batches.get("ok") and pointwise_means:
            best_pointwise = min(pointwise_means, key=pointwise_means.get)
            wins = in_batches["ci"]["mean"] < pointwise_means[best_pointwise]
            measured = (f"lab in batches {_ci_text(in_batches['ci'])}, per example "
                        f"{_ci_text(row['per_example']['ci']) if row.get('per_example') else '—'}; best pointwise "
                        f"{short(best_pointwise)} {pointwise_means[best_pointwise]:+.3f}")
        else:
            wins = False
            measured = "in batches: " + (in_batches.get("error") or {}).get("message", "failed")
        if transfer_part and transfer_part.get("rows"):
            rows = [r for r in transfer_part["rows"] if r["activation"] == "turbulent"]
            failed = sum(r["failed"] for r in rows)
            ratios = [r["log_ratio_vs_relu"] for r in rows if r["log_ratio_vs_relu"] is not None]
            mean = sum(ratios) / len(ratios) if ratios else None
            fails = failed > 0 or (mean is not None and mean > 0)
            measured += ("; downstream " + ", ".join(f"{r['benchmark']} {_ci_text(r['ci'])}" for r in rows)
                         + (f", {failed} failed jobs" if failed else ""))
    add("batch_statistics", "Functions that use batch statistics (Turbulent) win in the lab and fail downstream.",
        "paper (secondary sources)", measured, rule_batch_statistics(wins, fails), "batch")

    if batch_part:
        flags = {n: v["pointwise"] for n, v in batch_part["probe"].items()}
        import actmine.activations as activations

        expected = {n: activations.info(n).pointwise for n in flags}
        add("probe", "Batch dependence can be detected before any downstream compute is spent.",
            "paper (recommendation, secondary sources)",
            "pointwise probe: " + ", ".join(f"{short(n)} {'yes' if v else 'NO'}" for n, v in flags.items()),
            rule_probe(flags, expected), "batch")

    transfer_rows = (transfer_part or {}).get("rows") or []
    benchmarks = (transfer_part or {}).get("benchmarks") or []
    means: dict[str, float | None] = {}
    for name in settings.functions:
        ratios = [0.0 if name == REFERENCE else r["log_ratio_vs_relu"] for r in transfer_rows
                  if r["activation"] == name and r["n"]]
        means[name] = sum(ratios) / len(ratios) if ratios and None not in ratios and len(ratios) == len(benchmarks) \
            else None
    add("gsp_best", "GELU-Sinc-Perturbation transfers best overall.", "paper (secondary sources; benchmarks "
        "CIFAR-10, ImageNet, CLRS-30, ogbg-molhiv)",
        ("mean log-ratio over " + ", ".join(benchmarks) + ": "
         + ", ".join(f"{short(n)} {v:+.3f}" for n, v in sorted(((n, v) for n, v in means.items() if v is not None),
                                                               key=lambda nv: nv[1]))) if transfer_rows
        else "transfer not run",
        rule_best(means, "gelu_sinc_perturbation"), "transfer")
    clrs = next((r for r in transfer_rows if r["activation"] == "gelu_sinc_perturbation" and r["benchmark"] == "clrs"),
                None)
    add("gsp_clrs", "GSP gives clear gains on CLRS-30 (trained on 16 nodes, tested on 64).",
        "paper (secondary sources)", f"clrs log-ratio vs ReLU {_ci_text(clrs['ci'])}" if clrs else "clrs not run",
        rule_below_zero(clrs["ci"] if clrs else None), "transfer")
    imagenet = next((r for r in transfer_rows if r["activation"] == "gelu_sinc_perturbation"
                     and r["benchmark"] == "imagenet"), None)
    if imagenet:
        verdict = rule_not_above_zero(imagenet["ci"])
        measured = f"imagenet log-ratio vs ReLU {_ci_text(imagenet['ci'])}"
    else:
        why = ((transfer_part or {}).get("missing") or {}).get("imagenet", "not run in this mode")
        verdict, measured = (NOT_CHECKABLE, "ImageNet was not run"), f"ImageNet not run: {why}"
    add("gsp_imagenet", "GSP shows no loss on ImageNet.", "paper (secondary sources)", measured, verdict, "transfer")

    failures = None
    if transfer_rows:
        failures = {}
        flags = (batch_part or {}).get("probe", {})
        for r in transfer_rows:
            if r["activation"] in settings.functions and flags.get(r["activation"], {}).get("pointwise", True):
                failures[r["activation"]] = failures.get(r["activation"], 0) + r["failed"]
    add("pointwise_transfer", "Pointwise functions transfer: they train downstream without failing.",
        "paper (secondary sources)",
        f"{sum((failures or {}).values())} failed jobs of {len(failures or {})} pointwise functions on "
        f"{', '.join(benchmarks) or 'no benchmark'}" if failures is not None else "transfer not run",
        rule_no_failures(failures), "transfer")

    measured, verdict = _validity_measured(parts.get("validity")), rule_validity((parts.get("validity") or {}).get("overall"))
    overall = corr.get("correlations", {}).get("mean") or next(iter(corr.get("correlations", {}).values()), None)
    key = "mean" if corr.get("correlations", {}).get("mean") else (benchmarks[0] if benchmarks else None)
    if overall and overall.get("rho") is not None:
        measured += (f"; for information only, this run's own functions (part 5): ρ = {overall['rho']:+.2f} "
                     f"(p = {overall['p_value']:.3f}, {overall['n']} functions, "
                     f"{'mean over benchmarks' if key == 'mean' else key})")
    add("lab_predicts", "Lab fitness predicts the downstream ranking (a small-scale lab is enough).",
        "abstract (the premise of the lab)", measured, verdict, "analysis")

    winner = (search_part or {}).get("winner") if search_part else None
    if winner:
        held = winner["suites"].get(settings.heldout_suite, {})
        on_lab = winner["suites"].get(settings.suite, {})
        measured = (f"winner (program #{winner['program_id']}, search fitness {winner['search_fitness']:+.3f}): "
                    f"`{settings.heldout_suite}` {_ci_text(held.get('ci'))}, `{settings.suite}` "
                    f"{_ci_text(on_lab.get('ci'))}")
        verdict = rule_below_zero(held.get("ci") if held.get("ok") else None)
    else:
        measured, verdict = ("search skipped" if search_part is None else "the search found no program",
                             (NOT_CHECKABLE, "no search winner"))
    add("search", "An evolutionary search started from ReLU finds functions that extrapolate better than ReLU "
        "(the paper's mutator is an LLM; here the offline symbolic mutator).", "abstract", measured, verdict,
        "search")

    seconds = sorted(e["seconds"] for e in lab.values() if e.get("ok") and e.get("pointwise"))
    median = seconds[len(seconds) // 2] if seconds else None
    suite_info = (lab_part or {}).get("suites", {}).get(settings.suite, {})
    add("lab_seconds", "The lab is small-scale: seconds per evaluation.", "abstract",
        f"median {median:.1f} s per pointwise function ({suite_info.get('tasks', 0) * len(suite_info.get('seeds', []))} "
        f"MLPs, {suite_info.get('steps')} steps, one process)" if median is not None else "not run",
        rule_seconds(median), "lab")
    return claims


# ------------------------------------------------------------------------------------------------
# Plots (matplotlib, Agg)
# ------------------------------------------------------------------------------------------------

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _yerr(cis: Sequence[Mapping[str, Any] | None]) -> list[list[float]]:
    low = [(c["mean"] - c["low"]) if c and c.get("low") is not None else 0.0 for c in cis]
    high = [(c["high"] - c["mean"]) if c and c.get("high") is not None else 0.0 for c in cis]
    return [low, high]


def plot_lab(lab_part: Mapping, winner: Mapping | None, path: Path) -> Path:
    """Per suite: grouped bars (families and "all"), one bar per function, 95% intervals."""
    plt = _plt()
    suites = list(lab_part["suites"])
    fig, axes = plt.subplots(len(suites), 1, figsize=(12, 3.6 * len(suites)), squeeze=False)
    for ax, suite in zip(axes[:, 0], suites):
        data = lab_part["suites"][suite]
        entries = {n: e for n, e in data["functions"].items() if e.get("ok") and n != REFERENCE}
        if winner and winner.get("suites", {}).get(suite, {}).get("ok"):
            entries["search_winner"] = winner["suites"][suite]
        groups = list(data["families"]) + ["all"]
        _grouped_bars(ax, groups, {name: [entry["families"][g]["ci"] for g in data["families"]] + [entry["ci"]]
                                   for name, entry in entries.items()})
        ax.set_ylabel("ln(OOD error / ReLU's)")
        ax.set_title(f"suite {suite}: {len(data['seeds'])} seeds, mean and 95% interval over seeds (below 0 beats ReLU)")
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _save(fig, path)


def plot_alpha(alpha_part: Mapping, path: Path) -> Path:
    plt = _plt()
    points = [p for p in alpha_part["points"] if p["ok"]]
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    xs = [p["alpha"] for p in points]
    ax.plot(xs, [p["ci"]["mean"] for p in points], marker="o", label="mean over seeds")
    if all(p["ci"]["low"] is not None for p in points):
        ax.fill_between(xs, [p["ci"]["low"] for p in points], [p["ci"]["high"] for p in points], alpha=0.25,
                        label="95% interval")
    best = alpha_part.get("best_alpha")
    if best is not None:
        point = next(p for p in points if p["alpha"] == best)
        ax.plot([best], [point["ci"]["mean"]], marker="*", markersize=16, color="crimson", linestyle="none",
                label=f"optimum α = {best:g}")
    ax.axvline(0.1, color="grey", linestyle="--", linewidth=0.8, label="paper's α = 0.1")
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("α in GELU(x) + α·sin(x)   (α = 0: GELU, tanh approximation)")
    ax.set_ylabel("ln(OOD error / ReLU's)")
    ax.set_title(f"GELUSine α sweep on {alpha_part['suite']} ({len(alpha_part['seeds'])} seeds; lower is better)")
    ax.legend(fontsize="small")
    return _save(fig, path)


def plot_batch(batch_part: Mapping, path: Path) -> Path:
    plt = _plt()
    suites = list(batch_part["suites"])
    names = batch_part["batch_dependent"]
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    labels, cis = [], []
    for suite in suites:
        for name in names:
            row = batch_part["suites"][suite][name]
            for mode in ("in_batches", "per_example"):
                entry = row.get(mode)
                if entry and entry.get("ok"):
                    labels.append(f"{short(name)}\n{suite}\n{mode.replace('_', ' ')}")
                    cis.append(entry["ci"])
    ax.bar(range(len(cis)), [c["mean"] for c in cis], yerr=_yerr(cis), capsize=3,
           color=["tab:red" if "batches" in label else "tab:blue" for label in labels])
    ax.set_xticks(range(len(labels)), labels, fontsize="small")
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_ylabel("ln(OOD error / ReLU's)")
    ax.set_title("batch statistics: scored in batches (red) vs one example at a time (blue)")
    return _save(fig, path)


def plot_transfer(transfer_part: Mapping, path: Path) -> Path:
    plt = _plt()
    rows = [r for r in transfer_part["rows"] if r["activation"] != REFERENCE]
    benchmarks = list(transfer_part["benchmarks"])
    names = list(dict.fromkeys(r["activation"] for r in rows))
    by_cell = {(r["activation"], r["benchmark"]): r for r in rows}
    fig, ax = plt.subplots(figsize=(max(6.0, 2.0 + 2.2 * len(benchmarks)), 3.8))
    _grouped_bars(ax, benchmarks, {name: [by_cell[(name, b)]["ci"] if (name, b) in by_cell else None
                                          for b in benchmarks] for name in names})
    ax.set_ylabel("ln(error / ReLU's error)")
    ax.set_title(f"transfer: mean and 95% interval over {len(transfer_part['seeds'])} seeds (below 0 beats ReLU)")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _save(fig, path)


def plot_correlation(analysis_part: Mapping, path: Path) -> Path:
    plt = _plt()
    keys = list(analysis_part["correlations"])
    fig, axes = plt.subplots(1, len(keys), figsize=(5.0 * len(keys), 4.0), squeeze=False)
    for i, (ax, key) in enumerate(zip(axes[0], keys)):
        corr = analysis_part["correlations"][key]
        names = corr["functions"]
        x = [analysis_part["points"][n]["lab_fitness"] for n in names]
        y = [analysis_part["points"][n]["downstream"][key] for n in names]
        ax.scatter(x, y, color=["crimson" if n == "search_winner" else "tab:blue" for n in names])
        for n, a, b in zip(names, x, y):
            ax.annotate(short(n), (a, b), fontsize="x-small", xytext=(3, 3), textcoords="offset points")
        ax.axhline(0.0, color="grey", linewidth=0.6)
        ax.axvline(0.0, color="grey", linewidth=0.6)
        rho = "—" if corr["rho"] is None else f"{corr['rho']:+.2f} (p = {corr['p_value']:.3f})"
        ax.set_title(f"{key}: Spearman ρ = {rho}", fontsize="medium")
        ax.set_xlabel("lab fitness (−ood_log_ratio)")
        if i == 0:
            ax.set_ylabel("downstream fitness (−log-ratio vs ReLU)")
    fig.tight_layout()
    return _save(fig, path)


def _grouped_bars(ax, groups: Sequence[str], series: Mapping[str, Sequence[Mapping[str, Any] | None]]) -> None:
    """One bar per (function, group): each function's means with 95% error bars, side by side within
    a group, in the function's colour; a missing interval (None, or no mean) leaves its slot empty.
    Draws the zero line (ReLU) and the group ticks."""
    width = 0.8 / max(1, len(series))
    colours = _plt().get_cmap("tab10")
    for i, (name, cis) in enumerate(series.items()):
        slots = [(j, ci) for j, ci in enumerate(cis) if ci is not None and ci["mean"] is not None]
        ax.bar([j - 0.4 + width * (i + 0.5) for j, _ in slots], [ci["mean"] for _, ci in slots], width,
               yerr=_yerr([ci for _, ci in slots]), capsize=2, label=short(name), color=colours(i % 10))
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(groups)), groups)


def _save(fig, path: Path) -> Path:
    plt = _plt()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------------
# The markdown report
# ------------------------------------------------------------------------------------------------

def _f(value: float | None, fmt: str = "+.3f") -> str:
    return "—" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, fmt)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _names(names: Sequence[str]) -> str:
    names = [short(n) for n in names]
    if not names:
        return "none"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _lab_text(data: Mapping, suite: str) -> str:
    entries = {n: e for n, e in data["functions"].items() if n != REFERENCE}
    ok = {n: e for n, e in entries.items() if e.get("ok")}
    better = [n for n, e in ok.items() if e["ci"]["high"] is not None and e["ci"]["high"] < 0]
    worse = [n for n, e in ok.items() if e["ci"]["low"] is not None and e["ci"]["low"] > 0]
    tied = [n for n in ok if n not in better and n not in worse]
    above_gelu = [n for n, e in ok.items() if n != "gelu" and e.get("vs_gelu") and e["vs_gelu"]["high"] is not None
                  and e["vs_gelu"]["high"] < 0]
    ranked = sorted(ok, key=lambda n: ok[n]["ci"]["mean"])
    text = (f"On `{suite}` ({len(data['seeds'])} seeds), significantly better than ReLU (95% interval below 0): "
            f"{_names(better)}; not distinguishable from ReLU: {_names(tied)}; significantly worse: "
            f"{_names(worse)}. Significantly better than GELU: {_names(above_gelu)}.")
    if ranked:
        text += f" Best mean score: {short(ranked[0])} ({ok[ranked[0]]['ci']['mean']:+.3f})."
    failed = [n for n, e in entries.items() if not e.get("ok")]
    if failed:
        text += f" Failed: {_names(failed)}."
    return text


def _lab_table(data: Mapping, winner_entry: Mapping | None) -> list[str]:
    families = list(data["families"])
    header = ["function", "ood_log_ratio (lab's)", "mean [95% CI] over seeds", "vs GELU [95% CI]"] + families + \
        ["max ID error", "pointwise", "seconds"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    entries = dict(data["functions"])
    if winner_entry:
        entries["search_winner"] = winner_entry
    for name, e in entries.items():
        if not e.get("ok"):
            lines.append(f"| {short(name)} | failed: {e['error']['code']} |" + " |" * (len(header) - 2))
            continue
        cells = [short(name), _f(e["ood_log_ratio"]), _ci_text(e["ci"]), _ci_text(e.get("vs_gelu"))]
        cells += [_ci_text(e["families"][f]["ci"]) for f in families]
        cells += [f"{e['max_id_error']:.3g}", "yes" if e["pointwise"] else "**no**", f"{e['seconds']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_markdown(path: Path, out_dir: Path, settings: Settings, parts: Mapping[str, Any],
                   claims: Sequence[Claim], info: Mapping[str, Any]) -> Path:
    def link(name: str) -> str:
        return os.path.relpath(out_dir / name, path.parent).replace(os.sep, "/")

    command = settings.command()
    lab_part, alpha_part, batch_part = parts.get("lab"), parts.get("alpha"), parts.get("batch")
    transfer_part, search_part, corr = parts.get("transfer"), parts.get("search"), parts.get("analysis")
    winner = (search_part or {}).get("winner")
    counts = {v: sum(c.verdict == v for c in claims) for v in (REPRODUCED, NOT_REPRODUCED, NOT_CHECKABLE)}
    lines = [
        "# Reproduction: the paper's claims, checked by our lab",
        "",
        f"Generated by `{command}` on {info['date']}: do not edit by hand, run the command again. "
        "The raw numbers of every table are in the JSON files it links to; `actmine reproduce --help` "
        "says how to resume, force or change the run.",
        "",
        f"**{counts[REPRODUCED]} of {len(claims)} claims reproduced, {counts[NOT_REPRODUCED]} not reproduced, "
        f"{counts[NOT_CHECKABLE]} not checkable here.**" + (
            " This is the `--quick` run: fewer seeds, a shorter search and reduced transfer benchmarks "
            "(see Settings); `actmine reproduce` without `--quick` is the full version." if settings.quick else ""),
        "",
        "## Run",
        "",
        f"- machine: {info['machine']}; load average {info['load_start']} at the start, {info['load_end']} at "
        "the end (the machine is shared: times are wall-clock)",
        f"- torch {info['torch']}, Python {info['python']}, actmine {info['actmine']}; one torch thread in this "
        "process",
        f"- wall time of this invocation: **{_duration(info['wall_seconds'])}**; compute time of all parts when "
        f"they were computed: {_duration(info['parts_seconds'])} ("
        + ", ".join(f"{p} {_duration(s)}" + (" resumed" if p in info['resumed'] else "")
                    for p, s in info['part_seconds'].items()) + ")",
        f"- full version (`actmine reproduce`): {info['full_estimate']}",
        "",
        "### Settings",
        "",
        "| setting | value |",
        "|---|---|",
        f"| lab | suites `{settings.suite}` (search) and `{settings.heldout_suite}` (held out), seeds 0..{settings.seeds - 1}, "
        f"{settings.steps or 50} steps; batch dependence allowed (Turbulent) |",
        f"| functions | {', '.join(settings.functions)} |",
        f"| α grid (GELUSine) | {', '.join(f'{a:g}' for a in settings.alphas)} |",
        "| transfer | " + ("skipped" if settings.skip_transfer else
                            ", ".join(settings.benchmarks)
                            + (f" (and {', '.join(settings.optional_benchmarks)} when their data are present)"
                               if settings.optional_benchmarks else "")
                            + f", seeds 0..{settings.transfer_seeds - 1}, options "
                            f"`{json.dumps(settings.transfer_options)}`") + " |",
        "| search | " + ("skipped" if settings.skip_search else
                          f"default config with `{json.dumps(settings.search)}`") + " |",
        f"| workers | {settings.workers} |",
        "",
        "Intervals are 95% Student-t intervals over training seeds of the per-seed score (the lab's "
        "`ood_log_ratio` on one seed: mean over tasks of ln(OOD error ÷ ReLU's), clipped to ±3 per task and "
        "seed); differences between two functions are paired by seed. Negative beats ReLU.",
        "",
        "## Claims",
        "",
        "| # | the paper's claim | where it is stated | our measurement | verdict | rule | part (JSON) |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, c in enumerate(claims, 1):
        verdict = {REPRODUCED: "**reproduced**", NOT_REPRODUCED: "**not reproduced**",
                   NOT_CHECKABLE: "not checkable here"}[c.verdict]
        json_name = {"analysis": "analysis.json"}.get(c.part, f"{c.part}.json")
        lines.append(f"| {i} | {c.claim} | {c.source} | {c.measured} | {verdict}: {c.why} | {c.rule} | "
                     f"[{c.part}]({link(json_name)}) |")
    lines += ["", f"Every claim above was measured by `{command}`; the sections below give the equivalent "
              "stand-alone commands.", ""]

    # -- lab comparison
    lines += ["## 1. The lab comparison", ""]
    if lab_part:
        names = " ".join(settings.functions)
        lines += [f"Command: `{command}` (part `lab`); the same scores (without intervals) from "
                  f"`actmine compare {names} --seeds {settings.seeds} --allow-batch-dependent` and the same "
                  f"with `--suite {settings.heldout_suite}`.", "",
                  f"![per-family log-ratios]({link('lab.png')})", ""]
        suites = list(lab_part["suites"])
        if len(suites) == 2 and suites[0] != suites[1]:
            first, second = (lab_part["suites"][x]["functions"] for x in suites)

            def beats(entries, name):
                e = entries.get(name) or {}
                return bool(e.get("ok") and e["ci"]["high"] is not None and e["ci"]["high"] < 0)

            only_first = [n for n in first if beats(first, n) and not beats(second, n)]
            both = [n for n in first if beats(first, n) and beats(second, n)]
            lines += [f"Significantly better than ReLU on both suites: {_names(both)}; on `{suites[0]}` only: "
                      f"{_names(only_first)}. The held-out suite has other tasks of the same families: a function "
                      f"that wins only on `{suites[0]}` wins on its particular tasks.", ""]
        for suite, data in lab_part["suites"].items():
            lines += [f"### `{suite}`", "", _lab_text(data, suite), ""]
            lines += _lab_table(data, (winner or {}).get("suites", {}).get(suite) if winner else None)
            lines.append("")
        lines += ["`ood_log_ratio (lab's)` is the lab's own score (per task: mean over seeds, then clipped); "
                  "the interval column is over per-seed scores (clipped per task and seed), so the two differ "
                  "slightly where the clip binds. Per-family columns: mean [95% CI] of the family's log-ratio. "
                  "Turbulent is scored one example at a time, as `Lab.evaluate` scores batch-dependent functions "
                  "(see section 3 for batch scoring).", ""]
    else:
        lines += ["Not run.", ""]

    # -- alpha
    lines += ["## 2. GELUSine's α (Appendix C)", ""]
    if alpha_part:
        points = alpha_part["points"]
        best = alpha_part["best_alpha"]
        target = next((p for p in points if p.get("alpha") == 0.1 and p["ok"]), None)
        zero = next((p for p in points if p.get("alpha") == 0 and p["ok"]), None)
        significant_worse = [p["alpha"] for p in points if p["ok"] and p.get("vs_best")
                             and p["vs_best"]["low"] is not None and p["vs_best"]["low"] > 0]
        lines += [f"Command: `{command}` (part `alpha`); one point is `actmine evaluate` of "
                  "`gelu_sine` with that α (in Python: `activations.get('gelu_sine', alpha=α)`).", "",
                  f"![alpha sweep]({link('alpha.png')})", "",
                  f"The grid optimum is α* = {best:g}" + (f" ({_ci_text(next(p for p in points if p.get('alpha') == best)['ci'])})"
                                                         if best is not None else "")
                  + (f"; α = 0.1 scores {_ci_text(target['ci'])}" if target else "")
                  + (f", and α = 0.1 minus α = 0 (GELU) is {_ci_text(paired_ci(target['per_seed'], zero['per_seed']))}"
                     if target and zero else "")
                  + ". Points significantly worse than the optimum: "
                  + (", ".join(f"{a:g}" for a in significant_worse) or "none") + ".", "",
                  "| α | mean [95% CI] | minus α = 0.1 [95% CI] | minus optimum [95% CI] |", "|---|---|---|---|"]
        for p in points:
            if p["ok"]:
                lines.append(f"| {p['alpha']:g} | {_ci_text(p['ci'])} | {_ci_text(p.get('vs_0.1'))} | "
                             f"{_ci_text(p.get('vs_best'))} |")
            else:
                lines.append(f"| {p['alpha']:g} | failed: {p['error']['code']} | | |")
        lines.append("")
    else:
        lines += ["Not run.", ""]

    # -- batch statistics
    lines += ["## 3. The batch-statistics failure", ""]
    if batch_part:
        lines += [f"Command: `{command}` (part `batch`); the probe alone: "
                  "`python -c \"from actmine import activations; from actmine.candidate.probes import is_pointwise; "
                  "print(is_pointwise(activations.get('turbulent')))\"`; `actmine evaluate turbulent` refuses it "
                  "(`batch_dependent`) unless `--allow-batch-dependent`.", "",
                  "| function | pointwise (probe) | with the default probe budget |", "|---|---|---|"]
        for name, v in batch_part["probe"].items():
            lines.append(f"| {short(name)} | {'yes' if v['pointwise'] else '**no**' if v['pointwise'] is False else v['error']} "
                         f"| {v.get('default_budget', '—')} |")
        lines.append("")
        if batch_part["batch_dependent"]:
            lines += [f"![batch vs per example]({link('batch.png')})", "",
                      "| function | suite | in batches [95% CI] | per example [95% CI] | batches − per example |",
                      "|---|---|---|---|---|"]
            for suite, rows in batch_part["suites"].items():
                for name, row in rows.items():
                    ib, pe = row["in_batches"], row.get("per_example") or {}
                    lines.append(f"| {short(name)} | `{suite}` | {_ci_text(ib.get('ci')) if ib.get('ok') else 'failed'} | "
                                 f"{_ci_text(pe.get('ci')) if pe.get('ok') else '—'} | "
                                 f"{_ci_text(row['batches_minus_per_example'])} |")
            lines.append("")
            turbulent_rows = [r for r in (transfer_part or {}).get("rows", []) if r["activation"] == "turbulent"]
            for name in batch_part["batch_dependent"]:
                row = batch_part["suites"].get(settings.suite, {}).get(name)
                if not row:
                    continue
                ib, pe = row["in_batches"], row.get("per_example") or {}
                if ib.get("ok") and pe.get("ok"):
                    diff = row["batches_minus_per_example"]
                    sig = ("significantly" if diff and diff["low"] is not None and (diff["low"] > 0 or diff["high"] < 0)
                           else "not significantly")
                    lines.append(f"On `{settings.suite}`, {short(name)} scores {ib['ci']['mean']:+.3f} with batch "
                                 f"statistics and {pe['ci']['mean']:+.3f} one example at a time ({sig} different). "
                                 "In batches, each model's ID evaluation points, and separately its OOD points, share "
                                 "the statistics; training always uses each model's own minibatch.")
            if turbulent_rows:
                lines.append("Downstream (where the network is trained and tested in minibatches): "
                             + "; ".join(f"{r['benchmark']} {r['mean']:.4f} mean score, log-ratio vs ReLU "
                                         f"{_ci_text(r['ci'])}" + (f", {r['failed']} failed" if r['failed'] else "")
                                         if r["n"] else f"{r['benchmark']}: every job failed"
                                         for r in turbulent_rows) + ".")
            lines.append("")
    else:
        lines += ["Not run.", ""]

    # -- transfer
    lines += ["## 4. Transfer", ""]
    if transfer_part and transfer_part.get("rows"):
        benchmarks = transfer_part["benchmarks"]
        activations_arg = ",".join(list(settings.functions) + ([str(out_dir / WINNER_FILE)] if winner else []))
        option_args = " ".join(f"--option {shlex.quote(f'{b}.{k}={json.dumps(v)}')}"
                               for b, opts in transfer_part["options"].items() for k, v in opts.items())
        lines += [f"Command: `{command}` (part `transfer`); equivalent: `actmine transfer --activations "
                  f"{activations_arg} --benchmarks {','.join(benchmarks)} --seeds {len(transfer_part['seeds'])} "
                  f"{option_args} --out {out_dir / 'transfer'}`.", "",
                  f"![transfer]({link('transfer.png')})", ""]
        if transfer_part.get("missing"):
            lines += ["Not run (data or dependency missing): " + "; ".join(
                f"`{b}`: {why}" for b, why in transfer_part["missing"].items()) + ".", ""]
        metric = {r["benchmark"]: r["metric"] for r in transfer_part["rows"]}
        header = ["function"] + [f"{b} {metric.get(b, '')} (mean ± sd)" for b in benchmarks] + \
            [f"{b} log-ratio [95% CI]" for b in benchmarks]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        by_cell = {(r["activation"], r["benchmark"]): r for r in transfer_part["rows"]}
        for name in dict.fromkeys(r["activation"] for r in transfer_part["rows"]):
            cells = [short(name)]
            for b in benchmarks:
                r = by_cell.get((name, b))
                cells.append("—" if not r or not r["n"] else f"{r['mean']:.4f} ± {_f(r['std'], '.4f')}"
                             + (f" ({r['failed']} failed)" if r["failed"] else ""))
            for b in benchmarks:
                r = by_cell.get((name, b))
                cells.append("0 (reference)" if name == REFERENCE else _ci_text(r["ci"]) if r else "—")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        for b in benchmarks:
            rows = [r for r in transfer_part["rows"] if r["benchmark"] == b and r["activation"] != REFERENCE
                    and r["ci"]["mean"] is not None]
            better = [r["activation"] for r in rows if r["ci"]["high"] is not None and r["ci"]["high"] < 0]
            worse = [r["activation"] for r in rows if r["ci"]["low"] is not None and r["ci"]["low"] > 0]
            best = min(rows, key=lambda r: r["ci"]["mean"]) if rows else None
            lines.append(f"On `{b}`: significantly better than ReLU: {_names(better)}; significantly worse: "
                         f"{_names(worse)}" + (f"; best mean: {short(best['activation'])} "
                                               f"({best['ci']['mean']:+.3f})" if best else "") + ".")
        if settings.quick and "clrs" in benchmarks:
            lines.append("")
            lines.append("In `--quick`, CLRS is reduced (see Settings: one algorithm, a smaller model, fewer steps "
                         "and test graphs than the benchmark's defaults of four algorithms × 300 steps), and "
                         "`digits` trains for fewer epochs: a smoke check of the transfer claims, not a test of the "
                         "paper's CLRS-30 numbers. The full run uses the benchmarks' defaults.")
        if transfer_part["failures"]:
            lines += ["", "Failed jobs: " + "; ".join(
                f"{short(f['activation'])} on {f['benchmark']} seed {f['seed']}: [{f['error']['code']}] "
                f"{f['error']['message'][:160]}" for f in transfer_part["failures"])]
        lines.append("")
    elif transfer_part is not None:
        lines += ["No benchmark could run: " + "; ".join(f"`{b}`: {why}" for b, why in
                                                          transfer_part.get("missing", {}).items()), ""]
    else:
        lines += ["Skipped (`--skip-transfer`).", ""]

    # -- correlation
    lines += ["## 5. Does lab fitness predict downstream rank?", "",
              "The verdict of this claim comes from the validity study (`actmine validate`, "
              "docs/validity.md): two dozen functions or more across the whole range of lab "
              "fitness, lab fitness on the unseen test suites, real-data extrapolation benchmarks, bootstrap "
              "intervals; " + _validity_measured(parts.get("validity")) + ". The correlation below uses only this "
              "run's few functions and benchmarks and is shown for information.", ""]
    if corr and corr.get("correlations"):
        lines += ["Spearman's ρ (average ranks for ties) across all functions between lab fitness "
                  f"(−ood_log_ratio on `{settings.suite}`) and downstream fitness (−log-ratio vs ReLU; ReLU is "
                  "(0, 0)); p: one-sided permutation test of ρ > 0.", "",
                  f"![lab vs downstream]({link('correlation.png')})", "",
                  "| downstream | functions | Spearman ρ | one-sided p |", "|---|---|---|---|"]
        for key, c in corr["correlations"].items():
            lines.append(f"| {'mean over benchmarks' if key == 'mean' else key} | {c['n']} | {_f(c['rho'], '+.2f')} | "
                         f"{_f(c['p_value'], '.3f')} |")
        lines.append("")
    else:
        lines += ["Not computed (needs the lab comparison and the transfer).", ""]

    # -- search
    lines += ["## 6. A short search, and where its winner lands", ""]
    if search_part:
        config = search_part["config"]
        lines += [f"Command: `{command}` (part `search`); equivalent: `actmine search --budget "
                  f"{config['search']['budget']} --run-dir {search_part['run_dir']}` with `lab.seeds: "
                  f"{config['lab']['seeds']}`, `search.time_limit: {config['search']['time_limit']}`, "
                  f"`search.heldout_top: {config['search']['heldout_top']}` in a config file.", "",
                  f"{search_part['evaluated']} evaluations in {_duration(search_part['seconds'])} "
                  f"({config['mutator']['kind']} mutator, {config['lab']['seeds']} seeds on `{config['lab']['suite']}`, "
                  f"{config['executor']['workers']} workers)."]
        if winner:
            lines += ["", f"The winner, program #{winner['program_id']} (search fitness "
                      f"{winner['search_fitness']:+.3f}; saved as [{WINNER_FILE}]({link(WINNER_FILE)})):", "",
                      "```python", winner["source"].rstrip(), "```", ""]
            for suite in (settings.suite, settings.heldout_suite):
                entry = winner["suites"].get(suite, {})
                functions = _lab_functions(lab_part, suite)
                if entry.get("ok") and functions:
                    means = sorted([e["ci"]["mean"] for e in functions.values() if e.get("ok")] + [entry["ci"]["mean"]])
                    rank = means.index(entry["ci"]["mean"]) + 1
                    lines.append(f"- `{suite}` ({settings.seeds} seeds): {_ci_text(entry['ci'])}, rank {rank} of "
                                 f"{len(means)} functions (lowest first).")
                elif entry:
                    lines.append(f"- `{suite}`: failed ({(entry.get('error') or {}).get('code')}).")
            rows = [r for r in (transfer_part or {}).get("rows", []) if r["activation"] == "search_winner"]
            for r in rows:
                others = sorted(0.0 if x["activation"] == REFERENCE else x["ci"]["mean"] for x in transfer_part["rows"]
                                if x["benchmark"] == r["benchmark"] and (x["activation"] == REFERENCE or
                                                                         x["ci"]["mean"] is not None))
                if r["ci"]["mean"] is not None:
                    lines.append(f"- `{r['benchmark']}`: log-ratio vs ReLU {_ci_text(r['ci'])}, rank "
                                 f"{others.index(r['ci']['mean']) + 1} of {len(others)} functions, ReLU included "
                                 "(lowest first).")
            if settings.quick:
                lines.append("")
                lines.append(f"With {config['lab']['seeds']} seeds and {config['search']['budget']} evaluations the "
                             "search's best is partly selected on seed noise (docs/lab.md, \"Noise\"); its held-out "
                             "score is the honest number.")
        else:
            lines.append("The search produced no scored program.")
        lines.append("")
    else:
        lines += ["Skipped (`--skip-search`).", ""]

    lines += ["## Files and resuming", "",
              f"`{out_dir}/` holds one JSON file per part (`search.json`, `lab.json`, `alpha.json`, `batch.json`, "
              "`transfer.json`, `analysis.json`, `claims.json`), the plots, the search winner's source, the transfer "
              "journal (`transfer/`) and the search's run directory (`runs/`). Each part's JSON records the settings "
              "that produced it; running the command again reuses every part whose JSON has the same settings (an "
              "interrupted run resumes; only this report is rewritten) and `--force` recomputes them all.", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------

FULL_ESTIMATE = ("not timed in this report; estimated at 2–3 hours on this 2-core machine under a similar load "
                 "(lab parts with 8 seeds ~4 min, the default search ~15 min, digits with 12 epochs ~5 min, and CLRS "
                 "with its defaults, 4 algorithms × 300 steps, about 8 min per job × 30 jobs ÷ 2 workers ≈ 2 h); "
                 "the report of a full run records its own time. More cores and `--workers` shorten the search "
                 "and the transfer; `--device cuda` the training")


def _atomic_write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=1, allow_nan=False), encoding="utf-8")
    os.replace(temporary, path)


def _jsonable(value: Any) -> Any:
    """Non-finite floats become None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu})"


def _load() -> str:
    try:
        return " / ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def run_reproduce(settings: Settings, out_dir: str | Path = "reproduction", doc: str | Path = "docs/reproduction.md",
                  force: bool = False, progress: Progress | None = None) -> dict[str, Any]:
    """Run (or resume) every part, then write the plots, `claims.json` and the markdown report.

    Returns ``{"claims": [...], "doc": path, "wall_seconds": …, "resumed": [...], "computed": [...]}``.
    """
    from ..version import __version__

    started = time.perf_counter()
    load_start = _load()
    out_dir, doc = Path(out_dir), Path(doc)
    out_dir.mkdir(parents=True, exist_ok=True)
    progress = progress or Progress(enabled=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    parts: dict[str, Any] = {}
    part_seconds: dict[str, float] = {}
    resumed: list[str] = []
    computed: list[str] = []
    common = {"format": PART_FORMAT, "torch": torch.__version__, "suite": settings.suite,
              "heldout_suite": settings.heldout_suite, "seeds": settings.seeds, "steps": settings.steps,
              "device": settings.device}

    def run_part(name: str, key: Mapping[str, Any], compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        path = out_dir / f"{name}.json"
        key = json.loads(json.dumps({**common, **key}, default=str))
        if not force and path.is_file():
            try:
                saved = json.loads(path.read_text(encoding="utf-8"))
                if saved.get("settings") == key:
                    resumed.append(name)
                    part_seconds[name] = saved.get("seconds", 0.0)
                    progress.say(f"{name}: reusing {path} (same settings; --force recomputes it)")
                    return saved["result"]
            except (ValueError, KeyError, OSError):
                pass  # unreadable: recomputed
        progress.say(f"{name}: running")
        t0 = time.perf_counter()
        result = _jsonable(compute())
        seconds = round(time.perf_counter() - t0, 1)
        _atomic_write_json(path, {"part": name, "settings": key, "seconds": seconds,
                                  "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                  "result": result})
        part_seconds[name] = seconds
        computed.append(name)
        progress.say(f"{name}: done in {_duration(seconds)}, saved {path}")
        return result

    try:
        if not settings.skip_search:
            parts["search"] = run_part("search", {"search": settings.search, "config": _search_config(settings)},
                                       lambda: part_search(settings, out_dir, progress))
        parts["lab"] = run_part("lab", {"functions": list(settings.functions)},
                                lambda: part_lab(settings, progress))
        parts["alpha"] = run_part("alpha", {"alphas": list(settings.alphas)}, lambda: part_alpha(settings, progress))
        parts["batch"] = run_part("batch", {"functions": list(settings.functions)},
                                  lambda: part_batch(settings, progress, parts["lab"]))
        if not settings.skip_transfer:
            winner = (parts.get("search") or {}).get("winner")
            winner_file = None
            if winner:
                winner_file = out_dir / WINNER_FILE
                if not winner_file.is_file() or winner_file.read_text(encoding="utf-8").rstrip() != winner["source"].rstrip():
                    winner_file.write_text(winner["source"].rstrip() + "\n", encoding="utf-8")
            benchmarks, missing = available_benchmarks(settings)
            parts["transfer"] = run_part("transfer", {
                "functions": list(settings.functions), "winner": winner["sha256"] if winner else None,
                "benchmarks": benchmarks, "missing": sorted(missing), "transfer_seeds": settings.transfer_seeds,
                "options": settings.transfer_options, "data_dir": settings.data_dir},
                lambda: part_transfer(settings, out_dir, progress, winner_file, benchmarks, missing))
        parts["analysis"] = _jsonable(analysis(settings, parts.get("lab"), parts.get("search"), parts.get("transfer")))
        _atomic_write_json(out_dir / "analysis.json", {"part": "analysis", "result": parts["analysis"]})
    finally:
        torch.set_num_threads(threads)

    parts["validity"] = load_validity(settings.validity)
    claims = build_claims(settings, parts)
    _atomic_write_json(out_dir / "claims.json", {"command": settings.command(), "settings": settings.to_dict(),
                                                "claims": [c.to_dict() for c in claims]})
    winner = (parts.get("search") or {}).get("winner")
    plot_lab(parts["lab"], winner, out_dir / "lab.png")
    plot_alpha(parts["alpha"], out_dir / "alpha.png")
    if parts["batch"]["batch_dependent"]:
        plot_batch(parts["batch"], out_dir / "batch.png")
    if parts.get("transfer") and parts["transfer"].get("rows"):
        plot_transfer(parts["transfer"], out_dir / "transfer.png")
    if parts["analysis"].get("correlations"):
        plot_correlation(parts["analysis"], out_dir / "correlation.png")
    wall = time.perf_counter() - started
    info = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": _machine(),
            "load_start": load_start, "load_end": _load(), "torch": torch.__version__,
            "python": platform.python_version(), "actmine": __version__, "wall_seconds": wall,
            "parts_seconds": sum(part_seconds.values()), "part_seconds": part_seconds, "resumed": resumed,
            "full_estimate": (f"this run ({_duration(wall)})" if not settings.quick else FULL_ESTIMATE)}
    write_markdown(doc, out_dir, settings, parts, claims, info)
    return {"claims": claims, "doc": doc, "wall_seconds": wall, "resumed": resumed, "computed": computed,
            "parts": parts}
