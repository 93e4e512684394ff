"""`actmine list`, `evaluate` and `compare`: the registry, and activations scored on the lab."""

from __future__ import annotations

import argparse
import json
from typing import Sequence

import actmine.activations as activations

from ..lab.fitness import Evaluation
from ..targets import console as _console
from ..targets import evaluate_targets, pack_members
from ..terminal import terminal_text
from .common import EXIT_REFUSED, _fmt, lab_config


def cmd_list(args: argparse.Namespace) -> int:
    entries = [activations.info(name) for name in activations.list()]
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": e.name,
                        "formula": e.formula,
                        "pointwise": e.pointwise,
                        "source": e.source,
                        "aliases": list(e.aliases),
                    }
                    for e in entries
                ],
                indent=2,
            )
        )
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


def cmd_evaluate(args: argparse.Namespace) -> int:
    config, lab = lab_config(args)
    (evaluation,) = evaluate_targets(lab, [args.target], config.sandbox_limits(), show_progress=not args.json)
    if args.json:
        print(json.dumps(evaluation.to_dict(), indent=2))
    else:
        from rich.table import Table
        from rich.text import Text

        console = _console()
        if not evaluation.ok:
            # Text, not markup; every part from the worker may carry a candidate's text
            error = evaluation.error
            console.print(
                Text.assemble(
                    ("refused", "red"),
                    terminal_text(
                        f" {evaluation.activation} at stage {evaluation.stage}: [{error['code']}] {error['message']}"
                    ),
                )
            )
        else:
            table = Table(
                title=Text(
                    f"{terminal_text(evaluation.activation)} on suite {terminal_text(repr(lab.suite.name))} "
                    f"({len(lab.suite.seeds)} seeds, {lab.protocol.steps} steps)"
                )
            )
            for column in ("task", "family", "ID error", "OOD error", "ln(OOD / ReLU OOD)"):
                table.add_column(column, justify="left" if column in ("task", "family") else "right", no_wrap=True)
            for t in evaluation.tasks:
                table.add_row(  # a suite's names are free text: as Text, not markup, control characters escaped
                    Text(terminal_text(t.name, keep_newlines=False)),
                    Text(terminal_text(t.family, keep_newlines=False)),
                    _fmt(t.id_error),
                    _fmt(t.ood_error),
                    f"{t.log_ratio + 0.0:+.3f}",
                )
            console.print(table)
            console.print(
                f"ood_log_ratio [bold]{evaluation.ood_log_ratio:+.4f}[/bold]   fitness "
                f"[bold]{evaluation.fitness:+.4f}[/bold]   pointwise {evaluation.probes['pointwise']}   "
                f"{evaluation.probes['flops_per_element']} ops/element   {evaluation.seconds:.1f} s"
            )
    return 0 if evaluation.ok else EXIT_REFUSED


def cmd_compare(args: argparse.Namespace) -> int:
    config, lab = lab_config(args)
    evaluations = evaluate_targets(
        lab, pack_members(args.targets), config.sandbox_limits(), show_progress=not (args.json or args.markdown)
    )
    families = lab.suite.families
    if args.json:
        print(json.dumps([e.to_dict() for e in evaluations], indent=2))
    elif args.markdown:
        print(comparison_markdown(evaluations, families))
    else:
        from rich.table import Table
        from rich.text import Text

        table = Table(
            title=Text(
                f"OOD error per family (geometric mean; suite {terminal_text(repr(lab.suite.name))}, "
                f"{len(lab.suite.seeds)} seeds, {lab.protocol.steps} steps)"
            )
        )
        table.add_column("activation", no_wrap=True)
        for family in families:
            header = terminal_text(family, keep_newlines=False)
            table.add_column(Text(header), justify="right", min_width=len(header))
        table.add_column("max ID error", justify="right")
        table.add_column("ood_log_ratio", justify="right")
        for e in sorted(evaluations, key=lambda e: (not e.ok, e.ood_log_ratio or 0.0)):
            # names and codes as Text, not markup: a file name or a worker's code is not a style
            name = Text(terminal_text(e.activation, keep_newlines=False))
            if not e.ok:
                table.add_row(
                    name,
                    *["—"] * len(families),
                    "—",
                    Text(terminal_text(e.error["code"], keep_newlines=False), style="red"),
                )
                continue
            by_family = e.by_family()
            ratio = f"[green]{e.ood_log_ratio:+.3f}[/green]" if e.ood_log_ratio < 0 else f"{e.ood_log_ratio:+.3f}"
            table.add_row(
                name,
                *[_fmt(by_family[f]["ood_error"]) for f in families],
                _fmt(max(t.id_error for t in e.tasks)),
                ratio,
            )
        _console().print(table)
        _console().print("ood_log_ratio: mean over tasks of ln(OOD error ÷ ReLU's); negative beats ReLU.")
    if args.plot:
        from ..report.plots import plot_comparison

        scored = [e for e in evaluations if e.ok]
        # curves recorded by the probes (in the sandbox for program files): nothing untrusted runs here
        plot_comparison(scored, {e.activation: e.probes["curve"] for e in scored if "curve" in e.probes}, args.plot)
        _console(stderr=True).print(f"plot written to {args.plot}")
    return 0 if all(e.ok for e in evaluations) else EXIT_REFUSED


def comparison_markdown(evaluations: Sequence[Evaluation], families: Sequence[str]) -> str:
    """A markdown table of ID and OOD error per family and the log-ratio (docs/lab.md's calibration)."""
    from ..validity.report import markdown_text

    header = ["activation"] + [f"{f} ID / OOD" for f in families] + ["max task ID", "ood_log_ratio"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for e in evaluations:
        name = markdown_text(e.activation)  # a file's name may hold `|`, `<`, backticks
        if not e.ok:
            lines.append(
                f"| {name} | " + " | ".join(["—"] * (len(header) - 2)) + f" | {markdown_text(e.error['code'])} |"
            )
            continue
        by_family = e.by_family()
        cells = [f"{_fmt(by_family[f]['id_error'], 2)} / {_fmt(by_family[f]['ood_error'])}" for f in families]
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {_fmt(max(t.id_error for t in e.tasks), 2)} | {e.ood_log_ratio:+.3f} |"
        )
    return "\n".join(lines)
