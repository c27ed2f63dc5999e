"""A deterministic, realistic SaaS population: tenants, users, personas and 90 days of events.

`cairn demo`, the tests and the benchmarks use it to fill Cairn with what a host app would send:
Segment-spec `identify`, `group`, `track`, `page` and `screen` calls, camelCase, in timestamp order,
in batches shaped like the body of `POST /v1/batch`.

The population looks like a real B2B SaaS customer base. Tenants have an industry, a plan, seats
and a region; users have a role and a lifecycle archetype (activates quickly, activates slowly,
stalls after signup, churns after some weeks, power user) that shapes what they do and when: they
sign up, walk the activation steps in a plausible order, use the features their plan has, try the
ones it lacks, hit limits, get stuck on errors and read help, connect (and sometimes disconnect)
their industry's integrations, and some tenants upgrade. A few personas are placed deliberately so
that each one is in a known state at `now`, for the demo's persona switcher.

Pure: no I/O, no clock; randomness comes only from `random.Random(spec.seed)`, so one spec always
yields the same batches. The vocabulary below mirrors layouts/presets.yaml and layouts/signals.yaml
(a unit test keeps them in step), so generating never reads a file.
"""

from __future__ import annotations

import bisect
import functools
import heapq
import itertools
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

__all__ = [
    "ACTIVATION",
    "ARCHETYPES",
    "DEFAULT_INTEGRATIONS",
    "DEFAULT_TEMPLATES",
    "ERROR_MESSAGES",
    "FEATURES",
    "HELP_ARTICLES",
    "INDUSTRIES",
    "INDUSTRY_INTEGRATIONS",
    "INDUSTRY_TEMPLATES",
    "PLANS",
    "PLAN_FEATURES",
    "PLAN_LIMITS",
    "REGIONS",
    "ROLES",
    "SCREENS",
    "ActivationStep",
    "Persona",
    "Population",
    "PopulationSpec",
    "TenantInfo",
    "UserInfo",
    "generate",
]

SECOND: Final = 1000
MINUTE: Final = 60 * SECOND
HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR

# --------------------------------------------------------------------------------------------------
# Vocabulary, as shipped in layouts/presets.yaml and layouts/signals.yaml.

INDUSTRY_INTEGRATIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "healthcare": ("epic", "athenahealth", "slack", "microsoft_teams"),
    "fintech": ("plaid", "stripe", "salesforce", "slack"),
    "ecommerce": ("shopify", "stripe", "zendesk", "slack"),
    "education": ("canvas", "google_classroom", "google_workspace", "slack"),
    "software": ("github", "jira", "slack", "hubspot"),
    "manufacturing": ("sap", "netsuite", "microsoft_teams", "slack"),
}
INDUSTRY_TEMPLATES: Final[Mapping[str, tuple[str, ...]]] = {
    "healthcare": ("patient_intake", "appointment_reminders", "referral_tracking"),
    "fintech": ("kyc_review", "loan_pipeline", "fraud_alerts"),
    "ecommerce": ("order_fulfilment", "returns_desk", "launch_calendar"),
    "education": ("enrolment_tracker", "lesson_planner", "parent_updates"),
    "software": ("sprint_board", "bug_triage", "release_checklist"),
    "manufacturing": ("qc_inspection", "maintenance_schedule", "supplier_scorecard"),
}
INDUSTRIES: Final[tuple[str, ...]] = tuple(INDUSTRY_INTEGRATIONS)
# For tenants whose industry is not known (the presets' `default`).
DEFAULT_INTEGRATIONS: Final[tuple[str, ...]] = ("slack", "google_workspace", "hubspot")
DEFAULT_TEMPLATES: Final[tuple[str, ...]] = ("project_tracker", "weekly_report", "onboarding_plan")
# Tools some tenants connect beyond their industry's suggestions.
EXTRA_INTEGRATIONS: Final[tuple[str, ...]] = (
    "google_workspace",
    "microsoft_teams",
    "hubspot",
    "jira",
    "zendesk",
    "quickbooks",
)

PLANS: Final[tuple[str, ...]] = ("free", "trial", "pro", "enterprise")
PLAN_FEATURES: Final[Mapping[str, tuple[str, ...]]] = {
    "free": ("reports", "templates"),
    "trial": ("reports", "templates", "automations", "integrations"),
    "pro": ("reports", "templates", "automations", "integrations", "api", "custom_fields"),
    "enterprise": (
        "reports",
        "templates",
        "automations",
        "integrations",
        "api",
        "custom_fields",
        "sso",
        "audit_log",
        "advanced_permissions",
    ),
}
PLAN_LIMITS: Final[Mapping[str, Mapping[str, int]]] = {
    "free": {"seats": 3, "automations": 2, "reports": 5},
    "trial": {"seats": 10, "automations": 10, "reports": 50},
    "pro": {"seats": 50, "automations": 100, "reports": 500},
    "enterprise": {"seats": 10000, "automations": 100000, "reports": 100000},
}
PLAN_NEXT: Final[Mapping[str, str]] = {"free": "pro", "trial": "pro", "pro": "enterprise"}
FEATURES: Final[tuple[str, ...]] = PLAN_FEATURES["enterprise"]


@dataclass(frozen=True)
class ActivationStep:
    """One activation step of signals.yaml: done once `event` arrives."""

    id: str
    event: str
    roles: tuple[str, ...]
    tenant_scope: bool = False


ROLES: Final[tuple[str, ...]] = ("admin", "maker", "end_user")
ACTIVATION: Final[tuple[ActivationStep, ...]] = (
    ActivationStep("invite_teammate", "teammate_invited", ("admin",), tenant_scope=True),
    ActivationStep("connect_integration", "integration_connected", ("admin",), tenant_scope=True),
    ActivationStep("use_template", "template_used", ("admin", "maker")),
    ActivationStep("create_report", "report_created", ROLES),
    ActivationStep("create_automation", "automation_created", ("admin", "maker")),
    ActivationStep("connect_billing", "billing_connected", ("admin",), tenant_scope=True),
)
# friction: in signals.yaml
FRICTION_WINDOW_MINUTES: Final = 10
FRICTION_REPEAT_THRESHOLD: Final = 3

REGIONS: Final[tuple[str, ...]] = ("us", "eu", "apac")
SCREENS: Final[tuple[str, ...]] = ("home", "settings", "billing", "editor")
ARCHETYPES: Final[tuple[str, ...]] = ("quick", "slow", "stalled", "churned", "power")
# The persona who has only just signed up has no archetype yet.
NEW: Final = "new"

# Help articles by topic (a feature, or getting started): id → title, for the demo's catalog.
HELP_ARTICLES: Final[Mapping[str, Mapping[str, str]]] = {
    "getting_started": {
        "getting-started": "Getting started in five minutes",
        "invite-your-team": "Invite your team",
        "choose-a-plan": "Which plan is right for you",
    },
    "reports": {
        "build-your-first-report": "Build your first report",
        "report-timeouts": "Why a report times out, and how to fix it",
    },
    "templates": {
        "customize-a-template": "Customize a template",
        "missing-template-fields": "Fix missing fields when applying a template",
    },
    "automations": {
        "automation-triggers": "Choose a trigger for an automation",
        "fix-failing-automations": "Fix a failing automation",
    },
    "integrations": {
        "connect-an-integration": "Connect an integration",
        "reconnect-expired-integrations": "Reconnect an integration whose access expired",
    },
    "api": {"api-keys": "Create and rotate API keys", "api-rate-limits": "API rate limits"},
    "custom_fields": {
        "custom-fields-basics": "Add custom fields",
        "duplicate-field-names": "Resolve duplicate field names",
    },
    "sso": {"set-up-sso": "Set up single sign-on"},
    "audit_log": {"read-the-audit-log": "Read the audit log"},
    "advanced_permissions": {"roles-and-permissions": "Roles and permissions"},
}
# What the host app shows when a feature fails.
ERROR_MESSAGES: Final[Mapping[str, tuple[str, ...]]] = {
    "automations": (
        "Automation failed: the trigger field 'status' no longer exists",
        "Couldn't save the automation: a step has no action",
        "Automation paused after 3 failed runs",
    ),
    "integrations": (
        "Sync failed: the connection's access token has expired",
        "Couldn't import records: the provider's rate limit was reached",
    ),
    "reports": (
        "The report timed out while loading",
        "Couldn't build the chart: the selected field has no values",
    ),
    "templates": ("The template couldn't be applied: required fields are missing",),
    "api": ("API request rejected: the key is invalid or revoked",),
    "custom_fields": ("Couldn't save the field: a field with this name already exists",),
}
# The screen on which a feature is used, attempted or fails.
FEATURE_SCREEN: Final[Mapping[str, str]] = {
    "reports": "editor",
    "templates": "editor",
    "automations": "editor",
    "custom_fields": "editor",
    "integrations": "settings",
    "api": "settings",
    "sso": "settings",
    "audit_log": "settings",
    "advanced_permissions": "settings",
}
# Pages of the host app per screen: (path, title).
PAGES: Final[Mapping[str, tuple[tuple[str, str], ...]]] = {
    "home": (("/", "Home"),),
    "editor": (
        ("/reports/new", "New report"),
        ("/automations/new", "New automation"),
        ("/templates", "Templates"),
    ),
    "settings": (
        ("/settings", "Settings"),
        ("/settings/team", "Team"),
        ("/settings/integrations", "Integrations"),
    ),
    "billing": (("/billing", "Billing"),),
}

