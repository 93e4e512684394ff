"""Generated program files (`actmine export` packs, a search's `best_activation.py`): one renderer, one reader.

A generated file holds **data and one loader call, nothing else**:

    # actmine program file: data only (see actmine/language/files.py) ...
    \"\"\"<a docstring made of trusted, sanitised text>\"\"\"

    ACTMINE_FORMAT = 1
    PROGRAMS = {
        'mined_12': {
            'class_name': 'Mined12',
            'source': ('def activation_function(x):\\n'
                       '    return x * torch.sigmoid(x)\\n'),
            'formula': ..., 'search_fitness': ..., 'rationale': ..., ...
        },
    }

    from actmine.candidate.loader import install_programs
    install_programs(globals())

Every program's source, name, formula, scores, lineage and rationale is a Python literal written with
`ascii()` -- untrusted text (a rationale holding `\"\"\"; import os; ...`, a terminal escape, a
line break) stays inside its string: no character of it can end the literal or start a statement,
and the file is pure ASCII. The docstring holds only the caller's trusted text, sanitised anyway.

The programs are never module code. Importing the file with plain Python runs the loader, which
checks and compiles each source through the candidate policy and the restricted namespace
(`actmine.candidate.loader`). Reading it (`read_program_file`) parses the text with `ast` and
`ast.literal_eval`s the data: it never imports or executes the file. A file that is not exactly
this shape -- plain code from an older actmine, or a generated file someone added code to -- is
refused with a `ProgramFileError` saying how to regenerate it.

This module imports nothing from the rest of actmine (the loader's module is named here, as text).
"""

from __future__ import annotations

import ast
import hashlib
import math
import numbers
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = [
    "FORMAT_VERSION",
    "LOADER_FUNCTION",
    "LOADER_MODULE",
    "MAX_FILE_BYTES",
    "MAX_FILE_ITEMS",
    "ProgramEntry",
    "ProgramFile",
    "ProgramFileError",
    "programs_from_data",
    "read_program_file",
    "render_program_file",
    "split_program_reference",
]

FORMAT_VERSION = 1
FORMAT_NAME = "ACTMINE_FORMAT"
PROGRAMS_NAME = "PROGRAMS"
LOADER_MODULE = "actmine.candidate.loader"
LOADER_FUNCTION = "install_programs"
#: Generated files larger than this are refused before they are parsed (a pack of a few programs
#: with their lineages is tens of kilobytes).
MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_FILE_ITEMS = 500_000  # commas and brackets: an export of 50 programs holds about 3,000

#: Program names: registry spellings (lower case, digits, `_`), so `get("pack.py:NAME")` finds them.
_NAME = re.compile(r"[a-z][a-z0-9_]{0,99}\Z")
#: Names the loader binds in the module besides the classes: a class may not take one.
RESERVED_NAMES = frozenset({FORMAT_NAME, PROGRAMS_NAME, LOADER_FUNCTION, "ACTIVATIONS", "activation_function"})

_HEADER = (
    "# actmine program file: data only. Each program below is untrusted source text held in a string;\n"
    "# importing this file runs the programs only through actmine's checked loader (the candidate\n"
    "# policy, then the restricted namespace), never as module code. Regenerate it rather than edit it.\n"
)


