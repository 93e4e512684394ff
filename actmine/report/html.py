"""`write_report(run_dir)`: one self-contained HTML page about a search run.

No network at view time: inline CSS, images as base64 PNG data URIs, formulas as inline SVG
outlines (`typeset.formula_svg`; the LaTeX as text where one cannot be typeset), no scripts. Everything that
comes from the database (sources, rationales, mutator and model names, failure messages, an LLM's
original answer and the normaliser's changes, shown under a top candidate's program) is
untrusted text and goes through `_e` (`html.escape`, control characters made visible). The
database is opened read-only, so a report can be written while the search runs. Candidate sources are never executed: curves are drawn from the
probes' recorded `curve` (f and f' measured in the sandbox) or, for older records, from the
restricted-ast interpreter of `formula.safe_function` (outside its subset: no curve). The library's references (trusted code) are evaluated in-process on the run's search suite
for the per-task heatmap.

The end-of-run results (`final_results`: heldout.json, else the database's `heldout` table) give
the Validation section (the top programs and references on the validation pools, the winner
marked) and the Test section (per test suite, the winner's and references' fitness and the
paired comparisons with their intervals); the `validations` table gives the Generalisation gap
(the best's search estimate against its validation fitness over the run). A run that lacks any of
them (an older run, a run still going) shows "not available" there; heldout.json written as a
plain list (the older held-out check) is read as validation rows.

The page is assembled here (the run's data, the summary, leaderboard, candidate, progress,
failure, lineage and heatmap sections, the document); the end-of-run results are read by
`results.py` and drawn by `results_sections.py`, every cell is built with `html_cells.py`.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml

import actmine.report.plots as plots

from ..atomic_files import write_text_atomically
from ..evolve.database import ProgramDatabase, ProgramRecord
from ..run_files import CONFIG_SNAPSHOT, DATABASE, REPORT, read_run_text
from ..yaml_text import load_yaml
from .formula import safe_function, simplified_formula, simplified_formulas
from .html_cells import SECTION_TEXT, TABLE_TEXT, _e, _img, _num, _table, _td, _with_se, cut_text
from .results import final_results as final_results
from .results import heldout_results as heldout_results
from .results import validation_by_program as validation_by_program
from .results_sections import _gap_section, _test_section, _validation_section
from .results_sections import _verdict as _verdict
from .typeset import formula_svg

__all__ = ["write_report", "final_results", "heldout_results", "validation_by_program", "REFERENCE_NAMES"]

REFERENCE_NAMES = ("relu", "gelu", "gelu_sine", "gelu_sinc_perturbation")

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;
color:#222;padding:0 1em;line-height:1.4}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}th,td{border:1px solid #ddd;padding:.25em .5em;
vertical-align:top;text-align:left}th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums;
white-space:nowrap}
pre{background:#f7f7f7;border:1px solid #e3e3e3;padding:.6em;overflow-x:auto;font-size:.85em;white-space:pre-wrap}
code{font-size:.9em}img{max-width:100%;height:auto}.muted{color:#777}.candidate{margin-bottom:2em}
.rationale{max-width:30em}td.rationale{min-width:16em}p,td.rationale{overflow-wrap:anywhere}
.table-box{max-width:100%;overflow-x:auto}
.formula-picture{display:inline-block;max-width:100%;overflow-x:auto;font-size:1.25em;vertical-align:middle}
.formula-latex summary{cursor:pointer;color:#777;font-size:.85em}
"""


def _formula(latex: str | None) -> list[str]:
    """A program's simplified formula: typeset as an inline SVG (`typeset.formula_svg`: outlines
    only, nothing from the text in its markup), with the LaTeX as its tooltip and, collapsed under
    it, as text to copy; where it cannot be typeset, the escaped LaTeX as text; no formula, nothing."""
    if latex is None:
        return []
    picture = formula_svg(latex)
    if picture is None:
        return [f"<p>Simplified formula (LaTeX): <code class='formula'>{_e(latex)}</code></p>"]
    return [
        f"<p>Simplified formula: <span class='formula-picture' title='{_e(latex)}'>{picture}</span></p>",
        f"<details class='formula-latex'><summary>LaTeX</summary><code class='formula'>{_e(latex)}</code></details>",
    ]


