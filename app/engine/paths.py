"""Plain signal paths (`activation.next.label`) read straight from the decision's variables.

Most templates and drivers are plain paths; reading them from the Python dict skips CEL entirely,
and only what CEL expressions really read is converted into the decision's `cel.Context`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

PLAIN_PATH = re.compile(r"^\s*[A-Za-z_]\w*(?:\s*\.\s*[A-Za-z_]\w*)*\s*$")

Trie = dict[str, Any]  # name -> sub-trie; an empty trie means "the whole value"


@dataclass(frozen=True, slots=True)
class PathRef:
    """A compiled plain path; `execute` mirrors cel.Program's for uniform evaluation."""

    parts: tuple[str, ...]

    @classmethod
    def parse(cls, expr: str) -> PathRef:
        return cls(tuple(p.strip() for p in expr.split(".")))

    def resolve(self, variables: dict[str, Any]) -> Any:
        node: Any = variables
        for part in self.parts:
            node = node[part]  # KeyError, like CEL's "no such key"
        return node


@dataclass(frozen=True, slots=True)
class FastExpr:
    """A CEL program with its Python translation (app.engine.fastcel); CEL decides on errors."""

    fast: Any  # Callable[[dict[str, Any]], Any]
    program: Any  # cel.Program
    python: Any = None  # the fastcel.Translation `fast` was compiled from


class LazyContext:
    """The decision's `cel.Context`, built only if some expression needs the CEL runtime."""

    __slots__ = ("_context", "_trie", "_variables")

    def __init__(self, variables: dict[str, Any], trie: Trie) -> None:
        self._variables = variables
        self._trie = trie
        self._context: Any = None

    def get(self) -> Any:
        if self._context is None:
            import cel

            self._context = cel.Context(prune(self._variables, self._trie))
        return self._context


def evaluate(expr: Any, env: Any, variables: dict[str, Any]) -> Any:
    """Evaluate a compiled expression: a PathRef or compiled Python on the variables, a
    cel.Program on the Context (`env`: a LazyContext or a cel.Context)."""
    if isinstance(expr, PathRef):
        return expr.resolve(variables)
    if isinstance(expr, FastExpr):
        try:
            return expr.fast(variables)
        except Exception:  # noqa: BLE001 - CEL has the last word on every error
            expr = expr.program
    return expr.execute(env.get() if isinstance(env, LazyContext) else env)


def build_trie(paths: set[str]) -> Trie:
    trie: Trie = {}
    for path in sorted(paths, key=len):
        node = trie
        parts = path.split(".")
        for i, part in enumerate(parts):
            if part in node and node[part] == {} and i < len(parts):
                break  # a shorter path already takes the whole value
            node = node.setdefault(part, {})
            if i == len(parts) - 1:
                node.clear()
    return trie


def prune(variables: dict[str, Any], trie: Trie) -> dict[str, Any]:
    """Only the parts of the variables that the trie's paths read."""
    out: dict[str, Any] = {}
    for name, sub in trie.items():
        if name not in variables:
            continue
        value = variables[name]
        out[name] = prune(value, sub) if sub and isinstance(value, dict) else value
    return out
