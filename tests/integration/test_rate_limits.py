"""Rate limits per API key and per browser user: 429 with Retry-After, and nothing lost."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from app.settings import Settings
from app.storage.db import Pool

pytestmark = pytest.mark.integration

Client = AsyncTestClient[Any]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings, with tight limits."""
    return msgspec.structs.replace(settings, rate_limit_user="3/minute", rate_limit_key="8/minute")


def _layout(client: Client, headers: dict[str, str], user: str) -> Any:
    return client.get("/v1/layouts/home", params={"tenant_id": "acme", "user_id": user},
                      headers=headers)  # fmt: skip


async def test_a_browser_user_over_its_limit_gets_429_with_retry_after(
    client: Client, browser_headers: Callable[[str, str], dict[str, str]], pool: Pool
) -> None:
    as_u1 = browser_headers("acme", "u1")
    for _ in range(3):
        assert (await _layout(client, as_u1, "u1")).status_code == 200
    r = await _layout(client, as_u1, "u1")
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "rate_limited"
    assert "this user" in r.json()["error"]["message"]
    assert 1 <= int(r.headers["retry-after"]) <= 60
    # An event batch over the limit is refused whole, and nothing of it is stored.
    batch = {"batch": [{"type": "track", "messageId": "over", "tenantId": "acme",
                        "userId": "u1", "event": "report_created"}]}  # fmt: skip
    r = await client.post("/v1/events", headers=as_u1, json=batch)
    assert r.status_code == 429
    assert await pool.fetchval("SELECT count(*) FROM events WHERE message_id = 'over'") == 0
    # Another user of the same browser key has a budget of their own.
    assert (await _layout(client, browser_headers("acme", "u2"), "u2")).status_code == 200


async def test_a_key_over_its_limit_gets_429_and_a_secret_key_has_no_user_limit(
    client: Client, secret_headers: dict[str, str]
) -> None:
    codes = [(await _layout(client, secret_headers, "u1")).status_code for _ in range(9)]
    assert codes == [200] * 8 + [429]  # one user, 8 calls: only the key's limit applies
    r = await _layout(client, secret_headers, "u9")
    assert r.status_code == 429
    assert "this API key" in r.json()["error"]["message"]
    assert int(r.headers["retry-after"]) >= 1


async def test_nobody_can_spend_the_public_keys_budget(
    client: Client, settings: Settings, browser_headers: Callable[[str, str], dict[str, str]]
) -> None:
    """The publishable key is in every page: wrong hashes cost it nothing, and its users are
    counted one by one."""
    forged = {"Authorization": f"Bearer {settings.publishable_key}", "X-Cairn-User-Hash": "0" * 64}
    for _ in range(12):  # more than the key limit of 8 a minute
        assert (await _layout(client, forged, "u1")).status_code == 403
    for user in ("u1", "u2", "u3", "u4"):
        assert (await _layout(client, browser_headers("acme", user), user)).status_code == 200
