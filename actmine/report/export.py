"""`export_pack(run_dir, top, out)`: the top programs of a run as one generated program file (a pack).

The pack holds data only (`actmine.language.files`): for each exported program its source, name
(`mined_<id>`), class name (`Mined<id>`), LaTeX and plain formula, search and held-out fitness (the
validation fitness of the end-of-run check, read from heldout.json in either its current or its older
list format, see `html.final_results`),
per-family log-ratios, origin (run, proposal, mutator, model), rationale and the normaliser's changes
to the model's answer, all as literals, and
the call of the checked loader. Each program keeps its own source string (helpers keep their
names: programs never share a namespace), and every program runs only through the candidate
policy and the restricted namespace, however the pack is loaded:
`actmine.activations.load_pack(path)`, `actmine.activations.get("pack.py:mined_<id>")`,
`actmine transfer --activations pack.py:mined_<id>`, or `import` of the file (which needs actmine
installed) -- `ACTIVATIONS` then maps each name to its module class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..atomic_files import write_text_atomically
from ..evolve.database import ProgramDatabase, ProgramRecord
from ..language.files import ProgramEntry, render_program_file
from ..run_files import DATABASE
from .formula import simplified_formula, sympy_expression
from .html import final_results, validation_by_program

__all__ = ["export_pack"]


def _score(value: Any) -> float | None:
    """A score from the database as a float, or None (missing or not a number); the renderer
    writes a non-finite one as None."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _plain_formula(source: str) -> str:
    expr = sympy_expression(source)
    return str(expr) if expr is not None else ""


def program_entry(record: ProgramRecord, run_dir: Path, heldout: float | None) -> ProgramEntry:
    families = {str(k): _score(v) for k, v in sorted((record.family_log_ratios or {}).items())}
    pointwise = (record.probes or {}).get("pointwise", True)
    info = {
        "program_id": int(record.id),
        "formula": simplified_formula(record.source) or "",
        "plain_formula": _plain_formula(record.source),
        "search_fitness": _score(record.fitness),
        "heldout_fitness": _score(heldout),
        "family_log_ratios": families,
        "pointwise": pointwise if isinstance(pointwise, bool) else True,
        "run_dir": str(run_dir),
        "proposal_index": record.proposal_index if isinstance(record.proposal_index, int) else None,
        "mutator": str(record.mutator or ""),
        "model": str(record.model or ""),
        "rationale": str(record.rationale or ""),
        # what the normaliser changed in the model's answer to make `source` (the answer itself
        # stays in the run's database and report)
        "normalisation_changes": [str(change) for change in record.normalisation_changes or ()],
    }
    return ProgramEntry(f"mined_{int(record.id)}", f"Mined{int(record.id)}", str(record.source), info)


def export_pack(run_dir: str | Path, top: int = 5, out: str | Path | None = None) -> Path:
    """Write `top` programs of the latest run in `run_dir` as one generated program file (default
    `RUN_DIR/mined_activations.py`) and return its path: the run's winner (chosen on validation)
    first, then the fittest by search score. The winner is there even when its search score does
    not rank it among the top: it is the program the run recommends."""
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / "mined_activations.py"
    with ProgramDatabase(run_dir / DATABASE, readonly=True) as db:
        run = db.latest_run()
        if run is None:
            raise ValueError(f"{run_dir} holds no run")
        records = db.top(run["id"], top)
        results = final_results(run_dir, db, run["id"])
        winner = db.get(results["winner"]) if results["winner"] is not None else None
        if winner is not None and winner.run_id == run["id"]:
            records = [winner] + [r for r in records if r.id != winner.id][: max(top - 1, 0)]
        heldout = validation_by_program(results["validation"])
    if not records:
        raise ValueError(f"{run_dir} has no scored program to export")
    entries = [program_entry(record, run_dir.resolve(), heldout.get(record.id)) for record in records]
    # The docstring holds only numbers and fixed text; everything from the database is data.
    listing = "\n".join(
        f"    mined_{e.info['program_id']}: search fitness "
        + ("n/a" if e.info["search_fitness"] is None else f"{e.info['search_fitness']:+.4f}")
        for e in entries
    )
    first = (
        "the run's winner (chosen on validation) first, then the fittest by search score"
        if winner is not None and entries[0].info["program_id"] == winner.id
        else "the fittest by search score"
    )
    doc = (
        f"Activations mined by actmine: {len(entries)} programs of a search run, {first}.\n\n{listing}\n\n"
        "PROGRAMS holds each program's source, formula, scores, origin and rationale as data. Load with\n"
        "actmine.activations.load_pack(this_file), actmine.activations.get('this_file.py:mined_<id>')\n"
        "or import this file (actmine must be installed): ACTIVATIONS maps the names to modules, and\n"
        "every program is checked and compiled by actmine's candidate policy, never run as plain code."
    )
    text = render_program_file(entries, doc)
    return write_text_atomically(out, text)
