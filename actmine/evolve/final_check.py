"""The end of a run: validation chooses the winner, the test suites report on it.

`FinalCheck.run` scores the run's top list, its seeds and the library's reference activations on
the validation tasks, picks the choice under `search.winner_rule`, blends it with GELU into the
winner (`blend.py`), then scores the winner and the references on every test suite with paired
intervals (docs/lab.md, "The end: validation chooses, the tests report"). `write_best_program`
writes `best_activation.py` for the winner. Candidates train only in sandboxed workers; the
references are library code and train here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..atomic_files import write_text_atomically
from ..config import Config
from ..faults import fault_point
from ..lab.estimate import WINNER_RULES
from ..lab.fitness import Evaluation, Lab
from ..language.files import ProgramEntry, render_program_file
from ..run_files import HELDOUT
from ..language.program import ProgramError
from .blend import aligned_signs, blend_source, partner_name
from .confirmation import ConfirmationRule
from .database import BLEND_MUTATOR, ProgramDatabase, ProgramRecord
from .mutators import Proposal
from .program_records import normalise_source
from .rounds import pooled_estimate
from .search_tasks import SearchTasks
from .seeds import SEED_EXPRESSIONS, program

#: The library's activations every run is compared with, on the validation and the test tasks.
REFERENCES = ("relu", "gelu", "gelu_sine", "gelu_sinc_perturbation", "gmtu")


class FinalCheck:
    """The validation and test scoring of one finished run (`run`), written to its database and
    `heldout.json`."""

    def __init__(self, config: Config, tasks: SearchTasks, run_dir: Path):
        self.config, self.tasks, self.run_dir = config, tasks, Path(run_dir)

    def run(self, database: ProgramDatabase, run_id: int) -> dict[str, Any]:
        """Validation chooses, the tests report: the top programs (by score), the run's seeds and the
        library's references on the validation tasks; the choice is the program with the best score
        under `search.winner_rule` (`lab.estimate.WINNER_RULES`), and the winner that choice blended
        with `search.blend_reference` (`_blend`; pools mode, `search.winner_blend` > 0); then the
        winner and the references on every test suite, with paired intervals of the winner against
        each reference. All rows replace an earlier check's in one transaction."""
        from ..candidate.sandbox import SandboxPool

        tasks = self.tasks
        # the top list, and the seeds (the known functions the search set out to beat): the winner is
        # never a program the validation ranks below a seed of the run
        k, ok = self.config.search.heldout_top, database.programs(run_id, status="ok")
        # `top` leaves out the blends of an earlier check (a resumed run): the choice is blended anew
        top = database.top(run_id, k)
        top += [p for p in ok if p.mutator == "seed" and p.settled and p.id not in {t.id for t in top}]
        limits = self.config.sandbox_limits()
        validation_rows: list[dict[str, Any]] = []
        test_rows: list[dict[str, Any]] = []
        blend: dict[str, Any] | None = None  # what became of the blend of the validation's choice
        winner = top[0] if top else None
        chosen_by = "search score"  # unless the validation below scores at least one program
        with SandboxPool(workers=max(1, min(len(top) or 1, self.config.executor.workers or 2)), limits=limits) as pool:
            if tasks.validation is not None and top:
                validation_rows = self._validate_top(database, run_id, top, pool)
                scored = [
                    r for r in validation_rows if r["program_id"] is not None and r["heldout_fitness"] is not None
                ]
                if scored:
                    rule = WINNER_RULES[self.config.search.winner_rule]
                    known = reference_families(validation_rows)  # for a rule that compares with them
                    for row in scored:
                        row["winner_score"] = rule(row["heldout_fitness"], row["families"], known)
                    # ties (a seed and its duplicate) go to the earlier row: `max` keeps the first
                    chosen = max(scored, key=lambda r: r["winner_score"])
                    winner = next(p for p in top if p.id == chosen["program_id"])
                    chosen_by = "validation"
                    if self.config.search.winner_blend > 0 and tasks.mode == "pools":
                        blended, row, blend = self._blend(database, run_id, winner, pool)
                        if blended is not None:
                            row["winner_score"] = rule(row["heldout_fitness"], row["families"], known)
                            validation_rows.append(row)
                            winner = blended  # still the validation's choice, shrunk (`blend` says so)
            for row in validation_rows:
                row["winner"] = winner is not None and row["program_id"] == winner.id
            if winner is not None:
                for name, lab in tasks.tests.items():
                    test_rows += self._test_suite(name, lab, winner, pool)
        comparisons = self._comparisons(test_rows, winner, tasks.unseen_tests()) if winner is not None else []
        rows = validation_rows + test_rows + comparisons
        with database.transaction():  # a resumed run checks again: its rows replace the earlier ones, all at once
            database.clear_heldout(run_id)
            for row in rows:
                fault_point("heldout_write")
                database.add_heldout(run_id, row["name"], row.get("program_id"), row)
        final = {
            "winner": winner.id if winner is not None else None,
            "winner_chosen_by": chosen_by,
            "winner_rule": self.config.search.winner_rule,
            "blend": blend,
            "validation": validation_rows,
            "test": test_rows,
            "comparisons": comparisons,
        }
        write_text_atomically(self.run_dir / HELDOUT, json.dumps(final, indent=2))  # the viewer may be reading it
        chosen_row = next((r for r in validation_rows if r["winner"]), None)
        final["winner_validation_fitness"] = chosen_row["heldout_fitness"] if chosen_row else None
        final["winner_test"] = {r["suite"]: r["fitness"] for r in test_rows if r["program_id"] is not None}
        final["heldout"] = validation_rows  # the rows `actmine search` prints
        return final

    def _validate_top(
        self, database: ProgramDatabase, run_id: int, top: list[ProgramRecord], pool
    ) -> list[dict[str, Any]]:
        """Validation rows: references and the top programs, all in the pool at once; a program
        already validated during the run on the same tasks is not trained again."""
        lab = self.tasks.validation
        references = _submit_references(pool, lab)
        earlier = {v["program_id"]: v for v in database.validations(run_id) if v["fitness"] is not None}
        futures = [
            (record, None if record.id in earlier else pool.submit(record.source, lab, f"program {record.id}"))
            for record in top
        ]
        rows = []
        for name, future in references.items():
            evaluation = future.result()
            rows.append(
                {
                    "split": "validation",
                    "name": name,
                    "program_id": None,
                    "search_fitness": None,
                    "search_se": None,
                    "heldout_fitness": evaluation.fitness if evaluation.ok else None,
                    "families": evaluation.family_log_ratios(),
                    "error": evaluation.error,
                }
            )
        for record, future in futures:
            if future is None:
                rows.append(
                    _program_row(
                        record, earlier[record.id]["fitness"], earlier[record.id]["result"].get("families", {}), None
                    )
                )
            else:
                evaluation = future.result()
                fault_point("heldout_evaluated")
                fitness = evaluation.fitness if evaluation.ok else None
                rows.append(_program_row(record, fitness, evaluation.family_log_ratios(), evaluation.error))
        return rows

    def _blend(
        self, database: ProgramDatabase, run_id: int, chosen: ProgramRecord, pool
    ) -> tuple[ProgramRecord | None, dict[str, Any] | None, dict[str, Any]]:
        """The validation's choice blended with `search.blend_reference` (`blend.blend_source`), recorded
        as a program of the run: mutator "blend", parent the choice, its search estimate over the rounds a
        confirmed program gets (fresh samples, the next proposal index) and its validation row. It enters
        no grid and no top list. Returns the blend's record and validation row (None, None when it cannot
        be written or was refused: the choice stays the winner) and what happened, for heldout.json. A
        resumed run's check finds the blend it recorded and validates it again."""
        search = self.config.search
        reference, weight = search.blend_reference, search.winner_blend
        signs = aligned_signs((chosen.probes or {}).get("curve"), reference)
        blend = {
            "reference": reference,
            "partner": partner_name(reference, signs),  # the reference aligned with the choice
            "weight": weight,
            "chosen": chosen.id,
            "program_id": None,
            "error": None,
        }
        if normalise_source(chosen.source) == normalise_source(program(SEED_EXPRESSIONS[reference])):
            blend["error"] = f"the validation chose {reference} itself"
            return None, None, blend
        try:
            source = normalise_source(blend_source(chosen.source, reference, weight, signs))
        except ProgramError as exc:
            blend["error"] = f"the choice cannot be blended: {exc}"
            return None, None, blend
        record = database.by_source(source, run_id)
        validation = pool.submit(source, self.tasks.validation, f"blend of program {chosen.id}")
        if record is None:
            record = self._record_blend(database, run_id, chosen, source, blend["partner"], pool)
        evaluation = validation.result()
        blend["program_id"] = record.id
        if record.status != "ok" or not evaluation.ok:
            failure = record.failure_message if record.status != "ok" else (evaluation.error or {}).get("message")
            blend["error"] = f"the blend was refused: {failure}"
            return None, None, blend
        return record, _program_row(record, evaluation.fitness, evaluation.family_log_ratios(), None), blend

    def _record_blend(
        self, database: ProgramDatabase, run_id: int, chosen: ProgramRecord, source: str, partner: str, pool
    ) -> ProgramRecord:
        """Score the blend on 1 + `tasks.confirm_rounds` search rounds and write it with them."""
        search = self.config.search
        index = database.max_proposal_index(run_id) + 1
        labs = [self.tasks.lab_for(index, r) for r in range(1 + self.config.tasks.confirm_rounds)]
        rounds = [pool.submit(source, lab, f"blend of program {chosen.id} round {r}") for r, lab in enumerate(labs)]
        evaluations = [future.result() for future in rounds]
        failed = next((e for e in evaluations if not e.ok), None)
        rationale = (
            f"the validation's choice, program {chosen.id}, blended with {partner}: "
            f"{1 - search.winner_blend:g}·#{chosen.id} + {search.winner_blend:g}·{partner} "
            "(shrinkage against the winner's curse)"
        )
        record = ProgramRecord.from_evaluation(
            failed or evaluations[0],
            Proposal(source, rationale, BLEND_MUTATOR),
            run_id=run_id,
            proposal_index=index,
            parent_ids=[chosen.id],
            island=chosen.island,
            generation=chosen.generation + 1,
        )
        record.cell = None  # never an elite: not a parent, not a candidate of a later check
        per_round = [[t.to_dict() for t in e.tasks] for e in evaluations]
        if failed is None:
            estimate, fields = pooled_estimate(self.config, self.tasks, [t for tasks in per_round for t in tasks])
            for name, value in fields.items():
                setattr(record, name, value)
            record.score = ConfirmationRule.from_config(self.config).score(estimate)
            record.rounds, record.settled = len(evaluations), True
        with database.transaction():  # the program and its rounds, together
            database.add_program(record)
            if failed is None:
                for r, (evaluation, tasks) in enumerate(zip(evaluations, per_round)):
                    kind = "search" if r == 0 else "confirm"
                    database.add_evaluation(run_id, record.id, r, kind, evaluation.fitness, tasks, evaluation.seconds)
        return record

    def _test_suite(self, suite: str, lab: Lab, winner: ProgramRecord, pool) -> list[dict[str, Any]]:
        """The winner and the references on one test suite (all in the pool at once), per task and seed."""

        def row(name: str, program_id: int | None, evaluation: Evaluation) -> dict[str, Any]:
            return {
                "split": "test",
                "suite": suite,
                "name": name,
                "program_id": program_id,
                "fitness": evaluation.fitness if evaluation.ok else None,
                "error": evaluation.error,
                "families": evaluation.family_log_ratios(),
                "tasks": {t.name: list(t.seed_log_ratios) for t in evaluation.tasks},
            }

        future = pool.submit(winner.source, lab, f"program {winner.id}")
        references = _submit_references(pool, lab)
        rows = [row(f"program {winner.id}", winner.id, future.result())]
        rows += [row(name, None, reference.result()) for name, reference in references.items()]
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
            for reference in REFERENCES:
                theirs = {f"{r['suite']}/{t}": v for r in rows if r["name"] == reference for t, v in r["tasks"].items()}
                if not theirs:
                    continue
                interval = paired_interval(mine, theirs)
                comparisons.append(
                    {
                        "split": "comparison",
                        "suite": label,
                        "name": f"program {winner.id} vs {reference}",
                        "program_id": winner.id,
                        "against": reference,
                        **interval,
                    }
                )
        return comparisons


