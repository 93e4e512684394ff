"""YAML text is loaded bounded: billion laughs, recursive aliases and deep nesting are refused before
anything is built; ordinary anchors keep working."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from actmine.config import Config, ConfigError
from special_files import KINDS, make_special
from actmine.yaml_text import (
    MAX_DEPTH,
    MAX_FILE_BYTES,
    MAX_VALUES,
    UnreadableFile,
    YAMLTooLarge,
    load_yaml,
    load_yaml_file,
    read_small_text,
    yaml_error_text,
)
from actmine.lab.tasks import SuiteError, load_suite_file


def laughs(levels: int, width: int = 9) -> str:
    """`levels` levels of `width` aliases of the level below: width**levels values in ~100·levels bytes."""
    lines = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    lines += [f"l{k}: &l{k} [" + ", ".join([f"*l{k - 1}"] * width) + "]" for k in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_refused_before_it_is_built():
    with pytest.raises(YAMLTooLarge, match=f"more than {MAX_VALUES:,} values"):
        load_yaml(laughs(9))  # 9**10 values: gigabytes when walked
    assert len(yaml.safe_dump(load_yaml(laughs(3)))) > 0  # 9**4 values: within the bound


def test_recursive_aliases_and_deep_nesting_are_refused():
    with pytest.raises(YAMLTooLarge, match="contains itself"):
        load_yaml("&a [1, *a]\n")
    with pytest.raises(YAMLTooLarge, match=f"more than {MAX_DEPTH} levels"):
        load_yaml("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    with pytest.raises(YAMLTooLarge, match="levels"):
        load_yaml("[" * 5000 + "]" * 5000)  # past the composer's own recursion
    assert load_yaml("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None


@settings(max_examples=60, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
        max_leaves=30,
    )
)
def test_ordinary_documents_load_as_safe_load_does(data):
    text = yaml.safe_dump(data)
    assert load_yaml(text) == yaml.safe_load(text)


def test_anchors_within_the_bound_keep_working():
    assert load_yaml("base: &m {name: a, max_tokens: 4}\nmodels: [*m, *m]\n") == {
        "base": {"name": "a", "max_tokens": 4},
        "models": [{"name": "a", "max_tokens": 4}] * 2,
    }
    assert load_yaml("") is None


def test_a_config_file_bomb_is_a_short_config_error(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("levels:\n  " + laughs(8).replace("\n", "\n  ") + "\nsearch:\n  budget: *l8\n")
    with pytest.raises(ConfigError, match="not valid YAML: the YAML document stands for more than") as info:
        Config.load(path)
    assert len(str(info.value)) < 500
    # a value that is merely large is quoted in the error, cut short
    path.write_text("search:\n  budget: [" + ", ".join(["1"] * 5000) + "]\n")
    with pytest.raises(ConfigError, match="must be an integer") as info:
        Config.load(path)
    assert len(str(info.value)) < 300


@pytest.mark.parametrize(
    "text, line",
    [("search: {budget: 3, budget: 5}\n", 1), ("a: 1\nb:\n  c: 2\n  d: 3\n  c: 4\n", 5), ("'1': x\n'1': y\n", 2)],
)
def test_a_key_given_twice_is_refused_where_it_stands(text, line):
    # PyYAML keeps the last silently: `{budget: 3, budget: 5}` ran a search of 5
    with pytest.raises(yaml.YAMLError, match=rf"appears twice in one mapping \(line {line}\)"):
        load_yaml(text)
    assert load_yaml("1: x\n'1': y\n") == {1: "x", "1": "y"}  # an int and a string: two keys


def test_a_value_its_constructor_refuses_is_a_yaml_error():
    with pytest.raises(yaml.YAMLError, match="a value cannot be read: Exceeds the limit"):
        load_yaml("budget: " + "9" * 5000)


@pytest.mark.parametrize("kind", [*KINDS, "large", "not-utf8"])
def test_a_file_that_is_no_small_text_file_is_refused_without_reading_it(tmp_path, kind):
    path = tmp_path / "file.yaml"
    if kind == "large":
        with path.open("wb") as file:
            file.truncate(MAX_FILE_BYTES + 1)
    elif kind == "not-utf8":
        path.write_bytes(b"a: \xff\n")
    else:
        make_special(path, kind)
    with pytest.raises(UnreadableFile):
        load_yaml_file(path)
    path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
    path.write_text("a: 1\n")
    assert load_yaml_file(path) == {"a": 1} and read_small_text(path) == "a: 1\n"


@pytest.mark.parametrize(
    ("text", "place", "problem"),
    [
        ("lab:\n  steps: [1\n  foo: 2\n", "line 3, column 6", "expected ',' or ']', but got ':'"),
        ("a: 'open\n", "line 2, column 1", "found unexpected end of stream"),
        ("a: b: c\n", "line 1, column 5", "mapping values are not allowed here"),
        ("a: *nowhere\n", "line 1, column 4", "found undefined alias 'nowhere'"),
        ("- a\nb: 1\n", "line 2, column 1", "expected <block end>"),
    ],
)
def test_a_yaml_error_is_one_line_that_names_its_place(tmp_path, text, place, problem):
    with pytest.raises(yaml.YAMLError) as info:
        load_yaml(text)
    line = yaml_error_text(info.value)
    assert "\n" not in line and "<unicode string>" not in line and "^" not in line
    assert line.startswith(f"{place}: {problem}")
    for name, load, error in (("config.yaml", Config.load, ConfigError), ("suite.yaml", load_suite_file, SuiteError)):
        (tmp_path / name).write_text(text)
        with pytest.raises(error) as refused:
            load(tmp_path / name)
        assert str(refused.value).endswith(f"is not valid YAML: {line}")


def test_our_own_refusals_keep_their_text():
    with pytest.raises(yaml.YAMLError) as info:
        load_yaml("a: 1\na: 2\n")
    assert yaml_error_text(info.value) == "the key 'a' appears twice in one mapping (line 2)"
