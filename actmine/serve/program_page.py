"""The program page of `actmine serve`: one program's source, diff, formula, curve, scores, probes and LLM calls.

Its fixed parts (the highlighted source, the diff against its first parent, the typeset formula,
the per-family and per-task scores, the probes and descriptors, the rationale and the model's
answer and calls) are built once per page; its estimate and confirmation rounds are the polled
blocks (`program_blocks`), since they change while confirmation rounds arrive.

Nothing here runs a program: the curve is the one the probes recorded in the sandbox (else the
restricted interpreter's function) and the formula comes from sympy in a bounded child. The only
markup made here is Pygments' highlighting (Pygments escapes the text it wraps) and the typeset
formula (outlines only), both wrapped in `Markup`; everything else is text for autoescape.
"""

from __future__ import annotations

import difflib
import json
from typing import Any, Sequence

from markupsafe import Markup

from ..evolve.database import ProgramDatabase, ProgramRecord
from ..report.formula import safe_function, simplified_formula
from ..report.html_cells import SECTION_TEXT, cut_text
from ..report.typeset import formula_svg
from .pages import cell, count, failure_text, fields, num, number, program_cell, short, table, text, with_se
from .runs import ServedRun, get_program


# ---- the fixed parts ---------------------------------------------------------------------------


def curve_function(record: ProgramRecord) -> Any:
    """What the curve figure draws for a program, as the report does: the curve the probes recorded
    in the sandbox, else the restricted-ast interpreter's function (never the source run as code);
    None when neither exists."""
    recorded = (record.probes or {}).get("curve")
    return recorded if isinstance(recorded, dict) else safe_function(record.source)


def highlighted(source: str) -> Markup:
    """The source highlighted by Pygments (which escapes the text it wraps in its spans)."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    shown = text(cut_text(source, SECTION_TEXT), newlines=True)
    return Markup(highlight(shown, PythonLexer(), HtmlFormatter(cssclass="highlight")))


def pygments_css() -> str:
    """The stylesheet of `highlighted`'s classes."""
    from pygments.formatters import HtmlFormatter

    return HtmlFormatter(cssclass="highlight").get_style_defs(".highlight")


def diff_lines(parent: ProgramRecord | None, record: ProgramRecord) -> list[dict[str, str]]:
    """The unified diff of the parent's source to this one's, each line with its kind (`add`, `del`,
    `hunk`, `file`, `same`); [] without a parent."""
    if parent is None:
        return []
    lines = difflib.unified_diff(
        text(cut_text(parent.source, SECTION_TEXT), True).splitlines(),
        text(cut_text(record.source, SECTION_TEXT), True).splitlines(),
        fromfile=f"program #{parent.id}",
        tofile=f"program #{record.id}",
        lineterm="",
    )
    kinds = (("+++", "file"), ("---", "file"), ("@@", "hunk"), ("+", "add"), ("-", "del"))
    return [
        {"kind": next((kind for prefix, kind in kinds if line.startswith(prefix)), "same"), "text": line}
        for line in lines
    ]


def formula(record: ProgramRecord) -> dict[str, Any] | None:
    """The simplified formula (sympy in a bounded child; never the source run): `svg` the typeset
    picture (Markup of outlines only) or None, `latex` the text; None when there is no formula."""
    latex = simplified_formula(record.source) if record.status != "failed" else None
    if latex is None:
        return None
    svg = formula_svg(latex)
    return {"svg": Markup(svg) if svg is not None else None, "latex": text(latex)}


def _value_text(value: Any) -> str:
    """A probe or descriptor value as one line (numbers rounded, structures as JSON)."""
    if isinstance(value, float):
        return number(value, 4, signed=False)
    if isinstance(value, (dict, list)):
        return short(json.dumps(value, default=str), 400)
    return short(value, 400)


def probes_table(record: ProgramRecord) -> dict[str, Any]:
    """The probes' measurements (the recorded curve is drawn, not listed) and the descriptors."""
    rows = [
        [cell("descriptor"), cell(name), cell(_value_text(value))]
        for name, value in sorted((record.descriptors or {}).items())
    ]
    rows += [
        [cell("probe"), cell(name), cell(_value_text(value))]
        for name, value in sorted((record.probes or {}).items())
        if name not in ("curve", "descriptors")
    ]
    return table(["", "name", "value"], rows, empty="no probes recorded")


def families_table(record: ProgramRecord) -> dict[str, Any]:
    rows = [[cell(family), num(value, 3)] for family, value in sorted((record.family_log_ratios or {}).items())]
    return table(["family", "OOD log-ratio vs ReLU (lower is better)"], rows, sortable=True, empty="no scores")


def tasks_table(record: ProgramRecord) -> dict[str, Any]:
    rows = [
        [
            cell(task.get("name")),
            cell(task.get("family")),
            num(task.get("log_ratio"), 3),
            num(task.get("ood_error"), 4, signed=False),
            num(task.get("id_error"), 4, signed=False),
        ]
        for task in record.tasks or []
        if isinstance(task, dict)
    ]
    return table(
        ["task", "family", "log-ratio", "OOD error", "ID error"],
        rows,
        sortable=True,
        filterable=True,
        empty="no task scores",
    )


