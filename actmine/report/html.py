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
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

import actmine.report.plots as plots

from ..evolve.database import ProgramDatabase, ProgramRecord
from ..terminal import terminal_text
from .formula import safe_function, simplified_formula, simplified_formulas
from .typeset import formula_svg

__all__ = ["write_report", "final_results", "heldout_results", "validation_by_program", "REFERENCE_NAMES"]

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
.formula-picture{display:inline-block;max-width:100%;overflow-x:auto;font-size:1.25em;vertical-align:middle}
.formula-latex summary{cursor:pointer;color:#777;font-size:.85em}
"""


def _e(value: Any) -> str:
    """Untrusted text as HTML: markup characters escaped, and control characters (ESC, BEL, ...;
    invalid in HTML, and live if the page is printed on a terminal) shown as visible escapes."""
    return html.escape(terminal_text("" if value is None else value), quote=True)


def _formula(latex: str | None) -> list[str]:
    """A program's simplified formula: typeset as an inline SVG (`typeset.formula_svg`: outlines
    only, nothing from the text in its markup), with the LaTeX as its tooltip and, collapsed under
    it, as text to copy; where it cannot be typeset, the escaped LaTeX as text; no formula, nothing."""
    if latex is None:
        return []
    picture = formula_svg(latex)
    if picture is None:
        return [f"<p>Simplified formula (LaTeX): <code class='formula'>{_e(latex)}</code></p>"]
    return [f"<p>Simplified formula: <span class='formula-picture' title='{_e(latex)}'>{picture}</span></p>",
            f"<details class='formula-latex'><summary>LaTeX</summary><code class='formula'>{_e(latex)}</code>"
            "</details>"]


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


SPLITS = {"validation": "validation", "test": "test", "comparison": "comparisons"}


def _dict_rows(value: Any) -> list[dict]:
    """The dict entries of a list (anything else in a hand-edited or damaged file is skipped)."""
    return [row for row in value if isinstance(row, dict)] if isinstance(value, list) else []


def _program_id(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _empty_results() -> dict[str, Any]:
    return {"winner": None, "validation": [], "test": [], "comparisons": []}


def _results_from_file(path: Path) -> dict[str, Any]:
    """heldout.json as the end-of-run results. The current format is a dict {winner, validation,
    test, comparisons}; older runs wrote a plain list of held-out rows, which were the same kind
    of check as today's validation rows and are read as such."""
    results = _empty_results()
    try:
        data = json.loads(path.read_text())
    except (ValueError, OSError):
        return results
    if isinstance(data, list):
        results["validation"] = _dict_rows(data)
    elif isinstance(data, dict):
        results["winner"] = _program_id(data.get("winner"))
        if data.get("winner_chosen_by") in ("validation", "search score"):
            results["winner_chosen_by"] = data["winner_chosen_by"]
        for key in SPLITS.values():
            results[key] = _dict_rows(data.get(key))
    return results


def _results_from_database(db: ProgramDatabase, run_id: int) -> dict[str, Any]:
    """The `heldout` table's rows grouped by their `split` (rows without one are an older run's
    held-out check: validation rows)."""
    results = _empty_results()
    for row in db.heldout(run_id):
        result = row.get("result")
        if isinstance(result, dict):
            results[SPLITS.get(result.get("split"), "validation")].append(result)
    return results


def final_results(run_dir: str | Path, db: ProgramDatabase, run_id: int) -> dict[str, Any]:
    """The run's end-of-run results: {"winner": program id or None, "validation": rows, "test":
    rows, "comparisons": rows}, from heldout.json or, when that file is missing, damaged or empty,
    from the database. Rows are dicts as written (untrusted: escape before showing). Without a
    recorded winner, the validation row marked `winner` names it."""
    results = _results_from_file(Path(run_dir) / "heldout.json")
    if not any(results[key] for key in SPLITS.values()):
        results = _results_from_database(db, run_id)
    if results["winner"] is None:
        marked = [_program_id(r.get("program_id")) for r in results["validation"] if r.get("winner") is True]
        results["winner"] = next((pid for pid in marked if pid is not None), None)
    return results


