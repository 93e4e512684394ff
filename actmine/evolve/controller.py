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

import random
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import torch
import yaml

from ..atomic_files import write_text_atomically
from ..candidate.source import CandidateError, check_source
from ..config import Config, ConfigError
from ..executors import make_executor
from ..faults import fault_point
from ..lab.fitness import Evaluation
from ..lab.tasks import stable_seed
from ..run_files import BEST_PROGRAM, CONFIG_SNAPSHOT, DATABASE  # noqa: F401  (were defined here: re-exported)
from ..stop_signals import handling_stop_signals
from ..version import __version__
from ..yaml_text import UnreadableFile, load_yaml_file, yaml_error_text
from .confirmation import ConfirmationRule
from .database import ProgramDatabase, ProgramRecord
from .final_check import HELDOUT, REFERENCES, FinalCheck, write_best_program  # noqa: F401  (re-exported)
from .live_view import SearchState, live_view, render
from .mutators import Failure, LabContext, Proposal, get_mutator
from .recording import RecordPrograms, _Pending
from .rounds import _Round
from .runlock import RunLock
from .search_tasks import SearchTasks
from .seeds import seed_source
from .selection import migrate_ring, sample_inspirations, sample_parent


@dataclass
class _Loop:
    """The moving parts of one `Search._run`: the executor and the mutator, the work in flight
    (evaluations and rounds; proposals in mutator threads) and what waits for a slot."""

    executor: Any
    mutator: Any
    state: SearchState
    seeds: list[str]  # the seeds' sources: proposals 0 .. len(seeds) - 1
    next_index: int
    unfilled: deque[int]  # indexes an earlier controller left in flight: proposed anew first
    known_fingerprints: set[str]
    deadline: float
    concurrency: int
    proposer: ThreadPoolExecutor | None
    migrated_at: int
    in_flight: dict[Future, _Pending | _Round] = field(default_factory=dict)
    proposing: dict[Future, _Pending] = field(default_factory=dict)
    ready: deque[_Pending] = field(default_factory=deque)

    def proposals_in_flight(self) -> int:
        return sum(isinstance(job, _Pending) for job in self.in_flight.values())

    def free_slot(self) -> bool:
        return len(self.in_flight) < self.executor.capacity


