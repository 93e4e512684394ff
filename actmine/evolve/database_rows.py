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
from typing import Any, Sequence

from .database_file import DatabaseError

__all__ = ["typed_record"]

TIME_FIELDS = ("created_at", "updated_at")
LATEST_TIME = 1e10  # seconds since 1970: the year 2286


@cache
def _hints(record_type: type) -> dict[str, Any]:
    return typing.get_type_hints(record_type)


def _fits(value: Any, hint: Any) -> bool:
    """Whether `value` has the type `hint` (the shapes records use; `Any` accepts all)."""
    if hint is Any:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint in (int, str, bool):
        return isinstance(value, hint) and (hint is bool or not isinstance(value, bool))
    if origin is list:
        return isinstance(value, list) and all(_fits(item, args[0] if args else Any) for item in value)
    if origin is dict:
        key, item = args if args else (Any, Any)
        return isinstance(value, dict) and all(_fits(k, key) and _fits(v, item) for k, v in value.items())
    return isinstance(value, hint) if isinstance(hint, type) else True


def typed_record(record_type: type, data: dict[str, Any], json_fields: Sequence[str], path: Path, where: str) -> Any:
    """`record_type(**data)` with `json_fields` parsed, once every field has its type; else a
    `DatabaseError` naming `path`, the row (`where`) and the field."""

    def refuse(name: str, why: str) -> DatabaseError:
        return DatabaseError(
            f"{path}: {where}, field {name!r}: {why}; the database was edited or damaged "
            "(restore it, or start a new --run-dir)"
        )

    for name in json_fields:
        try:
            data[name] = json.loads(data[name])
        except (TypeError, ValueError, RecursionError) as exc:
            raise refuse(name, f"not readable JSON ({type(exc).__name__})") from None
    for name, hint in _hints(record_type).items():
        if name in data and not _fits(data[name], hint):
            expected = hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")
            raise refuse(name, f"a {type(data[name]).__name__} where {expected} belongs")
    for name in TIME_FIELDS:
        value = data.get(name)
        if value is not None and not (math.isfinite(value) and 0 <= value <= LATEST_TIME):
            raise refuse(name, f"{value!r} is not a time")
    return record_type(**data)
