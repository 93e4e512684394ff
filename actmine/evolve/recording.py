"""Recording settled proposals: the program rows the search writes, one transaction each.

`RecordPrograms` is the part of the search controller that writes a proposal's outcome to the
run's database once it is settled (evaluated by a worker, or failed or found a duplicate by the
controller's cheap checks): a new program with its first round, its LLM calls and a seed's island
places; or a duplicate of a known function, linked to the original and pooled into its estimate.
It also tells the mutator how its proposal did and keeps the live view's counters. `Search`
(controller.py) inherits it; the module also holds `_Pending`, a proposal on its way to a record.
A program's source is stored as `normalise_source` gives it, the text that exact-duplicate
detection compares (one normalisation for the rows and the lookups: `program_records`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..lab.estimate import Estimate
from ..lab.fitness import Evaluation
from .cells import cell_of
from .database import ProgramDatabase, ProgramRecord
from .program_records import normalise_source
from .live_view import SearchState
from .mutators import Failure, Proposal
from .rounds import EstimateRounds


@dataclass
class _Pending:
    """A proposal and its place in the search (index, parents, island, generation), from the
    moment it is asked for until it is recorded."""

    proposal: Proposal
    index: int
    parent_ids: list[int]
    island: int
    generation: int
    submitted: float
    parent_fitness: float | None = None


class RecordPrograms(EstimateRounds):
    """Writing settled proposals to the database (a base of `Search`; see the module docstring)."""

    def _record(
        self,
        database: ProgramDatabase,
        run_id: int,
        pending: _Pending,
        evaluation: Evaluation,
        state: SearchState,
        mutator=None,
    ) -> ProgramRecord:
        """Record a settled proposal: a known function as a duplicate, anything else as a new program."""
        # this sample's estimate under `tasks.objective`: the fitness recorded, and the one the mutator
        # compares with its parent's (measured the same way)
        estimate = self._estimate([t.to_dict() for t in evaluation.tasks]) if evaluation.ok else None
        self._tell_mutator(pending, evaluation, estimate, mutator)
        duplicate = self._record_known_function(database, run_id, pending, evaluation, state)
        if duplicate is not None:
            return duplicate
        record = self._new_record(database, run_id, pending, evaluation, estimate)
        self._store(database, run_id, pending, evaluation, record)
        self._count(state, pending, evaluation)
        return record

    @staticmethod
    def _tell_mutator(pending: _Pending, evaluation: Evaluation, estimate: Estimate | None, mutator) -> None:
        """The mutator learns how its own proposal did (its estimate, or the failure)."""
        if mutator is not None and pending.proposal.mutator == mutator.name:
            failure = (
                None
                if evaluation.ok
                else Failure(f"{evaluation.stage}:{evaluation.error['code']}", evaluation.error.get("message") or "")
            )
            mutator.observe(pending.proposal, estimate.mean if estimate else None, pending.parent_fitness, failure)

    def _record_known_function(
        self, database: ProgramDatabase, run_id: int, pending: _Pending, evaluation: Evaluation, state: SearchState
    ) -> ProgramRecord | None:
        """The duplicate's record when the evaluation's fingerprint names a recorded program; None otherwise."""
        fingerprint = evaluation.probes.get("fingerprint")
        if fingerprint and (evaluation.ok or (evaluation.error or {}).get("code") == "duplicate"):
            # a known function (perhaps one that finished while this one was in flight)
            original = database.by_fingerprint(fingerprint, run_id=run_id)
            if original is not None:
                with database.transaction():  # the duplicate and its pooled sample: together
                    duplicate = self._record_duplicate(database, run_id, pending, original, state, evaluation)
                    if (
                        evaluation.ok
                        and original.status == "ok"
                        and self._new_sample(database, original.id, evaluation)
                    ):
                        self._add_round(database, run_id, original.id, evaluation, "pooled")
                return duplicate
        return None

    def _new_record(
        self,
        database: ProgramDatabase,
        run_id: int,
        pending: _Pending,
        evaluation: Evaluation,
        estimate: Estimate | None,
    ) -> ProgramRecord:
        """The new program's record (not yet stored): its cell, its source, its first estimate."""
        cell = cell_of(evaluation.probes.get("descriptors", {}), evaluation.probes) if evaluation.ok else None
        record = ProgramRecord.from_evaluation(
            evaluation,
            pending.proposal,
            run_id=run_id,
            proposal_index=pending.index,
            parent_ids=pending.parent_ids,
            island=pending.island,
            generation=pending.generation,
            cell=cell,
        )
        record.source = (
            normalise_source(pending.proposal.source)
            if evaluation.stage not in ("policy", "mutator")
            else pending.proposal.source
        )
        if evaluation.ok:
            record.fitness, record.fitness_se = estimate.mean, estimate.se
            record.score, record.rounds = self.rule.score(estimate), 1
            record.settled = not self.rule.needs_round(estimate, 1, self._bars(database, run_id, record))
        return record

    def _store(
        self, database: ProgramDatabase, run_id: int, pending: _Pending, evaluation: Evaluation, record: ProgramRecord
    ) -> None:
        """Write the new program (setting `record.id`), and queue its next round if it is not settled."""
        with database.transaction():  # the program, its first round, its LLM calls, a seed's places: together
            record.id = database.add_program(record)
            if evaluation.ok:
                database.add_evaluation(
                    run_id,
                    record.id,
                    0,
                    "search",
                    evaluation.fitness,
                    [t.to_dict() for t in evaluation.tasks],
                    evaluation.seconds,
                )
            self._record_calls(database, run_id, record.id, pending.proposal)
            if evaluation.ok and record.settled and pending.proposal.mutator == "seed":
                self._place_seed(database, run_id, record.id)
        if evaluation.ok and not record.settled:
            self._queue_round(database, record)

    @staticmethod
    def _count(state: SearchState, pending: _Pending, evaluation: Evaluation) -> None:
        """The live view's counters and its last line, for a new program."""
        state.evaluated += 1
        state.busy_seconds += evaluation.seconds
        if not evaluation.ok:
            key = f"{evaluation.stage}:{evaluation.error['code']}"
            state.failures[key] = state.failures.get(key, 0) + 1
        state.last = (
            f"p{pending.index} {'ok %+.3f' % evaluation.fitness if evaluation.ok else evaluation.error['code']}"
        )
        if pending.proposal.normalisation_changes:  # the model's answer was rewritten to get here
            changes = len(pending.proposal.normalisation_changes)
            state.last += f" (normalised: {changes} change{'s' if changes != 1 else ''})"

    def _record_duplicate(
        self,
        database: ProgramDatabase,
        run_id: int,
        pending: _Pending,
        original: ProgramRecord,
        state: SearchState,
        evaluation: Evaluation | None = None,
    ) -> ProgramRecord:
        """A known function: stored with the original's result and a link to it, not trained again."""
        record = ProgramRecord(
            id=None,
            run_id=run_id,
            proposal_index=pending.index,
            parent_ids=pending.parent_ids,
            island=pending.island,
            generation=pending.generation,
            source=pending.proposal.source,
            rationale=pending.proposal.rationale,
            mutator=pending.proposal.mutator,
            model=pending.proposal.model,
            status="duplicate",
            failure_stage=original.failure_stage,
            failure_code=original.failure_code,
            failure_message=original.failure_message,
            fitness=original.fitness,
            ood_log_ratio=original.ood_log_ratio,
            family_log_ratios=original.family_log_ratios,
            tasks=original.tasks,
            fingerprint=original.fingerprint,
            descriptors=original.descriptors,
            probes=original.probes,
            fitness_se=original.fitness_se,
            score=original.score,
            rounds=original.rounds,
            timings=evaluation.timings if evaluation else {},
            cell=None,
            duplicate_of=original.id,
            seconds=evaluation.seconds if evaluation else 0.0,
            created_at=time.time(),
            original_answer=pending.proposal.original_answer,
            normalisation_changes=list(pending.proposal.normalisation_changes),
        )
        with database.transaction():
            record.id = database.add_program(record)
            self._record_calls(database, run_id, record.id, pending.proposal)
        state.evaluated += 1
        state.busy_seconds += record.seconds
        state.failures["duplicate"] = state.failures.get("duplicate", 0) + 1
        return record

    @staticmethod
    def _record_calls(database: ProgramDatabase, run_id: int, program_id: int | None, proposal: Proposal) -> None:
        for call in proposal.calls:
            database.add_llm_call(
                run_id,
                call.model,
                program_id=program_id,
                prompt_tokens=call.prompt_tokens,
                completion_tokens=call.completion_tokens,
                latency_s=call.latency_s,
                cost=call.cost,
                outcome=call.outcome,
                error=call.error,
            )