DEFAULT_NOW: Final = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

# --------------------------------------------------------------------------------------------------
# Shapes of the population.

_PLAN_SHARES: Final = {"free": 35.0, "trial": 10.0, "pro": 40.0, "enterprise": 15.0}
_INDUSTRY_WEIGHTS: Final = [15.0] * len(INDUSTRIES) + [10.0]  # the last: industry unknown
_REGION_WEIGHTS: Final = {"us": 50.0, "eu": 35.0, "apac": 15.0}
_REGION_OFFSET: Final = {"us": -5 * HOUR, "eu": 1 * HOUR, "apac": 8 * HOUR}
_HEALTH_WEIGHTS: Final = {"thriving": 25.0, "steady": 50.0, "struggling": 25.0}
_ARCHETYPE_WEIGHTS: Final[Mapping[str, Mapping[str, float]]] = {
    "admin": {"quick": 35, "slow": 25, "stalled": 12, "churned": 10, "power": 18},
    "maker": {"quick": 25, "slow": 25, "stalled": 15, "churned": 15, "power": 20},
    "end_user": {"quick": 25, "slow": 25, "stalled": 25, "churned": 17, "power": 8},
}
_HEALTH_TILT: Final[Mapping[str, Mapping[str, float]]] = {
    "thriving": {"quick": 1.3, "slow": 1.0, "stalled": 0.5, "churned": 0.4, "power": 1.8},
    "steady": {"quick": 1.0, "slow": 1.0, "stalled": 1.0, "churned": 1.0, "power": 1.0},
    "struggling": {"quick": 0.7, "slow": 1.2, "stalled": 1.6, "churned": 1.8, "power": 0.5},
}
# Filler events per active day, before scaling to the requested total.
_DAILY_RATE: Final = {"quick": 4.0, "slow": 2.5, "churned": 3.0, "power": 10.0}
_FILLER_WEIGHTS: Final[Mapping[str, Mapping[str, float]]] = {
    "admin": {
        "feature_used": 30,
        "report_created": 9,
        "automation_created": 6,
        "template_used": 6,
        "help_article_viewed": 5,
        "feature_attempted": 3,
        "error_shown": 3,
        "teammate_invited": 1,
        "page": 8,
        "screen": 3,
    },
    "maker": {
        "feature_used": 36,
        "report_created": 9,
        "automation_created": 9,
        "template_used": 8,
        "help_article_viewed": 5,
        "feature_attempted": 3,
        "error_shown": 4,
        "page": 8,
        "screen": 4,
    },
    "end_user": {
        "feature_used": 46,
        "report_created": 6,
        "help_article_viewed": 7,
        "feature_attempted": 2,
        "error_shown": 3,
        "page": 12,
        "screen": 8,
    },
}
_ROLE_FEATURES: Final[Mapping[str, Mapping[str, float]]] = {
    "admin": {
        "reports": 25,
        "templates": 12,
        "automations": 14,
        "integrations": 12,
        "api": 6,
        "custom_fields": 8,
        "sso": 5,
        "audit_log": 8,
        "advanced_permissions": 6,
    },
    "maker": {
        "reports": 30,
        "templates": 20,
        "automations": 25,
        "integrations": 6,
        "api": 8,
        "custom_fields": 10,
    },
    "end_user": {"reports": 60, "templates": 25, "custom_fields": 5},
}
_SCREEN_WEIGHTS: Final[Mapping[str, Mapping[str, float]]] = {
    "admin": {"home": 45, "editor": 20, "settings": 25, "billing": 10},
    "maker": {"home": 50, "editor": 38, "settings": 12},
    "end_user": {"home": 65, "editor": 25, "settings": 10},
}
# fmt: off
_SLUG_WORDS: Final = (
    "acme", "northwind", "bluebird", "cedar", "summit", "granite", "willow", "copper", "juniper",
    "aurora", "beacon", "falcon", "meadow", "orchid", "pioneer", "quartz", "redwood", "sierra",
    "tundra", "vertex", "zephyr", "atlas", "birch", "cobalt", "delta", "ember", "fjord", "glacier",
    "horizon", "indigo", "jasper", "kestrel", "lotus", "mosaic", "nimbus", "onyx", "prairie",
    "quill", "raven", "saffron", "tidal", "umber", "valley", "wren", "yarrow", "alder", "bramble",
    "canyon", "dune", "elm", "fern", "grove", "heron", "iris", "kelp", "larch", "moss", "oak",
    "pine", "reef", "sage", "thistle", "violet", "wharf",
)
# fmt: on
_SLUG_SUFFIXES: Final[Mapping[str | None, tuple[str, ...]]] = {
    "healthcare": ("health", "clinic", "care", "medical"),
    "fintech": ("capital", "pay", "finance", "lending"),
    "ecommerce": ("shop", "goods", "store", "supply"),
    "education": ("academy", "school", "learning", "college"),
    "software": ("labs", "software", "dev", "cloud"),
    "manufacturing": ("works", "industries", "manufacturing", "fabrication"),
    None: ("co", "group", "partners", "team"),
}
# fmt: off
_FIRST_NAMES: Final = (
    "Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi",
    "Liam", "Maya", "Nikhil", "Olga", "Pablo", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera",
    "Wei", "Ximena", "Yusuf", "Zoe", "Aiko", "Bruno", "Carmen", "Dmitri", "Emeka", "Freya",
    "Gabriel", "Hana", "Ivan", "Jade", "Kofi", "Lena", "Mateo", "Nora", "Oscar", "Priya",
    "Rafael", "Sofia", "Tomas", "Uma", "Viktor", "Wanjiru",
)
# fmt: on
# fmt: off
_LAST_NAMES: Final = (
    "Okafor", "Lindqvist", "Tanaka", "Moreau", "Schmidt", "Rossi", "Kowalski", "Haddad", "Nguyen",
    "Patel", "Garcia", "Johansson", "Murphy", "Silva", "Kim", "Novak", "Adeyemi", "Fischer",
    "Costa", "Yilmaz", "Sato", "Dubois", "Ivanova", "Mensah", "Larsen", "Romero", "Chen", "Ali",
    "Brennan", "Horvat", "Ortiz", "Kaur", "Weber", "Mbeki", "Andersen", "Reyes", "Park",
    "Virtanen", "Santos", "Hughes", "Bauer", "Nakamura", "Petrov", "Alvarez", "Byrne", "Osei",
    "Lopez", "Khan",
)
# fmt: on


# --------------------------------------------------------------------------------------------------
# Public API.


@dataclass(frozen=True)
class PopulationSpec:
    """How big the population is, over how many days up to `now`, from which seed."""

    tenants: int = 200
    users: int = 2000
    events: int = 200_000
    days: int = 90
    seed: int = 7
    now: datetime = DEFAULT_NOW


@dataclass(frozen=True)
class TenantInfo:
    """A tenant as it stands at `now` (its last group call says the same)."""

    tenant_id: str
    name: str
    plan: str
    industry: str | None
    seats: int
    seats_used: int
    region: str
    created_at: datetime
    users: int
    integrations: tuple[str, ...]  # connected at `now`
    initial_plan: str  # the plan before `plan_upgraded`, when there was one
    upgraded_at: datetime | None


@dataclass(frozen=True)
class UserInfo:
    user_id: str
    tenant_id: str
    role: str
    archetype: str  # one of ARCHETYPES, or "new" for a user who has only just signed up
    signed_up_at: datetime
    last_seen_at: datetime
    name: str
    email: str
    events: int


@dataclass(frozen=True)
class Persona:
    """A seeded user in a known state at `now`, for the demo's persona switcher."""

    key: str
    label: str
    description: str
    tenant_id: str
    user_id: str
    role: str


