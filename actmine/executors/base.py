"""The executor plug point: the `Executor` protocol, the registry and `register_executor`.

An executor runs candidate evaluations (always inside sandboxed worker processes) and returns
futures of `Evaluation`s. A new engine is one new module in this package: a class with a `name`,
the protocol's `capacity`, `submit` and `close`, and a `from_config(workers, limits, scheduler)`
classmethod, registered with `@register_executor`; `make_executor` and the config's and the CLI's
choices read the registry.
"""

from __future__ import annotations

import concurrent.futures
from typing import Callable, Collection, runtime_checkable
from typing import Protocol as TypingProtocol

from ..lab.fitness import Evaluation, Lab

#: name → executor class (each module of the package registers its own; see `actmine.executors`)
EXECUTORS: dict[str, Callable] = {}


def register_executor(cls):
    """Class decorator: register an executor class under its `name`."""
    if not getattr(cls, "name", ""):
        raise ValueError(f"executor class {cls.__name__} has no `name`")
    EXECUTORS[cls.name] = cls
    return cls


@runtime_checkable
class Executor(TypingProtocol):
    """Runs evaluations; at most `capacity` at once."""

    capacity: int

    def submit(
        self, source: str, lab: Lab, name: str = "candidate", skip_fingerprints: Collection[str] = ()
    ) -> concurrent.futures.Future:
        """Evaluate `source` on `lab`; the Future's result is an `Evaluation`: a failed one for
        anything the candidate or a worker did. Only the loss of the executor itself (`ExecutorLost`:
        a cluster's scheduler gone) is raised, here or by the Future, since no evaluation can go on.

        `skip_fingerprints`: functions already evaluated (a duplicate stops after the probes).
        """

    def close(self) -> None:
        """Stop everything this executor started; idempotent."""


class ExecutorLost(ConnectionError):
    """The executor itself is gone (a Dask scheduler died or cannot be reached): evaluations in
    flight have no result and none can start. The search stops without recording them (a resume
    evaluates them again); being a `ConnectionError`, the CLI reports it in one line as a fault
    of the machine, not of the input."""


def failed_evaluation(lab: Lab, name: str, code: str, message: str, stage: str = "sandbox") -> Evaluation:
    evaluation = Evaluation(activation=name, ok=False, workload=lab.workload_summary())
    return evaluation.fail(stage, code, message)
