"""A transfer run's input, resolved and checked in the parent before any job starts: the
activations (registry names, or programs read as data and policy-checked, never run here), the
benchmarks and their options, and where the data are. Bad input is a `TransferInputError`
(the CLI's exit status 2) or a `DatasetMissing`, raised before anything is started.

Nothing untrusted runs here; kept apart from the runner so that the checks read as one piece.
"""

from __future__ import annotations

import inspect
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..yaml_text import load_yaml, yaml_error_text
from .base import DatasetMissing, list_benchmarks, registered_benchmark
from .child import _import_object
from .summary import REFERENCE


class TransferInputError(ValueError):
    """Bad input to a transfer run (unknown activation or benchmark, bad option, refused candidate
    file, no GPU): raised in the parent before any job starts; the CLI's exit status 2."""


def default_data_dir() -> Path:
    """``$ACTMINE_DATA_DIR``, else ``~/.cache/actmine/data``."""
    return Path(os.environ.get("ACTMINE_DATA_DIR") or Path.home() / ".cache" / "actmine" / "data").expanduser()


@dataclass(frozen=True)
class ActivationSpec:
    """A resolved activation: its display ``name``, ``kind`` (``registry``; ``file`` or ``pack``:
    a program), for a registry activation the ``reference`` the child passes to
    ``activations.get``, and for a program its policy-checked ``source`` (compiled only in the child)."""

    name: str
    kind: str
    reference: str | None = None
    source: str | None = None
    given: str = ""


def resolve_activation(text: str) -> ActivationSpec:
    """A registry name (trusted: the child builds it with ``activations.get``), or a program: a
    candidate ``.py`` file or an entry of a generated program file (``PACK.py:NAME``, an export
    pack). A program is untrusted: read here as data (`read_candidate_reference`, never imported
    or run), checked with the static policy, and compiled only in the job's confined process."""
    import actmine.activations as activations
    from ..candidate.source import CandidateError, check_source, read_candidate_reference
    from ..language.files import split_program_reference

    text = text.strip()
    if not text:
        raise TransferInputError("an empty activation name")
    entry = split_program_reference(text) is not None
    if entry or text.endswith(".py") or os.sep in text:
        try:
            name, source = read_candidate_reference(text)
            check_source(source, filename=text)
        except CandidateError as exc:
            raise TransferInputError(f"activation {text!r} refused [{exc.code}]: {exc}") from None
        return ActivationSpec(name, "pack" if entry else "file", source=source, given=text)
    try:
        name = activations.info(text).name
    except activations.UnknownActivationError as exc:
        raise TransferInputError(
            f"{exc}. Give a registry name (see `actmine list`), a .py file defining "
            "activation_function(x), or an exported pack's PACK.py:NAME"
        ) from None
    return ActivationSpec(name, "registry", reference=name, given=text)


def _resolve_activations(texts: Sequence[str]) -> tuple[list[ActivationSpec], bool]:
    import actmine.activations as activations

    specs: list[ActivationSpec] = []
    for text in texts:
        spec = resolve_activation(text)
        if any(s.kind == spec.kind and s.reference == spec.reference and s.source == spec.source for s in specs):
            continue  # the same activation twice
        specs.append(spec)
    # Display names must be unique, and a file or pack entry must not pass for a registry activation.
    names = [s.name for s in specs]
    specs = [
        s
        if s.kind == "registry" or (names.count(s.name) == 1 and s.name not in activations.REGISTRY)
        else ActivationSpec(s.given, s.kind, s.reference, s.source, s.given)
        for s in specs
    ]
    if len({s.name for s in specs}) != len(specs):
        raise TransferInputError("two activations have the same name: " + ", ".join(s.given for s in specs))
    added = not any(s.kind == "registry" and s.name == REFERENCE for s in specs)
    if added:
        specs.insert(0, ActivationSpec(REFERENCE, "registry", reference=REFERENCE, given=REFERENCE))
    return specs, added


def check_benchmarks(
    names: Sequence[str],
    options: Mapping[str, Mapping[str, Any]] | None = None,
    epochs: int | None = None,
    data_dir: str | Path | None = None,
) -> tuple[dict[str, type], dict[str, dict[str, Any]]]:
    """Everything about the benchmarks that can be wrong before a job starts: ``({name: class},
    {name: constructor options})`` for ``names`` (duplicates dropped), or `TransferInputError` (an
    unknown name, an unknown option or a bad value) or `DatasetMissing` (its data are not in
    ``data_dir``, default `default_data_dir()`)."""
    classes = _benchmark_classes(list(dict.fromkeys(b.strip().lower() for b in names)))
    resolved = _benchmark_options(classes, options or {}, epochs)
    data = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    for name, cls in classes.items():
        try:
            cls(**resolved[name]).check_data(data.resolve())
        except DatasetMissing as exc:
            raise DatasetMissing(f"{name}: its data are missing: {exc}") from None
    return classes, resolved


