"""The search controller: propose, evaluate, record — steady-state, resumable.

The controller is the only writer of the run's database. It keeps every executor slot busy:
whenever a slot is free it samples a parent (and inspirations) on the next island, asks the
mutator for a proposal, checks it cheaply here (static policy and exact-source dedup, both
ast/text only, never executing it) and submits it; whenever an evaluation finishes it is written
in one transaction. No generations, no lock-step.

Resume: everything that finished is in `programs.sqlite`; a new controller on the same run
directory continues from the next proposal index. Evaluations in flight when the previous
controller died are simply proposed anew, first and under their own indexes (so a run's indexes
stay gap-free). One controller per run directory: `run` holds the
directory's `RunLock` from before the database opens to the end, so a second one stops at once.
"""

from __future__ import annotations

import ast
import json
import math
import random
import signal
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from ..candidate.sandbox import SandboxLimits
from ..candidate.source import CandidateError, check_source
from ..config import Config, ConfigError
from ..executors import make_executor
from ..faults import fault_point
from ..lab.ensemble import Protocol
from ..lab.estimate import WINNER_RULES, Estimate
from ..lab.fitness import Evaluation, Lab
from ..lab.tasks import stable_seed
from ..language.files import ProgramEntry, render_program_file
from ..terminal import terminal_text
from ..version import __version__
from .cells import cell_of
from .confirmation import ConfirmationRule
from .database import ProgramDatabase, ProgramRecord
from .mutators import Failure, LabContext, Proposal, get_mutator
from .runlock import RunLock
from .search_tasks import SearchTasks, build_lab  # noqa: F401  (build_lab was defined here: re-exported)
from .selection import migrate_ring, sample_inspirations, sample_parent
from .seeds import seed_source

DATABASE = "programs.sqlite"
CONFIG_SNAPSHOT = "config.yaml"
BEST_PROGRAM = "best_activation.py"
HELDOUT = "heldout.json"


def normalised_source(source: str) -> str:
    """Source text with comments and formatting removed, for exact-duplicate detection."""
    try:
        return ast.unparse(ast.parse(source))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return source


@dataclass
class _Pending:
    proposal: Proposal
    index: int
    parent_ids: list[int]
    island: int
    generation: int
    submitted: float
    parent_fitness: float | None = None


@dataclass
class _Round:
    """A scoring job for a recorded program: a confirmation round on a fresh sample, or the
    validation of the current best (the generalisation gap)."""

    program_id: int
    kind: str           # "confirm" or "validate"
    round: int          # the round number (confirm); 0 for a validation
    source: str
    lab: Lab


@dataclass
class SearchState:
    """What the live view shows; updated by the controller as results arrive."""

    budget: int
    evaluated: int = 0
    started: float = field(default_factory=time.monotonic)
    busy_seconds: float = 0.0          # summed evaluation time of finished work (for idle fraction)
    capacity: int = 1
    failures: dict[str, int] = field(default_factory=dict)
    top: list[ProgramRecord] = field(default_factory=list)
    last: str = ""
    llm: dict[str, Any] = field(default_factory=dict)   # the LLM mutator's spend, when there is one
    rounds: dict[str, int] = field(default_factory=dict)   # scored rounds by kind (search, confirm, pooled)
    unsettled: int = 0                                     # programs waiting for confirmation
    gap: dict[str, Any] = field(default_factory=dict)      # the latest validation of the best

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.evaluated / elapsed if elapsed > 0 else 0.0


