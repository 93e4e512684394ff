"""The end-of-run results of a search run, read for the report, the export, the API and the viewer.

`final_results` gives {"winner", "validation", "test", "comparisons"} from heldout.json (the
current dict format, or the older plain list of held-out rows, read as validation rows) or, when
that file is missing, damaged or empty, from the database's `heldout` table. Rows are untrusted
dicts as written: whoever shows them escapes them. No HTML here, so the readers that need only
the numbers (`export`, `api`, `serve`) do not depend on the page writer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..evolve.database import ProgramDatabase
from ..run_files import HELDOUT, read_run_text


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
    text = read_run_text(path)
    try:
        data = json.loads(text) if text is not None else None
    except (ValueError, RecursionError):  # damaged, or nested past the parser's depth by hand
        return results
    if isinstance(data, list):
        results["validation"] = _dict_rows(data)
    elif isinstance(data, dict):
        results["winner"] = _program_id(data.get("winner"))
        if data.get("winner_chosen_by") in ("validation", "search score"):
            results["winner_chosen_by"] = data["winner_chosen_by"]
        blend = _blend(data.get("blend"))
        if blend is not None:
            results["blend"] = blend
        for key in SPLITS.values():
            results[key] = _dict_rows(data.get(key))
    return results


def _blend(data: Any) -> dict[str, Any] | None:
    """heldout.json's `blend` (what became of blending the validation's choice with a reference),
    its fields checked: ids as ints, the reference and the error as capped text (still untrusted:
    escape before showing), the weight as a number."""
    if not isinstance(data, dict) or _program_id(data.get("chosen")) is None:
        return None
    weight = data.get("weight")
    error = data.get("error")
    return {
        "chosen": _program_id(data["chosen"]),
        "program_id": _program_id(data.get("program_id")),
        "reference": str(data.get("reference", ""))[:64],
        "partner": str(data.get("partner") or data.get("reference", ""))[:64],
        "weight": float(weight) if isinstance(weight, (int, float)) and not isinstance(weight, bool) else None,
        "error": str(error)[:500] if error is not None else None,
    }


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
    results = _results_from_file(Path(run_dir) / HELDOUT)
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
