"""The candidate language: what a candidate program may say, and what it means.

- `ops`: the one table of operations (spellings, torch function, sympy formula, cost weight, aten
  kernels, keywords). The policy's allow-lists (`actmine.candidate.source`), the probes' cost
  weights (`actmine.candidate.probes`), the mutators' operator set (`actmine.evolve.mutators`) and
  the interpreters' function tables all derive from it: adding a function is one `Op(...)` entry
  in the table itself (`op_table`; its entry types and builder are in `op_entries`, the sympy
  formulas in `op_formulas`).
- `program`: the checked representation of a straight-line program, and the one renderer.
- `interpreter`: the one interpreter of such programs, with a torch and a sympy back-end.
- `files`: generated program files (export packs, `best_activation.py`): data and a loader only.
- `normalise`: model answers rewritten into the language before the policy judges them (the rules
  in `normalise_rules` and `normalise_classes`, over `normalise_scopes`, `normalise_edits` and
  `normalise_vocabulary`).

This package imports only torch, sympy and the standard library: every other layer imports it,
never the reverse.
"""