def llm_calls_table(calls: Sequence[dict[str, Any]]) -> dict[str, Any]:
    rows = [
        [
            cell(call.get("model") or "—"),
            cell(call.get("outcome")),
            count(int(call.get("prompt_tokens") or 0)),
            count(int(call.get("completion_tokens") or 0)),
            num(call.get("latency_s"), 2, signed=False),
            num(call.get("cost"), 6, signed=False),
            cell(call.get("error") or ""),
        ]
        for call in calls
    ]
    return table(
        ["model", "outcome", "prompt tokens", "completion tokens", "seconds", "cost (USD)", "error"],
        rows,
        empty="no LLM call recorded for this program",
    )


# ---- the polled blocks -------------------------------------------------------------------------


def estimate_fields(key: str, record: ProgramRecord, children: Sequence[ProgramRecord]) -> dict[str, Any]:
    """The program's changing numbers: status, estimate, rounds, its place, its children."""
    pairs = [
        ("status", cell(record.status + ("" if record.settled or record.status != "ok" else " (unsettled)"))),
        ("fitness ± se", cell(with_se(record.fitness, record.fitness_se))),
        ("score", num(record.score)),
        ("rounds", count(record.rounds)),
        ("OOD log-ratio", num(record.ood_log_ratio)),
        ("island · cell · generation", cell(f"{record.island} · {text(record.cell or '—')} · {record.generation}")),
        ("mutator · model", cell(f"{text(record.mutator)} · {text(record.model or '—')}")),
        ("proposal", count(record.proposal_index)),
        ("seconds", num(record.seconds, 2, signed=False)),
    ]
    if record.status == "failed":
        message = f"{failure_text(record)}: {text(record.failure_message or '')}"
        pairs.append(("failure", cell(message, cls="long")))  # a worker's message: long text that wraps
    if record.duplicate_of is not None:
        pairs.append(("duplicate of", program_cell(key, record.duplicate_of)))
    pairs.append(("parents", cell(", ".join(f"#{pid}" for pid in record.parent_ids) or "— (a seed)")))
    pairs.append(("children", cell(", ".join(f"#{child.id}" for child in children) or "none yet")))
    return fields(pairs)


def rounds_table(evaluations: Sequence[dict[str, Any]]) -> dict[str, Any]:
    rows = [
        [
            count(e["round"]),
            cell(e["kind"]),
            num(e["fitness"]),
            count(len(e["tasks"]) if isinstance(e["tasks"], list) else 0),
        ]
        for e in evaluations
    ]
    return table(["round", "kind", "fitness", "tasks"], rows, empty="no rounds recorded")


# ---- the page ----------------------------------------------------------------------------------


def _children(served: ServedRun, db: ProgramDatabase, record: ProgramRecord) -> list[ProgramRecord]:
    """The programs mutated from `record` (it is their first parent)."""
    return [child for child in db.programs(served.run.run_id) if child.parent_ids[:1] == [record.id]]


def program_page(served: ServedRun, program_id: int) -> dict[str, Any] | None:
    """Everything the program page shows: the fixed parts (source, diff, formula, probes, scores,
    rationale, the model's answer and calls) and its polled `blocks`; None for no such program."""
    key = served.key
    with served.database() as db:
        record = get_program(served, db, program_id)
        if record is None:
            return None
        parent = get_program(served, db, record.parent_ids[0]) if record.parent_ids else None
        children = _children(served, db, record)
        evaluations = db.evaluations(record.id)
        calls = [call for call in db.llm_calls(served.run.run_id) if call.get("program_id") == record.id]
    return {
        "record": record,
        "parent": parent,
        "source": highlighted(record.source),
        "diff": diff_lines(parent, record),
        "formula": formula(record),
        "curve": f"/run/{key}/program/{record.id}/curve.png" if curve_function(record) is not None else None,
        "rationale": text(cut_text(record.rationale, SECTION_TEXT), newlines=True),
        "original_answer": (
            text(cut_text(record.original_answer, SECTION_TEXT), newlines=True) if record.original_answer else None
        ),
        "normalisation_changes": [text(change) for change in record.normalisation_changes or []],
        "mutator": text(record.mutator),
        "model": text(record.model) if record.model else None,
        "fixed": {
            "families": families_table(record),
            "tasks": tasks_table(record),
            "probes": probes_table(record),
            "calls": llm_calls_table(calls),
        },
        "blocks": {"estimate": estimate_fields(key, record, children), "rounds": rounds_table(evaluations)},
    }


def program_blocks(served: ServedRun, program_id: int) -> dict[str, Any] | None:
    """The program page's polled blocks (its estimate changes as confirmation rounds arrive)."""
    with served.database() as db:
        record = get_program(served, db, program_id)
        if record is None:
            return None
        return {
            "estimate": estimate_fields(served.key, record, _children(served, db, record)),
            "rounds": rounds_table(db.evaluations(record.id)),
        }
