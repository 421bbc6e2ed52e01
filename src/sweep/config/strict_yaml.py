"""YAML read strictly, for configs and `--set` values: PyYAML's SafeLoader, refusing alias bombs,
nesting deeper than a config needs and keys given twice, each with the key path where it happened."""

from __future__ import annotations

from typing import Any

import yaml

from sweep.errors import SweepError, cut

# A config is a few dozen nodes, nested 4 deep. An alias counts every node it stands for, so a
# "billion laughs" bomb (9 aliases of 9 aliases ... of a string: 9^9 strings) is refused at once,
# though it holds only 81 aliases; the composer recurses about 3 frames a level, so nesting is
# refused long before Python's recursion limit.
MAX_YAML_DEPTH = 64
MAX_ALIAS_NODES = 1000


def load_yaml(text: str, source: str, root: str = "") -> Any:
    """`text` as YAML with `_ConfigLoader`; a refusal is a SweepError starting with `source`, then the
    key path, below `root` (the key a --set value is for)."""
    loader = _ConfigLoader(text, source, root)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, strict where a config needs nothing and hostile input needs much: aliases
    within MAX_ALIAS_NODES, nesting within MAX_YAML_DEPTH, each key of a mapping given once (YAML 1.2
    forbids repeats; PyYAML keeps the last silently). Checked while composing, before any object is built."""

    def __init__(self, text: str, source: str, root: str):
        super().__init__(text)
        self.source = source
        self.steps = [root] if root else []  # key path of the node being composed: 'train', '.lr', '[0]'
        self.node_counts: dict[yaml.Node, int] = {}  # nodes each composed node stands for, aliases expanded
        self.alias_nodes = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            return self._expand_alias(super().compose_node(parent, index), index)
        self.steps.append(_step(index))
        if len(self.steps) > MAX_YAML_DEPTH:
            self._refuse(f"nested more than {MAX_YAML_DEPTH} levels deep; a config needs a handful")
        node = super().compose_node(parent, index)
        if isinstance(node, yaml.MappingNode):
            self._check_unique_keys(node)
        self.node_counts[node] = 1 + sum(self.node_counts[child] for child in _children(node))
        self.steps.pop()
        return node

    def _expand_alias(self, node: yaml.Node, index) -> yaml.Node:
        if node not in self.node_counts:  # its anchor's node is still being composed
            self._refuse("an alias refers to the collection that holds it", _step(index))
        self.alias_nodes += self.node_counts[node]
        if self.alias_nodes > MAX_ALIAS_NODES:
            self._refuse(
                f"aliases stand for more than {MAX_ALIAS_NODES} nodes (an alias bomb?); write the values out instead",
                _step(index),
            )
        return node

    def _check_unique_keys(self, node: yaml.MappingNode) -> None:
        lines: dict[tuple[str, str], int] = {}  # (tag, text) of each key: 1 and '1' are different keys
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue  # '<<' merges another mapping in; its keys may be overridden here
            line, identity = key.start_mark.line + 1, (key.tag, key.value)
            if identity in lines:
                where = f"lines {lines[identity]} and {line}" if lines[identity] != line else f"both on line {line}"
                self._refuse(f"key given twice ({where}); YAML would silently keep the last", _step(key))
            lines[identity] = line

    def _refuse(self, problem: str, step: str = "") -> None:
        where = "".join(self.steps + [step]).lstrip(".") or "config"
        raise SweepError(f"{self.source} {cut(where, 80)}: {problem}")


def _step(index) -> str:
    """A node's part of the key path: '.key' under a mapping, '[i]' in a list; keys themselves add none."""
    if isinstance(index, int):
        return f"[{index}]"
    if isinstance(index, yaml.ScalarNode):
        return f".{cut(index.value, 40)}"
    return ""


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    return node.value if isinstance(node, yaml.SequenceNode) else []
