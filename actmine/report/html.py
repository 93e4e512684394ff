"""`write_report(run_dir)`: one self-contained HTML page about a search run.

No network at view time: inline CSS, images as base64 PNG data URIs, no scripts. Everything that
comes from the database (sources, rationales, mutator and model names, failure messages, an LLM's
original answer and the normaliser's changes, shown under a top candidate's program) is
untrusted text and goes through `_e` (`html.escape`, control characters made visible). The
database is opened read-only, so a report can be written while the search runs. Candidate sources are never executed: curves are drawn from the
probes' recorded `curve` (f and f' measured in the sandbox) or, for older records, from the
restricted-ast interpreter of `formula.safe_function` (outside its subset: no curve). The library's references (trusted code) are evaluated in-process on the run's search suite
for the per-task heatmap.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

from ..evolve.database import ProgramDatabase, ProgramRecord
from ..terminal import terminal_text
from . import plots
from .formula import safe_function, simplified_formula, simplified_formulas

__all__ = ["write_report", "REFERENCE_NAMES"]

REFERENCE_NAMES = ("relu", "gelu", "gelu_sine", "gelu_sinc_perturbation")

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;
color:#222;padding:0 1em;line-height:1.4}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}th,td{border:1px solid #ddd;padding:.25em .5em;
vertical-align:top;text-align:left}th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f7f7f7;border:1px solid #e3e3e3;padding:.6em;overflow-x:auto;font-size:.85em;white-space:pre-wrap}
code{font-size:.9em}img{max-width:100%;height:auto}.muted{color:#777}.candidate{margin-bottom:2em}
.rationale{max-width:30em}
"""


def _e(value: Any) -> str:
    """Untrusted text as HTML: markup characters escaped, and control characters (ESC, BEL, ...;
    invalid in HTML, and live if the page is printed on a terminal) shown as visible escapes."""
    return html.escape(terminal_text("" if value is None else value), quote=True)


