"""Task generators: families as distributions of tasks, drawn deterministically by index.

A generator is a family with documented parameters. `draw(index)` returns one `Task`, and the draw
depends only on (generator name, parameters, index): the random state comes from `stable_seed` of
those three, never from a global RNG, so a pool of thousands of tasks is the same in every
process and run, and per-task reference numbers (ReLU's errors) can be cached once.

A drawn task records {"generator", "params", "index", "name"} as its `spec` and its generator's
family as its `family` (so scores group by family as before); `tasks.build_task` sees the
"generator" field and redraws it, so `build_task(task.to_dict())` rebuilds any drawn task.
`params()` returns every parameter with defaults filled in, so the spec (and any cache key built
from it) does not change meaning if a default changes later.

Generators here: `polynomial`, `harmonic`, `feynman`. The random-expression generator
(`expression`) registers itself from `actmine.lab.expression_tasks`; `get_generator` imports that
module on demand. The fixed families of `tasks.py` (and the `lab` / `lab-heldout` suites) are
untouched: these generators are new constructors beside them. docs/lab.md, "Task generators",
documents every parameter.

This module is the front door: the lookups (`get_generator`, `generator_names`,
`describe_generators`) and every name callers import from here. The pieces live beside it:
`generator_params.py` (parameter kinds, `GeneratorError`), `generator_base.py` (registry, base
class, shared random helpers), `synthetic_generators.py` (polynomial, harmonic) and
`feynman_generator.py`. Importing this module imports them all, so the built-in generators are
registered before any lookup.
"""

from __future__ import annotations

import difflib
import sys
from typing import Any

# The built-in generators register themselves on import, in this order (polynomial, harmonic,
# feynman: the registry's order before the split).
from .synthetic_generators import HarmonicGenerator as HarmonicGenerator
from .synthetic_generators import PolynomialGenerator as PolynomialGenerator
from .synthetic_generators import _uniform_monomial as _uniform_monomial
from .feynman_generator import FEYNMAN_SPLITS as FEYNMAN_SPLITS
from .feynman_generator import EquationList as EquationList
from .feynman_generator import FeynmanCandidate as FeynmanCandidate
from .feynman_generator import FeynmanExclusion as FeynmanExclusion
from .feynman_generator import FeynmanGenerator as FeynmanGenerator
from .feynman_generator import _depends_on as _depends_on
from .feynman_generator import _feynman_candidates as _feynman_candidates
from .feynman_generator import _feynman_target as _feynman_target
from .feynman_generator import feynman_exclusions as feynman_exclusions
from .generator_base import GENERATORS as GENERATORS
from .generator_base import ParametrisedGenerator as ParametrisedGenerator
from .generator_base import TaskGenerator as TaskGenerator
from .generator_base import _choice as _choice
from .generator_base import _integer as _integer
from .generator_base import _interval_boxes as _interval_boxes
from .generator_base import _magnitudes as _magnitudes
from .generator_base import _uniform as _uniform
from .generator_base import boxes_disjoint as boxes_disjoint
from .generator_base import register_generator as register_generator
from .generator_params import Choices as Choices
from .generator_params import Count as Count
from .generator_params import FloatRange as FloatRange
from .generator_params import GeneratorError as GeneratorError
from .generator_params import IntRange as IntRange
from .generator_params import Number as Number
from .generator_params import _is_number as _is_number


def _load_plugins() -> None:
    # The lab's modules that register a generator (`@register_generator` in their text: the
    # expression generator, a new file) are imported on the first lookup, so that asking for
    # "expression" works whichever module the caller imported first (it imports this one).
    from ..plugins import import_registering_modules

    import_registering_modules(__package__, sys.modules[__package__].__path__, "register_generator")


def generator_names() -> list[str]:
    _load_plugins()
    return sorted(GENERATORS)


def get_generator(name: str, **params: Any) -> TaskGenerator:
    """The generator `name` with `params` (unknown or out-of-range parameters raise GeneratorError)."""
    _load_plugins()
    if name not in GENERATORS:
        close = difflib.get_close_matches(str(name), GENERATORS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise GeneratorError(f"unknown generator {name!r}{hint} (known: {', '.join(sorted(GENERATORS))})")
    return GENERATORS[name](**params)


def describe_generators() -> dict[str, list[dict[str, str]]]:
    """{generator: [{param, default, allowed, doc}]} for the generators defined with `PARAMETERS`."""
    _load_plugins()
    return {name: ctor.describe() for name, ctor in sorted(GENERATORS.items()) if hasattr(ctor, "describe")}
