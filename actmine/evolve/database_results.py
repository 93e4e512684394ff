"""The program database's tables beside the proposals: what the search learns about a program after
it was proposed. Evaluation rounds (`add_evaluation`: round 0 is the proposal's evaluation, later
rounds confirmations or a same-function program pooled in) and the estimate they give
(`update_estimate`, which settles a program into its island's grid), the current best's
validations over the run, the LLM calls, and the end-of-run held-out rows.

A base class of `ProgramDatabase` (which holds the connection, `transaction` and the program rows
these methods read); every write is one transaction, as there.
"""

from __future__ import annotations

import json
import time
from typing import Any, Sequence

from .program_records import ProgramRecord, _dumps, _finite_or_none


class ResultTables:
    """`ProgramDatabase`'s evaluations, estimates, validations, LLM calls and held-out rows."""

    def add_evaluation(
        self,
        run_id: int,
        program_id: int,
        round: int,
        kind: str,
        fitness: float,
        tasks: Sequence[dict[str, Any]],
        seconds: float = 0.0,
        created_at: float | None = None,
    ) -> None:
        """One scored round of a program (`kind`: search, confirm or pooled); its per-task scores."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO evaluations (run_id, program_id, round, kind, fitness, tasks, seconds, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    program_id,
                    int(round),
                    kind,
                    _finite_or_none(fitness, "fitness"),
                    _dumps(list(tasks)),
                    float(seconds),
                    time.time() if created_at is None else created_at,
                ),
            )

    def evaluations(self, program_id: int) -> list[dict[str, Any]]:
        """A program's scored rounds in round order: {round, kind, fitness, tasks, seconds, created_at}."""
        rows = self._conn.execute(
            "SELECT round, kind, fitness, tasks, seconds, created_at FROM evaluations "
            "WHERE program_id = ? ORDER BY round",
            (program_id,),
        ).fetchall()
        return [
            {"round": r, "kind": k, "fitness": f, "tasks": json.loads(t), "seconds": s, "created_at": c}
            for r, k, f, t, s, c in rows
        ]

    def evaluation_counts(self, run_id: int) -> dict[str, int]:
        """How many rounds the run scored, by kind."""
        rows = self._conn.execute(
            "SELECT kind, COUNT(*) FROM evaluations WHERE run_id = ? GROUP BY kind", (run_id,)
        ).fetchall()
        return {kind: int(n) for kind, n in rows}

    def update_estimate(
        self,
        program_id: int,
        *,
        fitness: float,
        ood_log_ratio: float,
        family_log_ratios: dict[str, float],
        tasks: Sequence[dict[str, Any]],
        fitness_se: float,
        score: float,
        rounds: int,
        settled: bool,
    ) -> None:
        """A program's pooled estimate after a new round; a settled program is offered to its island's
        grid (and every grid entry it holds takes its new score). One transaction."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE programs SET fitness = ?, ood_log_ratio = ?, family_log_ratios = ?, tasks = ?, "
                "fitness_se = ?, score = ?, rounds = ?, settled = ? WHERE id = ?",
                (
                    _finite_or_none(fitness, "fitness"),
                    _finite_or_none(ood_log_ratio, "ood_log_ratio"),
                    _dumps(family_log_ratios),
                    _dumps(list(tasks)),
                    _finite_or_none(fitness_se, "fitness_se"),
                    _finite_or_none(score, "score"),
                    int(rounds),
                    int(bool(settled)),
                    program_id,
                ),
            )
            conn.execute("UPDATE elites SET fitness = ? WHERE program_id = ?", (score, program_id))
            record = self.get(program_id)
            if settled and record is not None and record.status == "ok" and record.cell is not None:
                self._offer_elite(record.run_id, record.island, record.cell, program_id, score)

    def unsettled_count(self, run_id: int) -> int:
        return int(
            self._conn.execute(
                "SELECT COUNT(*) FROM programs WHERE run_id = ? AND status = 'ok' AND settled = 0", (run_id,)
            ).fetchone()[0]
        )

    def unsettled(self, run_id: int) -> list[ProgramRecord]:
        """Ok programs still waiting for confirmation rounds, in insertion order."""
        return self._records(
            f"{self._SELECT} WHERE run_id = ? AND status = 'ok' AND settled = 0 ORDER BY id", (run_id,)
        )

    def add_validation(
        self,
        run_id: int,
        program_id: int,
        evaluated: int,
        search_fitness: float | None,
        search_se: float | None,
        fitness: float | None,
        result: dict[str, Any],
        created_at: float | None = None,
    ) -> None:
        """The validation score of the run's best program at the time `evaluated` proposals were recorded."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO validations (run_id, program_id, evaluated, search_fitness, search_se, fitness, "
                "result, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    program_id,
                    int(evaluated),
                    _finite_or_none(search_fitness, "search_fitness"),
                    _finite_or_none(search_se, "search_se"),
                    _finite_or_none(fitness, "fitness"),
                    _dumps(result),
                    time.time() if created_at is None else created_at,
                ),
            )

    def latest_validation(self, run_id: int) -> dict[str, Any] | None:
        """The run's newest row of `validations`, or None."""
        found = self.validations(run_id, latest=True)
        return found[0] if found else None

    def validations(self, run_id: int, latest: bool = False) -> list[dict[str, Any]]:
        """The run's validations of its best program over time: {program_id, evaluated, search_fitness,
        search_se, fitness, result, created_at}, oldest first."""
        rows = self._conn.execute(
            "SELECT program_id, evaluated, search_fitness, search_se, fitness, result, "
            "created_at FROM validations WHERE run_id = ? ORDER BY id" + (" DESC LIMIT 1" if latest else ""),
            (run_id,),
        ).fetchall()
        return [
            {
                "program_id": p,
                "evaluated": e,
                "search_fitness": sf,
                "search_se": se,
                "fitness": f,
                "result": json.loads(r),
                "created_at": c,
            }
            for p, e, sf, se, f, r, c in rows
        ]

    # ---- LLM calls and held-out results --------------------------------------------------------

    def add_llm_call(
        self,
        run_id: int,
        model: str | None,
        *,
        program_id: int | None = None,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        latency_s: float = 0.0,
        cost: float = 0.0,
        outcome: str = "ok",
        error: str | None = None,
        created_at: float | None = None,
    ) -> int:
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO llm_calls (run_id, program_id, model, prompt_tokens, completion_tokens, latency_s, cost, "
                "outcome, error, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    program_id,
                    model,
                    int(prompt_tokens),
                    int(completion_tokens),
                    float(latency_s),
                    float(cost),
                    outcome,
                    error,
                    time.time() if created_at is None else created_at,
                ),
            )
            return int(cursor.lastrowid)

    def llm_calls(self, run_id: int) -> list[dict[str, Any]]:
        cursor = self._conn.execute(
            "SELECT id, run_id, program_id, model, prompt_tokens, completion_tokens, latency_s, "
            "cost, outcome, error, created_at FROM llm_calls WHERE run_id = ? ORDER BY id",
            (run_id,),
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    def add_heldout(
        self, run_id: int, name: str, program_id: int | None, result: dict[str, Any], created_at: float | None = None
    ) -> None:
        """One held-out result (`program_id` None for a reference such as relu); `result` is JSON."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO heldout (run_id, name, program_id, result, created_at) VALUES (?, ?, ?, ?, ?)",
                (run_id, name, program_id, _dumps(result), time.time() if created_at is None else created_at),
            )

    def clear_heldout(self, run_id: int) -> None:
        """Remove the run's held-out results (before a new check writes its own; one transaction)."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM heldout WHERE run_id = ?", (run_id,))

    def heldout(self, run_id: int) -> list[dict[str, Any]]:
        """The run's held-out results in insertion order: {name, program_id, result, created_at}."""
        rows = self._conn.execute(
            "SELECT name, program_id, result, created_at FROM heldout WHERE run_id = ? ORDER BY rowid", (run_id,)
        ).fetchall()
        return [
            {"name": name, "program_id": program_id, "result": json.loads(result), "created_at": created_at}
            for name, program_id, result, created_at in rows
        ]
