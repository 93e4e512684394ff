"""The `actmine` command.

    actmine list                              the activation registry, with formulas
    actmine evaluate TARGET [--json]          score one activation (registry name, .py file or PACK.py:NAME)
    actmine compare A B C … [--markdown]      score several and print a table per family
    actmine validate --out DIR [...]          the validity study: lab fitness vs downstream fitness
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
from contextlib import contextmanager
from typing import Sequence

import torch

import actmine.activations as activations

from .candidate.probes import ProbeBudget
from .candidate.sandbox import SandboxLimits
from .lab.fitness import Evaluation, Lab
from .lab.tasks import SuiteError
from .targets import (  # noqa: F401  (defined here before: re-exported)
    Target, UsageError, evaluate_targets, lab_for, pack_members, resolve_target,
)
from .targets import console as _console
from .terminal import terminal_text
from .version import __version__

EXIT_REFUSED = 1     # the candidate was evaluated and refused (probes, divergence)
EXIT_USAGE = 2       # bad arguments, unknown names, malformed files
EXIT_BUSY = 3        # `search`: another controller holds the run directory; try again when it has finished


def make_lab(args: argparse.Namespace) -> Lab:
    return lab_for(args.suite, seeds=args.seeds, steps=args.steps, device=args.device, max_flops=args.max_flops,
                   allow_batch_dependent=args.allow_batch_dependent)


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.{digits}g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------

def cmd_list(args: argparse.Namespace) -> int:
    entries = [activations.info(name) for name in activations.list()]
    if args.json:
        print(json.dumps([{"name": e.name, "formula": e.formula, "pointwise": e.pointwise, "source": e.source,
                           "aliases": list(e.aliases)} for e in entries], indent=2))
        return 0
    from rich.table import Table

    table = Table(title="actmine activations")
    table.add_column("name", no_wrap=True)
    table.add_column("formula", overflow="fold")
    table.add_column("pointwise", no_wrap=True)
    table.add_column("source", overflow="fold", ratio=1)
    for e in entries:
        name = e.name + (f" ({', '.join(e.aliases)})" if e.aliases else "")
        table.add_row(name, e.formula, "yes" if e.pointwise else "[red]no[/red]", e.source)
    _console().print(table)
    return 0


def _evaluate_all(lab: Lab, args: argparse.Namespace, targets: Sequence[str], quiet: bool) -> list[Evaluation]:
    limits = SandboxLimits(timeout_s=args.timeout, cpu_s=args.timeout, memory_mb=args.memory_mb)
    return evaluate_targets(lab, targets, limits, show_progress=not quiet)


def cmd_evaluate(args: argparse.Namespace) -> int:
    lab = make_lab(args)
    (evaluation,) = _evaluate_all(lab, args, [args.target], quiet=args.json)
    if args.json:
        print(json.dumps(evaluation.to_dict(), indent=2))
    else:
        from rich.table import Table
        from rich.text import Text

        console = _console()
        if not evaluation.ok:
            # Text, not markup; every part from the worker may carry a candidate's text
            error = evaluation.error
            console.print(Text.assemble(("refused", "red"), terminal_text(
                f" {evaluation.activation} at stage {evaluation.stage}: [{error['code']}] {error['message']}")))
        else:
            table = Table(title=Text(f"{terminal_text(evaluation.activation)} on suite {lab.suite.name!r} "
                                     f"({len(lab.suite.seeds)} seeds, {lab.protocol.steps} steps)"))
            for column in ("task", "family", "ID error", "OOD error", "ln(OOD / ReLU OOD)"):
                table.add_column(column, justify="left" if column in ("task", "family") else "right", no_wrap=True)
            for t in evaluation.tasks:
                table.add_row(t.name, t.family, _fmt(t.id_error), _fmt(t.ood_error), f"{t.log_ratio + 0.0:+.3f}")
            console.print(table)
            console.print(f"ood_log_ratio [bold]{evaluation.ood_log_ratio:+.4f}[/bold]   fitness "
                          f"[bold]{evaluation.fitness:+.4f}[/bold]   pointwise {evaluation.probes['pointwise']}   "
                          f"{evaluation.probes['flops_per_element']} ops/element   {evaluation.seconds:.1f} s")
    return 0 if evaluation.ok else EXIT_REFUSED


def cmd_compare(args: argparse.Namespace) -> int:
    lab = make_lab(args)
    evaluations = _evaluate_all(lab, args, pack_members(args.targets), quiet=args.json or args.markdown)
    families = lab.suite.families
    if args.json:
        print(json.dumps([e.to_dict() for e in evaluations], indent=2))
    elif args.markdown:
        print(comparison_markdown(evaluations, families))
    else:
        from rich.table import Table
        from rich.text import Text

        table = Table(title=f"OOD error per family (geometric mean; suite {lab.suite.name!r}, "
                            f"{len(lab.suite.seeds)} seeds, {lab.protocol.steps} steps)")
        table.add_column("activation", no_wrap=True)
        for family in families:
            table.add_column(family, justify="right", min_width=len(family))
        table.add_column("max ID error", justify="right")
        table.add_column("ood_log_ratio", justify="right")
        for e in sorted(evaluations, key=lambda e: (not e.ok, e.ood_log_ratio or 0.0)):
            # names and codes as Text, not markup: a file name or a worker's code is not a style
            name = Text(terminal_text(e.activation, keep_newlines=False))
            if not e.ok:
                table.add_row(name, *["—"] * len(families), "—",
                              Text(terminal_text(e.error["code"], keep_newlines=False), style="red"))
                continue
            by_family = e.by_family()
            ratio = f"[green]{e.ood_log_ratio:+.3f}[/green]" if e.ood_log_ratio < 0 else f"{e.ood_log_ratio:+.3f}"
            table.add_row(name, *[_fmt(by_family[f]["ood_error"]) for f in families],
                          _fmt(max(t.id_error for t in e.tasks)), ratio)
        _console().print(table)
        _console().print("ood_log_ratio: mean over tasks of ln(OOD error ÷ ReLU's); negative beats ReLU.")
    if args.plot:
        from .report.plots import plot_comparison

        scored = [e for e in evaluations if e.ok]
        # curves recorded by the probes (in the sandbox for program files): nothing untrusted runs here
        plot_comparison(scored, {e.activation: e.probes["curve"] for e in scored if "curve" in e.probes}, args.plot)
        _console(stderr=True).print(f"plot written to {args.plot}")
    return 0 if all(e.ok for e in evaluations) else EXIT_REFUSED


def comparison_markdown(evaluations: Sequence[Evaluation], families: Sequence[str]) -> str:
    """A markdown table of ID and OOD error per family and the log-ratio (docs/lab.md's calibration)."""
    header = ["activation"] + [f"{f} ID / OOD" for f in families] + ["max task ID", "ood_log_ratio"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for e in evaluations:
        name = terminal_text(e.activation, keep_newlines=False)
        if not e.ok:
            lines.append(f"| {name} | " + " | ".join(["—"] * (len(header) - 2))
                         + f" | {terminal_text(e.error['code'], keep_newlines=False)} |")
            continue
        by_family = e.by_family()
        cells = [f"{_fmt(by_family[f]['id_error'], 2)} / {_fmt(by_family[f]['ood_error'])}" for f in families]
        lines.append(f"| {name} | " + " | ".join(cells)
                     + f" | {_fmt(max(t.id_error for t in e.tasks), 2)} | {e.ood_log_ratio:+.3f} |")
    return "\n".join(lines)


def cmd_search(args: argparse.Namespace) -> int:
    from .config import Config, ConfigError
    from .evolve.controller import Search
    from .evolve.database import DatabaseError
    from .evolve.runlock import RunDirError, RunLocked

    try:
        config = Config.load(args.config).with_overrides({
            "search.budget": args.budget, "search.time_limit": args.time, "search.seed": args.seed,
            "mutator.kind": args.mutator, "executor.workers": args.workers, "executor.kind": args.executor,
            "executor.scheduler": args.scheduler})
        search = Search(config, args.run_dir, live=sys.stdout.isatty() and not args.quiet)
        summary = search.run()
    except RunLocked as exc:   # not the user's input: the run is busy, and the message says with whom
        print(f"actmine: error: {terminal_text(exc, keep_newlines=False)}", file=sys.stderr)
        return EXIT_BUSY
    except (ConfigError, ValueError, SuiteError, DatabaseError, RunDirError) as exc:
        raise UsageError(str(exc)) from None
    print_search_summary(summary, args.run_dir)
    return 0


def cmd_llm_check(args: argparse.Namespace) -> int:
    """One real request per model of the config's llm mutator: URL, key, model name and prices."""
    from .evolve.mutators.llm_check import CheckConfigError, check_model, exit_status, format_check, load_plan

    try:
        plan = load_plan(args.config)
    except CheckConfigError as exc:
        raise UsageError(str(exc)) from None
    print(terminal_text(f"checking {len(plan.models)} model(s) of {plan.path}: one request each "
                        "(billed at the provider's rates)"))
    checks = []
    for index, spec in enumerate(plan.models):   # printed as each answers: a slow model shows which
        checks.append(check_model(plan, spec, index))
        print(format_check(checks[-1]), flush=True)
    return exit_status(checks)


def cmd_report(args: argparse.Namespace) -> int:
    run_dir = _existing_run(args.run_dir)
    from .report.html import write_report

    baseline = _existing_run(args.baseline) if args.baseline else None
    with _readable_run():
        path = write_report(run_dir, out=args.out, top=args.top, baseline=baseline)
    print(terminal_text(f"report written to {path}"))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """A live web viewer of runs on 127.0.0.1 until Ctrl-C (docs/serve.md)."""
    from .serve import ServeError, serve

    try:
        serve(args.run_dirs or _runs_under("runs"), port=args.port, host=args.host)
    except ServeError as exc:
        raise UsageError(str(exc)) from None
    return 0


def _runs_under(folder: str) -> list[str]:
    """The run directories directly inside `folder` (those holding a programs.sqlite), sorted."""
    from pathlib import Path

    return sorted(str(path.parent) for path in Path(folder).glob("*/programs.sqlite"))


def cmd_export(args: argparse.Namespace) -> int:
    run_dir = _existing_run(args.run_dir)
    from .report.export import export_pack

    with _readable_run():
        path = export_pack(run_dir, args.top, args.out)
    print(terminal_text(f"exported the top {args.top} programs of {run_dir} to {path}; use them with "
                        f"actmine.activations.load_pack({str(path)!r}) or actmine.activations.get('{path}:NAME')"))
    return 0


@contextmanager
def _readable_run():
    """A damaged or too-new database (or no scored program) is bad input: one line, exit 2."""
    from .evolve.database import DatabaseError

    try:
        yield
    except DatabaseError as exc:
        raise UsageError(str(exc)) from None


def _existing_run(run_dir: str) -> str:
    from pathlib import Path

    if not (Path(run_dir) / "programs.sqlite").is_file():
        raise UsageError(f"{run_dir!r} is not a run directory (no programs.sqlite); give the --run-dir of an "
                         "`actmine search`")
    return run_dir


def print_search_summary(summary: dict, run_dir: str) -> None:
    from rich.table import Table
    from rich.text import Text

    console = _console()
    state = "interrupted (resume with the same --run-dir)" if summary["interrupted"] else "finished"
    # Everything below may carry a model's or a worker's text: plain text, control characters escaped.
    def say(text: str) -> None:
        console.print(terminal_text(text), markup=False, highlight=False)

    say(f"search {state}: {summary['evaluated']} evaluations in {summary['seconds']} s, "
        f"workers idle {summary['idle_fraction']:.1%} of the time; run directory {run_dir}")
    if summary.get("stopped"):
        say(f"stopped early: {summary['stopped']}")
    if summary.get("llm"):
        llm = summary["llm"]
        say(f"LLM spend: ${llm['usd']:.4f}, {llm['tokens']:,} tokens; "
            + "; ".join(f"{model}: {m['calls']} calls, {m['children']} programs, ${m['cost']:.4f}"
                        for model, m in llm["models"].items()))
    if "report" in summary:
        say(f"report: {summary['report']}")
    elif "report_error" in summary:
        say(f"the report could not be written ({summary['report_error']}); try `actmine report {run_dir}`")
    if summary.get("failures"):
        say("refusals: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["failures"].items(), key=lambda kv: -kv[1])))
    if "best" in summary:
        best = summary["best"]
        se = f" ± {best['fitness_se']:.3f}" if best.get("fitness_se") is not None else ""
        chosen = f"chosen on the validation tasks, rule {summary.get('winner_rule', 'mean')}" \
            if summary.get("winner_chosen_by") == "validation" else "best by search score: nothing was validated"
        say(f"best program #{best['id']} ({chosen}; search fitness {best['fitness']:+.3f}{se}): "
            f"{terminal_text(best['rationale'] or '', keep_newlines=False)}")
        say(terminal_text(best["source"]))
    if summary.get("heldout"):
        table = Table(title="validation (tasks the search never drew): fitness = −ood_log_ratio, higher is better")
        for column in ("activation", "search fitness", "validation fitness"):
            table.add_column(column, justify="left" if column == "activation" else "right")
        for row in summary["heldout"]:
            name = row["name"] + (" (winner)" if row.get("winner") else "")
            table.add_row(Text(terminal_text(name, keep_newlines=False)),
                          f"{row['search_fitness']:+.3f}" if row["search_fitness"] is not None else "—",
                          f"{row['heldout_fitness']:+.3f}" if row["heldout_fitness"] is not None else "refused")
        console.print(table)
    if summary.get("comparisons"):
        table = Table(title="test suites (reported only): the winner's mean log-ratio against each function, "
                            "95% interval over tasks and seeds; below 0 = the winner extrapolates better")
        for column in ("suite", "against", "mean", "95% interval", "tasks × seeds"):
            table.add_column(column, justify="left" if column in ("suite", "against") else "right")
        for row in summary["comparisons"]:
            table.add_row(Text(terminal_text(row["suite"], False)), row["against"], f"{row['mean']:+.3f}",
                          f"[{row['low']:+.3f}, {row['high']:+.3f}]", f"{row['tasks']} × {row['seeds']}")
        console.print(table)


def cmd_transfer(args: argparse.Namespace) -> int:
    from .transfer.base import DatasetMissing
    from .transfer.runner import TransferInputError, TransferLimits, parse_options, results_table, run_transfer

    if args.epochs is not None and args.epochs < 1:
        raise UsageError("--epochs must be at least 1")
    split = lambda text: [part.strip() for part in text.split(",") if part.strip()]  # noqa: E731
    errors = _console(stderr=True)
    try:
        limits = TransferLimits(timeout_s=args.timeout, cpu_s=args.cpu_time, memory_mb=args.memory_mb)
        run = run_transfer(split(args.activations), split(args.benchmarks), args.seeds,
                           options=parse_options(args.option), epochs=args.epochs, data_dir=args.data_dir,
                           device=args.device, executor=args.executor, workers=args.workers,
                           scheduler=args.scheduler, limits=limits, out=args.out, progress=not args.quiet,
                           notify=lambda message: errors.print(message, markup=False, highlight=False),
                           console=errors)
    except (TransferInputError, DatasetMissing) as exc:
        raise UsageError(str(exc)) from None
    except KeyboardInterrupt:
        print(f"actmine: interrupted; finished jobs are in {args.out}/results.jsonl: run the same command "
              "again to resume", file=sys.stderr)
        return 130
    console = _console()
    seeds = f"{len(run.seeds)} seed" + ("s" if len(run.seeds) != 1 else "")
    console.print(results_table(run.rows, title=f"transfer: mean ± std over {seeds} (log-ratio vs ReLU)"))
    console.print("log-ratio: mean over seeds of ln(error / ReLU's error), error = 1 − score; negative beats ReLU.",
                  markup=False, highlight=False)
    failed = [r for r in run.results if not r.ok]
    console.print(f"{len(run.results) - len(failed)} of {len(run.results)} jobs scored"
                  + (f" ({run.resumed} from an earlier run)" if run.resumed else "")
                  + f" in {run.seconds:.1f} s; written: "
                  + ", ".join(str(run.files[k]) for k in ("json", "csv", "figure")), markup=False, highlight=False)
    return EXIT_REFUSED if failed else 0


def _comma_list(text: str) -> list[str]:
    """The non-empty parts of a comma-separated option value, stripped ("a, ,b" is a and b)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def _reproduce_seed_counts(args: argparse.Namespace) -> dict:
    """--seeds and --transfer-seeds, checked: the lab's confidence intervals need two seeds or more."""
    changes: dict = {}
    if args.seeds is not None:
        if args.seeds < 2:
            raise UsageError("--seeds must be at least 2: the confidence intervals need two seeds or more")
        changes["seeds"] = args.seeds
    if args.transfer_seeds is not None:
        if args.transfer_seeds < 1:
            raise UsageError("--transfer-seeds must be at least 1")
        changes["transfer_seeds"] = args.transfer_seeds
    return changes


def _reproduce_suites(args: argparse.Namespace) -> dict:
    """--suite and --heldout-suite, loaded once here so that a bad one is a usage error before any work starts."""
    from .lab.tasks import get_suite

    changes: dict = {}
    for option, key in ((args.suite, "suite"), (args.heldout_suite, "heldout_suite")):
        if option is not None:
            try:
                get_suite(option)
            except (SuiteError, ValueError, OSError) as exc:
                raise UsageError(f"--{key.replace('_', '-')}: {exc}") from None
            changes[key] = option
    return changes


def _reproduce_functions(text: str) -> tuple[str, ...]:
    """--functions as canonical registry names, ReLU first: every comparison of the paper is against it."""
    names = []
    for name in _comma_list(text):
        try:
            names.append(activations.info(name).name)
        except activations.UnknownActivationError as exc:
            raise UsageError(f"--functions: {exc}") from None
    return tuple(dict.fromkeys(["relu"] + names))


def _reproduce_alphas(text: str) -> tuple[float, ...]:
    """--alphas as sorted distinct finite numbers ≥ 0 (the weights of the alpha sweep)."""
    try:
        alphas = sorted({float(a) for a in _comma_list(text)})
    except ValueError:
        raise UsageError(f"--alphas: expected comma-separated numbers, got {text!r}") from None
    if not alphas or any(not math.isfinite(a) or a < 0 for a in alphas):
        raise UsageError("--alphas: give one or more finite numbers ≥ 0, e.g. 0,0.05,0.1,0.2")
    return tuple(alphas)


def _reproduce_benchmarks(text: str) -> dict:
    """--benchmarks: exactly the named ones, so the optional (data-dependent) benchmarks are dropped."""
    from .transfer.base import list_benchmarks

    known = list_benchmarks()
    chosen = [b.lower() for b in _comma_list(text)]
    unknown = [b for b in chosen if b not in known]
    if unknown or not chosen:
        raise UsageError(f"--benchmarks: unknown {', '.join(unknown) or 'none given'}; known: {', '.join(known)}")
    return {"benchmarks": tuple(chosen), "optional_benchmarks": ()}


def _reproduce_transfer_options(options: Sequence[str], defaults: dict) -> dict:
    """--transfer-option values merged over the settings' own per-benchmark options (the options win)."""
    from .transfer.runner import TransferInputError, parse_options

    try:
        parsed = parse_options(options)
    except TransferInputError as exc:
        raise UsageError(str(exc)) from None
    merged = {b: dict(o) for b, o in defaults.items()}
    for benchmark, values in parsed.items():
        merged.setdefault(benchmark, {}).update(values)
    return merged


def _reproduce_paths(args: argparse.Namespace) -> dict:
    """--validity and --data-dir, checked before hours of work: the study must be one, the directory must exist."""
    from pathlib import Path

    import actmine.reproduce as reproduce

    changes: dict = {}
    if args.validity is not None:
        if not Path(args.validity).expanduser().is_file() or reproduce.load_validity(Path(args.validity).expanduser()) is None:
            raise UsageError(f"--validity {args.validity!r} is not a validity study's result: give the validity.json "
                             "that `actmine validate --out DIR` wrote")
        changes["validity"] = str(Path(args.validity).expanduser())
    if args.data_dir is not None:
        if not Path(args.data_dir).expanduser().is_dir():
            raise UsageError(f"--data-dir {args.data_dir!r} is not a directory")
        changes["data_dir"] = str(Path(args.data_dir).expanduser())
    return changes


def _reproduce_changes(args: argparse.Namespace, settings) -> dict:
    """The settings the options change, each checked (in option order, so the first bad option is the one named)."""
    changes: dict = {"skip_transfer": args.skip_transfer, "skip_search": args.skip_search, "device": args.device}
    changes.update(_reproduce_seed_counts(args))
    changes.update(_reproduce_suites(args))
    if args.steps is not None:
        changes["steps"] = args.steps
    if args.functions is not None:
        changes["functions"] = _reproduce_functions(args.functions)
    if args.alphas is not None:
        changes["alphas"] = _reproduce_alphas(args.alphas)
    if args.benchmarks is not None:
        changes.update(_reproduce_benchmarks(args.benchmarks))
    if args.transfer_option:
        changes["transfer_options"] = _reproduce_transfer_options(args.transfer_option, settings.transfer_options)
    if args.search_budget is not None:
        changes["search"] = {**settings.search, "search.budget": args.search_budget}
    changes.update(_reproduce_paths(args))
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available to this PyTorch; use --device cpu")
    return changes


def _reproduce_settings(args: argparse.Namespace):
    """The quick or full settings with the options applied; the search part is checked against the config schema."""
    from dataclasses import replace

    import actmine.reproduce as reproduce
    from .config import Config, ConfigError

    settings = reproduce.quick_settings(args.workers) if args.quick else reproduce.full_settings(args.workers)
    settings = replace(settings, **_reproduce_changes(args, settings))
    try:
        Config().with_overrides({"executor.workers": settings.workers, **settings.search})
    except (ConfigError, ValueError) as exc:
        raise UsageError(f"search settings: {exc}") from None
    return settings


def _print_claims(outcome: dict, out_dir: str) -> None:
    """The verdict table of `actmine reproduce`, then where the report, plots and raw JSON are."""
    import actmine.reproduce as reproduce
    from rich.table import Table

    console = _console()
    table = Table(title="the paper's claims, checked by our lab")
    for column in ("#", "claim", "verdict", "why"):
        table.add_column(column, overflow="fold")
    colours = {reproduce.REPRODUCED: "green", reproduce.NOT_REPRODUCED: "red", reproduce.NOT_CHECKABLE: "yellow"}
    from rich.markup import escape

    for i, claim in enumerate(outcome["claims"], 1):
        table.add_row(str(i), escape(claim.claim), f"[{colours[claim.verdict]}]{claim.verdict}[/]", escape(claim.why))
    console.print(table)
    reused = f"; reused: {', '.join(outcome['resumed'])}" if outcome["resumed"] else ""
    console.print(f"report: {outcome['doc']}; plots and raw JSON: {out_dir}/; "
                  f"{outcome['wall_seconds']:.0f} s{reused}", markup=False, highlight=False, soft_wrap=True)


def cmd_reproduce(args: argparse.Namespace) -> int:
    """`actmine reproduce`: the paper's claims checked by our lab (actmine/reproduce/)."""
    import actmine.reproduce as reproduce

    settings = _reproduce_settings(args)
    errors = _console(stderr=True)
    progress = reproduce.Progress(errors, enabled=not args.quiet)
    try:
        outcome = reproduce.run_reproduce(settings, out_dir=args.out_dir, doc=args.doc, force=args.force,
                                          progress=progress)
    except KeyboardInterrupt:
        print(f"actmine: interrupted; finished parts are saved in {args.out_dir}/: run the same command again to "
              "resume", file=sys.stderr)
        return 130
    _print_claims(outcome, args.out_dir)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """The validity study: the work is `actmine.validity.run_validity`; here only options and output."""
    import actmine.validity as validity
    from .reproduce import Progress

    settings = validity.Settings(
        benchmarks=tuple(b.strip() for b in args.benchmarks.split(",") if b.strip()), seeds=args.seeds,
        random=args.random, random_pool=args.random_pool, random_seed=args.random_seed, runs=tuple(args.runs),
        functions=tuple(args.functions) if args.functions else None,
        lab_suites=tuple(s.strip() for s in args.lab_suites.split(",") if s.strip()) if args.lab_suites else None,
        executor=args.executor, workers=args.workers, scheduler=args.scheduler, options=tuple(args.option),
        data_dir=args.data_dir, replicates=args.replicates)
    try:
        document = validity.run_validity(settings, args.out,
                                         progress=Progress(_console(stderr=True), enabled=not args.quiet))
    except validity.ValidityInputError as exc:
        raise UsageError(str(exc)) from None
    except KeyboardInterrupt:
        print(terminal_text(f"actmine: interrupted; the finished lab scores and transfer jobs are saved in "
                            f"{args.out}/: run the same command again to resume"), file=sys.stderr)
        return 130
    console = _console()
    console.print(validity.summary_table(document))
    cost = document["cost"]
    plots = ", ".join(document["files"]["plots"].values())
    console.print(terminal_text(f"report: {os.path.join(args.out, 'validity.md')}; numbers: validity.json; plots: "
                                f"{plots}; compute {cost['cpu_seconds']:.0f} s in all, this run "
                                f"{cost['wall_seconds']:.0f} s"),
                  markup=False, highlight=False, soft_wrap=True)
    return 0


# --------------------------------------------------------------------------------------------

def version_text() -> str:
    """`actmine --version`: the package, and the torch and Python it runs on (what a bug report needs)."""
    return f"actmine {__version__} (torch {torch.__version__}, Python {platform.python_version()})"


def _add_lab_options(p: argparse.ArgumentParser) -> None:
    """The lab's options, shared by `evaluate` and `compare`: which suite, how it trains, the candidate limits."""
    p.add_argument("--suite", default="lab", help="suite name (lab) or a .yaml/.toml/.json suite file")
    p.add_argument("--seeds", type=int, default=None, help="use seeds 0..N-1 instead of the suite's")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the protocol's 50)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the ensemble trains")
    p.add_argument("--max-flops", type=float, default=ProbeBudget.max_flops_per_element,
                   help="refuse candidates above this many weighted elementwise ops per element")
    p.add_argument("--allow-batch-dependent", action="store_true",
                   help="score batch-dependent candidates (one example at a time) instead of refusing them")
    p.add_argument("--timeout", type=float, default=SandboxLimits.timeout_s,
                   help="wall-clock and CPU seconds allowed to one program file's evaluation")
    p.add_argument("--memory-mb", type=int, default=SandboxLimits.memory_mb,
                   help="address-space limit of the worker that evaluates a program file")


def _add_list_parser(sub) -> None:
    """`actmine list`."""
    p = sub.add_parser("list", help="the activation registry, with formulas")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=cmd_list)


def _add_evaluate_parser(sub) -> None:
    """`actmine evaluate TARGET`."""
    p = sub.add_parser("evaluate", help="score one activation on the lab")
    p.add_argument("target", help="registry name (see `actmine list`), a .py file defining activation_function(x) "
                                  "(or a search's best_activation.py), or PACK.py:NAME, a program of an export pack; "
                                  "files run only in a sandboxed worker")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    _add_lab_options(p)
    p.set_defaults(run=cmd_evaluate)


def _add_compare_parser(sub) -> None:
    """`actmine compare TARGET…`."""
    p = sub.add_parser("compare", help="score several activations and print a table per family")
    p.add_argument("targets", nargs="+", help="registry names, .py files, PACK.py:NAME programs or a PACK.py "
                                              "(each of its programs)")
    output = p.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print a JSON list of results")
    output.add_argument("--markdown", action="store_true", help="print docs/lab.md's calibration table")
    p.add_argument("--plot", metavar="FILE.png", help="also draw the curves and per-family log-ratios to a PNG")
    _add_lab_options(p)
    p.set_defaults(run=cmd_compare)


def _add_search_parser(sub) -> None:
    """`actmine search`: options left unset (None) fall back to the config file's values."""
    p = sub.add_parser("search", help="evolve activation functions (resumes an existing --run-dir)")
    p.add_argument("--config", help="a YAML config file (unknown keys are errors); default: the embedded config")
    p.add_argument("--run-dir", default="runs/default", help="where the run lives; an existing run is resumed")
    p.add_argument("--mutator", choices=("symbolic", "random", "llm"), help="the mutation operator")
    p.add_argument("--budget", type=int, help="evaluations in total (a resumed run counts those done)")
    p.add_argument("--time", type=float, help="seconds of search before the held-out check (0: no limit)")
    p.add_argument("--workers", type=int, help="evaluations at once (default: one per core)")
    p.add_argument("--executor", choices=("local", "dask"), help="local processes or a Dask cluster")
    p.add_argument("--scheduler", help="address of a running Dask scheduler (default: start a local one)")
    p.add_argument("--seed", type=int, help="the run's seed")
    p.add_argument("--quiet", action="store_true", help="no live view")
    p.set_defaults(run=cmd_search)


def _add_llm_parser(sub) -> None:
    """`actmine llm check --config FILE`, under a group of its own for later LLM actions."""
    p = sub.add_parser("llm", help="the LLM mutator's endpoints: `actmine llm check --config FILE`")
    llm = p.add_subparsers(dest="llm_command", required=True, metavar="ACTION")
    about = ("one real request per configured model: endpoint, key, model name, the parsed program and the "
             "policy's verdict, tokens and costs; exit 0 all good, 1 a program refused or absent, 2 a bad config, "
             "3 a model unusable")
    p = llm.add_parser("check", help=about, description=about)
    p.add_argument("--config", required=True, help="the YAML config of `actmine search --config` (its llm mutator)")
    p.set_defaults(run=cmd_llm_check)


def _add_report_parser(sub) -> None:
    """`actmine report RUN_DIR`."""
    p = sub.add_parser("report", help="a self-contained HTML report of a run (works while it runs)")
    p.add_argument("run_dir", help="the run directory of an `actmine search`")
    p.add_argument("--out", help="where to write it (default: RUN_DIR/report.html)")
    p.add_argument("--top", type=int, default=5, help="candidates shown in detail")
    p.add_argument("--baseline", help="run directory of a random-search run to draw beside this one")
    p.set_defaults(run=cmd_report)


def _add_serve_parser(sub) -> None:
    """`actmine serve [RUN_DIR…]`."""
    p = sub.add_parser("serve", help="a live web viewer of runs on 127.0.0.1 (pages update while searches run)")
    p.add_argument("run_dirs", nargs="*", metavar="RUN_DIR", help="run directories (default: every run under runs/)")
    p.add_argument("--port", type=int, default=8765, help="the port (default: 8765; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1", help="only 127.0.0.1 is accepted: the viewer has no login")
    p.set_defaults(run=cmd_serve)


def _add_export_parser(sub) -> None:
    """`actmine export RUN_DIR --out PACK.py`."""
    p = sub.add_parser("export", help="the top programs of a run as a pack: a generated file holding them as data, "
                                      "loaded through the candidate policy")
    p.add_argument("run_dir", help="the run directory of an `actmine search`")
    p.add_argument("--top", type=int, default=3, help="how many programs to export: the run's winner (chosen on "
                                                      "validation) first, then the fittest by search score")
    p.add_argument("--out", required=True, help="the .py file to write")
    p.set_defaults(run=cmd_export)


def _add_transfer_parser(sub) -> None:
    """`actmine transfer`: what to train, where the jobs run, and the limits of one job."""
    p = sub.add_parser("transfer", help="train real models (benchmarks) with each activation; compare with ReLU",
                       description="Train every activation × benchmark × seed from scratch (each job in its own "
                                   "process, locally or on Dask) and report the score's mean ± std over seeds and "
                                   "ln(error / ReLU's error) per benchmark (< 0 beats ReLU). Writes OUT/results.jsonl "
                                   "(as jobs finish; a rerun with the same --out skips jobs done), OUT/results.json, "
                                   "OUT/summary.csv and OUT/transfer.png. See docs/transfer.md.")
    p.add_argument("--activations", default="relu,gelu,gelu_sine", metavar="A,B,…",
                   help="comma-separated registry names, candidate .py files defining activation_function(x), or "
                        "exported PACK.py:NAME; relu is added if missing (default: %(default)s)")
    p.add_argument("--benchmarks", default="digits", metavar="B,…",
                   help="comma-separated: digits, cifar10, imagenet, clrs, molhiv, series, diabetes (default: %(default)s)")
    p.add_argument("--seeds", type=int, default=3, metavar="N", help="seeds 0..N-1 per job (default: %(default)s)")
    p.add_argument("--data-dir", metavar="DIR",
                   help="where the datasets are (default: $ACTMINE_DATA_DIR, else ~/.cache/actmine/data)")
    p.add_argument("--epochs", type=int, metavar="N", help="epochs for every benchmark that has an epochs option")
    p.add_argument("--option", action="append", default=[], metavar="BENCHMARK.KEY=VALUE",
                   help="a benchmark constructor option, value parsed as YAML (repeatable), "
                        "e.g. cifar10.batch_size=256")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cpu, or cuda: one job per GPU at a time (default: %(default)s)")
    p.add_argument("--executor", choices=("local", "dask"), default="local",
                   help="local processes or a Dask cluster (default: %(default)s)")
    p.add_argument("--workers", type=int,
                   help="jobs at once: local processes or local Dask workers (default: one per core, or per "
                        "GPU with --device cuda); with --scheduler: wait for this many Dask workers")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="a running Dask scheduler, e.g. tcp://host:8786 (default: start a local cluster)")
    p.add_argument("--out", default="transfer", metavar="DIR", help="output directory (default: ./%(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-job lines (failures still shown)")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="wall clock of one job, then its processes are killed and it fails (timeout); 0: none "
                        "(default: per benchmark, from its epochs; see docs/transfer.md)")
    p.add_argument("--cpu-time", type=float, metavar="SECONDS",
                   help="CPU seconds of one job's process (cpu_limit); 0: none (default: the timeout × the "
                        "threads a job may use)")
    p.add_argument("--memory-mb", type=int, metavar="MB",
                   help="address space of one job's process (memory_limit); 0: none; never applied with "
                        "--device cuda (default: per benchmark, e.g. 4096 for digits, 16384 for cifar10)")
    p.set_defaults(run=cmd_transfer)


