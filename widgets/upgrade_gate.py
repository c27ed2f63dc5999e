"""`upgrade_gate`: a contextual upgrade at the moment of need, with ROI and a way back."""

from __future__ import annotations

from typing import Literal

from widgets.base import Link, Wire


class Trigger(Wire, frozen=True):
    kind: Literal["limit", "feature"]
    name: str


class UpgradeGateProps(Wire, frozen=True):
    trigger: Trigger
    title: str
    roi: str
    cta: Link
    back: Link


TYPE = "upgrade_gate"
PROPS = UpgradeGateProps
# Modal-style: it takes the user's attention over the screen, so a screen never shows two.
ONCE_PER_SCREEN: str | None = "modal"
