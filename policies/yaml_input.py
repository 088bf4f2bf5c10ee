"""YAML text -> Python values, within limits a hostile or broken file cannot get past.

In: the text of a YAML document (or a stream of them) that a shell has read. Out: the values
`yaml.safe_load` gives, plus the composed node (for line numbers), or `YamlLimitError` naming
the line and the limit, in well under a second whatever the text:

- at most `MAX_BYTES` (4 MiB): configs, specs and stories are kilobytes;
- at most `MAX_DEPTH` (100) levels of nesting: PyYAML's composer recurses per level, so a
  deeper document would end in a RecursionError traceback;
- at most `MAX_VALUES` (200,000) values once aliases are expanded: an alias bomb (each
  anchor a list of nine aliases of the previous one) is a few hundred bytes that expand to
  billions of values, which hangs whatever walks them (pydantic, a printer);
- no alias inside its own anchor (a recursive structure; nothing here can use one).

Every error is a `YamlInputError` (a `yaml.YAMLError`) in one line with its line and column:
PyYAML's own messages span several lines and quote the text.
This module parses text and reads no file: the shells read files and report the path.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

from policies.problems import Loc, Position, Positions, Problem, locate
from policies.text import one_line

MAX_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 100
MAX_VALUES = 200_000

# libyaml's loader when PyYAML was built with it (5-10x faster), else the pure-Python one.
Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_OPEN = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSE = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


class YamlInputError(yaml.YAMLError):
    """Text that is not a usable YAML document, in one line; `line`, `column` 1-based or None."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        self.message, self.line, self.column = message, line, column
        super().__init__(message)

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return where + self.message

    @property
    def problem(self) -> str:  # read like a MarkedYAMLError's by callers that print one
        return str(self)


class YamlLimitError(YamlInputError):
    """A document past one of the limits."""


def _as_input_error(error: yaml.YAMLError) -> YamlInputError:
    """PyYAML's error (several lines, with a snippet) as one line with its line and column."""
    if isinstance(error, YamlInputError):
        return error
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    parts = [getattr(error, "context", None), getattr(error, "problem", None)]
    reason = " ".join(str(x) for x in parts if x) or str(error)
    if isinstance(error, yaml.reader.ReaderError):
        reason = f"{error.reason}: character {error.character!r} at position {error.position}"
        reason += "; save the file as UTF-8 text"
        return YamlInputError(f"not YAML text: {reason}")
    reason = one_line(reason)
    if mark is None:
        return YamlInputError(f"YAML error: {reason}")
    return YamlInputError(f"YAML syntax error: {reason}", mark.line + 1, mark.column + 1)


def _check_text(text: str) -> None:
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_BYTES:
        raise YamlLimitError(
            f"{size:,} bytes is more than the {MAX_BYTES // 1024 // 1024} MiB a YAML input may "
            "hold; is this the right file?"
        )
    try:
        _check_events(text)
    except yaml.MarkedYAMLError as error:  # libyaml's own bound (1,000 flow levels)
        if "nesting depth" not in str(error.problem):
            raise
        mark = error.problem_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        message = f"nested more than {MAX_DEPTH} levels deep; flatten it"
        raise YamlLimitError(message, line, column) from None


def _check_events(text: str) -> None:
    depth = values = 0
    for event in yaml.parse(text, Loader=Loader):
        if isinstance(event, _CLOSE):
            depth -= 1
            continue
        values += isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent, *_OPEN))
        if values > MAX_VALUES:
            raise _at(event, f"holds more than {MAX_VALUES:,} values; is this the right file?")
        if isinstance(event, _OPEN):
            depth += 1
            if depth > MAX_DEPTH:
                raise _at(event, f"nested more than {MAX_DEPTH} levels deep; flatten it")


def _at(item: yaml.Event | yaml.Node, message: str) -> YamlLimitError:
    mark = item.start_mark
    if mark is None:
        return YamlLimitError(message)
    return YamlLimitError(message, mark.line + 1, mark.column + 1)