class ProgramFileError(ValueError):
    """A generated program file cannot be used. `code`: `stale_program_file` (plain code, as an older
    actmine wrote: re-export or re-run), `bad_program_file` (not the shape the renderer writes),
    `unknown_program` (`FILE.py:NAME` names no program of the file); the message says what to do."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ProgramEntry:
    """One program of a generated file: its registry `name`, the `class_name` its module gets,
    its `source` (untrusted: compile only through the checked path) and the rest of its data
    (`info`: formula, scores, lineage, rationale, ... -- plain literals)."""

    name: str
    class_name: str
    source: str
    info: Mapping[str, Any] = field(default_factory=dict)

    def to_data(self) -> dict[str, Any]:
        info = {k: v for k, v in self.info.items() if k not in ("class_name", "source")}
        return {"class_name": self.class_name, **info, "source": self.source}


@dataclass(frozen=True)
class ProgramFile:
    """The data of one generated file: its programs, in file order."""

    programs: tuple[ProgramEntry, ...]

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.programs]

    def get(self, name: str) -> ProgramEntry:
        """The program called `name` (registry spelling: case-insensitive, `-` = `_`)."""
        key = name.strip().lower().replace("-", "_")
        for program in self.programs:
            if program.name == key:
                return program
        raise ProgramFileError(
            "unknown_program",
            f"there is no program {name!r} in the file; it holds: {', '.join(self.names) or 'nothing'}",
        )


# ------------------------------------------------------------------------------------------------
# Validation (shared by the reader and by the loader's plain-import path)
# ------------------------------------------------------------------------------------------------


def _check_value(value: Any, where: str, depth: int = 0) -> None:
    """Only the literals `ast.literal_eval` gives back and `ascii()` writes back: no sets, bytes,
    complex numbers or non-finite floats (`nan` is not a literal)."""
    if depth > 20:
        raise ProgramFileError("bad_program_file", f"{where}: data nested too deeply")
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ProgramFileError("bad_program_file", f"{where}: non-finite number {value!r}")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_value(item, f"{where}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ProgramFileError("bad_program_file", f"{where}: key {key!r} is not a string")
            _check_value(item, f"{where}[{key!r}]", depth + 1)
        return
    raise ProgramFileError("bad_program_file", f"{where}: {type(value).__name__} is not allowed in a program file")


def _check_class_name(name: Any, where: str) -> str:
    if not (
        isinstance(name, str)
        and name.isidentifier()
        and name.isascii()
        and not name.startswith("_")
        and name not in RESERVED_NAMES
        and not _is_keyword(name)
    ):
        raise ProgramFileError("bad_program_file", f"{where}: class_name {name!r} is not a plain public identifier")
    return name


def _is_keyword(name: str) -> bool:
    import keyword

    return keyword.iskeyword(name) or keyword.issoftkeyword(name)


def programs_from_data(data: Any) -> ProgramFile:
    """Validate the `PROGRAMS` value of a generated file and return it as a `ProgramFile`.
    Raises `ProgramFileError` (`bad_program_file`) naming what is wrong."""
    if not isinstance(data, dict) or not data:
        raise ProgramFileError("bad_program_file", f"{PROGRAMS_NAME} must be a non-empty dict of programs")
    programs, class_names = [], set()
    for name, entry in data.items():
        if not (isinstance(name, str) and _NAME.match(name)):
            raise ProgramFileError(
                "bad_program_file",
                f"{PROGRAMS_NAME}: program name {name!r} must be lower case "
                "letters, digits and `_`, starting with a letter",
            )
        where = f"{PROGRAMS_NAME}[{name!r}]"
        if not isinstance(entry, dict):
            raise ProgramFileError("bad_program_file", f"{where} must be a dict")
        _check_value(entry, where)
        source = entry.get("source")
        if not isinstance(source, str):
            raise ProgramFileError("bad_program_file", f"{where} has no 'source' string")
        class_name = _check_class_name(entry.get("class_name"), where)
        if class_name in class_names:
            raise ProgramFileError("bad_program_file", f"{where}: class_name {class_name!r} is used twice")
        class_names.add(class_name)
        info = {k: v for k, v in entry.items() if k not in ("source", "class_name")}
        programs.append(ProgramEntry(name, class_name, source, info))
    return ProgramFile(tuple(programs))


# ------------------------------------------------------------------------------------------------
# The renderer
# ------------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """`value` as the reader will give it back: tuples as lists, numbers as `int`/`float`, and a
    non-finite float (a diverged score; `nan` is no literal) as None."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value) if math.isfinite(value) else None
    return value  # anything else is refused by programs_from_data, naming it


def _docstring(text: str) -> str:
    """A triple-quoted docstring of `text` that cannot end early: printable ASCII and line breaks
    only, no backslash or double quote (each replaced), so the literal is exactly the text."""
    clean = "".join(
        c if c == "\n" or (" " <= c <= "~" and c not in '\\"') else ("'" if c == '"' else "?") for c in text
    )
    return '"""' + clean.strip("\n") + '\n"""\n'


def _literal(value: Any, indent: int) -> str:
    """`value` as a Python literal, pretty-printed: dicts and lists one item a line, strings with
    line breaks as implicitly concatenated `ascii()` pieces one line each (`ast.literal_eval`
    reads them back as one string)."""
    pad, inner = " " * indent, " " * (indent + 4)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{inner}{ascii(k)}: {_literal(v, indent + 4)}," for k, v in value.items()]
        return "{\n" + "\n".join(items) + f"\n{pad}}}"
    if isinstance(value, (list, tuple)):
        if all(v is None or isinstance(v, (bool, int, float)) for v in value):
            return "[" + ", ".join(ascii(v) for v in value) + "]"
        items = [f"{inner}{_literal(v, indent + 4)}," for v in value]
        return "[\n" + "\n".join(items) + f"\n{pad}]"
    if isinstance(value, str) and "\n" in value.rstrip("\n"):
        pieces = value.splitlines(keepends=True)
        return "(\n" + "\n".join(f"{inner}{ascii(p)}" for p in pieces) + f"\n{pad})"
    return ascii(value)


