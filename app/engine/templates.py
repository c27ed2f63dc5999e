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


def _evaluate(program: Any, env: Any) -> Any:
    return program.execute(env)


def _part(part: Any, env: Any) -> str:
    return part if isinstance(part, str) else _text(part.execute(env))


def render(tree: Any, env: Any) -> Any:
    """Evaluate every Template in a props tree against a cel.Context."""
    if isinstance(tree, Template):
        if tree.whole:
            return _evaluate(tree.parts[0], env)
        return "".join(_part(p, env) for p in tree.parts)
    if isinstance(tree, dict):
        return {k: render(v, env) for k, v in tree.items()}
    if isinstance(tree, list):
        return [render(v, env) for v in tree]
    return tree
