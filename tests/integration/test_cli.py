"""The `cairn` commands that operators run against a database: keys, and the renamed commands."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.cli import main, parser
from app.cli.keys import cmd_keys_create, cmd_keys_legacy
from app.cli.models import cmd_models_train
from app.cli.recs import cmd_recs_train
from app.serving.runtime import Runtime
from app.storage.db import Pool
from app.storage.keys import key_fingerprint

pytestmark = pytest.mark.integration


async def cairn(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def test_keys_are_created_listed_and_revoked_from_the_command_line(
    client: AsyncTestClient[Any],
    runtime: Runtime,
    pool: Pool,
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_dsn)
    assert await cairn("keys", "create", "--tenant", "acme", "--kind", "publishable") == 0
    assert await cairn("keys", "create", "--tenant", "acme") == 0
    publishable, secret = capsys.readouterr().out.split()
    assert publishable.startswith("pk_acme_") and secret.startswith("sk_acme_")
    stored = {r["key_hash"]: r["kind"] for r in await pool.fetch("SELECT * FROM api_keys")}
    assert stored == {
        key_fingerprint(publishable): "publishable",
        key_fingerprint(secret): "secret",
    }

    assert await cairn("keys", "list", "--tenant", "acme") == 0
    listed = capsys.readouterr().out
    assert secret not in listed and publishable not in listed  # never the keys themselves
    fingerprints = re.findall(r"^([0-9a-f]{16})\s+(\w+)\s+acme", listed, re.M)
    assert sorted(fingerprints) == sorted(
        [
            (key_fingerprint(publishable)[:16], "publishable"),
            (key_fingerprint(secret)[:16], "secret"),
        ]
    )

    params = {"tenant_id": "acme", "user_id": "u1"}
    headers = {"Authorization": f"Bearer {secret}"}
    assert (await client.get("/v1/layouts/home", params=params, headers=headers)).status_code == 200
    # Revoked by the fingerprint `keys list` showed: the running server stops accepting it.
    assert await cairn("keys", "revoke", key_fingerprint(secret)[:16]) == 0
    for _ in range(50):  # the revocation arrives by NOTIFY; a bound on failure, not a speed check
        r = await client.get("/v1/layouts/home", params=params, headers=headers)
        if r.status_code == 401:
            break
        await asyncio.sleep(0.05)
    assert r.status_code == 401
    assert await pool.fetchval("SELECT count(*) FROM api_keys") == 1
    # Revoked by the key itself; then nothing is left to revoke.
    assert await cairn("keys", "revoke", publishable) == 0
    assert await cairn("keys", "revoke", publishable) == 1
    assert "no such key" in capsys.readouterr().err
    assert await pool.fetchval("SELECT count(*) FROM api_keys") == 0


async def test_a_short_or_ambiguous_fingerprint_revokes_nothing(
    pool: Pool, database_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_dsn)
    for _ in range(2):
        assert await cairn("keys", "create", "--tenant", "acme") == 0
    assert await cairn("keys", "revoke", "abc") == 1  # too short to name one key
    assert await cairn("keys", "revoke", "") == 1
    assert await pool.fetchval("SELECT count(*) FROM api_keys") == 2


async def test_the_former_keys_form_still_creates_a_key(
    pool: Pool,
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_dsn)
    assert await cairn("keys", "--tenant", "globex", "--kind", "publishable") == 0
    out = capsys.readouterr()
    assert out.out.strip().startswith("pk_globex_")
    assert "cairn keys create --tenant" in out.err
    row = await pool.fetchrow("SELECT tenant_id, kind FROM api_keys")
    assert row is not None and (row["tenant_id"], row["kind"]) == ("globex", "publishable")


def test_renamed_commands_keep_their_former_names_for_one_release() -> None:
    args = parser().parse_args(["recs", "train", "--no-save", "--every-days", "5"])
    assert args.func is cmd_recs_train
    assert (args.no_save, args.every_days) == (True, 5)
    assert parser().parse_args(["models", "train"]).func is cmd_models_train
    assert parser().parse_args(["keys", "create", "--tenant", "t"]).func is cmd_keys_create
    assert parser().parse_args(["keys", "--tenant", "t"]).func is cmd_keys_legacy
