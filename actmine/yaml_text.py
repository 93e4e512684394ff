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

from typing import Any

import yaml

__all__ = ["MAX_DEPTH", "MAX_VALUES", "YAMLTooLarge", "load_yaml"]

MAX_VALUES = 100_000  # scalars, lists and mappings, aliases counted as often as they are used
MAX_DEPTH = 100


class YAMLTooLarge(yaml.YAMLError):
    """The document stands for more data than `load_yaml` builds."""


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
    finally:
        loader.dispose()
