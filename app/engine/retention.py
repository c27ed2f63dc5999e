"""Retention windows for raw events: `layouts/retention.yaml`. Pure.

Every stored event carries its window in days (0: kept). The events table is partitioned by that
window and, for windowed events, by calendar month (UTC) of the event's time, so a month whose
last instant is older than its window is a table dropped whole, never rows deleted. An event is
kept at least its window and at most a month longer. An event that arrives already older than its
window still counts in the aggregates profiles read (daily counts, facets, traits, integrations),
which are kept whatever the windows say; only its raw row is not stored.

A retried message is recognised by its messageId for at least `dedup_days` days after it was
first received (Segment deduplicates within a window too): messageIds are kept by the week
received, for as many whole weeks before the current one as cover `dedup_days`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from app.engine.specs import Spec

KEEP = "keep"
MAX_DAYS = 36500
_DAYS = re.compile(r"^([1-9][0-9]{0,4})d$")
# call types a window can name besides track events' names
CALL_TYPES = ("identify", "group", "page", "screen", "alias")


class RetentionSpec(Spec, frozen=True, kw_only=True):
    default: str = KEEP  # `keep`, or a window such as `730d`
    dedup_days: int = 7  # how long a messageId is remembered to drop a retry
    # a track event's name or a call type (identify, group, page, screen, alias) → window
    events: dict[str, str] = {}


class RetentionFileSpec(Spec, frozen=True, kw_only=True):
    retention: RetentionSpec


def parse_window(text: str) -> int | None:
    """`keep` → 0, `30d` → 30; None when it is neither."""
    if text == KEEP:
        return 0
    m = _DAYS.match(text)
    if m is None or int(m.group(1)) > MAX_DAYS:
        return None
    return int(m.group(1))


@dataclass(frozen=True, slots=True)
class Retention:
    """The windows, in days (0: kept)."""

    default_days: int = 0
    dedup_days: int = 7
    by_event: dict[str, int] = field(default_factory=dict)

    def days_for(self, call_type: str, event: str | None) -> int:
        """The window of an event: its track name's, else its call type's, else the default."""
        if call_type == "track" and event is not None and event in self.by_event:
            return self.by_event[event]
        return self.by_event.get(call_type, self.default_days)


def month_start(ts: datetime) -> datetime:
    ts = ts.astimezone(UTC)
    return datetime(ts.year, ts.month, 1, tzinfo=UTC)


def next_month(start: datetime) -> datetime:
    return datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)


def expired(keep_days: int, month: datetime, now: datetime) -> bool:
    """Whether the month starting at `month` has passed out of a `keep_days` window at `now`:
    its last event is older than the window."""
    return keep_days > 0 and next_month(month) <= now - timedelta(days=keep_days)


def stored(keep_days: int, ts: datetime, now: datetime) -> bool:
    """Whether an event of time `ts` and this window is stored raw when it arrives at `now`."""
    return not expired(keep_days, month_start(ts), now)


def week_start(day: date) -> date:
    """The Monday of `day`'s week: messageIds are remembered by the week they were received."""
    return day - timedelta(days=day.weekday())


def dedup_horizon(dedup_days: int, today: date) -> date:
    """The first week (its Monday) whose received messageIds still drop a retry: enough whole
    weeks before this one to cover `dedup_days` (so a retry is told within 7 to 13 days more)."""
    weeks = -(-dedup_days // 7)
    return week_start(today) - timedelta(days=7 * weeks)
