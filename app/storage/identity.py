"""Identity stitching, Segment's way: an `alias` call (previousId → userId), or an `identify` call
that carries both an anonymousId and a userId, makes the first id's history the user's.

A link is made once, inside the batch's transaction (`app.storage.events`):

- the source's stored events move to the user (their `received_at` set to now, so the next
  metrics refresh recomputes the user from them), and its aggregates fold into the user's:
  daily event counts and facets add up, widget history merges, traits merge with the user's own
  winning, preferences and experiment assignments the user lacks are taken over; the source's
  computed metric rows go (the refresh computes the user's);
- `aliases` records source → user, and whoever had been merged into the source now points to
  the user too, so every later event sent under any of those ids is stored as the user's;
- every process drops what it cached of both (NOTIFY).

Nothing is copied: each event counts once, whichever order the link and the events arrive in.
A batch that makes a new link holds its tenant's lock stripe exclusively (see
`app.storage.suppressions`), so no concurrent batch of the tenant can store events under the
source after their move, and every batch resolves its ids through `aliases` only once it holds
its stripes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

import msgspec

from app.storage.db import Conn, Pool
from app.storage.suppressions import METRIC_UNIT_TABLES

UserKey = tuple[str, str]
_MAX_CHAIN = 16  # links followed from one id at most (a cycle cannot form; this bounds a bug)


class LinkRefusedError(Exception):
    """A browser's batch would merge an identified user into another one."""

    def __init__(self, tenant_id: str, message_id: str, source: str) -> None:
        super().__init__(f"{tenant_id}/{message_id}: '{source}' is an identified user")
        self.tenant_id = tenant_id
        self.message_id = message_id
        self.source = source


class Link(msgspec.Struct, frozen=True, order=True):
    tenant_id: str
    source: str  # the anonymousId or previousId
    target: str  # the user it joins, resolved through earlier links
    message_id: str  # the call that made it


async def known_links(conn: Conn | Pool, ids: Iterable[UserKey]) -> dict[UserKey, str]:
    """Of these (tenant, id) pairs, those merged into a user already: pair → user id."""
    pairs = sorted(set(ids))
    if not pairs:
        return {}
    rows = await conn.fetch(
        "SELECT a.tenant_id, a.previous_id, a.user_id"
        "  FROM unnest($1::text[], $2::text[]) AS k(tenant_id, id)"
        "  JOIN aliases a ON a.tenant_id = k.tenant_id AND a.previous_id = k.id",
        [t for t, _ in pairs],
        [u for _, u in pairs],
    )
    return {(r["tenant_id"], r["previous_id"]): r["user_id"] for r in rows}


def resolve(key: UserKey, links: Mapping[UserKey, str]) -> str:
    """The user an id stands for: itself, or the user it was merged into (followed to the end)."""
    tenant_id, user_id = key
    for _ in range(_MAX_CHAIN):
        target = links.get((tenant_id, user_id))
        if target is None or target == user_id:
            return user_id
        user_id = target
    return user_id


async def identified_among(conn: Conn, pairs: Iterable[UserKey]) -> set[UserKey]:
    """Of these (tenant, id) pairs, those of users any of whose events carried a userId."""
    wanted = sorted(set(pairs))
    if not wanted:
        return set()
    rows = await conn.fetch(
        "SELECT u.tenant_id, u.user_id FROM unnest($1::text[], $2::text[]) AS k(tenant_id, id)"
        " JOIN users u ON u.tenant_id = k.tenant_id AND u.user_id = k.id WHERE u.identified",
        [t for t, _ in wanted],
        [u for _, u in wanted],
    )
    return {(r["tenant_id"], r["user_id"]) for r in rows}


