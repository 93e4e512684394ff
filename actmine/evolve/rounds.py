"""Fitness as an estimate: confirmation rounds, pooled samples and validations of recorded programs.

`EstimateRounds` is the part of the search controller that treats a program's fitness as a noisy
estimate (docs/lab.md, "Selection that resists noise" and "See the gap"): it turns the task
scores of every round into the program's estimate under `tasks.objective` (less GELU's control
variate, `tasks.control_beta`), asks the confirmation rule whether a program needs another round on
a fresh sample (queued as a `_Round`), pools same-function samples, settles programs, and validates
the current best now and then. `Search` (controller.py) inherits it; the methods read the search's
`config`, `tasks`, `rule` and queues.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from ..lab.estimate import OBJECTIVES, Estimate
from ..lab.fitness import Evaluation, Lab
from .database import ProgramDatabase, ProgramRecord
from .live_view import SearchState


def pooled_task_scores(tasks: list[dict[str, Any]]) -> dict[str, tuple[str, float]]:
    """A program's rounds' task scores pooled by task: {name: (family, mean log-ratio over the rounds
    that scored it)}. A task scored again (a fixed suite's rounds, a repeat draw) is one task, so the
    standard error counts tasks, not rounds."""
    scores: dict[str, list[float]] = {}
    families: dict[str, str] = {}
    for task in tasks:
        scores.setdefault(str(task["name"]), []).append(float(task["log_ratio"]))
        families[str(task["name"])] = str(task["family"])
    return {name: (families[name], sum(v) / len(v)) for name, v in scores.items()}


def fitness_estimate(
    config: Any, search_tasks: Any, tasks: list[dict[str, Any]], objective: str | None = None, controlled: bool = True
) -> Estimate:
    """A program's fitness estimate from its rounds' task scores (`EstimateRounds._estimate`, which
    documents the arguments): `config` a run's Config, `search_tasks` its SearchTasks (for GELU's
    control offsets)."""
    beta = config.tasks.control_beta if controlled else 0.0
    control = search_tasks.control if beta else {}
    scores = [
        (family, -ratio - beta * control.get(name, 0.0)) for name, (family, ratio) in pooled_task_scores(tasks).items()
    ]
    return OBJECTIVES[objective or config.tasks.objective](scores)


def pooled_estimate(config: Any, search_tasks: Any, tasks: list[dict[str, Any]]) -> tuple[Estimate, dict[str, Any]]:
    """The estimate of a program's pooled rounds (`tasks`: every round's task scores) and the
    program row's fields that follow from it: fitness and its standard error, the plain mean
    log-ratio, the per-family mean log-ratios, the tasks."""
    estimate = fitness_estimate(config, search_tasks, tasks)
    families: dict[str, list[float]] = {}
    for family, ratio in pooled_task_scores(tasks).values():
        families.setdefault(family, []).append(ratio)
    mean_ratio = -fitness_estimate(config, search_tasks, tasks, "mean", controlled=False).mean
    return estimate, {
        "fitness": estimate.mean,
        "fitness_se": estimate.se,
        "ood_log_ratio": mean_ratio,  # the plain mean log-ratio
        "family_log_ratios": {f: sum(v) / len(v) for f, v in sorted(families.items())},
        "tasks": tasks,
    }


@dataclass
class _Round:
    """A scoring job for a recorded program: a confirmation round on a fresh sample, or the
    validation of the current best (the generalisation gap)."""

    program_id: int
    kind: str  # "confirm" or "validate"
    round: int  # the round number (confirm); 0 for a validation
    source: str
    lab: Lab


class EstimateRounds:
    """Confirmation rounds and validations (a base of `Search`; see the module docstring)."""

    config: Any
    tasks: Any
    rule: Any
    _rounds: deque[_Round]  # confirmation rounds waiting for a slot
    _confirming: set[int]  # programs with a round queued or in flight
    _validating: int | None  # the program whose validation is in flight
    _validated_at: int  # state.evaluated when the last validation was submitted

    # -- estimates and confirmation rounds ---------------------------------------------------
    def _estimate(self, tasks: list[dict[str, Any]], objective: str | None = None, controlled: bool = True) -> Estimate:
        """The fitness estimate of pooled task scores (fitness = −log-ratio per task), aggregated by
        `objective` (default: the config's `tasks.objective`: the mean over tasks, or the softmin
        over families). `controlled`: each task's score less `tasks.control_beta` × GELU's offset on
        it (`SearchTasks.control`; the same expectation, less noise); False: the plain scores."""
        return fitness_estimate(self.config, self.tasks, tasks, objective, controlled)

    @staticmethod
    def _new_sample(database: ProgramDatabase, program_id: int, evaluation: Evaluation) -> bool:
        """Whether a same-function evaluation scored tasks the program's rounds have not: only then
        is it pooled (a fixed suite's or a shared round's tasks again add no information)."""
        seen = {t["name"] for r in database.evaluations(program_id) for t in r["tasks"]}
        return any(t.name not in seen for t in evaluation.tasks)

    def _bars(self, database: ProgramDatabase, run_id: int, record: ProgramRecord) -> list[float | None]:
        """The score a program must beat to enter the run's top list (the parents exploitation
        prefers most, and the programs the validation chooses from): the last place's score, or
        −inf while the list is not full (everything enters, so everything early is confirmed)."""
        k = self.config.search.heldout_top
        top = [score for i, score in database.top_scores(run_id, k + 1) if i != record.id][:k]
        return [top[-1] if len(top) == k else -math.inf]

    def _queue_round(self, database: ProgramDatabase, record: ProgramRecord) -> None:
        """Queue the program's next confirmation round (on a fresh sample) unless one is pending."""
        if record.id in self._confirming:
            return
        rounds = database.evaluations(record.id)
        next_round = max((r["round"] for r in rounds), default=-1) + 1
        self._confirming.add(record.id)
        self._rounds.append(
            _Round(
                record.id, "confirm", next_round, record.source, self.tasks.lab_for(record.proposal_index, next_round)
            )
        )

    def _finish_round(
        self, database: ProgramDatabase, run_id: int, job: _Round, evaluation: Evaluation, state: SearchState
    ) -> None:
        """A confirmation round or a validation came back: pool it, or record the gap."""
        state.busy_seconds += evaluation.seconds
        if job.kind == "validate":
            self._validating = None
            self._record_validation(database, run_id, job.program_id, evaluation, state)
            return
        self._confirming.discard(job.program_id)
        if not evaluation.ok:  # a round that fails (a lost worker, a time limit) ends the confirmation
            self._settle(database, run_id, job.program_id)
            return
        self._add_round(database, run_id, job.program_id, evaluation, "confirm", job.round)

    def _add_round(
        self,
        database: ProgramDatabase,
        run_id: int,
        program_id: int,
        evaluation: Evaluation,
        kind: str,
        round: int | None = None,
    ) -> None:
        """Pool one more scored sample into the program's estimate; settle it or ask for another round."""
        rounds = database.evaluations(program_id)
        if round is None or any(r["round"] == round for r in rounds):
            round = max((r["round"] for r in rounds), default=-1) + 1
        with database.transaction():
            database.add_evaluation(
                run_id,
                program_id,
                round,
                kind,
                evaluation.fitness,
                [t.to_dict() for t in evaluation.tasks],
                evaluation.seconds,
            )
            self._reestimate(database, run_id, program_id)

    def _reestimate(self, database: ProgramDatabase, run_id: int, program_id: int, force_settle: bool = False) -> None:
        record = database.get(program_id)
        rounds = database.evaluations(program_id)
        tasks = [t for r in rounds for t in r["tasks"]]
        estimate, fields = pooled_estimate(self.config, self.tasks, tasks)
        record.fitness, record.fitness_se = estimate.mean, estimate.se  # for the bars' own-id check
        settled = (
            record.settled
            or force_settle
            or not self.rule.needs_round(estimate, len(rounds), self._bars(database, run_id, record))
        )
        database.update_estimate(
            program_id, **fields, score=self.rule.score(estimate), rounds=len(rounds), settled=settled
        )
        if settled and not record.settled and record.mutator == "seed":
            self._place_seed(database, run_id, program_id)
        if not settled:
            self._queue_round(database, database.get(program_id))

    def _settle(self, database: ProgramDatabase, run_id: int, program_id: int) -> None:
        with database.transaction():
            self._reestimate(database, run_id, program_id, force_settle=True)

    def _settle_all(self, database: ProgramDatabase, run_id: int) -> None:
        """At the end: programs still waiting for rounds settle with the estimate they have."""
        for record in database.unsettled(run_id):
            self._settle(database, run_id, record.id)
        self._rounds.clear()
        self._confirming.clear()

    def _place_seed(self, database: ProgramDatabase, run_id: int, program_id: int) -> None:
        """A seed is evaluated once and placed on every island."""
        for island in range(1, self.config.search.islands):
            database.move_to_island(run_id, program_id, island)

    # -- the generalisation gap over the run -------------------------------------------------
    def _validation_job(self, database: ProgramDatabase, run_id: int, state: SearchState) -> _Round | None:
        """Validate the current best when it changed and `validate_every` evaluations have passed."""
        if self._validating is not None or self.tasks.validation is None:
            return None
        best = database.best(run_id)
        if best is None or state.evaluated - self._validated_at < self.config.search.validate_every:
            return None
        latest = database.latest_validation(run_id)
        if latest is not None and latest["program_id"] == best.id:
            return None
        self._validating, self._validated_at = best.id, state.evaluated
        return _Round(best.id, "validate", 0, best.source, self.tasks.validation)

    def _record_validation(
        self, database: ProgramDatabase, run_id: int, program_id: int, evaluation: Evaluation, state: SearchState
    ) -> None:
        record = database.get(program_id)
        result = {
            "families": evaluation.family_log_ratios() if evaluation.ok else {},
            "search_families": dict(record.family_log_ratios),
            "error": evaluation.error,
            "tasks": {t.name: list(t.seed_log_ratios) for t in evaluation.tasks},
        }
        # the gap compares like with like: the validation fitness is a mean over tasks, so the search
        # side is too, whatever `tasks.objective` ranks programs by
        search = self._estimate(record.tasks, "mean")
        database.add_validation(
            run_id,
            program_id,
            state.evaluated,
            search.mean,
            search.se,
            evaluation.fitness if evaluation.ok else None,
            result,
        )
