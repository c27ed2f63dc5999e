"""`integration_prompt`: connect the top two or three tools, with peer proof."""

from __future__ import annotations

from widgets.base import Wire


class PeerAdoption(Wire, frozen=True):
    share: float
    cohort: str


class IntegrationOffer(Wire, frozen=True):
    id: str
    name: str
    connect_href: str
    peer_adoption: PeerAdoption | None = None


class IntegrationPromptProps(Wire, frozen=True):
    title: str
    integrations: list[IntegrationOffer]


TYPE = "integration_prompt"
PROPS = IntegrationPromptProps
ONCE_PER_SCREEN: str | None = None
