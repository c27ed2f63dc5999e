"""A test oracle: a user's profile as of a time, from raw events."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from app.engine.profile import Preferences, ProfileData
from app.engine.vocabulary import Vocabulary
from app.storage.events import EventRow, event_time
from app.training.history import ProfileBuilder


def profile_at(
    events: Iterable[EventRow],
    tenant_id: str,
    user_id: str,
    at: datetime,
    vocab: Vocabulary,
    *,
    preferences: Preferences | None = None,
) -> ProfileData:
    """A user's profile as of `at`, from raw events (any order, any tenant): what the profile
    store would have read at `at` had only the events before `at` been stored."""
    builder = ProfileBuilder(tenant_id, vocab)
    for row in sorted(
        (e for e in events if e.tenant_id == tenant_id and e.ts < at), key=event_time
    ):
        builder.add(row)
    return builder.profile(user_id, at, preferences)