def _original_answer(record: ProgramRecord) -> list[str]:
    """What the normaliser changed in an LLM's answer to make the program above, and the answer as
    it came, collapsed (both untrusted text: escaped)."""
    parts = []
    if record.normalisation_changes:
        items = "".join(f"<li>{_e(change)}</li>" for change in record.normalisation_changes)
        parts.append(f"<p class='muted'>Normalised from the model's answer:</p><ul class='normalisation'>{items}</ul>")
    if record.original_answer:
        parts.append(
            f"<details class='original-answer'><summary>the model's original answer "
            f"({len(record.original_answer):,} characters)</summary>"
            f"<pre>{_e(cut_text(record.original_answer, SECTION_TEXT))}</pre></details>"
        )
    return parts


def _lineage(db: ProgramDatabase, best: ProgramRecord, limit: int = 200) -> list[ProgramRecord]:
    chain, record, seen = [], best, set()
    while record is not None and record.id not in seen and len(chain) < limit:
        seen.add(record.id)
        chain.append(record)
        record = db.get(record.parent_ids[0]) if record.parent_ids else None
    return chain


def _with_winner(
    db: ProgramDatabase, run_id: int, leaders: list[ProgramRecord], winner: int | None
) -> list[ProgramRecord]:
    """The programs that get their own section: the leaders, and the winner (chosen on the
    validation pools) when the search's ranking left it out of them."""
    if winner is None or any(record.id == winner for record in leaders):
        return list(leaders)
    record = db.get(winner)
    return [*leaders, record] if record is not None and record.run_id == run_id else list(leaders)


def _reference_rows(config: dict[str, Any] | None, names: Sequence[str]) -> tuple[dict[str, dict[str, float]], str]:
    """Per-task log-ratios of the library's references on the run's search suite (trusted code,
    evaluated in-process). Returns (rows, note)."""
    if not names or not config:
        return {}, ""
    try:
        from ..activations import get as get_activation
        from ..candidate.source import program_source
        from ..config import Config

        lab = Config.from_dict(config).build_lab()
        rows, programs = {}, []
        for name in names:
            activation = get_activation(name)
            if program_source(activation) is not None:  # a program (PACK.py:NAME), not the library's
                programs.append(name)
                continue
            evaluation = lab.evaluate(activation, name=name)
            if evaluation.ok:
                rows[name] = {t.name: t.log_ratio for t in evaluation.tasks}
        note = f"not evaluated here, programs are not library references: {', '.join(programs)}" if programs else ""
        return rows, note
    except Exception as error:  # the report is still useful without the references
        return {}, f"library references not evaluated: {type(error).__name__}: {error}"


@dataclass
class _RunData:
    """What the report reads from a run's database (read-only, in one go): the run's row, its
    proposals, the leaders and the programs that get a section (`shown`), and the results."""

    run: dict[str, Any]
    records: list[ProgramRecord]
    leaders: list[ProgramRecord]
    best: ProgramRecord | None
    lineage: list[ProgramRecord]
    failures: dict
    results: dict[str, Any]
    heldout: dict[int, Any]
    validations: list[dict]
    shown: list[ProgramRecord]
    counts: dict[str, int]

    @property
    def linked(self) -> set[int]:
        """The programs that have their own section, so that other tables can link to them."""
        return {record.id for record in self.shown}


def _read_run(run_dir: Path, top: int) -> _RunData:
    """The latest run of `run_dir`'s database (read-only, so the search may still be writing)."""
    with ProgramDatabase(run_dir / DATABASE, readonly=True) as db:
        run = db.latest_run()
        if run is None:
            raise ValueError(f"{run_dir} holds no run")
        run_id = run["id"]
        records = db.programs(run_id)
        leaders = db.top(run_id, top)
        best = leaders[0] if leaders else None
        lineage = _lineage(db, best) if best else []
        failures = db.failures_by_reason(run_id)
        results = final_results(run_dir, db, run_id)
        heldout = validation_by_program(results["validation"])
        validations = db.validations(run_id)
        shown = _with_winner(db, run_id, leaders, results["winner"])
        counts = {status: db.count(run_id, status) for status in ("ok", "failed", "duplicate")}
    return _RunData(run, records, leaders, best, lineage, failures, results, heldout, validations, shown, counts)


