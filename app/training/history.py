"""Profiles as of any time, rebuilt from raw events: what training learns from. Pure.

`ProfileBuilder` mirrors what the event store aggregates (`app.storage.events`) and the profile
store reads (`app.storage.profiles`): a profile built here equals the stored one for the same
events, read at the same time; an integration test holds the two together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final

import msgspec

from app.engine.profile import EventDay, Facet, Preferences, ProfileData, RecentEvent, WidgetState
from app.engine.vocabulary import Vocabulary
from app.storage.events import EventRow, key_value
from app.storage.profiles import TRIGGER_EVENTS

_INTEGRATION_EVENTS: Final = {"integration_connected": True, "integration_disconnected": False}
_WIDGET_EVENTS: Final = frozenset({"widget_viewed", "widget_dismissed", "widget_completed"})
_RECENT_LIMIT: Final = 200
_EVENT_DAYS: Final = timedelta(days=90)


@dataclass(slots=True)
class _UserState:
    first_seen: datetime
    last_seen: datetime
    traits: dict[str, Any] = field(default_factory=dict)
    days: dict[tuple[date, str], int] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)  # track events ever sent
    facets: dict[tuple[str, str], tuple[int, datetime, datetime]] = field(default_factory=dict)
    widgets: dict[str, WidgetState] = field(default_factory=dict)
    triggers: list[RecentEvent] = field(default_factory=list)  # in time order


class ProfileBuilder:
    """One tenant's profiles, built from its events added in time order. Pure.

    Mirrors the event store's aggregates (app.storage.events) and the profile store's read
    (app.storage.profiles): a profile here equals the stored one for the same events, read at
    the same time; an integration test holds the two together.
    """

    def __init__(self, tenant_id: str, vocab: Vocabulary) -> None:
        signals = vocab.signals
        self.tenant_id = tenant_id
        self._facet_of = vocab.facets
        self._tenant_steps = [s.event for s in signals.activation if s.scope == "tenant"]
        self._user_steps = sorted({s.event for s in signals.activation})
        self._trigger_window = timedelta(hours=max(signals.friction.trigger_hours, 1))
        self._tenant_traits: dict[str, Any] = {}
        self._integrations: dict[str, tuple[bool, datetime]] = {}
        self._tenant_seen: set[str] = set()
        self._users: dict[str, _UserState] = {}
        self._last: datetime | None = None
        self.upgrades: list[datetime] = []  # when the tenant sent plan_upgraded

    @property
    def users(self) -> list[str]:
        """Users with at least one event so far, in the order they first appeared."""
        return list(self._users)

    def add(self, row: EventRow) -> None:
        if row.tenant_id != self.tenant_id:
            raise ValueError(f"an event of tenant {row.tenant_id!r}, not {self.tenant_id!r}")
        if self._last is not None and row.ts < self._last:
            raise ValueError("events must be added in time order")
        self._last = row.ts
        user = self._users.get(row.user_id)
        if user is None:
            user = self._users[row.user_id] = _UserState(first_seen=row.ts, last_seen=row.ts)
        user.last_seen = row.ts
        if row.type == "identify" and row.traits:
            user.traits = {**user.traits, **row.traits}
        if row.type == "group" and row.traits:
            self._tenant_traits = {**self._tenant_traits, **row.traits}
        elif row.event == "plan_upgraded" and isinstance(row.properties.get("plan"), str):
            self._tenant_traits = {**self._tenant_traits, "plan": row.properties["plan"]}
        if row.type != "track" or not row.event:
            return
        event, props = row.event, row.properties
        key = (row.ts.date(), event)
        user.days[key] = user.days.get(key, 0) + 1
        user.seen.add(event)
        self._tenant_seen.add(event)
        self._add_facet(user, row)
        connected = _INTEGRATION_EVENTS.get(event)
        integration = key_value(props.get("integration")) if connected is not None else None
        if connected is not None and integration is not None:
            self._integrations[integration] = (connected, row.ts)
        _add_widget_event(user, row)
        if event in TRIGGER_EVENTS:
            screen = (
                _json_text(props.get("screen"))
                or _json_text(_member(row.context.get("screen"), "name"))
                or _json_text(_member(row.context.get("page"), "name"))
                or ""
            )
            user.triggers.append(
                RecentEvent(event=event, ts=row.ts, properties={**props, "screen": screen})
            )
        if event == "plan_upgraded":
            self.upgrades.append(row.ts)

    def _add_facet(self, user: _UserState, row: EventRow) -> None:
        kind = self._facet_of.get(row.event or "")
        value = key_value(row.properties.get(kind)) if kind is not None else None
        if kind is not None and value is not None:
            n, first, _ = user.facets.get((kind, value), (0, row.ts, row.ts))
            user.facets[(kind, value)] = (n + 1, first, row.ts)

    def profile(
        self, user_id: str, at: datetime, preferences: Preferences | None = None
    ) -> ProfileData:
        """The profile the profile store would read at `at`, given the events added so far."""
        tenant_traits = dict(self._tenant_traits)
        tenant_events = [s for s in self._tenant_steps if s in self._tenant_seen]
        integrations = {name: state[0] for name, state in self._integrations.items()}
        preferences = preferences or Preferences()
        user = self._users.get(user_id)
        if user is None:
            return ProfileData(
                tenant_id=self.tenant_id,
                user_id=user_id,
                tenant_traits=tenant_traits,
                tenant_events=tenant_events,
                integrations=integrations,
                preferences=preferences,
            )
        first_day = (at - _EVENT_DAYS).date()
        horizon = at - self._trigger_window
        recent: list[RecentEvent] = []
        for event in reversed(user.triggers):
            if event.ts < horizon or len(recent) == _RECENT_LIMIT:
                break
            recent.append(event)
        return ProfileData(
            tenant_id=self.tenant_id,
            user_id=user_id,
            known=True,
            user_traits=dict(user.traits),
            first_seen=user.first_seen,
            last_seen=user.last_seen,
            event_days=[
                EventDay(day=day, event=event, n=n)
                for (day, event), n in user.days.items()
                if day >= first_day
            ],
            milestones=[s for s in self._user_steps if s in user.seen],
            facets=[
                Facet(kind=kind, value=value, n=n, first_at=first, last_at=last)
                for (kind, value), (n, first, last) in user.facets.items()
            ],
            widgets=dict(user.widgets),
            recent=recent,
            tenant_traits=tenant_traits,
            tenant_events=tenant_events,
            integrations=integrations,
            preferences=preferences,
        )


def _add_widget_event(user: _UserState, row: EventRow) -> None:
    """A widget_viewed, _dismissed or _completed event, as the event store counts it."""
    event = row.event
    widget_id = key_value(row.properties.get("widget_id")) if event in _WIDGET_EVENTS else None
    if widget_id is None:
        return
    state = user.widgets.get(widget_id, WidgetState())
    if event == "widget_viewed":
        state = msgspec.structs.replace(state, views=state.views + 1, last_viewed=row.ts)
    elif event == "widget_dismissed":
        state = msgspec.structs.replace(state, dismissed_at=row.ts)
    elif state.completed_at is None:
        state = msgspec.structs.replace(state, completed_at=row.ts)
    user.widgets[widget_id] = state


def _member(value: object, name: str) -> object:
    return value.get(name) if isinstance(value, dict) else None


def _json_text(value: object) -> str | None:
    """A JSON value as PostgreSQL's `->>` gives it: strings unquoted, null as None."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode()


def snapshot_times(start: datetime, end: datetime, every: timedelta) -> list[datetime]:
    """end - every, end - 2 * every, ... while after `start`, oldest first."""
    times = []
    t = end - every
    while t > start:
        times.append(t)
        t -= every
    return times[::-1]