def _num(value: Any, digits: int = 4, signed: bool = True) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    try:
        return f"{float(value):+.{digits}f}" if signed else f"{float(value):.{digits}g}"
    except (TypeError, ValueError):
        return _e(value)


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], css_class: str = "") -> str:
    """`rows` cells are already-escaped HTML."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(rows_cell for rows_cell in row) + "</tr>" for row in rows)
    return f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _td(text: str, num: bool = False, raw: bool = False, css: str = "") -> str:
    classes = " ".join(c for c in ("num" if num else "", css) if c)
    return f'<td class="{classes}">' + (text if raw else _e(text)) + "</td>" if classes else \
        "<td>" + (text if raw else _e(text)) + "</td>"


def _img(fig: Any, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="{plots.data_uri(fig)}">'


def _original_answer(record: ProgramRecord) -> list[str]:
    """What the normaliser changed in an LLM's answer to make the program above, and the answer as
    it came, collapsed (both untrusted text: escaped)."""
    parts = []
    if record.normalisation_changes:
        items = "".join(f"<li>{_e(change)}</li>" for change in record.normalisation_changes)
        parts.append(f"<p class='muted'>Normalised from the model's answer:</p><ul class='normalisation'>{items}</ul>")
    if record.original_answer:
        parts.append(f"<details class='original-answer'><summary>the model's original answer "
                     f"({len(record.original_answer):,} characters)</summary>"
                     f"<pre>{_e(record.original_answer)}</pre></details>")
    return parts


def heldout_results(run_dir: Path, db: ProgramDatabase, run_id: int) -> tuple[dict[int, float | None], list[dict]]:
    """The run's held-out check: (held-out fitness by program id, all rows), from heldout.json or,
    when that file is missing or damaged, from the database."""
    rows: list[dict] = []
    path = run_dir / "heldout.json"
    if path.is_file():
        try:
            rows = [r for r in json.loads(path.read_text()) if isinstance(r, dict)]
        except (ValueError, OSError):
            rows = []
    if not rows:
        rows = [r["result"] for r in db.heldout(run_id) if isinstance(r.get("result"), dict)]
    by_program = {int(r["program_id"]): r.get("heldout_fitness") for r in rows
                  if isinstance(r.get("program_id"), int)}
    return by_program, rows


def _lineage(db: ProgramDatabase, best: ProgramRecord, limit: int = 200) -> list[ProgramRecord]:
    chain, record, seen = [], best, set()
    while record is not None and record.id not in seen and len(chain) < limit:
        seen.add(record.id)
        chain.append(record)
        record = db.get(record.parent_ids[0]) if record.parent_ids else None
    return chain


def _reference_rows(config: dict[str, Any] | None, names: Sequence[str]) -> tuple[dict[str, dict[str, float]], str]:
    """Per-task log-ratios of the library's references on the run's search suite (trusted code,
    evaluated in-process). Returns (rows, note)."""
    if not names or not config:
        return {}, ""
    try:
        from ..activations import get as get_activation
        from ..config import Config
        from ..evolve.controller import build_lab

        lab = build_lab(Config.from_dict(config))
        rows = {}
        for name in names:
            evaluation = lab.evaluate(get_activation(name), name=name)
            if evaluation.ok:
                rows[name] = {t.name: t.log_ratio for t in evaluation.tasks}
        return rows, ""
    except Exception as error:  # the report is still useful without the references
        return {}, f"library references not evaluated: {type(error).__name__}: {error}"


def write_report(run_dir: str | Path, out: str | Path | None = None, top: int = 5,
                 references: Sequence[str] = REFERENCE_NAMES, baseline: str | Path | None = None) -> Path:
    """Write the HTML report of the latest run in `run_dir` (default `RUN_DIR/report.html`) and
    return its path. `top`: how many candidates get a leaderboard row and their own section;
    `references`: library activations evaluated on the search suite for the heatmap (`()` skips
    that training); `baseline`: the run directory of a random-search run (`--mutator random`) whose
    best-so-far curve is drawn beside this run's."""
    run_dir = Path(run_dir)
    baseline_records = None
    if baseline is not None:
        with ProgramDatabase(Path(baseline) / "programs.sqlite", readonly=True) as other:
            other_run = other.latest_run()
            baseline_records = other.programs(other_run["id"]) if other_run else None
    out = Path(out) if out is not None else run_dir / "report.html"
    with ProgramDatabase(run_dir / "programs.sqlite", readonly=True) as db:
        run = db.latest_run()
        if run is None:
            raise ValueError(f"{run_dir} holds no run")
        run_id = run["id"]
        records = db.programs(run_id)
        leaders = db.top(run_id, top)
        best = leaders[0] if leaders else None
        lineage = _lineage(db, best) if best else []
        failures = db.failures_by_reason(run_id)
        heldout, heldout_rows = heldout_results(run_dir, db, run_id)
        counts = {status: db.count(run_id, status) for status in ("ok", "failed", "duplicate")}
    config_path = run_dir / "config.yaml"
    config_text = config_path.read_text() if config_path.is_file() else yaml.safe_dump(run["config"], sort_keys=False)
    try:
        config = yaml.safe_load(config_text)
    except yaml.YAMLError:
        config = run["config"]

    parts: list[str] = []
    title = f"actmine run {run_dir.name}"
    # ---- summary
    created = _dt.datetime.fromtimestamp(run["created_at"]).isoformat(timespec="seconds")
    updated = _dt.datetime.fromtimestamp(run["updated_at"]).isoformat(timespec="seconds")
    summary = [("run directory", str(run_dir.resolve())), ("run id", run_id), ("status", run["status"]),
               ("seed", run["seed"]), ("created", created), ("updated", updated),
               ("proposals", len(records)), ("ok", counts["ok"]), ("failed", counts["failed"]),
               ("duplicates", counts["duplicate"]),
               ("best fitness", _num(best.fitness) if best else "—"),
               ("versions", json.dumps(run["versions"] or {}))]
    parts.append("<h2 id='summary'>Run summary</h2>")
    parts.append(_table(["", ""], [[_td(k), _td(v)] for k, v in summary], "summary"))
    parts.append(f"<details><summary>config.yaml</summary><pre>{_e(config_text)}</pre></details>")

    # ---- leaderboard
    families = sorted({f for r in leaders for f in (r.family_log_ratios or {})})
    headers = ["rank", "program", "fitness", "held-out fitness", *[f"{f} log-ratio" for f in families],
               "pointwise", "flops/elem", "mutator", "model", "rationale"]
    rows = []
    for rank, record in enumerate(leaders, 1):
        probes = record.probes or {}
        rows.append([_td(str(rank), num=True), _td(f'<a href="#program-{record.id}">#{record.id}</a>', raw=True),
                     _td(_num(record.fitness), num=True), _td(_num(heldout.get(record.id)), num=True),
                     *[_td(_num((record.family_log_ratios or {}).get(f), 3), num=True) for f in families],
                     _td(str(probes.get("pointwise", "—"))),
                     _td(_num(probes.get("flops_per_element"), 3, signed=False), num=True),
                     _td(record.mutator), _td(record.model or "—"), _td(record.rationale, css="rationale")])
    parts.append("<h2 id='leaderboard'>Leaderboard</h2>")
    parts.append(_table(headers, rows, "leaderboard") if rows else "<p class='muted'>no scored program yet</p>")
    if heldout_rows:
        parts.append("<h3>Held-out check</h3>")
        parts.append(_table(["name", "program", "search fitness", "held-out fitness"],
                            [[_td(r.get("name")), _td("—" if r.get("program_id") is None else f"#{r['program_id']}"),
                              _td(_num(r.get("search_fitness")), num=True),
                              _td(_num(r.get("heldout_fitness")), num=True)] for r in heldout_rows], "heldout"))

    # ---- candidates
    parts.append("<h2 id='candidates'>Top candidates</h2>")
    simplified_formulas([record.source for record in leaders])   # one bounded sympy child for all (cached)
    for rank, record in enumerate(leaders, 1):
        parts.append(f"<div class='candidate' id='program-{record.id}'>")
        parts.append(f"<h3>#{rank}: program {record.id} — fitness {_num(record.fitness)}</h3>")
        parts.append(f"<p class='rationale'>{_e(record.rationale)} <span class='muted'>({_e(record.mutator)}"
                     f"{', ' + _e(record.model) if record.model else ''})</span></p>")
        recorded = (record.probes or {}).get("curve")
        function = recorded if isinstance(recorded, dict) else safe_function(record.source)
        if function is not None:
            parts.append(_img(plots.curves_figure({f"program {record.id}": function}),
                              f"program {record.id} and its derivative vs ReLU and GELU"))
        else:
            parts.append("<p class='muted'>no curve: the source is outside the subset the report draws "
                         "without executing it</p>")
        formula = simplified_formula(record.source)
        if formula is not None:
            parts.append(f"<p>Simplified formula (LaTeX): <code class='formula'>{_e(formula)}</code></p>")
        parts.append(f"<pre class='source'>{_e(record.source)}</pre>")
        parts.extend(_original_answer(record))
        parts.append("</div>")

    # ---- fitness over time
    parts.append("<h2 id='progress'>Fitness over evaluations</h2>")
    parts.append(_img(plots.fitness_over_time_figure(records, baseline=baseline_records),
                      "fitness over evaluations"))
    if baseline_records is not None:
        parts.append(f"<p class='muted'>Dashed: the best so far of the random-search run in {_e(str(baseline))} "
                     f"({len(baseline_records)} proposals).</p>")

    # ---- failures
    parts.append("<h2 id='failures'>Failures by reason</h2>")
    if failures:
        parts.append(_table(["stage", "reason", "count"],
                            [[_td(stage or "—"), _td(code or "—"), _td(str(n), num=True)]
                             for (stage, code), n in failures.items()], "failures"))
    else:
        parts.append(_table(["stage", "reason", "count"], [[_td("—"), _td("no failures"), _td("0", num=True)]],
                            "failures"))

    # ---- lineage
    parts.append("<h2 id='lineage'>Lineage of the best</h2>")
    if lineage:
        parts.append(_table(["program", "proposal", "fitness", "mutator", "rationale"],
                            [[_td(f"#{r.id}"), _td(str(r.proposal_index), num=True), _td(_num(r.fitness), num=True),
                              _td(r.mutator), _td(r.rationale, css="rationale")] for r in lineage], "lineage"))
    else:
        parts.append("<p class='muted'>no scored program yet</p>")

    # ---- heatmap
    parts.append("<h2 id='heatmap'>Per-task OOD log-ratios</h2>")
    heat = {f"program {r.id}": {t["name"]: t["log_ratio"] for t in (r.tasks or [])
                                if isinstance(t, dict) and "name" in t and isinstance(t.get("log_ratio"), (int, float))}
            for r in leaders}
    reference_rows, note = _reference_rows(config, references)
    heat.update(reference_rows)
    if note:
        parts.append(f"<p class='muted'>{_e(note)}</p>")
    parts.append(_img(plots.heatmap_figure(heat), "per-task OOD log-ratio heatmap"))

    generated = _dt.datetime.now().isoformat(timespec="seconds")
    document = (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
                f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
                f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
                f"<h1>{_e(title)}</h1><p class='muted'>generated {generated}; "
                f"{len(records)} proposals; status {_e(run['status'])}</p>"
                + "\n".join(parts) + "</body></html>\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(out.name + ".tmp")
    temporary.write_text(document, encoding="utf-8")
    temporary.replace(out)
    return out
