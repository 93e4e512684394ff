"""The one table of the candidate language: every operation a candidate program may name.

A candidate sees `torch`, `F` (torch.nn.functional) and `math`. What it may reach through them,
what each name computes in torch and in sympy, what it costs and which keywords it takes is
written here once, as one `Op` per operation in `OPS` (and one `Constant` per named number in
`CONSTANTS`). Everything else derives from this table:

- the policy's allow-lists (`root_trees`, `allowed_names`): the attribute chains `torch.…`, `F.…`
  and `math.…` a candidate may write are exactly the `spellings` below;
- the interpreters' function tables (`FUNCTIONS`, `METHODS`, `keywords_of`) and the sympy
  back-end (`Op.sympy`);
- the probes' cost weights (`TRANSCENDENTAL_ATEN`, `FREE_ATEN`, `aten_weight`): the aten kernels
  an op dispatches (`Op.aten`) are charged its `weight` per element;
- the mutators' operator set (`unary_elementwise`).

**Adding one torch function to the language is one edit: one new `Op(...)` line in `OPS`**
(`op_table.py`). The tests (`tests/test_language_ops.py`) then check that its spellings resolve,
that its sympy formula agrees with torch, and that the aten kernels it claims are really dispatched.

Conventions:

- `spellings` are dotted source spellings. An `F.<name>` spelling brings its twin
  `torch.nn.functional.<name>` with it (the policy treats them as one). `math.<name>` spellings
  are listed on the op that computes the same real function (`math.sin` on `sin`); the
  interpreters call the callable each spelling names (`FUNCTIONS`), never a substitute, so
  `math.sin` of a tensor fails the way Python would. Math names that a later Python adds
  (`sumprod`, `fma`) are kept only where the running Python has them.
- `weight`: the cost per output element that `actmine.candidate.probes.measure_cost` charges for
  one forward call: 0 for views and allocations, 1 per arithmetic kernel, `TRANSCENDENTAL_WEIGHT`
  (8) per kernel that evaluates a transcendental function (exp, log, trig, erf, gamma, bessel,
  pow, sqrt, reciprocal, ...). Exact (and tested) for one-tensor elementwise ops; for a composite
  op (`F.softsign` = abs, add, div) it is the sum over its kernels and `aten` is empty, since the
  kernels belong to the ops that own them. Copies and dtype conversions weigh 1 per output element
  (`clone`, `_to_copy`, `copy_`, `lift_fresh_copy`): they move every element, so they are not free.
- `aten`: the aten kernels this op owns -- its forward kernel and any fused backward kernel that
  evaluates the same function again (`gelu_backward`) -- named as the probes' counter sees them
  (the overload packet's name with trailing `_` stripped: `copy_` is `copy`). Each is charged this
  op's weight. An aten name may be owned by several ops only when they agree on the weight
  (checked at import). Backward kernels that only do arithmetic on saved values (`tanh_backward`,
  `sigmoid_backward`) are left to the default weight 1.
- `kernels`: how many counted (non-free) kernels one forward call dispatches: the number of new
  tensors it makes, which bounds the bytes autograd can save for it (the mutators' cost bound).
- `sympy(args, kwargs)`: the op's formula, built from sympy expressions or numbers; None when the
  op has no closed form the report can use (reductions, structure, dtypes). A formula may raise
  `NoFormula` for a form it does not model (an unknown keyword value, a reduction over a dim).
- `kind`: "elementwise" (float tensor → float tensor, value by value), "comparison" (→ bool),
  "reduction" (reads other elements: sums, norms, softmax), "structure" (moves elements:
  reshape, cat, flip, subscripts), "constructor" (new tensors), "copy" (clone, conversions),
  "linalg", "spectral", "dtype", "utility" (type queries, `finfo`), "scalar" (math-only functions
  of Python numbers), "internal" (kernels autograd and indexing dispatch, no spelling).
- `arity`: the number of positional tensor/number arguments of the usual form, None when it varies.

Where each part lives: the entry types and the `op(...)` builder in `op_entries.py`, the sympy
formulas in `op_formulas.py`, the table itself (`OPS`, `CONSTANTS`) in `op_table.py`, and the views
derived from it (the indexes, the allow-lists, the cost weights) here, in the module every caller
reads the language from.
"""

