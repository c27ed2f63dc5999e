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


def evaluate(expr: Any, env: Any, variables: dict[str, Any]) -> Any:
    """Evaluate a compiled expression: a PathRef on the variables, a cel.Program on the Context."""
    if isinstance(expr, PathRef):
        return expr.resolve(variables)
    return expr.execute(env)


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
