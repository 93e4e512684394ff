"""Crash-stress machinery: kill `actmine search` at a moment, resume, check the run's invariants.

Shared by tests/test_crash_stress.py (a few cycles, in `make test`) and benchmarks/crash_stress.py
(many random ones). A cycle starts the real command as a subprocess; the moment it dies at is
either a named fault point (`ACTMINE_FAULT=POINT:N`, see actmine/faults.py: the controller
SIGKILLs itself there), a random pass of any point (`random:SEED:P`), or an external SIGKILL of
the controller after a delay. Whatever it left is then checked against what the previous cycle
left (`Checker.check`), straight from the SQLite file with the standard library's sqlite3, so the
checker shares no code with what it checks.

The invariants (issue 16):
- the database passes `PRAGMA integrity_check` (and `foreign_key_check`); there is one run;
- proposal indexes are unique; the only gaps below the last one are proposals that were in flight
  when the controller died (at most `max_gaps` of them), and a finished run has none;
- nothing that was recorded is lost or changed (id, index, source, status, fitness, failure,
  duplicate link, cell, parents), and nothing is recorded twice;
- every `llm_calls` row belongs to a program of the run or has no program (spent without one),
  and no recorded call is lost or changed;
- a program's identity (index, source, status, cell, lineage, ...) never changes; its estimate may
  (confirmation rounds), and rows of rounds (`evaluations`) are never lost or changed;
- every elite is a recorded, settled ok program of the run, in its own cell, at its own score; a
  settled ok seed sits on every island (its cell there holds it or something with a higher score);
- a program's plain mean log-ratio is its rounds' pooled mean (and so is its fitness, where the
  objective is that mean and no control variate applies);
- held-out rows: one per name, split and suite (a resumed run replaces its check, never adds a second);
- finished: as many programs as the budget (and at most one blend of the winner, pools mode),
  status finished, and best_activation.py, heldout.json and report.html written.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search_runs import SMALL_POOLS, run_cli, write_tiny_config

PROGRAM_FIELDS = (
    "proposal_index",
    "source",
    "status",
    "failure_stage",
    "failure_code",
    "duplicate_of",
    "cell",
    "parent_ids",
    "island",
    "mutator",
)
#: positions in a PROGRAM_FIELDS row
STATUS, CELL, MUTATOR = 2, 6, 9


def stress_config(directory: Path, *, budget: int, llm_base_url: str | None = None, pools: bool = False) -> Path:
    """The tiny search config of tests/search_runs.py with a cheap end (one held-out task, the top
    program only: every resume of a finished run checks again), 10 training steps, 2 islands and a
    migration every 3 evaluations; with `llm_base_url`, the LLM mutator on that server (its key in
    ACTMINE_TEST_KEY, 2 calls at once) and two seeds. `pools`: the pools mode of the default config
    instead of a fixed suite (`SMALL_POOLS`: task samples per round, GELU's control variate, a
    validation pool, a test suite)."""
    search: dict[str, Any] = {"budget": budget, "migration_interval": 3, "heldout_top": 1}
    sections: dict[str, Any] = {"search": search, "lab": {"steps": 10}}
    if pools:
        search["initial_programs"] = SMALL_POOLS["search"]["initial_programs"]
        sections["lab"] = dict(SMALL_POOLS["lab"])  # 20 steps: fewer, and no drawn task is learnable
        sections["tasks"] = SMALL_POOLS["tasks"]
    if llm_base_url is not None:
        search["initial_programs"] = ["gelu", "relu"]
        sections["mutator"] = {
            "kind": "llm",
            "options": {
                "models": [
                    {
                        "name": "scripted-model",
                        "base_url": llm_base_url,
                        "api_key_env": "ACTMINE_TEST_KEY",
                        "price_in": 3.0,
                        "price_out": 15.0,
                        "max_tokens": 400,
                    }
                ],
                "concurrency": 2,
                "backoff_s": 0.01,
            },
        }
    path = write_tiny_config(directory, **sections)
    (directory / "heldout.yaml").write_text(
        "name: tiny-heldout\nseeds: [7]\ntasks: [{family: polynomial, dim: 1, seed: 9}]\n"
    )
    return path


def llm_script(length: int) -> list[Any]:
    """Answers for tests/chat_server.py: a different program each time (so every cycle has real
    evaluations to kill), with an answer without code, a rate limit and a syntax error among them."""
    script: list[Any] = []
    for i in range(length):
        if i % 7 == 1:
            script.append("No idea, sorry.")
        elif i % 7 == 2:
            script.append({"status": 429, "retry_after": 0})
        elif i % 7 == 5:
            script.append("```python\ndef activation_function(x):\n    return torch.relu(x) +\n```")
        else:
            script.append(
                f"Gate {i}.\n```python\ndef activation_function(x):\n"
                f"    return x * torch.sigmoid({1 + i / 64} * x)\n```"
            )
    return script


@dataclass
class Snapshot:
    """What a run directory's database holds, as plain rows."""

    programs: dict[int, tuple] = field(default_factory=dict)  # id -> PROGRAM_FIELDS
    estimates: dict[int, tuple] = field(default_factory=dict)  # id -> (fitness, score, settled, ood_log_ratio)
    rounds: dict[tuple, tuple] = field(default_factory=dict)  # (program_id, round) -> (kind, tasks)
    llm_calls: dict[int, tuple] = field(default_factory=dict)  # id -> (program_id, model, tokens, cost, outcome)
    elites: list[tuple] = field(default_factory=list)  # (island, cell, program_id, fitness)
    heldout: list[tuple] = field(default_factory=list)  # (split, suite, name, program_id)
    runs: list[tuple] = field(default_factory=list)  # (id, status, config)
    problems: list[str] = field(default_factory=list)  # integrity / foreign-key findings