class Search:
    """One search run in `run_dir`, created or resumed. Configuration only until `run()`."""

    def __init__(self, config: Config, run_dir: str | Path, live: bool = True):
        self.config = config
        self.run_dir = Path(run_dir)
        self.live = live
        self._stop = False
        self.stop_reason: str | None = None    # set when the mutator can propose no more (LLM budget)
        self.rule = ConfirmationRule(config.tasks.confirm_rounds, config.tasks.lcb_z)
        self.tasks: SearchTasks | None = None  # built by run()
        self._rounds: deque[_Round] = deque()  # confirmation rounds waiting for a slot
        self._confirming: set[int] = set()     # programs with a round queued or in flight
        self._validating: int | None = None    # the program whose validation is in flight
        self._validated_at = -10**9            # state.evaluated when the last validation was submitted

    # -- set-up ----------------------------------------------------------------------------
    def _open(self) -> tuple[ProgramDatabase, int]:
        """Open (or create) the run; refuse a resume whose config changed where it may not."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        snapshot = self.run_dir / CONFIG_SNAPSHOT
        database = ProgramDatabase(self.run_dir / DATABASE)
        run = database.latest_run()
        if run is not None:
            previous = Config.from_dict(yaml.safe_load(snapshot.read_text()) if snapshot.is_file() else run["config"],
                                        source=str(snapshot))
            conflicts = self.config.resume_conflicts(previous)
            if conflicts:
                database.close()
                raise ConfigError(
                    f"{self.run_dir} holds a run with a different configuration ({', '.join(conflicts)}); "
                    f"only {', '.join(Config.RESUMABLE_CHANGES)} may change on resume. Use a new --run-dir, "
                    "or the run's own config.yaml")
            run_id = run["id"]
            database.update_run(run_id, config=self.config.to_dict(), status="running")
        else:
            versions = {"actmine": __version__, "torch": torch.__version__}
            run_id = database.create_run(self.config.to_dict(), self.config.search.seed, versions)
        temporary = snapshot.with_suffix(".tmp")
        temporary.write_text(yaml.safe_dump(self.config.to_dict(), sort_keys=False))
        temporary.replace(snapshot)
        return database, run_id

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Run the search to its budget (or time limit, Ctrl-C, the mutator's end) and return the
        summary. The run directory's lock (`RunLock`) is taken first, before the lab is built or the
        database opened, and held until the report is written: a second controller on the
        directory fails at once with `RunLocked` instead of writing the same database."""
        with RunLock(self.run_dir):
            return self._run()

    def _run(self) -> dict[str, Any]:
        config = self.config
        # The controller shares the machine with its workers; one thread also keeps the
        # mutators' in-process screening fast (torch's thread pool costs more than it saves here).
        torch.set_num_threads(1)
        database, run_id = self._open()
        self.tasks = self._build_tasks()
        mutator = self._mutator(database, run_id)
        limits = SandboxLimits(timeout_s=config.sandbox.timeout_s, cpu_s=config.sandbox.cpu_s,
                               memory_mb=config.sandbox.memory_mb,
                               max_tasks_per_worker=config.sandbox.max_tasks_per_worker)
        executor = make_executor(config.executor.kind, config.executor.workers, limits, config.executor.scheduler)
        state = SearchState(budget=config.search.budget, capacity=executor.capacity)
        state.evaluated = database.count(run_id)
        next_index = database.max_proposal_index(run_id) + 1
        seeds = [seed_source(s) for s in config.search.seeds]
        in_flight: dict[Future, _Pending | _Round] = {}
        # Mutators that call remote models propose in threads, so that evaluation goes on while
        # they wait; finished proposals queue in `ready` until an executor slot is free.
        concurrency = int(getattr(mutator, "concurrency", 1) or 1)
        proposer = ThreadPoolExecutor(concurrency, thread_name_prefix="propose") if concurrency > 1 else None
        proposing: dict[Future, _Pending] = {}
        ready: deque[_Pending] = deque()
        recorded = database.programs(run_id)
        known_fingerprints = {p.fingerprint for p in recorded if p.fingerprint}
        # proposals that were in flight when an earlier controller died: proposed anew first, under
        # their own indexes, so that a run's indexes end up gap-free (0 .. budget - 1)
        unfilled = deque(sorted(set(range(next_index)) - {p.proposal_index for p in recorded}))
        for program in database.unsettled(run_id):   # confirmations an earlier controller did not finish
            self._queue_round(database, program)
        latest = database.latest_validation(run_id)
        self._validated_at = latest["evaluated"] if latest is not None else -10**9
        deadline = time.monotonic() + config.search.time_limit if config.search.time_limit else float("inf")
        previous_handler = signal.signal(signal.SIGINT, self._interrupt)
        self._refresh_state(database, run_id, state, mutator)
        view = self._live_view(state)

        def proposals_in_flight() -> int:
            return sum(isinstance(job, _Pending) for job in in_flight.values())

        migrated_at = state.evaluated

        def migrate_now() -> None:
            """Every `migration_interval` recorded proposals (however they were settled), once per count."""
            nonlocal migrated_at
            if config.search.islands > 1 and state.evaluated % config.search.migration_interval == 0 \
                    and state.evaluated != migrated_at:
                migrated_at = state.evaluated
                fault_point("migration")
                migrate_ring(database, run_id, config.search.islands)

        try:
            with view:
                while True:
                    if self.stop_reason is None and hasattr(mutator, "exhausted"):
                        self.stop_reason = mutator.exhausted()
                    halted = self._stop or time.monotonic() > deadline   # nothing new starts, rounds included
                    outstanding = proposals_in_flight() + len(proposing) + len(ready)
                    stopping = (halted or self.stop_reason is not None
                                or state.evaluated + outstanding >= config.search.budget)
                    # confirmation rounds first: they decide what the search may build on
                    while self._rounds and not halted and len(in_flight) < executor.capacity:
                        job = self._rounds.popleft()
                        in_flight[executor.submit(job.source, job.lab, f"program {job.program_id} round {job.round}",
                                                  skip_fingerprints=())] = job
                    if not stopping and len(in_flight) < executor.capacity:
                        job = self._validation_job(database, run_id, state)
                        if job is not None:
                            in_flight[executor.submit(job.source, job.lab, f"program {job.program_id} validation",
                                                      skip_fingerprints=())] = job
                    # ask for proposals: enough to keep every slot busy, plus the mutator's concurrency
                    while not stopping and outstanding < executor.capacity + (concurrency if proposer else 0):
                        if next_index >= len(seeds) and not state.top and (in_flight or ready or self._rounds):
                            break  # the seeds are still being evaluated: nothing to select parents from
                        if proposer is not None and len(proposing) >= concurrency:
                            break
                        if unfilled:
                            index = unfilled.popleft()
                        else:
                            index, next_index = next_index, next_index + 1
                        if index < len(seeds) or proposer is None:
                            ready.append(self._propose(database, run_id, mutator, seeds, index))
                        else:
                            pending, call = self._sample(database, run_id, mutator, index)
                            proposing[proposer.submit(call)] = pending
                        outstanding += 1
                        stopping = state.evaluated + outstanding >= config.search.budget
                    # settle finished proposals here; evaluate the rest as slots free up
                    while ready and len(in_flight) < executor.capacity:
                        pending = ready.popleft()
                        fault_point("proposal_ready")
                        if self._precheck(database, run_id, pending, state, mutator):
                            migrate_now()
                        else:
                            lab = self.tasks.lab_for(pending.index, 0)
                            future = executor.submit(pending.proposal.source, lab, f"p{pending.index}",
                                                     skip_fingerprints=known_fingerprints)
                            in_flight[future] = pending
                            fault_point("in_flight")
                    if not in_flight and not proposing:
                        if stopping and not ready and (halted or not self._rounds):
                            break
                        continue
                    done, _ = wait(list(in_flight) + list(proposing), timeout=0.5, return_when=FIRST_COMPLETED)
                    for future in done:
                        if future in proposing:
                            pending = proposing.pop(future)
                            try:
                                pending.proposal = future.result()
                            except Exception as exc:  # a mutator bug must not end the run
                                pending.proposal = Proposal("", f"the mutator failed: {exc}", mutator.name,
                                                            failure={"code": "mutator_error",
                                                                     "message": f"{type(exc).__name__}: {exc}"})
                            ready.append(pending)
                            continue
                        job = in_flight.pop(future)
                        if isinstance(job, _Round):
                            self._finish_round(database, run_id, job, future.result(), state)
                            continue
                        pending = job
                        fault_point("result_ready")
                        record = self._record(database, run_id, pending, future.result(), state, mutator)
                        if record.fingerprint:
                            known_fingerprints.add(record.fingerprint)
                        migrate_now()
                    self._refresh_state(database, run_id, state, mutator)
                    view.update(self._render(state))
        finally:
            signal.signal(signal.SIGINT, previous_handler)
            for future in list(in_flight) + list(proposing):
                future.cancel()
            if proposer is not None:
                proposer.shutdown(wait=False, cancel_futures=True)
            executor.close()
        return self._finish(database, run_id, state, mutator)

    def _finish(self, database: ProgramDatabase, run_id: int, state: SearchState, mutator) -> dict[str, Any]:
        """After the loop: the summary, unsettled programs settled, the validation and tests (unless
        interrupted), best_activation.py, the run's status, the report."""
        if hasattr(mutator, "usage"):   # proposals settled without a worker are not in the last refresh
            state.llm = mutator.usage()
        wall = time.monotonic() - state.started
        summary = {"run_id": run_id, "evaluated": state.evaluated, "interrupted": self._stop,
                   "seconds": round(wall, 1),
                   "idle_fraction": round(max(0.0, 1 - state.busy_seconds / (state.capacity * wall)), 4) if wall else 0,
                   "failures": state.failures, "tasks": self.tasks.describe(), "tasks_seconds": self.tasks_seconds,
                   "rounds": database.evaluation_counts(run_id)}
        if self.stop_reason:
            summary["stopped"] = self.stop_reason
        if state.llm:
            summary["llm"] = state.llm
        if not self._stop:   # programs still waiting for rounds keep the estimate they have
            self._settle_all(database, run_id)
        best = database.best(run_id)
        if best is not None:
            write_best_program(self.run_dir / BEST_PROGRAM, best, database)
            summary["best"] = self._best_summary(best)
        if not self._stop:
            from contextlib import nullcontext

            from rich.console import Console

            message = f"validation: the top {self.config.search.heldout_top} and the seeds on the validation tasks; " \
                      "then the winner and the library's references on the test suites"
            with Console(stderr=True).status(message) if self.live else nullcontext():
                final = self.final_check(database, run_id)
            summary.update(final)
            winner = database.get(final["winner"]) if final.get("winner") is not None else None
            if winner is not None:   # the file holds the validation's choice, with its validation and test numbers
                summary["best"] = self._best_summary(winner)
                write_best_program(self.run_dir / BEST_PROGRAM, winner, database,
                                   final["winner_validation_fitness"], final.get("winner_test"))
        database.update_run(run_id, status="interrupted" if self._stop else "finished")
        database.close()
        try:
            from ..report.html import write_report

            fault_point("report")
            summary["report"] = str(write_report(self.run_dir))
        except Exception as exc:  # a convenience: the run's results are saved whatever happens here
            summary["report_error"] = f"{type(exc).__name__}: {exc}"
        return summary

    @staticmethod
    def _best_summary(record: ProgramRecord) -> dict[str, Any]:
        return {"id": record.id, "fitness": record.fitness, "fitness_se": record.fitness_se,
                "source": record.source, "rationale": record.rationale}

    def _build_tasks(self) -> SearchTasks:
        """The run's labs; pools are built (or read from the cache) here, with a progress bar."""
        started = time.monotonic()
        tasks = SearchTasks.from_config(self.config, progress=self.live)
        if tasks.suite_lab is not None:
            tasks.suite_lab.reference  # ReLU, computed here (trusted) once; the workers receive the numbers
        self.tasks_seconds = round(time.monotonic() - started, 1)
        return tasks

    def _interrupt(self, signum, frame) -> None:  # noqa: ANN001 (signal handler signature)
        if self._stop:  # a second Ctrl-C: stop waiting for in-flight work too
            raise KeyboardInterrupt
        self._stop = True

    def _mutator(self, database: ProgramDatabase, run_id: int):
        """The configured mutator, told what the lab scores and, on resume, what it did before."""
        config = self.config
        try:
            mutator = get_mutator(config.mutator.kind, **config.mutator.options)
        except TypeError as exc:   # an option the mutator does not take
            raise ConfigError(f"mutator.options for {config.mutator.kind!r}: {exc}") from None
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if hasattr(mutator, "setup"):
            tasks = self.tasks.split.search.tasks if self.tasks.split is not None else self.tasks.suite_lab.suite.tasks
            mutator.setup(LabContext(families=tuple(sorted({t.family for t in tasks})),
                                     hidden=Protocol().hidden, steps=config.lab.steps or Protocol().steps,
                                     max_flops_per_element=config.probes.max_flops_per_element,
                                     max_source_chars=config.candidate.max_source_chars,
                                     allow_batch_dependent=config.probes.allow_batch_dependent))
        if hasattr(mutator, "restore"):
            programs = database.programs(run_id)
            fitness = {p.id: p.fitness for p in programs}
            children = [(p.model, p.fitness if p.status == "ok" else None,
                         fitness.get(p.parent_ids[0]) if p.parent_ids else None)
                        for p in programs if p.mutator == mutator.name and p.model]
            failures = [Failure(f"{p.failure_stage}:{p.failure_code}", p.failure_message or "")
                        for p in programs if p.status == "failed"]
            mutator.restore(database.llm_calls(run_id), children, failures)
        return mutator

    def _sample(self, database: ProgramDatabase, run_id: int, mutator, index: int):
        """Parent and inspirations for proposal `index` (here, in the database's thread), and the
        mutator call that turns them into a proposal (anywhere)."""
        island = index % self.config.search.islands
        rng = random.Random(stable_seed("proposal", self.config.search.seed, index))
        parent = sample_parent(database, run_id, island, rng, exploitation=self.config.search.exploitation,
                               exploration=self.config.search.exploration)
        inspirations = sample_inspirations(database, run_id, island, parent, self.config.search.inspirations, rng) \
            if parent is not None else []
        parent_ids = ([parent.id] if parent else []) + \
            ([p.id for p in inspirations] if parent and mutator.name != "random" else [])
        pending = _Pending(Proposal("", "", mutator.name), index, parent_ids, island,
                           parent.generation + 1 if parent else 0, time.monotonic(),
                           parent.fitness if parent else None)
        parent_view = parent.to_parent() if parent else None
        views = [p.to_parent() for p in inspirations]
        return pending, lambda: mutator.propose(parent_view, views, rng)

    def _propose(self, database: ProgramDatabase, run_id: int, mutator, seeds: list[str], index: int) -> _Pending:
        """The proposal with this index: a seed first, then the mutator's work on a sampled parent."""
        if index < len(seeds):  # evaluated once, then placed on every island (see _record)
            proposal = Proposal(seeds[index], f"seed: {self.config.search.seeds[index]}", "seed")
            return _Pending(proposal, index, [], 0, 0, time.monotonic())
        pending, call = self._sample(database, run_id, mutator, index)
        try:
            pending.proposal = call()
        except Exception as exc:  # a mutator bug is one failed proposal, not the end of the run
            pending.proposal = Proposal("", f"the mutator failed: {exc}", mutator.name,
                                        failure={"code": "mutator_error", "message": f"{type(exc).__name__}: {exc}"})
        return pending

    def _precheck(self, database: ProgramDatabase, run_id: int, pending: _Pending, state: SearchState,
                  mutator=None) -> bool:
        """Cheap checks here (text and ast only). True when the proposal was settled without a worker."""
        failure = pending.proposal.failure
        if failure is not None:
            if failure.get("code") == "budget":   # no call was made: nothing to record but earlier attempts
                self._record_calls(database, run_id, None, pending.proposal)
                return True
            evaluation = Evaluation(activation=f"p{pending.index}", ok=False)
            evaluation.fail("mutator", failure.get("code", "mutator_error"), failure.get("message", ""))
            self._record(database, run_id, pending, evaluation, state, mutator)
            return True
        try:
            check_source(pending.proposal.source, max_chars=self.config.candidate.max_source_chars)
        except CandidateError as exc:
            evaluation = Evaluation(activation=f"p{pending.index}", ok=False)
            evaluation.fail("policy", exc.code, str(exc))
            self._record(database, run_id, pending, evaluation, state, mutator)
            return True
        original = database.by_source(normalised_source(pending.proposal.source))
        if original is not None:
            self._record_duplicate(database, run_id, pending, original, state)
            return True
        return False

    def _record(self, database: ProgramDatabase, run_id: int, pending: _Pending, evaluation: Evaluation,
                state: SearchState, mutator=None) -> ProgramRecord:
        if mutator is not None and hasattr(mutator, "observe") and pending.proposal.mutator == mutator.name:
            failure = None if evaluation.ok else Failure(f"{evaluation.stage}:{evaluation.error['code']}",
                                                         evaluation.error.get("message") or "")
            mutator.observe(pending.proposal, evaluation.fitness if evaluation.ok else None,
                            pending.parent_fitness, failure)
        fingerprint = evaluation.probes.get("fingerprint")
        if fingerprint and (evaluation.ok or (evaluation.error or {}).get("code") == "duplicate"):
            # a known function (perhaps one that finished while this one was in flight)
            original = database.by_fingerprint(fingerprint, run_id=run_id)
            if original is not None:
                with database.transaction():   # the duplicate and its pooled sample: together
                    duplicate = self._record_duplicate(database, run_id, pending, original, state, evaluation)
                    if evaluation.ok and original.status == "ok" and \
                            self._new_sample(database, original.id, evaluation):
                        self._add_round(database, run_id, original.id, evaluation, "pooled")
                return duplicate
        cell = cell_of(evaluation.probes.get("descriptors", {}), evaluation.probes) if evaluation.ok else None
        record = ProgramRecord.from_evaluation(
            evaluation, pending.proposal, run_id=run_id, proposal_index=pending.index,
            parent_ids=pending.parent_ids, island=pending.island, generation=pending.generation, cell=cell)
        record.source = normalised_source(pending.proposal.source) if evaluation.stage not in ("policy", "mutator") \
            else pending.proposal.source
        if evaluation.ok:
            estimate = self._estimate([t.to_dict() for t in evaluation.tasks])
            record.fitness, record.fitness_se = estimate.mean, estimate.se
            record.score, record.rounds = self.rule.score(estimate), 1
            record.settled = not self.rule.needs_round(estimate, 1, self._bars(database, run_id, record))
        with database.transaction():    # the program, its first round, its LLM calls, a seed's places: together
            record.id = database.add_program(record)
            if evaluation.ok:
                database.add_evaluation(run_id, record.id, 0, "search", evaluation.fitness,
                                        [t.to_dict() for t in evaluation.tasks], evaluation.seconds)
            self._record_calls(database, run_id, record.id, pending.proposal)
            if evaluation.ok and record.settled and pending.proposal.mutator == "seed":
                self._place_seed(database, run_id, record.id)
        if evaluation.ok and not record.settled:
            self._queue_round(database, record)
        state.evaluated += 1
        state.busy_seconds += evaluation.seconds
        if not evaluation.ok:
            key = f"{evaluation.stage}:{evaluation.error['code']}"
            state.failures[key] = state.failures.get(key, 0) + 1
        state.last = f"p{pending.index} {'ok %+.3f' % evaluation.fitness if evaluation.ok else evaluation.error['code']}"
        if pending.proposal.normalisation_changes:   # the model's answer was rewritten to get here
            changes = len(pending.proposal.normalisation_changes)
            state.last += f" (normalised: {changes} change{'s' if changes != 1 else ''})"
        return record

    # -- estimates and confirmation rounds ---------------------------------------------------
    @staticmethod
    def _per_task(tasks: list[dict[str, Any]]) -> dict[str, tuple[str, float]]:
        """Pooled task scores by task: (family, mean log-ratio over the rounds that scored it). A task
        scored again (a fixed suite's rounds, a repeat draw) is one task, so the standard error
        counts tasks, not rounds."""
        scores: dict[str, list[float]] = {}
        families: dict[str, str] = {}
        for task in tasks:
            scores.setdefault(str(task["name"]), []).append(float(task["log_ratio"]))
            families[str(task["name"])] = str(task["family"])
        return {name: (families[name], sum(v) / len(v)) for name, v in scores.items()}

    @classmethod
    def _estimate(cls, tasks: list[dict[str, Any]]) -> Estimate:
        """The fitness estimate of pooled task scores: fitness = −log-ratio, per task."""
        return Estimate.of([-ratio for _, ratio in cls._per_task(tasks).values()])

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
        top = [p for p in database.top(run_id, k + 1) if p.id != record.id][:k]
        if len(top) < k:
            return [-math.inf]
        last = top[-1]
        return [last.score if last.score is not None else last.fitness]

    def _queue_round(self, database: ProgramDatabase, record: ProgramRecord) -> None:
        """Queue the program's next confirmation round (on a fresh sample) unless one is pending."""
        if record.id in self._confirming:
            return
        rounds = database.evaluations(record.id)
        next_round = max((r["round"] for r in rounds), default=-1) + 1
        self._confirming.add(record.id)
        self._rounds.append(_Round(record.id, "confirm", next_round, record.source,
                                   self.tasks.lab_for(record.proposal_index, next_round)))

    def _finish_round(self, database: ProgramDatabase, run_id: int, job: _Round, evaluation: Evaluation,
                      state: SearchState) -> None:
        """A confirmation round or a validation came back: pool it, or record the gap."""
        state.busy_seconds += evaluation.seconds
        if job.kind == "validate":
            self._validating = None
            self._record_validation(database, run_id, job.program_id, evaluation, state)
            return
        self._confirming.discard(job.program_id)
        if not evaluation.ok:   # a round that fails (a lost worker, a time limit) ends the confirmation
            self._settle(database, run_id, job.program_id)
            return
        self._add_round(database, run_id, job.program_id, evaluation, "confirm", job.round)

    def _add_round(self, database: ProgramDatabase, run_id: int, program_id: int, evaluation: Evaluation,
                   kind: str, round: int | None = None) -> None:
        """Pool one more scored sample into the program's estimate; settle it or ask for another round."""
        rounds = database.evaluations(program_id)
        if round is None or any(r["round"] == round for r in rounds):
            round = max((r["round"] for r in rounds), default=-1) + 1
        with database.transaction():
            database.add_evaluation(run_id, program_id, round, kind, evaluation.fitness,
                                    [t.to_dict() for t in evaluation.tasks], evaluation.seconds)
            self._reestimate(database, run_id, program_id)

    def _reestimate(self, database: ProgramDatabase, run_id: int, program_id: int, force_settle: bool = False) -> None:
        record = database.get(program_id)
        rounds = database.evaluations(program_id)
        tasks = [t for r in rounds for t in r["tasks"]]
        estimate = self._estimate(tasks)
        record.fitness, record.fitness_se = estimate.mean, estimate.se   # for the bars' own-id check
        settled = record.settled or force_settle or             not self.rule.needs_round(estimate, len(rounds), self._bars(database, run_id, record))
        families: dict[str, list[float]] = {}
        for family, ratio in self._per_task(tasks).values():
            families.setdefault(family, []).append(ratio)
        database.update_estimate(program_id, fitness=estimate.mean, ood_log_ratio=-estimate.mean,
                                 family_log_ratios={f: sum(v) / len(v) for f, v in sorted(families.items())},
                                 tasks=tasks, fitness_se=estimate.se, score=self.rule.score(estimate),
                                 rounds=len(rounds), settled=settled)
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
            database.migrate(run_id, program_id, island)

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

    def _record_validation(self, database: ProgramDatabase, run_id: int, program_id: int, evaluation: Evaluation,
                           state: SearchState) -> None:
        record = database.get(program_id)
        result = {"families": evaluation.family_log_ratios() if evaluation.ok else {},
                  "search_families": dict(record.family_log_ratios), "error": evaluation.error,
                  "tasks": {t.name: list(t.seed_log_ratios) for t in evaluation.tasks}}
        database.add_validation(run_id, program_id, state.evaluated, record.fitness, record.fitness_se,
                                evaluation.fitness if evaluation.ok else None, result)

    def _record_duplicate(self, database: ProgramDatabase, run_id: int, pending: _Pending, original: ProgramRecord,
                          state: SearchState, evaluation: Evaluation | None = None) -> ProgramRecord:
        """A known function: stored with the original's result and a link to it, not trained again."""
        record = ProgramRecord(
            id=None, run_id=run_id, proposal_index=pending.index, parent_ids=pending.parent_ids,
            island=pending.island, generation=pending.generation, source=pending.proposal.source,
            rationale=pending.proposal.rationale, mutator=pending.proposal.mutator, model=pending.proposal.model,
            status="duplicate", failure_stage=original.failure_stage, failure_code=original.failure_code,
            failure_message=original.failure_message, fitness=original.fitness, ood_log_ratio=original.ood_log_ratio,
            family_log_ratios=original.family_log_ratios, tasks=original.tasks, fingerprint=original.fingerprint,
            descriptors=original.descriptors, probes=original.probes, fitness_se=original.fitness_se,
            score=original.score, rounds=original.rounds,
            timings=evaluation.timings if evaluation else {}, cell=None, duplicate_of=original.id,
            seconds=evaluation.seconds if evaluation else 0.0, created_at=time.time(),
            original_answer=pending.proposal.original_answer,
            normalisation_changes=list(pending.proposal.normalisation_changes))
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
            database.add_llm_call(run_id, call.model, program_id=program_id, prompt_tokens=call.prompt_tokens,
                                  completion_tokens=call.completion_tokens, latency_s=call.latency_s,
                                  cost=call.cost, outcome=call.outcome, error=call.error)

    def _refresh_state(self, database: ProgramDatabase, run_id: int, state: SearchState, mutator=None) -> None:
        state.top = database.top(run_id, 5)
        state.rounds = database.evaluation_counts(run_id)
        state.unsettled = database.unsettled_count(run_id)
        state.gap = database.latest_validation(run_id) or {}
        if mutator is not None and hasattr(mutator, "usage"):
            state.llm = mutator.usage()

    # -- live view -------------------------------------------------------------------------
    def _live_view(self, state: SearchState):
        from contextlib import nullcontext

        from rich.live import Live

        if not self.live:
            class _Quiet(nullcontext):
                def update(self, *_):
                    pass
            return _Quiet()
        return Live(self._render(state), refresh_per_second=2, transient=False)

    def _render(self, state: SearchState):
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        # Text, not markup, and control characters escaped (`terminal_text`): rationales, model names
        # and reason codes are text a model or a worker wrote.
        header = Text(f"evaluated {state.evaluated}/{state.budget}  ·  {state.rate():.2f} evals/s  ·  "
                      f"{state.capacity} workers  ·  last: {terminal_text(state.last, keep_newlines=False)}")
        if state.llm:
            calls = sum(m["calls"] for m in state.llm["models"].values())
            cap = f" of ${state.llm['budget_usd']:g}" if state.llm.get("budget_usd") is not None else ""
            tokens_cap = f" of {state.llm['budget_tokens']:,}" if state.llm.get("budget_tokens") is not None else ""
            header.append(f"\nLLM: {calls} calls  ·  {state.llm['tokens']:,}{tokens_cap} tokens  ·  "
                          f"${state.llm['usd']:.4f}{cap}")
        rounds = state.rounds
        header.append(f"\nrounds: {rounds.get('search', 0)} first, {rounds.get('confirm', 0)} confirmations, "
                      f"{rounds.get('pooled', 0)} pooled  ·  {state.unsettled} waiting for confirmation")
        top = Table(title="top 5 (by score = fitness − z·se)", expand=False)
        for column in ("id", "fitness ± se", "rounds", "mutator", "rationale"):
            top.add_column(column, overflow="ellipsis", no_wrap=True, max_width=70 if column == "rationale" else None)
        for record in state.top:
            top.add_row(str(record.id), f"{record.fitness:+.3f} ± {record.fitness_se or 0:.3f}", str(record.rounds),
                        Text(terminal_text(record.mutator or "", False)),
                        Text(terminal_text(record.rationale or "", keep_newlines=False)))
        failures = Table(title="failures by reason", expand=False)
        failures.add_column("stage:code")
        failures.add_column("count", justify="right")
        for reason, count in sorted(state.failures.items(), key=lambda kv: -kv[1])[:6]:
            failures.add_row(Text(terminal_text(reason, keep_newlines=False)), str(count))
        parts = [header, ProgressBar(total=state.budget, completed=state.evaluated, width=60), top]
        if state.gap:
            parts.append(self._gap_table(state.gap))
        return Group(*parts, failures)

    @staticmethod
    def _gap_table(gap: dict[str, Any]):
        """The best program's search estimate beside its validation score, overall and per family."""
        from rich.table import Table

        table = Table(title=f"generalisation gap: program {gap['program_id']} (validated at {gap['evaluated']})",
                      expand=False)
        for column in ("", "search", "validation", "gap"):
            table.add_column(column, justify="right" if column else "left")

        def number(value: float | None) -> str:
            return "—" if value is None else f"{value:+.3f}"

        search, validation = gap.get("search_fitness"), gap.get("fitness")
        table.add_row("fitness", number(search), number(validation),
                      number(None if search is None or validation is None else search - validation))
        search_families = gap["result"].get("search_families", {})
        for family, log_ratio in sorted(gap["result"].get("families", {}).items()):
            mine = search_families.get(family)
            table.add_row(terminal_text(str(family), False), number(None if mine is None else -mine), number(-log_ratio),
                          number(None if mine is None else log_ratio - mine))
        return table

    # -- the end ---------------------------------------------------------------------------
    REFERENCES = ("relu", "gelu", "gelu_sine", "gelu_sinc_perturbation", "gmtu")

    def final_check(self, database: ProgramDatabase, run_id: int) -> dict[str, Any]:
        """Validation chooses, the tests report: the top programs (by score), the run's seeds and the
        library's references on the validation tasks; the winner is the program with the best score
        under `search.winner_rule` (`lab.estimate.WINNER_RULES`); then the winner and the references on every test suite, with paired intervals of
        the winner against each reference. All rows replace an earlier check's in one transaction."""
        from ..candidate.sandbox import SandboxPool

        tasks = self.tasks
        # the top list, and the seeds (the known functions the search set out to beat): the winner is
        # never a program the validation ranks below a seed of the run
        top = database.top(run_id, self.config.search.heldout_top)
        top += [p for p in database.programs(run_id, status="ok")
                if p.mutator == "seed" and p.settled and p.id not in {t.id for t in top}]
        limits = SandboxLimits(timeout_s=self.config.sandbox.timeout_s, cpu_s=self.config.sandbox.cpu_s,
                               memory_mb=self.config.sandbox.memory_mb)
        validation_rows: list[dict[str, Any]] = []
        test_rows: list[dict[str, Any]] = []
        winner = top[0] if top else None
        chosen_by = "search score"   # unless the validation below scores at least one program
        with SandboxPool(workers=max(1, min(len(top) or 1, self.config.executor.workers or 2)), limits=limits) as pool:
            if tasks.validation is not None and top:
                validation_rows = self._validate_top(database, run_id, top, pool)
                scored = [r for r in validation_rows if r["program_id"] is not None and r["heldout_fitness"] is not None]
                if scored:
                    rule = WINNER_RULES[self.config.search.winner_rule]
                    for row in scored:
                        row["winner_score"] = rule(row["heldout_fitness"], row["families"])
                    # ties (a seed and its duplicate) go to the earlier row: `max` keeps the first
                    chosen = max(scored, key=lambda r: r["winner_score"])
                    winner = next(p for p in top if p.id == chosen["program_id"])
                    chosen_by = "validation"
            for row in validation_rows:
                row["winner"] = winner is not None and row["program_id"] == winner.id
            if winner is not None:
                for name, lab in tasks.tests.items():
                    test_rows += self._test_suite(name, lab, winner, pool)
        comparisons = self._comparisons(test_rows, winner, tasks.unseen_tests()) if winner is not None else []
        rows = validation_rows + test_rows + comparisons
        with database.transaction():   # a resumed run checks again: its rows replace the earlier ones, all at once
            database.clear_heldout(run_id)
            for row in rows:
                fault_point("heldout_write")
                database.add_heldout(run_id, row["name"], row.get("program_id"), row)
        final = {"winner": winner.id if winner is not None else None, "winner_chosen_by": chosen_by,
                 "winner_rule": self.config.search.winner_rule,
                 "validation": validation_rows, "test": test_rows, "comparisons": comparisons}
        (self.run_dir / HELDOUT).write_text(json.dumps(final, indent=2))
        chosen_row = next((r for r in validation_rows if r["winner"]), None)
        final["winner_validation_fitness"] = chosen_row["heldout_fitness"] if chosen_row else None
        final["winner_test"] = {r["suite"]: r["fitness"] for r in test_rows if r["program_id"] is not None}
        final["heldout"] = validation_rows   # the rows `actmine search` prints
        return final

    def _validate_top(self, database: ProgramDatabase, run_id: int, top: list[ProgramRecord],
                      pool) -> list[dict[str, Any]]:
        """Validation rows: references (trusted, here) and the top programs (sandboxed); a program
        already validated during the run on the same tasks is not trained again."""
        from ..activations import get as get_activation

        lab = self.tasks.validation
        rows = []
        for name in self.REFERENCES:
            evaluation = lab.evaluate(get_activation(name), name=name)
            rows.append({"split": "validation", "name": name, "program_id": None, "search_fitness": None,
                         "search_se": None, "heldout_fitness": evaluation.fitness,
                         "families": evaluation.family_log_ratios(), "error": None})
        earlier = {v["program_id"]: v for v in database.validations(run_id) if v["fitness"] is not None}
        futures = [(record, None if record.id in earlier else pool.submit(record.source, lab, f"program {record.id}"))
                   for record in top]
        for record, future in futures:
            row = {"split": "validation", "name": f"program {record.id}", "program_id": record.id,
                   "search_fitness": record.fitness, "search_se": record.fitness_se}
            if future is None:
                row.update(heldout_fitness=earlier[record.id]["fitness"],
                           families=earlier[record.id]["result"].get("families", {}), error=None)
            else:
                evaluation = future.result()
                fault_point("heldout_evaluated")
                row.update(heldout_fitness=evaluation.fitness if evaluation.ok else None, error=evaluation.error,
                           families=evaluation.family_log_ratios())
            rows.append(row)
        return rows

    def _test_suite(self, suite: str, lab: Lab, winner: ProgramRecord, pool) -> list[dict[str, Any]]:
        """The winner (sandboxed) and the references (here) on one test suite, per task and seed."""
        from ..activations import get as get_activation

        def row(name: str, program_id: int | None, evaluation: Evaluation) -> dict[str, Any]:
            return {"split": "test", "suite": suite, "name": name, "program_id": program_id,
                    "fitness": evaluation.fitness if evaluation.ok else None, "error": evaluation.error,
                    "families": evaluation.family_log_ratios(),
                    "tasks": {t.name: list(t.seed_log_ratios) for t in evaluation.tasks}}

        future = pool.submit(winner.source, lab, f"program {winner.id}")
        rows = [row(name, None, lab.evaluate(get_activation(name), name=name)) for name in self.REFERENCES]
        rows.insert(0, row(f"program {winner.id}", winner.id, future.result()))
        fault_point("heldout_evaluated")
        return rows

    @staticmethod
    def _comparisons(test_rows: list[dict[str, Any]], winner: ProgramRecord, unseen: list[str]) -> list[dict[str, Any]]:
        """The winner against each reference, per test suite and over all unseen-generator suites
        together: mean paired log-ratio difference per (task, seed), 95% cluster-bootstrap interval."""
        from ..lab.estimate import paired_interval

        suites = sorted({r["suite"] for r in test_rows})
        groups = [(suite, [suite]) for suite in suites]
        if len(unseen) > 1:
            groups.append(("all unseen", unseen))
        comparisons = []
        for label, members in groups:
            rows = [r for r in test_rows if r["suite"] in members and r["fitness"] is not None]
            mine = {f"{r['suite']}/{t}": v for r in rows if r["program_id"] == winner.id for t, v in r["tasks"].items()}
            if not mine:
                continue
            for reference in Search.REFERENCES:
                theirs = {f"{r['suite']}/{t}": v for r in rows if r["name"] == reference for t, v in r["tasks"].items()}
                if not theirs:
                    continue
                interval = paired_interval(mine, theirs)
                comparisons.append({"split": "comparison", "suite": label, "name": f"program {winner.id} vs {reference}",
                                    "program_id": winner.id, "against": reference, **interval})
        return comparisons