@dataclass(frozen=True)
class Population:
    spec: PopulationSpec
    tenants: list[TenantInfo]
    users: list[UserInfo]
    personas: list[Persona]
    log: tuple[_Event, ...] = field(repr=False)

    @property
    def count(self) -> int:
        """The number of events."""
        return len(self.log)

    def persona(self, key: str) -> Persona:
        for p in self.personas:
            if p.key == key:
                return p
        raise KeyError(key)

    def events(self) -> Iterator[dict[str, Any]]:
        """Every event as a Segment-spec call, in timestamp order."""
        prefix = f"m_{self.spec.seed}_"
        for i, event in enumerate(self.log):
            yield _render(event, f"{prefix}{i}")

    def batches(self, size: int = 500) -> Iterator[dict[str, Any]]:
        """`{"batch": [...], "sentAt": ...}` bodies for `POST /v1/batch`, in timestamp order.

        `sentAt` is `now`: the batches are a backfill sent at `now`, so the server's clock-skew
        correction (timestamp + receivedAt - sentAt) keeps the historical timestamps as they are.
        """
        if size < 1:
            raise ValueError("batch size must be at least 1")
        sent_at = _iso(_to_ms(self.spec.now))
        events = self.events()
        while chunk := list(itertools.islice(events, size)):
            yield {"batch": chunk, "sentAt": sent_at}


def generate(spec: PopulationSpec) -> Population:
    """The population for `spec`: the same spec always gives the same population."""
    return _Builder(spec).build()


# --------------------------------------------------------------------------------------------------
# Events: (timestamp ms, sequence, type, tenant id, user id, event or page name, payload).