def read_snapshot(run_dir: Path) -> Snapshot:
    """The run directory's database as rows (empty when there is no file or no schema yet: a kill
    during the first migration leaves a file without tables, which the next open creates)."""
    path = run_dir / "programs.sqlite"
    snap = Snapshot()
    if not path.exists():
        return snap
    # read-only: the checker must not change what the next cycle resumes from
    connection = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=30)
    try:
        integrity = [row[0] for row in connection.execute("PRAGMA integrity_check").fetchall()]
        if integrity != ["ok"]:
            snap.problems.append(f"integrity_check: {integrity[:5]}")
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "programs" not in tables:
            return snap
        bad_keys = connection.execute("PRAGMA foreign_key_check").fetchall()
        if bad_keys:
            snap.problems.append(f"foreign_key_check: {bad_keys[:5]}")
        snap.runs = connection.execute("SELECT id, status, config FROM runs ORDER BY id").fetchall()
        for row in connection.execute(f"SELECT id, {', '.join(PROGRAM_FIELDS)} FROM programs ORDER BY id"):
            snap.programs[row[0]] = tuple(row[1:])
        for program_id, fitness, score, settled, ood_log_ratio in connection.execute(
            "SELECT id, fitness, COALESCE(score, fitness), settled, ood_log_ratio FROM programs WHERE status = 'ok'"
        ):
            snap.estimates[program_id] = (fitness, score, bool(settled), ood_log_ratio)
        if "evaluations" in tables:
            for program_id, number, kind, tasks in connection.execute(
                "SELECT program_id, round, kind, tasks FROM evaluations ORDER BY id"
            ):
                snap.rounds[program_id, number] = (kind, tasks)
        for row in connection.execute(
            "SELECT id, program_id, model, prompt_tokens, completion_tokens, cost, outcome FROM llm_calls ORDER BY id"
        ):
            snap.llm_calls[row[0]] = tuple(row[1:])
        snap.elites = connection.execute(
            "SELECT island, cell, program_id, fitness FROM elites ORDER BY island, cell"
        ).fetchall()
        snap.heldout = connection.execute(
            "SELECT json_extract(result, '$.split'), json_extract(result, '$.suite'), name, program_id "
            "FROM heldout ORDER BY rowid"
        ).fetchall()
    finally:
        connection.close()
    return snap


