"""`shortcut_grid`: the role-based home's shortcuts."""

from __future__ import annotations

from widgets.base import Wire


class Shortcut(Wire, frozen=True):
    label: str
    href: str
    icon: str = ""


class ShortcutGridProps(Wire, frozen=True):
    title: str
    items: list[Shortcut]


TYPE = "shortcut_grid"
PROPS = ShortcutGridProps
ONCE_PER_SCREEN: str | None = None
