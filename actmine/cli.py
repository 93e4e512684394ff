"""The `actmine` command.

    actmine list                              the activation registry, with formulas
    actmine evaluate TARGET [--json]          score one activation (registry name, .py file or PACK.py:NAME)
    actmine compare A B C … [--markdown]      score several and print a table per family
    actmine validate --out DIR [...]          the validity study: lab fitness vs downstream fitness

This module is the command line itself: every subcommand's options and help text
(`build_parser`, one `_add_*_parser` per subcommand, in the order --help lists them) and `main`,
which checks the options several subcommands share and dispatches to the subcommand's `cmd_*`
function. What each subcommand does lives in `actmine.commands` (one module per group); its names
are re-exported here, so `actmine.cli.<name>` keeps working for everything defined here before.
"""

from __future__ import annotations

import argparse
import io
import platform
import signal
import sys
from typing import Sequence

import torch

from .candidate.probes import ProbeBudget
from .candidate.sandbox import SandboxLimits
from .commands.common import EXIT_BUSY as EXIT_BUSY
from .commands.common import EXIT_REFUSED as EXIT_REFUSED
from .commands.common import EXIT_USAGE as EXIT_USAGE
from .commands.common import _comma_list as _comma_list
from .commands.common import _fmt as _fmt
from .commands.common import lab_config as lab_config
from .commands.downstream import cmd_transfer as cmd_transfer
from .commands.downstream import cmd_validate as cmd_validate
from .commands.reproduce import _print_claims as _print_claims
from .commands.reproduce import _reproduce_alphas as _reproduce_alphas
from .commands.reproduce import _reproduce_benchmarks as _reproduce_benchmarks
from .commands.reproduce import _reproduce_changes as _reproduce_changes
from .commands.reproduce import _reproduce_functions as _reproduce_functions
from .commands.reproduce import _reproduce_paths as _reproduce_paths
from .commands.reproduce import _reproduce_seed_counts as _reproduce_seed_counts
from .commands.reproduce import _reproduce_settings as _reproduce_settings
from .commands.reproduce import _reproduce_suites as _reproduce_suites
from .commands.reproduce import _reproduce_transfer_options as _reproduce_transfer_options
from .commands.reproduce import cmd_reproduce as cmd_reproduce
from .commands.runs import _existing_run as _existing_run
from .commands.runs import _readable_run as _readable_run
from .commands.runs import _runs_under as _runs_under
from .commands.runs import cmd_export as cmd_export
from .commands.runs import cmd_report as cmd_report
from .commands.runs import cmd_serve as cmd_serve
from .commands.scoring import cmd_compare as cmd_compare
from .commands.scoring import cmd_evaluate as cmd_evaluate
from .commands.scoring import cmd_list as cmd_list
from .commands.scoring import comparison_markdown as comparison_markdown
from .commands.search import cmd_llm_check as cmd_llm_check
from .commands.search import cmd_search as cmd_search
from .commands.search import print_search_summary as print_search_summary
from .evolve.mutators import mutator_names
from .executors import executor_names, job_pool_names
from .targets import (  # noqa: F401  (defined here before: re-exported)
    Target,
    UsageError,
    evaluate_targets,
    lab_for,
    pack_members,
    resolve_target,
)
from .stop_signals import exit_status
from .terminal import terminal_text
from .version import __version__


# --------------------------------------------------------------------------------------------
# The command line: options and help text of each subcommand
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
    p.add_argument(
        "--max-flops",
        type=float,
        default=ProbeBudget.max_flops_per_element,
        help="refuse candidates above this many weighted elementwise ops per element",
    )
    p.add_argument(
        "--allow-batch-dependent",
        action="store_true",
        help="score batch-dependent candidates (one example at a time) instead of refusing them",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=SandboxLimits.timeout_s,
        help="wall-clock and CPU seconds allowed to one program file's evaluation",
    )
    p.add_argument(
        "--memory-mb",
        type=int,
        default=SandboxLimits.memory_mb,
        help="address-space limit of the worker that evaluates a program file",
    )


def _add_list_parser(sub) -> None:
    """`actmine list`."""
    p = sub.add_parser("list", help="the activation registry, with formulas")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=cmd_list)


def _add_evaluate_parser(sub) -> None:
    """`actmine evaluate TARGET`."""
    p = sub.add_parser("evaluate", help="score one activation on the lab")
    p.add_argument(
        "target",
        help="registry name (see `actmine list`), a .py file defining activation_function(x) "
        "(or a search's best_activation.py), or PACK.py:NAME, a program of an export pack; "
        "files run only in a sandboxed worker",
    )
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    _add_lab_options(p)
    p.set_defaults(run=cmd_evaluate)