class Search(RecordPrograms):
    """One search run in `run_dir`, created or resumed. Configuration only until `run()`."""

    def __init__(self, config: Config, run_dir: str | Path, live: bool = True, log: TextIO | None = None):
        self.config = config
        self.run_dir = Path(run_dir)
        self.live = live  # the rich live view on the terminal
        self.log = None if live else log  # else plain progress lines on this stream (a log file, a pipe)
        self._stop = False
        self._in_loop = False  # a stop signal in the loop lets work in flight finish; elsewhere it stops at once
        self.stop_signal: int | None = None  # the signal that stopped the search (SIGINT, SIGTERM, SIGHUP)
        self.stop_reason: str | None = None  # set when the mutator can propose no more (LLM budget)
        self.rule = ConfirmationRule.from_config(config)
        self.tasks: SearchTasks | None = None  # built by run()
        self._rounds: deque[_Round] = deque()  # confirmation rounds waiting for a slot
        self._confirming: set[int] = set()  # programs with a round queued or in flight
        self._validating: int | None = None  # the program whose validation is in flight
        self._validated_at = -(10**9)  # state.evaluated when the last validation was submitted

    # -- set-up ----------------------------------------------------------------------------
    def _open(self) -> tuple[ProgramDatabase, int]:
        """Open (or create) the run; refuse a resume whose config changed where it may not."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        snapshot = self.run_dir / CONFIG_SNAPSHOT
        database = ProgramDatabase(self.run_dir / DATABASE)
        run = database.latest_run()
        if run is not None:
            previous = self._previous_config(database, snapshot, run)
            conflicts = self.config.resume_conflicts(previous)
            if conflicts:
                database.close()
                raise ConfigError(
                    f"{self.run_dir} holds a run with a different configuration ({', '.join(conflicts)}); "
                    f"only {', '.join(Config.RESUMABLE_CHANGES)} may change on resume. Use a new --run-dir, "
                    "or the run's own config.yaml"
                )
            run_id = run["id"]
            database.update_run(run_id, config=self.config.to_dict(), status="running")
        else:
            versions = {"actmine": __version__, "torch": torch.__version__}
            run_id = database.create_run(self.config.to_dict(), self.config.search.seed, versions)
        write_text_atomically(snapshot, yaml.safe_dump(self.config.to_dict(), sort_keys=False))
        return database, run_id

    @staticmethod
    def _previous_config(database: ProgramDatabase, snapshot: Path, run: dict) -> Config:
        """The config the run was made with: its config.yaml, else the one the database recorded.
        A config.yaml that cannot be read is refused by name (it may have been edited by hand)."""
        try:
            data = load_yaml_file(snapshot) if snapshot.exists() else run["config"]
        except (UnreadableFile, yaml.YAMLError) as exc:
            database.close()
            reason = yaml_error_text(exc) if isinstance(exc, yaml.YAMLError) else exc
            raise ConfigError(
                f"{snapshot}, the run's own config, cannot be used: {reason}. Repair it, or remove it to "
                "resume with the config recorded in the run's database"
            ) from None
        try:
            return Config.from_dict(data, source=str(snapshot))
        except ConfigError:
            database.close()
            raise

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Run the search to its budget (or time limit, Ctrl-C, the mutator's end) and return the
        summary. The run directory's lock (`RunLock`) is taken first, before the lab is built or the
        database opened, and held until the report is written: a second controller on the
        directory fails at once with `RunLocked` instead of writing the same database."""
        with RunLock(self.run_dir), handling_stop_signals(self._interrupt):
            return self._run()

    def _run(self) -> dict[str, Any]:
        # The controller shares the machine with its workers; one thread also keeps the
        # mutators' in-process screening fast (torch's thread pool costs more than it saves here).
        torch.set_num_threads(1)
        database, run_id = self._open()
        try:
            return self._search(database, run_id)
        except KeyboardInterrupt:  # a second Ctrl-C, or a stop signal outside the loop
            database.close()
            self._mark_interrupted(run_id)
            raise

    def _search(self, database: ProgramDatabase, run_id: int) -> dict[str, Any]:
        self.tasks = self._build_tasks()
        mutator = self._mutator(database, run_id)
        loop = self._start_loop(database, run_id, mutator)
        self._refresh_state(database, run_id, loop.state, mutator)
        view = self._live_view(loop.state)
        try:
            self._in_loop = True
            with view:
                while self._step(database, run_id, loop, view):
                    pass
        finally:
            mutator.stop()
            for future in list(loop.in_flight) + list(loop.proposing):
                future.cancel()
            if loop.proposer is not None:
                loop.proposer.shutdown(wait=False, cancel_futures=True)
            loop.executor.close()
            self._in_loop = False  # a first signal while the workers close still lets them close
        return self._finish(database, run_id, loop.state, mutator)

    def _start_loop(self, database: ProgramDatabase, run_id: int, mutator) -> _Loop:
        """The executor, the proposal thread pool and the counters, as a resumed run left them."""
        config = self.config
        seeds = [
            seed_source(s) for s in config.search.initial_programs
        ]  # before the executor: a bad seed starts nothing
        executor = make_executor(
            config.executor.kind, config.executor.workers, config.sandbox_limits(), config.executor.scheduler
        )
        state = SearchState(budget=config.search.budget, capacity=executor.capacity)
        state.evaluated = database.proposal_count(run_id)
        next_index = database.max_proposal_index(run_id) + 1
        # Mutators that call remote models propose in threads, so that evaluation goes on while
        # they wait; finished proposals queue in `ready` until an executor slot is free.
        concurrency = int(mutator.concurrency or 1)
        proposer = ThreadPoolExecutor(concurrency, thread_name_prefix="propose") if concurrency > 1 else None
        recorded = database.programs(run_id)
        # proposals that were in flight when an earlier controller died: proposed anew first, under
        # their own indexes, so that a run's indexes end up gap-free (0 .. budget - 1)
        unfilled = deque(sorted(set(range(next_index)) - {p.proposal_index for p in recorded}))
        for program in database.unsettled(run_id):  # confirmations an earlier controller did not finish
            self._queue_round(database, program)
        latest = database.latest_validation(run_id)
        self._validated_at = latest["evaluated"] if latest is not None else -(10**9)
        deadline = time.monotonic() + config.search.time_limit if config.search.time_limit else float("inf")
        return _Loop(
            executor,
            mutator,
            state,
            seeds,
            next_index,
            unfilled,
            {p.fingerprint for p in recorded if p.fingerprint},
            deadline,
            concurrency,
            proposer,
            migrated_at=state.evaluated,
        )

    def _step(self, database: ProgramDatabase, run_id: int, loop: _Loop, view) -> bool:
        """One pass of the loop: fill the free slots, wait (at most 0.5 s) for work to finish, record it.
        False when the run is over: stopping, and nothing left in flight or queued."""
        if self.stop_reason is None:
            self.stop_reason = loop.mutator.exhausted()
        halted = self._stop or time.monotonic() > loop.deadline  # nothing new starts, rounds included
        if halted:
            loop.mutator.stop()  # proposals waiting on a model give up instead of holding the stop
        stopping = self._fill_slots(database, run_id, loop, halted)
        if not loop.in_flight and not loop.proposing:
            return not (stopping and not loop.ready and (halted or not self._rounds))
        done, _ = wait(list(loop.in_flight) + list(loop.proposing), timeout=0.5, return_when=FIRST_COMPLETED)
        for future in done:
            self._collect(database, run_id, loop, future)
        self._refresh_state(database, run_id, loop.state, loop.mutator)
        view.update(self._render(loop.state))
        return True

    def _fill_slots(self, database: ProgramDatabase, run_id: int, loop: _Loop, halted: bool) -> bool:
        """Submit work while executor slots are free: confirmation rounds first (they decide what the
        search may build on), then a validation of a new best, then proposals. Returns whether the
        run is stopping (halted, the mutator is done, or the budget is spoken for)."""
        outstanding = loop.proposals_in_flight() + len(loop.proposing) + len(loop.ready)
        stopping = (
            halted or self.stop_reason is not None or loop.state.evaluated + outstanding >= self.config.search.budget
        )
        while self._rounds and not halted and loop.free_slot():
            job = self._rounds.popleft()
            loop.in_flight[
                loop.executor.submit(
                    job.source, job.lab, f"program {job.program_id} round {job.round}", skip_fingerprints=()
                )
            ] = job
        if not stopping and loop.free_slot():
            job = self._validation_job(database, run_id, loop.state)
            if job is not None:
                loop.in_flight[
                    loop.executor.submit(
                        job.source, job.lab, f"program {job.program_id} validation", skip_fingerprints=()
                    )
                ] = job
        stopping = self._ask_for_proposals(database, run_id, loop, stopping, outstanding)
        self._submit_ready(database, run_id, loop)
        return stopping

    def _ask_for_proposals(
        self, database: ProgramDatabase, run_id: int, loop: _Loop, stopping: bool, outstanding: int
    ) -> bool:
        """Enough proposals to keep every slot busy, plus the mutator's concurrency (seeds and
        in-process mutators propose here; remote ones in the proposal threads)."""
        extra = loop.concurrency if loop.proposer else 0
        while not stopping and outstanding < loop.executor.capacity + extra:
            if (
                loop.next_index >= len(loop.seeds)
                and not loop.state.top
                and (loop.in_flight or loop.ready or self._rounds)
            ):
                break  # the seeds are still being evaluated: nothing to select parents from
            if loop.proposer is not None and len(loop.proposing) >= loop.concurrency:
                break
            if loop.unfilled:
                index = loop.unfilled.popleft()
            else:
                index, loop.next_index = loop.next_index, loop.next_index + 1
            if index < len(loop.seeds) or loop.proposer is None:
                loop.ready.append(self._propose(database, run_id, loop.mutator, loop.seeds, index))
            else:
                pending, call = self._sample(database, run_id, loop.mutator, index)
                loop.proposing[loop.proposer.submit(call)] = pending
            outstanding += 1
            stopping = loop.state.evaluated + outstanding >= self.config.search.budget
        return stopping

    def _submit_ready(self, database: ProgramDatabase, run_id: int, loop: _Loop) -> None:
        """Settle finished proposals here (cheap checks); evaluate the rest as slots free up."""
        while loop.ready and loop.free_slot():
            pending = loop.ready.popleft()
            fault_point("proposal_ready")
            if self._precheck(database, run_id, pending, loop.state, loop.mutator):
                self._migrate_now(database, run_id, loop)
            else:
                lab = self.tasks.lab_for(pending.index, 0)
                future = loop.executor.submit(
                    pending.proposal.source, lab, f"p{pending.index}", skip_fingerprints=loop.known_fingerprints
                )
                loop.in_flight[future] = pending
                fault_point("in_flight")

    def _collect(self, database: ProgramDatabase, run_id: int, loop: _Loop, future: Future) -> None:
        """Record one finished future: a proposal from a mutator thread, a round, or an evaluation."""
        if future in loop.proposing:
            pending = loop.proposing.pop(future)
            try:
                pending.proposal = future.result()
            except Exception as exc:  # a mutator bug must not end the run
                pending.proposal = Proposal(
                    "",
                    f"the mutator failed: {exc}",
                    loop.mutator.name,
                    failure={"code": "mutator_error", "message": f"{type(exc).__name__}: {exc}"},
                )
            loop.ready.append(pending)
            return
        job = loop.in_flight.pop(future)
        if isinstance(job, _Round):
            self._finish_round(database, run_id, job, future.result(), loop.state)
            return
        fault_point("result_ready")
        record = self._record(database, run_id, job, future.result(), loop.state, loop.mutator)
        if record.fingerprint:
            loop.known_fingerprints.add(record.fingerprint)
        self._migrate_now(database, run_id, loop)

    def _migrate_now(self, database: ProgramDatabase, run_id: int, loop: _Loop) -> None:
        """Every `migration_interval` recorded proposals (however they were settled), once per count."""
        config = self.config
        if (
            config.search.islands > 1
            and loop.state.evaluated % config.search.migration_interval == 0
            and loop.state.evaluated != loop.migrated_at
        ):
            loop.migrated_at = loop.state.evaluated
            fault_point("migration")
            migrate_ring(database, run_id, config.search.islands)

    def _finish(self, database: ProgramDatabase, run_id: int, state: SearchState, mutator) -> dict[str, Any]:
        """After the loop: the summary, unsettled programs settled, the validation and tests (unless
        interrupted), best_activation.py, the run's status, the report."""
        state.llm = mutator.usage()  # proposals settled without a worker are not in the last refresh
        wall = time.monotonic() - state.started
        summary = {
            "run_id": run_id,
            "evaluated": state.evaluated,
            "interrupted": self._stop,
            "seconds": round(wall, 1),
            "idle_fraction": round(max(0.0, 1 - state.busy_seconds / (state.capacity * wall)), 4) if wall else 0,
            "failures": state.failures,
            "tasks": self.tasks.describe(),
            "tasks_seconds": self.tasks_seconds,
            "rounds": database.evaluation_counts(run_id),
        }
        if self.stop_reason:
            summary["stopped"] = self.stop_reason
        if state.llm:
            summary["llm"] = state.llm
        if not self._stop:  # programs still waiting for rounds keep the estimate they have
            self._settle_all(database, run_id)
        best = database.best(run_id)
        if best is not None:
            write_best_program(self.run_dir / BEST_PROGRAM, best, database)
            summary["best"] = self._best_summary(best)
        if not self._stop:
            from contextlib import nullcontext

            from rich.console import Console

            message = (
                f"validation: the top {self.config.search.heldout_top} and the seeds on the validation tasks; "
                "then the winner and the library's references on the test suites"
            )
            self._tell_log(f"{message} …")  # what the spinner says
            with Console(stderr=True).status(message) if self.live else nullcontext():
                final = self.final_check(database, run_id)
            summary.update(final)
            winner = database.get(final["winner"]) if final.get("winner") is not None else None
            if winner is not None:  # the file holds the validation's choice, with its validation and test numbers
                summary["best"] = self._best_summary(winner)
                write_best_program(
                    self.run_dir / BEST_PROGRAM,
                    winner,
                    database,
                    final["winner_validation_fitness"],
                    final.get("winner_test"),
                )
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
        return {
            "id": record.id,
            "fitness": record.fitness,
            "fitness_se": record.fitness_se,
            "source": record.source,
            "rationale": record.rationale,
        }

    def _build_tasks(self) -> SearchTasks:
        """The run's labs; pools are built (or read from the cache) here, with a progress bar."""
        self._tell_log("preparing the search's tasks (a first run on a machine builds its pools) …")  # the bar's job
        started = time.monotonic()
        tasks = SearchTasks.from_config(self.config, progress=self.live)
        if tasks.suite_lab is not None:
            tasks.suite_lab.reference  # ReLU, computed here (trusted) once; the workers receive the numbers
        self.tasks_seconds = round(time.monotonic() - started, 1)
        return tasks

    def _interrupt(self, signum, frame) -> None:  # noqa: ANN001 (signal handler signature)
        """Ctrl-C, SIGTERM or SIGHUP. In the loop the first one stops new work and lets what is in
        flight finish (the run ends "interrupted", with its files); a second one, or one while the
        tasks are prepared or the final check or report runs, stops at once (KeyboardInterrupt)."""
        self.stop_signal = signum
        if self._stop or not self._in_loop:
            raise KeyboardInterrupt
        self._stop = True

    def _mark_interrupted(self, run_id: int) -> None:
        """A run that a signal stopped before its end is "interrupted", not "running" (a finished
        run whose report was being written stays finished). Best effort: the signal wins."""
        try:
            with ProgramDatabase(self.run_dir / DATABASE) as database:
                if database.get_run(run_id).status == "running":
                    database.update_run(run_id, status="interrupted")
        except Exception:
            pass

    def _mutator(self, database: ProgramDatabase, run_id: int):
        """The configured mutator, told what the lab scores and, on resume, what it did before."""
        config = self.config
        try:
            mutator = get_mutator(config.mutator.kind, **config.mutator.options)
        except TypeError as exc:  # an option the mutator does not take
            raise ConfigError(f"mutator.options for {config.mutator.kind!r}: {exc}") from None
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        tasks = self.tasks.split.search.tasks if self.tasks.split is not None else self.tasks.suite_lab.suite.tasks
        mutator.setup(
            LabContext(
                families=tuple(sorted({t.family for t in tasks})),
                hidden=config.lab.hidden,
                steps=config.lab.steps,
                max_flops_per_element=config.probes.max_flops_per_element,
                max_source_chars=config.candidate.max_source_chars,
                allow_batch_dependent=config.probes.allow_batch_dependent,
            )
        )
        programs = database.programs(run_id)
        fitness = {p.id: p.fitness for p in programs}
        children = [
            (p.model, p.fitness if p.status == "ok" else None, fitness.get(p.parent_ids[0]) if p.parent_ids else None)
            for p in programs
            if p.mutator == mutator.name and p.model
        ]
        failures = [
            Failure(f"{p.failure_stage}:{p.failure_code}", p.failure_message or "")
            for p in programs
            if p.status == "failed"
        ]
        mutator.restore(database.llm_calls(run_id), children, failures)
        return mutator

    def _sample(self, database: ProgramDatabase, run_id: int, mutator, index: int):
        """Parent and inspirations for proposal `index` (here, in the database's thread), and the
        mutator call that turns them into a proposal (anywhere)."""
        island = index % self.config.search.islands
        rng = random.Random(stable_seed("proposal", self.config.search.seed, index))
        parent = sample_parent(
            database,
            run_id,
            island,
            rng,
            exploitation=self.config.search.exploitation,
            exploration=self.config.search.exploration,
        )
        inspirations = (
            sample_inspirations(database, run_id, island, parent, self.config.search.inspirations, rng)
            if parent is not None
            else []
        )
        parent_ids = ([parent.id] if parent else []) + (
            [p.id for p in inspirations] if parent and mutator.uses_inspirations else []
        )
        pending = _Pending(
            Proposal("", "", mutator.name),
            index,
            parent_ids,
            island,
            parent.generation + 1 if parent else 0,
            time.monotonic(),
            parent.fitness if parent else None,
        )
        parent_view = parent.to_parent() if parent else None
        views = [p.to_parent() for p in inspirations]
        return pending, lambda: mutator.propose(parent_view, views, rng)

    def _propose(self, database: ProgramDatabase, run_id: int, mutator, seeds: list[str], index: int) -> _Pending:
        """The proposal with this index: a seed first, then the mutator's work on a sampled parent."""
        if index < len(seeds):  # evaluated once, then placed on every island (see _record)
            proposal = Proposal(seeds[index], f"seed: {self.config.search.initial_programs[index]}", "seed")
            return _Pending(proposal, index, [], 0, 0, time.monotonic())
        pending, call = self._sample(database, run_id, mutator, index)
        try:
            pending.proposal = call()
        except Exception as exc:  # a mutator bug is one failed proposal, not the end of the run
            pending.proposal = Proposal(
                "",
                f"the mutator failed: {exc}",
                mutator.name,
                failure={"code": "mutator_error", "message": f"{type(exc).__name__}: {exc}"},
            )
        return pending

    def _precheck(
        self, database: ProgramDatabase, run_id: int, pending: _Pending, state: SearchState, mutator=None
    ) -> bool:
        """Cheap checks here (text and ast only). True when the proposal was settled without a worker."""
        failure = pending.proposal.failure
        if failure is not None:
            if failure.get("code") in ("budget", "stopped"):  # no program: nothing to record but its calls
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
        original = database.by_source(pending.proposal.source)  # by_source normalises
        if original is not None:
            self._record_duplicate(database, run_id, pending, original, state)
            return True
        return False

    def _refresh_state(self, database: ProgramDatabase, run_id: int, state: SearchState, mutator=None) -> None:
        state.top = database.top(run_id, 5)
        state.rounds = database.evaluation_counts(run_id)
        state.unsettled = database.unsettled_count(run_id)
        state.gap = database.latest_validation(run_id) or {}
        if mutator is not None:
            state.llm = mutator.usage()

    # -- live view -------------------------------------------------------------------------
    def _tell_log(self, line: str) -> None:
        """A phase's start on the plain-lines log (none when live or quiet)."""
        if self.log is not None:
            print(line, file=self.log, flush=True)

    def _live_view(self, state: SearchState):
        return live_view(state, self.live, self.log)

    _render = staticmethod(render)

    # -- the end ---------------------------------------------------------------------------
    REFERENCES = REFERENCES

    def final_check(self, database: ProgramDatabase, run_id: int) -> dict[str, Any]:
        """Validation chooses, the tests report (`final_check.FinalCheck`)."""
        return FinalCheck(self.config, self.tasks, self.run_dir).run(database, run_id)
