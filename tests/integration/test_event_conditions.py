"""A metric's `when:` evaluated by PostgreSQL says what the CEL runtime says, error for error.

Hypothesis writes conditions in the subset (comparisons of event.name and nested properties with
literals of every kind, `in`, `&&`, `||`, `!`) and events whose properties are of every kind or
missing. CEL's true must be SQL TRUE, its false SQL FALSE, and its error (a missing key, an
ordering across kinds) SQL NULL, which a WHERE leaves out as CEL does.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import cel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.engine.event_conditions import parse
from app.storage.metrics import _condition_sql, _Params
from tests.conftest import run_sync

pytestmark = pytest.mark.integration

KEYS = ("a", "b", "plan")
LITERALS = st.one_of(
    st.sampled_from(["pro", "free", "", "é", "B", "b"]),
    st.integers(min_value=-3, max_value=3),
    st.sampled_from([1.5, -0.5, 2.0]),
    st.booleans(),
    st.none(),
)


def literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value + "'"
    return repr(value)


@st.composite
def fields(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 5)) == 0:
        return "event.name"
    path = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=2))
    return "event.properties." + ".".join(path)


@st.composite
def comparisons(draw: st.DrawFn) -> str:
    field = draw(fields())
    if draw(st.integers(0, 4)) == 0:
        values = draw(st.lists(LITERALS, min_size=1, max_size=3))
        return f"{field} in [{', '.join(literal(v) for v in values)}]"
    op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
    value = literal(draw(LITERALS))
    return f"{field} {op} {value}" if draw(st.booleans()) else f"{value} {op} {field}"


conditions = st.recursive(
    comparisons(),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["&&", "||"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        inner.map(lambda c: f"!({c})"),
    ),
    max_leaves=4,
)  # fmt: skip

values = st.one_of(LITERALS, st.dictionaries(st.sampled_from(KEYS), LITERALS, max_size=2))
properties = st.dictionaries(st.sampled_from(KEYS), values, max_size=3)


def cel_says(condition: str, name: str, props: dict[str, Any]) -> bool | None:
    try:
        result = cel.compile(condition).execute({"event": {"name": name, "properties": props}})
    except Exception:  # noqa: BLE001 - any CEL error
        return None
    assert isinstance(result, bool)
    return result


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    condition=conditions,
    name=st.sampled_from(["feature_used", "pro", "B"]),
    props=properties,
)
def test_sql_and_cel_agree(
    database_dsn: str, condition: str, name: str, props: dict[str, Any]
) -> None:
    expected = cel_says(condition, name, props)
    params = _Params()
    sql = _condition_sql(parse(condition), params)

    async def run() -> Any:
        conn = await asyncpg.connect(database_dsn)
        try:
            n = len(params.values)
            return await conn.fetchval(
                f"SELECT {sql} FROM (SELECT ${n + 1}::text::jsonb AS properties,"
                f" ${n + 2}::text AS event) e",
                *params.values,
                __import__("json").dumps(props),
                name,
            )
        finally:
            await conn.close()

    assert run_sync(run()) == expected, (condition, name, props, sql)
