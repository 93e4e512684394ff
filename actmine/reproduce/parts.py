"""The parts of a reproduction: each a function of the settings returning plain JSON-able data.

    search    a short search from ReLU (offline symbolic mutator); its winner scored like the rest
    lab       every function on the search suite and the held-out suite
    alpha     GELUSine's α over a grid (α = 0 is GELU, tanh approximation)
    batch     batch-dependent functions scored in batches vs one example at a time; the probe's verdicts
    transfer  the functions (and the winner) on the benchmarks whose data are present
    analysis  the rank correlation between lab fitness and downstream fitness

`run_reproduce` (the package) runs them in this order and saves each result (`cache`).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .progress import Progress
from .rules import mean_ci, paired_ci, spearman, spearman_p_value
from .scoring import _add_paired, _entry, _make_lab, score_activation
from .settings import REFERENCE, WINNER_FILE, Settings, _search_config, _settings_key


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
            out["suites"][suite] = {
                "suite": lab.suite.name,
                "seeds": list(lab.suite.seeds),
                "tasks": len(lab.suite.tasks),
                "families": lab.suite.families,
                "steps": lab.protocol.steps,
                "functions": entries,
            }
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
            points[f"{alpha:g}"] = score_activation(
                lab, activations.get("gelu_sine", alpha=alpha), f"gelu_sine(alpha={alpha:g})"
            )
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
    return {
        "suite": lab.suite.name,
        "seeds": list(lab.suite.seeds),
        "alphas": list(settings.alphas),
        "points": [points[f"{a:g}"] for a in settings.alphas],
        "best_alpha": best["alpha"] if best else None,
    }


def _probe_verdicts(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every function's probe verdict (pointwise or not), and whether the default probe budget
    accepts it."""
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
    return verdicts


def part_batch(settings: Settings, progress: Progress, lab_part: Mapping[str, Any]) -> dict[str, Any]:
    """Batch-dependent functions scored in batches (each model's whole evaluation batch shares the
    statistics, as in a lab that evaluates in batches) and one example at a time (the lab part's
    numbers: how `Lab.evaluate` scores them); the probe's verdict on every function."""
    import actmine.activations as activations

    verdicts = _probe_verdicts(settings)
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
                paired = (
                    paired_ci(in_batches["per_seed"], per_example["per_seed"])
                    if in_batches.get("ok") and per_example and per_example.get("ok")
                    else None
                )
                rows[name] = {"in_batches": in_batches, "per_example": per_example, "batches_minus_per_example": paired}
                progress.advance(f"{name} on {suite}")
            out["suites"][suite] = rows
    finally:
        progress.stop()
    return out


def part_search(settings: Settings, out_dir: Path, progress: Progress) -> dict[str, Any]:
    """A short search from ReLU with the offline mutator; its best program scored on both suites
    (program text: only ever run in sandboxed workers)."""
    from ..config import Config
    from ..evolve.controller import Search

    # The held-out suite is reported below, so it must not choose the winner: a top list of one
    # leaves the search's validation step nothing to choose from.
    overrides = {
        "lab.suite": settings.suite,
        "lab.heldout_suite": settings.heldout_suite,
        "lab.steps": settings.steps,
        "executor.workers": settings.workers,
        "search.initial_programs": ["relu"],
        **settings.search,
        "search.heldout_top": 1,
    }
    config = Config().with_overrides(overrides)
    # what the search computes names its run directory (workers may change on resume)
    run_dir = (
        out_dir / "runs" / f"search-{_settings_key({k: v for k, v in config.to_dict().items() if k != 'executor'})}"
    )
    progress.say(
        f"search: {config.search.budget} evaluations ({config.mutator.kind} mutator, "
        f"{config.lab.training_seeds} seeds, {config.executor.workers} workers) in {run_dir}"
    )
    started = time.perf_counter()
    summary = Search(config, run_dir, live=False).run()
    if summary.get("interrupted"):
        raise KeyboardInterrupt
    search_seconds = time.perf_counter() - started
    best = summary.get("best")
    result: dict[str, Any] = {
        "config": config.to_dict(),
        "run_dir": str(run_dir),
        "evaluated": summary["evaluated"],
        "seconds": round(search_seconds, 1),
        "failures": summary.get("failures"),
        "heldout_check": summary.get("heldout"),
        "winner": None,
    }
    if best is None:
        return result
    source = best["source"]
    (out_dir / WINNER_FILE).write_text(source if source.endswith("\n") else source + "\n", encoding="utf-8")
    winner: dict[str, Any] = {
        "program_id": best["id"],
        "search_fitness": best["fitness"],
        "source": source,
        "rationale": best.get("rationale"),
        "file": WINNER_FILE,
        "sha256": hashlib.sha256(source.encode()).hexdigest(),
        "suites": {},
    }
    _score_winner(settings, source, progress, winner["suites"])
    result["winner"] = winner
    return result


