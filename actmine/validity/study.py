"""`actmine validate`: the validity study, start to end (see the package docstring).

Steps: check every input (nothing runs before the inputs are known good) → gather the functions →
score them in the lab (``DIR/lab.jsonl``) → choose the random programs stratified by lab fitness →
train every function the lab scored on every benchmark and seed (`run_transfer`, ``DIR/transfer/``)
→ correlate → write ``DIR/validity.json``, ``DIR/validity.md`` and the scatter plots. Both
journals resume: a rerun with the same ``DIR`` and settings recomputes nothing but the analysis.
"""

from __future__ import annotations

import json
import math
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

import actmine.validity.data as data
import actmine.validity.labscore as labscore
import actmine.validity.stats as stats
from ..atomic_files import write_text_atomically
from .functions import (
    Function,
    ValidityInputError,
    library_functions,
    named_functions,
    pool_functions,
    random_pool,
    registry_function,
    winner_functions,
)

__all__ = ["Settings", "run_validity", "summary_table"]

FORMAT = 1
DEFAULT_BENCHMARKS = ("series", "diabetes", "digits", "clrs")


@dataclass(frozen=True)
class Settings:
    """What the study runs (the CLI's options; see `actmine validate --help`)."""

    benchmarks: tuple[str, ...] = DEFAULT_BENCHMARKS
    seeds: int = 3
    random: int = 12
    random_pool: int = 48
    random_seed: int = 0
    runs: tuple[str, ...] = ()
    functions: tuple[str, ...] | None = None  # None: every pointwise registry activation
    lab_suites: tuple[str, ...] | None = None  # None: the default config's unseen test suites
    executor: str = "local"
    workers: int | None = None
    scheduler: str | None = None
    options: tuple[str, ...] = ()  # BENCHMARK.KEY=VALUE
    data_dir: str | None = None
    replicates: int = stats.REPLICATES

    def command(self, out: str | Path) -> str:
        """The `actmine validate` command line of these settings."""
        words = [
            "actmine",
            "validate",
            "--out",
            str(out),
            "--benchmarks",
            ",".join(self.benchmarks),
            "--seeds",
            str(self.seeds),
            "--random",
            str(self.random),
            "--random-pool",
            str(self.random_pool),
        ]
        optional = [
            ("--random-seed", self.random_seed, 0),
            ("--executor", self.executor, "local"),
            ("--workers", self.workers, None),
            ("--scheduler", self.scheduler, None),
            ("--data-dir", self.data_dir, None),
            ("--replicates", self.replicates, stats.REPLICATES),
        ]
        words += [w for flag, value, default in optional if value != default for w in (flag, str(value))]
        if self.lab_suites is not None:
            words += ["--lab-suites", ",".join(self.lab_suites)]
        for flag, values in (("--functions", self.functions), ("--run", self.runs)):
            if values:
                words += [flag, *values]
        for option in self.options:
            words += ["--option", option]
        return shlex.join(words)