def _baseline_records(baseline: str | Path | None) -> list[ProgramRecord] | None:
    """The proposals of the latest run in a random-search run directory, or None (no baseline)."""
    if baseline is None:
        return None
    with ProgramDatabase(Path(baseline) / DATABASE, readonly=True) as other:
        other_run = other.latest_run()
        return other.programs(other_run["id"]) if other_run else None


def _run_config(run_dir: Path, run: dict[str, Any]) -> tuple[str, Any]:
    """(the config's text as shown, the config as data): config.yaml when the run directory has
    one, else the config recorded in the database; unparsable YAML falls back to the recorded one."""
    config_text = read_run_text(run_dir / CONFIG_SNAPSHOT)  # None: missing, or not a file a search wrote
    if config_text is None:
        config_text = yaml.safe_dump(run["config"], sort_keys=False)
    try:
        return config_text, load_yaml(config_text)
    except yaml.YAMLError:
        return config_text, run["config"]


def _winner_text(results: dict[str, Any]) -> str:
    """The summary's winner line: which program, and whether validation or the search score chose it."""
    if results["winner"] is None:
        return "—"
    chosen_on_validation = results.get("winner_chosen_by", "validation") == "validation"
    if not chosen_on_validation:
        return f"program {results['winner']} (best by search score: nothing was validated)"
    blend = results.get("blend")
    if blend is None:
        return f"program {results['winner']} (chosen on validation)"
    if blend["program_id"] == results["winner"] and blend["weight"] is not None:
        return (
            f"program {results['winner']}: the validation's choice, program {blend['chosen']}, blended with "
            f"{blend['partner']} ({1 - blend['weight']:g}·#{blend['chosen']} + {blend['weight']:g}·{blend['partner']})"
        )
    return f"program {results['winner']} (chosen on validation; not blended: {blend['error'] or 'no blend'})"


def _summary_section(run_dir: Path, data: _RunData, config_text: str) -> list[str]:
    """The run's summary table (ids, status, times, counts, best and winner) and its config, collapsed."""
    run, counts, best = data.run, data.counts, data.best
    created = _dt.datetime.fromtimestamp(run["created_at"]).isoformat(timespec="seconds")
    updated = _dt.datetime.fromtimestamp(run["updated_at"]).isoformat(timespec="seconds")
    summary = [
        ("run directory", str(run_dir.resolve())),
        ("run id", run["id"]),
        ("status", run["status"]),
        ("seed", run["seed"]),
        ("created", created),
        ("updated", updated),
        ("proposals", len(data.records)),
        ("ok", counts["ok"]),
        ("failed", counts["failed"]),
        ("duplicates", counts["duplicate"]),
        ("best fitness", _with_se(best.fitness, best.fitness_se) if best else "—"),
        ("winner", _winner_text(data.results)),
        ("versions", json.dumps(run["versions"] or {})),
    ]
    return [
        "<h2 id='summary'>Run summary</h2>",
        _table(["", ""], [[_td(k), _td(v)] for k, v in summary], "summary"),
        f"<details><summary>config.yaml</summary><pre>{_e(config_text)}</pre></details>",
    ]


def _leaderboard_row(rank: int, record: ProgramRecord, data: _RunData, families: list[str]) -> list[str]:
    """One leader's cells: rank, link, estimate, score, rounds, validation fitness, family
    log-ratios, probes, mutator, model and rationale (untrusted: escaped by `_td`)."""
    probes = record.probes or {}
    mark = " (winner)" if record.id == data.results["winner"] else ""
    return [
        _td(str(rank), num=True),
        _td(f'<a href="#program-{record.id}">#{record.id}</a>{mark}', raw=True),
        _td(_with_se(record.fitness, record.fitness_se), num=True),
        _td(_num(record.score), num=True),
        _td(f"{record.rounds}" + ("" if record.settled else " (unsettled)"), num=True),
        _td(_num(data.heldout.get(record.id)), num=True),
        *[_td(_num((record.family_log_ratios or {}).get(f), 3), num=True) for f in families],
        _td(str(probes.get("pointwise", "—"))),
        _td(_num(probes.get("flops_per_element"), 3, signed=False), num=True),
        _td(record.mutator),
        _td(record.model or "—"),
        _td(cut_text(record.rationale, TABLE_TEXT), css="rationale"),
    ]


