"""The report's sections on the end-of-run results: Validation, Test and the Generalisation gap.

They render the rows of `results.final_results` (untrusted, escaped through `html_cells`) and the
`validations` table; a run that lacks them (an older run, a run still going) gets a "not
available" line instead of a table.
"""

from __future__ import annotations

from typing import Any, Iterable

import actmine.report.plots as plots

from .html_cells import _e, _finite, _img, _mapping, _num, _program_cell, _signed, _table, _td, _with_se
from .results import _program_id


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
    headers = [
        "",
        "name",
        "program",
        "search fitness",
        "validation fitness",
        *[f"{f} log-ratio" for f in families],
        "error",
    ]
    body = []
    for r in rows:
        chosen = r.get("winner") is True or (winner is not None and _program_id(r.get("program_id")) == winner)
        body.append(
            [
                _td("winner" if chosen else ""),
                _td(r.get("name")),
                _program_cell(r.get("program_id"), linked),
                _td(_with_se(r.get("search_fitness"), r.get("search_se")), num=True),
                _td(_num(r.get("heldout_fitness")), num=True),
                *[_td(_num(_mapping(r.get("families")).get(f), 3), num=True) for f in families],
                _td(_error_text(r.get("error"))),
            ]
        )
    parts.append(
        "<p class='muted'>Fitness on the validation pools (−mean log-ratio vs ReLU; higher is better): "
        "the winner is the program that did best here, not on the search's own tasks.</p>"
    )
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
    return (
        f"{who} \u2212 {row.get('against') or '?'}: "
        f"{_signed(row.get('mean'))} [{_signed(row.get('low'))}, {_signed(row.get('high'))}] over "
        f"{row.get('tasks', '?')} tasks × {row.get('seeds', '?')} seeds"
    )


def _comparison_table(rows: list[dict], winner: int | None) -> str:
    body = [[_td(_comparison_sentence(r, winner)), _td(_verdict(r))] for r in rows]
    return _table(
        ["winner − reference: mean log-ratio difference [95% interval]", "the winner is"], body, "comparisons"
    )


def _test_table(rows: list[dict], winner: int | None, linked: set[int]) -> str:
    families = _family_names(rows)
    body = []
    for r in _by_fitness(rows, "fitness"):
        chosen = winner is not None and _program_id(r.get("program_id")) == winner
        tasks = r.get("tasks")
        body.append(
            [
                _td("winner" if chosen else ""),
                _td(r.get("name")),
                _program_cell(r.get("program_id"), linked),
                _td(_num(r.get("fitness")), num=True),
                _td(str(len(tasks)) if isinstance(tasks, dict) else "—", num=True),
                *[_td(_num(_mapping(r.get("families")).get(f), 3), num=True) for f in families],
            ]
        )
    return _table(["", "name", "program", "test fitness", "tasks", *[f"{f} log-ratio" for f in families]], body, "test")


def _suite_of(row: dict) -> str:
    return str(row.get("suite") or "test")


def _test_section(results: dict[str, Any], linked: set[int]) -> list[str]:
    """Per test suite (reported only, never used to choose): the winner's and each reference's
    fitness, then the paired comparisons of the winner with each reference and their verdicts."""
    parts = ["<h2 id='test'>Test</h2>"]
    tests, comparisons, winner = results["test"], results["comparisons"], results["winner"]
    if not tests and not comparisons:
        return parts + ["<p class='muted'>not available: this run recorded no test results</p>"]
    parts.append(
        "<p class='muted'>Test suites, never seen by the search or by the choice of the winner. A "
        "comparison is the mean over (task, seed) of the winner's log-ratio minus the reference's, "
        "with a 95% cluster-bootstrap interval: below 0, the winner is better.</p>"
    )
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
    rows = [
        [
            _td("fitness"),
            _td(_with_se(search, latest.get("search_se")), num=True),
            _td(_num(validation), num=True),
            _td(_num(None if search is None or validation is None else search - validation), num=True),
        ]
    ]
    result = _mapping(latest.get("result"))
    search_families, families = _mapping(result.get("search_families")), _mapping(result.get("families"))
    for family in sorted({str(f) for f in (*search_families, *families)}):
        low, high = _finite(search_families.get(family)), _finite(families.get(family))
        rows.append(
            [
                _td(f"{family} log-ratio"),
                _td(_num(low, 3), num=True),
                _td(_num(high, 3), num=True),
                _td(_num(None if low is None or high is None else high - low, 3), num=True),
            ]
        )
    return rows


def _gap_section(validations: list[dict], linked: set[int], proposals: int) -> list[str]:
    """The generalisation gap: the best's search estimate against its validation fitness over the
    run (figure), the latest such pair per family, and every recorded pair (collapsed)."""
    parts = ["<h2 id='gap'>Generalisation gap</h2>"]
    rows = [v for v in validations if isinstance(v, dict)]
    if not rows:
        return parts + ["<p class='muted'>not available: this run recorded no validation of its best program</p>"]
    parts.append(
        _img(
            plots.generalisation_gap_figure(rows, until=proposals),
            "generalisation gap: search estimate vs validation fitness",
        )
    )
    latest = rows[-1]
    parts.append(
        f"<p>Latest: program {_e(latest.get('program_id'))} after {_e(latest.get('evaluated'))} proposals. "
        "Gap: positive when the program did worse on the validation pools than its search estimate "
        "promised.</p>"
    )
    parts.append(_table(["", "search", "validation", "gap"], _gap_rows(latest), "gap"))
    history = [
        [
            _td(str(v.get("evaluated")), num=True),
            _program_cell(v.get("program_id"), linked),
            _td(_with_se(v.get("search_fitness"), v.get("search_se")), num=True),
            _td(_num(v.get("fitness")), num=True),
        ]
        for v in rows
    ]
    parts.append(
        "<details><summary>every validation of the best</summary>"
        + _table(["evaluated", "program", "search fitness", "validation fitness"], history, "validations")
        + "</details>"
    )
    return parts
