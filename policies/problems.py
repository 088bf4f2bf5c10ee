"""pydantic's validation errors as one line each: `file:line:col: key.path: what is wrong (got x)`.

The one translator both shells use: the controller for its config file, the simulator (and the
policies' own `SpecError`) for policy specs, sweep grids, model and cost files. In: a
`ValidationError`, the model class that was validated (to name the allowed keys and to drop
the tags pydantic adds to a discriminated union's path), and optionally a `Positions` map from
key path to (line, column), which each shell builds from its own YAML parse
(`yaml_input.positions`). Out: `(loc, message, at_key)` triples, or `Problem`s that print as
one line. Pure: it reads no file.

Paths are written as the user wrote them: `targets[0].policy.target_per_replica`; a key that is
not a plain word is quoted (`['a b']`), so a key with a newline or a dot keeps the line one line
and unambiguous. Values are echoed as `(got ...)`, cut at 60 characters; a whole mapping (a
model-level check) is not echoed. An unknown key names the keys allowed where it stands.
"""

from __future__ import annotations

import ast
import re
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

Loc = tuple[str | int, ...]
Position = tuple[int, int]  # line, column; 1-based

# pydantic error types -> what is allowed, in the words every replicast error uses
TYPE_MESSAGES: dict[str, str] = {
    "missing": "required key is missing",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "int_parsing_size": "must be a whole number of at most 19 digits",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "finite_number": "must be a finite number",
}
_BOUNDS = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}
_LENGTHS = {
    "too_short": ("at least", "min_length", "item(s)"),
    "too_long": ("at most", "max_length", "item(s)"),
    "string_too_short": ("at least", "min_length", "character(s)"),
    "string_too_long": ("at most", "max_length", "character(s)"),
}
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")
# parts of pydantic's loc that are not keys the user wrote
_WRAPPERS = frozenset({"[key]", "tagged-union", "union"})


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a file (or a value), printed on one line."""

    file: str
    path: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}:{self.column}"
        if not where:
            return f"{self.path}: {self.message}" if self.path else self.message
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class Positions:
    """Line and column of every value and every key of a parsed document."""

    values: Mapping[Loc, Position] = field(default_factory=dict)
    keys: Mapping[Loc, Position] = field(default_factory=dict)

    def find(self, loc: Loc, at_key: bool = False) -> Position | None:
        """The key's own position when `at_key` (an unknown key), else the value's, else the
        nearest enclosing value's (a missing key points at the mapping that lacks it)."""
        if at_key and loc in self.keys:
            return self.keys[loc]
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.values:
                return self.values[loc[:end]]
        return None

    def under(self, prefix: Loc) -> Positions:
        """The positions of the part at `prefix`, with `prefix` removed from every path."""
        n = len(prefix)
        return Positions(
            {k[n:]: v for k, v in self.values.items() if k[:n] == prefix},
            {k[n:]: v for k, v in self.keys.items() if k[:n] == prefix},
        )