# Each statement: $1 tenant, $2 the source id, $3 the user it joins. Deleted source rows are
# re-inserted as the user's; on a conflict they add up (or the user's own value wins).
_MERGE: tuple[str, ...] = (
    "UPDATE events SET user_id = $3, received_at = now() WHERE tenant_id = $1 AND user_id = $2",
    """WITH gone AS (DELETE FROM users WHERE tenant_id = $1 AND user_id = $2 RETURNING *)
    INSERT INTO users AS x (tenant_id, user_id, traits, first_seen, last_seen, identified)
    SELECT tenant_id, $3, traits, first_seen, last_seen, identified FROM gone
    ON CONFLICT (tenant_id, user_id) DO UPDATE SET
        traits = EXCLUDED.traits || x.traits,
        first_seen = CASE WHEN x.identified AND NOT EXCLUDED.identified THEN x.first_seen
                          ELSE LEAST(x.first_seen, EXCLUDED.first_seen) END,
        last_seen = GREATEST(x.last_seen, EXCLUDED.last_seen),
        identified = x.identified OR EXCLUDED.identified""",
    """WITH gone AS (DELETE FROM user_event_days WHERE tenant_id = $1 AND user_id = $2
                     RETURNING *)
    INSERT INTO user_event_days AS x (tenant_id, user_id, day, event, n)
    SELECT tenant_id, $3, day, event, n FROM gone
    ON CONFLICT (tenant_id, user_id, day, event) DO UPDATE SET n = x.n + EXCLUDED.n""",
    """WITH gone AS (DELETE FROM user_facets WHERE tenant_id = $1 AND user_id = $2 RETURNING *)
    INSERT INTO user_facets AS x (tenant_id, user_id, kind, value, n, first_at, last_at)
    SELECT tenant_id, $3, kind, value, n, first_at, last_at FROM gone
    ON CONFLICT (tenant_id, user_id, kind, value) DO UPDATE SET
        n = x.n + EXCLUDED.n,
        first_at = LEAST(x.first_at, EXCLUDED.first_at),
        last_at = GREATEST(x.last_at, EXCLUDED.last_at)""",
    """WITH gone AS (DELETE FROM user_widgets WHERE tenant_id = $1 AND user_id = $2 RETURNING *)
    INSERT INTO user_widgets AS x
        (tenant_id, user_id, widget_id, views, last_viewed, dismissed_at, completed_at)
    SELECT tenant_id, $3, widget_id, views, last_viewed, dismissed_at, completed_at FROM gone
    ON CONFLICT (tenant_id, user_id, widget_id) DO UPDATE SET
        views = x.views + EXCLUDED.views,
        last_viewed = GREATEST(x.last_viewed, EXCLUDED.last_viewed),
        dismissed_at = GREATEST(x.dismissed_at, EXCLUDED.dismissed_at),
        completed_at = LEAST(x.completed_at, EXCLUDED.completed_at)""",
    # the user's own choices win; the anonymous visitor's apply when the user has made none
    """WITH gone AS (DELETE FROM preferences WHERE tenant_id = $1 AND user_id = $2 RETURNING *)
    INSERT INTO preferences (tenant_id, user_id, body, updated_at)
    SELECT tenant_id, $3, body, updated_at FROM gone
    ON CONFLICT (tenant_id, user_id) DO NOTHING""",
    # an experiment keeps the arm the visitor saw, unless the user has one of their own
    """WITH gone AS (DELETE FROM experiment_assignments WHERE tenant_id = $1 AND unit_id = $2
                     RETURNING *)
    INSERT INTO experiment_assignments
        (tenant_id, experiment, unit_id, arm, assigned_at, exposed_at, design)
    SELECT tenant_id, experiment, $3, arm, assigned_at, exposed_at, design FROM gone
    ON CONFLICT (tenant_id, experiment, unit_id) DO NOTHING""",
    "DELETE FROM metric_values WHERE tenant_id = $1 AND unit_id = $2",
    "DELETE FROM metric_units WHERE tenant_id = $1 AND unit = 'user' AND unit_id = $2",
    "DELETE FROM metric_exposures WHERE tenant_id = $1 AND user_id = $2",
    "UPDATE aliases SET user_id = $3 WHERE tenant_id = $1 AND user_id = $2",
    """INSERT INTO aliases (tenant_id, previous_id, user_id, linked_at) VALUES ($1, $2, $3, now())
    ON CONFLICT (tenant_id, previous_id) DO UPDATE
    SET user_id = EXCLUDED.user_id, linked_at = EXCLUDED.linked_at""",
)
MERGED_TABLES = (
    "events", "users", "user_event_days", "user_facets", "user_widgets", "preferences",
    "experiment_assignments", "metric_values", "metric_units", "metric_exposures",
)  # fmt: skip


async def merge(conn: Conn, link: Link) -> None:
    """Make the source's history the target's (in the caller's transaction, which holds the
    tenant's stripe exclusively)."""
    for statement in _MERGE:
        args = (link.tenant_id, link.source, link.target)
        await conn.execute(statement, *(args if "$3" in statement else args[:2]))


async def purge_merged(conn: Conn, since: datetime) -> None:
    """Drop metric rows a refresh computed for ids merged into a user while it ran (since)."""
    for table, unit in METRIC_UNIT_TABLES:
        await conn.execute(
            f"DELETE FROM {table} x USING aliases a WHERE a.linked_at >= $1"
            f" AND x.tenant_id = a.tenant_id AND x.{unit} = a.previous_id",
            since,
            timeout=900.0,
        )


async def merged_into(conn: Conn, tenant_id: str, user_id: str) -> list[str]:
    """The ids merged into this user."""
    rows = await conn.fetch(
        "SELECT previous_id FROM aliases WHERE tenant_id = $1 AND user_id = $2 ORDER BY 1",
        tenant_id,
        user_id,
    )
    return [r["previous_id"] for r in rows]
