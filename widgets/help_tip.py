"""`help_tip`: adaptive help triggered by friction."""

from __future__ import annotations

from typing import Literal

from widgets.base import Wire


class Article(Wire, frozen=True):
    id: str
    title: str
    href: str
    kind: Literal["article", "lesson", "video"] = "article"


class HelpTipProps(Wire, frozen=True):
    title: str
    body: str
    article: Article
    trigger: str = ""


TYPE = "help_tip"
PROPS = HelpTipProps
ONCE_PER_SCREEN: str | None = None