def _add_compare_parser(sub) -> None:
    """`actmine compare TARGET…`."""
    p = sub.add_parser("compare", help="score several activations and print a table per family")
    p.add_argument(
        "targets",
        nargs="+",
        help="registry names, .py files, PACK.py:NAME programs or a PACK.py (each of its programs)",
    )
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
    p.add_argument("--mutator", choices=mutator_names(), help="the mutation operator")
    p.add_argument("--budget", type=int, help="evaluations in total (a resumed run counts those done)")
    p.add_argument("--time", type=float, help="seconds of search before the held-out check (0: no limit)")
    p.add_argument("--workers", type=int, help="evaluations at once (default: one per core; local: at most 4 per core)")
    p.add_argument("--executor", choices=executor_names(), help="local processes or a Dask cluster")
    p.add_argument("--scheduler", help="address of a running Dask scheduler (default: start a local one)")
    p.add_argument("--seed", type=int, help="the run's seed")
    p.add_argument("--quiet", action="store_true", help="no live view")
    p.set_defaults(run=cmd_search)


def _add_llm_parser(sub) -> None:
    """`actmine llm check --config FILE`, under a group of its own for later LLM actions."""
    p = sub.add_parser("llm", help="the LLM mutator's endpoints: `actmine llm check --config FILE`")
    llm = p.add_subparsers(dest="llm_command", required=True, metavar="ACTION")
    about = (
        "one real request per configured model: endpoint, key, model name, the parsed program and the "
        "policy's verdict, tokens and costs; exit 0 all good, 1 a program refused or absent, 2 a bad config, "
        "3 a model unusable"
    )
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
    p = sub.add_parser(
        "export",
        help="the top programs of a run as a pack: a generated file holding them as data, "
        "loaded through the candidate policy",
    )
    p.add_argument("run_dir", help="the run directory of an `actmine search`")
    p.add_argument(
        "--top",
        type=int,
        default=3,
        help="how many programs to export: the run's winner (chosen on "
        "validation) first, then the fittest by search score",
    )
    p.add_argument("--out", required=True, help="the .py file to write")
    p.set_defaults(run=cmd_export)


def _add_transfer_parser(sub) -> None:
    """`actmine transfer`: what to train, where the jobs run, and the limits of one job."""
    p = sub.add_parser(
        "transfer",
        help="train real models (benchmarks) with each activation; compare with ReLU",
        description="Train every activation × benchmark × seed from scratch (each job in its own "
        "process, locally or on Dask) and report the score's mean ± std over seeds and "
        "ln(error / ReLU's error) per benchmark (< 0 beats ReLU). Writes OUT/results.jsonl "
        "(as jobs finish; a rerun with the same --out skips jobs done), OUT/results.json, "
        "OUT/summary.csv and OUT/transfer.png. See docs/transfer.md.",
    )
    # --help lists the groups in this order: what to train, where it runs, the limits of one job.
    _add_transfer_workload_options(p)
    _add_transfer_execution_options(p)
    _add_transfer_job_limit_options(p)
    p.set_defaults(run=cmd_transfer)


def _add_transfer_workload_options(p: argparse.ArgumentParser) -> None:
    """`actmine transfer`'s options for what to train: activations, benchmarks, seeds, data and benchmark options."""
    p.add_argument(
        "--activations",
        default="relu,gelu,gelu_sine",
        metavar="A,B,…",
        help="comma-separated registry names, candidate .py files defining activation_function(x), or "
        "exported PACK.py:NAME; relu is added if missing (default: %(default)s)",
    )
    p.add_argument(
        "--benchmarks",
        default="digits",
        metavar="B,…",
        help="comma-separated: digits, cifar10, imagenet, clrs, molhiv, series, diabetes (default: %(default)s)",
    )
    p.add_argument("--seeds", type=int, default=3, metavar="N", help="seeds 0..N-1 per job (default: %(default)s)")
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="where the datasets are (default: $ACTMINE_DATA_DIR, else ~/.cache/actmine/data)",
    )
    p.add_argument("--epochs", type=int, metavar="N", help="epochs for every benchmark that has an epochs option")
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="BENCHMARK.KEY=VALUE",
        help="a benchmark constructor option, value parsed as YAML (repeatable), e.g. cifar10.batch_size=256",
    )


