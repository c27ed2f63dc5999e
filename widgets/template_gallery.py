"""`template_gallery`: templates teams like this one use."""

from __future__ import annotations

from widgets.base import Wire


class TemplateOffer(Wire, frozen=True):
    id: str
    name: str
    href: str
    reason: str = ""


class TemplateGalleryProps(Wire, frozen=True):
    title: str
    templates: list[TemplateOffer]


TYPE = "template_gallery"
PROPS = TemplateGalleryProps
ONCE_PER_SCREEN: str | None = None
