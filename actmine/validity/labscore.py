"""The validity study's lab side: which labs, scoring every function on them, the journal.

The labs are by default the unseen test suites of the default config
(`SearchTasks.from_config(Config()).unseen_tests()`: the AI Feynman equations and the expressions of
the held-out ``bump`` group, which no search draws from); ``lab-heldout`` or any suite file may be
named instead. Registry activations are scored in this process (`Lab.evaluate`: trusted code);
programs only in sandboxed workers (`actmine.executors.make_executor`: a local `SandboxPool` or a
Dask cluster whose workers each keep one).

Each function's result is appended to ``DIR/lab.jsonl`` as soon as all its labs have answered,
keyed by the function (its registry name, or a hash of its program text) and the labs' settings
(`lab_key`): a rerun skips every function whose line is there, and ignores lines it cannot read (a
half-written last line of an interrupted run) -- those functions are scored again.
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import json
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .functions import Function, ValidityInputError

__all__ = ["JOURNAL", "build_labs", "function_key", "lab_key", "read_journal", "score_functions"]

JOURNAL = "lab.jsonl"


def build_labs(suites: Sequence[str] | None) -> dict[str, Any]:
    """``{name: Lab}``: the default config's test suites by name (``feynman``, ``expression-bump``,
    ``response``, ``lab-heldout``), other registered suites or suite files with the default config's protocol;
    None: the unseen test suites."""
    from ..config import Config
    from ..evolve.search_tasks import SearchTasks
    from ..lab.tasks import SuiteError

    config = Config()
    built_in = [*config.tasks.test, *([config.lab.heldout_suite] if config.lab.heldout_suite else [])]
    wanted = list(suites) if suites else list(config.tasks.test)
    tasks = SearchTasks.from_config(config, progress=False) if any(s in built_in for s in wanted) else None
    labs: dict[str, Any] = {}
    for name in wanted:
        if tasks is not None and name in tasks.tests:
            lab = tasks.tests[name]
        else:
            try:
                lab = config.build_lab(name)
            except (SuiteError, ValueError, OSError) as exc:
                raise ValidityInputError(
                    f"--lab-suites {name!r}: {exc}; the test suites are {', '.join(built_in)}"
                ) from None
        if lab.suite.name in labs:
            raise ValidityInputError(f"--lab-suites: two suites are named {lab.suite.name!r}")
        labs[lab.suite.name] = lab
    if suites is None and tasks is not None:
        labs = {name: labs[name] for name in tasks.unseen_tests() if name in labs}
    return labs


def lab_key(labs: Mapping[str, Any]) -> dict[str, str]:
    """Per lab, a hash of everything that changes its scores: the suite, protocol, clip, probe
    budget and ReLU reference's identity (which includes the lab's code and torch's version)."""
    return {
        name: hashlib.sha256(
            json.dumps({"spec": lab.to_spec(), "reference": lab.reference_key()}, sort_keys=True, default=str).encode()
        ).hexdigest()[:20]
        for name, lab in labs.items()
    }


def function_key(function: Function, lab_keys: Mapping[str, str]) -> str:
    """A function's journal key: its name, what it is (registry name or program text) and the labs."""
    what = function.reference if function.trusted else hashlib.sha256(function.source.encode()).hexdigest()
    ident = {"name": function.name, "what": what, "labs": dict(lab_keys)}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]


def _suite_record(evaluation: Any) -> dict[str, Any]:
    return {
        "ok": evaluation.ok,
        "fitness": evaluation.fitness,
        "error": evaluation.error,
        "seconds": evaluation.seconds,
        "tasks": [
            {"name": t.name, "family": t.family, "log_ratio": t.log_ratio, "seed_log_ratios": list(t.seed_log_ratios)}
            for t in evaluation.tasks
        ],
    }


def lab_record(function: Function, key: str, evaluations: Mapping[str, Any]) -> dict[str, Any]:
    """The journal line of one function: per lab its result (task log-ratios, or the refusal), and
    overall ``fitness`` = −mean log-ratio over all the labs' tasks (None unless every lab scored it)."""
    suites = {name: _suite_record(e) for name, e in evaluations.items()}
    ok = all(s["ok"] for s in suites.values())
    ratios = [t["log_ratio"] for s in suites.values() for t in s["tasks"]]
    return {
        "key": key,
        "name": function.name,
        "origin": function.origin,
        "ok": ok,
        "fitness": (0.0 - sum(ratios) / len(ratios)) if ok and ratios else None,
        "seconds": round(sum(s["seconds"] for s in suites.values()), 3),
        "suites": suites,
    }


