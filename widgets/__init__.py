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
    modal: bool


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
        m.TYPE: WidgetKind(name=m.TYPE, props=m.PROPS, widget=by_tag[m.TYPE], modal=m.MODAL)
        for m in modules
    }


WIDGET_KINDS: dict[str, WidgetKind] = _kinds()

__all__ = [
    "SCHEMA_VERSION",
    "WIDGET_KINDS",
    "LayoutDescriptor",
    "SlotDescriptor",
    "Widget",
    "WidgetBase",
    "WidgetKind",
]