def _leaderboard_section(data: _RunData) -> list[str]:
    """The top programs by score, one row each."""
    families = sorted({f for r in data.leaders for f in (r.family_log_ratios or {})})
    headers = [
        "rank",
        "program",
        "fitness ± se",
        "score",
        "rounds",
        "validation fitness",
        *[f"{f} log-ratio" for f in families],
        "pointwise",
        "flops/elem",
        "mutator",
        "model",
        "rationale",
    ]
    rows = [_leaderboard_row(rank, record, data, families) for rank, record in enumerate(data.leaders, 1)]
    return [
        "<h2 id='leaderboard'>Leaderboard</h2>",
        "<p class='muted'>Ranked by score, the lower confidence bound of the search estimate "
        "(fitness − a multiple of its standard error); rounds: task samples pooled into the estimate.</p>",
        _table(headers, rows, "leaderboard") if rows else "<p class='muted'>no scored program yet</p>",
    ]


def _curve_picture(record: ProgramRecord) -> str:
    """The program's curve and derivative against ReLU and GELU, from the recorded probe curve or
    the restricted interpreter (never by running the source); a note where neither can draw it."""
    recorded = (record.probes or {}).get("curve")
    function = recorded if isinstance(recorded, dict) else safe_function(record.source)
    if function is None:
        return "<p class='muted'>no curve: the source is outside the subset the report draws without executing it</p>"
    return _img(
        plots.curves_figure({f"program {record.id}": function}),
        f"program {record.id} and its derivative vs ReLU and GELU",
    )


def _candidate(rank: int, record: ProgramRecord, leaders: int, winner: int | None) -> list[str]:
    """One program's section: heading, rationale, curve, formula, source and the model's answer.
    Ranks past the `leaders` count are the winner added from outside the leaderboard."""
    label = f"#{rank}" if rank <= leaders else "the winner"
    return [
        f"<div class='candidate' id='program-{record.id}'>",
        f"<h3>{label}: program {record.id} — fitness {_with_se(record.fitness, record.fitness_se)}"
        f"{' (winner)' if record.id == winner and rank <= leaders else ''}</h3>",
        f"<p class='rationale'>{_e(cut_text(record.rationale, SECTION_TEXT))} <span class='muted'>({_e(record.mutator)}"
        f"{', ' + _e(record.model) if record.model else ''})</span></p>",
        _curve_picture(record),
        *_formula(simplified_formula(record.source)),
        f"<pre class='source'>{_e(cut_text(record.source, SECTION_TEXT))}</pre>",
        *_original_answer(record),
        "</div>",
    ]


def _candidates_section(data: _RunData) -> list[str]:
    """A section for each shown program (the leaders, then the winner if it is not among them)."""
    parts = ["<h2 id='candidates'>Top candidates</h2>"]
    simplified_formulas([record.source for record in data.shown])  # one bounded sympy child for all (cached)
    for rank, record in enumerate(data.shown, 1):
        parts.extend(_candidate(rank, record, len(data.leaders), data.results["winner"]))
    return parts


def _progress_section(
    records: list[ProgramRecord], baseline_records: list[ProgramRecord] | None, baseline: str | Path | None
) -> list[str]:
    """Fitness over evaluations, with the random-search baseline's best so far when there is one."""
    parts = [
        "<h2 id='progress'>Fitness over evaluations</h2>",
        _img(plots.fitness_over_time_figure(records, baseline=baseline_records), "fitness over evaluations"),
    ]
    if baseline_records is not None:
        parts.append(
            f"<p class='muted'>Dashed: the best so far of the random-search run in {_e(str(baseline))} "
            f"({len(baseline_records)} proposals).</p>"
        )
    return parts


