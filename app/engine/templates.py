"""Rendering `{{ cel }}` templates in widget props and explanations. Pure."""

from __future__ import annotations

from typing import Any

from app.engine.model import Template
from app.engine.paths import evaluate


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return "" if value is None else str(value)


def _part(part: Any, env: Any, variables: dict[str, Any]) -> str:
    return part if isinstance(part, str) else _text(evaluate(part, env, variables))


def render(tree: Any, env: Any, variables: dict[str, Any]) -> Any:
    """Evaluate every Template in a props tree (CEL on `env`, plain paths on `variables`)."""
    if isinstance(tree, Template):
        if tree.whole:
            return evaluate(tree.parts[0], env, variables)
        return "".join(_part(p, env, variables) for p in tree.parts)
    if isinstance(tree, dict):
        return {k: render(v, env, variables) for k, v in tree.items()}
    if isinstance(tree, list):
        return [render(v, env, variables) for v in tree]
    return tree
