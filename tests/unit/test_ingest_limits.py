"""Ingestion edge cases: deep nesting, identifiers in bytes, identifiers nested anywhere."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from app.errors import CairnError
from app.http.errors import status_of
from app.ingest.segment import parse_batch, pii_key

NOW = datetime(2026, 11, 27, 10, tzinfo=UTC)
KEY = pii_key("whsec_test")


def parse(body: dict[str, Any], mode: str = "hash") -> Any:
    return parse_batch(
        msgspec.json.encode(body),
        received_at=NOW,
        pii_mode=mode,  # type: ignore[arg-type]
        pii_key=KEY,
    )


def event(**extra: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": "m1",
        "tenantId": "acme",
        "userId": "u1",
        "event": "report_created",
        **extra,
    }


def test_deep_nesting_is_a_400() -> None:
    deep = "[" * 1500 + "1" + "]" * 1500  # about 3 KB, far below the size limits
    body = (
        '{"batch": [{"type": "track", "messageId": "m1", "tenantId": "acme", "userId": "u1",'
        ' "event": "report_created", "properties": {"a": ' + deep + "}}]}"
    ).encode()
    with pytest.raises(CairnError) as info:
        parse_batch(body, received_at=NOW, pii_mode="hash", pii_key=KEY)
    assert status_of(info.value) == 400
    assert "nest" in info.value.message


def test_identifiers_are_limited_in_bytes() -> None:
    with pytest.raises(CairnError) as info:
        parse({"batch": [event(userId="😀" * 100)]})  # 100 characters, 400 bytes
    assert status_of(info.value) == 400
    assert info.value.field == "batch[0].userId"


def test_identifiers_nested_or_spelled_otherwise_are_hashed() -> None:
    rows = parse(
        {
            "batch": [
                event(
                    type="identify",
                    event=None,
                    traits={
                        "contact": {"work_email": "bob@example.com", "mobilePhone": "+1555"},
                        "full-name": "Bob Smith",
                        "emailAddress": "bob@example.com",
                        "plan_name": "x",
                    },
                    context={"library": {"name": "analytics.js"}, "page": {"name": "Settings"}},
                )
            ]
        }
    ).rows
    stored = msgspec.json.encode(rows[0]).decode()
    for clear in ("bob@example.com", "+1555", "Bob Smith"):
        assert clear not in stored
    assert rows[0].traits["plan_name"] == "x"  # not an identifier
    assert rows[0].context["library"]["name"] == "analytics.js"  # nested names are not people
    assert rows[0].context["page"]["name"] == "Settings"
    dropped = parse(
        {
            "batch": [
                event(type="identify", event=None, traits={"contact": {"email": "bob@example.com"}})
            ]
        },
        mode="drop",
    ).rows
    assert dropped[0].traits == {"contact": {}}
