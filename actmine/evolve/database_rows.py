"""Rows read back into typed records; a row that does not fit is a `DatabaseError`, not a crash.

A run's database is a file: a user can edit it, a tool can damage it, and a shared run directory
can come from someone else. SQLite keeps whatever a cell was given (text in a REAL column, a number
in a JSON column), so a row is checked as it is read: every JSON column must parse (within a
nesting limit), every field must have its record's type (`typing.get_type_hints` of the record:
`float | None`, `list[int]`, `dict[str, float]`, …), and times must be times. Anything else is a
`DatabaseError` that names the file, the row and the field -- which every command, the report and
`actmine serve` already turn into one clear line -- instead of a traceback deep in a report.
"""

from __future__ import annotations

import json
import math
import types
import typing
from functools import cache
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .database_file import DatabaseError

__all__ = ["typed_record", "typed_value"]

TIME_FIELDS = ("created_at", "updated_at")
LATEST_TIME = 1e10  # seconds since 1970: the year 2286


@cache
def _hints(record_type: type) -> dict[str, Any]:
    return typing.get_type_hints(record_type)


def _fits(value: Any, hint: Any) -> bool:
    """Whether `value` has the type `hint` (the shapes records use; `Any` accepts all)."""
    return _checker(hint)(value)


def _anything(value: Any) -> bool:
    return True


@cache
def _checker(hint: Any) -> Callable[[Any], bool]:
    """`hint` as a function of a value, made once per hint: the controller reads thousands of
    records per run, each with lists of per-task dicts, and a check that re-read the hint for
    every item took half its time (a default search: 48 s of CPU in 150 proposals)."""
    if hint is Any:
        return _anything
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        alternatives = tuple(_checker(arg) for arg in args)
        return lambda value: any(check(value) for check in alternatives)
    if hint is type(None):
        return lambda value: value is None
    if hint in _SCALARS:
        return _SCALARS[hint]
    if origin is list:
        item = _checker(args[0]) if args else _anything
        return lambda value: isinstance(value, list) and _all_fit(item, value)
    if origin is dict:
        key, item = (_checker(args[0]), _checker(args[1])) if args else (_anything, _anything)
        return lambda value: isinstance(value, dict) and _all_fit(key, value.keys()) and _all_fit(item, value.values())
    if isinstance(hint, type):
        return lambda value: isinstance(value, hint)
    return _anything


def _float(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _str(value: Any) -> bool:
    return isinstance(value, str)


def _bool(value: Any) -> bool:
    return isinstance(value, bool)


_SCALARS: dict[Any, Callable[[Any], bool]] = {float: _float, int: _int, str: _str, bool: _bool}
# the exact types each scalar check accepts at once (what JSON gives); others are checked one by one
_EXACT = {_float: {float, int}, _int: {int}, _str: {str}, _bool: {bool}}


def _all_fit(check: Callable[[Any], bool], values: Iterable[Any]) -> bool:
    """Whether every value passes `check`: the types of a list of JSON scalars are read in one
    pass (a record's per-task dicts hold most of its values)."""
    if check is _anything:
        return True
    exact = _EXACT.get(check)
    if exact is not None and set(map(type, values)) <= exact:
        return True
    return all(map(check, values))


def typed_record(record_type: type, data: dict[str, Any], json_fields: Sequence[str], path: Path, where: str) -> Any:
    """`record_type(**data)` with `json_fields` parsed, once every field has its type; else a
    `DatabaseError` naming `path`, the row (`where`) and the field."""
    for name in json_fields:
        try:
            data[name] = json.loads(data[name])
        except (TypeError, ValueError, RecursionError) as exc:
            raise _refusal(path, where, name, f"not readable JSON ({type(exc).__name__})") from None
    for name, hint in _hints(record_type).items():
        if name in data:
            typed_value(data[name], hint, path, where, name)
    for name in TIME_FIELDS:
        value = data.get(name)
        if value is not None and not (math.isfinite(value) and 0 <= value <= LATEST_TIME):
            raise _refusal(path, where, name, f"{value!r} is not a time")
    return record_type(**data)


def typed_value(value: Any, hint: Any, path: Path, where: str, name: str) -> Any:
    """`value` if it has the type `hint`, else a `DatabaseError` naming `path`, the row and the field."""
    if not _fits(value, hint):
        expected = hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")
        raise _refusal(path, where, name, f"a {type(value).__name__} where {expected} belongs")
    return value


def _refusal(path: Path, where: str, name: str, why: str) -> DatabaseError:
    return DatabaseError(
        f"{path}: {where}, field {name!r}: {why}; the database was edited or damaged "
        "(restore it, or start a new --run-dir)"
    )
