"""`next_step_card`: the single most valuable next step, with progress and a deep link."""

from __future__ import annotations

from widgets.base import Link, Wire


class Progress(Wire, frozen=True):
    done: int
    total: int


class NextStepCardProps(Wire, frozen=True):
    title: str
    body: str
    cta: Link
    progress: Progress | None = None
    dismissible: bool = True


TYPE = "next_step_card"
PROPS = NextStepCardProps
# The single most valuable next step: a screen shows one, never a choice of several.
ONCE_PER_SCREEN: str | None = "next_step"
