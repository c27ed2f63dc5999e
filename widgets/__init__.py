"""Widget types of the layout descriptor: one module per type, each with its props Struct.

A widget type's id is the same in layout YAML, Python, the JSON Schema and the web SDK.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from widgets import (
    checklist,
    help_tip,
    integration_prompt,
    next_step_card,
    shortcut_grid,
    template_gallery,
    upgrade_gate,
)
from widgets.descriptor import (
    SCHEMA_VERSION,
    LayoutDescriptor,
    SlotDescriptor,
    Widget,
    WidgetBase,
)


@dataclass(frozen=True, slots=True)
class WidgetKind:
    """What the engine needs to know of a widget type."""

    name: str
    props: type[msgspec.Struct]
    widget: type[Any]  # the tagged WidgetBase subclass
    # A screen shows at most one widget of this group ("next_step": the one next step; "modal":
    # modal-style widgets, never stacked); None: no such limit. The engine, the server's
    # negotiation of fallbacks and the web SDK all apply this one rule, read from here (the
    # JSON Schema carries it as `x-cairn-once-per-screen`).
    once_per_screen: str | None


def _kinds() -> dict[str, WidgetKind]:
    modules = (
        shortcut_grid,
        next_step_card,
        checklist,
        integration_prompt,
        upgrade_gate,
        help_tip,
        template_gallery,
    )
    by_tag = {cls.__struct_config__.tag: cls for cls in WidgetBase.__subclasses__()}
    return {
        m.TYPE: WidgetKind(
            name=m.TYPE, props=m.PROPS, widget=by_tag[m.TYPE], once_per_screen=m.ONCE_PER_SCREEN
        )
        for m in modules
    }


WIDGET_KINDS: dict[str, WidgetKind] = _kinds()


def once_per_screen() -> dict[str, str]:
    """Widget type → the group of which a screen shows at most one (types without a limit are
    left out)."""
    return {
        name: kind.once_per_screen
        for name, kind in WIDGET_KINDS.items()
        if kind.once_per_screen is not None
    }


__all__ = [
    "SCHEMA_VERSION",
    "WIDGET_KINDS",
    "LayoutDescriptor",
    "SlotDescriptor",
    "Widget",
    "WidgetBase",
    "WidgetKind",
    "once_per_screen",
]