from __future__ import annotations

from typing import Any, Iterable

from .op_entries import (
    ROOTS as ROOTS,
    TRANSCENDENTAL_WEIGHT as TRANSCENDENTAL_WEIGHT,
    Constant as Constant,
    NoFormula as NoFormula,
    Op as Op,
    op as op,
    resolve as resolve,
)
from .op_table import CONSTANTS as CONSTANTS, OPS as OPS

__all__ = [
    "Op",
    "Constant",
    "NoFormula",
    "OPS",
    "CONSTANTS",
    "TRANSCENDENTAL_WEIGHT",
    "ROOTS",
    "OP_BY_NAME",
    "OP_BY_SPELLING",
    "CONSTANT_BY_SPELLING",
    "FUNCTIONS",
    "METHODS",
    "KEYWORDS",
    "TRANSCENDENTAL_ATEN",
    "FREE_ATEN",
    "ATEN_WEIGHTS",
    "aten_weight",
    "resolve",
    "root_trees",
    "allowed_names",
    "namespace_tree",
    "keywords_of",
    "unary_elementwise",
    "op_of",
    "method_op",
]


# ------------------------------------------------------------------------------------------------
# Derived views
# ------------------------------------------------------------------------------------------------


def _index() -> tuple[dict[str, Op], dict[str, Op], dict[str, Constant]]:
    """The table indexed by name and by spelling; raises on a duplicate (a silent mismatch else)."""
    by_name: dict[str, Op] = {}
    by_spelling: dict[str, Op] = {}
    constants: dict[str, Constant] = {}
    for entry in OPS:
        if entry.name in by_name:
            raise ValueError(f"two ops named {entry.name!r} in actmine.language.ops.OPS")
        by_name[entry.name] = entry
        for spelling in entry.spellings:
            if spelling in by_spelling:
                raise ValueError(
                    f"`{spelling}` is spelled by both {by_spelling[spelling].name!r} and "
                    f"{entry.name!r} in actmine.language.ops.OPS"
                )
            by_spelling[spelling] = entry
    for constant in CONSTANTS:
        for spelling in constant.spellings:
            if spelling in by_spelling or spelling in constants:
                raise ValueError(f"`{spelling}` is both a constant and another entry of the table")
            constants[spelling] = constant
    return by_name, by_spelling, constants


OP_BY_NAME, OP_BY_SPELLING, CONSTANT_BY_SPELLING = _index()

#: spelling -> the callable (or dtype, class) that spelling names, for every op spelling.
FUNCTIONS: dict[str, Any] = {spelling: resolve(spelling) for spelling in OP_BY_SPELLING}

#: tensor method name -> its op (`x.tanh()`, `x.clamp(min=0)`).
METHODS: dict[str, Op] = {}
for _entry in OPS:
    for _method in _entry.methods:
        if METHODS.setdefault(_method, _entry) is not _entry:
            raise ValueError(
                f"the tensor method .{_method}() is claimed by {METHODS[_method].name!r} and "
                f"{_entry.name!r} in actmine.language.ops.OPS"
            )

#: Every keyword argument some op accepts.
KEYWORDS: frozenset[str] = frozenset().union(*(entry.keywords for entry in OPS))


