"""The demo population: deterministic, valid Segment calls, realistic shapes, personas in place."""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.demo import population as pop_module
from app.demo.population import (
    ACTIVATION,
    DEFAULT_INTEGRATIONS,
    DEFAULT_TEMPLATES,
    FEATURES,
    HELP_ARTICLES,
    INDUSTRY_INTEGRATIONS,
    INDUSTRY_TEMPLATES,
    PLAN_FEATURES,
    PLAN_LIMITS,
    REGIONS,
    ROLES,
    SCREENS,
    Population,
    PopulationSpec,
    generate,
)

LAYOUTS = Path(__file__).resolve().parents[2] / "layouts"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SMALL = PopulationSpec(tenants=10, users=60, events=3000, now=NOW)
FULL = PopulationSpec(now=NOW)

Event = dict[str, Any]
TRACK_EVENTS = {
    "signed_up",
    "teammate_invited",
    "integration_connected",
    "integration_disconnected",
    "feature_used",
    "template_used",
    "report_created",
    "automation_created",
    "billing_connected",
    "limit_reached",
    "feature_attempted",
    "error_shown",
    "help_article_viewed",
    "plan_upgraded",
    # What the SDK and the host app report besides: widgets shown, tasks, support tickets.
    "widget_viewed",
    "widget_clicked",
    "report_started",
    "automation_started",
    "ticket_created",
}
# The properties each track event must carry.
REQUIRED_PROPS = {
    "teammate_invited": {"count"},
    "integration_connected": {"integration"},
    "integration_disconnected": {"integration"},
    "feature_used": {"feature"},
    "template_used": {"template"},
    "limit_reached": {"limit", "used", "max", "screen"},
    "feature_attempted": {"feature", "screen"},
    "error_shown": {"feature", "message"},
    "help_article_viewed": {"article"},
    "plan_upgraded": {"plan"},
    "widget_viewed": {"widget_id", "widget_type", "screen"},
    "widget_clicked": {"widget_id", "widget_type", "screen"},
    "ticket_created": {"feature"},
}
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$")


