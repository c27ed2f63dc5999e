"""YAML read with positions, so every configuration problem can name `file:line:col`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import yaml

Path_ = tuple[str | int, ...]
T = TypeVar("T")


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """One configuration problem, printed as `file:line:col: message` (1-based)."""

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


@dataclass(slots=True)
class Source:
    """A parsed YAML document and where each of its values (and mapping keys) starts."""

    file: str
    data: Any
    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    quoted: set[Path_] = field(default_factory=set)  # scalars written in quotes
    plain: dict[Path_, str] = field(default_factory=dict)  # unquoted scalars, as written

    def as_written(self, path: Path_, value: Any) -> Any:
        """A name where YAML 1.1 reads a boolean (an unquoted `on`, `off`, `yes`, `no`): the
        text as written; any other value as it is."""
        if isinstance(value, bool):
            return self.plain.get(path, str(value).lower())
        return value

    def at(self, path: Path_, message: str, *, key: bool = False, offset: int = 0) -> Problem:
        """A problem at `path` (its key with `key=True`), or the nearest enclosing value."""
        marks = self.keys if key else self.values
        probe = path
        while probe not in marks and probe:
            probe = probe[:-1]
            marks = self.values
        line, col = marks.get(probe, (0, 0))
        return Problem(self.file, line + 1, col + 1 + offset, message)


class SourceError(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def _build(node: yaml.Node, path: Path_, src: Source) -> Any:
    src.values[path] = (node.start_mark.line, node.start_mark.column)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if not isinstance(key_node, yaml.ScalarNode):
                raise SourceError(
                    Problem(
                        src.file,
                        key_node.start_mark.line + 1,
                        key_node.start_mark.column + 1,
                        "mapping keys must be plain strings",
                    )
                )
            if key in out:
                raise SourceError(
                    Problem(
                        src.file,
                        key_node.start_mark.line + 1,
                        key_node.start_mark.column + 1,
                        f"duplicate key '{key}'",
                    )
                )
            src.keys[(*path, key)] = (key_node.start_mark.line, key_node.start_mark.column)
            out[key] = _build(value_node, (*path, key), src)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(child, (*path, i), src) for i, child in enumerate(node.value)]
    if isinstance(node, yaml.ScalarNode):
        if node.style in ("'", '"'):
            src.quoted.add(path)
        elif node.style is None:
            src.plain[path] = node.value
    return _SCALARS.construct_object(node, deep=True)


_SCALARS = yaml.SafeLoader("")


def read_source(path: Path, *, display: str | None = None) -> Source:
    """Parse one YAML file; raises SourceError with the position of a syntax error."""
    name = display or str(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _position(raw, exc.start)
        bad = raw[exc.start : exc.start + 1].hex()
        message = f"not UTF-8: byte 0x{bad} (save the file as UTF-8)"
        raise SourceError(Problem(name, line, col, message)) from exc
    src = Source(name, None)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        # values are made here too: a tag YAML knows no constructor for (`!!strx`) fails now
        src.data = {} if node is None else _build(node, (), src)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise SourceError(Problem(name, line, col, f"YAML: {exc.problem or exc}")) from exc
    except yaml.YAMLError as exc:  # a character YAML does not allow (a NUL...)
        position = getattr(exc, "position", 0)
        line, col = _position(text, position)
        character = getattr(exc, "character", "")
        code = ord(character) if isinstance(character, str) and character else character
        what = f"character {code:#06x}" if isinstance(code, int) else "a character"
        raise SourceError(Problem(name, line, col, f"YAML: {what} is not allowed here")) from exc
    return src


def _position(text: str | bytes, offset: int) -> tuple[int, int]:
    """1-based line and column of an offset."""
    newline = "\n" if isinstance(text, str) else b"\n"
    before = text[:offset]
    line = before.count(newline) + 1  # type: ignore[arg-type]
    start = before.rfind(newline) + 1  # type: ignore[arg-type]
    return line, offset - start + 1


_AT = re.compile(r"^(?P<msg>.*?)(?: - at `(?P<path>\$[^`]*)`)?$", re.S)
_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[\"?([^\]\"]*)\"?\]")
_UNKNOWN = re.compile(r"unknown field `([^`]+)`")


def convert(src: Source, data: Any, spec: type[T], base: Path_ = ()) -> T:
    """msgspec.convert with errors turned into SourceError at the offending line and column."""
    try:
        return msgspec.convert(data, spec, strict=True)
    except msgspec.ValidationError as exc:
        m = _AT.match(str(exc))
        message = m.group("msg") if m else str(exc)
        path: list[str | int] = list(base)
        if m and m.group("path"):
            for name, index, key in _PART.findall(m.group("path")[1:]):
                path.append(int(index) if index else (name or key))
        unknown = _UNKNOWN.search(message)
        if unknown:
            raise SourceError(
                src.at((*path, unknown.group(1)), f"unknown field '{unknown.group(1)}'", key=True)
            ) from exc
        message = message.replace("`", "'")
        raise SourceError(src.at(tuple(path), message[:1].lower() + message[1:])) from exc
