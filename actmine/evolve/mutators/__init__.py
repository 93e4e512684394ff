"""Mutators: propose a new candidate program from a parent and a few inspirations.

The plug-in point is one method, `Mutator.propose(parent, inspirations, rng) -> Proposal`. The
controller knows nothing else about a mutator, so the offline ones here (`symbolic`, `random`)
and the LLM mutator plug in the same way. A proposal is source text plus a one-line rationale;
the controller checks it against the static policy and evaluates it in the sandbox, so a mutator
may propose anything (though the offline ones always emit valid programs).
"""

from __future__ import annotations

from .base import MUTATORS, Failure, LabContext, Mutator, Parent, Proposal, register_mutator

__all__ = ["MUTATORS", "Failure", "LabContext", "Mutator", "Parent", "Proposal", "get_mutator", "register_mutator"]


def get_mutator(name: str, **options) -> Mutator:
    """A mutator by name (`symbolic`, `random`, …), built with its options."""
    from . import llm, random_search, symbolic  # noqa: F401  (the mutators register themselves)
    if name not in MUTATORS:
        raise ValueError(f"unknown mutator {name!r}; known: {', '.join(sorted(MUTATORS))}")
    return MUTATORS[name](**options)
