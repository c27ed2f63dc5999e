"""Common CEL rules as Python: a compiler for the subset layouts use, checked against CEL itself.

Most layout rules are comparisons of signals joined with `&&` and `||`. Evaluating them through
the CEL runtime means converting the decision's variables into a `cel.Context` first, which costs
more than all the rules together. This module compiles such rules to Python closures over the plain
variables. Anything outside the subset (macros, maps, regular expressions...) stays with CEL.

The compiled code is strict where CEL is strict: operands of `&&`, `||`, `!` and `?:` must be
bools, arithmetic and ordering need operands of one kind, a missing key raises. When compiled code
raises, the caller evaluates the CEL program instead, so CEL has the last word on every error and
on CEL's error-absorbing `&&` / `||`. Tests compare both on generated inputs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, overload

Compiled = Callable[[dict[str, Any]], Any]


class Unsupported(Exception):  # noqa: N818 - a signal to fall back, not an error
    """The expression uses CEL outside the compiled subset."""


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<float>\d+\.\d*(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)
    | (?P<int>\d+)
    | (?P<str>'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")
    | (?P<name>[A-Za-z_]\w*)
    | (?P<op>&&|\|\||==|!=|<=|>=|[-+*/%<>!?:.,()\[\]])
    )""",
    re.X,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}
_BINARY = {  # operator: (precedence, helper)
    "||": (1, None),
    "&&": (2, None),
    "==": (3, "_eq"),
    "!=": (3, "_ne"),
    "<": (3, "_lt"),
    "<=": (3, "_le"),
    ">": (3, "_gt"),
    ">=": (3, "_ge"),
    "in": (3, "_in"),
    "+": (4, "_add"),
    "-": (4, "_sub"),
    "*": (5, "_mul"),
    "/": (5, "_div"),
    "%": (5, "_mod"),
}
_METHODS = {"startsWith": "_starts", "endsWith": "_ends", "contains": "_contains", "size": "_size"}


