"""Named fault-injection points: SIGKILL (or signal) this process at a chosen moment, for crash tests.

The controller and the database call `fault_point("name")` at the moments a crash is most likely
to break a guarantee (a proposal made but not submitted, work in flight, a result not yet written,
inside a database transaction, during the held-out check and the end-of-run files). The points are
inert unless the environment variable `ACTMINE_FAULT` (read once, at import) names one:

    ACTMINE_FAULT=db_commit:3              SIGKILL at the 3rd pass through `db_commit`
    ACTMINE_FAULT=db_commit                the same at the 1st pass
    ACTMINE_FAULT=in_flight:2,report:1     whichever of these is reached first
    ACTMINE_FAULT=random:SEED:P            at every pass of any point, SIGKILL with probability P
                                           (random.Random(SEED): the same run dies at the same pass)
    ACTMINE_FAULT=heldout_write:1:INT      SIGINT (a Ctrl-C) at that pass instead, and go on; also
                                           TERM and HUP (what `timeout`, Slurm or a closed terminal
                                           send), and KILL, the default

Why SIGKILL and not an exception: a crash test must not run `finally` blocks, context managers
or atexit hooks, and must leave the SQLite file exactly as a power cut of the process would
(SQLite's own crash tests and Jepsen-style fault injection work the same way). Before dying, one
line goes to stderr (`actmine fault: SIGKILL at NAME (pass N)`) so that a test can tell which
moment it hit. The other signals are sent the same way, and the process goes on: its own handlers
decide, as they would for a user's Ctrl-C at that moment.

When `ACTMINE_FAULT` is unset, `fault_point` is one global lookup and a comparison. This module
depends on nothing else in actmine, so any layer may call it.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import threading

ENVIRONMENT_VARIABLE = "ACTMINE_FAULT"

#: Every point the code passes, with the moment it marks. A name in ACTMINE_FAULT must be one of these.
POINTS: dict[str, str] = {
    "proposal_ready": "a proposal was made (seed or mutator), not yet checked or submitted",
    "in_flight": "a proposal was just submitted to the executor; work is in flight",
    "result_ready": "an evaluation finished and was taken from the executor, not yet written",
    "db_program_inserted": "inside add_program's transaction: the program row and parent links "
    "are inserted, the elite update is not",
    "db_commit": "inside any write transaction, just before COMMIT",
    "migration": "an evaluation was recorded; the ring migration that follows it has not run",
    "heldout_evaluated": "during the held-out check: a top program was re-scored, nothing written yet",
    "heldout_write": "during the held-out check: before one held-out row is written",
    "best_program_write": "best_activation.py's temporary file is written, not yet renamed into place",
    "report": "the run is finished in the database; report.html is about to be written",
}


#: The signals a plan may send (NAME:N:SIGNAL); KILL when none is named.
SIGNALS = {"KILL": signal.SIGKILL, "INT": signal.SIGINT, "TERM": signal.SIGTERM, "HUP": signal.SIGHUP}


class FaultPlanError(ValueError):
    """ACTMINE_FAULT does not say a fault plan this module understands."""


class _Plan:
    """What to kill at: {point: pass number}, or a random draw at every pass."""

    def __init__(self, targets: dict[str, tuple[int, int]], rng: random.Random | None = None, probability: float = 0.0):
        self.targets = targets
        self.rng = rng
        self.probability = probability
        self.passes: dict[str, int] = {}
        self._lock = threading.Lock()  # points may be passed from more than one thread

    def hit(self, name: str) -> None:
        if name not in POINTS:  # a typo in the code would otherwise be a point no test can reach
            raise FaultPlanError(f"fault_point({name!r}) is not in faults.POINTS; add it there with its moment")
        with self._lock:
            count = self.passes.get(name, 0) + 1
            self.passes[name] = count
            if self.rng is not None:
                fire, signum = self.rng.random() < self.probability, signal.SIGKILL
            else:
                at, signum = self.targets.get(name, (0, signal.SIGKILL))
                fire = at == count
        if fire:
            kill(name, count, signum)


def parse_plan(text: str | None) -> _Plan | None:
    """The plan ACTMINE_FAULT describes (None when it is unset or empty); FaultPlanError if it is
    not one of the forms in the module docstring."""
    text = (text or "").strip()
    if not text:
        return None
    if text.startswith("random:"):
        parts = text.split(":")
        try:
            if len(parts) != 3:
                raise ValueError
            seed, probability = int(parts[1]), float(parts[2])
        except ValueError:
            raise FaultPlanError(
                f"{ENVIRONMENT_VARIABLE}={text!r}: the random form is random:SEED:P, e.g. "
                "random:7:0.02 (an integer seed, a probability in [0, 1])"
            ) from None
        if not 0.0 <= probability <= 1.0:
            raise FaultPlanError(f"{ENVIRONMENT_VARIABLE}={text!r}: the probability must be in [0, 1]")
        return _Plan({}, random.Random(seed), probability)
    targets: dict[str, tuple[int, int]] = {}
    for item in text.split(","):
        name, _, rest = item.strip().partition(":")
        count, _, signal_name = rest.partition(":")
        if name not in POINTS:
            raise FaultPlanError(
                f"{ENVIRONMENT_VARIABLE}={text!r}: unknown fault point {name!r}; "
                f"the points are {', '.join(POINTS)} (or random:SEED:P)"
            )
        try:
            at = int(count) if count else 1
        except ValueError:
            raise FaultPlanError(
                f"{ENVIRONMENT_VARIABLE}={text!r}: {item.strip()!r} should be NAME, NAME:N or NAME:N:SIGNAL "
                "with N the pass to kill at (1 = the first)"
            ) from None
        if at < 1:
            raise FaultPlanError(f"{ENVIRONMENT_VARIABLE}={text!r}: the pass number must be ≥ 1")
        if (signal_name or "KILL") not in SIGNALS:
            raise FaultPlanError(
                f"{ENVIRONMENT_VARIABLE}={text!r}: unknown signal {signal_name!r}; use one of {', '.join(SIGNALS)}"
            )
        targets[name] = (at, SIGNALS[signal_name or "KILL"])
    return _Plan(targets)


def kill(name: str, count: int, signum: int = signal.SIGKILL) -> None:
    """Say where, then send `signum` to this process: for SIGKILL no clean-up of any kind runs."""
    try:
        sys.stderr.write(f"actmine fault: {signal.Signals(signum).name} at {name} (pass {count})\n")
        sys.stderr.flush()
    except Exception:  # a closed stderr must not save the process
        pass
    os.kill(os.getpid(), signum)


_UNREAD = object()
_PLAN: "_Plan | None | object" = _UNREAD


def active_plan() -> "_Plan | None":
    """The plan ACTMINE_FAULT names, read once (lazily: a malformed value is reported by whoever asks
    first -- the CLI does at start, as a usage error -- rather than when a module is imported)."""
    global _PLAN
    if _PLAN is _UNREAD:
        _PLAN = parse_plan(os.environ.get(ENVIRONMENT_VARIABLE))
    return _PLAN  # type: ignore[return-value]


def fault_point(name: str) -> None:
    """A moment a crash test may kill this process at (see the module docstring). A no-op unless
    ACTMINE_FAULT is set."""
    plan = _PLAN if _PLAN is not _UNREAD else active_plan()
    if plan is not None:
        plan.hit(name)
