"""With no DATABASE_URL, Cairn starts (and stops) its own PostgreSQL in its data directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from app.main import create_app
from app.settings import Settings

pytestmark = pytest.mark.integration

LAYOUTS = Path(__file__).resolve().parents[2] / "layouts"


async def test_embedded_postgres_serves_and_keeps_data(tmp_path: Path) -> None:
    settings = Settings(
        secret_key="sk",
        publishable_key="pk",
        identity_secret="id",
        database_url=None,
        data_dir=tmp_path / "data",
        layouts_dir=LAYOUTS,
        reload_layouts=False,
    )
    headers = {"Authorization": "Bearer sk"}
    event = {
        "type": "identify",
        "messageId": "m1",
        "tenantId": "acme",
        "userId": "u1",
        "traits": {"role": "maker"},
    }
    async with AsyncTestClient(app=create_app(settings)) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        r = await client.post("/v1/events", json={"batch": [event]}, headers=headers)
        assert r.json() == {"accepted": 1, "duplicates": 0}
    assert (tmp_path / "data" / "pg").is_dir()
    # A second start finds the same data: the retried event is a duplicate.
    async with AsyncTestClient(app=create_app(settings)) as client:
        r = await client.post("/v1/events", json={"batch": [event]}, headers=headers)
        assert r.json() == {"accepted": 0, "duplicates": 1}
        layout = await client.get(
            "/v1/layouts/home", params={"tenant_id": "acme", "user_id": "u1"}, headers=headers
        )
        assert layout.json()["layout"] == "home/maker"
