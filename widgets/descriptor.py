"""The layout descriptor: what `GET /v1/layouts/{screen}` returns, schema version 1.

Each widget type is a tagged Struct (tag field `type`) holding that type's props, so the JSON Schema
generated from these types is a `oneOf` with a discriminator that mobile clients can code against.
"""

from __future__ import annotations

from typing import Any, Literal

from widgets.base import Why, Wire
from widgets.checklist import ChecklistProps
from widgets.help_tip import HelpTipProps
from widgets.integration_prompt import IntegrationPromptProps
from widgets.next_step_card import NextStepCardProps
from widgets.shortcut_grid import ShortcutGridProps
from widgets.template_gallery import TemplateGalleryProps
from widgets.upgrade_gate import UpgradeGateProps

SCHEMA_VERSION = 1

FlagValue = bool | int | float | str | dict[str, Any] | list[Any] | None


class _WidgetId(Wire, frozen=True, tag_field="type"):
    id: str


class WidgetBase(_WidgetId, frozen=True, kw_only=True):
    """Fields every widget carries: its id, its "why this", and what to show instead."""

    why: Why
    fallback: Literal["drop"] | Widget = "drop"


class ShortcutGrid(WidgetBase, frozen=True, tag="shortcut_grid"):
    props: ShortcutGridProps


class NextStepCard(WidgetBase, frozen=True, tag="next_step_card"):
    props: NextStepCardProps


class Checklist(WidgetBase, frozen=True, tag="checklist"):
    props: ChecklistProps


class IntegrationPrompt(WidgetBase, frozen=True, tag="integration_prompt"):
    props: IntegrationPromptProps


class UpgradeGate(WidgetBase, frozen=True, tag="upgrade_gate"):
    props: UpgradeGateProps


class HelpTip(WidgetBase, frozen=True, tag="help_tip"):
    props: HelpTipProps


class TemplateGallery(WidgetBase, frozen=True, tag="template_gallery"):
    props: TemplateGalleryProps


Widget = (
    ShortcutGrid
    | NextStepCard
    | Checklist
    | IntegrationPrompt
    | UpgradeGate
    | HelpTip
    | TemplateGallery
)


class SlotDescriptor(Wire, frozen=True):
    id: str
    widgets: list[Widget]


class ViewOption(Wire, frozen=True):
    id: str
    label: str


class ViewDescriptor(Wire, frozen=True):
    id: str
    label: str
    options: list[ViewOption] = []


class PresetsDescriptor(Wire, frozen=True):
    industry: str
    terms: dict[str, str] = {}
    default_fields: list[str] = []
    reports: list[str] = []


class LayoutDescriptor(Wire, frozen=True):
    schema_version: int
    screen: str
    layout: str
    decision_id: str
    generated_at: str
    personalized: bool
    degraded: bool
    view: ViewDescriptor
    presets: PresetsDescriptor | None
    slots: list[SlotDescriptor]
    # The flags marked `client: true` in flags.yaml, with this user's values (any JSON value).
    flags: dict[str, FlagValue] = {}
    # In the global holdout: the default layout, kept unpersonalized to measure personalization.
    holdout: bool = False
