"""Viewing a search's results: figures, formulas, the HTML report and the activation pack export.

- `plots`: curves/derivatives, per-family bars, fitness over time, per-task heatmap,
  `plot_comparison` (for `actmine compare --plot`).
- `formula`: `simplified_formula(source)` (ast → sympy → LaTeX; never executes the source).
- `html`: `write_report(run_dir, out=None, top=5)`, one self-contained HTML file.
- `export`: `export_pack(run_dir, top, out)`, a generated program file (data only) of the top programs.
"""

from .export import export_pack
from .formula import safe_function, simplified_formula, sympy_expression
from .html import write_report
from .plots import (
    curves_figure,
    data_uri,
    family_bars_figure,
    fitness_over_time_figure,
    heatmap_figure,
    plot_comparison,
    png_bytes,
)

__all__ = [
    "export_pack",
    "write_report",
    "simplified_formula",
    "sympy_expression",
    "safe_function",
    "curves_figure",
    "family_bars_figure",
    "fitness_over_time_figure",
    "heatmap_figure",
    "plot_comparison",
    "png_bytes",
    "data_uri",
]