def snapshot_violations(snap: Snapshot, previous: Snapshot, *, islands: int, max_gaps: int) -> list[str]:
    """The invariants that hold after any cycle, given what the previous cycle left."""
    found = list(snap.problems)
    if len(snap.runs) > 1:
        found.append(f"{len(snap.runs)} runs in one run directory (a resume must continue the run)")
    indexes = [row[0] for row in snap.programs.values()]
    if len(indexes) != len(set(indexes)):
        repeated = sorted(i for i in set(indexes) if indexes.count(i) > 1)
        found.append(f"proposal indexes recorded twice: {repeated}")
    gaps = sorted(set(range(max(indexes) + 1)) - set(indexes)) if indexes else []
    if len(gaps) > max_gaps:
        found.append(
            f"{len(gaps)} proposal indexes missing below the last one ({gaps[:10]}), more than the "
            f"{max_gaps} that can be in flight"
        )
    for program_id, row in previous.programs.items():
        if snap.programs.get(program_id) != row:
            found.append(
                f"program {program_id} (index {row[0]}) lost or changed: {row!r} -> {snap.programs.get(program_id)!r}"
            )
    for call_id, row in previous.llm_calls.items():
        if snap.llm_calls.get(call_id) != row:
            found.append(f"llm call {call_id} lost or changed: {row!r} -> {snap.llm_calls.get(call_id)!r}")
    for call_id, row in snap.llm_calls.items():
        if row[0] is not None and row[0] not in snap.programs:
            found.append(f"llm call {call_id} belongs to program {row[0]}, which is not recorded")
    for key, row in previous.rounds.items():
        if snap.rounds.get(key) != row:
            found.append(f"round {key[1]} of program {key[0]} lost or changed")
    ok = {pid: row for pid, row in snap.programs.items() if row[STATUS] == "ok"}
    plain_fitness = _fitness_is_the_plain_mean(snap)
    for program_id in ok:
        per_task: dict[str, list[float]] = {}  # a task scored in several rounds counts once, at its mean
        for (pid, _), (_, text) in snap.rounds.items():
            if pid == program_id:
                for task in json.loads(text):
                    per_task.setdefault(task["name"], []).append(-task["log_ratio"])
        fitness, _, _, ood_log_ratio = snap.estimates[program_id]
        pooled = sum(sum(v) / len(v) for v in per_task.values()) / len(per_task) if per_task else None
        if pooled is None or ood_log_ratio is None:
            found.append(f"ok program {program_id} has no recorded round or no log-ratio")
        elif abs(-ood_log_ratio - pooled) > 1e-9:  # the plain mean, in every mode
            found.append(f"ok program {program_id} says log-ratio {ood_log_ratio}, its rounds pool to {-pooled}")
        elif plain_fitness and abs(fitness - pooled) > 1e-9:
            found.append(f"ok program {program_id} says fitness {fitness}, its rounds pool to {pooled}")
    for island, cell, program_id, score in snap.elites:
        row = ok.get(program_id)
        if row is None or not snap.estimates[program_id][2]:
            found.append(f"elite of island {island} cell {cell} is program {program_id}, not a settled ok program")
        elif row[CELL] != cell or snap.estimates[program_id][1] != score:
            found.append(
                f"elite of island {island} cell {cell} says score {score}, program {program_id} is "
                f"in cell {row[CELL]} at {snap.estimates[program_id][1]}"
            )
    grid = {(island, cell): score for island, cell, _, score in snap.elites}
    for program_id, row in ok.items():
        score, settled = snap.estimates[program_id][1:3]
        if row[MUTATOR] == "seed" and settled:
            for island in range(islands):
                held = grid.get((island, row[CELL]))
                if held is None or held < score:
                    found.append(
                        f"settled seed program {program_id} is not on island {island} (cell {row[CELL]} "
                        f"holds {'nothing' if held is None else held})"
                    )
    keys = [row[:3] for row in snap.heldout]  # a name once per split (validation, test) and suite
    if len(keys) != len(set(keys)):
        found.append(f"held-out rows recorded twice: {sorted({k for k in keys if keys.count(k) > 1}, key=str)}")
    return found


def _fitness_is_the_plain_mean(snap: Snapshot) -> bool:
    """Whether the run's fitness is the mean of its tasks' −log-ratios: the `mean` objective, and no
    control variate (GELU's offsets apply in the pools mode only, where `control_beta` is not 0)."""
    if not snap.runs:
        return True
    config = json.loads(snap.runs[-1][2] or "{}")
    tasks, lab = config.get("tasks") or {}, config.get("lab") or {}
    controlled = bool(tasks.get("control_beta")) and not lab.get("suite")
    return tasks.get("objective", "mean") == "mean" and not controlled


