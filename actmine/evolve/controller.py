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

from .. import __version__
from ..candidate.probes import ProbeBudget
from ..candidate.sandbox import SandboxLimits
from ..candidate.source import CandidateError, check_source
from ..config import Config, ConfigError
from ..executors import make_executor
from ..faults import fault_point
from ..lab.ensemble import Protocol
from ..lab.fitness import Evaluation, Lab
from ..lab.tasks import stable_seed
from ..language.files import ProgramEntry, render_program_file
from ..terminal import terminal_text
from .database import ProgramDatabase, ProgramRecord
from .mutators import Failure, LabContext, Proposal, get_mutator
from .runlock import RunLock
from .selection import cell_of, migrate_ring, sample_inspirations, sample_parent
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


def build_lab(config: Config, suite: str | None = None) -> Lab:
    """The search's lab, or (with `suite`) another suite under the same protocol and budgets. The
    `lab.seeds` override applies to the search suite only: a held-out suite keeps its own seeds."""
    return Lab(suite or config.lab.suite, protocol=Protocol(steps=config.lab.steps),
               seeds=config.lab.seeds if suite is None else None,
               budget=ProbeBudget(max_flops_per_element=config.probes.max_flops_per_element,
                                  max_saved_bytes_per_element=config.probes.max_saved_bytes_per_element,
                                  allow_batch_dependent=config.probes.allow_batch_dependent),
               max_source_chars=config.candidate.max_source_chars)


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
        lab = build_lab(config)
        lab.reference  # ReLU, computed here (trusted) once; the workers receive the numbers
        mutator = self._mutator(database, run_id)
        limits = SandboxLimits(timeout_s=config.sandbox.timeout_s, cpu_s=config.sandbox.cpu_s,
                               memory_mb=config.sandbox.memory_mb,
                               max_tasks_per_worker=config.sandbox.max_tasks_per_worker)
        executor = make_executor(config.executor.kind, config.executor.workers, limits, config.executor.scheduler)
        state = SearchState(budget=config.search.budget, capacity=executor.capacity)
        state.evaluated = database.count(run_id)
        next_index = database.max_proposal_index(run_id) + 1
        seeds = [seed_source(s) for s in config.search.seeds]
        in_flight: dict[Future, _Pending] = {}
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
        deadline = time.monotonic() + config.search.time_limit if config.search.time_limit else float("inf")
        previous_handler = signal.signal(signal.SIGINT, self._interrupt)
        self._refresh_state(database, run_id, state, mutator)
        view = self._live_view(state)
        try:
            with view:
                while True:
                    if self.stop_reason is None and hasattr(mutator, "exhausted"):
                        self.stop_reason = mutator.exhausted()
                    outstanding = len(in_flight) + len(proposing) + len(ready)
                    stopping = (self._stop or self.stop_reason is not None or time.monotonic() > deadline
                                or state.evaluated + outstanding >= config.search.budget)
                    # ask for proposals: enough to keep every slot busy, plus the mutator's concurrency
                    while not stopping and outstanding < executor.capacity + (concurrency if proposer else 0):
                        if next_index >= len(seeds) and not state.top and (in_flight or ready):
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
                        if not self._precheck(database, run_id, pending, state, mutator):
                            future = executor.submit(pending.proposal.source, lab, f"p{pending.index}",
                                                     skip_fingerprints=known_fingerprints)
                            in_flight[future] = pending
                            fault_point("in_flight")
                    if not in_flight and not proposing:
                        if stopping and not ready:
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
                        pending = in_flight.pop(future)
                        fault_point("result_ready")
                        record = self._record(database, run_id, pending, future.result(), state, mutator)
                        if record.fingerprint:
                            known_fingerprints.add(record.fingerprint)
                        if state.evaluated % config.search.migration_interval == 0 and config.search.islands > 1:
                            fault_point("migration")
                            migrate_ring(database, run_id, config.search.islands)
                    self._refresh_state(database, run_id, state, mutator)
                    view.update(self._render(state))
        finally:
            signal.signal(signal.SIGINT, previous_handler)
            for future in list(in_flight) + list(proposing):
                future.cancel()
            if proposer is not None:
                proposer.shutdown(wait=False, cancel_futures=True)
            executor.close()
        if hasattr(mutator, "usage"):   # proposals settled without a worker are not in the last refresh
            state.llm = mutator.usage()
        wall = time.monotonic() - state.started
        summary = {"run_id": run_id, "evaluated": state.evaluated, "interrupted": self._stop,
                   "seconds": round(wall, 1),
                   "idle_fraction": round(max(0.0, 1 - state.busy_seconds / (state.capacity * wall)), 4) if wall else 0,
                   "failures": state.failures}
        if self.stop_reason:
            summary["stopped"] = self.stop_reason
        if state.llm:
            summary["llm"] = state.llm
        best = database.best(run_id)
        if best is not None:
            write_best_program(self.run_dir / BEST_PROGRAM, best, database)
            summary["best"] = {"id": best.id, "fitness": best.fitness, "source": best.source,
                               "rationale": best.rationale}
        if not self._stop:
            from contextlib import nullcontext

            from rich.console import Console

            message = f"held-out check: the top {self.config.search.heldout_top} and the library's references on " \
                      f"{self.config.lab.heldout_suite}"
            with Console().status(message) if self.live else nullcontext():
                summary["heldout"] = self.heldout_check(database, run_id)
            checked = next((row for row in summary["heldout"] if best is not None and row["program_id"] == best.id), None)
            if checked is not None:   # the file now says how the winner did on the held-out suite too
                write_best_program(self.run_dir / BEST_PROGRAM, best, database, checked["heldout_fitness"])
        database.update_run(run_id, status="interrupted" if self._stop else "finished")
        database.close()
        try:
            from ..report.html import write_report

            fault_point("report")
            summary["report"] = str(write_report(self.run_dir))
        except Exception as exc:  # a convenience: the run's results are saved whatever happens here
            summary["report_error"] = f"{type(exc).__name__}: {exc}"
        return summary

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
            suite = build_lab(config).suite
            mutator.setup(LabContext(families=tuple(sorted({t.family for t in suite.tasks})),
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
                return self._record_duplicate(database, run_id, pending, original, state, evaluation)
        cell = cell_of(evaluation.probes.get("descriptors", {}), evaluation.probes) if evaluation.ok else None
        record = ProgramRecord.from_evaluation(
            evaluation, pending.proposal, run_id=run_id, proposal_index=pending.index,
            parent_ids=pending.parent_ids, island=pending.island, generation=pending.generation, cell=cell)
        record.source = normalised_source(pending.proposal.source) if evaluation.stage not in ("policy", "mutator") \
            else pending.proposal.source
        with database.transaction():    # the program, the LLM calls that wrote it, a seed's places: together
            record.id = database.add_program(record)
            self._record_calls(database, run_id, record.id, pending.proposal)
            if evaluation.ok and pending.proposal.mutator == "seed":
                for island in range(1, self.config.search.islands):
                    database.migrate(run_id, record.id, island)
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
            descriptors=original.descriptors, probes=original.probes,
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
        top = Table(title="top 5", expand=False)
        for column in ("id", "fitness", "mutator", "rationale"):
            top.add_column(column, overflow="ellipsis", no_wrap=True, max_width=70 if column == "rationale" else None)
        for record in state.top:
            top.add_row(str(record.id), f"{record.fitness:+.3f}", Text(terminal_text(record.mutator or "", False)),
                        Text(terminal_text(record.rationale or "", keep_newlines=False)))
        failures = Table(title="failures by reason", expand=False)
        failures.add_column("stage:code")
        failures.add_column("count", justify="right")
        for reason, count in sorted(state.failures.items(), key=lambda kv: -kv[1])[:6]:
            failures.add_row(Text(terminal_text(reason, keep_newlines=False)), str(count))
        return Group(header, ProgressBar(total=state.budget, completed=state.evaluated, width=60), top, failures)

    # -- the end ---------------------------------------------------------------------------
    def heldout_check(self, database: ProgramDatabase, run_id: int) -> list[dict[str, Any]]:
        """Re-score the top programs and the library's references on the held-out suite."""
        from ..activations import get as get_activation
        from ..candidate.sandbox import SandboxPool

        heldout = build_lab(self.config, self.config.lab.heldout_suite)
        rows = []
        for name in ("relu", "gelu", "gelu_sine", "gelu_sinc_perturbation", "gmtu"):
            evaluation = heldout.evaluate(get_activation(name), name=name)
            rows.append({"name": name, "program_id": None, "search_fitness": None,
                         "heldout_fitness": evaluation.fitness})
        top = database.top(run_id, self.config.search.heldout_top)
        limits = SandboxLimits(timeout_s=self.config.sandbox.timeout_s, cpu_s=self.config.sandbox.cpu_s,
                               memory_mb=self.config.sandbox.memory_mb)
        with SandboxPool(workers=min(len(top), self.config.executor.workers or 2) or 1, limits=limits) as pool:
            futures = [(record, pool.submit(record.source, heldout, f"program {record.id}")) for record in top]
            for record, future in futures:
                evaluation = future.result()
                fault_point("heldout_evaluated")
                rows.append({"name": f"program {record.id}", "program_id": record.id,
                             "search_fitness": record.fitness,
                             "heldout_fitness": evaluation.fitness if evaluation.ok else None,
                             "error": evaluation.error})
        with database.transaction():   # a resumed run checks again: its rows replace the earlier ones, all at once
            database.clear_heldout(run_id)
            for row in rows:
                fault_point("heldout_write")
                database.add_heldout(run_id, row["name"], row["program_id"], row)
        (self.run_dir / HELDOUT).write_text(json.dumps(rows, indent=2))
        return rows


def write_best_program(path: Path, best: ProgramRecord, database: ProgramDatabase,
                       heldout_fitness: float | None = None) -> None:
    """Write `best_activation.py`: the best program as a generated program file (data only, see
    `actmine.language.files`) -- its source, scores, origin, rationale and lineage as literals,
    and the call of the checked loader, so `from best_activation import BestActivation` compiles
    the program through the candidate policy and the restricted namespace, never as plain code.
    Written when the search ends, and again with `heldout_fitness` once the held-out check has scored it."""
    lineage, record, seen = [], best, set()
    while record is not None and record.id not in seen:
        seen.add(record.id)
        lineage.append({"program_id": record.id, "fitness": record.fitness, "rationale": str(record.rationale or "")})
        record = database.get(record.parent_ids[0]) if record.parent_ids else None
    info = {"program_id": best.id, "search_fitness": best.fitness, "heldout_fitness": heldout_fitness,
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
