"""The mutator plug point's records and registry: what a mutator sees (`Parent`, `LabContext`,
`Failure`), what it returns (`Proposal`), its base class `Mutator` and `register_mutator`.

A module of its own, with no imports from the mutators, so that each mutator module imports it
directly and the package (`get_mutator`, which imports the mutators) sits above them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Sequence


@dataclass(frozen=True)
class Parent:
    """What a mutator sees of an existing program (a parent or an inspiration)."""

    source: str
    fitness: float | None = None  # −ood_log_ratio on the search suite; None if not scored
    rationale: str = ""
    family_log_ratios: dict[str, float] = field(default_factory=dict)  # per family, vs ReLU
    id: int | None = None


@dataclass(frozen=True)
class Proposal:
    source: str
    rationale: str  # one line: what was changed and why
    mutator: str  # the mutator's name
    model: str | None = None  # the LLM that wrote it, for LLM mutators
    calls: tuple = ()  # the LLM calls behind it (`llm.LLMCall`), recorded by the controller
    # Set when no program came of it: {"code", "message"}; `source` then holds the raw answer.
    # Code "budget" means no call was made (the spend cap was reached): nothing is recorded.
    failure: dict | None = None
    # For LLM proposals: the model's whole answer as it came (prose, thinking, every code block), and
    # what the normaliser (`actmine.language.normalise`) changed in the chosen block to make `source`,
    # one short line each. `source` is the normalised program: what is checked, stored and shown.
    original_answer: str | None = None
    normalisation_changes: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabContext:
    """What the prompt says about the lab (filled by the controller from the search's config)."""

    families: tuple[str, ...] = ("polynomial", "harmonic", "feynman")
    hidden: int = 64
    steps: int = 50
    max_flops_per_element: float = 200.0
    max_source_chars: int = 4000
    allow_batch_dependent: bool = False


@dataclass(frozen=True)
class Failure:
    """A refused proposal, as the prompt shows it."""

    reason: str  # "stage:code"
    message: str


class Mutator:
    """The mutator plug point: subclass it, set `name`, implement `propose`, and register the class
    with `@register_mutator` in a new module of this package (found by `get_mutator`, no other edit).

    Every hook below has a no-op default; a mutator overrides the ones it needs (the LLM mutator
    uses all of them).
    """

    name: str = ""
    concurrency: int = 1  # proposals the controller may request at once (in threads when > 1)
    uses_inspirations: bool = True  # False: `propose` ignores inspirations (so none are recorded as parents)

    def propose(self, parent: Parent | None, inspirations: Sequence[Parent], rng: random.Random) -> Proposal:
        """A new program. `parent` is None for mutators that need none (random search)."""
        raise NotImplementedError

    def setup(self, lab: LabContext) -> None:
        """What the lab scores, before the first proposal."""

    def restore(self, calls: Sequence[dict], children: Sequence[tuple], failures: Sequence[Failure]) -> None:
        """A resumed run's history: its LLM calls, its children (model, fitness, parent fitness) and
        refusals (see `LLMMutator.restore`)."""

    def observe(
        self, proposal: Proposal, fitness: float | None, parent_fitness: float | None, failure: Failure | None
    ) -> None:
        """The outcome of one of its proposals."""

    def exhausted(self) -> str | None:
        """Why no more proposals can be made (a spent budget), or None."""
        return None

    def stop(self) -> None:
        """The search is stopping (Ctrl-C, its time limit): proposals being made may give up now and
        come back with failure code `stopped`, which the controller does not record (a resume
        proposes them again)."""

    def usage(self) -> dict:
        """Spend, for the live view and the run summary ({} when there is none)."""
        return {}


MUTATORS: dict[str, type[Mutator]] = {}


def register_mutator(cls: type[Mutator]) -> type[Mutator]:
    """Class decorator: register a `Mutator` subclass under its `name` (the controller relies on the
    base class's hooks, so a class that does not subclass it is refused)."""
    if not (isinstance(cls, type) and issubclass(cls, Mutator)):
        raise TypeError(f"register_mutator takes a subclass of Mutator, got {cls!r}")
    if not cls.name:
        raise ValueError(f"mutator class {cls.__name__} has no `name`")
    MUTATORS[cls.name] = cls
    return cls
