"""The audit log: what is put on record, and a chain that shows where it was tampered with."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from app.settings import Settings
from app.storage.audit import GENESIS, AuditEntry, append, audit_key, entries, verify
from app.storage.db import Pool
from tests.conftest import run_cairn

pytestmark = pytest.mark.integration

Client = AsyncTestClient[Any]
KEY = audit_key("whsec_test_identity")
FORGED = hashlib.sha256(b"forged").hexdigest()


async def _chain(pool: Pool, n: int) -> None:
    async with pool.acquire() as conn:
        await append(conn, KEY, [
            AuditEntry(action="key.created", actor="cli:ops", tenant_id=f"t{i}",
                       detail={"kind": "secret", "n": i, "nested": {"b": 1, "a": [1.5, None]}})
            for i in range(1, n + 1)
        ])  # fmt: skip


async def _verdict(pool: Pool, key: bytes = KEY) -> tuple[bool, int | None, str]:
    async with pool.acquire() as conn:
        v = await verify(conn, key)
    return v.ok, v.first_bad, v.problem


async def _tamper(pool: Pool, *statements: str) -> None:
    """As someone with write access to the database would: the append-only trigger off."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        for sql in statements:
            await conn.execute(sql)
        await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")


async def test_an_intact_chain_verifies_and_rows_cannot_be_changed(pool: Pool) -> None:
    await _chain(pool, 5)
    assert await _verdict(pool) == (True, None, "")
    rows = await pool.fetch("SELECT seq, prev_hash, hash FROM audit_log ORDER BY seq")
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["prev_hash"] == GENESIS
    assert all(rows[i]["prev_hash"] == rows[i - 1]["hash"] for i in range(1, 5))
    for sql in ("UPDATE audit_log SET actor = 'x' WHERE seq = 2", "DELETE FROM audit_log"):
        with pytest.raises(Exception, match="append-only"):
            await pool.execute(sql)
    # The chain's key is the deployment's: another key does not verify it.
    assert (await _verdict(pool, audit_key("another secret")))[:2] == (False, 1)


