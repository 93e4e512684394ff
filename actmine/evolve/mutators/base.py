"""The mutator plug point's records and registry: what a mutator sees (`Parent`, `LabContext`,
`Failure`), what it returns (`Proposal`), its protocol and `register_mutator`.

A module of its own, with no imports from the mutators, so that each mutator module imports it
directly and the package (`get_mutator`, which imports the mutators) sits above them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence


@dataclass(frozen=True)
class Parent:
    """What a mutator sees of an existing program (a parent or an inspiration)."""

    source: str
    fitness: float | None = None          # −ood_log_ratio on the search suite; None if not scored
    rationale: str = ""
    family_log_ratios: dict[str, float] = field(default_factory=dict)   # per family, vs ReLU
    id: int | None = None


@dataclass(frozen=True)
class Proposal:
    source: str
    rationale: str        # one line: what was changed and why
    mutator: str          # the mutator's name
    model: str | None = None   # the LLM that wrote it, for LLM mutators
    calls: tuple = ()          # the LLM calls behind it (`llm.LLMCall`), recorded by the controller
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

    reason: str          # "stage:code"
    message: str


class Mutator(Protocol):
    name: str

    def propose(self, parent: Parent | None, inspirations: Sequence[Parent], rng: random.Random) -> Proposal:
        """A new program. `parent` is None for mutators that need none (random search)."""
        ...

# Optional, for mutators that learn from the search or call remote models (the LLM mutator):
#   concurrency: int                          proposals the controller may request at once, in threads
#   setup(lab: LabContext)                    what the lab scores, before the first proposal
#   restore(calls, children, failures)        a resumed run's history (see LLMMutator.restore)
#   observe(proposal, fitness, parent_fitness, failure)   each of its proposals' outcome
#   exhausted() -> str | None                 why no more proposals can be made (a spent budget)
#   usage() -> dict                           spend, for the live view and the run summary


MUTATORS: dict[str, Callable[..., Mutator]] = {}


def register_mutator(name: str, factory: Callable[..., Mutator]) -> None:
    MUTATORS[name] = factory