def _tokens(expr: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    expr = expr.rstrip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None or m.end() == pos:
            raise Unsupported(f"cannot read {expr[pos : pos + 10]!r}")
        kind = m.lastgroup
        assert kind is not None
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


Code = tuple[str, str]  # (python source, static kind: bool int float str list any)

_INLINE_COMPARE = {"==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


_names = iter(range(1 << 30))


def _temp() -> str:
    return f"_t{next(_names)}"


def _as_bool(code: Code) -> str:
    if code[1] == "bool":
        return code[0]
    t = _temp()  # no call on the common path: the value is already a bool
    return f"({t} if (({t} := {code[0]}) is True or {t} is False) else _b({t}))"


class _Parser:
    def __init__(self, expr: str) -> None:
        self.toks = _tokens(expr)
        self.i = 0

    def peek(self) -> tuple[str, str]:
        return self.toks[self.i] if self.i < len(self.toks) else ("end", "")

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if value is not None and tok[1] != value:
            raise Unsupported(f"expected {value!r}, found {tok[1]!r}")
        self.i += 1
        return tok

    def parse(self) -> str:
        code = self.ternary()
        if self.peek()[0] != "end":
            raise Unsupported(f"unexpected {self.peek()[1]!r}")
        return code[0]

    def ternary(self) -> Code:
        cond = self.binary(1)
        if self.peek()[1] == "?":
            self.take("?")
            yes = self.ternary()
            self.take(":")
            no = self.ternary()
            kind = yes[1] if yes[1] == no[1] else "any"
            return f"(({yes[0]}) if {_as_bool(cond)} else ({no[0]}))", kind
        return cond

    def binary(self, floor: int) -> Code:
        left = self.unary()
        while True:
            kind, value = self.peek()
            op = value if kind in ("op", "name") else ""
            if op not in _BINARY or _BINARY[op][0] < floor:
                return left
            self.take()
            precedence, helper = _BINARY[op]
            right = self.binary(precedence + 1)
            left = self.combine(op, helper, left, right)

    def combine(self, op: str, helper: str | None, left: Code, right: Code) -> Code:
        if op == "&&":
            return f"({_as_bool(left)} and {_as_bool(right)})", "bool"
        if op == "||":
            return f"({_as_bool(left)} or {_as_bool(right)})", "bool"
        known = left[1] == right[1] and left[1] in ("int", "float", "str")
        if op in _INLINE_COMPARE and known:
            return f"({left[0]} {_INLINE_COMPARE[op]} {right[0]})", "bool"
        if (
            op in _INLINE_COMPARE
            and "any" in (left[1], right[1])
            and {left[1], right[1]} & {"str", "int", "float"}
        ):
            # One side is a constant: compare inline when the other is of the same kind, else
            # let the strict helper decide (it raises where CEL would not simply answer).
            lit_left = left[1] != "any"
            lit, other = (left, right) if lit_left else (right, left)
            t = _temp()
            test = (
                f"({t} {_INLINE_COMPARE[op]} {lit[0]})"
                if not lit_left
                else (f"({lit[0]} {_INLINE_COMPARE[op]} {t})")
            )
            slow = f"{helper}({lit[0]}, {t})" if lit_left else f"{helper}({t}, {lit[0]})"
            return f"({test} if ({t} := {other[0]}).__class__ is {lit[1]} else {slow})", "bool"
        if op == "in" and right[0].startswith("[") and right[1] == "list":
            items = right[0][1:-1]
            if items and all(_LITERAL_STR.fullmatch(x.strip()) for x in items.split(", ")):
                const = self.constant(f"frozenset(({items},))")
                t = _temp()  # inline for a string, the strict helper for anything else
                test = f"({t} in {const}) if ({t} := {left[0]}).__class__ is str"
                return f"({test} else _in_strs({t}, {const}))", "bool"
        assert helper is not None
        kind = (
            "bool"
            if op in _INLINE_COMPARE or op == "in"
            else (
                left[1]
                if left[1] == right[1] and left[1] in ("int", "float") and op != "/"
                else "any"
            )
        )
        return f"{helper}({left[0]}, {right[0]})", kind

    constants: dict[str, str]  # name → Python source of a constant built once

    def constant(self, source: str) -> str:
        if not hasattr(self, "constants"):
            self.constants = {}
        name = f"_k{next(_names)}"  # unique across expressions, so translations can be joined
        self.constants[name] = source
        return name

    def unary(self) -> Code:
        value = self.peek()[1]
        if value == "!":
            self.take()
            return f"(not {_as_bool(self.unary())})", "bool"
        if value == "-":
            self.take()
            operand = self.unary()
            return f"_neg({operand[0]})", operand[1] if operand[1] in ("int", "float") else "any"
        return self.postfix(self.primary())

    def postfix(self, code: Code) -> Code:
        while True:
            value = self.peek()[1]
            if value == ".":
                self.take()
                kind, name = self.take()
                if kind != "name":
                    raise Unsupported("member name expected")
                if self.peek()[1] == "(":
                    if name not in _METHODS:
                        raise Unsupported(f"method {name}()")
                    args = [a[0] for a in self.arguments()]
                    result = "int" if name == "size" else "bool"
                    code = f"{_METHODS[name]}({', '.join([code[0], *args])})", result
                else:
                    code = f"{code[0]}[{name!r}]", "any"
            elif value == "[":
                self.take()
                index = self.ternary()
                self.take("]")
                code = f"_index({code[0]}, {index[0]})", "any"
            else:
                return code

    def arguments(self) -> list[Code]:
        self.take("(")
        args: list[Code] = []
        while self.peek()[1] != ")":
            args.append(self.ternary())
            if self.peek()[1] == ",":
                self.take()
        self.take(")")
        return args

    def primary(self) -> Code:
        kind, value = self.take()
        if kind == "int":
            return value, "int"
        if kind == "float":
            return repr(float(value)), "float"
        if kind == "str":
            body = re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\x00"), value[1:-1])
            if "\x00" in body:
                raise Unsupported("escape sequence")
            return repr(body), "str"
        if kind == "name":
            if value in ("true", "false"):
                return ("True" if value == "true" else "False"), "bool"
            if value == "null":
                return "None", "null"
            if self.peek()[1] == "(":
                if value == "size":
                    (arg,) = self.arguments()
                    return f"_size({arg[0]})", "int"
                if value == "has":
                    self.take("(")
                    target = self.postfix_path()
                    self.take(")")
                    return target, "bool"
                raise Unsupported(f"function {value}()")
            return f"v[{value!r}]", "any"
        if value == "(":
            code = self.ternary()
            self.take(")")
            return f"({code[0]})", code[1]
        if value == "[":
            items: list[str] = []
            while self.peek()[1] != "]":
                items.append(self.ternary()[0])
                if self.peek()[1] == ",":
                    self.take()
            self.take("]")
            return f"[{', '.join(items)}]", "list"
        raise Unsupported(f"unexpected {value!r}")

    def postfix_path(self) -> str:
        """`has(a.b.c)`: true when the last field is present on the map before it."""
        kind, name = self.take()
        if kind != "name":
            raise Unsupported("has() needs a field path")
        parts = [name]
        while self.peek()[1] == ".":
            self.take()
            parts.append(self.take()[1])
        if len(parts) < 2:
            raise Unsupported("has() needs a field path")
        base = "v" + "".join(f"[{p!r}]" for p in parts[:-1])
        return f"_has({base}, {parts[-1]!r})"


_LITERAL_STR = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


# --- strict helpers: raise where CEL would not simply answer --------------------------------------


def _b(x: Any) -> bool:
    if x is True or x is False:
        return x
    raise TypeError("not a bool")


def _kind(x: Any) -> type:
    if x is True or x is False:
        return bool
    if isinstance(x, (int, float, str, list, dict)) or x is None:
        return type(x)
    raise TypeError("unsupported value")


def _same(a: Any, b: Any) -> None:
    if _kind(a) is not _kind(b):
        raise TypeError("operands of different kinds")


def _eq(a: Any, b: Any) -> bool:
    if a.__class__ is b.__class__ and a.__class__ is not dict and a.__class__ is not list:
        return bool(a == b)
    if a is None or b is None:
        return a is b
    _same(a, b)
    return bool(a == b)


def _in_strs(a: Any, strings: frozenset[str]) -> bool:
    if a.__class__ is str:
        return a in strings
    raise TypeError("not a string")


def _ne(a: Any, b: Any) -> bool:
    return not _eq(a, b)


def _ordered(a: Any, b: Any) -> None:
    _same(a, b)
    if _kind(a) not in (int, float, str):
        raise TypeError("not ordered")


_ORDERED = frozenset({int, float, str})


def _lt(a: Any, b: Any) -> bool:
    if a.__class__ is not b.__class__ or a.__class__ not in _ORDERED:
        _ordered(a, b)
    return bool(a < b)


def _le(a: Any, b: Any) -> bool:
    if a.__class__ is not b.__class__ or a.__class__ not in _ORDERED:
        _ordered(a, b)
    return bool(a <= b)


def _gt(a: Any, b: Any) -> bool:
    if a.__class__ is not b.__class__ or a.__class__ not in _ORDERED:
        _ordered(a, b)
    return bool(a > b)


def _ge(a: Any, b: Any) -> bool:
    if a.__class__ is not b.__class__ or a.__class__ not in _ORDERED:
        _ordered(a, b)
    return bool(a >= b)


def _in(a: Any, container: Any) -> bool:
    if container.__class__ is list:
        kind = a.__class__
        for x in container:
            if x.__class__ is kind and x == a:
                return True
        _kind(a)  # an unsupported value raises, as CEL would
        return False
    if isinstance(container, dict):
        return a in container
    raise TypeError("'in' needs a list or a map")


def _add(a: Any, b: Any) -> Any:
    _same(a, b)
    if _kind(a) in (bool, dict) or a is None:
        raise TypeError("cannot add")
    return a + b


def _number(a: Any, b: Any) -> None:
    _same(a, b)
    if _kind(a) not in (int, float):
        raise TypeError("not a number")


def _sub(a: Any, b: Any) -> Any:
    _number(a, b)
    return a - b


def _mul(a: Any, b: Any) -> Any:
    _number(a, b)
    return a * b


def _div(a: Any, b: Any) -> Any:
    _number(a, b)
    if isinstance(a, int):
        if b == 0:
            raise ZeroDivisionError
        q = abs(a) // abs(b)
        return q if (a >= 0) == (b >= 0) else -q
    return a / b


def _mod(a: Any, b: Any) -> Any:
    _number(a, b)
    if not isinstance(a, int):
        raise TypeError("% needs integers")
    return a - b * _div(a, b)


def _neg(a: Any) -> Any:
    if _kind(a) not in (int, float):
        raise TypeError("not a number")
    return -a


def _size(x: Any) -> int:
    if isinstance(x, (str, list, dict)) and not (x is True or x is False):
        return len(x)
    raise TypeError("size() of a value without one")


def _index(x: Any, i: Any) -> Any:
    if isinstance(x, list):
        if _kind(i) is not int:
            raise TypeError("list index must be an int")
        if not 0 <= i < len(x):
            raise IndexError
        return x[i]
    if isinstance(x, dict):
        return x[i]
    raise TypeError("cannot index")


def _has(base: Any, field: str) -> bool:
    if not isinstance(base, dict):
        raise TypeError("has() on a value that is not a map")
    return field in base


def _str_method(x: Any, y: Any) -> None:
    if not isinstance(x, str) or not isinstance(y, str):
        raise TypeError("string method on a value that is not a string")


def _starts(x: Any, y: Any) -> bool:
    _str_method(x, y)
    return bool(x.startswith(y))


def _ends(x: Any, y: Any) -> bool:
    _str_method(x, y)
    return bool(x.endswith(y))


def _contains(x: Any, y: Any) -> bool:
    _str_method(x, y)
    return y in x


_HELPERS = {
    name: value
    for name, value in globals().items()
    if name.startswith("_") and callable(value) and name not in ("_tokens", "_Parser")
}
_SCOPE: dict[str, Any] = {"__builtins__": {}, "str": str, "int": int, "float": float, **_HELPERS}


@dataclass(frozen=True, slots=True)
class Translation:
    """An expression as Python source over the variables `v`, and the names it needs."""

    source: str
    scope: dict[str, Any]


def translate(expr: str) -> Translation | None:
    """The expression as Python source, or None when it is outside the subset. Names of temporaries
    and constants are unique across translations, so several can be joined in one function."""
    parser = _Parser(expr)
    try:
        source = parser.parse()
    except (Unsupported, IndexError, ValueError):
        return None
    scope: dict[str, Any] = dict(_SCOPE)
    for name, constant in getattr(parser, "constants", {}).items():
        scope[name] = eval(constant, {"__builtins__": {"frozenset": frozenset}})  # noqa: S307
    return Translation(source, scope)


@overload
def compile_fast(expr: str) -> Compiled | None: ...
@overload
def compile_fast(expr: Translation, text: str) -> Compiled: ...


def compile_fast(expr: str | Translation, text: str = "") -> Compiled | None:
    """A Python function of the variables, or None when the expression is outside the subset
    (or the function of a translation already made; `text` names it in tracebacks)."""
    translation = translate(expr) if isinstance(expr, str) else expr
    if translation is None:
        return None
    name = expr if isinstance(expr, str) else text
    code = compile(f"lambda v: {translation.source}", f"<cel: {name}>", "eval")
    fn: Compiled = eval(code, translation.scope)  # noqa: S307 - our own output
    return fn