def _program_row(
    record: ProgramRecord, fitness: float | None, families: dict[str, float], error: dict | None
) -> dict[str, Any]:
    """A program's validation row: its search estimate beside its validation fitness and families."""
    return {
        "split": "validation",
        "name": f"program {record.id}",
        "program_id": record.id,
        "search_fitness": record.fitness,
        "search_se": record.fitness_se,
        "heldout_fitness": fitness,
        "families": families,
        "error": error,
    }


def reference_families(validation_rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """{reference: its per-family validation log-ratios} of the validation rows (a run's or its
    heldout.json's) that are the library's references (no program id), where they were scored."""
    return {
        r["name"]: r["families"]
        for r in validation_rows
        if r.get("program_id") is None and r.get("heldout_fitness") is not None and r.get("families")
    }


def _submit_references(pool, lab: Lab) -> dict[str, Any]:
    """The references as programs (their source forms, `seeds.SEED_EXPRESSIONS`) submitted to the
    pool: they train beside the top programs, with fused kernels where those apply, instead of one
    after another in this process while the workers wait."""
    return {name: pool.submit(program(SEED_EXPRESSIONS[name]), lab, name) for name in REFERENCES}


def write_best_program(
    path: Path,
    best: ProgramRecord,
    database: ProgramDatabase,
    heldout_fitness: float | None = None,
    test_fitness: dict[str, float | None] | None = None,
) -> None:
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
    info = {
        "program_id": best.id,
        "search_fitness": best.fitness,
        "search_se": best.fitness_se,
        "rounds": best.rounds,
        "heldout_fitness": heldout_fitness,
        "validation_fitness": heldout_fitness,
        "test_fitness": {str(k): v for k, v in sorted((test_fitness or {}).items())},
        "family_log_ratios": {str(k): v for k, v in sorted((best.family_log_ratios or {}).items())},
        "pointwise": (best.probes or {}).get("pointwise", True) is not False,
        "run_dir": str(path.parent.resolve()),
        "proposal_index": best.proposal_index,
        "mutator": str(best.mutator or ""),
        "model": str(best.model or ""),
        "rationale": str(best.rationale or ""),
        "lineage": lineage,
    }
    fitness = f"{best.fitness:+.4f}" if isinstance(best.fitness, (int, float)) else "n/a"
    # The docstring holds only numbers and fixed text; everything from the database is data.
    doc = (
        f"The best activation found by an actmine search (program #{int(best.id)}), search fitness {fitness}\n"
        "(the search's estimate under tasks.objective, by default -mean ln(OOD error / ReLU's); higher is better).\n\n"
        "PROGRAMS holds its source, scores, origin, rationale and lineage as data. Use:\n"
        "`from best_activation import BestActivation; act = BestActivation()` (actmine must be installed;\n"
        "the program is checked and compiled by actmine's candidate policy, never run as plain code),\n"
        "or `actmine evaluate best_activation.py`."
    )
    text = render_program_file([ProgramEntry("best_activation", "BestActivation", str(best.source), info)], doc)
    write_text_atomically(path, text, before_replace=lambda: fault_point("best_program_write"))
