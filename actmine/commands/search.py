"""`actmine search` (and the summary it prints at the end) and `actmine llm check`."""

from __future__ import annotations

import argparse
import sqlite3
import sys

from ..lab.tasks import SuiteError
from ..run_files import stored_config
from ..stop_signals import exit_status
from ..targets import UsageError
from ..targets import console as _console
from ..terminal import terminal_text
from .common import EXIT_BUSY


def cmd_search(args: argparse.Namespace) -> int:
    from ..config import Config, ConfigError
    from ..evolve.controller import Search
    from ..evolve.database import DatabaseError
    from ..evolve.database_file import edited_or_damaged, read_failure_message
    from ..evolve.runlock import RunDirError, RunLocked

    search = None
    try:
        config = Config.load(args.config or stored_config(args.run_dir)).with_overrides(
            {
                "search.budget": args.budget,
                "search.time_limit": args.time,
                "search.seed": args.seed,
                "mutator.kind": args.mutator,
                "executor.workers": args.workers,
                "executor.kind": args.executor,
                "executor.scheduler": args.scheduler,
            }
        )
        # the live view on a terminal; else (a log, a pipe) plain progress lines on stderr
        log = None if args.quiet else sys.stderr
        search = Search(config, args.run_dir, live=sys.stdout.isatty() and not args.quiet, log=log)
        summary = search.run()
    except KeyboardInterrupt:  # a second Ctrl-C, or a stop signal while the tasks or the final check ran
        signum = search.stop_signal if search is not None else None
        print(
            f"actmine: search interrupted; every evaluation committed is kept: run the same command again to "
            f"resume {terminal_text(args.run_dir, False)}",
            file=sys.stderr,
        )
        return exit_status(signum)
    except RunLocked as exc:  # not the user's input: the run is busy, and the message says with whom
        print(f"actmine: error: {terminal_text(exc, keep_newlines=False)}", file=sys.stderr)
        return EXIT_BUSY
    except (ConfigError, ValueError, SuiteError, DatabaseError, RunDirError) as exc:
        raise UsageError(str(exc)) from None
    except (OSError, sqlite3.OperationalError) as exc:  # the machine, not the input: a full disk, an I/O error
        if isinstance(exc, sqlite3.Error) and edited_or_damaged(exc):  # …unless a table or column is gone
            raise UsageError(read_failure_message(exc)) from None
        print(f"actmine: error: {terminal_text(_stopped_by_machine(exc, args.run_dir), False)}", file=sys.stderr)
        return 1
    print_search_summary(summary, args.run_dir)
    return exit_status(search.stop_signal) if summary["interrupted"] else 0


def _stopped_by_machine(exc: Exception, run_dir: str) -> str:
    """One line for a search the machine stopped: what failed, and that the run resumes."""
    from ..executors.base import ExecutorLost

    what = f"{exc.strerror} ({exc.filename})" if isinstance(exc, OSError) and exc.strerror else f"{exc}"
    hint = "" if isinstance(exc, ExecutorLost) else " (free disk space, permissions)"
    return (
        f"the search stopped: {what}. Every evaluation committed before is kept: fix the cause{hint} "
        f"and run the same command again to resume {run_dir}"
    )


def cmd_llm_check(args: argparse.Namespace) -> int:
    """One real request per model of the config's llm mutator: URL, key, model name and prices."""
    from ..evolve.mutators.llm_check import CheckConfigError, check_model, exit_status, format_check, load_plan

    try:
        plan = load_plan(args.config)
    except CheckConfigError as exc:
        raise UsageError(str(exc)) from None
    print(
        terminal_text(
            f"checking {len(plan.models)} model(s) of {plan.path}: one request each (billed at the provider's rates)"
        )
    )
    checks = []
    for index, spec in enumerate(plan.models):  # printed as each answers: a slow model shows which
        checks.append(check_model(plan, spec, index))
        print(format_check(checks[-1]), flush=True)
    return exit_status(checks)


def print_search_summary(summary: dict, run_dir: str) -> None:
    from rich.table import Table
    from rich.text import Text

    console = _console()
    state = "interrupted (resume with the same --run-dir)" if summary["interrupted"] else "finished"

    # Everything below may carry a model's or a worker's text: plain text, control characters escaped.
    def say(text: str) -> None:
        console.print(terminal_text(text), markup=False, highlight=False)

    say(
        f"search {state}: {summary['evaluated']} evaluations in {summary['seconds']} s, "
        f"workers idle {summary['idle_fraction']:.1%} of the time; run directory {run_dir}"
    )
    if summary.get("stopped"):
        say(f"stopped early: {summary['stopped']}")
    if summary.get("llm"):
        llm = summary["llm"]
        say(
            f"LLM spend: ${llm['usd']:.4f}, {llm['tokens']:,} tokens; "
            + "; ".join(
                f"{model}: {m['calls']} calls, {m['children']} programs, ${m['cost']:.4f}"
                for model, m in llm["models"].items()
            )
        )
    if "report" in summary:
        say(f"report: {summary['report']}")
    elif "report_error" in summary:
        say(f"the report could not be written ({summary['report_error']}); try `actmine report {run_dir}`")
    if summary.get("failures"):
        say("refusals: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["failures"].items(), key=lambda kv: -kv[1])))
    if "best" in summary:
        best = summary["best"]
        se = f" ± {best['fitness_se']:.3f}" if best.get("fitness_se") is not None else ""
        chosen = (
            f"chosen on the validation tasks, rule {summary.get('winner_rule', 'mean')}"
            if summary.get("winner_chosen_by") == "validation"
            else "best by search score: nothing was validated"
        )
        blend = summary.get("blend") or {}
        if blend.get("program_id") == best["id"]:
            w = blend["weight"]
            partner = terminal_text(str(blend.get("partner") or blend["reference"]), keep_newlines=False)
            chosen += f", then blended: {1 - w:g}·#{blend['chosen']} + {w:g}·{partner}"
        elif blend.get("error"):
            chosen += f"; not blended: {terminal_text(blend['error'], keep_newlines=False)}"
        say(
            f"best program #{best['id']} ({chosen}; search fitness {best['fitness']:+.3f}{se}): "
            f"{terminal_text(best['rationale'] or '', keep_newlines=False)}"
        )
        say(terminal_text(best["source"]))
    if summary.get("heldout"):
        table = Table(title="validation (tasks the search never drew): fitness = −ood_log_ratio, higher is better")
        for column in ("activation", "search fitness", "validation fitness"):
            table.add_column(column, justify="left" if column == "activation" else "right")
        for row in summary["heldout"]:
            name = row["name"] + (" (winner)" if row.get("winner") else "")
            table.add_row(
                Text(terminal_text(name, keep_newlines=False)),
                f"{row['search_fitness']:+.3f}" if row["search_fitness"] is not None else "—",
                f"{row['heldout_fitness']:+.3f}" if row["heldout_fitness"] is not None else "refused",
            )
        console.print(table)
    if summary.get("comparisons"):
        table = Table(
            title="test suites (reported only): the winner's mean log-ratio against each function, "
            "95% interval over tasks and seeds; below 0 = the winner extrapolates better"
        )
        for column in ("suite", "against", "mean", "95% interval", "tasks × seeds"):
            table.add_column(column, justify="left" if column in ("suite", "against") else "right")
        for row in summary["comparisons"]:
            table.add_row(
                Text(terminal_text(row["suite"], False)),
                row["against"],
                f"{row['mean']:+.3f}",
                f"[{row['low']:+.3f}, {row['high']:+.3f}]",
                f"{row['tasks']} × {row['seeds']}",
            )
        console.print(table)
