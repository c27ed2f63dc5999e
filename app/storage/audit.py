"""The audit log: append-only and tamper-evident, in PostgreSQL.

Entries are numbered 1, 2, 3... without gaps. Each carries the hash of the one before and its own:

    hash = hex(HMAC-SHA256(key, prev_hash + "\\n" + canonical JSON of
                            [seq, at, actor, action, tenant_id, subject, detail]))

with the first entry's `prev_hash` 64 zeros, canonical JSON with sorted keys, and `at` in ISO 8601
UTC with microseconds. The key is derived from the deployment's identity secret and never stored
in the database, so whoever can write the table cannot write a chain that verifies (a plain hash
chain anyone could recompute). `verify` walks the chain and names the first entry that was
altered (its hash does not match what it says), removed (a number is missing) or inserted (an
entry that does not follow the one before it). Rows are never updated or deleted (a trigger
refuses it); dropping the newest entries is what a chain alone cannot show: keep the head that
`verify` prints (its number and hash) somewhere else, as CloudTrail's digest files are kept.
Appends take an advisory lock, so processes write one chain.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from app.storage.db import Conn, Pool

GENESIS = "0" * 64
_LOCK = 7_242_018  # advisory lock: one writer of the chain at a time across processes


def audit_key(identity_secret: str) -> bytes:
    return hmac.new(identity_secret.encode(), b"cairn/audit/v1", hashlib.sha256).digest()


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """What happened, by whom, to whose data. `dedupe`: written once whatever the number of
    processes that report it (a layout version loaded)."""

    action: str
    actor: str
    detail: dict[str, Any] = {}
    tenant_id: str | None = None
    subject: str | None = None
    dedupe: str | None = None
    at: datetime | None = None  # when it happened; the time it is written when unset


class StoredEntry(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    at: datetime
    actor: str
    action: str
    tenant_id: str | None
    subject: str | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str


def entry_hash(key: bytes, prev_hash: str, e: StoredEntry | tuple[Any, ...]) -> str:
    if isinstance(e, StoredEntry):
        e = (e.seq, e.at, e.actor, e.action, e.tenant_id, e.subject, e.detail)
    seq, at, actor, action, tenant_id, subject, detail = e
    stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = msgspec.json.encode([seq, stamp, actor, action, tenant_id, subject, detail],
                               order="sorted")  # fmt: skip
    return hmac.new(key, prev_hash.encode() + b"\n" + body, hashlib.sha256).hexdigest()


async def append(conn: Conn, key: bytes, entries: Sequence[AuditEntry]) -> int:
    """Chain these entries onto the log (one transaction); how many were written."""
    written = 0
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
        last = await conn.fetchrow("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        seq, prev = (last["seq"], last["hash"]) if last is not None else (0, GENESIS)
        now = await conn.fetchval("SELECT clock_timestamp()")
        for e in entries:
            if e.dedupe is not None and await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM audit_log WHERE dedupe = $1)", e.dedupe
            ):
                continue
            seq += 1
            # What is hashed is what jsonb gives back (its numbers, its key order).
            detail = await conn.fetchval("SELECT $1::jsonb", e.detail)
            at = e.at or now
            fields = (seq, at, e.actor, e.action, e.tenant_id, e.subject, detail)
            digest = entry_hash(key, prev, fields)
            await conn.execute(
                "INSERT INTO audit_log (seq, at, actor, action, tenant_id, subject, detail, dedupe,"
                " prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                *fields, e.dedupe, prev, digest,
            )  # fmt: skip
            prev = digest
            written += 1
    return written


def _stored(r: Any) -> StoredEntry:
    return StoredEntry(
        seq=r["seq"], at=r["at"], actor=r["actor"], action=r["action"], tenant_id=r["tenant_id"],
        subject=r["subject"], detail=r["detail"], prev_hash=r["prev_hash"], hash=r["hash"],
    )  # fmt: skip


_COLUMNS = "seq, at, actor, action, tenant_id, subject, detail, prev_hash, hash"


async def entries(
    db: Pool | Conn,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    action: str | None = None,
    actor: str | None = None,
    tenant_id: str | None = None,
    subject: str | None = None,
    before: int | None = None,
    limit: int = 100,
) -> list[StoredEntry]:
    """The newest entries first, filtered (`action` may end with `.` for a family)."""
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM audit_log"
        " WHERE ($1::timestamptz IS NULL OR at >= $1) AND ($2::timestamptz IS NULL OR at < $2)"
        " AND ($3::text IS NULL OR action = $3 OR (right($3, 1) = '.' AND action LIKE $3 || '%'))"
        " AND ($4::text IS NULL OR actor = $4) AND ($5::text IS NULL OR tenant_id = $5)"
        " AND ($6::text IS NULL OR subject = $6) AND ($7::bigint IS NULL OR seq < $7)"
        " ORDER BY seq DESC LIMIT $8",
        start, end, action, actor, tenant_id, subject, before, limit,
    )  # fmt: skip
    return [_stored(r) for r in rows]


async def stream(
    conn: Conn, *, start: datetime | None = None, end: datetime | None = None
) -> AsyncIterator[StoredEntry]:
    """Every entry in order (within `start` ≤ at < `end`), read in pages (in a transaction)."""
    async for r in conn.cursor(
        f"SELECT {_COLUMNS} FROM audit_log WHERE ($1::timestamptz IS NULL OR at >= $1)"
        " AND ($2::timestamptz IS NULL OR at < $2) ORDER BY seq",
        start,
        end,
        prefetch=2000,
    ):
        yield _stored(r)


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    entries: int  # entries checked
    head_seq: int  # the last entry's number and hash: keep them elsewhere to notice truncation
    head_hash: str
    first_bad: int | None = None  # the first entry that was altered, removed or inserted
    problem: str = ""


async def verify(conn: Conn, key: bytes) -> Verdict:
    """Walk the chain from the first entry; stop at the first that does not hold."""
    expected, prev, checked = 1, GENESIS, 0
    async with conn.transaction():
        async for e in stream(conn):
            problem = ""
            if e.seq > expected:
                problem = f"entry {expected} was removed" + (
                    f" (and {e.seq - expected - 1} after it)" if e.seq - expected > 1 else ""
                )
                bad = expected
            elif e.prev_hash != prev:
                problem = f"entry {e.seq} does not follow entry {e.seq - 1}: inserted or replaced"
                bad = e.seq
            elif entry_hash(key, prev, e) != e.hash:
                problem = f"entry {e.seq} was altered (or forged): its hash does not match it"
                bad = e.seq
            if problem:
                return Verdict(ok=False, entries=checked, head_seq=expected - 1, head_hash=prev,
                               first_bad=bad, problem=problem)  # fmt: skip
            checked += 1
            expected, prev = e.seq + 1, e.hash
    return Verdict(ok=True, entries=checked, head_seq=expected - 1, head_hash=prev)
