"""Mutators: propose a new candidate program from a parent and a few inspirations.

The plug-in point is one class, `Mutator` (base.py): `propose(parent, inspirations, rng) -> Proposal`
and optional hooks with no-op defaults. A new mutator is one new module in this package that
defines a subclass and registers it with `@register_mutator`; `get_mutator` imports every module
of the package, so nothing else changes. The offline ones (`symbolic`, `random`) and the LLM
mutator plug in the same way. A proposal is source text plus a one-line rationale;
the controller checks it against the static policy and evaluates it in the sandbox, so a mutator
may propose anything (though the offline ones always emit valid programs).
"""

from __future__ import annotations

from ...plugins import import_modules
from .base import MUTATORS, Failure, LabContext, Mutator, Parent, Proposal, register_mutator

__all__ = [
    "MUTATORS",
    "Failure",
    "LabContext",
    "Mutator",
    "Parent",
    "Proposal",
    "get_mutator",
    "mutator_names",
    "register_mutator",
]


def _discover() -> None:
    """Import every module of this package: each mutator module registers its class."""
    import_modules(__name__, __path__)


def mutator_names() -> list[str]:
    """The registered mutators' names, sorted (the config's and the CLI's choices)."""
    _discover()
    return sorted(MUTATORS)


def get_mutator(name: str, **options) -> Mutator:
    """A mutator by name (`symbolic`, `random`, …), built with its options."""
    _discover()
    if name not in MUTATORS:
        raise ValueError(f"unknown mutator {name!r}; known: {', '.join(sorted(MUTATORS))}")
    return MUTATORS[name](**options)
