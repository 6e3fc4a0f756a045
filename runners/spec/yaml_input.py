"""Reading YAML that a user gives selab: one loader for every command that reads a spec.

YAML's safe loader (no Python object tags) with what a spec needs on top: a key given twice in
one mapping is an error naming both lines (plain YAML keeps the last one silently, so a spec
could say one thing on line 3 and another on line 30), and the limits of runners.spec.limits
are applied while reading, before anything is expanded: the file's size before it is parsed,
the values its aliases expand to before they are built. Every failure is a ConfigError naming
the file, the line where it is known, and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

from runners.spec.limits import limit, raise_hint
from search_space.errors import ConfigError

MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateKey(yaml.constructor.ConstructorError):
    """A mapping names one key twice."""


class TooLarge(yaml.YAMLError):
    """The document expands to more values than SELAB_MAX_SPEC_NODES allows."""


class SpecLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses duplicate keys, recursive aliases and alias bombs."""

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == MERGE_TAG:  # `<<: *base`: keys it brings may be overridden
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: the base class reports it
                    continue
                if first is not None:
                    raise DuplicateKey(
                        None,
                        None,
                        f"key {key!r} appears twice in one mapping (lines {first} and {line}); "
                        "YAML would keep only the last. Keep one of them",
                        key_node.start_mark,
                    )
                seen[key] = line
        return super().construct_mapping(node, deep=deep)

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        check_expansion(node, limit("SELAB_MAX_SPEC_NODES"))
        return self.construct_document(node)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def check_expansion(root: Node, most: int) -> int:
    """The number of nodes `root` expands to, every alias counted where it is used; TooLarge
    beyond `most`, ConstructorError for an alias that contains itself. Each distinct node is
    visited once, so a billion-laughs document is measured in microseconds."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            continue
        if key in sizes:
            continue
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    "an alias refers to the collection that contains it (a "
                    "recursive alias); spell the values out instead",
                    child.start_mark,
                )
            if id(child) not in sizes:
                stack.append((child, False))
    total = sizes[id(root)]
    if total > most:
        raise TooLarge(_too_large(total, most, root, sizes))
    return total


def _too_large(count: int, most: int, root: Node, sizes: dict[int, int]) -> str:
    where = ""
    if isinstance(root, MappingNode) and root.value:  # the section that holds the most
        key, value = max(root.value, key=lambda pair: sizes[id(pair[1])])
        line = key.start_mark.line + 1
        where = f" ({sizes[id(value)]:,} of them under `{key.value}`, line {line})"
    return (
        f"expands to {count:,} values and keys{where} once its YAML aliases are expanded "
        f"(each counted where it is used), more than the {most:,} a spec may hold "
        "(SELAB_MAX_SPEC_NODES); a spec this large is most likely a mistake or an alias "
        "bomb; if it is meant, " + raise_hint("SELAB_MAX_SPEC_NODES", count)
    )


def parse_yaml(text: str, source: str) -> Any:
    """`text` read with SpecLoader; ConfigError naming `source` and the line otherwise."""
    try:
        return yaml.load(text, Loader=SpecLoader)  # noqa: S506 - SpecLoader is a SafeLoader
    except TooLarge as err:
        raise ConfigError(f"{source}: {err}") from None
    except DuplicateKey as err:
        raise ConfigError(f"{source}: {err.problem}") from None
    except yaml.constructor.ConstructorError as err:
        if "could not determine a constructor" in str(err.problem):
            tag = str(err.problem).rsplit("tag ", 1)[-1]
            raise ConfigError(
                f"{source}: line {err.problem_mark.line + 1}: the tag {tag} asks YAML to build "
                "an object, which a spec cannot hold; allowed: plain values, lists and "
                "mappings (remove the tag)"
            ) from None
        raise ConfigError(f"{source}: not valid YAML: {_describe(err)}") from None
    except yaml.MarkedYAMLError as err:
        raise ConfigError(f"{source}: not valid YAML: {_describe(err)}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: not valid YAML: {err}") from None
    except RecursionError:
        raise ConfigError(
            f"{source}: nested too deeply to read; a spec nests a few levels "
            "(section, field, value)"
        ) from None


def _describe(err: yaml.MarkedYAMLError) -> str:
    """'line L, column C: <problem> (<context>)', from what PyYAML knows."""
    mark = err.problem_mark or err.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    context = f" ({err.context})" if err.context else ""
    return f"{where}{err.problem or 'cannot be read'}{context}"


def read_yaml_file(path: str | Path, what: str = "spec") -> Any:
    """The YAML file at `path`, checked (`read_text_file`) and parsed (`parse_yaml`)."""
    return parse_yaml(read_text_file(path, what), str(path))


def read_text_file(path: str | Path, what: str = "spec") -> str:
    """The text of the file at `path`, after its size (at most SELAB_MAX_SPEC_BYTES: nothing
    past that is read, whatever the file is) and its encoding (UTF-8) are checked. `what`
    names the file in errors ("spec", "config")."""
    path = Path(path)
    most = limit("SELAB_MAX_SPEC_BYTES")
    try:
        with path.open("rb") as stream:
            raw = stream.read(most + 1)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the {what} ({err.strerror or err})") from None
    if len(raw) > most:
        size = _size(path)
        raise ConfigError(
            f"{path}: {size or f'over {most:,}'} bytes, more than the {most:,} a {what} file "
            f"may have (SELAB_MAX_SPEC_BYTES); a {what} is a few kilobytes (a long list of "
            "values is better a search space: {int: [lo, hi]}); if this file is meant, "
            + raise_hint("SELAB_MAX_SPEC_BYTES", int(size.replace(",", "")) if size else 10 * most)
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path}: not a UTF-8 text file ({err.reason} at byte {err.start}); "
            f"save the {what} as UTF-8"
        ) from None


def _size(path: Path) -> str:
    """The file's size in bytes as text; "" when the filesystem does not say (a pipe)."""
    try:
        size = path.stat().st_size
    except OSError:
        return ""
    return f"{size:,}" if size else ""