def _failures_section(failures: dict) -> list[str]:
    """Failed proposals counted by (stage, reason); a single "no failures" row when there are none."""
    rows = (
        [[_td(stage or "—"), _td(code or "—"), _td(str(n), num=True)] for (stage, code), n in failures.items()]
        if failures
        else [[_td("—"), _td("no failures"), _td("0", num=True)]]
    )
    return ["<h2 id='failures'>Failures by reason</h2>", _table(["stage", "reason", "count"], rows, "failures")]


def _lineage_section(lineage: list[ProgramRecord]) -> list[str]:
    """The best program's chain of first parents, best first."""
    parts = ["<h2 id='lineage'>Lineage of the best</h2>"]
    if not lineage:
        return parts + ["<p class='muted'>no scored program yet</p>"]
    rows = [
        [
            _td(f"#{r.id}"),
            _td(str(r.proposal_index), num=True),
            _td(_num(r.fitness), num=True),
            _td(r.mutator),
            _td(cut_text(r.rationale, TABLE_TEXT), css="rationale"),
        ]
        for r in lineage
    ]
    return parts + [_table(["program", "proposal", "fitness", "mutator", "rationale"], rows, "lineage")]


def _task_log_ratios(record: ProgramRecord) -> dict[str, Any]:
    """{task name: log-ratio} of a program's recorded tasks (malformed entries skipped)."""
    return {
        t["name"]: t["log_ratio"]
        for t in (record.tasks or [])
        if isinstance(t, dict) and "name" in t and isinstance(t.get("log_ratio"), (int, float))
    }


def _heatmap_section(shown: list[ProgramRecord], config: Any, references: Sequence[str]) -> list[str]:
    """Per-task log-ratios of the shown programs and the library's references (evaluated here)."""
    parts = ["<h2 id='heatmap'>Per-task OOD log-ratios</h2>"]
    heat = {f"program {r.id}": _task_log_ratios(r) for r in shown}
    reference_rows, note = _reference_rows(config, references)
    heat.update(reference_rows)
    if note:
        parts.append(f"<p class='muted'>{_e(note)}</p>")
    parts.append(_img(plots.heatmap_figure(heat), "per-task OOD log-ratio heatmap"))
    return parts


def _document(title: str, data: _RunData, parts: list[str]) -> str:
    """The whole page: head with the inline CSS, title, generation time, then the sections."""
    generated = _dt.datetime.now().isoformat(timespec="seconds")
    return (
        f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1><p class='muted'>generated {generated}; "
        f"{len(data.records)} proposals; status {_e(data.run['status'])}</p>" + "\n".join(parts) + "</body></html>\n"
    )


def write_report(
    run_dir: str | Path,
    out: str | Path | None = None,
    top: int = 5,
    references: Sequence[str] = REFERENCE_NAMES,
    baseline: str | Path | None = None,
) -> Path:
    """Write the HTML report of the latest run in `run_dir` (default `RUN_DIR/report.html`) and
    return its path. `top`: how many candidates get a leaderboard row and their own section;
    `references`: library activations evaluated on the search suite for the heatmap (`()` skips
    that training); `baseline`: the run directory of a random-search run (`--mutator random`) whose
    best-so-far curve is drawn beside this run's."""
    run_dir = Path(run_dir)
    baseline_records = _baseline_records(baseline)
    out = Path(out) if out is not None else run_dir / REPORT
    data = _read_run(run_dir, top)
    config_text, config = _run_config(run_dir, data.run)
    parts = [
        *_summary_section(run_dir, data, config_text),
        *_leaderboard_section(data),
        *_validation_section(data.results, data.linked),
        *_test_section(data.results, data.linked),
        *_gap_section(data.validations, data.linked, len(data.records)),
        *_candidates_section(data),
        *_progress_section(data.records, baseline_records, baseline),
        *_failures_section(data.failures),
        *_lineage_section(data.lineage),
        *_heatmap_section(data.shown, config, references),
    ]
    write_text_atomically(out, _document(f"actmine run {run_dir.name}", data, parts))
    return out
