"""A metric's CEL condition on an event (`when:`), parsed for the database to evaluate. Pure.

`parse` gives a small tree that `app.storage.metrics` renders as SQL over the event row. The
subset: `event.name` and `event.properties.<key>[.<key>...]` compared with literals (`==`,
`!=`, `<`, `<=`, `>`, `>=`, `in [...]`), joined by `&&`, `||`, `!` and parentheses. It keeps CEL's
meaning, which a differential test holds against the CEL runtime: a missing property is an
error, and an error leaves the event out (`false && error` is false, `true || error` is true);
equality between values of different kinds is false, ordering between them an error; numbers
compare by value whether int or double, strings by code point, false before true.

Rendered as SQL, an error is NULL: NULL AND FALSE is FALSE, NULL OR TRUE is TRUE, NOT NULL is
NULL, and a WHERE leaves NULL out, as CEL leaves an error out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

Literal_ = str | int | float | bool | None


class ConditionError(ValueError):
    """The condition uses CEL outside what metrics compute in the database; `at` is its offset."""

    def __init__(self, message: str, at: int) -> None:
        super().__init__(message)
        self.at = at


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<float>\d+\.\d*(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)
    | (?P<int>\d+)
    | (?P<str>'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")
    | (?P<name>[A-Za-z_]\w*)
    | (?P<op>&&|\|\||==|!=|<=|>=|[-<>!.,()\[\]])
    )""",
    re.X,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}
_COMPARE = ("==", "!=", "<", "<=", ">", ">=")


@dataclass(frozen=True)
class Field:
    """`event.name`, or a property: `event.properties.<keys...>`."""

    name: bool
    keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class Compare:
    field: Field
    op: str  # == != < <= > >=
    value: Literal_


@dataclass(frozen=True)
class Logic:
    op: str  # and | or | not
    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class Const:
    value: bool


Condition = Compare | Logic | Const


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


class _Parser:
    def __init__(self, expr: str) -> None:
        self.expr = expr
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        text = expr.rstrip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None or m.end() == pos:
                raise ConditionError(f"cannot read {text[pos : pos + 10]!r}", pos)
            kind = m.lastgroup
            assert kind is not None
            self.tokens.append((kind, m.group(kind), m.start(kind)))
            pos = m.end()
        self.i = 0

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.i] if self.i < len(self.tokens) else ("end", "", len(self.expr))

    def take(self, value: str | None = None) -> tuple[str, str, int]:
        token = self.peek()
        if value is not None and token[1] != value:
            raise ConditionError(f"expected {value!r}", token[2])
        self.i += 1
        return token

    def parse(self) -> Condition:
        sql = self.or_()
        if self.peek()[0] != "end":
            raise ConditionError(f"unexpected {self.peek()[1]!r}", self.peek()[2])
        return sql

    def or_(self) -> Condition:
        parts = [self.and_()]
        while self.peek()[1] == "||":
            self.take()
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else Logic("or", tuple(parts))

    def and_(self) -> Condition:
        parts = [self.not_()]
        while self.peek()[1] == "&&":
            self.take()
            parts.append(self.not_())
        return parts[0] if len(parts) == 1 else Logic("and", tuple(parts))

    def not_(self) -> Condition:
        if self.peek()[1] == "!":
            self.take()
            return Logic("not", (self.not_(),))
        return self.compare()

    def compare(self) -> Condition:
        if self.peek()[1] == "(":
            self.take()
            inner = self.or_()
            self.take(")")
            return inner
        start = self.peek()[2]
        left = self.operand()
        op = self.peek()[1]
        if op == "in":
            self.take()
            if not isinstance(left, Field):
                raise ConditionError("'in' needs event.name or a property on its left", start)
            return self.membership(left)
        if op not in _COMPARE:
            if isinstance(left, Field) or (left is not True and left is not False):
                kind, text, at = self.peek()
                found = "the end" if kind == "end" else repr(text)
                raise ConditionError(
                    f"found {found} where a comparison (==, <, in...) was expected", at
                )
            return Const(bool(left))
        self.take()
        right = self.operand()
        if isinstance(left, Field) and not isinstance(right, Field):
            return Compare(left, op, right)
        if isinstance(right, Field) and not isinstance(left, Field):
            return Compare(right, _MIRROR[op], left)
        raise ConditionError("compare event.name or a property with a value", start)

    def operand(self) -> Field | Literal_:
        kind, value, at = self.take()
        if kind == "str":
            return _unquote(value)
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if value == "-" and self.peek()[0] in ("int", "float"):
            number = self.operand()
            assert isinstance(number, int | float)
            return -number
        if kind == "name" and value in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[value]
        if kind == "name" and value == "event":
            self.take(".")
            field = self.take()
            if field[1] == "name":
                return Field(name=True)
            if field[1] != "properties":
                raise ConditionError("an event has name and properties", field[2])
            keys = []
            while self.peek()[1] == ".":
                self.take()
                key = self.take()
                if key[0] != "name":
                    raise ConditionError("a property name", key[2])
                keys.append(key[1])
            if not keys:
                raise ConditionError("name a property: event.properties.<name>", field[2])
            return Field(name=False, keys=tuple(keys))
        raise ConditionError(f"{value!r} is outside what metrics compute in the database", at)

    def membership(self, path: Field) -> Condition:
        self.take("[")
        values: list[Literal_] = []
        while self.peek()[1] != "]":
            value = self.operand()
            if isinstance(value, Field):
                raise ConditionError("a list of values", self.peek()[2])
            values.append(value)
            if self.peek()[1] == ",":
                self.take()
        self.take("]")
        # CEL's `in` is equality with any element: an error (missing key) stays an error.
        if not values:
            return Const(False)
        return Logic("or", tuple(Compare(path, "==", v) for v in values))


_MIRROR = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def kind_of(value: Literal_) -> str:
    """The JSON type (jsonb_typeof) a literal's equal has."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string"


def parse(expr: str) -> Condition:
    """The condition's tree; raises ConditionError (with the offset) outside the subset."""
    return _Parser(expr).parse()