_Event = tuple[int, int, str, str, str, str, dict[str, Any]]
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _to_ms(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return delta.days * DAY + delta.seconds * SECOND + delta.microseconds // 1000


def _to_datetime(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


@functools.lru_cache(maxsize=8192)
def _day_prefix(day: int) -> str:
    return (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%dT")


def _iso(ms: int) -> str:
    day, rest = divmod(ms, DAY)
    seconds, millis = divmod(rest, SECOND)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    return f"{_day_prefix(day)}{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}Z"


def _render(event: _Event, message_id: str) -> dict[str, Any]:
    ts, _seq, kind, tenant_id, user_id, name, payload = event
    out: dict[str, Any] = {
        "type": kind,
        "messageId": message_id,
        "tenantId": tenant_id,
        "userId": user_id,
    }
    if kind == "track":
        out["event"] = name
        out["properties"] = dict(payload)
    elif kind == "identify":
        out["traits"] = dict(payload)
    elif kind == "group":
        out["groupId"] = tenant_id
        out["traits"] = dict(payload)
    else:  # page, screen
        out["name"] = name
        out["properties"] = dict(payload)
    out["timestamp"] = _iso(ts)
    return out


# --------------------------------------------------------------------------------------------------
# The builder.


@dataclass(eq=False)
class _Tenant:
    index: int
    tenant_id: str
    name: str
    industry: str | None
    region: str
    plan: str
    initial_plan: str
    seats: int
    created_at: int
    upgraded_at: int | None = None
    health: str = "steady"
    persona: str | None = None
    min_users: int = 1
    fixed_users: bool = False
    n_users: int = 0
    seats_used: int = 0
    targets: tuple[str, ...] = ()
    no_disconnects: bool = False
    users: list[_User] = field(default_factory=list)
    connected: set[str] = field(default_factory=set)

    def plan_at(self, t: int) -> str:
        if self.upgraded_at is not None and t >= self.upgraded_at:
            return self.plan
        return self.initial_plan

    def seats_at(self, t: int) -> int:
        if self.upgraded_at is not None and t < self.upgraded_at:
            return min(self.seats, PLAN_LIMITS[self.initial_plan]["seats"])
        return self.seats

    @property
    def templates(self) -> tuple[str, ...]:
        return INDUSTRY_TEMPLATES[self.industry] if self.industry else DEFAULT_TEMPLATES

    @property
    def integrations(self) -> tuple[str, ...]:
        return INDUSTRY_INTEGRATIONS[self.industry] if self.industry else DEFAULT_INTEGRATIONS


@dataclass(eq=False)
class _User:
    index: int
    user_id: str
    tenant: _Tenant
    role: str
    first_name: str
    last_name: str
    email: str
    archetype: str = "quick"
    fixed_archetype: bool = False  # set by a persona's tenant
    persona: str | None = None
    signup: int = 0
    active_end: int = 0
    filler_from: int = 0
    filler_to: int = 0
    stuck_prone: bool = False
    steps: dict[str, int] = field(default_factory=dict)  # activation event → when it was done


@dataclass(frozen=True)
class _PersonaTenant:
    persona: str
    slug: str
    name: str
    industry: str
    plan: str
    initial_plan: str
    region: str
    seats: int
    age: int  # how long before `now` the tenant was created
    upgrade_after: int | None  # after creation
    users: int  # fixed count, or the minimum when `fixed` is false
    fixed: bool
    health: str
    roles: tuple[str, ...]  # of the first users; users[persona_user] is the persona
    archetypes: tuple[str | None, ...]
    persona_user: int
    label: str
    description: str


# fmt: off
_PERSONA_TENANTS: Final = (
    _PersonaTenant(
        "new_admin", "lumen-labs", "Lumen Labs", "software", "trial", "trial", "us", 10, 2 * HOUR,
        None, 1, True, "steady", ("admin",), (NEW,), 0,
        "New admin, fresh trial",
        "Signed up two hours ago as the first admin of a trial workspace; nothing connected or "
        "created yet.",
    ),
    _PersonaTenant(
        "stuck_maker", "harbor-goods", "Harbor Goods", "ecommerce", "pro", "pro", "apac", 15,
        60 * DAY, None, 2, False, "steady", ("admin", "maker"), ("quick", "quick"), 1,
        "Maker stuck on an automation",
        "Hit the same automation error four times in the last ten minutes.",
    ),
    _PersonaTenant(
        "healthcare_end_user", "riverside-health", "Riverside Health", "healthcare", "pro",
        "trial", "eu", 24, 75 * DAY, 12 * DAY, 3, False, "steady",
        ("admin", "end_user", "maker"), ("quick", "quick", None), 1,
        "End user at a clinic",
        "Reads reports in a healthcare workspace, where customers are patients.",
    ),
    _PersonaTenant(
        "seat_limit_admin", "maple-academy", "Maple Academy", "education", "free", "free", "us", 3,
        40 * DAY, None, 3, True, "steady", ("admin", "maker", "end_user"),
        ("quick", None, None), 0,
        "Admin at the seat limit",
        "Free plan with all 3 seats taken; tried to add a teammate from settings 25 minutes ago.",
    ),
    _PersonaTenant(
        "fintech_power_user", "ledgerline-capital", "Ledgerline Capital", "fintech", "enterprise",
        "enterprise", "us", 60, 80 * DAY, None, 4, False, "thriving",
        ("admin", "maker", "maker"), ("power", "power", None), 1,
        "Power user, fintech",
        "Builds automations and reports every day in a fintech workspace with Plaid, Stripe, "
        "Salesforce and Slack connected.",
    ),
    _PersonaTenant(
        "at_risk", "ironbridge-works", "Ironbridge Works", "manufacturing", "pro", "pro", "eu", 30,
        85 * DAY, None, 2, False, "struggling", ("admin", "maker"), ("quick", "churned"), 1,
        "At-risk user",
        "Was active for weeks, but has done nothing in the last eleven days.",
    ),
)
# fmt: on
_PERSONA_MIN_USERS: Final = sum(p.users for p in _PERSONA_TENANTS)
_AT_RISK_QUIET: Final = 11 * DAY + 3 * HOUR  # the at-risk persona's last event, before `now`


def _cumulative(weights: Sequence[float]) -> list[float]:
    return list(itertools.accumulate(weights))


class _Builder:
    def __init__(self, spec: PopulationSpec) -> None:
        _check(spec)
        self.spec = spec
        self.rng = random.Random(spec.seed)  # noqa: S311 (sample data, not secrets)
        self.now = _to_ms(spec.now)
        self.start = self.now - spec.days * DAY
        self.events: list[_Event] = []
        self.fixed: list[_Event] = []  # persona scripts: kept as they are
        self.seq = 0
        self.tenants: list[_Tenant] = []
        self.users: list[_User] = []
        self.slugs: set[str] = set()
        self._tables: dict[tuple[str, ...], tuple[list[str], list[float]]] = {}

    # ----------------------------------------------------------------------------------- helpers

    def pick(self, table: Mapping[str, float]) -> str:
        items, cum = list(table), _cumulative(list(table.values()))
        return items[bisect.bisect_right(cum, self.rng.random() * cum[-1])]

    def table(
        self, key: tuple[str, ...], build: Callable[[], Mapping[str, float]]
    ) -> tuple[list[str], list[float]]:
        """A weighted table, built once per key."""
        cached = self._tables.get(key)
        if cached is None:
            weights = build()
            cached = self._tables[key] = (list(weights), _cumulative(list(weights.values())))
        return cached

    def pick_cached(self, key: tuple[str, ...], build: Callable[[], Mapping[str, float]]) -> str:
        items, cum = self.table(key, build)
        return items[bisect.bisect_right(cum, self.rng.random() * cum[-1])]

    def between(self, lo: float, hi: float) -> int:
        return int(lo + (hi - lo) * self.rng.random()) if hi > lo else int(lo)

    def within(self, when: int, lo: int, hi: int) -> int:
        """`when`, or a time drawn from [lo, hi] when `when` falls after `hi`."""
        return when if when <= hi else self.between(lo, hi)

    def emit(
        self,
        t: int,
        kind: str,
        user: _User,
        name: str,
        payload: dict[str, Any],
        *,
        fixed: bool = False,
    ) -> None:
        event = (t, self.seq, kind, user.tenant.tenant_id, user.user_id, name, payload)
        self.seq += 1
        (self.fixed if fixed else self.events).append(event)

    def track(
        self,
        t: int,
        user: _User,
        event: str,
        props: dict[str, Any] | None = None,
        *,
        fixed: bool = False,
    ) -> None:
        self.emit(t, "track", user, event, props or {}, fixed=fixed)

    def page(
        self,
        t: int,
        user: _User,
        screen: str,
        *,
        kind: str = "page",
        path_index: int | None = None,
        fixed: bool = False,
    ) -> None:
        pages = PAGES[screen]
        path, title = pages[
            path_index if path_index is not None else self.rng.randrange(len(pages))
        ]
        props: dict[str, Any] = {"screen": screen}
        if kind == "page":
            props = {"path": path, "title": title, "screen": screen}
        self.emit(t, kind, user, title, props, fixed=fixed)

    def workday(self, raw: int, region: str, lo: int, hi: int) -> int:
        """`raw` moved into the working hours of the tenant's region, if that stays in [lo, hi]."""
        offset = _REGION_OFFSET[region]
        day = (raw + offset) // DAY
        hour = min(22.5, max(6.5, self.rng.gauss(13.5, 2.7)))
        local = day * DAY + int(hour * HOUR)
        weekday = (day + 3) % 7  # 1970-01-01 was a Thursday
        if weekday >= 5 and self.rng.random() < 0.75:
            local -= (weekday - 4) * DAY
        t = local - offset
        return t if lo <= t <= hi else raw

    # ---------------------------------------------------------------------------------- tenants

    def build(self) -> Population:
        self.make_tenants()
        self.allocate_users()
        self.make_users()
        for tenant in self.tenants:
            self.schedule_tenant(tenant)
        for user in self.users:
            self.user_skeleton(user)
        self.persona_scripts()
        self.fill()
        return self.finish()

    def make_tenants(self) -> None:
        for p in _PERSONA_TENANTS:
            age = min(p.age, int(self.spec.days * DAY * 0.95))
            created = self.now - age
            self.slugs.add(p.slug)
            tenant = _Tenant(
                index=len(self.tenants),
                tenant_id=p.slug,
                name=p.name,
                industry=p.industry,
                region=p.region,
                plan=p.plan,
                initial_plan=p.initial_plan,
                seats=p.seats,
                created_at=created,
                health=p.health,
                persona=p.persona,
                min_users=p.users,
                fixed_users=p.fixed,
                upgraded_at=created + p.upgrade_after if p.upgrade_after is not None else None,
            )
            self.tenants.append(tenant)
        for _ in range(self.spec.tenants - len(_PERSONA_TENANTS)):
            self.tenants.append(self.random_tenant())
        for tenant in self.tenants:
            tenant.targets = self.integration_targets(tenant)
        ledgerline = next(t for t in self.tenants if t.persona == "fintech_power_user")
        ledgerline.targets = INDUSTRY_INTEGRATIONS["fintech"]
        ledgerline.no_disconnects = True

    def random_tenant(self) -> _Tenant:
        rng = self.rng
        industry_i = bisect.bisect_right(
            _cumulative(_INDUSTRY_WEIGHTS), rng.random() * sum(_INDUSTRY_WEIGHTS)
        )
        industry = INDUSTRIES[industry_i] if industry_i < len(INDUSTRIES) else None
        plan = self.pick(_PLAN_SHARES)
        region = self.pick(_REGION_WEIGHTS)
        health = self.pick(_HEALTH_WEIGHTS)
        if plan == "free":
            seats = PLAN_LIMITS["free"]["seats"]
        elif plan == "trial":
            seats = PLAN_LIMITS["trial"]["seats"]
        elif plan == "pro":
            seats = min(50, max(5, round(rng.lognormvariate(math.log(14), 0.6))))
        else:
            seats = min(500, max(50, round(rng.lognormvariate(math.log(120), 0.7))))
        initial, upgraded_after = plan, None
        latest = self.now - 2 * DAY
        roll = rng.random()
        if plan == "pro" and roll < 0.45:
            initial, latest = "trial", self.now - 16 * DAY
        elif plan == "pro" and roll < 0.60:
            initial, latest = "free", self.now - 10 * DAY
        elif plan == "enterprise" and roll < 0.25:
            initial, latest = "pro", self.now - 25 * DAY
        if plan == "trial":
            created = self.now - self.between(0.5 * DAY, 13.5 * DAY)
        else:
            created = self.between(self.start + HOUR, latest)
        if initial == "trial" and plan != "trial":
            upgraded_after = self.between(7 * DAY, 14 * DAY)
            seats = max(seats, PLAN_LIMITS["trial"]["seats"])  # keeps the trial's seats
        elif initial == "free" and plan != "free":
            upgraded_after = self.between(3 * DAY, min(60 * DAY, self.now - created - 2 * DAY))
        elif initial == "pro" and plan == "enterprise":
            upgraded_after = self.between(14 * DAY, self.now - created - 5 * DAY)
        slug, name = self.tenant_name(industry)
        return _Tenant(
            index=len(self.tenants),
            tenant_id=slug,
            name=name,
            industry=industry,
            region=region,
            plan=plan,
            initial_plan=initial,
            seats=seats,
            created_at=created,
            health=health,
            upgraded_at=created + upgraded_after if upgraded_after is not None else None,
        )

    def tenant_name(self, industry: str | None) -> tuple[str, str]:
        suffixes = _SLUG_SUFFIXES[industry]
        slug = ""
        for _ in range(12):
            words = (self.rng.choice(_SLUG_WORDS), self.rng.choice(suffixes))
            slug = "-".join(words)
            if slug not in self.slugs:
                break
        else:
            slug = f"{slug}-{len(self.tenants)}"
        self.slugs.add(slug)
        return slug, " ".join(w.capitalize() for w in slug.split("-"))

    def integration_targets(self, tenant: _Tenant) -> tuple[str, ...]:
        """The integrations a tenant connects over its life (the first is connected first)."""
        if "integrations" not in PLAN_FEATURES[tenant.plan]:
            return ()
        rng = self.rng
        counts = {
            "trial": ([0, 1, 2], [40, 40, 20]),
            "pro": ([0, 1, 2, 3, 4], [15, 25, 30, 20, 10]),
            "enterprise": ([1, 2, 3, 4], [10, 25, 35, 30]),
        }[tenant.plan]
        n = rng.choices(counts[0], weights=counts[1])[0]
        if tenant.health == "thriving":
            n += 1
        elif tenant.health == "struggling":
            n -= 1
        pool = list(tenant.integrations)
        weights = [4.0, 3.0, 2.0, 1.5][: len(pool)]
        chosen: list[str] = []
        while pool and len(chosen) < n:
            i = bisect.bisect_right(_cumulative(weights), rng.random() * sum(weights))
            chosen.append(pool.pop(i))
            weights.pop(i)
        if chosen and rng.random() < 0.1:
            extra = [x for x in EXTRA_INTEGRATIONS if x not in chosen]
            chosen.append(rng.choice(extra))
        return tuple(chosen)

    def allocate_users(self) -> None:
        """Users spread over tenants: bigger tenants get more, never more than their seats."""
        for tenant in self.tenants:
            tenant.n_users = tenant.min_users
        remaining = self.spec.users - sum(t.n_users for t in self.tenants)
        open_tenants = [t for t in self.tenants if not t.fixed_users and t.n_users < t.seats]

        def weight(t: _Tenant) -> float:
            return math.pow(t.seats, 0.75) * (0.5 if t.plan == "trial" else 1.0)

        cum = _cumulative([weight(t) for t in open_tenants])
        for _ in range(remaining):
            if not open_tenants:
                raise ValueError("spec.users is larger than the seats of the generated tenants")
            i = bisect.bisect_right(cum, self.rng.random() * cum[-1])
            tenant = open_tenants[i]
            tenant.n_users += 1
            if tenant.n_users >= tenant.seats:
                open_tenants.pop(i)
                cum = _cumulative([weight(t) for t in open_tenants])
        for tenant in self.tenants:
            n, seats = tenant.n_users, tenant.seats
            if tenant.persona == "seat_limit_admin" or tenant.plan == "free":
                used = n
            elif self.rng.random() < 0.15:
                used = seats  # at the seat limit
            else:
                used = round(seats * (0.35 + 0.6 * self.rng.random()))
            tenant.seats_used = min(seats, max(n, used))

    def make_users(self) -> None:
        for tenant in self.tenants:
            seed = _PERSONA_TENANTS[tenant.index] if tenant.persona else None
            emails: set[str] = set()
            for k in range(tenant.n_users):
                if seed is not None and k < len(seed.roles):
                    role = seed.roles[k]
                elif k == 0:
                    role = "admin"
                else:
                    role = self.random_role(tenant)
                first, last = self.rng.choice(_FIRST_NAMES), self.rng.choice(_LAST_NAMES)
                local = f"{first}.{last}".lower()
                email = f"{local}@{tenant.tenant_id}.example"
                n = 2
                while email in emails:
                    email = f"{local}{n}@{tenant.tenant_id}.example"
                    n += 1
                emails.add(email)
                user = _User(
                    index=len(self.users),
                    user_id=f"u_{len(self.users) + 1}",
                    tenant=tenant,
                    role=role,
                    first_name=first,
                    last_name=last,
                    email=email,
                )
                if seed is not None and k < len(seed.archetypes):
                    archetype = seed.archetypes[k]
                    if archetype is not None:
                        user.archetype, user.fixed_archetype = archetype, True
                    if k == seed.persona_user:
                        user.persona = seed.persona
                tenant.users.append(user)
                self.users.append(user)

    def random_role(self, tenant: _Tenant) -> str:
        r = self.rng.random()
        if r < 0.08:
            return "admin"
        maker_share = 0.6 if tenant.n_users <= 5 else 0.4
        return "maker" if r < 0.08 + 0.92 * maker_share else "end_user"

    def pick_archetype(self, user: _User, allowed: Sequence[str] = ARCHETYPES) -> str:
        tilt = _HEALTH_TILT[user.tenant.health]
        table = {a: w * tilt[a] for a, w in _ARCHETYPE_WEIGHTS[user.role].items() if a in allowed}
        if user.signup > self.now - 22 * DAY:
            table.pop("churned", None)  # churning takes weeks
        return self.pick(table)

    def set_window(self, user: _User) -> None:
        """When the user is active, and when their everyday events (filler) may fall."""
        s, now = user.signup, self.now
        if user.archetype == "churned":
            user.active_end = min(s + self.between(14 * DAY, 42 * DAY), now - 8 * DAY)
        elif user.archetype == "stalled":
            user.active_end = s + self.between(10 * MINUTE, 2 * HOUR)
        else:
            user.active_end = now
        user.filler_from = s + self.between(2 * MINUTE, 15 * MINUTE)
        user.filler_to = user.active_end
        match user.persona:
            case "stuck_maker":
                user.filler_to = now - 30 * MINUTE
            case "healthcare_end_user":
                user.filler_to = now - 15 * MINUTE
            case "seat_limit_admin":
                user.active_end = user.filler_to = now - DAY
            case "fintech_power_user":
                user.filler_to = now - 2 * HOUR
            case "at_risk":
                user.active_end = now - _AT_RISK_QUIET
                user.filler_to = user.active_end - HOUR
            case _:
                pass
        user.active_end = max(user.active_end, s)
        user.filler_to = max(user.filler_to, user.filler_from)
        user.stuck_prone = (
            user.role != "end_user" and user.archetype != "stalled" and self.rng.random() < 0.12
        )

    def schedule_tenant(self, tenant: _Tenant) -> None:
        admin = tenant.users[0]
        admin.signup = tenant.created_at
        if not admin.fixed_archetype:
            must_stay = len(tenant.users) > 1 or tenant.upgraded_at is not None
            admin.archetype = self.pick_archetype(
                admin, ("quick", "slow", "power") if must_stay else ARCHETYPES
            )
        self.set_window(admin)
        self.schedule_joins(tenant, admin)
        for user in tenant.users[1:]:
            if not user.fixed_archetype:
                user.archetype = self.pick_archetype(user)
            self.set_window(user)
        tenant.users.sort(key=lambda u: (u.signup, u.index))
        if admin.archetype not in (NEW, "stalled"):
            self.tenant_events(tenant, admin)

    def schedule_joins(self, tenant: _Tenant, admin: _User) -> None:
        """Invite waves by the first admin; invitees sign up minutes to days later."""
        others = tenant.users[1:]
        if not others:
            return
        rng = self.rng
        end = max(admin.signup + HOUR, min(admin.active_end, self.now) - 30 * MINUTE)
        pace = (
            self.between(0.05 * DAY, DAY)
            if admin.archetype != "slow"
            else self.between(DAY, 6 * DAY)
        )
        anchor = admin.signup + min(pace, (end - admin.signup) * 3 // 10)
        waves: list[list[_User]] = []
        pending = list(others)
        biggest = max(1, min(8, len(others) // 3 + 1))
        while pending:
            size = min(len(pending), rng.randint(1, biggest))
            waves.append(pending[:size])
            pending = pending[size:]
        spread = (int(anchor + (end - anchor) * rng.random() ** 1.6) for _ in waves[1:])
        times = [anchor, *sorted(spread)]
        upgrade = tenant.upgraded_at
        room = tenant.seats_at(tenant.created_at) - 1 if upgrade is not None else len(others)
        plan: list[tuple[int, list[_User]]] = []
        for wave, when in zip(waves, times, strict=True):
            if upgrade is not None and when < upgrade:
                keep, move = wave[: max(room, 0)], wave[max(room, 0) :]
                room -= len(keep)
                if keep:
                    plan.append((when, keep))
                if move:
                    later = min(end, upgrade + self.between(HOUR, 3 * DAY))
                    plan.append((max(later, upgrade + MINUTE), move))
            else:
                plan.append((when, wave))
        plan.sort(key=lambda p: p[0])
        for when, wave in plan:
            extra = 1 if rng.random() < 0.2 else 0
            self.track(when, admin, "teammate_invited", {"count": len(wave) + extra})
            for user in wave:
                r = rng.random()
                delay = (
                    self.between(5 * MINUTE, 4 * HOUR)
                    if r < 0.7
                    else self.between(4 * HOUR, 2 * DAY)
                    if r < 0.95
                    else self.between(2 * DAY, 6 * DAY)
                )
                latest = self.now - self.between(10 * MINUTE, 3 * HOUR)
                user.signup = max(when + MINUTE, min(when + delay, latest))

    def tenant_events(self, tenant: _Tenant, admin: _User) -> None:
        """Integrations, billing, upgrade and seat limits: done by the tenant's first admin."""
        rng, now = self.rng, self.now
        end = min(admin.active_end, now)
        slow = admin.archetype in ("slow", "churned")
        upgrade = tenant.upgraded_at
        # Integrations.
        first = admin.signup + (
            self.between(DAY, 10 * DAY) if slow else self.between(5 * MINUTE, 6 * HOUR)
        )
        first = self.within(first, admin.signup + MINUTE, end)
        if "integrations" not in PLAN_FEATURES[tenant.plan_at(first)] and (
            tenant.targets or rng.random() < 0.6
        ):
            self.track(
                first, admin, "feature_attempted", {"feature": "integrations", "screen": "settings"}
            )
            if upgrade is not None and tenant.targets:
                first = upgrade + self.between(10 * MINUTE, DAY)
        if (
            tenant.targets
            and first <= end
            and "integrations" in PLAN_FEATURES[tenant.plan_at(first)]
        ):
            horizon = min(end, first + 45 * DAY)
            later = (self.between(first + 30 * MINUTE, horizon) for _ in tenant.targets[1:])
            times = [first, *sorted(later)]
            for integration, when in zip(tenant.targets, times, strict=True):
                if when > end:
                    break
                self.track(when, admin, "integration_connected", {"integration": integration})
                tenant.connected.add(integration)
                if not tenant.no_disconnects and rng.random() < 0.1 and when + DAY < end:
                    gone = self.between(when + DAY, end)
                    self.track(
                        gone, admin, "integration_disconnected", {"integration": integration}
                    )
                    tenant.connected.discard(integration)
                    if rng.random() < 0.5 and gone + HOUR < end:
                        self.track(
                            self.between(gone + HOUR, end),
                            admin,
                            "integration_connected",
                            {"integration": integration},
                        )
                        tenant.connected.add(integration)
        # Alone in the tenant: invites sent, not (yet) accepted.
        if len(tenant.users) == 1 and rng.random() < 0.5:
            invited = self.within(
                admin.signup
                + (self.between(DAY, 7 * DAY) if slow else self.between(10 * MINUTE, DAY)),
                admin.signup + MINUTE,
                end,
            )
            self.track(invited, admin, "teammate_invited", {"count": rng.randint(1, 2)})
        # Billing, and the upgrade.
        if upgrade is not None and upgrade <= now:
            if tenant.initial_plan in ("pro", "enterprise"):
                self.billing(tenant, admin, slow, end)
            else:
                self.track(
                    upgrade - self.between(2 * MINUTE, 30 * MINUTE), admin, "billing_connected"
                )
            self.track(upgrade, admin, "plan_upgraded", {"plan": tenant.plan})
            joined = sum(1 for u in tenant.users if u.signup <= upgrade)
            self.emit(
                upgrade + 1500, "group", admin, "", self.group_traits(tenant, upgrade, joined)
            )
            pre = [u.signup for u in tenant.users if u.signup < upgrade]
            if len(pre) >= tenant.seats_at(tenant.created_at):
                hit = max(max(pre) + MINUTE, upgrade - self.between(30 * MINUTE, 2 * DAY))
                self.seat_limit(
                    tenant, admin, min(hit, upgrade - MINUTE), tenant.seats_at(tenant.created_at)
                )
        elif (
            tenant.plan in ("pro", "enterprise")
            or (tenant.plan == "trial" and rng.random() < 0.3)
            or rng.random() < 0.05
        ):
            self.billing(tenant, admin, slow, end)
        # At the seat limit on a plan that limits seats: trying to add one more.
        if (
            tenant.plan in ("free", "trial")
            and tenant.seats_used >= tenant.seats
            and (tenant.users[-1].signup + 5 * MINUTE < end)
        ):
            last_join = max(u.signup for u in tenant.users)
            for _ in range(rng.randint(1, 2)):
                self.seat_limit(
                    tenant, admin, self.between(last_join + 5 * MINUTE, end), tenant.seats
                )

    def billing(self, tenant: _Tenant, admin: _User, slow: bool, end: int) -> None:
        gap = self.between(DAY, 10 * DAY) if slow else self.between(10 * MINUTE, DAY)
        self.track(
            self.within(admin.signup + gap, admin.signup + 5 * MINUTE, end),
            admin,
            "billing_connected",
        )

    def seat_limit(self, tenant: _Tenant, admin: _User, when: int, seats: int) -> None:
        self.page(when - 20 * SECOND, admin, "settings", path_index=1)
        self.track(
            when,
            admin,
            "limit_reached",
            {"limit": "seats", "used": seats, "max": seats, "screen": "settings"},
        )

    def group_traits(self, tenant: _Tenant, t: int, joined: int) -> dict[str, Any]:
        seats = tenant.seats_at(t)
        share = round(tenant.seats_used * joined / max(tenant.n_users, 1))
        traits: dict[str, Any] = {"plan": tenant.plan_at(t)}
        if tenant.industry:
            traits["industry"] = tenant.industry
        traits.update(
            seats=seats,
            seats_used=min(seats, max(joined, share)),
            region=tenant.region,
            name=tenant.name,
        )
        return traits

    # ------------------------------------------------------------------------------------ users

    def user_skeleton(self, user: _User) -> None:
        """Signup, identity and group, then the activation steps or the stall."""
        s, tenant = user.signup, user.tenant
        self.track(s, user, "signed_up")
        self.emit(
            s + 300,
            "identify",
            user,
            "",
            {"role": user.role, "email": user.email, "name": f"{user.first_name} {user.last_name}"},
        )
        joined = 1 + tenant.users.index(user)  # users are in signup order
        self.emit(s + 600, "group", user, "", self.group_traits(tenant, s + 600, joined))
        if user.archetype == NEW:
            return
        if user.archetype == "stalled":
            self.stall(user)
        else:
            self.activation(user)

    def stall(self, user: _User) -> None:
        """A look around after signup, no value delivered."""
        for _ in range(self.rng.randint(0, 3)):
            t = self.between(user.signup + MINUTE, user.active_end)
            r = self.rng.random()
            if r < 0.5:
                self.page(t, user, self.screen(user))
            elif r < 0.8:
                self.track(t, user, "help_article_viewed", {"article": "getting-started"})
            else:
                self.attempt(t, user)

    def activation(self, user: _User) -> None:
        rng, tenant = self.rng, user.tenant
        steps = [s for s in ACTIVATION if user.role in s.roles and not s.tenant_scope]
        if len(steps) > 1 and rng.random() < 0.2:
            i = rng.randrange(len(steps) - 1)
            steps[i], steps[i + 1] = steps[i + 1], steps[i]
        fast = user.archetype in ("quick", "power")
        skip = {"quick": 0.05, "power": 0.0, "slow": 0.3, "churned": 0.35}[user.archetype]
        cursor = user.signup
        for n, step in enumerate(steps):
            if fast:
                cursor += (
                    self.between(3 * MINUTE, 4 * HOUR) if n == 0 else self.between(5 * MINUTE, DAY)
                )
            else:
                cursor += self.between(0.3 * DAY, 7 * DAY)
            if cursor > min(user.active_end, self.now - MINUTE):
                break
            if rng.random() < skip:
                continue
            when = cursor
            if (
                step.event == "automation_created"
                and "automations" not in PLAN_FEATURES[tenant.plan_at(when)]
            ):
                self.track(
                    when, user, "feature_attempted", {"feature": "automations", "screen": "editor"}
                )
                if tenant.upgraded_at is None or tenant.upgraded_at > user.active_end:
                    continue
                when = max(when, tenant.upgraded_at) + self.between(HOUR, 5 * DAY)
                if when > min(user.active_end, self.now - MINUTE):
                    continue
            user.steps[step.event] = when
            self.track(when, user, step.event, self.step_props(user, step.event))

    def step_props(self, user: _User, event: str) -> dict[str, Any]:
        if event == "template_used":
            return {"template": self.template(user.tenant)}
        return {}

    def template(self, tenant: _Tenant) -> str:
        templates = tenant.templates
        return self.pick_cached(
            ("template", *templates), lambda: dict(zip(templates, (50.0, 30.0, 20.0), strict=True))
        )

    def screen(self, user: _User) -> str:
        return self.pick_cached(("screen", user.role), lambda: _SCREEN_WEIGHTS[user.role])

    def attempt(self, t: int, user: _User) -> bool:
        """`feature_attempted` for a feature the plan lacks; False when it lacks none."""
        role, plan = user.role, user.tenant.plan_at(t)

        def lacking() -> dict[str, float]:
            upgrade = PLAN_FEATURES.get(PLAN_NEXT.get(plan, plan), ())
            return {
                f: (3.0 if f in upgrade else 1.0)
                for f in _ROLE_FEATURES[role]
                if f not in PLAN_FEATURES[plan]
            }

        key = ("attempt", role, plan)
        if not self.table(key, lacking)[0]:
            return False
        feature = self.pick_cached(key, lacking)
        self.track(
            t, user, "feature_attempted", {"feature": feature, "screen": FEATURE_SCREEN[feature]}
        )
        return True

    def feature(self, t: int, user: _User) -> str:
        """A feature the user's plan has at `t`, weighted by what their role uses."""
        role, plan = user.role, user.tenant.plan_at(t)
        return self.pick_cached(
            ("feature", role, plan),
            lambda: {f: w for f, w in _ROLE_FEATURES[role].items() if f in PLAN_FEATURES[plan]},
        )

    def error_feature(self, t: int, user: _User) -> str:
        role, plan = user.role, user.tenant.plan_at(t)
        return self.pick_cached(
            ("error", role, plan),
            lambda: {
                f: w
                for f, w in _ROLE_FEATURES[role].items()
                if f in PLAN_FEATURES[plan] and f in ERROR_MESSAGES
            },
        )

    def article(self, user: _User, t: int, topic: str | None = None) -> str:
        if topic is None:
            topic = "getting_started" if self.rng.random() < 0.35 else self.feature(t, user)
        return self.rng.choice(list(HELP_ARTICLES[topic]))

    # ------------------------------------------------------------------------------------ filler

    def fill(self) -> None:
        """Everyday use, sized so that the whole population has `spec.events` events."""
        budget = self.spec.events - len(self.events) - len(self.fixed)
        if budget <= 0:
            return
        weights = [
            _DAILY_RATE.get(u.archetype, 0.0) * max(0.0, (u.filler_to - u.filler_from) / DAY)
            for u in self.users
        ]
        total = sum(weights)
        if total <= 0:
            return
        shares = [budget * w / total for w in weights]
        quotas = [int(s) for s in shares]
        short = budget - sum(quotas)
        by_remainder = sorted(range(len(shares)), key=lambda i: (quotas[i] - shares[i], i))
        for i in by_remainder[:short]:
            quotas[i] += 1
        for user, quota in zip(self.users, quotas, strict=True):
            if quota:
                self.sessions(user, quota)

    def sessions(self, user: _User, quota: int) -> None:
        rng = self.rng
        lo, hi = user.filler_from, user.filler_to
        region = user.tenant.region
        mean = 7.0 if user.archetype == "power" else 4.0
        while quota > 0:
            size = min(quota, 1 + int(rng.expovariate(1 / mean)))
            u = rng.random()
            if user.archetype == "slow":
                u = math.sqrt(u)  # picks up over time
            elif user.archetype == "churned":
                u = 1 - math.sqrt(1 - u)  # fades out
            start = self.workday(lo + int((hi - lo) * u), region, lo, hi)
            gaps = [2 * SECOND + int(rng.expovariate(1 / (70 * SECOND))) for _ in range(size)]
            span = sum(gaps)
            if start + span > hi:
                start = max(lo, hi - span - self.between(0, 30 * MINUTE))
                if start + span > hi:
                    factor = (hi - start) / span
                    gaps = [int(g * factor) for g in gaps]
            times = list(itertools.accumulate(gaps, initial=start))[1:]
            quota -= size
            if user.stuck_prone and size >= 3 and rng.random() < 0.15:
                times = self.error_burst(user, times)
            for t in times:
                self.filler_event(user, t)

    def error_burst(self, user: _User, times: list[int]) -> list[int]:
        """Three or more errors for one feature within minutes, often followed by help."""
        rng = self.rng
        n = min(len(times), rng.randint(3, 5))
        help_after = n < len(times) and rng.random() < 0.6
        offsets = list(
            itertools.accumulate(
                [0] + [self.between(20 * SECOND, 150 * SECOND) for _ in range(n - 1 + help_after)]
            )
        )
        base = max(user.filler_from, min(times[0], user.filler_to - offsets[-1]))
        feature = self.error_feature(base, user)
        message = rng.choice(ERROR_MESSAGES[feature])
        for offset in offsets[:n]:
            self.track(
                base + offset,
                user,
                "error_shown",
                {"feature": feature, "message": message, "screen": FEATURE_SCREEN[feature]},
            )
        if help_after:
            t = base + offsets[-1]
            self.track(t, user, "help_article_viewed", {"article": self.article(user, t, feature)})
        end = base + offsets[-1]
        rest = times[n + help_after :]
        return [min(max(x, end + SECOND * (k + 1)), user.filler_to) for k, x in enumerate(rest)]

    def filler_event(self, user: _User, t: int) -> None:
        role, tenant = user.role, user.tenant
        table = _FILLER_WEIGHTS[role]
        power = user.archetype == "power"
        kind = self.pick_cached(
            ("filler", role, "power" if power else ""),
            lambda: {
                k: w * (2.5 if power and k in ("report_created", "automation_created") else 1.0)
                for k, w in table.items()
            },
        )
        plan = tenant.plan_at(t)
        if kind in ("report_created", "template_used", "automation_created"):
            done = user.steps.get(kind)
            if done is None or t < done:
                kind = "feature_used"  # not before the activation step
            elif kind == "automation_created" and "automations" not in PLAN_FEATURES[plan]:
                kind = "feature_attempted"
        if kind == "teammate_invited" and plan not in ("pro", "enterprise"):
            kind = "feature_used"
        match kind:
            case "feature_used":
                self.track(t, user, kind, {"feature": self.feature(t, user)})
            case "report_created" | "automation_created":
                self.track(t, user, kind)
            case "template_used":
                self.track(t, user, kind, {"template": self.template(tenant)})
            case "help_article_viewed":
                self.track(t, user, kind, {"article": self.article(user, t)})
            case "feature_attempted":
                if not self.attempt(t, user):
                    self.track(t, user, "feature_used", {"feature": self.feature(t, user)})
            case "error_shown":
                feature = self.error_feature(t, user)
                self.track(
                    t,
                    user,
                    kind,
                    {
                        "feature": feature,
                        "message": self.rng.choice(ERROR_MESSAGES[feature]),
                        "screen": FEATURE_SCREEN[feature],
                    },
                )
            case "teammate_invited":
                self.track(t, user, kind, {"count": self.rng.randint(1, 3)})
            case _:  # page, screen
                self.page(t, user, self.screen(user), kind=kind)

    # ---------------------------------------------------------------------------------- personas

    def persona_scripts(self) -> None:
        """What each persona did lately, placed relative to `now`."""
        now = self.now
        by_key = {u.persona: u for u in self.users if u.persona}
        # A new admin in a fresh trial: looked around, read the getting-started guide.
        u = by_key["new_admin"]
        s = u.signup
        self.page(s + 40 * SECOND, u, "home", fixed=True)
        self.page(s + 6 * MINUTE, u, "editor", path_index=2, fixed=True)
        self.track(
            s + 9 * MINUTE, u, "help_article_viewed", {"article": "getting-started"}, fixed=True
        )
        self.page(s + 15 * MINUTE, u, "settings", path_index=2, fixed=True)
        self.page(now - 4 * MINUTE, u, "home", fixed=True)
        # A maker stuck on one automation error, four times in the last ten minutes.
        u = by_key["stuck_maker"]
        self.page(now - 12 * MINUTE, u, "editor", path_index=1, fixed=True)
        message = ERROR_MESSAGES["automations"][0]
        for ago in (
            9 * MINUTE + 30 * SECOND,
            6 * MINUTE + 40 * SECOND,
            4 * MINUTE,
            MINUTE + 10 * SECOND,
        ):
            self.track(
                now - ago,
                u,
                "error_shown",
                {"feature": "automations", "message": message, "screen": "editor"},
                fixed=True,
            )
        # An end user at a clinic, reading reports.
        u = by_key["healthcare_end_user"]
        self.page(now - 6 * MINUTE, u, "home", fixed=True)
        self.track(now - 5 * MINUTE, u, "feature_used", {"feature": "reports"}, fixed=True)
        # An admin on the free plan, all seats taken, trying to add a teammate.
        u = by_key["seat_limit_admin"]
        seats = u.tenant.seats
        self.page(now - 50 * MINUTE, u, "home", fixed=True)
        self.page(now - 26 * MINUTE, u, "settings", path_index=1, fixed=True)
        self.track(
            now - 25 * MINUTE,
            u,
            "limit_reached",
            {"limit": "seats", "used": seats, "max": seats, "screen": "settings"},
            fixed=True,
        )
        # A fintech power user: automations, reports, the API and custom fields all week.
        u = by_key["fintech_power_user"]
        week: list[tuple[int, str, dict[str, Any]]] = [
            (6 * DAY + 2 * HOUR, "automation_created", {}),
            (6 * DAY + HOUR, "feature_used", {"feature": "api"}),
            (4 * DAY + 3 * HOUR, "report_created", {}),
            (4 * DAY + 2 * HOUR, "template_used", {"template": "kyc_review"}),
            (2 * DAY + 5 * HOUR, "automation_created", {}),
            (2 * DAY + 4 * HOUR, "feature_used", {"feature": "custom_fields"}),
            (DAY + 2 * HOUR, "report_created", {}),
            (DAY + HOUR, "feature_used", {"feature": "integrations"}),
            (90 * MINUTE, "feature_used", {"feature": "reports"}),
            (80 * MINUTE, "automation_created", {}),
        ]
        for ago, event, props in week:
            self.track(now - ago, u, event, props, fixed=True)
        admin = u.tenant.users[0]  # the tenant is engaged, not just its power user
        self.track(
            now - 3 * DAY - 4 * HOUR, admin, "feature_used", {"feature": "audit_log"}, fixed=True
        )
        self.track(now - 2 * DAY - 6 * HOUR, admin, "report_created", fixed=True)
        # An at-risk user: weeks of steady use, the last visit eleven days ago.
        u = by_key["at_risk"]
        last = now - _AT_RISK_QUIET
        for weeks in range(1, 5):
            when = last - weeks * 5 * DAY - 2 * HOUR
            if when > u.signup + HOUR:
                self.track(when, u, "feature_used", {"feature": "reports"}, fixed=True)
        self.page(last - 20 * MINUTE, u, "home", fixed=True)
        self.track(last - 15 * MINUTE, u, "report_created", fixed=True)
        self.track(last - 10 * MINUTE, u, "feature_used", {"feature": "reports"}, fixed=True)

    # ------------------------------------------------------------------------------------ finish

    def enforce_limits(self) -> None:
        """Creations past the plan's limit become `limit_reached` (or plain use)."""
        counts: dict[tuple[str, str], int] = {}
        hit: set[tuple[str, str]] = set()
        plan_of = {t.tenant_id: t for t in self.tenants}
        limited = {"report_created": "reports", "automation_created": "automations"}
        for i, event in enumerate(self.events):
            if event[2] != "track" or event[5] not in limited:
                continue
            ts, seq, _kind, tenant_id, user_id, name, _props = event
            resource = limited[name]
            key = (tenant_id, resource)
            cap = PLAN_LIMITS[plan_of[tenant_id].plan_at(ts)][resource]
            used = counts.get(key, 0)
            if used < cap:
                counts[key] = used + 1
                continue
            if key not in hit or self.rng.random() < 0.25:
                hit.add(key)
                self.events[i] = (
                    ts,
                    seq,
                    "track",
                    tenant_id,
                    user_id,
                    "limit_reached",
                    {"limit": resource, "used": cap, "max": cap, "screen": "editor"},
                )
            else:
                self.events[i] = (
                    ts,
                    seq,
                    "track",
                    tenant_id,
                    user_id,
                    "feature_used",
                    {"feature": resource},
                )

    def outcomes(self) -> None:
        """What the SDK and the host app also report, put in place of everyday events so that
        the population keeps its size: the widgets Cairn showed (an upgrade gate after a limit or
        a missing feature, a help tip after repeated errors, the next step before activation),
        tasks started before they were created, and support tickets.

        Synthetic, and with no effect of what was shown: a ticket follows trouble whether or not
        a tip was shown, upgrades are scheduled per tenant before any of this, and being shown a
        widget changes nothing a user does next. Comparisons by exposure therefore show only who
        was shown, which is what an observational comparison can show.
        """
        rng = self.rng
        by_user: dict[str, list[int]] = {}
        for i, e in enumerate(self.events):
            by_user.setdefault(e[4], []).append(i)
        users = {u.user_id: u for u in self.users}
        taken: set[int] = set()

        def free(indexes: list[int], start: int, step: int, until: int) -> int | None:
            """The next (or, with step -1, previous) everyday event within `until` ms."""
            k = start + step
            origin = self.events[indexes[start]][0]
            while 0 <= k < len(indexes):
                i = indexes[k]
                e = self.events[i]
                if abs(e[0] - origin) > until:
                    return None
                if i not in taken and (e[2] in ("page", "screen") or e[5] == "feature_used"):
                    taken.add(i)
                    return i
                k += step
            return None

        def become(i: int, name: str, props: dict[str, Any]) -> None:
            ts, seq, _kind, tenant_id, user_id, _name, _props = self.events[i]
            self.events[i] = (ts, seq, "track", tenant_id, user_id, name, props)

        for user_id, indexes in by_user.items():
            user = users[user_id]
            errors: dict[str, list[int]] = {}
            for k, i in enumerate(indexes):
                ts, _seq, kind, _tenant, _user, name, props = self.events[i]
                if i in taken:
                    continue
                if kind in ("page", "screen") and props.get("screen") == "home":
                    done = sum(1 for at in user.steps.values() if at <= ts)
                    view = (
                        free(indexes, k, 1, 5 * MINUTE)
                        if done < 3 and rng.random() < 0.35
                        else None
                    )
                    if view is not None:
                        become(view, "widget_viewed", _widget("next_activation_step", "home"))
                if kind != "track":
                    continue
                if name in ("limit_reached", "feature_attempted") and rng.random() < 0.8:
                    screen = str(props.get("screen") or "home")
                    widget = _widget(_GATES.get(screen, "home_upgrade_gate"), screen)
                    j = free(indexes, k, 1, 15 * MINUTE)
                    if j is not None:
                        become(j, "widget_viewed", widget)
                        click = free(indexes, indexes.index(j), 1, 5 * MINUTE)
                        if click is not None and rng.random() < 0.3:
                            become(click, "widget_clicked", widget)
                elif name == "error_shown":
                    feature = str(props.get("feature"))
                    recent = [t for t in errors.get(feature, []) if ts - t <= 10 * MINUTE]
                    errors[feature] = [*recent, ts]
                    if len(recent) == 2:  # the third within ten minutes: repeated friction
                        screen = FEATURE_SCREEN.get(feature, "home")
                        tip = _widget(_HELP_TIPS.get(screen, "home_help_tip"), screen)
                        if (j := free(indexes, k, 1, 5 * MINUTE)) is not None:
                            become(j, "widget_viewed", tip)
                        if rng.random() < 0.15:
                            ticket = free(indexes, k, 1, DAY)
                            if ticket is not None and self.events[ticket][0] - ts >= HOUR:
                                become(ticket, "ticket_created", {"feature": feature})
                elif name in ("report_created", "automation_created") and rng.random() < 0.7:
                    j = free(indexes, k, -1, 30 * MINUTE)
                    if j is not None:
                        become(j, name.replace("_created", "_started"), {})
                elif name == "feature_used" and rng.random() < 0.002:
                    become(i, "ticket_created", {"feature": str(props.get("feature"))})
                    taken.add(i)

    def finish(self) -> Population:
        self.events.sort()
        self.enforce_limits()
        self.outcomes()
        self.fixed.sort()
        lo, hi = self.start, self.now
        log = tuple(
            e if lo <= e[0] <= hi else (min(max(e[0], lo), hi), e[1], e[2], e[3], e[4], e[5], e[6])
            for e in heapq.merge(self.events, self.fixed)
        )
        last_seen: dict[str, int] = {}
        counts: dict[str, int] = {}
        for e in log:
            last_seen[e[4]] = e[0]
            counts[e[4]] = counts.get(e[4], 0) + 1
        tenants = [
            TenantInfo(
                tenant_id=t.tenant_id,
                name=t.name,
                plan=t.plan,
                industry=t.industry,
                seats=t.seats,
                seats_used=t.seats_used,
                region=t.region,
                created_at=_to_datetime(t.created_at),
                users=t.n_users,
                integrations=tuple(sorted(t.connected)),
                initial_plan=t.initial_plan,
                upgraded_at=_to_datetime(t.upgraded_at) if t.upgraded_at is not None else None,
            )
            for t in self.tenants
        ]
        users = [
            UserInfo(
                user_id=u.user_id,
                tenant_id=u.tenant.tenant_id,
                role=u.role,
                archetype=u.archetype,
                signed_up_at=_to_datetime(u.signup),
                last_seen_at=_to_datetime(last_seen[u.user_id]),
                name=f"{u.first_name} {u.last_name}",
                email=u.email,
                events=counts[u.user_id],
            )
            for u in sorted(self.users, key=lambda u: u.index)
        ]
        by_key = {u.persona: u for u in self.users if u.persona}
        personas = [
            Persona(
                key=p.persona,
                label=p.label,
                description=p.description,
                tenant_id=by_key[p.persona].tenant.tenant_id,
                user_id=by_key[p.persona].user_id,
                role=by_key[p.persona].role,
            )
            for p in _PERSONA_TENANTS
        ]
        return Population(spec=self.spec, tenants=tenants, users=users, personas=personas, log=log)


# The widgets of the shipped layouts that the population's users are shown, by screen.
_GATES: Final[Mapping[str, str]] = {
    "home": "home_upgrade_gate",
    "editor": "editor_upgrade_gate",
    "billing": "billing_upgrade_gate",
    "settings": "settings_upgrade_gate",
}
_HELP_TIPS: Final[Mapping[str, str]] = {
    "home": "home_help_tip",
    "editor": "editor_help_tip",
    "settings": "settings_help_tip",
}
_WIDGET_TYPES: Final[Mapping[str, str]] = {
    **dict.fromkeys(_GATES.values(), "upgrade_gate"),
    **dict.fromkeys(_HELP_TIPS.values(), "help_tip"),
    "next_activation_step": "next_step_card",
}


def _widget(widget_id: str, screen: str) -> dict[str, Any]:
    return {"widget_id": widget_id, "widget_type": _WIDGET_TYPES[widget_id], "screen": screen}


def _check(spec: PopulationSpec) -> None:
    if spec.days < 30:
        raise ValueError("spec.days must be at least 30")
    if spec.tenants < len(_PERSONA_TENANTS):
        raise ValueError(
            f"spec.tenants must be at least {len(_PERSONA_TENANTS)} (the personas' tenants)"
        )
    needed = _PERSONA_MIN_USERS + spec.tenants - len(_PERSONA_TENANTS)
    if spec.users < needed:
        raise ValueError(
            f"spec.users must be at least {needed}: every tenant needs an admin, "
            "and the personas' tenants need their users"
        )
    if spec.events < 0:
        raise ValueError("spec.events must not be negative")