@pytest.mark.parametrize(
    ("statements", "first_bad", "says"),
    [
        (['UPDATE audit_log SET detail = \'{"kind": "publishable"}\' WHERE seq = 3'], 3, "altered"),
        (["UPDATE audit_log SET at = at - interval '1 hour' WHERE seq = 2"], 2, "altered"),
        (["UPDATE audit_log SET actor = 'someone else' WHERE seq = 6"], 6, "altered"),
        (["DELETE FROM audit_log WHERE seq = 4"], 4, "removed"),
        (["DELETE FROM audit_log WHERE seq IN (1, 2)"], 1, "removed"),
        # An entry forged at the end, chained to the last one with a plain hash.
        (
            [
                "INSERT INTO audit_log SELECT 7, now(), 'x', 'key.revoked', NULL, NULL, '{}', NULL,"
                f" hash, '{FORGED}' FROM audit_log WHERE seq = 6"
            ],
            7,
            "altered (or forged)",
        ),
        # One replaced in the middle: removed, and another put in its place.
        (
            [
                "DELETE FROM audit_log WHERE seq = 3",
                "INSERT INTO audit_log SELECT 3, now(), 'x', 'key.revoked', NULL, NULL, '{}', NULL,"
                " hash, hash FROM audit_log WHERE seq = 2",
            ],
            3,
            "altered (or forged)",
        ),
        # Entries renumbered to hide a removal.
        (
            [
                "DELETE FROM audit_log WHERE seq = 2",
                "UPDATE audit_log SET seq = seq - 1 WHERE seq > 2",
            ],
            2,
            "does not follow",
        ),
    ],
)
async def test_verify_names_the_first_entry_altered_removed_or_inserted(
    pool: Pool, statements: list[str], first_bad: int, says: str
) -> None:
    await _chain(pool, 6)
    await _tamper(pool, *statements)
    ok, bad, problem = await _verdict(pool)
    assert (ok, bad) == (False, first_bad), problem
    assert says in problem


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Every decision sampled onto the log."""
    return msgspec.structs.replace(settings, audit_decision_sample=1.0)


async def _logged(client: Client, secret_headers: dict[str, str], pool: Pool) -> list[Any]:
    r = await client.get("/admin/audit", headers=secret_headers)  # writes what is queued
    assert r.status_code == 200, r.text
    return list(reversed(await entries(pool, limit=1000)))


async def test_what_the_server_puts_on_record(
    client: Client,
    secret_headers: dict[str, str],
    browser_headers: Callable[[str, str], dict[str, str]],
    pool: Pool,
) -> None:
    user = {"tenant_id": "acme", "user_id": "ada@example.com"}
    r = await client.get("/v1/layouts/home", params=user, headers=browser_headers(*user.values()))
    assert r.status_code == 200
    decision_id = r.json()["decision_id"]
    r = await client.get("/admin/why", params=user, headers=secret_headers)
    assert r.status_code == 200
    logged = await _logged(client, secret_headers, pool)
    actions = [e.action for e in logged]
    assert actions[0] == "layouts.loaded"
    assert logged[0].detail["screens"]["loaded"] == ["billing", "editor", "home", "settings"]
    sampled = next(e for e in logged if e.action == "decision.sampled")
    assert sampled.detail["decision_id"] == decision_id
    assert sampled.detail["screen"] == "home" and sampled.detail["widgets"]
    viewed = next(e for e in logged if e.action == "user.viewed")
    assert viewed.actor.startswith("admin key ") and viewed.tenant_id == "acme"
    assert viewed.subject == sampled.subject and viewed.subject.startswith("u_")
    # No raw user id or trait value on the log; the pseudonym finds the user's entries.
    text = json.dumps([msgspec.to_builtins(e) for e in logged])
    assert "ada@example.com" not in text
    page = await client.get("/admin/audit", params={**user, "verify": "1"}, headers=secret_headers)
    assert page.status_code == 200
    assert "Intact:" in page.text and "user.viewed" in page.text
    assert "decision.sampled" in page.text and "layouts.loaded" not in page.text.split("<tbody>")[1]
    assert await _verdict(pool) == (True, None, "")


async def test_experiment_stops_and_resumes_are_on_record(
    client: Client, secret_headers: dict[str, str], pool: Pool
) -> None:
    r = await client.get("/v1/experiments", headers=secret_headers)
    key = next((e["key"] for e in r.json()["experiments"]), None)
    if key is None:
        pytest.skip("no experiment in the shipped layouts")
    r = await client.post(f"/v1/experiments/{key}/stop", headers=secret_headers,
                          json={"reason": "checking the log", "by": "ops@example.com"})  # fmt: skip
    assert r.status_code == 200, r.text
    logged = await _logged(client, secret_headers, pool)
    stopped = [e for e in logged if e.action == "experiment.stopped"]
    assert len(stopped) == 1
    assert stopped[0].actor == "ops@example.com"
    assert stopped[0].detail["experiment"] == key
    assert stopped[0].detail["reason"] == "checking the log"


async def test_the_command_line_records_keys_verifies_and_exports(
    pool: Pool,
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_dsn)
    monkeypatch.setenv("CAIRN_IDENTITY_SECRET", "whsec_test_identity")
    assert await run_cairn("keys", "create", "--tenant", "acme") == 0
    made = capsys.readouterr().out.strip()
    assert await run_cairn("keys", "revoke", made) == 0
    capsys.readouterr()
    assert await run_cairn("audit", "verify") == 0
    assert "audit log intact: 2 entries" in capsys.readouterr().out
    today = datetime.now(UTC).date().isoformat()
    assert await run_cairn("audit", "export", "--from", today, "--to", today) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["seq"], e["action"], e["tenant_id"]) for e in lines] == [
        (1, "key.created", "acme"), (2, "key.revoked", None)
    ]  # fmt: skip
    assert lines[0]["detail"]["fingerprint"] == lines[1]["detail"]["fingerprint"]
    assert made not in json.dumps(lines)  # the key itself is never on record
    await _tamper(pool, "UPDATE audit_log SET tenant_id = 'globex' WHERE seq = 1")
    assert await run_cairn("audit", "verify") == 1
    assert "BROKEN at entry 1" in capsys.readouterr().out


async def test_numbers_text_and_times_verify_as_jsonb_keeps_them(pool: Pool) -> None:
    async with pool.acquire() as conn:
        detail = {"big": 1e16, "bigger": 1.5e16, "zero": -0.0, "tiny": 1e-7, "text": "é ✓ 🙂",
                  "n": 2**62}  # fmt: skip
        await append(conn, KEY, [AuditEntry(action="x", actor="t", detail=detail)])
    assert await _verdict(pool) == (True, None, "")


async def test_an_entry_the_database_refuses_never_holds_the_log_up(pool: Pool) -> None:
    from app.serving.audit import Auditor

    auditor = Auditor("whsec_test_identity", 0.0)
    auditor.record("user.viewed", "admin", {"screen": "a\x00b"}, tenant_id="t\x00")
    auditor.record("key.created", "cli", {"bad": "\ud800"})  # not encodable: refused
    auditor.record("key.revoked", "cli", {"fingerprint": "abc"})
    await auditor.flush(pool)
    rows = await pool.fetch("SELECT action, tenant_id, detail FROM audit_log ORDER BY seq")
    assert [r["action"] for r in rows] == ["user.viewed", "audit.entry_rejected", "key.revoked"]
    assert rows[0]["tenant_id"] == "t\ufffd" and rows[0]["detail"] == {"screen": "a\ufffdb"}
    assert rows[1]["detail"]["action"] == "key.created"
    assert await _verdict(pool) == (True, None, "")