def _score_winner(settings: Settings, source: str, progress: Progress, entries: dict[str, Any]) -> None:
    """The search winner's entry on each suite, into ``entries`` (scored in sandboxed workers)."""
    from ..candidate.sandbox import SandboxPool
    from ..config import Config

    limits = Config.from_dict(_search_config(settings)).sandbox_limits()  # the search's own limits
    suites = [settings.suite, settings.heldout_suite]
    progress.start("winner", len(suites) * (settings.seeds + 1))
    try:
        with SandboxPool(workers=max(1, min(settings.workers, settings.seeds + 1)), limits=limits) as pool:
            for suite in suites:
                entries[suite] = _winner_entry(settings, source, pool, suite, progress)
    finally:
        progress.stop()


def _winner_entry(settings: Settings, source: str, pool: Any, suite: str, progress: Progress) -> dict[str, Any]:
    """The winner on one suite: one evaluation on every seed (the official score) and one per seed."""
    from ..lab.tasks import Suite

    # the search's probe budget: batch dependence refused
    lab = _make_lab(settings, suite, allow_batch_dependent=False)
    singles = [
        _make_lab(
            settings, Suite(lab.suite.name, lab.suite.tasks, (seed,)), keep_seeds=True, allow_batch_dependent=False
        )
        for seed in lab.suite.seeds
    ]
    started = time.perf_counter()
    futures = [pool.submit(source, lab, "search_winner")]
    futures += [pool.submit(source, single, f"search_winner seed {single.suite.seeds[0]}") for single in singles]
    evaluations = []
    for future in futures:
        evaluations.append(future.result())
        progress.advance(f"winner on {suite}")
    full, per_seed = evaluations[0], evaluations[1:]
    failed = next((e for e in evaluations if not e.ok), None)
    if failed is not None:
        return _entry(lab, "search_winner", None, None, None, time.perf_counter() - started, None, failed.error)
    return _entry(
        lab,
        "search_winner",
        None,
        full.ood_log_ratio,
        full.tasks,
        full.seconds,
        bool(full.probes.get("pointwise")),
        per_seed_evaluations=per_seed,
    )


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


def part_transfer(
    settings: Settings,
    out_dir: Path,
    progress: Progress,
    winner_file: Path | None,
    benchmarks: Sequence[str],
    missing: Mapping[str, str],
) -> dict[str, Any]:
    """The functions (and the search's winner, as a program file) on the benchmarks present."""
    from ..transfer.runner import run_transfer

    names = list(settings.functions) + ([str(winner_file)] if winner_file else [])
    options = {b: settings.transfer_options.get(b, {}) for b in benchmarks}
    result: dict[str, Any] = {
        "benchmarks": list(benchmarks),
        "missing": dict(missing),
        "seeds": list(range(settings.transfer_seeds)),
        "options": options,
        "rows": [],
        "per_seed": {},
        "failures": [],
    }
    if not benchmarks:
        return result
    run = run_transfer(
        names,
        benchmarks,
        settings.transfer_seeds,
        options=options,
        data_dir=settings.data_dir,
        device=settings.device,
        workers=settings.workers,
        out=out_dir / "transfer",
        progress=progress.enabled,
        notify=progress.say,
        console=progress.console,
    )
    scores: dict[tuple[str, str], dict[int, float]] = {}
    for r in run.results:
        if r.ok:
            scores.setdefault((r.activation, r.benchmark), {})[r.seed] = r.score
        else:
            result["failures"].append(
                {"activation": r.activation, "benchmark": r.benchmark, "seed": r.seed, "error": r.error}
            )
    for row in run.rows:
        per_seed = _per_seed_log_ratios(scores, row["activation"], row["benchmark"])
        result["per_seed"].setdefault(row["activation"], {})[row["benchmark"]] = per_seed
        result["rows"].append({**row, "ci": mean_ci(per_seed)})
    result["seconds_jobs"] = round(sum(r.seconds for r in run.results), 1)
    result["files"] = {k: str(v) for k, v in run.files.items()}
    return result


