"""`load_yaml`: YAML text (a config, a suite, a run's config.yaml) as data, bounded in size.

YAML's anchors and aliases let a file of a few hundred bytes stand for a structure of billions of
values ("billion laughs": each level a list of nine aliases of the level below). `yaml.safe_load`
builds it with shared references, cheaply; whatever walks it afterwards -- a config check, a repr
in an error message, `yaml.safe_dump` into a report -- pays for every value. So the text is composed
first, the size of the data it stands for (aliases expanded) and its depth are computed over the
node graph (each node once), and a document above `MAX_VALUES` values or `MAX_DEPTH` levels, or
one that contains itself, is refused before anything is built. Anchors within the bounds keep
working. The error is a `yaml.YAMLError`, so callers that handle invalid YAML handle this too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_VALUES",
    "UnreadableFile",
    "YAMLTooLarge",
    "load_yaml",
    "load_yaml_file",
    "read_small_text",
    "yaml_error_text",
]

MAX_VALUES = 100_000  # scalars, lists and mappings, aliases counted as often as they are used
MAX_DEPTH = 100
MAX_FILE_BYTES = 4 * 2**20  # a config or a suite file is a few kilobytes


class YAMLTooLarge(yaml.YAMLError):
    """The document stands for more data than `load_yaml` builds."""


class UnreadableFile(ValueError):
    """A config or suite file that is not one to read: not a regular file (a FIFO would block,
    /dev/zero fill memory), larger than `MAX_FILE_BYTES`, not UTF-8, or unreadable. Says why."""


def read_small_text(path: str | Path, max_bytes: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of the regular file at ``path``, at most ``max_bytes``; `UnreadableFile` else."""
    path = Path(path)
    data = b""
    try:
        if not path.is_file():
            raise UnreadableFile("it is not a regular file")
        with path.open("rb") as file:
            data = file.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise UnreadableFile(f"it is larger than such a file may be ({max_bytes:,} bytes)")
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"it is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None
    except OSError as exc:
        raise UnreadableFile(f"it cannot be read ({exc.strerror or exc})") from None


def load_yaml_file(path: str | Path) -> Any:
    """`load_yaml` of the file at ``path`` (`read_small_text`: `UnreadableFile` for a file that is
    not one to read; `yaml.YAMLError` for its YAML)."""
    return load_yaml(read_small_text(path))


def _measure(node: yaml.Node, level: int, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """How many values the data `node` stands for (aliases expanded), `node` being at depth `level`;
    memoised per node, so shared nodes cost one visit."""
    if level > MAX_DEPTH:
        raise YAMLTooLarge(f"the YAML document is nested more than {MAX_DEPTH} levels deep")
    key = id(node)
    if key in sizes:
        return sizes[key]
    if isinstance(node, yaml.ScalarNode):
        return 1
    if key in open_nodes:
        raise YAMLTooLarge("the YAML document contains itself (a recursive alias)")
    if isinstance(node, yaml.MappingNode):
        _refuse_duplicate_keys(node)
    children = node.value if isinstance(node, yaml.SequenceNode) else [part for pair in node.value for part in pair]
    open_nodes.add(key)
    values = 1
    for child in children:
        values += _measure(child, level + 1, sizes, open_nodes)
        if values > MAX_VALUES:
            raise YAMLTooLarge(
                f"the YAML document stands for more than {MAX_VALUES:,} values (anchors and aliases expanded)"
            )
    open_nodes.discard(key)
    sizes[key] = values
    return values


def _refuse_duplicate_keys(node: yaml.MappingNode) -> None:
    """YAML keys are unique; PyYAML would keep the last of two silently (`{budget: 3, budget: 5}`
    ran with 5), so a key given twice is refused where it stands."""
    seen: set[tuple[str, str]] = set()
    for key, _ in node.value:
        if isinstance(key, yaml.ScalarNode):
            if (key.tag, key.value) in seen:
                line = key.start_mark.line + 1 if key.start_mark is not None else "?"
                raise yaml.YAMLError(f"the key {key.value[:80]!r} appears twice in one mapping (line {line})")
            seen.add((key.tag, key.value))


def yaml_error_text(exc: yaml.YAMLError) -> str:
    """A YAML error in one line that names its place: ``line 3, column 6: expected ',' or ']', but got
    ':' (while parsing a flow sequence at line 2, column 10)``. PyYAML's own text spans several lines,
    quotes the source as "<unicode string>" and draws carets under a copy of it."""
    problem = getattr(exc, "problem", None)
    if problem is None:
        return str(exc)  # our own refusals (`YAMLTooLarge`, a repeated key) are one line already
    text = f"{_place(getattr(exc, 'problem_mark', None))}{problem}"
    context = getattr(exc, "context", None)
    if context:
        text += f" ({context}{_place(getattr(exc, 'context_mark', None), ' at ', '')})"
    return text


def _place(mark: yaml.Mark | None, before: str = "", after: str = ": ") -> str:
    """``line L, column C`` of a YAML mark (1-based), framed by ``before`` and ``after``; "" without one."""
    if mark is None:
        return ""
    return f"{before}line {mark.line + 1}, column {mark.column + 1}{after}"


def load_yaml(text: str) -> Any:
    """`yaml.safe_load(text)`, refusing (`YAMLTooLarge`) a document that stands for more than
    `MAX_VALUES` values or is nested more than `MAX_DEPTH` levels deep."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()  # the composer's own recursion: a RecursionError past ~1000 levels
        if node is None:
            return None
        _measure(node, 1, {}, set())
        return loader.construct_document(node)
    except RecursionError:
        raise YAMLTooLarge(f"the YAML document is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:  # a constructor's own refusal: an integer of more than 4,300 digits, …
        raise yaml.YAMLError(f"a value cannot be read: {exc}") from None
    finally:
        loader.dispose()
