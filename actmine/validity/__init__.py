"""The validity study (`actmine validate`): does the lab's fitness predict downstream extrapolation?

At least two dozen functions spanning the range of lab fitness -- the pointwise library (the
paper's functions among it), search winners, random programs chosen stratified by lab fitness --
are scored by the lab on its test suites and trained on each downstream benchmark over several
seeds; the study reports Spearman's ρ between lab fitness and downstream fitness per benchmark and
pooled, with a bootstrap 95% interval over functions, tasks and seeds, which lab families predict
which benchmark, a scatter plot per benchmark, and what it cost. It resumes (``DIR/lab.jsonl``,
``DIR/transfer/results.jsonl``) and runs on the transfer runner's executors (local processes or Dask).

Modules: `functions` (which functions, as what they run), `labscore` (the lab side and its journal),
`data` (results to arrays), `stats` (ρ, the bootstrap, the stratified choice), `plots`, `report`
(Markdown), `study` (the whole run).
"""

from .functions import Function, ValidityInputError
from .stats import correlation, correlations, stratified_choice
from .study import DEFAULT_BENCHMARKS, Settings, run_validity, summary_table

__all__ = [
    "DEFAULT_BENCHMARKS",
    "Function",
    "Settings",
    "ValidityInputError",
    "correlation",
    "correlations",
    "run_validity",
    "stratified_choice",
    "summary_table",
]
