"""The records of the program database: a proposal and what became of it (`ProgramRecord`), a run
(`RunRecord`), and the normalised source that deduplicates programs (`normalise_source`,
`source_key`). `database.py` stores them; every name is importable from there too.
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from .cells import cell_of
from .mutators.base import Parent, Proposal

if TYPE_CHECKING:  # pragma: no cover
    from ..lab.fitness import Evaluation


#: The mutator name of a final check's blended winner (`final_check.FinalCheck._blend`): a program of
#: the run that the search never proposed, so it is never a parent, an inspiration, a confirmation
#: bar or a top-list entry (`ProgramDatabase.top` leaves it out) when a finished run is resumed.
BLEND_MUTATOR = "blend"


def normalise_source(source: str) -> str:
    """Program text with comments, blank lines and formatting removed: `ast.unparse(ast.parse(s))`.

    Text that does not parse is only stripped of trailing whitespace and blank lines. Idempotent.
    The result depends on the Python version (ast.unparse's style), so dedup by source is exact
    only within one interpreter version; dedup by fingerprint does not have that limit.
    """
    try:
        return ast.unparse(ast.parse(source)).strip()
    except Exception:  # SyntaxError, RecursionError, MemoryError, ValueError (NUL bytes) ...
        lines = [line.rstrip() for line in source.replace("\r\n", "\n").split("\n")]
        return "\n".join(line for line in lines if line).strip()


def source_key(source: str) -> str:
    """sha256 of the normalised source: the value of `programs.source_hash`."""
    return hashlib.sha256(normalise_source(source).encode("utf-8", "surrogatepass")).hexdigest()


def _proposal_fields(
    proposal: Proposal,
    run_id: int,
    proposal_index: int,
    parent_ids: Sequence[int],
    island: int,
    generation: int,
    created_at: float | None,
) -> dict[str, Any]:
    """A record's fields that come from the proposal and its place in the search (the same for an
    evaluated program and a duplicate)."""
    return {
        "run_id": run_id,
        "proposal_index": proposal_index,
        "source": proposal.source,
        "parent_ids": list(parent_ids),
        "island": island,
        "generation": generation,
        "rationale": proposal.rationale,
        "mutator": proposal.mutator,
        "model": proposal.model,
        "created_at": time.time() if created_at is None else created_at,
        "original_answer": proposal.original_answer,
        "normalisation_changes": list(proposal.normalisation_changes),
    }


@dataclass
class ProgramRecord:
    """One proposal and what became of it.

    status: "ok" (evaluated and scored), "failed" (refused or failed at `failure_stage` with
    `failure_code`), "duplicate" (same source or fingerprint as program `duplicate_of`; it carries
    the original's numbers for information but never enters a grid, `top` or `best`).

    `source` is the program as checked and evaluated (for an LLM proposal, the normalised one; for
    an answer without a program, the raw answer). `original_answer` is the LLM's whole answer as it
    came (None for other mutators), and `normalisation_changes` what the normaliser changed in it.
    Both are untrusted text, shown for debugging prompts, never run.
    """

    run_id: int
    proposal_index: int
    source: str
    id: int | None = None
    parent_ids: list[int] = field(default_factory=list)
    island: int = 0
    generation: int = 0
    rationale: str = ""
    mutator: str = ""
    model: str | None = None
    status: str = "ok"
    failure_stage: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    fitness: float | None = None
    ood_log_ratio: float | None = None
    family_log_ratios: dict[str, float] = field(default_factory=dict)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    fingerprint: str | None = None
    descriptors: dict[str, Any] = field(default_factory=dict)
    probes: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    cell: str | None = None
    duplicate_of: int | None = None
    seconds: float = 0.0
    created_at: float = field(default_factory=time.time)
    original_answer: str | None = None
    normalisation_changes: list[str] = field(default_factory=list)
    # The estimate (schema 4): `fitness` is the mean over every task the program was scored on (all
    # its rounds, see `evaluations`), `fitness_se` its standard error, `score` the lower confidence
    # bound selection ranks by, `rounds` how many samples were pooled. `settled` is False while a
    # program waits for confirmation rounds: it is then in no grid, `top` or `best`.
    fitness_se: float | None = None
    score: float | None = None
    rounds: int = 1
    settled: bool = True

    @classmethod
    def from_evaluation(
        cls,
        evaluation: "Evaluation",
        proposal: Proposal,
        *,
        run_id: int,
        proposal_index: int,
        parent_ids: Sequence[int] = (),
        island: int = 0,
        generation: int = 0,
        cell: str | None = None,
        duplicate_of: int | None = None,
        created_at: float | None = None,
    ) -> "ProgramRecord":
        """A record of an evaluated proposal: "ok" or "failed" from the evaluation, "duplicate"
        when `duplicate_of` is given. For an ok evaluation without a `cell`, the cell is computed
        from its probes by `cells.cell_of`."""
        probes = dict(evaluation.probes or {})
        descriptors = dict(probes.get("descriptors") or {})
        error = evaluation.error or {}
        if duplicate_of is not None:
            status = "duplicate"
        else:
            status = "ok" if evaluation.ok else "failed"
        if cell is None and evaluation.ok and descriptors:
            cell = cell_of(descriptors, probes)
        family = evaluation.family_log_ratios()
        return cls(
            **_proposal_fields(proposal, run_id, proposal_index, parent_ids, island, generation, created_at),
            status=status,
            failure_stage=(error.get("stage") or evaluation.stage) if not evaluation.ok else None,
            failure_code=error.get("code") if not evaluation.ok else None,
            failure_message=error.get("message") if not evaluation.ok else None,
            fitness=evaluation.fitness,
            ood_log_ratio=evaluation.ood_log_ratio,
            family_log_ratios=family,
            tasks=[t.to_dict() for t in evaluation.tasks],
            fingerprint=probes.get("fingerprint"),
            descriptors=descriptors,
            probes=probes,
            timings=dict(evaluation.timings),
            cell=cell,
            duplicate_of=duplicate_of,
            seconds=float(evaluation.seconds),
        )

    @classmethod
    def duplicate(
        cls,
        proposal: Proposal,
        original: "ProgramRecord",
        *,
        run_id: int,
        proposal_index: int,
        parent_ids: Sequence[int] = (),
        island: int = 0,
        generation: int = 0,
        seconds: float = 0.0,
        created_at: float | None = None,
    ) -> "ProgramRecord":
        """A "duplicate" record of `proposal` (not evaluated, or evaluated only as far as the
        fingerprint) that copies the original's scores and descriptors for information."""
        if original.id is None:
            raise ValueError("the original must be a stored program (with an id)")
        return cls(
            **_proposal_fields(proposal, run_id, proposal_index, parent_ids, island, generation, created_at),
            status="duplicate",
            fitness=original.fitness,
            ood_log_ratio=original.ood_log_ratio,
            family_log_ratios=dict(original.family_log_ratios),
            tasks=[dict(t) for t in original.tasks],
            fingerprint=original.fingerprint,
            descriptors=dict(original.descriptors),
            probes=dict(original.probes),
            cell=original.cell,
            duplicate_of=original.id,
            seconds=seconds,
        )

    def to_parent(self) -> Parent:
        return Parent(
            source=self.source,
            fitness=self.fitness,
            rationale=self.rationale,
            family_log_ratios=dict(self.family_log_ratios),
            id=self.id,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunRecord:
    """A row of `runs`; fields read as attributes or as keys (`run.status`, `run["status"]`)."""

    id: int
    created_at: float
    updated_at: float
    seed: int | None
    config: dict[str, Any]
    versions: dict[str, Any]
    status: str

    def __getitem__(self, key: str) -> Any:
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The JSON and number checks of the database's rows (`database`, `database_results`)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _finite_or_none(value: Any, what: str) -> float | None:
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value):  # SQLite would store NaN as NULL: refuse rather than lose it
        raise ValueError(f"{what} must be finite, got {value!r}")
    return value