def heldout_results(run_dir: Path, db: ProgramDatabase, run_id: int) -> tuple[dict[int, float | None], list[dict]]:
    """The run's validation check: (validation fitness by program id, the validation rows), from
    heldout.json (either format) or the database; see `final_results` for the test side too."""
    rows = final_results(run_dir, db, run_id)["validation"]
    return validation_by_program(rows), rows


def validation_by_program(rows: list[dict]) -> dict[int, Any]:
    """{program id: validation fitness} of the validation rows that are programs (not references)."""
    return {pid: r.get("heldout_fitness") for r in rows if (pid := _program_id(r.get("program_id"))) is not None}


def _finite(value: Any) -> float | None:
    """A number from a results row as a float, or None (missing, text, bool, not finite)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _with_se(fitness: Any, se: Any) -> str:
    """`+0.1234 ± 0.0100` (the ± part only when a standard error is known)."""
    spread = _finite(se)
    return _num(fitness) + (f" ± {spread:.4f}" if spread is not None else "")


def _signed(value: Any, digits: int = 3) -> str:
    """A signed number with a real minus sign (for the comparisons' sentences)."""
    number = _finite(value)
    return "—" if number is None else f"{number:+.{digits}f}".replace("-", "\u2212")


def _program_cell(program_id: Any, linked: set[int]) -> str:
    """The program column: a link to its section when the report has one, `—` for a reference."""
    pid = _program_id(program_id)
    if pid is None:
        return _td("—")
    return _td(f'<a href="#program-{pid}">#{pid}</a>', raw=True) if pid in linked else _td(f"#{pid}")


def _family_names(rows: Iterable[dict], key: str = "families") -> list[str]:
    return sorted({str(f) for r in rows for f in _mapping(r.get(key))})


def _error_text(error: Any) -> str:
    """A row's error dict (stage, code, message, ...) as one line of text (escaped by the caller)."""
    if isinstance(error, dict):
        return "; ".join(f"{k}: {v}" for k, v in error.items())
    return "" if error is None else str(error)


def _by_fitness(rows: list[dict], key: str) -> list[dict]:
    """Rows by `key` descending, rows without a number last (stable, so ties keep their order)."""
    return sorted(rows, key=lambda r: (_finite(r.get(key)) is None, -(_finite(r.get(key)) or 0.0)))


def _validation_section(results: dict[str, Any], linked: set[int]) -> list[str]:
    """The validation pool: the top programs and the library's references, the winner marked."""
    parts = ["<h2 id='validation'>Validation</h2>"]
    rows = _by_fitness(results["validation"], "heldout_fitness")
    if not rows:
        return parts + ["<p class='muted'>not available: this run recorded no validation results</p>"]
    winner = results["winner"]
    families = _family_names(rows)
    headers = ["", "name", "program", "search fitness", "validation fitness",
               *[f"{f} log-ratio" for f in families], "error"]
    body = []
    for r in rows:
        chosen = r.get("winner") is True or (winner is not None and _program_id(r.get("program_id")) == winner)
        body.append([_td("winner" if chosen else ""), _td(r.get("name")), _program_cell(r.get("program_id"), linked),
                     _td(_with_se(r.get("search_fitness"), r.get("search_se")), num=True),
                     _td(_num(r.get("heldout_fitness")), num=True),
                     *[_td(_num(_mapping(r.get("families")).get(f), 3), num=True) for f in families],
                     _td(_error_text(r.get("error")))])
    parts.append("<p class='muted'>Fitness on the validation pools (−mean log-ratio vs ReLU; higher is better): "
                 "the winner is the program that did best here, not on the search's own tasks.</p>")
    parts.append(_table(headers, body, "validation"))
    return parts


def _verdict(row: dict) -> str:
    """better / worse / not distinguishable, from the interval of winner − reference (below 0:
    the winner's log-ratio is lower, so it is better)."""
    low, high = _finite(row.get("low")), _finite(row.get("high"))
    if low is None or high is None:
        return "not available"
    if high < 0:
        return "better"
    if low > 0:
        return "worse"
    return "not distinguishable"


def _comparison_sentence(row: dict, winner: int | None) -> str:
    """`winner − gelu: −0.120 [−0.200, −0.040] over 60 tasks × 3 seeds` (plain text; escape it)."""
    pid = _program_id(row.get("program_id"))
    who = "winner" if pid is None or winner is None or pid == winner else f"program {pid}"
    return (f"{who} \u2212 {row.get('against') or '?'}: "
            f"{_signed(row.get('mean'))} [{_signed(row.get('low'))}, {_signed(row.get('high'))}] over "
            f"{row.get('tasks', '?')} tasks × {row.get('seeds', '?')} seeds")


def _comparison_table(rows: list[dict], winner: int | None) -> str:
    body = [[_td(_comparison_sentence(r, winner)), _td(_verdict(r))] for r in rows]
    return _table(["winner − reference: mean log-ratio difference [95% interval]", "the winner is"], body,
                  "comparisons")


def _test_table(rows: list[dict], winner: int | None, linked: set[int]) -> str:
    families = _family_names(rows)
    body = []
    for r in _by_fitness(rows, "fitness"):
        chosen = winner is not None and _program_id(r.get("program_id")) == winner
        tasks = r.get("tasks")
        body.append([_td("winner" if chosen else ""), _td(r.get("name")), _program_cell(r.get("program_id"), linked),
                     _td(_num(r.get("fitness")), num=True),
                     _td(str(len(tasks)) if isinstance(tasks, dict) else "—", num=True),
                     *[_td(_num(_mapping(r.get("families")).get(f), 3), num=True) for f in families]])
    return _table(["", "name", "program", "test fitness", "tasks", *[f"{f} log-ratio" for f in families]], body,
                  "test")


def _suite_of(row: dict) -> str:
    return str(row.get("suite") or "test")


def _test_section(results: dict[str, Any], linked: set[int]) -> list[str]:
    """Per test suite (reported only, never used to choose): the winner's and each reference's
    fitness, then the paired comparisons of the winner with each reference and their verdicts."""
    parts = ["<h2 id='test'>Test</h2>"]
    tests, comparisons, winner = results["test"], results["comparisons"], results["winner"]
    if not tests and not comparisons:
        return parts + ["<p class='muted'>not available: this run recorded no test results</p>"]
    parts.append("<p class='muted'>Test suites, never seen by the search or by the choice of the winner. A "
                 "comparison is the mean over (task, seed) of the winner's log-ratio minus the reference's, "
                 "with a 95% cluster-bootstrap interval: below 0, the winner is better.</p>")
    suites = list(dict.fromkeys([_suite_of(r) for r in tests] + [_suite_of(r) for r in comparisons]))
    for suite in suites:
        parts.append(f"<h3 class='suite'>{_e(suite)}</h3>")
        suite_tests = [r for r in tests if _suite_of(r) == suite]
        suite_comparisons = [r for r in comparisons if _suite_of(r) == suite]
        if suite_tests:
            parts.append(_test_table(suite_tests, winner, linked))
        if suite_comparisons:
            parts.append(_comparison_table(suite_comparisons, winner))
    return parts


def _gap_rows(latest: dict) -> list[list[str]]:
    """The latest validation of the best as table rows: overall fitness, then per family (search vs
    validation log-ratio). Gap = how much worse validation was than the search promised, positive
    when the search overestimated (fitness: search − validation; log-ratio: validation − search)."""
    search, validation = _finite(latest.get("search_fitness")), _finite(latest.get("fitness"))
    rows = [[_td("fitness"), _td(_with_se(search, latest.get("search_se")), num=True), _td(_num(validation), num=True),
             _td(_num(None if search is None or validation is None else search - validation), num=True)]]
    result = _mapping(latest.get("result"))
    search_families, families = _mapping(result.get("search_families")), _mapping(result.get("families"))
    for family in sorted({str(f) for f in (*search_families, *families)}):
        low, high = _finite(search_families.get(family)), _finite(families.get(family))
        rows.append([_td(f"{family} log-ratio"), _td(_num(low, 3), num=True), _td(_num(high, 3), num=True),
                     _td(_num(None if low is None or high is None else high - low, 3), num=True)])
    return rows


def _gap_section(validations: list[dict], linked: set[int], proposals: int) -> list[str]:
    """The generalisation gap: the best's search estimate against its validation fitness over the
    run (figure), the latest such pair per family, and every recorded pair (collapsed)."""
    parts = ["<h2 id='gap'>Generalisation gap</h2>"]
    rows = [v for v in validations if isinstance(v, dict)]
    if not rows:
        return parts + ["<p class='muted'>not available: this run recorded no validation of its best program</p>"]
    parts.append(_img(plots.generalisation_gap_figure(rows, until=proposals),
                      "generalisation gap: search estimate vs validation fitness"))
    latest = rows[-1]
    parts.append(f"<p>Latest: program {_e(latest.get('program_id'))} after {_e(latest.get('evaluated'))} proposals. "
                 "Gap: positive when the program did worse on the validation pools than its search estimate "
                 "promised.</p>")
    parts.append(_table(["", "search", "validation", "gap"], _gap_rows(latest), "gap"))
    history = [[_td(str(v.get("evaluated")), num=True), _program_cell(v.get("program_id"), linked),
                _td(_with_se(v.get("search_fitness"), v.get("search_se")), num=True),
                _td(_num(v.get("fitness")), num=True)] for v in rows]
    parts.append("<details><summary>every validation of the best</summary>"
                 + _table(["evaluated", "program", "search fitness", "validation fitness"], history, "validations")
                 + "</details>")
    return parts


def _lineage(db: ProgramDatabase, best: ProgramRecord, limit: int = 200) -> list[ProgramRecord]:
    chain, record, seen = [], best, set()
    while record is not None and record.id not in seen and len(chain) < limit:
        seen.add(record.id)
        chain.append(record)
        record = db.get(record.parent_ids[0]) if record.parent_ids else None
    return chain


def _with_winner(db: ProgramDatabase, run_id: int, leaders: list[ProgramRecord],
                 winner: int | None) -> list[ProgramRecord]:
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
        from ..config import Config
        from ..evolve.search_tasks import build_lab

        lab = build_lab(Config.from_dict(config))
        rows = {}
        for name in names:
            evaluation = lab.evaluate(get_activation(name), name=name)
            if evaluation.ok:
                rows[name] = {t.name: t.log_ratio for t in evaluation.tasks}
        return rows, ""
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
    with ProgramDatabase(Path(baseline) / "programs.sqlite", readonly=True) as other:
        other_run = other.latest_run()
        return other.programs(other_run["id"]) if other_run else None


def _run_config(run_dir: Path, run: dict[str, Any]) -> tuple[str, Any]:
    """(the config's text as shown, the config as data): config.yaml when the run directory has
    one, else the config recorded in the database; unparsable YAML falls back to the recorded one."""
    config_path = run_dir / "config.yaml"
    config_text = config_path.read_text() if config_path.is_file() else yaml.safe_dump(run["config"], sort_keys=False)
    try:
        return config_text, yaml.safe_load(config_text)
    except yaml.YAMLError:
        return config_text, run["config"]


def _winner_text(results: dict[str, Any]) -> str:
    """The summary's winner line: which program, and whether validation or the search score chose it."""
    if results["winner"] is None:
        return "—"
    chosen_on_validation = results.get("winner_chosen_by", "validation") == "validation"
    return f"program {results['winner']}" + (" (chosen on validation)" if chosen_on_validation
                                             else " (best by search score: nothing was validated)")


def _summary_section(run_dir: Path, data: _RunData, config_text: str) -> list[str]:
    """The run's summary table (ids, status, times, counts, best and winner) and its config, collapsed."""
    run, counts, best = data.run, data.counts, data.best
    created = _dt.datetime.fromtimestamp(run["created_at"]).isoformat(timespec="seconds")
    updated = _dt.datetime.fromtimestamp(run["updated_at"]).isoformat(timespec="seconds")
    summary = [("run directory", str(run_dir.resolve())), ("run id", run["id"]), ("status", run["status"]),
               ("seed", run["seed"]), ("created", created), ("updated", updated),
               ("proposals", len(data.records)), ("ok", counts["ok"]), ("failed", counts["failed"]),
               ("duplicates", counts["duplicate"]),
               ("best fitness", _with_se(best.fitness, best.fitness_se) if best else "—"),
               ("winner", _winner_text(data.results)),
               ("versions", json.dumps(run["versions"] or {}))]
    return ["<h2 id='summary'>Run summary</h2>",
            _table(["", ""], [[_td(k), _td(v)] for k, v in summary], "summary"),
            f"<details><summary>config.yaml</summary><pre>{_e(config_text)}</pre></details>"]


def _leaderboard_row(rank: int, record: ProgramRecord, data: _RunData, families: list[str]) -> list[str]:
    """One leader's cells: rank, link, estimate, score, rounds, validation fitness, family
    log-ratios, probes, mutator, model and rationale (untrusted: escaped by `_td`)."""
    probes = record.probes or {}
    mark = " (winner)" if record.id == data.results["winner"] else ""
    return [_td(str(rank), num=True),
            _td(f'<a href="#program-{record.id}">#{record.id}</a>{mark}', raw=True),
            _td(_with_se(record.fitness, record.fitness_se), num=True), _td(_num(record.score), num=True),
            _td(f"{record.rounds}" + ("" if record.settled else " (unsettled)"), num=True),
            _td(_num(data.heldout.get(record.id)), num=True),
            *[_td(_num((record.family_log_ratios or {}).get(f), 3), num=True) for f in families],
            _td(str(probes.get("pointwise", "—"))),
            _td(_num(probes.get("flops_per_element"), 3, signed=False), num=True),
            _td(record.mutator), _td(record.model or "—"), _td(record.rationale, css="rationale")]


def _leaderboard_section(data: _RunData) -> list[str]:
    """The top programs by score, one row each."""
    families = sorted({f for r in data.leaders for f in (r.family_log_ratios or {})})
    headers = ["rank", "program", "fitness ± se", "score", "rounds", "validation fitness",
               *[f"{f} log-ratio" for f in families], "pointwise", "flops/elem", "mutator", "model", "rationale"]
    rows = [_leaderboard_row(rank, record, data, families) for rank, record in enumerate(data.leaders, 1)]
    return ["<h2 id='leaderboard'>Leaderboard</h2>",
            "<p class='muted'>Ranked by score, the lower confidence bound of the search estimate "
            "(fitness − a multiple of its standard error); rounds: task samples pooled into the estimate.</p>",
            _table(headers, rows, "leaderboard") if rows else "<p class='muted'>no scored program yet</p>"]


def _curve_picture(record: ProgramRecord) -> str:
    """The program's curve and derivative against ReLU and GELU, from the recorded probe curve or
    the restricted interpreter (never by running the source); a note where neither can draw it."""
    recorded = (record.probes or {}).get("curve")
    function = recorded if isinstance(recorded, dict) else safe_function(record.source)
    if function is None:
        return ("<p class='muted'>no curve: the source is outside the subset the report draws "
                "without executing it</p>")
    return _img(plots.curves_figure({f"program {record.id}": function}),
                f"program {record.id} and its derivative vs ReLU and GELU")


def _candidate(rank: int, record: ProgramRecord, leaders: int, winner: int | None) -> list[str]:
    """One program's section: heading, rationale, curve, formula, source and the model's answer.
    Ranks past the `leaders` count are the winner added from outside the leaderboard."""
    label = f"#{rank}" if rank <= leaders else "the winner"
    return [f"<div class='candidate' id='program-{record.id}'>",
            f"<h3>{label}: program {record.id} — fitness {_with_se(record.fitness, record.fitness_se)}"
            f"{' (winner)' if record.id == winner and rank <= leaders else ''}</h3>",
            f"<p class='rationale'>{_e(record.rationale)} <span class='muted'>({_e(record.mutator)}"
            f"{', ' + _e(record.model) if record.model else ''})</span></p>",
            _curve_picture(record),
            *_formula(simplified_formula(record.source)),
            f"<pre class='source'>{_e(record.source)}</pre>",
            *_original_answer(record),
            "</div>"]


def _candidates_section(data: _RunData) -> list[str]:
    """A section for each shown program (the leaders, then the winner if it is not among them)."""
    parts = ["<h2 id='candidates'>Top candidates</h2>"]
    simplified_formulas([record.source for record in data.shown])   # one bounded sympy child for all (cached)
    for rank, record in enumerate(data.shown, 1):
        parts.extend(_candidate(rank, record, len(data.leaders), data.results["winner"]))
    return parts


def _progress_section(records: list[ProgramRecord], baseline_records: list[ProgramRecord] | None,
                      baseline: str | Path | None) -> list[str]:
    """Fitness over evaluations, with the random-search baseline's best so far when there is one."""
    parts = ["<h2 id='progress'>Fitness over evaluations</h2>",
             _img(plots.fitness_over_time_figure(records, baseline=baseline_records), "fitness over evaluations")]
    if baseline_records is not None:
        parts.append(f"<p class='muted'>Dashed: the best so far of the random-search run in {_e(str(baseline))} "
                     f"({len(baseline_records)} proposals).</p>")
    return parts


def _failures_section(failures: dict) -> list[str]:
    """Failed proposals counted by (stage, reason); a single "no failures" row when there are none."""
    rows = ([[_td(stage or "—"), _td(code or "—"), _td(str(n), num=True)] for (stage, code), n in failures.items()]
            if failures else [[_td("—"), _td("no failures"), _td("0", num=True)]])
    return ["<h2 id='failures'>Failures by reason</h2>", _table(["stage", "reason", "count"], rows, "failures")]


def _lineage_section(lineage: list[ProgramRecord]) -> list[str]:
    """The best program's chain of first parents, best first."""
    parts = ["<h2 id='lineage'>Lineage of the best</h2>"]
    if not lineage:
        return parts + ["<p class='muted'>no scored program yet</p>"]
    rows = [[_td(f"#{r.id}"), _td(str(r.proposal_index), num=True), _td(_num(r.fitness), num=True),
             _td(r.mutator), _td(r.rationale, css="rationale")] for r in lineage]
    return parts + [_table(["program", "proposal", "fitness", "mutator", "rationale"], rows, "lineage")]


def _task_log_ratios(record: ProgramRecord) -> dict[str, Any]:
    """{task name: log-ratio} of a program's recorded tasks (malformed entries skipped)."""
    return {t["name"]: t["log_ratio"] for t in (record.tasks or [])
            if isinstance(t, dict) and "name" in t and isinstance(t.get("log_ratio"), (int, float))}


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
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{_e(title)}</h1><p class='muted'>generated {generated}; "
            f"{len(data.records)} proposals; status {_e(data.run['status'])}</p>"
            + "\n".join(parts) + "</body></html>\n")