def _add_transfer_execution_options(p: argparse.ArgumentParser) -> None:
    """`actmine transfer`'s options for where the jobs run and what the run writes and prints."""
    p.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="cpu, or cuda: one job per GPU at a time (default: %(default)s)",
    )
    p.add_argument(
        "--executor",
        choices=job_pool_names(),
        default="local",
        help="local processes or a Dask cluster (default: %(default)s)",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="jobs at once: local processes or local Dask workers (default: one per core, or per "
        "GPU with --device cuda); with --scheduler: wait for this many Dask workers",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="a running Dask scheduler, e.g. tcp://host:8786 (default: start a local cluster)",
    )
    p.add_argument("--out", default="transfer", metavar="DIR", help="output directory (default: ./%(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-job lines (failures still shown)")


def _add_transfer_job_limit_options(p: argparse.ArgumentParser) -> None:
    """`actmine transfer`'s limits of one job: wall clock, CPU time and address space."""
    p.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="wall clock of one job, then its processes are killed and it fails (timeout); 0: none "
        "(default: per benchmark, from its epochs; see docs/transfer.md)",
    )
    p.add_argument(
        "--cpu-time",
        type=float,
        metavar="SECONDS",
        help="CPU seconds of one job's process (cpu_limit); 0: none (default: the timeout × the threads a job may use)",
    )
    p.add_argument(
        "--memory-mb",
        type=int,
        metavar="MB",
        help="address space of one job's process (memory_limit); 0: none; never applied with "
        "--device cuda (default: per benchmark, e.g. 4096 for digits, 16384 for cifar10)",
    )


