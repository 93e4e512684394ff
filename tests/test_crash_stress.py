"""Crash-stress: SIGKILL a real `actmine search` at named moments, resume, check the invariants.

One search, with the LLM mutator against the scripted server (tests/chat_server.py: real calls are
recorded, lost in flight and resumed), is killed at every fault point of `actmine.faults.POINTS`
once, plus an external SIGKILL at a random time, and resumed after each; after each cycle
`crash_harness` checks the database against what the previous cycle left (integrity, indexes
unique and gap-free but for work in flight, nothing lost, changed or recorded twice, LLM calls
owned by recorded programs or by none, elites recorded, seeds on every island, one held-out check),
and the last cycle must finish the run at its budget with its files. The long version, with
random moments, many cycles and the symbolic mutator too, is benchmarks/crash_stress.py.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys

import pytest

from actmine.faults import POINTS, FaultPlanError, parse_plan
from chat_server import ChatServer
from crash_harness import Checker, describe, llm_script, stress_config


#: every point once, in the order a run passes them (the first seven in the loop, the rest at its end),
#: and one external SIGKILL at a random time (None: placed after the loop's points)
MOMENTS = [
    "db_commit:1",
    "proposal_ready:3",
    "in_flight:2",
    "result_ready:2",
    "db_program_inserted:2",
    "db_commit:3",
    "migration:1",
    None,
    "best_program_write:1",
    "heldout_evaluated:1",
    "heldout_write:2",
    "report:1",
]


def test_llm_search_survives_kills_at_every_moment_and_finishes(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTMINE_TEST_KEY", "sk-test")
    external = round(random.Random(16).uniform(2.0, 6.0), 1)  # wherever it lands, the invariants hold
    with ChatServer(llm_script(400)) as server:
        # budget 15: room for the loop's moments before the budget is spent, however fast a machine
        # reaches them (confirmation rounds add commits; a finished run passes no loop point)
        config = stress_config(tmp_path, budget=15, llm_base_url=server.base_url)
        # in flight at a kill: up to 2 evaluations and 2 model calls
        checker = Checker(config, tmp_path / "run", budget=15, islands=2, max_gaps=4)
        for moment in MOMENTS:
            if moment is None:
                cycle = checker.cycle(kill_after_s=external)
            else:
                cycle = checker.cycle(moment)
                assert cycle.killed and cycle.fired and cycle.fired.startswith(moment.split(":")[0]), (
                    moment,
                    cycle.returncode,
                    cycle.fired,
                    cycle.stderr_tail,
                )
            assert not cycle.violations, (cycle.moment, cycle.violations)
        final = checker.finish()
    assert final.returncode == 0 and not final.violations, (final.violations, final.stderr_tail)
    assert describe(checker.cycles)["killed"] >= len(MOMENTS) - 1
    calls = checker.previous.llm_calls.values()
    assert any(row[0] is not None for row in calls)  # calls really recorded, with the programs they wrote


def test_a_pools_mode_search_survives_kills_and_finishes(tmp_path):
    """The default config's mode: samples of task pools per round, GELU's control variate, a
    validation pool and a test suite; killed in the loop, mid-way through writing the final check's
    rows and during the report, then finished."""
    config = stress_config(tmp_path, budget=8, pools=True)
    checker = Checker(config, tmp_path / "run", budget=8, islands=2, max_gaps=2)
    for moment in ("result_ready:2", "db_commit:4", "heldout_write:3", "report:1"):
        cycle = checker.cycle(moment)
        assert cycle.killed and cycle.fired, (moment, cycle.returncode, cycle.stderr_tail)
        assert not cycle.violations, (cycle.moment, cycle.violations)
    final = checker.finish()
    assert final.returncode == 0 and not final.violations, (final.violations, final.stderr_tail)
    assert len({row[:2] for row in checker.previous.heldout}) > 1  # validation and test rows were checked


def test_every_fault_point_has_a_moment():
    """A new fault point needs a moment in the search above."""
    named = {moment.split(":")[0] for moment in MOMENTS if moment}
    assert named == set(POINTS), set(POINTS) ^ named


# ---- the fault plan itself ---------------------------------------------------------------------


def test_fault_plans_parse_and_bad_ones_say_what_is_wrong():
    assert parse_plan(None) is None and parse_plan("  ") is None
    assert parse_plan("db_commit:3,report").targets == {"db_commit": (3, signal.SIGKILL), "report": (1, signal.SIGKILL)}
    assert parse_plan("report:2:INT,in_flight:1:TERM").targets == {
        "report": (2, signal.SIGINT),
        "in_flight": (1, signal.SIGTERM),
    }
    assert parse_plan("random:7:0.25").probability == 0.25
    for text, message in (
        ("db_comit:2", "unknown fault point 'db_comit'"),
        ("report:x", "NAME:N"),
        ("report:1:STOP", "unknown signal 'STOP'; use one of KILL, INT, TERM, HUP"),
        ("report:0", "≥ 1"),
        ("random:7", "random:SEED:P"),
        ("random:1:2", "in \\[0, 1\\]"),
    ):
        with pytest.raises(FaultPlanError, match=message):
            parse_plan(text)


def _passes_before_death(fault: str | None, passes: int = 6) -> subprocess.CompletedProcess:
    code = (
        "from actmine.faults import fault_point\n"
        f"for i in range({passes}):\n    print(i, flush=True)\n    fault_point('in_flight')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "ACTMINE_FAULT"}
    if fault:
        env["ACTMINE_FAULT"] = fault
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)


def test_a_fault_point_kills_at_its_nth_pass_and_is_inert_otherwise():
    off = _passes_before_death(None)
    assert off.returncode == 0 and off.stdout.split() == [str(i) for i in range(6)]
    other = _passes_before_death("report:1")  # another point named: this one stays inert
    assert other.returncode == 0
    third = _passes_before_death("in_flight:3")
    assert third.returncode == -9 and third.stdout.split() == ["0", "1", "2"]
    assert "actmine fault: SIGKILL at in_flight (pass 3)" in third.stderr
    # another signal: sent, and the process's own handling decides (here Python's: KeyboardInterrupt)
    interrupted = _passes_before_death("in_flight:2:INT")
    assert interrupted.returncode == -signal.SIGINT and interrupted.stdout.split() == ["0", "1"]
    assert (
        "actmine fault: SIGINT at in_flight (pass 2)" in interrupted.stderr
        and "KeyboardInterrupt" in interrupted.stderr
    )
    # the random form: the same seed dies at the same pass
    first, again = _passes_before_death("random:5:0.3", 50), _passes_before_death("random:5:0.3", 50)
    assert first.returncode == -9 and first.stdout == again.stdout
