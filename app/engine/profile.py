"""What the engine knows of one user: raw facts read from the profile store, no derived values.

Signals (windows, breadth, stages...) are computed from these by `app.engine.signals`, given the
time of the decision, so the same facts always give the same signals at the same `now`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec

Personalization = Literal["full", "basic", "off"]


class QuietHours(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    start: Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")] = "22:00"
    end: Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")] = "07:00"
    # an IANA time zone (checked where preferences are accepted)
    time_zone: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_+\-/]{1,64}$")] = "UTC"


Category = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:\-]{1,64}$")]
Channel = Literal["in_app", "email", "push", "slack"]
Digest = Literal["off", "daily", "weekly"]


class NotificationPreferences(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    channels: Annotated[list[Channel], msgspec.Meta(max_length=4)] = msgspec.field(
        default_factory=lambda: ["in_app", "email"]
    )
    categories: Annotated[list[Category], msgspec.Meta(max_length=50)] = msgspec.field(
        default_factory=lambda: ["product_updates", "tips", "billing"]
    )
    digest: Digest = "weekly"
    quiet_hours: QuietHours | None = None


class Preferences(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A user's preference center: how much to personalize, and how to notify."""

    personalization: Personalization = "full"
    # purposes opted out of (false) or into (true) beyond the level (signals.yaml `purposes`)
    purposes: Annotated[
        dict[Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,39}$")], bool],
        msgspec.Meta(max_length=20),
    ] = {}
    notifications: NotificationPreferences = NotificationPreferences()


class EventDay(msgspec.Struct, frozen=True, array_like=True):
    day: date
    event: str
    n: int


class Facet(msgspec.Struct, frozen=True):
    kind: str
    value: str
    n: int
    first_at: datetime
    last_at: datetime


class WidgetState(msgspec.Struct, frozen=True):
    views: int = 0
    last_viewed: datetime | None = None
    dismissed_at: datetime | None = None
    completed_at: datetime | None = None


class RecentEvent(msgspec.Struct, frozen=True):
    """A recent friction or trigger event (errors, limits hit, features attempted)."""

    event: str
    ts: datetime
    properties: dict[str, Any] = {}


class ProfileData(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: str
    user_id: str
    known: bool = False
    user_traits: dict[str, Any] = {}
    tenant_traits: dict[str, Any] = {}
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    event_days: list[EventDay] = []
    tenant_events: list[str] = []  # activation events anyone in the tenant has ever sent
    milestones: list[str] = []  # activation events this user has ever sent (no time window)
    facets: list[Facet] = []
    integrations: dict[str, bool] = {}
    widgets: dict[str, WidgetState] = {}
    recent: list[RecentEvent] = []
    preferences: Preferences = Preferences()
    # purposes the user's tenant withholds from all its users (its admin's consent defaults)
    tenant_consent: dict[str, bool] = {}
    assignments: dict[str, str] = {}  # experiment → the arm stored at the unit's first assignment
    exposed: list[str] = []  # experiments the server has recorded this unit's exposure to


class CohortAdoption(msgspec.Struct, frozen=True):
    """How many tenants of a cohort use an integration; only cohorts of 5+ tenants are kept."""

    cohort: str
    tenants: int
    share: float


class PeerStats(msgspec.Struct, frozen=True):
    """Cross-tenant aggregates, k-anonymous: cohort (industry) → integration → adoption."""

    integrations: dict[str, dict[str, CohortAdoption]] = {}


def anonymous_profile(tenant_id: str, user_id: str) -> ProfileData:
    return ProfileData(tenant_id=tenant_id, user_id=user_id)
