"""Loading generated program files (`actmine export` packs, `best_activation.py`) through the checked path.

A generated file (`actmine.language.files`) holds its programs as data. Whichever way it is
loaded -- `import mined_activations` / `from best_activation import BestActivation` (the file
calls `install_programs(globals())`), `actmine.activations.load_pack(path)`,
`actmine.activations.get("pack.py:NAME")` -- each program's source goes through the same steps
as any candidate: the static policy, then compilation in the restricted namespace
(`compile_candidate`). Nothing in the file runs as module code with real builtins; a program
the policy refuses raises its `CandidateError`, with its reason code, naming the program.

Loading runs the (checked) programs in this process, without the sandbox's resource limits:
the policy bounds what they can reach, not how long or how much memory their top level takes.
Evaluation (`actmine evaluate`, the search) runs programs only in sandboxed workers.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, MutableMapping

import torch
from torch import nn

from ..language.files import (
    FORMAT_NAME,
    FORMAT_VERSION,
    PROGRAMS_NAME,
    ProgramEntry,
    ProgramFile,
    ProgramFileError,
    programs_from_data,
)
from ..terminal import terminal_text
from .source import DEFAULT_MAX_SOURCE_CHARS, CandidateError, compile_candidate, read_program_file_at

__all__ = ["ProgramModule", "compile_programs", "install_programs", "load_program_file"]


class ProgramModule(nn.Module):
    """A checked, compiled program of a generated file as a module. Each program gets a subclass
    (`Mined12`, `BestActivation`) with the program's data as class attributes."""

    pointwise: ClassVar[bool] = True
    program_name: ClassVar[str] = ""
    formula: ClassVar[str] = ""
    program_id: ClassVar[int | None] = None
    search_fitness: ClassVar[float | None] = None
    heldout_fitness: ClassVar[float | None] = None
    info: ClassVar[Mapping[str, Any]] = {}
    function: ClassVar[Callable[[torch.Tensor], torch.Tensor]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return type(self).function(x)

    def extra_repr(self) -> str:
        return f"program={self.program_name!r}"


def _number(value: Any) -> float | None:
    return (
        float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        else None
    )


def _describe(entry: ProgramEntry, origin: str) -> str:
    """The class docstring, built at run time from the program's data (plain text, never code)."""
    info = entry.info
    lines = [
        f"Program {entry.name!r} of the program file {origin}, checked and compiled by actmine's candidate policy."
    ]
    if info.get("program_id") is not None:
        lines.append(f"Program #{info['program_id']} of the run {info.get('run_dir', '?')}.")
    if info.get("formula"):
        lines.append(f"Formula (LaTeX): {info['formula']}")
    if info.get("plain_formula"):
        lines.append(f"Plain: {info['plain_formula']}")
    for key, label in (("search_fitness", "Search fitness"), ("heldout_fitness", "Held-out fitness")):
        value = _number(info.get(key))
        lines.append(f"{label}: {'not measured' if value is None else f'{value:+.4f}'}.")
    families = info.get("family_log_ratios")
    if isinstance(families, dict) and families:
        lines.append(
            "Per-family OOD log-ratios vs ReLU: "
            + ", ".join(f"{k} {v:+.3f}" for k, v in sorted(families.items()) if _number(v) is not None)
            + "."
        )
    if info.get("mutator"):
        lines.append(f"Made by: {info['mutator']}" + (f" ({info['model']})" if info.get("model") else "") + ".")
    if info.get("rationale"):
        lines.append(f"Rationale: {info['rationale']}")
    lineage = info.get("lineage")
    if isinstance(lineage, list) and lineage:
        lines.append("Lineage (newest first):")
        lines += [
            f"    #{step.get('program_id')} (fitness {step.get('fitness')}): {step.get('rationale')}"
            for step in lineage
            if isinstance(step, dict)
        ]
    return terminal_text("\n".join(lines))  # `help(Mined12)` prints it: no live escape sequences


def _module_class(entry: ProgramEntry, function: Callable, module_name: str, origin: str) -> type[ProgramModule]:
    info = dict(entry.info)
    attributes = {
        "__module__": module_name,
        "__qualname__": entry.class_name,
        "__doc__": _describe(entry, origin),
        "pointwise": bool(info.get("pointwise", True)),
        "program_name": entry.name,
        "formula": str(info.get("formula") or info.get("plain_formula") or ""),
        "program_id": info.get("program_id") if isinstance(info.get("program_id"), int) else None,
        "search_fitness": _number(info.get("search_fitness")),
        "heldout_fitness": _number(info.get("heldout_fitness")),
        "info": info,
        "function": staticmethod(function),
    }
    return type(entry.class_name, (ProgramModule,), attributes)


def compile_programs(
    program_file: ProgramFile,
    origin: str,
    module_name: str,
    names: list[str] | None = None,
    max_chars: int = DEFAULT_MAX_SOURCE_CHARS,
) -> dict[str, type[ProgramModule]]:
    """Check and compile the programs of `program_file` (all, or those in `names`) and return
    their module classes by program name. A refused program raises its `CandidateError` (its
    reason code kept) with a message that names it and the file (`origin`)."""
    try:
        entries = [program_file.get(n) for n in names] if names is not None else list(program_file.programs)
    except ProgramFileError as exc:
        raise CandidateError(exc.code, f"{origin}: {exc}") from None
    classes = {}
    for entry in entries:
        try:
            function = compile_candidate(entry.source, filename=f"{origin}:{entry.name}", max_chars=max_chars)
        except CandidateError as exc:
            others = [n for n in program_file.names if n != entry.name]
            hint = (
                (
                    f"; the file's other programs load one at a time with actmine.activations.get('FILE.py:NAME') "
                    f"({', '.join(others)})"
                )
                if others and names is None
                else ""
            )
            raise CandidateError(
                exc.code, f"the checked loader refused program {entry.name!r} [{exc.code}]: {exc}{hint}", exc.line
            ) from None
        classes[entry.name] = _module_class(entry, function, module_name, origin)
    return classes


def module_name_for(path: Path) -> str:
    """A stable module name per file, so loading the same file again is a reload in the registry."""
    return "actmine_pack_" + hashlib.sha256(str(path).encode()).hexdigest()[:16]


def load_program_file(path: str | Path, names: list[str] | None = None) -> dict[str, type[ProgramModule]]:
    """Read the generated file at `path` (never importing it), check and compile its programs (all,
    or those in `names`) and return their module classes by program name."""
    path = Path(path).expanduser().resolve()
    program_file = read_program_file_at(path)
    return compile_programs(program_file, str(path), module_name_for(path), names)


def install_programs(namespace: MutableMapping[str, Any]) -> None:
    """What a generated file calls when Python imports it: check and compile its `PROGRAMS` and bind,
    in the importing module, one class per program (its `class_name`), `ACTIVATIONS` (program
    name -> class) and, for a one-program file such as `best_activation.py`, `activation_function`.
    Raises `CandidateError` (the import fails) when the data is out of shape or a program is refused."""
    origin = str(namespace.get("__file__") or namespace.get("__name__") or "<program file>")
    if namespace.get(FORMAT_NAME) != FORMAT_VERSION:
        raise CandidateError(
            "bad_program_file",
            f"{origin}: {FORMAT_NAME} is {namespace.get(FORMAT_NAME)!r}, this "
            f"actmine reads format {FORMAT_VERSION}; regenerate the file",
        )
    try:
        program_file = programs_from_data(namespace.get(PROGRAMS_NAME))
    except ProgramFileError as exc:
        raise CandidateError(exc.code, f"{origin}: {exc}") from None
    classes = compile_programs(program_file, origin, str(namespace.get("__name__") or "program_file"))
    for cls in classes.values():
        namespace[cls.__name__] = cls
    namespace["ACTIVATIONS"] = dict(classes)
    if len(classes) == 1:
        namespace["activation_function"] = next(iter(classes.values())).function
