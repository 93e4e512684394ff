"""``validity.md``: the study's Markdown report, written from ``validity.json``'s document alone.

Every name that comes from a file, a run directory or a database (function names, error
messages) goes through `markdown_text`, so it can neither break a table nor inject markup.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["markdown_report", "markdown_text", "rho_text"]

_ESCAPED = "\\`*_{}[]()#+!|~"


def markdown_text(text: Any) -> str:
    """``text`` safe inside a Markdown table cell or paragraph: control characters and newlines
    written visibly (`terminal_text`), Markdown's punctuation backslash-escaped (``|`` and
    backticks included), ``&``, ``<`` and ``>`` as HTML entities (no raw HTML)."""
    from ..terminal import terminal_text

    text = terminal_text(text, keep_newlines=False)
    text = "".join("\\" + c if c in _ESCAPED else c for c in text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code(text: Any) -> str:
    """``text`` for an indented code block: one line (nothing else can end the block), shown as is."""
    from ..terminal import terminal_text

    return terminal_text(text, keep_newlines=False)


def _number(value: float | None, fmt: str = "+.3f") -> str:
    return "—" if value is None or not math.isfinite(value) else format(value, fmt)


def rho_text(cell: Mapping[str, Any] | None) -> str:
    """``+0.41 [+0.05, +0.70]``: ρ and its interval; ``—`` when undefined."""
    if not cell or cell.get("rho") is None:
        return "—"
    if cell.get("low") is None:
        return f"{cell['rho']:+.2f}"
    return f"{cell['rho']:+.2f} [{_number(cell['low'], '+.2f')}, {_number(cell['high'], '+.2f')}]"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _summary(doc: Mapping[str, Any]) -> list[str]:
    correlations = doc["correlations"]
    seeds = len(doc["seeds"])
    rows = [[markdown_text(b), rho_text(c), str(c["n"]), str(seeds)] for b, c in correlations["per_benchmark"].items()]
    if correlations.get("pooled"):
        c = correlations["pooled"]
        rows.append(["**pooled** (mean over the benchmarks)", rho_text(c), str(c["n"]), str(seeds)])
    return _table(["benchmark", "Spearman ρ [95% bootstrap interval]", "functions", "seeds"], rows)


def _families(doc: Mapping[str, Any]) -> list[str]:
    correlations = doc["correlations"]
    benchmarks = list(correlations["per_benchmark"]) + (["pooled"] if correlations.get("pooled") else [])
    overall = {**correlations["per_benchmark"], "pooled": correlations.get("pooled")}
    rows = [[f"all test tasks ({len(doc['lab_columns'])})"] + [rho_text(overall[b]) for b in benchmarks]]
    for group, cells in correlations["families"].items():
        label = f"{markdown_text(group)} ({doc['lab_groups'][group]})"
        rows.append([label] + [rho_text(cells.get(b)) for b in benchmarks])
    return _table(["lab group (tasks)"] + [markdown_text(b) for b in benchmarks], rows)


def _functions(doc: Mapping[str, Any]) -> list[str]:
    benchmarks = list(doc["benchmarks"])
    rows = []
    for f in sorted((f for f in doc["functions"] if f["lab"]["ok"]), key=lambda f: -f["lab"]["fitness"]):
        cells = [_number((f["downstream"].get(b) or {}).get("fitness")) for b in benchmarks]
        pooled = [_number(f.get("pooled"))] if len(benchmarks) > 1 else []
        rows.append(
            [markdown_text(f["name"]), markdown_text(f["origin"]), _number(f["lab"]["fitness"]), *cells, *pooled]
        )
    header = ["function", "included as", "lab fitness", *[markdown_text(b) for b in benchmarks]]
    return _table(header + (["pooled"] if len(benchmarks) > 1 else []), rows)


def _pool(doc: Mapping[str, Any]) -> list[str]:
    pool = doc["random_pool"]
    if not pool:
        return []
    kept = [p for p in pool if p["chosen"]]
    return [
        "",
        f"Random programs: {len(pool)} drawn (seed {doc['settings']['random_seed']}), "
        f"{sum(p['ok'] for p in pool)} scored by the lab, {len(kept)} kept at evenly spaced ranks of lab "
        f"fitness: {', '.join(markdown_text(p['name']) for p in kept) or 'none'}. Their sources are in "
        "`functions/`.",
    ]


def _excluded(doc: Mapping[str, Any]) -> list[str]:
    lines = [f"- {markdown_text(name)}: {markdown_text(why)}" for name, why in doc["skipped"].items()]
    for f in doc["functions"]:
        if not f["lab"]["ok"]:
            error = f["lab"].get("error") or {}
            lines.append(
                f"- {markdown_text(f['name'])} ({markdown_text(f['origin'])}): refused by the lab "
                f"[{markdown_text(error.get('code', '?'))}] {markdown_text(error.get('message', ''))}"
            )
    failures = doc["transfer_failures"]
    if failures:
        lines.append(f"- {len(failures)} transfer job(s) failed; the functions' other seeds count:")
        lines += [
            f"  - {markdown_text(x['activation'])} on {markdown_text(x['benchmark'])} seed {x['seed']}: "
            f"[{markdown_text(x['error']['code'])}] {markdown_text(x['error']['message'][:200])}"
            for x in failures[:20]
        ]
    return lines or ["- none"]


def _cost(doc: Mapping[str, Any]) -> list[str]:
    cost = doc["cost"]
    lab, transfer = cost["lab"], cost["transfer"]
    lines = [
        f"- lab: {lab['functions']} functions scored (the random pool included), {_duration(lab['seconds'])} of "
        f"evaluation in all, {_number(lab['mean_seconds'], '.1f')} s per function",
        f"- transfer: {transfer['jobs']} jobs, {_duration(transfer['job_seconds'])} of job time in all "
        f"({transfer['resumed']} of them from earlier invocations)",
    ]
    lines += [
        f"  - {markdown_text(b)}: {c['jobs']} jobs, {_number(c['mean_seconds'], '.1f')} s per job"
        for b, c in transfer["per_benchmark"].items()
    ]
    lines.append(
        f"- this invocation: {_duration(cost['wall_seconds'])} of wall-clock time "
        f"(transfer {_duration(transfer['wall_seconds'])}), executor {markdown_text(cost['executor'])}, "
        f"{cost['workers'] or 'one per core'} workers"
    )
    lines.append(f"- compute in all (each lab evaluation and each job uses one core): {_duration(cost['cpu_seconds'])}")
    return lines


METHOD = (
    "Each function is scored by the lab on the test suites (tasks no search ever draws from): lab fitness = "
    "−mean over the tasks of the task's log-ratio (mean over its training seeds of ln(OOD error ÷ ReLU's), clipped "
    "to ±3). Each benchmark trains it from scratch on every seed: downstream fitness = −mean over the seeds of "
    "clip(ln(error ÷ ReLU's error on the same seed), ±3). Both are 0 for ReLU and positive when it does better. "
    "ρ is Spearman's rank correlation over the functions the lab scored (refused ones have no lab fitness). The "
    "interval is a percentile bootstrap: each replicate resamples the functions, the lab's tasks and each "
    "benchmark's seeds with replacement (tasks and seeds are shared by all functions, so one draw of each serves "
    "every function; a task keeps its seeds together) and recomputes both fitnesses and ρ. Pooled: downstream "
    "fitness averaged over the benchmarks, for the functions that have them all. Random programs come from the "
    "offline random mutator (seeded): a pool is scored in the lab and the ones at evenly spaced ranks of lab "
    "fitness are kept, so the whole range is covered, below ReLU included."
)


RECOMMENDED_FUNCTIONS = 24  # fewer, and the interval of ρ is too wide to say much


def _size_note(doc: Mapping[str, Any]) -> list[str]:
    n = doc["counts"]["in_correlations"]
    if n >= RECOMMENDED_FUNCTIONS:
        return []
    return [
        "",
        f"**Note:** {n} functions; with fewer than {RECOMMENDED_FUNCTIONS} the intervals are wide. A full "
        "study uses the whole library, `--random 12` or more, and search winners (`--run`).",
    ]


def markdown_report(doc: Mapping[str, Any], plots: Mapping[str, str]) -> str:
    """The report; ``plots``: ``{benchmark or "pooled": file name beside the report}``."""
    lines = [
        "# Does the lab predict downstream extrapolation? (validity study)",
        "",
        f"{doc['counts']['in_correlations']} functions scored by the lab on "
        f"{', '.join(markdown_text(s) for s in doc['labs'])} ({len(doc['lab_columns'])} tasks) and trained on "
        f"{', '.join(markdown_text(b) for b in doc['benchmarks'])} with {len(doc['seeds'])} seed(s) each; "
        f"{doc['replicates']} bootstrap replicates. Command:",
        "",
        "    " + _code(doc["command"]),
        "",
        "## Spearman ρ between lab fitness and downstream fitness",
        "",
        *_summary(doc),
        *_size_note(doc),
        "",
        "## Which lab families predict which benchmark",
        "",
        *_families(doc),
        "",
        "## Functions (lab fitness and downstream fitness; > 0 beats ReLU)",
        "",
        *_functions(doc),
        *_pool(doc),
        "",
        "## Not in the correlations",
        "",
        *_excluded(doc),
        "",
        "## Compute cost",
        "",
        *_cost(doc),
        "",
        "## Method",
        "",
        METHOD,
        "",
        "## Plots",
        "",
    ]
    lines += [f"![{markdown_text(key)}]({name})" for key, name in plots.items()]
    return "\n".join(lines) + "\n"