def _yaml(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((LAYOUTS / name).read_text())
    return data


@pytest.fixture(scope="module")
def presets() -> dict[str, Any]:
    return _yaml("presets.yaml")


@pytest.fixture(scope="module")
def signals() -> dict[str, Any]:
    return _yaml("signals.yaml")


@pytest.fixture(scope="module")
def small() -> Population:
    return generate(SMALL)


@pytest.fixture(scope="module")
def full() -> Population:
    return generate(FULL)


@pytest.fixture(scope="module")
def small_events(small: Population) -> list[Event]:
    return [e for b in small.batches() for e in b["batch"]]


@pytest.fixture(scope="module")
def full_events(full: Population) -> list[Event]:
    return [e for b in full.batches() for e in b["batch"]]


@pytest.fixture(scope="module", params=["small", "full"])
def both(request: pytest.FixtureRequest) -> tuple[Population, list[Event]]:
    name = request.param
    return request.getfixturevalue(name), request.getfixturevalue(f"{name}_events")


def ts(event: Event) -> datetime:
    return datetime.fromisoformat(event["timestamp"])


def tracks(events: Iterable[Event], name: str) -> list[Event]:
    return [e for e in events if e["type"] == "track" and e["event"] == name]


def value_events(signals: dict[str, Any]) -> set[str]:
    return set(signals["events"]["value"])


# --- determinism, size, order ---------------------------------------------------------------------


def test_the_same_seed_gives_identical_batches() -> None:
    first = list(generate(SMALL).batches())
    again = list(generate(SMALL).batches())
    assert first == again
    other = list(
        generate(PopulationSpec(tenants=10, users=60, events=3000, now=NOW, seed=8)).batches()
    )
    assert other != first


def test_sizes_match_the_spec(both: tuple[Population, list[Event]]) -> None:
    population, events = both
    spec = population.spec
    assert len(population.tenants) == spec.tenants
    assert len(population.users) == spec.users
    assert abs(population.count - spec.events) <= spec.events * 0.05
    assert len(events) == population.count
    assert sum(u.events for u in population.users) == population.count
    assert sum(t.users for t in population.tenants) == spec.users


def test_batches_are_bounded_and_sent_at_now(small: Population) -> None:
    batches = list(small.batches(size=256))
    assert all(len(b["batch"]) <= 256 for b in batches)
    assert all(len(b["batch"]) == 256 for b in batches[:-1])
    assert {b["sentAt"] for b in batches} == {"2026-11-27T12:00:00.000Z"}
    with pytest.raises(ValueError, match="batch size"):
        next(small.batches(size=0))


def test_events_are_in_timestamp_order(both: tuple[Population, list[Event]]) -> None:
    _, events = both
    stamps = [ts(e) for e in events]
    assert stamps == sorted(stamps)


def test_every_event_is_a_valid_segment_call(both: tuple[Population, list[Event]]) -> None:
    population, events = both
    tenants = {t.tenant_id for t in population.tenants}
    user_tenant = {u.user_id: u.tenant_id for u in population.users}
    earliest = NOW - timedelta(days=population.spec.days)
    ids: set[str] = set()
    for event in events:
        kind = event["type"]
        assert kind in {"identify", "group", "track", "page", "screen"}
        assert event["messageId"] not in ids
        ids.add(event["messageId"])
        assert event["messageId"].startswith(f"m_{population.spec.seed}_")
        assert event["tenantId"] in tenants
        assert user_tenant[event["userId"]] == event["tenantId"]
        assert ISO_Z.match(event["timestamp"]), event["timestamp"]
        assert earliest <= ts(event) <= NOW
        if kind == "track":
            assert event["event"] in TRACK_EVENTS
            assert REQUIRED_PROPS.get(event["event"], set()) <= set(event["properties"])
        elif kind == "identify":
            assert set(event["traits"]) == {"role", "email", "name"}
            assert event["traits"]["role"] in ROLES
            assert event["traits"]["email"].endswith(".example")
        elif kind == "group":
            assert event["groupId"] == event["tenantId"]
            traits = event["traits"]
            assert {"plan", "seats", "seats_used", "region", "name"} <= set(traits)
            assert 0 < traits["seats_used"] <= traits["seats"]
            assert traits["region"] in REGIONS
        else:
            assert event["name"]
            assert event["properties"]["screen"] in SCREENS
        if kind == "track" and "screen" in event["properties"]:
            assert event["properties"]["screen"] in SCREENS


def test_every_user_starts_with_signed_up_then_identify_and_group(
    both: tuple[Population, list[Event]],
) -> None:
    _, events = both
    by_user: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        by_user[event["userId"]].append(event)
    for user_events in by_user.values():
        head = [e.get("event", e["type"]) for e in user_events[:3]]
        assert head == ["signed_up", "identify", "group"]
        assert sum(e["type"] == "identify" for e in user_events) == 1


def test_a_spec_too_small_for_the_personas_is_rejected() -> None:
    with pytest.raises(ValueError, match="tenants"):
        generate(PopulationSpec(tenants=3, users=60, events=3000, now=NOW))
    with pytest.raises(ValueError, match="users"):
        generate(PopulationSpec(tenants=10, users=12, events=3000, now=NOW))


def test_a_naive_or_odd_now_is_taken_as_utc() -> None:
    odd = datetime(2027, 3, 4, 5, 6, 7, 891234)
    population = generate(PopulationSpec(tenants=8, users=30, events=800, now=odd))
    stamps = [ts(e) for e in population.events()]
    assert max(stamps) <= odd.replace(tzinfo=UTC)
    assert min(stamps) >= odd.replace(tzinfo=UTC) - timedelta(days=90)


# --- vocabulary ----------------------------------------------------------------------------------


def test_the_vocabulary_mirrors_the_shipped_configuration(
    presets: dict[str, Any], signals: dict[str, Any]
) -> None:
    industries = presets["industries"]
    assert set(INDUSTRY_INTEGRATIONS) == set(industries) == set(INDUSTRY_TEMPLATES)
    for name, industry in industries.items():
        assert INDUSTRY_INTEGRATIONS[name] == tuple(industry["integrations"])
        assert INDUSTRY_TEMPLATES[name] == tuple(t["id"] for t in industry["templates"])
    assert tuple(presets["default"]["integrations"]) == DEFAULT_INTEGRATIONS
    assert tuple(t["id"] for t in presets["default"]["templates"]) == DEFAULT_TEMPLATES
    assert set(pop_module.EXTRA_INTEGRATIONS) <= set(presets["integrations"])
    plans = signals["plans"]
    assert set(PLAN_FEATURES) == set(plans)
    for name, plan in plans.items():
        assert PLAN_FEATURES[name] == tuple(plan["features"])
        assert dict(PLAN_LIMITS[name]) == plan["limits"]
        assert pop_module.PLAN_NEXT.get(name) == plan.get("next")
    shipped = [
        (s["id"], s["event"], tuple(s.get("for_roles", ROLES)), s.get("scope") == "tenant")
        for s in signals["activation"]
    ]
    assert [(s.id, s.event, s.roles, s.tenant_scope) for s in ACTIVATION] == shipped
    assert signals["friction"]["window_minutes"] == pop_module.FRICTION_WINDOW_MINUTES
    assert signals["friction"]["repeat_threshold"] == pop_module.FRICTION_REPEAT_THRESHOLD
    assert set(pop_module.FEATURE_SCREEN) == set(FEATURES)
    assert set(HELP_ARTICLES) - {"getting_started"} == set(FEATURES)


def test_every_name_used_exists_in_the_configuration(
    full: Population, full_events: list[Event], presets: dict[str, Any], signals: dict[str, Any]
) -> None:
    integrations = set(presets["integrations"])
    industries = set(presets["industries"])
    plans = set(signals["plans"])
    features = {f for p in signals["plans"].values() for f in p["features"]}
    articles = {a for topic in HELP_ARTICLES.values() for a in topic}
    industry_of = {t.tenant_id: t.industry for t in full.tenants}
    for tenant in full.tenants:
        assert tenant.plan in plans
        assert tenant.initial_plan in plans
        assert tenant.industry is None or tenant.industry in industries
        assert set(tenant.integrations) <= integrations
    suggested = 0
    connected = tracks(full_events, "integration_connected")
    for event in full_events:
        props = event.get("properties", {})
        if event["type"] == "group":
            assert event["traits"]["plan"] in plans
            assert event["traits"].get("industry", next(iter(industries))) in industries
        if event["type"] != "track":
            continue
        name = event["event"]
        if name in ("integration_connected", "integration_disconnected"):
            assert props["integration"] in integrations
            industry = industry_of[event["tenantId"]]
            preset = presets["industries"][industry] if industry else presets["default"]
            suggested += props["integration"] in preset["integrations"]
        elif name == "template_used":
            industry = industry_of[event["tenantId"]]
            preset = presets["industries"][industry] if industry else presets["default"]
            assert props["template"] in {t["id"] for t in preset["templates"]}
        elif name in ("feature_used", "feature_attempted", "error_shown"):
            assert props["feature"] in features
        elif name == "limit_reached":
            assert props["limit"] in {"seats", "automations", "reports"}
        elif name == "plan_upgraded":
            assert props["plan"] in plans
        elif name == "help_article_viewed":
            assert props["article"] in articles
    # Mostly the industry's own integrations, some others.
    assert suggested >= 0.8 * len(connected)


# --- consistency ---------------------------------------------------------------------------------


def test_features_follow_the_plan_at_the_time(both: tuple[Population, list[Event]]) -> None:
    _, events = both
    plan: dict[str, str] = {}
    for event in events:
        tenant = event["tenantId"]
        if event["type"] == "group":
            plan[tenant] = event["traits"]["plan"]
            continue
        if event["type"] != "track":
            continue
        name, props = event["event"], event["properties"]
        if name == "plan_upgraded":
            plan[tenant] = props["plan"]
        if name == "signed_up" and tenant not in plan:
            continue
        has = set(PLAN_FEATURES[plan[tenant]])
        if name in ("feature_used", "error_shown"):
            assert props["feature"] in has, (event, plan[tenant])
        elif name == "feature_attempted":
            assert props["feature"] not in has, (event, plan[tenant])
        elif name == "automation_created":
            assert "automations" in has
        elif name in ("integration_connected", "integration_disconnected"):
            assert "integrations" in has
        elif name == "limit_reached":
            limit = PLAN_LIMITS[plan[tenant]][props["limit"]]
            assert props["used"] == props["max"] == limit, (event, plan[tenant])
            assert props["screen"] == ("settings" if props["limit"] == "seats" else "editor")


def test_creations_stay_within_the_plan_limits(full_events: list[Event]) -> None:
    plan: dict[str, str] = {}
    made: Counter[tuple[str, str]] = Counter()
    resource = {"report_created": "reports", "automation_created": "automations"}
    for event in full_events:
        if event["type"] == "group":
            plan[event["tenantId"]] = event["traits"]["plan"]
        elif event["type"] == "track" and event["event"] in resource:
            key = (event["tenantId"], resource[event["event"]])
            made[key] += 1
            # The personas' own recent steps are placed as they are; everyone else is capped.
            assert made[key] <= PLAN_LIMITS[plan[key[0]]][key[1]] + 10


def test_the_last_group_call_describes_the_tenant_as_it_is(
    both: tuple[Population, list[Event]],
) -> None:
    population, events = both
    last = {e["tenantId"]: e["traits"] for e in events if e["type"] == "group"}
    for tenant in population.tenants:
        traits = last[tenant.tenant_id]
        assert traits["plan"] == tenant.plan
        assert traits.get("industry") == tenant.industry
        assert traits["seats"] == tenant.seats
        assert traits["seats_used"] == tenant.seats_used
        assert traits["region"] == tenant.region
        assert traits["name"] == tenant.name


def test_integrations_at_now_match_the_events(both: tuple[Population, list[Event]]) -> None:
    population, events = both
    connected: dict[str, set[str]] = defaultdict(set)
    for event in events:
        if event["type"] == "track" and event["event"] == "integration_connected":
            connected[event["tenantId"]].add(event["properties"]["integration"])
        elif event["type"] == "track" and event["event"] == "integration_disconnected":
            connected[event["tenantId"]].discard(event["properties"]["integration"])
    for tenant in population.tenants:
        assert set(tenant.integrations) == connected[tenant.tenant_id]


def test_invites_come_before_invitees_sign_up(both: tuple[Population, list[Event]]) -> None:
    population, events = both
    first_invite: dict[str, datetime] = {}
    for event in tracks(events, "teammate_invited"):
        first_invite.setdefault(event["tenantId"], ts(event))
        assert event["properties"]["count"] >= 1
    admin_signup = {t.tenant_id: t.created_at for t in population.tenants}
    for event in tracks(events, "signed_up"):
        if ts(event) > admin_signup[event["tenantId"]]:
            assert first_invite[event["tenantId"]] < ts(event)


def test_activation_steps_come_in_a_plausible_order(full_events: list[Event]) -> None:
    first: dict[tuple[str, str], datetime] = {}
    for event in full_events:
        if event["type"] == "track":
            first.setdefault((event["userId"], event["event"]), ts(event))
    users = {u for u, _ in first}
    for user in users:
        template = first.get((user, "template_used"))
        automation = first.get((user, "automation_created"))
        if template and automation:
            assert template < automation


# --- shapes ---------------------------------------------------------------------------------------


def test_tenants_look_like_a_saas_customer_base(full: Population) -> None:
    tenants = full.tenants
    plans = Counter(t.plan for t in tenants)
    for plan, share in {"free": 0.35, "trial": 0.10, "pro": 0.40, "enterprise": 0.15}.items():
        assert abs(plans[plan] / len(tenants) - share) <= 0.08, plans
    industries = Counter(t.industry for t in tenants)
    assert len([i for i in industries if i]) >= 6
    assert all(industries[i] >= 0.05 * len(tenants) for i in INDUSTRY_INTEGRATIONS)
    assert industries[None] > 0
    regions = Counter(t.region for t in tenants)
    assert set(regions) == set(REGIONS)
    assert regions["us"] > regions["eu"] > regions["apac"]
    seats = [t.seats for t in tenants]
    assert min(seats) == 3
    assert max(seats) <= 500
    assert max(seats) > 100
    assert 5 <= statistics.median(seats) <= 30
    assert all(0 < t.seats_used <= t.seats for t in tenants)
    assert all(t.users <= t.seats_used for t in tenants)
    assert sum(t.seats_used == t.seats for t in tenants) >= 0.1 * len(tenants)
    assert all(t.seats == 3 for t in tenants if t.plan == "free")
    upgraded = [t for t in tenants if t.upgraded_at is not None]
    assert len(upgraded) >= 0.1 * len(tenants)
    assert all(t.initial_plan != t.plan for t in upgraded)
    now = full.spec.now
    assert all(now - t.created_at <= timedelta(days=14) for t in tenants if t.plan == "trial")


def test_users_spread_over_tenants_by_size_with_an_admin_each(
    full: Population, full_events: list[Event]
) -> None:
    roles = {e["userId"]: e["traits"]["role"] for e in full_events if e["type"] == "identify"}
    by_tenant: dict[str, list[str]] = defaultdict(list)
    for user in full.users:
        assert roles[user.user_id] == user.role
        by_tenant[user.tenant_id].append(user.role)
    assert all("admin" in by_tenant[t.tenant_id] for t in full.tenants)
    small = [t.users for t in full.tenants if t.seats <= 10]
    big = [t.users for t in full.tenants if t.seats >= 50]
    assert statistics.mean(big) > 3 * statistics.mean(small)
    shares = Counter(u.role for u in full.users)
    assert 0.08 <= shares["admin"] / len(full.users) <= 0.25
    assert 0.25 <= shares["maker"] / len(full.users) <= 0.5
    assert 0.3 <= shares["end_user"] / len(full.users) <= 0.6
    emails = [u.email for u in full.users]
    assert len(set(emails)) == len(emails)


def test_archetypes_shape_activity(
    full: Population, full_events: list[Event], signals: dict[str, Any]
) -> None:
    now = full.spec.now
    archetypes = Counter(u.archetype for u in full.users)
    assert {"quick", "slow", "stalled", "churned", "power"} <= set(archetypes)
    assert all(
        archetypes[a] >= 0.05 * len(full.users)
        for a in ("quick", "slow", "stalled", "churned", "power")
    )
    value = value_events(signals)
    valued = {e["userId"] for e in full_events if e["type"] == "track" and e["event"] in value}
    churned_days: list[float] = []
    for user in full.users:
        if user.archetype == "stalled":
            assert user.user_id not in valued
            assert user.last_seen_at - user.signed_up_at <= timedelta(hours=2)
        if user.archetype == "churned":
            assert now - user.last_seen_at >= timedelta(days=7)
            churned_days.append((user.last_seen_at - user.signed_up_at) / timedelta(days=1))
    assert statistics.median(churned_days) >= 10  # active for weeks, then gone

    def per_day(archetype: str) -> float:
        rates = [
            u.events / max((now - u.signed_up_at).days, 1)
            for u in full.users
            if u.archetype == archetype and now - u.signed_up_at > timedelta(days=14)
        ]
        return statistics.mean(rates)

    assert per_day("power") > 1.5 * per_day("quick") > per_day("stalled")


def test_event_mix_is_plausible(full_events: list[Event]) -> None:
    kinds = Counter(e["type"] for e in full_events)
    pages = (kinds["page"] + kinds["screen"]) / len(full_events)
    assert 0.03 <= pages <= 0.3  # a minority
    names = Counter(e["event"] for e in full_events if e["type"] == "track")
    for name in TRACK_EVENTS:
        assert names[name] > 0, name
    assert names["feature_used"] == max(names.values())
    assert names["integration_disconnected"] < names["integration_connected"]


def test_stuck_users_show_error_bursts_beyond_the_personas(
    full: Population, full_events: list[Event]
) -> None:
    personas = {p.user_id for p in full.personas}
    errors: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for event in tracks(full_events, "error_shown"):
        if event["userId"] not in personas:
            errors[(event["userId"], event["properties"]["feature"])].append(ts(event))
    window = timedelta(minutes=10)
    bursts = {
        user
        for (user, _), times in errors.items()
        if any(times[i + 2] - times[i] <= window for i in range(len(times) - 2))
    }
    assert len(bursts) >= 20


def test_limits_and_attempts_name_their_screen(full_events: list[Event]) -> None:
    limits = tracks(full_events, "limit_reached")
    attempts = tracks(full_events, "feature_attempted")
    assert {e["properties"]["limit"] for e in limits} >= {"seats", "reports"}
    assert {e["properties"]["screen"] for e in limits + attempts} <= set(SCREENS)
    assert {e["properties"]["screen"] for e in attempts} == {"settings", "editor"}


# --- personas -------------------------------------------------------------------------------------


def test_personas_are_in_their_stated_state(
    both: tuple[Population, list[Event]], signals: dict[str, Any]
) -> None:
    population, events = both
    now = population.spec.now
    value = value_events(signals)
    by_user: dict[str, list[Event]] = defaultdict(list)
    by_tenant: dict[str, list[Event]] = defaultdict(list)
    traits: dict[str, dict[str, Any]] = {}
    roles: dict[str, str] = {}
    for event in events:
        by_user[event["userId"]].append(event)
        by_tenant[event["tenantId"]].append(event)
        if event["type"] == "group":
            traits[event["tenantId"]] = event["traits"]
        elif event["type"] == "identify":
            roles[event["userId"]] = event["traits"]["role"]
    keys = [p.key for p in population.personas]
    assert keys == [
        "new_admin",
        "stuck_maker",
        "healthcare_end_user",
        "seat_limit_admin",
        "fintech_power_user",
        "at_risk",
    ]
    for persona in population.personas:
        assert persona.label
        assert persona.description
        assert roles[persona.user_id] == persona.role
        assert by_user[persona.user_id][0]["tenantId"] == persona.tenant_id

    def since(user: str, delta: timedelta) -> list[Event]:
        return [e for e in by_user[user] if ts(e) >= now - delta]

    def valued(items: Iterable[Event]) -> list[Event]:
        return [e for e in items if e["type"] == "track" and e["event"] in value]

    # (1) a new admin in a fresh trial tenant: nothing connected, no value delivered yet.
    p = population.persona("new_admin")
    assert p.role == "admin"
    assert traits[p.tenant_id]["plan"] == "trial"
    signup = ts(tracks(by_user[p.user_id], "signed_up")[0])
    assert now - signup < timedelta(days=1)
    assert {e["userId"] for e in by_tenant[p.tenant_id]} == {p.user_id}
    assert not tracks(by_tenant[p.tenant_id], "integration_connected")
    assert not valued(by_user[p.user_id])

    # (2) a maker stuck on errors: three or more for one feature in the last ten minutes.
    p = population.persona("stuck_maker")
    assert p.role == "maker"
    recent = Counter(
        e["properties"]["feature"]
        for e in tracks(since(p.user_id, timedelta(minutes=10)), "error_shown")
    )
    assert recent
    assert max(recent.values()) >= 3
    feature = recent.most_common(1)[0][0]
    assert feature in PLAN_FEATURES[traits[p.tenant_id]["plan"]]

    # (3) an end user in a healthcare tenant.
    p = population.persona("healthcare_end_user")
    assert p.role == "end_user"
    assert traits[p.tenant_id]["industry"] == "healthcare"
    assert since(p.user_id, timedelta(hours=1))

    # (4) an admin at the seat limit on the free plan, who just hit it in settings.
    p = population.persona("seat_limit_admin")
    tenant = traits[p.tenant_id]
    assert p.role == "admin"
    assert tenant["plan"] == "free"
    assert tenant["seats_used"] == tenant["seats"] == PLAN_LIMITS["free"]["seats"]
    hits = [e["properties"] for e in tracks(since(p.user_id, timedelta(hours=1)), "limit_reached")]
    assert {"limit": "seats", "used": 3, "max": 3, "screen": "settings"} in hits

    # (5) a power user of an engaged fintech tenant with several integrations connected.
    p = population.persona("fintech_power_user")
    assert traits[p.tenant_id]["industry"] == "fintech"
    info = next(t for t in population.tenants if t.tenant_id == p.tenant_id)
    assert len(info.integrations) >= 3
    week = since(p.user_id, timedelta(days=7))
    assert len(valued(week)) >= 5
    assert (
        len([e for e in week if e["type"] == "track" and e["event"] in signals["events"]["power"]])
        >= 3
    )
    assert len({e["properties"]["feature"] for e in tracks(week, "feature_used")}) >= 3
    active = {
        e["userId"] for e in valued(by_tenant[p.tenant_id]) if ts(e) >= now - timedelta(days=7)
    }
    assert len(active) >= 2

    # (6) an at-risk user: active weeks ago, nothing in the last seven days.
    p = population.persona("at_risk")
    signup = ts(tracks(by_user[p.user_id], "signed_up")[0])
    assert now - signup >= timedelta(days=14)
    assert not since(p.user_id, timedelta(days=7))
    assert valued(since(p.user_id, timedelta(days=30)))
    assert len(valued(by_user[p.user_id])) >= 5


def test_outcome_events_follow_what_caused_them(full_events: list[Event]) -> None:
    """Gates are shown after a limit or a missing feature, help tips after repeated errors,
    tasks start shortly before they are created; support tickets are sent too."""
    by_user: dict[str, list[Event]] = {}
    for e in full_events:
        if e["type"] == "track":
            by_user.setdefault(e["userId"], []).append(e)
    seen = Counter[str]()

    def at(e: Event) -> datetime:
        return datetime.fromisoformat(e["timestamp"])

    for events in by_user.values():
        for k, e in enumerate(events):
            name, props = e["event"], e["properties"]
            if name == "widget_viewed":
                seen[props["widget_type"]] += 1
                before = [p for p in events[:k] if at(e) - at(p) <= timedelta(minutes=15)]
                if props["widget_type"] == "upgrade_gate":
                    assert any(p["event"] in ("limit_reached", "feature_attempted") for p in before)
                elif props["widget_type"] == "help_tip":
                    assert sum(p["event"] == "error_shown" for p in before) >= 3
            elif name in ("report_started", "automation_started"):
                seen[name] += 1
                done = name.replace("_started", "_created")
                assert any(
                    n["event"] == done and timedelta(0) <= at(n) - at(e) <= timedelta(minutes=30)
                    for n in events[k + 1 :]
                )
            elif name == "ticket_created":
                seen[name] += 1
    assert min(seen[k] for k in ("upgrade_gate", "help_tip", "next_step_card")) > 0, seen
    assert min(seen[k] for k in ("report_started", "automation_started", "ticket_created")) > 0
