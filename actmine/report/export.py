"""`export_pack(run_dir, top, out)`: the top programs of a run as one plain PyTorch module file.

The file imports only `math` and `torch`; it holds, for each exported program, its source with
every top-level name renamed per program (`activation_function` → `activation_<id>`, a helper
`helper` → `helper_<id>`, …; renamed with `ast`, so recursive calls and helper calls follow),
a class `Mined<id>(nn.Module)` with a docstring (formula, search and held-out fitness, origin)
and a module-level registry `ACTIVATIONS = {"mined_<id>": Mined<id>, …}`.

Load it with `actmine.activations.load_pack(path)` or `activations.get("pack.py:mined_<id>")`, or
with plain `importlib` (no actmine needed). Importing the pack runs the exported programs' code:
it is meant for the user's own runs.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from ..evolve.database import ProgramDatabase, ProgramRecord
from .formula import simplified_formula, sympy_expression
from .html import heldout_results

__all__ = ["export_pack", "rename_program"]

ENTRY = "activation_function"


def _bound_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return names


def rename_program(source: str, suffix: str, entry_name: str) -> str:
    """The source with `activation_function` renamed to `entry_name` and every other top-level
    name `n` (helpers, constants) to `n_<suffix>`, everywhere the identifier occurs (definitions,
    calls, parameters, globals). Consistent whole-identifier renaming keeps the meaning."""
    tree = ast.parse(source)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | \
           {n.arg for n in ast.walk(tree) if isinstance(n, ast.arg)} | _bound_names(tree)
    mapping: dict[str, str] = {}
    for name in sorted(_bound_names(tree)):
        new = entry_name if name == ENTRY else f"{name}_{suffix}"
        while new in used and new != entry_name:
            new += "_"
        mapping[name] = new

    class Rename(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.AST:
            node.id = mapping.get(node.id, node.id)
            return node

        def visit_arg(self, node: ast.arg) -> ast.AST:
            node.arg = mapping.get(node.arg, node.arg)
            self.generic_visit(node)
            return node

        def _definition(self, node: Any) -> ast.AST:
            node.name = mapping.get(node.name, node.name)
            self.generic_visit(node)
            return node

        visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _definition

        def visit_Global(self, node: ast.Global) -> ast.AST:
            node.names = [mapping.get(n, n) for n in node.names]
            return node

        visit_Nonlocal = visit_Global

    return ast.unparse(Rename().visit(tree))


def _docstring_literal(text: str, indent: str) -> str:
    """A triple-quoted literal whose value is `text` (untrusted: no way out of the string)."""
    text = "".join(c if c in "\n\t" or (c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF) else "?" for c in text)
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    body = "\n".join((indent + line) if line.strip() else "" for line in text.split("\n"))
    return f'"""{body.lstrip()}\n{indent}"""'


def _one_line(text: str | None, limit: int = 400) -> str:
    text = re.sub(r"\s+", " ", text or "").strip()
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _plain_formula(source: str) -> str:
    expr = sympy_expression(source)
    return str(expr) if expr is not None else ""


def _program_block(record: ProgramRecord, run_dir: Path, heldout: float | None) -> tuple[str, str]:
    pid = record.id
    entry = f"activation_{pid}"
    renamed = rename_program(record.source, str(pid), entry)
    latex = simplified_formula(record.source)
    plain = _plain_formula(record.source)
    families = ", ".join(f"{k} {v:+.3f}" for k, v in sorted((record.family_log_ratios or {}).items()))
    heldout_text = "not measured" if heldout is None else f"{heldout:+.4f}"
    doc = "\n".join([
        f"Activation mined by actmine (program #{pid}).",
        "",
        "Formula (sympy, simplified, LaTeX):" if latex else "Formula: not derivable from the source (see the code).",
        *([f"    {latex}", ""] if latex else [""]),
        *([f"Plain: {plain}", ""] if plain else []),
        "Args:",
        "    None: the function has no parameters.",
        "",
        "Shape:",
        "    - Input: :math:`(*)`, any shape.",
        "    - Output: :math:`(*)`, same shape as the input.",
        "",
        f"Search fitness: {record.fitness:+.4f} (−mean ln(OOD error ÷ ReLU's); higher is better).",
        f"Held-out fitness: {heldout_text}.",
        *([f"Per-family OOD log-ratios vs ReLU: {families}."] if families else []),
        "",
        f"Origin: run {run_dir}, program #{pid}, proposal {record.proposal_index}, mutator {record.mutator}"
        + (f" ({record.model})" if record.model else "") + ".",
        f"Rationale: {_one_line(record.rationale)}",
    ])
    formula_value = latex or plain or ""
    cls = f"Mined{pid}"
    class_text = f'''

class {cls}(nn.Module):
    {_docstring_literal(doc, "    ")}

    pointwise = True
    formula = {formula_value!r}
    program_id = {int(pid)}
    search_fitness = {float(record.fitness)!r}
    heldout_fitness = {None if heldout is None else float(heldout)!r}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return {entry}(x)
'''
    return f"# ---- program #{pid}\n{renamed}\n{class_text}", cls


def _heldout_map(run_dir: Path, db: ProgramDatabase, run_id: int) -> dict[int, float | None]:
    return heldout_results(run_dir, db, run_id)[0]


def export_pack(run_dir: str | Path, top: int = 5, out: str | Path | None = None) -> Path:
    """Write the `top` fittest programs of the latest run in `run_dir` as one module file
    (default `RUN_DIR/mined_activations.py`) and return its path."""
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / "mined_activations.py"
    with ProgramDatabase(run_dir / "programs.sqlite", readonly=True) as db:
        run = db.latest_run()
        if run is None:
            raise ValueError(f"{run_dir} holds no run")
        records = db.top(run["id"], top)
        heldout = _heldout_map(run_dir, db, run["id"])
    if not records:
        raise ValueError(f"{run_dir} has no scored program to export")
    blocks, registry = [], []
    for record in records:
        block, cls = _program_block(record, run_dir.resolve(), heldout.get(record.id))
        blocks.append(block)
        registry.append(f'    "mined_{record.id}": {cls},')
    doc = (f"Activations mined by actmine from the run in {str(run_dir.resolve())}.\n\n"
           "Each `Mined<id>` module wraps program #<id>'s function (renamed `activation_<id>`). Load with\n"
           "`actmine.activations.load_pack(this_file)`, `actmine.activations.get(\"this_file.py:mined_<id>\")`\n"
           "or plain importlib; `ACTIVATIONS` maps the stable names to the classes.")
    header = _docstring_literal(doc, "") + f'''

import math

import torch
import torch.nn.functional as F
from torch import nn

'''
    text = header + "\n\n".join(blocks) + "\n\nACTIVATIONS = {\n" + "\n".join(registry) + "\n}\n"
    ast.parse(text)  # never write a file that does not parse
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(out.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(out)
    return out
