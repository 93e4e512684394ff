"""Normalisation before the policy: well-meaning boilerplate rewritten into the candidate language.

Models write candidates the way they write any PyTorch code: type hints, `import torch.nn as nn`,
`np.pi`, `@torch.jit.script`, a small `nn.Module`, an `if __name__ == "__main__":` self-test. The
policy (`actmine.candidate.source.check_source`) refuses all of these, and each refusal wastes a
paid call. `normalise` rewrites the ones whose meaning is certain into the language, and leaves
everything else exactly as written, for the policy to refuse with its reason. It is a pure
ast → source transformation: it never runs, imports or evaluates anything of the program, and it
never raises (a source that does not parse comes back unchanged).

The rules, applied in this order (each application is one line of `Normalised.changes`):

1. **`from __future__ import ...`** is dropped (compiler directives; the one that matters,
   `annotations`, is moot once the annotations are gone).
2. **Top-level `if __name__ == "__main__":` blocks** (that exact test, either order of the
   comparison, no `else`) are dropped: they never run when the program is loaded as a candidate.
   **Top-level test lines** without that guard go too (`_Normaliser.drop_test_lines`): call
   statements, `assert`s and `for` loops of those, whose calls are `print`, the program's own
   functions, functions of the language or a few tensor constructors (`_TEST_CALLS`), with the
   assignments only they read (`x = torch.randn(10)`). None of it changes what the functions compute.
3. **Annotations** are dropped, all of them: parameters, returns, `X: float = 1.0` (becomes
   `X = 1.0`) and bare `X: float` (dropped). An annotation never changes what a function computes.
   A top-level type alias that nothing reads once they are gone (`Number = Union[int, float]`,
   made of typing names and builtin types only) goes with them.
4. **Decorators that return the same function, or one that computes the same values**, are dropped
   (`_TRANSPARENT_DECORATORS`): `torch.jit.script`, `torch.jit.ignore`/`unused`/`export`,
   `torch.compile` and `torch.compile(...)`, `functools.lru_cache`/`lru_cache(...)`/`cache`,
   `typing.final`/`no_type_check` -- in any spelling the imports allow (`@jit.script`, `@lru_cache`).
   A cache only remembers results of a pure function (and is state: dropping it removes state).
   Every other decorator stays for the policy to refuse: `torch.no_grad`/`torch.inference_mode`
   change the value (no gradient), `functools.wraps` only appears inside a hand-written decorator,
   which stays refused anyway.
5. **A stateless `nn.Module` subclass becomes a function** (`_ClassConverter`): a top-level class
   whose only base is `torch.nn.Module`, whose `__init__` only calls `super().__init__()` and sets
   attributes to constants (or to its own parameters, all with constant defaults), and whose
   `forward(self, x)` reads `self` only through those attributes. The function is named after the
   class in snake case (`SoftClip` → `soft_clip`), takes forward's arguments, and the attributes
   become keyword-only arguments with their constant values as defaults. Its uses are rewritten:
   `Act()(x)`, `Act().forward(x)`, `Act(0.5)(x)` (the constructor's arguments become those keywords),
   and `act = Act(...)` (at the top level or in a function) when `act` is then only called
   (`act(x)`, `act.forward(x)`). Any other class, or any other use of it, leaves the class as
   written, which the policy refuses with a message that says how to write it as a function.
6. **Imports of the pre-imported modules and their aliases** (`_Normaliser.resolve_imports`): an import of
   torch, math, numpy, functools, typing or typing_extensions is dropped when every use of every
   name it binds can be written in the language's own spelling, and each use is rewritten:
   `import torch as th` → `torch.…`, `import math as m` → `math.…`, `import torch.nn.functional as
   fn` / `torch.nn.functional.X` / `nn.functional.X` → `F.X`, `from math import pi, sqrt` →
   `math.pi`, `math.sqrt`, `from torch.nn.functional import gelu` → `F.gelu`, numpy's constants
   `np.pi`, `np.e`, `np.inf`, `np.nan` → `math.…` (and `np.euler_gamma` → its value; numpy's
   constants are plain Python floats), and `nn.GELU()(x)` → `F.gelu(x)` for the stateless activation
   modules of `torch.nn` whose functional twin is in the language (`ACTIVATION_MODULES`, derived
   from torch.nn and the table, not hand-written; `inplace=` is dropped: the output is the same).
   A rewritten use must land on a spelling of the language table (`actmine.language.ops`). An import
   of those modules whose names are not used at all is dropped too (`from typing import Optional`
   once the annotations are gone), and so is an import of any module that only the test code of
   rule 2 used (`import matplotlib.pyplot as plt` for a plot in the `__main__` block): dropping an
   import only removes code. An import that was never used stays (`import os` is refused, used or
   not). `import math` / `import torch` inside a function are dropped. Scoping is respected: a
   local that shadows an alias is not rewritten.
   A name that is also bound another way (rebound), used in a way that cannot be spelled in the
   language (`nn.Linear`, `np.random`, `from torch import load`, the module itself passed as a
   value), or any import of another module leaves its import in place: the policy refuses it as
   `import`. `torch`, `F` and `math` rooted chains are also put in canonical form
   (`torch.nn.functional.silu` → `F.silu`).

A module docstring and other string statements are kept (harmless). A source that already passes
the policy is returned unchanged, and normalising twice changes nothing.

How the text is written: every rule edits the parsed tree and records the text range it replaces.
The edits are spliced into the original text, which keeps the author's comments and layout, and
the result is parsed back and compared with the edited tree; if the two differ (an unusual layout:
`import torch; x = 1`, parenthesised annotations), the edited tree is written out with `ast.unparse`
instead. Either way the returned source means exactly the edited tree.

Where each part lives: this module is the entry point (`normalise`, `Normalised`); the rules and
their order are in `normalise_rules.py` (rule 5 in `normalise_classes.py`), what they know about
the language in `normalise_vocabulary.py`, the scope analysis they read in `normalise_scopes.py`,
and the text edits they make in `normalise_edits.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .normalise_rules import _Normaliser
from .normalise_vocabulary import ACTIVATION_MODULES as ACTIVATION_MODULES

__all__ = ["Normalised", "normalise", "ACTIVATION_MODULES"]


@dataclass(frozen=True)
class Normalised:
    """A program after normalisation: `source` is what is checked, stored, exported and shown;
    `changes` says, one short line each, what was rewritten (empty: `source` is the input)."""

    source: str
    changes: tuple[str, ...] = ()


def normalise(source: str) -> Normalised:
    """The normalised program (see the module docstring). Never raises: a source that does not
    parse, nests too deeply, or meets anything this code does not expect comes back unchanged, and
    the policy then judges it as written."""
    if not isinstance(source, str):
        return Normalised(source)
    try:
        normalised, changes = _Normaliser(source).run()
    except Exception:  # noqa: BLE001 -- the contract: the policy sees the program as written instead
        return Normalised(source)
    return Normalised(normalised, changes)
