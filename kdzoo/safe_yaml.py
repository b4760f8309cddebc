"""YAML read strictly: data only, each key once, and aliases that cannot blow up.

``yaml.safe_load`` already refuses tags that build objects. On top of it, a mapping that names a
key twice is refused with the file and both lines (PyYAML keeps the last silently), and a document
whose aliases expand to more than :data:`MAX_NODES` nodes is refused before it is built: a
13-line "billion laughs" would otherwise expand to millions of values when the config is copied,
hashed or printed.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_NODES = 100_000  # far above any real config (the largest shipped suite expands to about 600)


class StrictYAMLError(yaml.YAMLError):
    """A YAML document that parses but is refused (a repeated key, aliases expanding too far)."""


class StrictLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses repeated keys in a mapping (merge keys ``<<`` may be overridden)."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeLoader reports it
                continue
            if first is not None:
                raise StrictYAMLError(f"line {line}: key {key!r} appears twice in one mapping (first on line {first}); "
                                      "give each key once")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _expanded_size(root: Node) -> int:
    """How many nodes the document has once every alias is expanded (shared nodes counted each time)."""
    sizes: dict[int, int] = {}
    visiting: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:  # iterative post-order: deep nesting must not hit the recursion limit
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if not children_done and id(node) in visiting:
            return MAX_NODES + 1  # an alias inside its own anchor: it expands without end
        if isinstance(node, SequenceNode):
            children = list(node.value)
        elif isinstance(node, MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            sizes[id(node)] = 1
            continue
        if children_done:
            sizes[id(node)] = 1 + sum(sizes.get(id(c), 0) for c in children)
            if sizes[id(node)] > MAX_NODES:
                return sizes[id(node)]
            continue
        visiting.add(id(node))
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def load(stream: Any) -> Any:
    """Parse one YAML document strictly (see the module docstring).

    Raises:
        yaml.YAMLError: the text is not YAML, or is refused (:class:`StrictYAMLError`, whose
            message starts with the line).
    """
    loader = StrictLoader(stream)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node)
        if size > MAX_NODES:
            raise StrictYAMLError(f"its aliases expand to more than {MAX_NODES:,} values (an alias bomb?); "
                                  "write the values out, or use fewer nested aliases")
        return loader.construct_document(node)
    finally:
        loader.dispose()


__all__ = ["MAX_NODES", "StrictLoader", "StrictYAMLError", "load"]