def render_path(loc: Iterable[str | int]) -> str:
    """("targets", 0, "policy") -> targets[0].policy; an odd key is quoted: prometheus['a b']."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _PLAIN_KEY.fullmatch(part):
            out += f"[{part!r}]"
        else:
            out += f".{part}" if out else part
    return out


_PATH_PART = re.compile(r"""\[(\d+)\]|\[('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\]|([^.\[\]]+)""")


def parse_path(text: str) -> Loc:
    """`metrics[0].target_per_replica` -> ("metrics", 0, "target_per_replica"); the inverse of
    `render_path` (a quoted key comes back as it was)."""
    out: list[str | int] = []
    for index, quoted, word in _PATH_PART.findall(text):
        out.append(int(index) if index else (ast.literal_eval(quoted) if quoted else word))
    return tuple(out)


def locate(
    source: str, positions: Positions | None, loc: Loc, message: str, at_key: bool = False
) -> Problem:
    """A Problem at `loc` in `source`, with its line and column when `positions` knows them."""
    found = positions.find(loc, at_key) if positions is not None else None
    line, column = found if found else (None, None)
    return Problem(source, render_path(loc), message, line, column)


def translate(
    error: ValidationError,
    root: type[BaseModel] | None = None,
    prefix: Loc = (),
    hints: Mapping[str, str] | None = None,
) -> list[tuple[Loc, str, bool]]:
    """Every error as (the path as the user wrote it, under `prefix`; the message; whether it
    is about the key itself, an unknown key). `hints` adds advice to an unknown key by name."""
    out = []
    for err in error.errors():
        loc, here = _walk(root, err["loc"])
        _, holder = _walk(root, err["loc"][:-1])
        message = _message(err, holder, here, hints or {})
        out.append(((*prefix, *loc), message, err["type"] == "extra_forbidden"))
    return out


def problems(
    error: ValidationError,
    root: type[BaseModel] | None,
    source: str,
    positions: Positions | None = None,
    prefix: Loc = (),
    hints: Mapping[str, str] | None = None,
) -> list[Problem]:
    """`translate`, each located in `source` (`file:line:col: path: message`)."""
    return [
        locate(source, positions, loc, message, at_key)
        for loc, message, at_key in translate(error, root, prefix, hints)
    ]


# --- walking pydantic's loc through the models -----------------------------------------------


def _strip(annotation: Any) -> Any:
    """Annotated[X, ...] -> X; X | None -> X (unions of several members stay unions)."""
    for _ in range(5):
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation
    return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _union_models(annotation: Any) -> list[type[BaseModel]]:
    if get_origin(annotation) not in (Union, types.UnionType):
        return []
    return [a for a in get_args(annotation) if _is_model(a)]


def _tags(model: type[BaseModel]) -> tuple[str, ...]:
    for name in ("kind", "type"):
        info = model.model_fields.get(name)
        if info is not None and get_origin(info.annotation) is Literal:
            return tuple(str(a) for a in get_args(info.annotation))
    return ()


def _field(model: type[BaseModel], key: str | int) -> Any:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info.annotation
    return None


def _walk(root: type[BaseModel] | None, loc: Sequence[str | int]) -> tuple[Loc, Any]:
    """pydantic's loc -> (the path as the user wrote it, the type found there)."""
    current: Any = root
    out: list[str | int] = []
    for part in loc:
        if isinstance(part, str) and (part.startswith("function-") or part in _WRAPPERS):
            continue
        current = _strip(current)
        members = _union_models(current)
        chosen = [m for m in members if part in _tags(m) or part == m.__name__]
        if chosen:  # a union member's tag or name, which pydantic adds to the loc
            current = chosen[0]
            continue
        out.append(part)
        if _is_model(current):
            current = _field(current, part)
        elif get_origin(current) is list:
            current = get_args(current)[0]
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        else:
            current = None
    return tuple(out), _strip(current)


# --- messages --------------------------------------------------------------------------------


def _got(value: Any) -> str:
    if isinstance(value, Mapping):  # a model-level check: the mapping is not worth echoing
        return ""
    text = repr(value)
    return f" (got {text if len(text) <= 60 else text[:57] + '...'})"


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _allowed_keys(model: Any) -> str:
    if not _is_model(model):
        return ""
    keys = sorted(info.alias or name for name, info in model.model_fields.items())
    return f"; allowed keys: {', '.join(keys)}"


def _message(err: Mapping[str, Any], holder: Any, here: Any, hints: Mapping[str, str]) -> str:
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if kind == "extra_forbidden":
        hint = hints.get(str(err["loc"][-1]), "")
        return f"unknown key{_allowed_keys(holder)}{'; ' + hint if hint else ''}"
    if kind == "missing":
        return TYPE_MESSAGES[kind]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tags = ", ".join(repr(t) for m in _union_models(here) for t in _tags(m))
        key = str(ctx.get("discriminator", "kind")).strip("'")
        got = _got(ctx["tag"]) if "tag" in ctx else ""
        return f"{key} must be one of {tags}{got}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}{_got(value)}"
    if kind in _BOUNDS:
        name, sign = _BOUNDS[kind]
        return f"must be {sign} {_num(ctx.get(name))}{_got(value)}"
    if kind in _LENGTHS:
        word, name, unit = _LENGTHS[kind]
        return f"must have {word} {ctx.get(name)} {unit}{_got(value)}"
    if kind in TYPE_MESSAGES:
        return TYPE_MESSAGES[kind] + _got(value)
    msg = str(err["msg"]).removeprefix("Value error, ")
    msg = msg[:1].lower() + msg[1:]
    return msg if "(got " in msg else msg + _got(value)
