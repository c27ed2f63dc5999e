"""`checklist`: the activation checklist."""

from __future__ import annotations

from widgets.base import Wire


class ChecklistItem(Wire, frozen=True):
    id: str
    label: str
    done: bool
    href: str = ""


class ChecklistProps(Wire, frozen=True):
    title: str
    items: list[ChecklistItem]


TYPE = "checklist"
PROPS = ChecklistProps
ONCE_PER_SCREEN: str | None = None
