"""The descriptor's JSON Schema, as committed in widgets/layout.schema.json (`cairn schema`)."""

from __future__ import annotations

from typing import Any

import msgspec

from widgets import SCHEMA_VERSION, WIDGET_KINDS, LayoutDescriptor, once_per_screen

ONCE_PER_SCREEN_KEY = "x-cairn-once-per-screen"


def layout_json_schema() -> dict[str, Any]:
    """The schema generated from the widget types, with the screen rule clients apply too.

    `x-cairn-once-per-screen` maps a widget type to its group: a screen shows at most one widget
    of each group, after fallbacks are applied. It is given at the top level (for clients that
    read one table, such as the web SDK's build) and on each widget type's own schema.
    """
    schema: dict[str, Any] = msgspec.json.schema(LayoutDescriptor)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://cairn.dev/schema/layout/v1.json"
    schema["title"] = f"Cairn layout descriptor, schema version {SCHEMA_VERSION}"
    schema[ONCE_PER_SCREEN_KEY] = once_per_screen()
    defs: dict[str, Any] = schema["$defs"]
    for name, kind in WIDGET_KINDS.items():
        title = kind.widget.__name__
        if kind.once_per_screen is not None:
            defs[title][ONCE_PER_SCREEN_KEY] = kind.once_per_screen
        assert defs[title]["properties"]["type"]["enum"] == [name]
    return schema