def render_program_file(programs: list[ProgramEntry] | tuple[ProgramEntry, ...], docstring: str) -> str:
    """The text of a generated file holding `programs` (in that order) and `docstring`.

    `docstring` should be the caller's own text (counts, ids, scores), not a rationale: it is
    sanitised (printable ASCII, no quotes or backslashes) so that it cannot end early, but the
    data belongs in the programs' fields. The text is read back before it is returned: the
    renderer never returns a file its reader would refuse or read differently."""
    data = {p.name: _plain(p.to_data()) for p in programs}
    expected = programs_from_data(data)
    text = (
        _HEADER + _docstring(docstring) + "\n"
        f"{FORMAT_NAME} = {FORMAT_VERSION}\n"
        f"{PROGRAMS_NAME} = {_literal(data, 0)}\n\n"
        f"from {LOADER_MODULE} import {LOADER_FUNCTION}  # noqa: E402 -- checks and compiles the programs\n"
        f"{LOADER_FUNCTION}(globals())\n"
    )
    if read_program_file(text) != expected:
        raise AssertionError("the rendered program file does not read back as its data")  # a bug here, not input
    return text


# ------------------------------------------------------------------------------------------------
# The reader
# ------------------------------------------------------------------------------------------------


def _assigned_name(node: ast.stmt) -> str | None:
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id
    return None


def is_program_file(tree: ast.Module) -> bool:
    """Whether a parsed module declares itself a generated program file (`ACTMINE_FORMAT = ...`)."""
    return any(_assigned_name(node) == FORMAT_NAME for node in tree.body)


def _stale(what: str) -> ProgramFileError:
    return ProgramFileError(
        "stale_program_file",
        f"{what} holds plain Python code, not actmine's data-only program format: it was written by an older "
        "actmine (or by hand), and loading it would run that code with real builtins, so it is refused. "
        "Regenerate it: `actmine export RUN_DIR --out FILE.py` for a pack; for best_activation.py, "
        "`actmine search --run-dir RUN_DIR` (resuming a run rewrites it). A single candidate file "
        "(`def activation_function(x): ...`) can still be evaluated with `actmine evaluate FILE.py`.",
    )


# The statements a program file holds after its docstring, as messages show them (what
# `render_program_file` writes; anything else is refused rather than run).
_FILE_SHAPE = (
    "ACTMINE_FORMAT = <int>",
    "PROGRAMS = {...}",
    f"from {LOADER_MODULE} import {LOADER_FUNCTION}",
    f"{LOADER_FUNCTION}(globals())",
)


def read_program_file(text: str, what: str = "the file") -> ProgramFile:
    """The programs of a generated file's `text`, read with `ast` and `ast.literal_eval` only.

    The module must be exactly what `render_program_file` writes: a docstring, `ACTMINE_FORMAT =
    <version>`, `PROGRAMS = {...}` and the loader's import and call. `what` names the file in
    messages. Raises `ProgramFileError`: `stale_program_file` when there is no `ACTMINE_FORMAT`
    (plain code), `bad_program_file` for anything else out of shape."""
    key = (what, hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest())
    if key in _READ:  # `compare PACK.py` reads the pack once per program: parse it once
        _READ.move_to_end(key)
        return _READ[key]
    tree = _parse_program_module(text, what)
    version, programs, loader_import, loader_call = _program_statements(tree, what)
    _check_statement_shapes(version, programs, loader_import, loader_call, what)
    found, data = _literal_values(version, programs, what)
    _check_format_version(found, what)
    try:
        program_file = programs_from_data(data)
    except ProgramFileError as exc:
        raise ProgramFileError(exc.code, f"{what}: {exc}") from None
    _READ[key] = program_file
    while len(_READ) > 8:
        _READ.popitem(last=False)
    return program_file


#: the last files read, by name and content (a `ProgramFile` is frozen)
_READ: "OrderedDict[tuple[str, str], ProgramFile]" = OrderedDict()


def _parse_program_module(text: str, what: str) -> ast.Module:
    """`text` parsed, once it is known to be small enough and to declare itself a program file."""
    if len(text) > MAX_FILE_BYTES:
        raise ProgramFileError(
            "bad_program_file",
            f"{what} is {len(text):,} characters, more than a program file may hold ({MAX_FILE_BYTES:,})",
        )
    items = sum(text.count(c) for c in ",([{")  # an upper bound on the literals' nodes, counted cheaply
    if items > MAX_FILE_ITEMS:
        # 8 MB of `[],` is 2.8 million nodes, and `ast.parse` took 4 GB for them
        raise ProgramFileError(
            "bad_program_file",
            f"{what} holds {items:,} commas and brackets, more than a program file has ({MAX_FILE_ITEMS:,}): "
            "regenerate it with `actmine export` rather than edit it",
        )
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise ProgramFileError(
            "bad_program_file", f"{what} is not valid Python: {getattr(exc, 'msg', None) or type(exc).__name__}"
        ) from None
    if not is_program_file(tree):
        raise _stale(what)
    return tree


