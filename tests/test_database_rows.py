"""Rows read back into typed records (`actmine.evolve.database_rows`): every field is checked
against its record's type, by checkers made once per type hint."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actmine.evolve.database_file import DatabaseError
from actmine.evolve.database_rows import _fits, typed_record
from actmine.evolve.program_records import ProgramRecord, RunRecord


def reference_fits(value: Any, hint: Any) -> bool:
    """The obvious recursive reading of a hint for every value (the checker before it was made
    once per hint)."""
    if hint is Any:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(reference_fits(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint in (int, str, bool):
        return isinstance(value, hint) and (hint is bool or not isinstance(value, bool))
    if origin is list:
        return isinstance(value, list) and all(reference_fits(item, args[0] if args else Any) for item in value)
    if origin is dict:
        key, item = args if args else (Any, Any)
        return isinstance(value, dict) and all(
            reference_fits(k, key) and reference_fits(v, item) for k, v in value.items()
        )
    return isinstance(value, hint) if isinstance(hint, type) else True


HINTS = sorted(
    {hint for record in (ProgramRecord, RunRecord) for hint in typing.get_type_hints(record).values()}
    | {list, dict, list[float], dict[str, list[int]], list[dict[str, float] | None], dict[int, Any], bool | None},
    key=repr,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=3),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=3) | st.integers(), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(value=json_values, hint=st.sampled_from(HINTS))
def test_a_value_fits_a_hint_exactly_when_the_reference_says_so(value, hint):
    assert _fits(value, hint) == reference_fits(value, hint)


@pytest.mark.parametrize(
    "value, hint, fits",
    [
        (True, float, False),  # JSON's true is not a number here
        (3, float, True),
        (True, int, False),
        (True, bool, True),
        ([1.0, "x"], list[float], False),
        ({"a": 1.0, "b": True}, dict[str, float], False),
        ({"a": [1, 2]}, dict[str, list[int]], True),
        ([{"name": "t", "score": None}], list[dict[str, Any]], True),
        ([{1: "t"}], list[dict[str, Any]], False),  # a key that is not a string
        (None, float | None, True),
        ("1.5", float | None, False),
    ],
)
def test_examples(value, hint, fits):
    assert _fits(value, hint) is fits


def test_a_field_of_the_wrong_type_names_the_file_the_row_and_the_field(tmp_path):
    data = {"id": 7, "run_id": 1, "proposal_index": 0, "source": "x", "tasks": '[{"name": 1}]', "created_at": 0.0}
    with pytest.raises(DatabaseError, match=r"programs.sqlite: program 7, field 'tasks': a list where .* belongs"):
        typed_record(
            ProgramRecord,
            dict(data, tasks='[{"1": 2}, {"name": "a"}, 3]'),
            ["tasks"],
            Path(tmp_path / "programs.sqlite"),
            "program 7",
        )
    record = typed_record(
        ProgramRecord, dict(data, tasks='[{"name": "a"}]'), ["tasks"], Path("programs.sqlite"), "program 7"
    )
    assert record.tasks == [{"name": "a"}]