def _add_reproduce_parser(sub) -> None:
    """`actmine reproduce`: the documented options, then the hidden ones (`_add_reproduce_hidden_options`)."""
    p = sub.add_parser("reproduce", help="check the paper's claims with our lab; writes docs/reproduction.md",
                       description="Run the paper's comparisons on this lab and the transfer benchmarks and write a "
                                   "report (--doc) with every number measured: each claim of the paper next to our "
                                   "measurement and a verdict (reproduced, not reproduced, not checkable here) decided "
                                   "by an explicit rule; plots and raw JSON go to --out-dir. Parts: search, lab, alpha, "
                                   "batch, transfer, analysis. Each part's JSON is saved as soon as it finishes, with "
                                   "its settings: running the command again reuses every part saved with the same "
                                   "settings (an interrupted run resumes), --force recomputes. --quick takes under 10 "
                                   "minutes on a 2-core machine; the full version 2-3 hours there (mostly CLRS), "
                                   "and the report records how long it took. See docs/reproduction.md.")
    p.add_argument("--quick", action="store_true",
                   help="5 seeds, a 30-evaluation search, digits and a reduced CLRS only (under 10 minutes)")
    p.add_argument("--out-dir", default="reproduction", metavar="DIR",
                   help="plots, raw JSON, the transfer journal and the search run (default: %(default)s)")
    p.add_argument("--doc", default="docs/reproduction.md", metavar="FILE.md",
                   help="the markdown report (default: %(default)s)")
    p.add_argument("--seeds", type=int, metavar="N",
                   help="lab training seeds 0..N-1 for the confidence intervals (default: 8, --quick 5)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="processes for the search and the transfer jobs (default: one per core)")
    p.add_argument("--data-dir", metavar="DIR",
                   help="datasets of the transfer benchmarks; cifar10, imagenet and molhiv run (full version) "
                        "when their data are here (default: $ACTMINE_DATA_DIR, else ~/.cache/actmine/data)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the lab and the transfer train")
    p.add_argument("--skip-transfer", action="store_true", help="no downstream benchmarks")
    p.add_argument("--skip-search", action="store_true", help="no search (and no search winner)")
    p.add_argument("--force", action="store_true", help="recompute every part, even those saved with the same settings")
    p.add_argument("--validity", metavar="FILE.json",
                   help="the validity study (`actmine validate`) whose pooled correlation decides the claim "
                        "\"lab fitness predicts downstream rank\" (default: validity/validity.json under the current "
                        "directory, as the other defaults; without it the claim is not checkable)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    _add_reproduce_hidden_options(p)
    p.set_defaults(run=cmd_reproduce)


def _add_reproduce_hidden_options(p: argparse.ArgumentParser) -> None:
    """Options of `actmine reproduce` left out of --help: for tests and experiments (smaller or different runs)."""
    hidden = argparse.SUPPRESS
    p.add_argument("--suite", help=hidden)
    p.add_argument("--heldout-suite", help=hidden)
    p.add_argument("--steps", type=int, help=hidden)
    p.add_argument("--functions", help=hidden)
    p.add_argument("--alphas", help=hidden)
    p.add_argument("--benchmarks", help=hidden)
    p.add_argument("--transfer-seeds", type=int, help=hidden)
    p.add_argument("--transfer-option", action="append", default=[], help=hidden)
    p.add_argument("--search-budget", type=int, help=hidden)


def _add_validate_parser(sub) -> None:
    """`actmine validate --out DIR`: which functions, which benchmarks and seeds, where the jobs run."""
    from .validity.study import DEFAULT_BENCHMARKS

    p = sub.add_parser("validate", help="the validity study: does lab fitness predict downstream extrapolation?",
                       description="Score a few dozen functions spanning the range of lab fitness (the pointwise "
                                   "library with the paper's functions, search winners, random programs chosen "
                                   "stratified by lab fitness) on the lab's test suites and on each benchmark over "
                                   "several seeds; report Spearman's rho between lab and downstream fitness per "
                                   "benchmark and pooled with a bootstrap 95% interval (functions, tasks and seeds "
                                   "resampled), which lab families predict which benchmark, a scatter plot per "
                                   "benchmark and the compute cost. Writes OUT/validity.md, OUT/validity.json, "
                                   "OUT/scatter-*.png; OUT/lab.jsonl and OUT/transfer/results.jsonl make a rerun with "
                                   "the same --out resume.")
    p.add_argument("--out", required=True, metavar="DIR", help="the study's directory (an existing one is resumed)")
    p.add_argument("--benchmarks", default=",".join(DEFAULT_BENCHMARKS), metavar="B,…",
                   help="comma-separated downstream benchmarks (default: %(default)s)")
    p.add_argument("--seeds", type=int, default=3, metavar="N", help="training seeds 0..N-1 per benchmark "
                                                                     "(default: %(default)s)")
    p.add_argument("--random", type=int, default=12, metavar="K",
                   help="random programs kept, at evenly spaced ranks of lab fitness (default: %(default)s)")
    p.add_argument("--random-pool", type=int, default=48, metavar="M",
                   help="random programs drawn and scored in the lab to choose them from (default: %(default)s)")
    p.add_argument("--random-seed", type=int, default=0, metavar="S", help="seed of the random draws (default: 0)")
    p.add_argument("--run", dest="runs", action="extend", nargs="+", default=[], metavar="RUN_DIR",
                   help="search run directories whose best_activation.py joins the study (repeatable)")
    p.add_argument("--functions", action="extend", nargs="+", metavar="NAME_OR_FILE",
                   help="instead of the pointwise library: registry names, .py files or PACK.py:NAME (ReLU is "
                        "always added)")
    p.add_argument("--lab-suites", metavar="S,…",
                   help="lab suites to score on: feynman, expression-bump, lab-heldout or suite files "
                        "(default: the unseen test suites, feynman,expression-bump)")
    p.add_argument("--executor", choices=("local", "dask"), default="local",
                   help="local processes or a Dask cluster, for the lab's programs and the transfer jobs")
    p.add_argument("--workers", type=int, help="evaluations and jobs at once (default: one per core)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler (default: start a local one)")
    p.add_argument("--option", action="append", default=[], metavar="BENCHMARK.KEY=VALUE",
                   help="a benchmark constructor option, value parsed as YAML (repeatable), e.g. diabetes.steps=100")
    p.add_argument("--data-dir", metavar="DIR", help="where the benchmarks' datasets are (default: $ACTMINE_DATA_DIR, "
                                                     "else ~/.cache/actmine/data)")
    p.add_argument("--replicates", type=int, default=2000, metavar="B", help="bootstrap replicates (default: 2000)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(run=cmd_validate)


def build_parser() -> argparse.ArgumentParser:
    """The `actmine` command line: one subcommand per `cmd_*` function, in the order --help lists them."""
    parser = argparse.ArgumentParser(prog="actmine", description="Mine activation functions that extrapolate.")
    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_subcommand in (_add_list_parser, _add_evaluate_parser, _add_compare_parser, _add_search_parser,
                           _add_llm_parser, _add_report_parser, _add_serve_parser, _add_export_parser,
                           _add_transfer_parser, _add_reproduce_parser, _add_validate_parser):
        add_subcommand(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .faults import FaultPlanError, active_plan

    try:
        active_plan()
    except FaultPlanError as exc:
        print(f"actmine: error: {terminal_text(exc)}", file=sys.stderr)
        return EXIT_USAGE
    if getattr(args, "seeds", None) is not None and args.seeds < 1:
        print("actmine: error: --seeds must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    for option in ("timeout", "memory_mb", "max_flops", "budget", "workers", "top"):
        value = getattr(args, option, None)
        if value is not None and value <= 0:
            print(f"actmine: error: --{option.replace('_', '-')} must be positive", file=sys.stderr)
            return EXIT_USAGE
    if getattr(args, "steps", None) is not None and args.steps < 1:
        print("actmine: error: --steps must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    try:
        return args.run(args)
    except UsageError as exc:
        print(f"actmine: error: {terminal_text(exc)}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
