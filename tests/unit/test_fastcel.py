"""Compiled rules agree with CEL: whenever the Python translation answers, CEL gives that answer."""

from __future__ import annotations

from typing import Any

import cel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.engine.fastcel import compile_fast
from app.engine.model import Template
from app.engine.paths import FastExpr
from app.engine.profile import ProfileData
from app.engine.signals import build_context
from tests.strategies import LAYOUTS, NOW, profiles, screens

VARIABLES: dict[str, Any] = {
    "n": 3,
    "m": -7,
    "x": 2.5,
    "s": "admin",
    "t": "",
    "ok": True,
    "no": False,
    "nothing": None,
    "xs": ["a", "b"],
    "ns": [1, 2, 3],
    "empty": [],
    "map": {"k": 1, "deep": {"v": "w"}},
    "user": {"role": "admin", "days": 4},
}
CASES = [
    "n == 3",
    "n != 3",
    "n < 4 && s == 'admin'",
    "n > 4 || ok",
    "!ok",
    "!no && ok",
    "n + 1",
    "n - 10",
    "n * 2",
    "n / 2",
    "m / 2",
    "m % 3",
    "n % 2",
    "x * 2.0",
    "-n",
    "-x",
    "n == 3.0",
    "n < 2.5",
    "x > 2",
    "s + '!'",
    "s + 1",
    "xs + ['c']",
    "'a' in xs",
    "'z' in xs",
    "1 in ns",
    "'k' in map",
    "size(xs)",
    "xs.size()",
    "size(s)",
    "size(map)",
    "size(n)",
    "s.startsWith('ad')",
    "s.endsWith('in')",
    "s.contains('dm')",
    "t == ''",
    "map.k == 1",
    "map.deep.v",
    "map.missing",
    "map['k']",
    "xs[1]",
    "xs[5]",
    "ns[0] + ns[2]",
    "user.role == 'admin' ? 'yes' : 'no'",
    "ok ? n : s",
    "n ? 1 : 2",
    "has(map.k)",
    "has(map.zz)",
    "has(user.role)",
    "nothing == null",
    "n == null",
    "ok && n",
    "n && ok",
    "no && n",
    "ok || n",
    "n || ok",
    "[1, 2][0]",
    "'it\\'s'",
    "s < 'b'",
    "xs == ['a', 'b']",
    "map == map",
    "1 / 0",
    "n > 1 && (s == 'x' || xs.size() == 2)",
]


def cel_outcome(expr: str, variables: dict[str, Any]) -> tuple[str, Any]:
    try:
        return ("value", cel.compile(expr).execute(cel.Context(variables)))
    except Exception as exc:  # noqa: BLE001 - any CEL error is an outcome
        return ("error", type(exc).__name__)


@pytest.mark.parametrize("expr", CASES)
def test_operator_cases_agree_with_cel(expr: str) -> None:
    fast = compile_fast(expr)
    expected = cel_outcome(expr, VARIABLES)
    if fast is None:
        return  # left to CEL entirely
    try:
        got = fast(VARIABLES)
    except (KeyError, TypeError, IndexError, ZeroDivisionError):
        return  # the caller falls back to CEL: always safe
    assert expected == ("value", got), f"{expr}: python {got!r}, cel {expected!r}"
    assert type(got) is type(expected[1]), expr


def shipped_expressions() -> list[tuple[str, FastExpr]]:
    found: list[tuple[str, FastExpr]] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, FastExpr):
            found.append((where, node))
        elif isinstance(node, Template):
            for part in node.parts:
                walk(part, where)
        elif isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value, where)

    for screen in LAYOUTS.screens.values():
        for slot in screen.slots:
            for w in slot.widgets:
                base = f"{screen.name}/{w.id}"
                walk(w.when, f"{base}.when")
                walk(w.confidence, f"{base}.confidence")
                walk(w.props, f"{base}.props")
                walk(w.summary, f"{base}.why")
                for _, driver in w.drivers:
                    walk(driver, f"{base}.drivers")
    for stage in LAYOUTS.vocabulary.stages:
        walk(stage.program, f"lifecycle.{stage.stage}")
    return found


EXPRESSIONS = shipped_expressions()


def test_most_shipped_rules_are_compiled() -> None:
    assert len(EXPRESSIONS) >= 30


@settings(max_examples=150, deadline=None)
@given(profiles, screens, st.sampled_from(["full", "basic"]))
def test_shipped_rules_agree_with_cel(profile: ProfileData, screen: str, mode: str) -> None:
    variables = build_context(
        profile,
        LAYOUTS.vocabulary,
        now=NOW,
        mode=mode,  # type: ignore[arg-type]
        screen=screen,
    )
    variables["view"] = "admin"
    context = cel.Context(variables)
    answered = 0
    for where, expr in EXPRESSIONS:
        try:
            got = expr.fast(variables)
        except (KeyError, TypeError):  # falls back to CEL, always safe
            continue
        answered += 1
        try:
            expected = expr.program.execute(context)
        except Exception as exc:  # noqa: BLE001
            pytest.fail(f"{where}: python answered {got!r} where CEL raised {exc!r}")
        assert got == expected and type(got) is type(expected), where
    assert answered >= 0.8 * len(EXPRESSIONS)  # Python does the work; CEL only the rest


def test_the_translation_answers_most_cases_itself() -> None:
    answered = 0
    for expr in CASES:
        fast = compile_fast(expr)
        if fast is None:
            continue
        try:
            fast(VARIABLES)
        except (KeyError, TypeError, IndexError, ZeroDivisionError):
            continue
        answered += 1
    assert answered >= 48, answered