def _check_settings(settings: Settings) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """The benchmarks (canonical names) and their options; every input error before any work."""
    from ..transfer.base import DatasetMissing
    from ..transfer.runner import TransferInputError, check_benchmarks, parse_options

    for name, value, low in (
        ("--seeds", settings.seeds, 1),
        ("--random", settings.random, 0),
        ("--random-pool", settings.random_pool, 0),
        ("--replicates", settings.replicates, 100),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValidityInputError(f"{name} must be an integer of at least {low}, got {value!r}")
    if settings.random > settings.random_pool:
        raise ValidityInputError(
            f"--random {settings.random} is more than --random-pool {settings.random_pool}: the "
            "random programs are chosen from the pool"
        )
    from ..executors import job_pool_names

    if settings.executor not in job_pool_names():  # it runs the lab's programs and the transfer jobs
        raise ValidityInputError(
            f"unknown executor {settings.executor!r}; choose one of: {', '.join(job_pool_names())}"
        )
    if settings.workers is not None and (
        isinstance(settings.workers, bool) or not isinstance(settings.workers, int) or settings.workers < 1
    ):
        raise ValidityInputError(f"--workers must be an integer of at least 1, got {settings.workers!r}")
    if settings.executor == "local":
        from ..candidate.sandbox import check_local_workers

        try:
            check_local_workers(settings.workers, "--workers")
        except ValueError as exc:
            raise ValidityInputError(str(exc)) from None
    if settings.scheduler and settings.executor != "dask":
        raise ValidityInputError("--scheduler needs --executor dask")
    try:
        classes, options = check_benchmarks(
            [b for b in settings.benchmarks if b.strip()] or [""],
            parse_options(settings.options),
            data_dir=settings.data_dir,
        )
    except TransferInputError as exc:
        raise ValidityInputError(str(exc)) from None
    except DatasetMissing as exc:
        raise ValidityInputError(f"benchmark {exc} (or leave it out of --benchmarks)") from None
    return list(classes), options


def pool_names(settings: Settings) -> set[str]:
    """The names the random pool's programs will have (`pool_functions`), known before drawing them."""
    return {f"random{settings.random_seed}_{j:03d}" for j in range(settings.random_pool if settings.random else 0)}


def _fixed_functions(settings: Settings, out: Path) -> tuple[list[Function], dict[str, str]]:
    """The library (or --functions) with ReLU, and the search winners; ``{name: why}`` skipped.
    Checked for a count of at least 3 with the random programs to come."""
    directory = out / "functions"
    skipped: dict[str, str] = {}
    taken = pool_names(settings)  # the pool's names are fixed: every other program is named around them
    if settings.functions is None:
        fixed, skipped = library_functions()
    else:
        fixed = named_functions(settings.functions, directory, taken)
    if not any(f.name == "relu" for f in fixed):
        fixed.insert(0, registry_function("relu"))  # the reference: (0, 0) of every plot
    fixed += winner_functions(settings.runs, directory, taken)
    names = [f.name for f in fixed]
    if len(set(names)) != len(names):
        duplicates = sorted({n for n in names if names.count(n) > 1})
        raise ValidityInputError(f"--functions names {', '.join(duplicates)} more than once")
    planned = len(fixed) + settings.random
    if planned < 3:
        raise ValidityInputError(
            f"the study has {planned} function(s); a rank correlation needs at least 3: name more "
            "with --functions, add --random K or search winners with --run"
        )
    return fixed, skipped


def _choose_random(pool: Sequence[Function], records: Mapping[str, Mapping[str, Any]], k: int, say) -> list[Function]:
    scored = [f for f in pool if records[f.name]["ok"]]
    if len(scored) < k:
        say(
            f"random: the lab scored {len(scored)} of the {len(pool)} pool programs, fewer than --random {k}: "
            f"the study keeps those {len(scored)} (raise --random-pool for more)"
        )
    chosen = stats.stratified_choice([records[f.name]["fitness"] for f in scored], k)
    return [scored[i] for i in chosen]


def _lab_summary(record: Mapping[str, Any], groups: Mapping[str, list[int]], row: np.ndarray | None) -> dict[str, Any]:
    error = next((s["error"] for s in record["suites"].values() if not s["ok"]), None)
    summary = {
        "ok": record["ok"],
        "fitness": record["fitness"],
        "seconds": record["seconds"],
        "error": error,
        "suites": {name: s["fitness"] for name, s in record["suites"].items()},
    }
    if row is not None:
        summary["groups"] = {g: float(0.0 - np.mean(row[columns])) for g, columns in groups.items()}
    return summary


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _transfer_cost(run: Any) -> dict[str, Any]:
    per: dict[str, list[float]] = {}
    for r in run.results:
        per.setdefault(r.benchmark, []).append(r.seconds)
    return {
        "jobs": len(run.results),
        "job_seconds": round(sum(sum(v) for v in per.values()), 1),
        "resumed": run.resumed,
        "wall_seconds": run.seconds,
        "per_benchmark": {b: {"jobs": len(v), "mean_seconds": sum(v) / len(v)} for b, v in per.items()},
    }


def run_validity(
    settings: Settings, out: str | Path, *, labs: Mapping[str, Any] | None = None, progress: Any = None
) -> dict[str, Any]:
    """Run (or resume) the study in ``out``; returns ``validity.json``'s document.

    ``labs``: ``{name: Lab}`` to score on instead of ``settings.lab_suites`` (tests use small ones).
    ``progress``: an `actmine.reproduce.Progress` (default: one on stderr). Raises
    `ValidityInputError` for bad input (before any work, or when fewer than 3 functions remain
    after the lab: what was scored stays in ``out``).
    """
    from ..reproduce import Progress
    from ..terminal import terminal_text
    from ..transfer.base import DatasetMissing
    from ..transfer.runner import TransferInputError, run_transfer

    started = time.perf_counter()
    progress = progress or Progress()
    out = Path(out)
    benchmarks, options = _check_settings(settings)
    fixed, skipped = _fixed_functions(settings, out)
    labs = dict(labs) if labs is not None else labscore.build_labs(settings.lab_suites)
    pool = (
        pool_functions(random_pool(settings.random_seed, settings.random_pool), settings.random_seed, out / "functions")
        if settings.random
        else []
    )
    progress.say(
        terminal_text(
            f"validity study in {out}: {len(fixed)} functions, a random pool of {len(pool)} "
            f"(keeping {settings.random}), labs {', '.join(labs)}, benchmarks "
            f"{', '.join(benchmarks)}",
            keep_newlines=False,
        )
    )
    records = labscore.score_functions(
        [*fixed, *pool],
        labs,
        out / labscore.JOURNAL,
        executor=settings.executor,
        workers=settings.workers,
        scheduler=settings.scheduler,
        say=progress.say,
    )
    chosen = _choose_random(pool, records, settings.random, progress.say) if pool else []
    study = [*fixed, *chosen]
    scored = [f for f in study if records[f.name]["ok"]]
    if len(scored) < 3:
        raise ValidityInputError(
            f"only {len(scored)} of the {len(study)} functions were scored by the lab (the others "
            f"were refused); a rank correlation needs at least 3. The lab's results are kept in "
            f"{out / labscore.JOURNAL}"
        )
    try:
        run = run_transfer(
            [f.reference for f in scored],
            benchmarks,
            settings.seeds,
            options=options,
            data_dir=settings.data_dir,
            executor=settings.executor,
            workers=settings.workers,
            scheduler=settings.scheduler,
            out=out / "transfer",
            progress=progress.enabled,
            notify=progress.say,
            console=progress.console,
        )
    except (TransferInputError, DatasetMissing) as exc:
        raise ValidityInputError(str(exc)) from None
    document = analyse(settings, out, labs, study, scored, records, pool, chosen, skipped, benchmarks, run)
    document["cost"]["wall_seconds"] = round(time.perf_counter() - started, 1)
    return write_outputs(document, out)


def analyse(
    settings: Settings,
    out: Path,
    labs: Mapping[str, Any],
    study: Sequence[Function],
    scored: Sequence[Function],
    records: Mapping[str, Mapping[str, Any]],
    pool: Sequence[Function],
    chosen: Sequence[Function],
    skipped: Mapping[str, str],
    benchmarks: Sequence[str],
    run: Any,
) -> dict[str, Any]:
    """The document of ``validity.json`` (everything but the files it names)."""
    names = [f.name for f in scored]
    lab, columns, groups = data.lab_matrix([records[n] for n in names])
    ratios = data.downstream_log_ratios(run.results)
    matrices = {b: data.downstream_matrix(ratios.get(b, {}), names, run.seeds) for b in benchmarks}
    correlations = stats.correlations(lab, groups, matrices, replicates=settings.replicates)
    group_columns = stats.family_columns(groups)
    downstream = {b: stats.fitness_rows(lab, [m])[1] for b, m in matrices.items()}
    pooled = stats.fitness_rows(lab, list(matrices.values()))[1]
    functions = _function_entries(study, names, records, lab, group_columns, downstream, pooled, ratios, benchmarks)
    return _finite(
        {
            "format": FORMAT,
            "command": settings.command(out),
            "settings": asdict(settings),
            "labs": {
                name: {"tasks": len(lab.suite.tasks), "seeds": list(lab.suite.seeds), "steps": lab.protocol.steps}
                for name, lab in labs.items()
            },
            "lab_columns": columns,
            "lab_groups": {g: len(c) for g, c in group_columns.items()},
            "benchmarks": list(benchmarks),
            "seeds": list(run.seeds),
            "options": {b: dict(run_options(run, b)) for b in benchmarks},
            "replicates": settings.replicates,
            "counts": {"functions": len(study), "in_correlations": len(scored), "random_pool": len(pool)},
            "functions": functions,
            "random_pool": _random_pool_entries(pool, records, chosen),
            "skipped": dict(skipped),
            "correlations": correlations,
            "transfer_failures": [
                {"activation": r.activation, "benchmark": r.benchmark, "seed": r.seed, "error": r.error}
                for r in run.results
                if not r.ok
            ],
            "cost": _study_cost(settings, records, run),
            "method": {
                "x": "lab fitness: −mean over the test tasks of the task's log-ratio vs ReLU",
                "y": "downstream fitness: −mean over seeds of clip(ln(error / ReLU's error), ±3)",
                "interval": stats.__doc__.split("The interval is", 1)[1].strip(),
            },
        }
    )


def _function_entries(
    study: Sequence[Function],
    names: Sequence[str],
    records: Mapping[str, Mapping[str, Any]],
    lab: np.ndarray,
    group_columns: Mapping[str, list[int]],
    downstream: Mapping[str, np.ndarray],
    pooled: np.ndarray,
    ratios: Mapping[str, Mapping[str, Mapping[int, float]]],
    benchmarks: Sequence[str],
) -> list[dict[str, Any]]:
    """The document's ``functions``: every function of the study with its lab summary; those in the
    correlations (``names``, the rows of ``lab``, ``downstream`` and ``pooled``) also with their
    downstream fitness and log-ratios per benchmark (the others were refused by the lab)."""
    rows = {n: i for i, n in enumerate(names)}
    functions = []
    for f in study:
        i = rows.get(f.name)
        entry = {
            **f.to_dict(),
            "lab": _lab_summary(records[f.name], group_columns, lab[i] if i is not None else None),
            "downstream": {},
            "pooled": float(pooled[i]) if i is not None else None,
        }
        if i is not None:
            entry["downstream"] = {
                b: {
                    "fitness": float(downstream[b][i]),
                    "log_ratios": {str(s): v for s, v in ratios.get(b, {}).get(f.name, {}).items()},
                }
                for b in benchmarks
            }
        functions.append(entry)
    return functions


def _random_pool_entries(
    pool: Sequence[Function], records: Mapping[str, Mapping[str, Any]], chosen: Sequence[Function]
) -> list[dict[str, Any]]:
    """The document's ``random_pool``: each random program drawn, its lab fitness and whether it was kept."""
    return [
        {
            "name": f.name,
            "given": f.given,
            "ok": records[f.name]["ok"],
            "fitness": records[f.name]["fitness"],
            "chosen": f in chosen,
        }
        for f in pool
    ]


def _study_cost(settings: Settings, records: Mapping[str, Mapping[str, Any]], run: Any) -> dict[str, Any]:
    """The document's ``cost``: the lab's and the transfer's seconds (``wall_seconds`` is added by
    `run_validity`, which alone knows when the study started)."""
    lab_seconds = sum(r["seconds"] for n, r in records.items())
    return {
        "lab": {
            "functions": len(records),
            "seconds": round(lab_seconds, 1),
            "mean_seconds": lab_seconds / len(records) if records else None,
        },
        "transfer": _transfer_cost(run),
        "executor": settings.executor,
        "workers": settings.workers,
        "cpu_seconds": round(lab_seconds + sum(r.seconds for r in run.results), 1),
    }


def run_options(run: Any, benchmark: str) -> Mapping[str, Any]:
    """The options the transfer run used for ``benchmark`` (from its results)."""
    return next((r.options for r in run.results if r.benchmark == benchmark), {})


def write_outputs(document: dict[str, Any], out: Path) -> dict[str, Any]:
    """Write the scatter plots, ``validity.json`` and ``validity.md``; the document, with ``files``."""
    import actmine.validity.plots as plots
    from .report import markdown_report

    by_name = {f["name"]: f for f in document["functions"] if f["lab"]["ok"]}
    figures: dict[str, str] = {}
    keys = list(document["benchmarks"]) + (["pooled"] if len(document["benchmarks"]) > 1 else [])
    for key in keys:
        points = [
            {
                "name": n,
                "origin": f["origin"],
                "x": f["lab"]["fitness"],
                "y": f["pooled"] if key == "pooled" else (f["downstream"].get(key) or {}).get("fitness"),
            }
            for n, f in by_name.items()
        ]
        points = [p for p in points if p["y"] is not None]
        cell = document["correlations"]["pooled"] if key == "pooled" else document["correlations"]["per_benchmark"][key]
        ylabel = (
            "downstream fitness, mean over the benchmarks"
            if key == "pooled"
            else f"downstream fitness on {key} (−mean log-ratio vs ReLU)"
        )
        figures[key] = f"scatter-{key}.png"
        plots.scatter(points, cell, f"lab vs {key}", ylabel, out / figures[key])
    document["files"] = {
        "json": "validity.json",
        "markdown": "validity.md",
        "plots": figures,
        "lab_journal": labscore.JOURNAL,
        "transfer": "transfer/",
        "functions": "functions/",
    }
    write_text_atomically(out / "validity.json", json.dumps(document, indent=2, allow_nan=False))
    write_text_atomically(out / "validity.md", markdown_report(document, figures))
    return document


def summary_table(document: Mapping[str, Any]):
    """A rich Table of ρ per benchmark and pooled, for the terminal."""
    from rich.table import Table

    from .report import rho_text

    correlations = document["correlations"]
    table = Table(title="lab fitness vs downstream fitness: Spearman ρ [95% bootstrap interval]")
    for column in ("benchmark", "ρ [interval]", "functions"):
        table.add_column(column, justify="left" if column == "benchmark" else "right")
    for benchmark, cell in correlations["per_benchmark"].items():
        table.add_row(benchmark, rho_text(cell), str(cell["n"]))
    if correlations.get("pooled"):
        table.add_row("pooled", rho_text(correlations["pooled"]), str(correlations["pooled"]["n"]))
    return table