def _valid_record(record: Any) -> bool:
    if not (
        isinstance(record, dict)
        and isinstance(record.get("key"), str)
        and isinstance(record.get("ok"), bool)
        and isinstance(record.get("suites"), dict)
        and isinstance(record.get("seconds"), (int, float))
    ):
        return False
    for suite in record["suites"].values():
        tasks = suite.get("tasks") if isinstance(suite, dict) else None
        if not (  # what the study reads of each suite (`study._lab_summary`)
            isinstance(tasks, list)
            and isinstance(suite.get("ok"), bool)
            and (suite.get("error") is None or isinstance(suite["error"], (str, dict)))
            and (suite.get("fitness") is None or isinstance(suite["fitness"], (int, float)))
            and "fitness" in suite
        ):
            return False
        if not all(
            isinstance(t, dict)
            and isinstance(t.get("name"), str)
            and isinstance(t.get("family"), str)
            and isinstance(t.get("log_ratio"), (int, float))
            and math.isfinite(t["log_ratio"])
            for t in tasks
        ):
            return False
    return not record["ok"] or isinstance(record.get("fitness"), (int, float))


def read_journal(path: Path) -> tuple[dict[str, dict[str, Any]], int]:
    """``({key: record}, unreadable lines)`` of ``path`` (missing: nothing done)."""
    done: dict[str, dict[str, Any]] = {}
    bad = 0
    if not path.is_file():
        return done, bad
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if _valid_record(record):
            done[record["key"]] = record
        else:
            bad += 1
    return done, bad


class _Journal:
    """Appends records, one JSON line each, flushed at once; after a half-written last line (an
    interrupted run) the first record starts on a line of its own."""

    def __init__(self, path: Path):
        self.path = path
        from ..transfer.runner import end_partial_line

        path.parent.mkdir(parents=True, exist_ok=True)
        end_partial_line(path)

    def append(self, record: Mapping[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(record, allow_nan=False) + "\n")


def _say_done(say: Callable[[str], None], record: Mapping[str, Any], position: int, total: int) -> None:
    from ..terminal import terminal_text

    if record["ok"]:
        outcome = f"lab fitness {record['fitness']:+.3f}"
    else:
        error = next(s["error"] for s in record["suites"].values() if not s["ok"]) or {}
        outcome = f"refused [{error.get('code', '?')}] {error.get('message', '')}"
    say(
        terminal_text(
            f"lab [{position}/{total}] {record['name']}: {outcome} ({record['seconds']:.1f} s)", keep_newlines=False
        )
    )


def score_functions(
    functions: Sequence[Function],
    labs: Mapping[str, Any],
    journal: Path,
    *,
    executor: str = "local",
    workers: int | None = None,
    scheduler: str | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, dict[str, Any]]:
    """``{name: lab record}`` of every function: from the journal when there, else scored now
    (programs in the sandbox, registry activations here) and journalled as each finishes."""
    import actmine.activations as activations
    from ..executors import make_executor

    keys = lab_key(labs)
    done, bad = read_journal(journal)
    if bad:
        say(f"{journal}: ignored {bad} unreadable line(s); those functions are scored again")
    records = {f.name: done[function_key(f, keys)] for f in functions if function_key(f, keys) in done}
    todo = [f for f in functions if f.name not in records]
    if records:
        say(f"lab: {len(records)} of {len(functions)} functions already scored in {journal}, {len(todo)} to score")
    out = _Journal(journal)
    position = len(records)

    def finish(function: Function, evaluations: Mapping[str, Any]) -> None:
        nonlocal position
        record = lab_record(function, function_key(function, keys), evaluations)
        out.append(record)
        records[function.name] = record
        position += 1
        _say_done(say, record, position, len(functions))

    programs = [f for f in todo if not f.trusted]
    pending: dict[str, dict[str, Any]] = {f.name: {} for f in programs}
    lock = threading.Lock()  # sandbox results arrive in the pool's threads while this one trains

    def collect(function: Function, name: str, future: concurrent.futures.Future) -> None:
        # journalled the moment a program's last lab finishes, even while the library functions
        # train here: an interrupt loses nothing that finished (a failure is re-raised below)
        if future.cancelled() or future.exception() is not None:
            return
        with lock:
            pending[function.name][name] = future.result()
            if len(pending[function.name]) == len(labs):
                finish(function, {n: pending[function.name][n] for n in labs})

    pool = make_executor(executor, workers, scheduler=scheduler) if programs else None
    try:
        futures = []
        for function in programs:
            for name, lab in labs.items():
                future = pool.submit(function.source, lab, function.name)
                future.add_done_callback(functools.partial(collect, function, name))
                futures.append(future)
        for function in (f for f in todo if f.trusted):
            evaluations = {
                name: lab.evaluate(activations.get(function.reference), name=function.name)
                for name, lab in labs.items()
            }
            with lock:
                finish(function, evaluations)
        for future in futures:
            future.result()  # waits for the rest; an executor failure surfaces here
    finally:
        if pool is not None:
            pool.close()
    return records
