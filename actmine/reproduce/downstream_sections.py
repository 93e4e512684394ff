"""Sections 4 to 6 of the reproduction report (`docs/reproduction.md`): what happens beyond the lab.

4. the transfer benchmarks (the equivalent `actmine transfer` command, the table, the findings),
5. whether lab fitness predicts downstream rank (the validity study's verdict, this run's
correlation), 6. the short search and where its winner lands, in the lab and downstream. Each
section takes the `_Report` and returns its lines; `markdown` joins them with the others.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from typing import Any

from .claims import _lab_functions, _validity_measured
from .formatting import _duration, _f, _names
from .report_context import _Report
from .rules import _ci_text, short
from .settings import REFERENCE, WINNER_FILE


# ------------------------------------------------------------------------------------------------
# 4. transfer
# ------------------------------------------------------------------------------------------------


def _transfer_command(r: _Report, transfer_part: Mapping[str, Any]) -> str:
    """The equivalent stand-alone `actmine transfer` command line."""
    out_dir = r.out_dir
    activations_arg = ",".join(list(r.settings.functions) + ([str(out_dir / WINNER_FILE)] if r.winner else []))
    option_args = " ".join(
        f"--option {shlex.quote(f'{b}.{k}={json.dumps(v)}')}"
        for b, opts in transfer_part["options"].items()
        for k, v in opts.items()
    )
    return (
        f"Command: `{r.command}` (part `transfer`); equivalent: `actmine transfer --activations "
        f"{activations_arg} --benchmarks {','.join(transfer_part['benchmarks'])} --seeds "
        f"{len(transfer_part['seeds'])} {option_args} --out {out_dir / 'transfer'}`."
    )


def _transfer_table(transfer_part: Mapping[str, Any]) -> list[str]:
    """Per function: each benchmark's score (mean ± sd) and log-ratio vs ReLU [95% CI]."""
    benchmarks = transfer_part["benchmarks"]
    metric = {r["benchmark"]: r["metric"] for r in transfer_part["rows"]}
    header = (
        ["function"]
        + [f"{b} {metric.get(b, '')} (mean ± sd)" for b in benchmarks]
        + [f"{b} log-ratio [95% CI]" for b in benchmarks]
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    by_cell = {(r["activation"], r["benchmark"]): r for r in transfer_part["rows"]}
    for name in dict.fromkeys(r["activation"] for r in transfer_part["rows"]):
        cells = [short(name)]
        for b in benchmarks:
            r = by_cell.get((name, b))
            cells.append(
                "—"
                if not r or not r["n"]
                else f"{r['mean']:.4f} ± {_f(r['std'], '.4f')}" + (f" ({r['failed']} failed)" if r["failed"] else "")
            )
        for b in benchmarks:
            r = by_cell.get((name, b))
            cells.append("0 (reference)" if name == REFERENCE else _ci_text(r["ci"]) if r else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _transfer_findings(r: _Report, transfer_part: Mapping[str, Any]) -> list[str]:
    """Per benchmark: the functions significantly better and worse than ReLU, the best mean; the
    failed jobs."""
    lines = []
    for b in transfer_part["benchmarks"]:
        rows = [
            row
            for row in transfer_part["rows"]
            if row["benchmark"] == b and row["activation"] != REFERENCE and row["ci"]["mean"] is not None
        ]
        better = [row["activation"] for row in rows if row["ci"]["high"] is not None and row["ci"]["high"] < 0]
        worse = [row["activation"] for row in rows if row["ci"]["low"] is not None and row["ci"]["low"] > 0]
        best = min(rows, key=lambda row: row["ci"]["mean"]) if rows else None
        lines.append(
            f"On `{b}`: significantly better than ReLU: {_names(better)}; significantly worse: "
            f"{_names(worse)}"
            + (f"; best mean: {short(best['activation'])} ({best['ci']['mean']:+.3f})" if best else "")
            + "."
        )
    if r.settings.quick and "clrs" in transfer_part["benchmarks"]:
        lines.append("")
        lines.append(
            "In `--quick`, CLRS is reduced (see Settings: one algorithm, a smaller model, fewer steps "
            "and test graphs than the benchmark's defaults of four algorithms × 300 steps), and "
            "`digits` trains for fewer epochs: a smoke check of the transfer claims, not a test of the "
            "paper's CLRS-30 numbers. The full run uses the benchmarks' defaults."
        )
    if transfer_part["failures"]:
        lines += [
            "",
            "Failed jobs: "
            + "; ".join(
                f"{short(f['activation'])} on {f['benchmark']} seed {f['seed']}: [{f['error']['code']}] "
                f"{f['error']['message'][:160]}"
                for f in transfer_part["failures"]
            ),
        ]
    return lines + [""]


def _transfer_section(r: _Report) -> list[str]:
    lines = ["## 4. Transfer", ""]
    transfer_part = r.parts.get("transfer")
    if transfer_part is None:
        return lines + ["Skipped (`--skip-transfer`).", ""]
    if not transfer_part.get("rows"):
        return lines + [
            "No benchmark could run: "
            + "; ".join(f"`{b}`: {why}" for b, why in transfer_part.get("missing", {}).items()),
            "",
        ]
    lines += [_transfer_command(r, transfer_part), "", f"![transfer]({r.link('transfer.png')})", ""]
    if transfer_part.get("missing"):
        lines += [
            "Not run (data or dependency missing): "
            + "; ".join(f"`{b}`: {why}" for b, why in transfer_part["missing"].items())
            + ".",
            "",
        ]
    return lines + _transfer_table(transfer_part) + _transfer_findings(r, transfer_part)


# ------------------------------------------------------------------------------------------------
# 5. the correlation, 6. the search
# ------------------------------------------------------------------------------------------------


def _correlation_section(r: _Report) -> list[str]:
    corr = r.parts.get("analysis")
    lines = [
        "## 5. Does lab fitness predict downstream rank?",
        "",
        "The verdict of this claim comes from the validity study (`actmine validate`, "
        "docs/validity.md): two dozen functions or more across the whole range of lab "
        "fitness, lab fitness on the unseen test suites, real-data extrapolation benchmarks, bootstrap "
        "intervals; " + _validity_measured(r.parts.get("validity")) + ". The correlation below uses only this "
        "run's few functions and benchmarks and is shown for information.",
        "",
    ]
    if not (corr and corr.get("correlations")):
        return lines + ["Not computed (needs the lab comparison and the transfer).", ""]
    lines += [
        "Spearman's ρ (average ranks for ties) across all functions between lab fitness "
        f"(−ood_log_ratio on `{r.settings.suite}`) and downstream fitness (−log-ratio vs ReLU; ReLU is "
        "(0, 0)); p: one-sided permutation test of ρ > 0.",
        "",
        f"![lab vs downstream]({r.link('correlation.png')})",
        "",
        "| downstream | functions | Spearman ρ | one-sided p |",
        "|---|---|---|---|",
    ]
    for key, c in corr["correlations"].items():
        lines.append(
            f"| {'mean over benchmarks' if key == 'mean' else key} | {c['n']} | {_f(c['rho'], '+.2f')} | "
            f"{_f(c['p_value'], '.3f')} |"
        )
    return lines + [""]


def _winner_ranks(r: _Report, winner: Mapping[str, Any]) -> list[str]:
    """Where the winner lands: its rank among the lab's functions on each suite, and downstream."""
    settings, lab_part, transfer_part, lines = r.settings, r.parts.get("lab"), r.parts.get("transfer"), []
    for suite in (settings.suite, settings.heldout_suite):
        entry = winner["suites"].get(suite, {})
        functions = _lab_functions(lab_part, suite)
        if entry.get("ok") and functions:
            means = sorted([e["ci"]["mean"] for e in functions.values() if e.get("ok")] + [entry["ci"]["mean"]])
            rank = means.index(entry["ci"]["mean"]) + 1
            lines.append(
                f"- `{suite}` ({settings.seeds} seeds): {_ci_text(entry['ci'])}, rank {rank} of "
                f"{len(means)} functions (lowest first)."
            )
        elif entry:
            lines.append(f"- `{suite}`: failed ({(entry.get('error') or {}).get('code')}).")
    rows = [row for row in (transfer_part or {}).get("rows", []) if row["activation"] == "search_winner"]
    for row in rows:
        others = sorted(
            0.0 if x["activation"] == REFERENCE else x["ci"]["mean"]
            for x in transfer_part["rows"]
            if x["benchmark"] == row["benchmark"] and (x["activation"] == REFERENCE or x["ci"]["mean"] is not None)
        )
        if row["ci"]["mean"] is not None:
            lines.append(
                f"- `{row['benchmark']}`: log-ratio vs ReLU {_ci_text(row['ci'])}, rank "
                f"{others.index(row['ci']['mean']) + 1} of {len(others)} functions, ReLU included "
                "(lowest first)."
            )
    return lines


def _winner_lines(r: _Report, config: Mapping[str, Any], winner: Mapping[str, Any] | None) -> list[str]:
    """The winner's source, where it lands, and (in `--quick`) why its held-out score is the honest one."""
    if not winner:
        return ["The search produced no scored program."]
    lines = [
        "",
        f"The winner, program #{winner['program_id']} (search fitness "
        f"{winner['search_fitness']:+.3f}; saved as [{WINNER_FILE}]({r.link(WINNER_FILE)})):",
        "",
        "```python",
        winner["source"].rstrip(),
        "```",
        "",
    ]
    lines += _winner_ranks(r, winner)
    if r.settings.quick:
        lines.append("")
        lines.append(
            f"With {config['lab']['training_seeds']} seeds and {config['search']['budget']} evaluations the "
            'search\'s best is partly selected on seed noise (docs/lab.md, "Noise"); its held-out '
            "score is the honest number."
        )
    return lines


def _search_section(r: _Report) -> list[str]:
    lines = ["## 6. A short search, and where its winner lands", ""]
    search_part = r.parts.get("search")
    if not search_part:
        return lines + ["Skipped (`--skip-search`).", ""]
    config = search_part["config"]
    lines += [
        f"Command: `{r.command}` (part `search`); equivalent: `actmine search --budget "
        f"{config['search']['budget']} --run-dir {search_part['run_dir']}` with `lab.training_seeds: "
        f"{config['lab']['training_seeds']}`, `search.time_limit: {config['search']['time_limit']}`, "
        f"`search.heldout_top: {config['search']['heldout_top']}` in a config file.",
        "",
        f"{search_part['evaluated']} evaluations in {_duration(search_part['seconds'])} "
        f"({config['mutator']['kind']} mutator, {config['lab']['training_seeds']} seeds on `{config['lab']['suite']}`, "
        f"{config['executor']['workers']} workers).",
    ]
    return lines + _winner_lines(r, config, r.winner) + [""]