def write_best_program(path: Path, best: ProgramRecord, database: ProgramDatabase,
                       heldout_fitness: float | None = None, test_fitness: dict[str, float | None] | None = None) -> None:
    """Write `best_activation.py`: the best program as a generated program file (data only, see
    `actmine.language.files`) -- its source, scores, origin, rationale and lineage as literals,
    and the call of the checked loader, so `from best_activation import BestActivation` compiles
    the program through the candidate policy and the restricted namespace, never as plain code.
    Written when the search ends, and again for the validation's choice with its validation fitness
    (`heldout_fitness`) and its fitness on each test suite (`test_fitness`)."""
    lineage, record, seen = [], best, set()
    while record is not None and record.id not in seen:
        seen.add(record.id)
        lineage.append({"program_id": record.id, "fitness": record.fitness, "rationale": str(record.rationale or "")})
        record = database.get(record.parent_ids[0]) if record.parent_ids else None
    info = {"program_id": best.id, "search_fitness": best.fitness, "search_se": best.fitness_se,
            "rounds": best.rounds, "heldout_fitness": heldout_fitness, "validation_fitness": heldout_fitness,
            "test_fitness": {str(k): v for k, v in sorted((test_fitness or {}).items())},
            "family_log_ratios": {str(k): v for k, v in sorted((best.family_log_ratios or {}).items())},
            "pointwise": (best.probes or {}).get("pointwise", True) is not False,
            "run_dir": str(path.parent.resolve()), "proposal_index": best.proposal_index,
            "mutator": str(best.mutator or ""), "model": str(best.model or ""),
            "rationale": str(best.rationale or ""), "lineage": lineage}
    fitness = f"{best.fitness:+.4f}" if isinstance(best.fitness, (int, float)) else "n/a"
    # The docstring holds only numbers and fixed text; everything from the database is data.
    doc = (f"The best activation found by an actmine search (program #{int(best.id)}), search fitness {fitness}\n"
           "(= -mean ln(OOD error / ReLU's); higher is better).\n\n"
           "PROGRAMS holds its source, scores, origin, rationale and lineage as data. Use:\n"
           "`from best_activation import BestActivation; act = BestActivation()` (actmine must be installed;\n"
           "the program is checked and compiled by actmine's candidate policy, never run as plain code),\n"
           "or `actmine evaluate best_activation.py`.")
    text = render_program_file([ProgramEntry("best_activation", "BestActivation", str(best.source), info)], doc)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text, encoding="utf-8")
    fault_point("best_program_write")
    temporary.replace(path)