def _add_reproduce_parser(sub) -> None:
    """`actmine reproduce`: the documented options, then the hidden ones (`_add_reproduce_hidden_options`)."""
    p = sub.add_parser(
        "reproduce",
        help="check the paper's claims with our lab; writes docs/reproduction.md",
        description="Run the paper's comparisons on this lab and the transfer benchmarks and write a "
        "report (--doc) with every number measured: each claim of the paper next to our "
        "measurement and a verdict (reproduced, not reproduced, not checkable here) decided "
        "by an explicit rule; plots and raw JSON go to --out-dir. Parts: search, lab, alpha, "
        "batch, transfer, analysis. Each part's JSON is saved as soon as it finishes, with "
        "its settings: running the command again reuses every part saved with the same "
        "settings (an interrupted run resumes), --force recomputes. --quick takes under 10 "
        "minutes on a 2-core machine; the full version 2-3 hours there (mostly CLRS), "
        "and the report records how long it took. See docs/reproduction.md.",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="5 seeds, a 30-evaluation search, digits and a reduced CLRS only (under 10 minutes)",
    )
    p.add_argument(
        "--out-dir",
        default="reproduction",
        metavar="DIR",
        help="plots, raw JSON, the transfer journal and the search run (default: %(default)s)",
    )
    p.add_argument(
        "--doc", default="docs/reproduction.md", metavar="FILE.md", help="the markdown report (default: %(default)s)"
    )
    p.add_argument(
        "--seeds",
        type=int,
        metavar="N",
        help="lab training seeds 0..N-1 for the confidence intervals (default: 8, --quick 5)",
    )
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="processes for the search and the transfer jobs (default: one per core)",
    )
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="datasets of the transfer benchmarks; cifar10, imagenet and molhiv run (full version) "
        "when their data are here (default: $ACTMINE_DATA_DIR, else ~/.cache/actmine/data)",
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the lab and the transfer train")
    p.add_argument("--skip-transfer", action="store_true", help="no downstream benchmarks")
    p.add_argument("--skip-search", action="store_true", help="no search (and no search winner)")
    p.add_argument("--force", action="store_true", help="recompute every part, even those saved with the same settings")
    p.add_argument(
        "--validity",
        metavar="FILE.json",
        help="the validity study (`actmine validate`) whose pooled correlation decides the claim "
        '"lab fitness predicts downstream rank" (default: validity/validity.json under the current '
        "directory, as the other defaults; without it the claim is not checkable)",
    )
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

    p = sub.add_parser(
        "validate",
        help="the validity study: does lab fitness predict downstream extrapolation?",
        description="Score a few dozen functions spanning the range of lab fitness (the pointwise "
        "library with the paper's functions, search winners, random programs chosen "
        "stratified by lab fitness) on the lab's test suites and on each benchmark over "
        "several seeds; report Spearman's rho between lab and downstream fitness per "
        "benchmark and pooled with a bootstrap 95% interval (functions, tasks and seeds "
        "resampled), which lab families predict which benchmark, a scatter plot per "
        "benchmark and the compute cost. Writes OUT/validity.md, OUT/validity.json, "
        "OUT/scatter-*.png; OUT/lab.jsonl and OUT/transfer/results.jsonl make a rerun with "
        "the same --out resume.",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="the study's directory (an existing one is resumed)")
    p.add_argument(
        "--benchmarks",
        default=",".join(DEFAULT_BENCHMARKS),
        metavar="B,…",
        help="comma-separated downstream benchmarks (default: %(default)s)",
    )
    p.add_argument(
        "--seeds", type=int, default=3, metavar="N", help="training seeds 0..N-1 per benchmark (default: %(default)s)"
    )
    # --help lists the groups in this order: which functions, then where the jobs run.
    _add_validate_function_options(p)
    _add_validate_execution_options(p)
    p.add_argument("--replicates", type=int, default=2000, metavar="B", help="bootstrap replicates (default: 2000)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(run=cmd_validate)


def _add_validate_function_options(p: argparse.ArgumentParser) -> None:
    """`actmine validate`'s options for which functions join the study and which lab suites score them."""
    p.add_argument(
        "--random",
        type=int,
        default=12,
        metavar="K",
        help="random programs kept, at evenly spaced ranks of lab fitness (default: %(default)s)",
    )
    p.add_argument(
        "--random-pool",
        type=int,
        default=48,
        metavar="M",
        help="random programs drawn and scored in the lab to choose them from (default: %(default)s)",
    )
    p.add_argument("--random-seed", type=int, default=0, metavar="S", help="seed of the random draws (default: 0)")
    p.add_argument(
        "--run",
        dest="runs",
        action="extend",
        nargs="+",
        default=[],
        metavar="RUN_DIR",
        help="search run directories whose best_activation.py joins the study (repeatable)",
    )
    p.add_argument(
        "--functions",
        action="extend",
        nargs="+",
        metavar="NAME_OR_FILE",
        help="instead of the pointwise library: registry names, .py files or PACK.py:NAME (ReLU is always added)",
    )
    p.add_argument(
        "--lab-suites",
        metavar="S,…",
        help="lab suites to score on: feynman, expression-bump, response, lab-heldout or suite files "
        "(default: the unseen test suites, feynman,expression-bump,response)",
    )


def _add_validate_execution_options(p: argparse.ArgumentParser) -> None:
    """`actmine validate`'s options for where the lab's programs and the transfer jobs run, and on which data."""
    p.add_argument(
        "--executor",
        choices=job_pool_names(),
        default="local",
        help="local processes or a Dask cluster, for the lab's programs and the transfer jobs",
    )
    p.add_argument("--workers", type=int, help="evaluations and jobs at once (default: one per core)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler (default: start a local one)")
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="BENCHMARK.KEY=VALUE",
        help="a benchmark constructor option, value parsed as YAML (repeatable), e.g. diabetes.steps=100",
    )
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="where the benchmarks' datasets are (default: $ACTMINE_DATA_DIR, else ~/.cache/actmine/data)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The `actmine` command line: one subcommand per `cmd_*` function, in the order --help lists them."""
    parser = argparse.ArgumentParser(prog="actmine", description="Mine activation functions that extrapolate.")
    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_subcommand in (
        _add_list_parser,
        _add_evaluate_parser,
        _add_compare_parser,
        _add_search_parser,
        _add_llm_parser,
        _add_report_parser,
        _add_serve_parser,
        _add_export_parser,
        _add_transfer_parser,
        _add_reproduce_parser,
        _add_validate_parser,
    ):
        add_subcommand(sub)
    return parser


def _printable_output() -> None:
    """Text that the terminal's encoding cannot show becomes "?" instead of a UnicodeEncodeError:
    in an ASCII locale (LC_ALL=C with PYTHONUTF8=0) the "±" of a summary or the "÷" of a table
    crashed `list`, `compare` and the end of `search` after the work was done; a run directory's
    undecodable name does the same in any locale. (stderr already escapes what it cannot encode.)"""
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="replace")


def main(argv: Sequence[str] | None = None) -> int:
    _printable_output()
    try:
        return _run(build_parser().parse_args(argv))
    except KeyboardInterrupt:  # commands that keep partial work say how to resume; the rest stop here
        print("actmine: interrupted", file=sys.stderr)
        return exit_status(signal.SIGINT)


def _run(args: argparse.Namespace) -> int:
    """The options several subcommands share, checked; then the subcommand."""
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