def _benchmark_classes(names: Sequence[str]) -> dict[str, type]:
    classes: dict[str, type] = {}
    for name in names:
        key = name.strip().lower()
        if not key:
            raise TransferInputError("an empty benchmark name")
        benchmark = registered_benchmark(key)  # imports the built-in benchmark modules if need be
        if benchmark is None:
            import difflib

            known = list_benchmarks()
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TransferInputError(f"unknown benchmark {name!r}{hint}; known: {', '.join(known) or 'none'}")
        classes[key] = benchmark
    return classes


def _class_path(cls: type) -> str:
    """``module:QualName`` of a benchmark class, checked to import back to the same class."""
    path = f"{cls.__module__}:{cls.__qualname__}"
    try:
        # a job's process is a fresh interpreter: the script run as __main__ is not there
        found = _import_object(path) if cls.__module__ != "__main__" else None
    except (ImportError, AttributeError):
        found = None
    if found is not cls:
        raise TransferInputError(
            f"benchmark class {cls.__qualname__} cannot be imported as {path}: define it at "
            "the top level of an importable module so that job processes can load it"
        )
    return path


def _option_names(cls: type) -> tuple[list[str], bool]:
    """The constructor's keyword parameters, and whether it takes **kwargs."""
    parameters = inspect.signature(cls).parameters.values()
    names = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return names, any(p.kind == p.VAR_KEYWORD for p in parameters)


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def parse_options(items: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``["digits.epochs=3", "clrs.algorithms=[bfs, dfs]"]`` → ``{"digits": {"epochs": 3}, ...}``;
    values are YAML (``3`` is an int, ``0.1`` a float, ``true`` a bool, ``none`` a string)."""
    import yaml

    options: dict[str, dict[str, Any]] = {}
    for item in items:
        target, eq, text = item.partition("=")
        benchmark, dot, key = target.strip().partition(".")
        if not (eq and dot and benchmark and key):
            raise TransferInputError(f"--option {item!r}: write BENCHMARK.KEY=VALUE, e.g. digits.epochs=5")
        try:
            value = load_yaml(text) if text.strip() else ""
        except yaml.YAMLError as exc:
            raise TransferInputError(
                f"--option {item!r}: the value is not valid YAML ({yaml_error_text(exc)})"
            ) from None
        if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise TransferInputError(
                f"--option {item!r}: the value must be a number, string, boolean or null (or a list of them)"
            ) from None
        options.setdefault(benchmark.strip().lower(), {})[key.strip()] = value
    return options


def _benchmark_options(
    classes: Mapping[str, type], options: Mapping[str, Mapping[str, Any]], epochs: int | None
) -> dict[str, dict[str, Any]]:
    resolved: dict[str, dict[str, Any]] = {name: {} for name in classes}
    for benchmark, values in options.items():
        key = benchmark.strip().lower()
        if key not in classes:
            raise TransferInputError(
                f"--option {benchmark}.…: {benchmark!r} is not among the benchmarks of this run ({', '.join(classes)})"
            )
        names, any_key = _option_names(classes[key])
        for option, value in values.items():
            if option not in names and not any_key:
                raise TransferInputError(
                    f"--option {benchmark}.{option}: {key} has no option {option!r}; its "
                    f"options: {', '.join(names) or 'none'}"
                )
            resolved[key][option] = value
    if epochs is not None:
        takers = [name for name, cls in classes.items() if "epochs" in _option_names(cls)[0]]
        if not takers:
            raise TransferInputError(f"--epochs: none of the benchmarks ({', '.join(classes)}) has an epochs option")
        for name in takers:
            resolved[name].setdefault("epochs", epochs)
    for name, cls in classes.items():  # configuration-only constructors: values are checked here
        try:
            cls(**resolved[name])
        except Exception as exc:  # noqa: BLE001 - a bad option value, reported as bad input
            raise TransferInputError(
                f"benchmark {name} with options {resolved[name]}: {type(exc).__name__}: {exc}"
            ) from None
    return resolved