def final_violations(run_dir: Path, snap: Snapshot, budget: int) -> list[str]:
    """What a finished run must have: its budget reached, no gaps, its files."""
    found = []
    # the pools mode's final check records the validation's choice blended with GELU as one more
    # program (mutator "blend", the next index): not one of the budget's proposals
    blends = [row[0] for row in snap.programs.values() if row[MUTATOR] == "blend"]
    if len(blends) > 1:
        found.append(f"{len(blends)} blends of the winner recorded (indexes {sorted(blends)}), not at most one")
    indexes = sorted(row[0] for row in snap.programs.values() if row[MUTATOR] != "blend")
    if indexes != list(range(budget)):
        found.append(
            f"a finished run of budget {budget} holds indexes {indexes[:5]}…{indexes[-5:]} "
            f"({len(indexes)} programs), not 0..{budget - 1}"
        )
    if not snap.runs or snap.runs[-1][1] != "finished":
        found.append(f"run status is {snap.runs[-1][1] if snap.runs else None!r}, not 'finished'")
    for name in ("best_activation.py", "heldout.json", "report.html", "config.yaml"):
        if not (run_dir / name).is_file():
            found.append(f"{name} was not written")
    try:
        final = json.loads((run_dir / "heldout.json").read_text())
        rows = final["validation"] if isinstance(final, dict) else final
        if not any(row.get("program_id") is not None for row in rows):
            found.append("heldout.json holds no program of the run")
    except (OSError, ValueError) as exc:
        found.append(f"heldout.json is not readable JSON: {exc}")
    if (run_dir / "report.html").is_file() and "</html>" not in (run_dir / "report.html").read_text():
        found.append("report.html is incomplete")
    return found


@dataclass
class Cycle:
    """One start of the controller and how it ended."""

    moment: str  # what was asked: "POINT:N", "random:SEED:P", "external after S s" or "run"
    returncode: int | None
    fired: str | None  # the fault point it died at (from its stderr), if any
    programs: int  # programs recorded after the cycle
    violations: list[str]
    stderr_tail: str = ""

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL


def fired_point(stderr: str) -> str | None:
    for line in stderr.splitlines():
        if line.startswith("actmine fault: SIGKILL at "):
            return line[len("actmine fault: SIGKILL at ") :]
    return None


class Checker:
    """Runs cycles on one run directory and checks each against the one before."""

    def __init__(
        self,
        config_file: Path,
        run_dir: Path,
        *,
        budget: int,
        islands: int,
        max_gaps: int,
        env: dict[str, str] | None = None,
        timeout_s: float = 300,
    ):
        self.config_file, self.run_dir, self.budget = config_file, run_dir, budget
        self.islands, self.max_gaps = islands, max_gaps
        self.env = dict(os.environ if env is None else env)
        self.timeout_s = timeout_s
        self.previous = read_snapshot(run_dir)
        self.cycles: list[Cycle] = []

    def cycle(self, fault: str | None = None, kill_after_s: float | None = None) -> Cycle:
        """Start the search (with ACTMINE_FAULT=fault, or killed from outside after kill_after_s),
        wait for it to end, clean up what it left running, and check the invariants."""
        env = dict(self.env)
        env.pop("ACTMINE_FAULT", None)
        if fault:
            env["ACTMINE_FAULT"] = fault
        process = run_cli(self.config_file, self.run_dir, "--budget", str(self.budget), env=env)
        try:
            try:
                _, stderr = process.communicate(timeout=kill_after_s if kill_after_s is not None else self.timeout_s)
            except subprocess.TimeoutExpired:
                if kill_after_s is None:
                    raise
                process.send_signal(signal.SIGKILL)  # the controller only, like a lost terminal's kill -9
                _, stderr = process.communicate(timeout=60)
        finally:
            reap_group(process)
        moment = fault or (f"external after {kill_after_s:.1f} s" if kill_after_s is not None else "run")
        snap = read_snapshot(self.run_dir)
        violations = snapshot_violations(snap, self.previous, islands=self.islands, max_gaps=self.max_gaps)
        if process.returncode not in (0, -signal.SIGKILL):
            violations.append(f"the controller exited {process.returncode}: {stderr[-2000:]}")
        if process.returncode == 0:
            violations += final_violations(self.run_dir, snap, self.budget)
        self.previous = snap
        result = Cycle(moment, process.returncode, fired_point(stderr), len(snap.programs), violations, stderr[-2000:])
        self.cycles.append(result)
        return result

    def finish(self) -> Cycle:
        """Resume without faults until the run ends."""
        return self.cycle(None)


def reap_group(process: subprocess.Popen) -> None:
    """SIGKILL whatever is left of the controller's session (orphaned sandbox workers), so cycles
    do not pile up processes; the controller itself has been waited for."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if process.poll() is None:
        process.kill()
        process.wait(timeout=60)


def describe(cycles: list[Cycle]) -> dict[str, Any]:
    """Counts for a report: cycles, kills, moments tried (the fault points that fired)."""
    fired = [c.fired.split(" (")[0] for c in cycles if c.fired]
    return {
        "cycles": len(cycles),
        "killed": sum(c.killed for c in cycles),
        "points_fired": {p: fired.count(p) for p in sorted(set(fired))},
        "external_kills": sum(1 for c in cycles if c.moment.startswith("external") and c.killed),
        "violations": sum(len(c.violations) for c in cycles),
    }
