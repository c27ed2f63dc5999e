"""What designers write in layouts/: the YAML shapes, strict (unknown fields are errors).

`*Spec` Structs are designer input. Strings in `props` and `why.summary` may hold `{{ cel }}`
templates; a string that is only one template keeps the expression's type (a number, a list...).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec


class Spec(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Base of designer input."""


# --- signals.yaml -------------------------------------------------------------------------------


class EventClassesSpec(Spec, frozen=True, kw_only=True):
    value: list[str] = []
    power: list[str] = []
    friction: list[str] = []


class ActivationStepSpec(Spec, frozen=True, kw_only=True):
    id: str
    label: str
    body: str = ""
    event: str
    href: str = ""
    for_roles: list[str] = []
    scope: Literal["user", "tenant"] = "user"


class FrictionSpec(Spec, frozen=True, kw_only=True):
    window_minutes: int = 10
    repeat_threshold: int = 3
    trigger_hours: int = 24


class LifecycleStageSpec(Spec, frozen=True, kw_only=True):
    stage: str
    when: str | bool


class PlanSpec(Spec, frozen=True, kw_only=True):
    label: str
    features: list[str] = []
    limits: dict[str, int] = {}
    next: str | None = None


class FeatureSpec(Spec, frozen=True, kw_only=True):
    label: str
    roi: str = ""  # what the feature is worth, said at the moment of need


class PurposeSpec(Spec, frozen=True, kw_only=True):
    """Why Cairn may use some signals: what a user grants (or not) in the preference center."""

    label: str
    description: str
    signals: list[str] = []  # signal paths (and everything under them) resting on this purpose
    required: bool = False  # the product cannot work without it: always granted


class SignalsSpec(Spec, frozen=True, kw_only=True):
    events: EventClassesSpec = EventClassesSpec()
    facets: dict[str, str] = {}
    activation: list[ActivationStepSpec] = []
    # How many activation steps make a user activated (all of their role's, when it has fewer);
    # unset: all of them. Propensity, metrics (`outcome: activation`) and rules
    # (`activation.activated`) share this one definition.
    activated_after: Annotated[int, msgspec.Meta(ge=1)] | None = None
    friction: FrictionSpec = FrictionSpec()
    lifecycle: list[LifecycleStageSpec] = []
    plans: dict[str, PlanSpec] = {}
    features: dict[str, FeatureSpec] = {}
    confidence_floor: float = 0.5
    # Consent: each purpose and the signals resting on it (a signal no purpose names is
    # necessary), and the personalization levels as named sets of purposes.
    purposes: dict[str, PurposeSpec] = {}
    consent_presets: dict[Literal["full", "basic", "off"], list[str]] = {}
    # Segment's consent categories (`context.consent.categoryPreferences` on events) → the
    # purposes each grants or withholds
    consent_categories: dict[str, list[str]] = {}


# --- presets.yaml -------------------------------------------------------------------------------


class IntegrationSpec(Spec, frozen=True, kw_only=True):
    name: str
    connect_href: str = ""


class TemplateRefSpec(Spec, frozen=True, kw_only=True):
    id: str
    name: str
    href: str = ""


class IndustrySpec(Spec, frozen=True, kw_only=True):
    label: str
    terms: dict[str, str] = {}
    default_fields: list[str] = []
    reports: list[str] = []
    integrations: list[str] = []
    templates: list[TemplateRefSpec] = []


class PresetsSpec(Spec, frozen=True, kw_only=True):
    integrations: dict[str, IntegrationSpec] = {}
    industries: dict[str, IndustrySpec] = {}
    default: IndustrySpec


# --- help.yaml ----------------------------------------------------------------------------------


class HelpArticleSpec(Spec, frozen=True, kw_only=True):
    id: str
    title: str
    href: str
    kind: Literal["article", "lesson", "video"] = "article"
    features: list[str] = []
    summary: str = ""


class HelpSpec(Spec, frozen=True, kw_only=True):
    articles: list[HelpArticleSpec] = []


# --- screens/*.yaml -----------------------------------------------------------------------------


class ViewSpec(Spec, frozen=True, kw_only=True):
    id: str
    label: str
    roles: list[str] = []


class WhySpec(Spec, frozen=True, kw_only=True):
    summary: str
    drivers: list[str] = []


class SuppressSpec(Spec, frozen=True, kw_only=True):
    cooldown_days: float = 7.0  # after a dismissal
    hide_when_completed: bool = True
    max_views: int | None = None  # total views before the widget rests


class FallbackSpec(Spec, frozen=True, kw_only=True):
    type: str
    props: dict[str, Any]


class FeedSpec(Spec, frozen=True, kw_only=True):
    """A widget fed by the recommender: its items come from `source`, best first.

    The widget is shown only when the recommender answered with at least `min` candidates; it
    shows at most `max`. Its props and "why" read them as `feed.items`, `feed.top`, `feed.reason`,
    `feed.confidence` and `feed.count`, and its why.source is `recommender`.
    """

    source: Literal["recs.integrations", "recs.templates", "recs.help"]
    min: int = 1
    max: int = 3


class WidgetSpec(Spec, frozen=True, kw_only=True):
    id: str
    type: str
    when: str | bool = "true"  # a CEL expression; plain YAML true/false are accepted too
    priority: int = 50
    confidence: float | str = 0.8
    views: list[str] = []
    in_default: bool = False  # also shown when the layout is not personalized
    why: WhySpec
    props: dict[str, Any]
    suppress: SuppressSpec = SuppressSpec()
    fallback: Literal["drop"] | FallbackSpec = "drop"
    feed: FeedSpec | None = None
    replaces: list[str] = []  # widgets of this screen that this one stands in for when shown


class SlotSpec(Spec, frozen=True, kw_only=True):
    id: str
    max: int = 3
    widgets: list[WidgetSpec] = []


class RemovedScreenSpec(Spec, frozen=True, kw_only=True):
    """A screen taken out of service on purpose (a file under screens/ that says only this): a
    running server drops it on reload. Without one, a reload that would drop a screen being
    served keeps the last good version."""

    screen: str
    removed: Literal[True]
    note: str = ""


class ScreenSpec(Spec, frozen=True, kw_only=True):
    screen: str
    views: list[ViewSpec]
    default_view: str
    slots: list[SlotSpec]