def _program_statements(tree: ast.Module, what: str) -> list[ast.stmt]:
    """The module's statements after its docstring: exactly as many as `_FILE_SHAPE` names."""
    body = list(tree.body)
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        body = body[1:]
    if len(body) != len(_FILE_SHAPE):
        raise ProgramFileError(
            "bad_program_file",
            f"{what} has {len(body)} statements after its docstring; a program "
            f"file has exactly {len(_FILE_SHAPE)}: " + "; ".join(_FILE_SHAPE) + ". Regenerate it rather than edit it.",
        )
    return body


def _out_of_shape(what: str, node: ast.stmt, expected: str) -> ProgramFileError:
    return ProgramFileError(
        "bad_program_file",
        f"{what}, line {node.lineno}: expected `{expected}`, found "
        f"`{ast.unparse(node)[:80]}`. Regenerate the file rather than "
        "edit it.",
    )


def _check_statement_shapes(
    version: ast.stmt, programs: ast.stmt, loader_import: ast.stmt, loader_call: ast.stmt, what: str
) -> None:
    """Each of the four statements is the one `_FILE_SHAPE` names there, checked in file order."""
    if _assigned_name(version) != FORMAT_NAME:
        raise _out_of_shape(what, version, _FILE_SHAPE[0])
    if _assigned_name(programs) != PROGRAMS_NAME:
        raise _out_of_shape(what, programs, _FILE_SHAPE[1])
    if not _is_loader_import(loader_import):
        raise _out_of_shape(what, loader_import, _FILE_SHAPE[2])
    if not _is_loader_call(loader_call):
        raise _out_of_shape(what, loader_call, _FILE_SHAPE[3])


def _is_loader_import(node: ast.stmt) -> bool:
    """Whether `node` is exactly `from <LOADER_MODULE> import <LOADER_FUNCTION>` (no alias, not relative)."""
    return (
        isinstance(node, ast.ImportFrom)
        and node.module == LOADER_MODULE
        and node.level == 0
        and len(node.names) == 1
        and node.names[0].name == LOADER_FUNCTION
        and node.names[0].asname is None
    )


def _is_loader_call(node: ast.stmt) -> bool:
    """Whether `node` is exactly `<LOADER_FUNCTION>(globals())`."""
    call = node.value if isinstance(node, ast.Expr) else None
    return (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id == LOADER_FUNCTION
        and not call.keywords
        and len(call.args) == 1
        and isinstance(call.args[0], ast.Call)
        and isinstance(call.args[0].func, ast.Name)
        and call.args[0].func.id == "globals"
        and not call.args[0].args
        and not call.args[0].keywords
    )


def _literal_values(version: ast.stmt, programs: ast.stmt, what: str) -> tuple[object, object]:
    """The format version and the programs' data, evaluated as plain literals only (never run)."""
    try:
        found = ast.literal_eval(version.value)
        data = ast.literal_eval(programs.value)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError) as exc:
        raise ProgramFileError(
            "bad_program_file",
            f"{what}: the data is not made of plain literals ({type(exc).__name__}); regenerate the file",
        ) from None
    if isinstance(programs.value, ast.Dict):  # a literal dict keeps the last of two equal keys, unseen
        names = [k.value for k in programs.value.keys if isinstance(k, ast.Constant)]
        twice = sorted({str(n) for n in names if names.count(n) > 1})
        if twice:
            raise ProgramFileError(
                "bad_program_file", f"{what} names the program(s) {', '.join(twice)[:200]} twice; regenerate the file"
            )
    return found, data


def _check_format_version(found: object, what: str) -> None:
    """Refuse any other format: an older integer version is stale (regenerate), anything else is bad."""
    if found != FORMAT_VERSION:
        raise ProgramFileError(
            "stale_program_file" if isinstance(found, int) and found < FORMAT_VERSION else "bad_program_file",
            f"{what} is in program-file format {found!r}; this actmine reads format "
            f"{FORMAT_VERSION}: regenerate it with this version (`actmine export RUN_DIR`)",
        )


def split_program_reference(text: str) -> tuple[str, str] | None:
    """`"path/to/pack.py:mined_12"` -> `("path/to/pack.py", "mined_12")`; None for anything else
    (a registry name, a plain `FILE.py`)."""
    if ".py:" not in text:
        return None
    path, _, name = text.rpartition(":")
    return (path, name) if path.endswith(".py") and name.strip() else None