def _aten_weights() -> dict[str, int]:
    weights: dict[str, int] = {}
    owner: dict[str, str] = {}
    for entry in OPS:
        if entry.aten and entry.weight not in (0, 1, TRANSCENDENTAL_WEIGHT):
            raise ValueError(
                f"op {entry.name!r} owns aten kernels but weighs {entry.weight}: a kernel weighs "
                f"0, 1 or {TRANSCENDENTAL_WEIGHT}; give a composite op no `aten`"
            )
        for name in entry.aten:
            if name != name.rstrip("_"):
                raise ValueError(
                    f"aten name {name!r} of {entry.name!r}: strip the trailing `_` (the probes' counter does)"
                )
            if weights.setdefault(name, entry.weight) != entry.weight:
                raise ValueError(
                    f"aten kernel {name!r} weighs {weights[name]} for {owner[name]!r} but "
                    f"{entry.weight} for {entry.name!r} in actmine.language.ops.OPS"
                )
            owner.setdefault(name, entry.name)
    return weights


#: aten kernel name (as the probes' counter sees it) -> the weight its owners charge per element.
ATEN_WEIGHTS: dict[str, int] = _aten_weights()
#: Kernels that evaluate a transcendental function: charged TRANSCENDENTAL_WEIGHT per element.
TRANSCENDENTAL_ATEN: frozenset[str] = frozenset(n for n, w in ATEN_WEIGHTS.items() if w == TRANSCENDENTAL_WEIGHT)
#: Kernels that move no data or only allocate it (views, allocations): free. Copies are not here.
FREE_ATEN: frozenset[str] = frozenset(n for n, w in ATEN_WEIGHTS.items() if w == 0)


def aten_weight(name: str) -> int:
    """The weight per element of the aten kernel `name` (trailing `_` stripped): 0, 1 or 8;
    a kernel no op owns is arithmetic (1)."""
    return ATEN_WEIGHTS.get(name.rstrip("_"), 1)


def op_of(spelling: str) -> Op | None:
    """The op a dotted spelling names (`"F.gelu"`), or None."""
    return OP_BY_SPELLING.get(spelling)


def method_op(method: str) -> Op | None:
    """The op a tensor method computes (`"tanh"` for `x.tanh()`), or None."""
    return METHODS.get(method)


def keywords_of(spelling_or_method: str) -> frozenset[str]:
    """The keyword arguments the interpreters accept for a spelling or a tensor method."""
    entry = OP_BY_SPELLING.get(spelling_or_method) or METHODS.get(spelling_or_method)
    return entry.keywords if entry is not None else frozenset()


def namespace_tree(spellings: Iterable[str]) -> dict[str, dict | None]:
    """Dotted spellings as a tree: name -> None (a leaf) or a sub-tree (a namespace)."""
    tree: dict[str, dict | None] = {}
    for spelling in sorted(spellings):
        node = tree
        *path, leaf = spelling.split(".")
        for part in path:
            child = node.setdefault(part, {})
            if child is None:
                raise ValueError(f"`{spelling}`: `{part}` is both a leaf and a namespace")
            node = child
        if isinstance(node.get(leaf), dict):
            raise ValueError(f"`{spelling}` is both a leaf and a namespace")
        node[leaf] = None
    return tree


def root_trees() -> dict[str, dict]:
    """The policy's allow-list trees, one per pre-imported root: every spelling of every op and
    constant. `{"torch": {"tanh": None, ..., "special": {...}, "nn": {"functional": {...}}}, "F": ...}`"""
    spellings = list(OP_BY_SPELLING) + list(CONSTANT_BY_SPELLING)
    tree = namespace_tree(spellings)
    return {root: tree.get(root) or {} for root in ROOTS}


def allowed_names(prefix: str) -> frozenset[str]:
    """The leaf names directly under a dotted prefix (`"torch"`, `"torch.special"`, `"F"`)."""
    node: Any = root_trees()
    for part in prefix.split("."):
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return frozenset()
    return frozenset(name for name, child in node.items() if child is None)


def unary_elementwise() -> tuple[Op, ...]:
    """The one-tensor elementwise ops of float tensors (arity 1, kind "elementwise") that have a
    tensor spelling: what a mutator may swap or unwrap."""
    return tuple(
        entry
        for entry in OPS
        if entry.kind == "elementwise" and entry.arity == 1 and any(not s.startswith("math.") for s in entry.spellings)
    )
