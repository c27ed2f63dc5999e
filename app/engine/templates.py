"""Rendering `{{ cel }}` templates in widget props and explanations. Pure."""

from __future__ import annotations

from typing import Any

from app.engine.model import Template


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return "" if value is None else str(value)


def render(tree: Any, env: Any) -> Any:
    """Evaluate every Template in a props tree against a cel.Context."""
    if isinstance(tree, Template):
        if tree.whole:
            return tree.parts[0].execute(env)
        return "".join(p if isinstance(p, str) else _text(p.execute(env)) for p in tree.parts)
    if isinstance(tree, dict):
        return {k: render(v, env) for k, v in tree.items()}
    if isinstance(tree, list):
        return [render(v, env) for v in tree]
    return tree