def _check_aliases(root: yaml.Node) -> None:
    """Values and depth with every alias expanded (memoized per node, so a bomb costs little)."""
    seen: dict[int, tuple[int, int]] = {}  # id(node) -> (values, height) once expanded
    open_: set[int] = set()

    def expand(node: yaml.Node) -> tuple[int, int]:
        key = id(node)
        if key in seen:
            return seen[key]
        if key in open_:
            raise _at(node, "an alias refers to its own anchor (a recursive value)")
        open_.add(key)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        values, height = 1, 1
        for child in children:
            child_values, child_height = expand(child)
            values, height = values + child_values, max(height, child_height + 1)
            if values > MAX_VALUES:
                raise _at(
                    node,
                    f"expands to more than {MAX_VALUES:,} values through aliases (an alias "
                    "bomb?); write the values out or use fewer aliases",
                )
            if height > MAX_DEPTH:
                raise _at(node, f"nested more than {MAX_DEPTH} levels deep through aliases")
        open_.discard(key)
        seen[key] = (values, height)
        return values, height

    expand(root)


def _documents(text: str) -> Iterator[tuple[Any, yaml.Node]]:
    try:
        _check_text(text)
        loader = Loader(text)
    except yaml.YAMLError as error:
        raise _as_input_error(error) from None
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            _check_aliases(node)
            yield loader.construct_document(node), node
    except yaml.YAMLError as error:
        raise _as_input_error(error) from None
    finally:
        loader.dispose()


def load(text: str) -> tuple[Any, yaml.Node | None]:
    """One document's value and node ((None, None) for an empty text); like `yaml.safe_load`."""
    docs = list(_documents(text))
    if len(docs) > 1:
        mark = docs[1][1].start_mark
        raise YamlLimitError(
            "expected one YAML document, found more (a '---' line); keep one", mark.line + 1
        )
    return docs[0] if docs else (None, None)


def load_all(text: str) -> list[Any]:
    """Every document's value, like `yaml.safe_load_all` (empty documents left out)."""
    return [value for value, _ in _documents(text) if value is not None]


def safe_load(text: str) -> Any:
    """`yaml.safe_load` within the limits."""
    return load(text)[0]


def positions(node: yaml.Node | None) -> tuple[Positions, list[tuple[Loc, str]]]:
    """Where every value and key of a composed document is (for `policies.problems`), and its
    duplicate keys as (path, "duplicate key (first on line N)"): YAML keeps the last silently."""
    values: dict[Loc, Position] = {}
    keys: dict[Loc, Position] = {}
    duplicates: list[tuple[Loc, str]] = []
    stack: list[tuple[yaml.Node, Loc]] = [] if node is None else [(node, ())]
    while stack:  # depth-first, in document order
        item, loc = stack.pop()
        values[loc] = _mark(item)
        children: list[tuple[yaml.Node, Loc]] = []
        if isinstance(item, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key, value in item.value:
                name = str(key.value)
                if name in seen:
                    duplicates.append(((*loc, name), f"duplicate key (first on line {seen[name]})"))
                seen.setdefault(name, _mark(key)[0])
                keys[(*loc, name)] = _mark(key)
                children.append((value, (*loc, name)))
        elif isinstance(item, yaml.SequenceNode):
            children = [(child, (*loc, i)) for i, child in enumerate(item.value)]
        stack.extend(reversed(children))
    return Positions(values, keys), duplicates


def _mark(node: yaml.Node) -> Position:
    return node.start_mark.line + 1, node.start_mark.column + 1


class DocumentError(ValueError):
    """A document that is not YAML or repeats a key: `problems`, one line each."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def load_located(text: str, source: str) -> tuple[Any, Positions]:
    """One document's value and where each key and value is, or DocumentError naming `source`
    with the line and column of a syntax error, a limit or every duplicate key."""
    try:
        data, node = load(text)
    except YamlInputError as error:
        raise DocumentError(
            [Problem(source, "", error.message, error.line, error.column)]
        ) from None
    found, duplicates = positions(node)
    if duplicates:
        raise DocumentError([locate(source, found, loc, why, True) for loc, why in duplicates])
    return data, found