def _write_atomically(out: Path, text: str) -> None:
    """Write through a temporary file and rename it, so a reader never sees half a report."""
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(out.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(out)


def write_report(run_dir: str | Path, out: str | Path | None = None, top: int = 5,
                 references: Sequence[str] = REFERENCE_NAMES, baseline: str | Path | None = None) -> Path:
    """Write the HTML report of the latest run in `run_dir` (default `RUN_DIR/report.html`) and
    return its path. `top`: how many candidates get a leaderboard row and their own section;
    `references`: library activations evaluated on the search suite for the heatmap (`()` skips
    that training); `baseline`: the run directory of a random-search run (`--mutator random`) whose
    best-so-far curve is drawn beside this run's."""
    run_dir = Path(run_dir)
    baseline_records = _baseline_records(baseline)
    out = Path(out) if out is not None else run_dir / "report.html"
    data = _read_run(run_dir, top)
    config_text, config = _run_config(run_dir, data.run)
    parts = [*_summary_section(run_dir, data, config_text),
             *_leaderboard_section(data),
             *_validation_section(data.results, data.linked),
             *_test_section(data.results, data.linked),
             *_gap_section(data.validations, data.linked, len(data.records)),
             *_candidates_section(data),
             *_progress_section(data.records, baseline_records, baseline),
             *_failures_section(data.failures),
             *_lineage_section(data.lineage),
             *_heatmap_section(data.shown, config, references)]
    _write_atomically(out, _document(f"actmine run {run_dir.name}", data, parts))
    return out