def _per_seed_log_ratios(
    scores: Mapping[tuple[str, str], Mapping[int, float]], activation: str, benchmark: str
) -> list[float]:
    """One function's finite log-ratios vs ReLU on one benchmark, paired by seed (``scores``:
    ``{(activation, benchmark): {seed: score}}``)."""
    from ..transfer.runner import log_ratio

    mine = scores.get((activation, benchmark), {})
    reference = scores.get((REFERENCE, benchmark), {})
    bounded = all(0.0 <= s <= 1.0 for (a, b), seeds in scores.items() if b == benchmark for s in seeds.values())
    per_seed = [log_ratio(mine[s], reference[s], bounded) for s in sorted(mine) if s in reference]
    return [v for v in per_seed if math.isfinite(v)]


def analysis(
    settings: Settings, lab_part: Mapping | None, search_part: Mapping | None, transfer_part: Mapping | None
) -> dict[str, Any]:
    """Spearman's ρ between lab fitness (−ood_log_ratio on the search suite) and downstream fitness
    (−log-ratio vs ReLU), per benchmark and for the mean over benchmarks, across every function."""
    out: dict[str, Any] = {"points": {}, "correlations": {}}
    if not lab_part or not transfer_part or not transfer_part.get("rows"):
        return out
    lab = dict(lab_part["suites"][settings.suite]["functions"])
    if search_part and search_part.get("winner"):
        lab["search_winner"] = search_part["winner"]["suites"].get(settings.suite)
    benchmarks = list(transfer_part["benchmarks"])
    points = _fitness_points(lab, _downstream_log_ratios(transfer_part), benchmarks)
    out["points"] = points
    for key in benchmarks + (["mean"] if len(benchmarks) > 1 else []):
        names = [n for n, p in points.items() if key in p["downstream"]]
        x = [points[n]["lab_fitness"] for n in names]
        y = [points[n]["downstream"][key] for n in names]
        rho = spearman(x, y) if len(names) >= 3 else None
        out["correlations"][key] = {
            "n": len(names),
            "functions": names,
            "rho": rho,
            "p_value": spearman_p_value(x, y) if rho is not None else None,
        }
    return out


def _downstream_log_ratios(transfer_part: Mapping) -> dict[str, dict[str, float]]:
    """``{function: {benchmark: mean log-ratio vs ReLU}}`` (ReLU itself: 0 where it was scored)."""
    downstream: dict[str, dict[str, float]] = {}
    for row in transfer_part["rows"]:
        value = 0.0 if row["activation"] == REFERENCE and row["n"] else row["log_ratio_vs_relu"]
        if value is not None:
            downstream.setdefault(row["activation"], {})[row["benchmark"]] = value
    return downstream


def _fitness_points(
    lab: Mapping[str, Any], downstream: Mapping[str, Mapping[str, float]], benchmarks: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Per function scored in both: its lab fitness and its downstream fitness per benchmark (and
    their mean when every benchmark has one)."""
    points = {}
    for name, entry in lab.items():
        if not entry or not entry.get("ok") or name not in downstream:
            continue
        point = {
            "lab_fitness": entry["fitness"],
            "downstream": {b: -downstream[name][b] for b in benchmarks if b in downstream[name]},
        }
        if len(point["downstream"]) == len(benchmarks):
            point["downstream"]["mean"] = sum(point["downstream"][b] for b in benchmarks) / len(benchmarks)
        points[name] = point
    return points
