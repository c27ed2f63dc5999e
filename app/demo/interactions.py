"""The demo population as interactions (user, catalog item, time), for `cairn recs eval`."""

from __future__ import annotations

from typing import Final

from app.demo.catalog import demo_items
from app.demo.population import PopulationSpec, generate
from recommender.evaluate import Interactions, parse_timestamp

# Track events that mean a user adopted a catalog item, and the property naming the item.
ADOPTION_EVENTS: Final[dict[str, str]] = {
    "template_used": "template",
    "integration_connected": "integration",
    "feature_used": "feature",
    "help_article_viewed": "article",
}


def demo_interactions(
    tenants: int = 200, users: int = 2000, events: int = 200_000, seed: int = 7
) -> Interactions:
    """The demo population's adoption events as interactions (user, catalog item, time), each
    user in the group of their tenant."""
    population = generate(PopulationSpec(tenants=tenants, users=users, events=events, seed=seed))
    records: list[tuple[str, str, float]] = []
    groups: dict[str, str] = {}
    for event in population.events():
        if event["type"] != "track":
            continue
        prop = ADOPTION_EVENTS.get(event["event"])
        item = event["properties"].get(prop) if prop else None
        if item:
            records.append((event["userId"], str(item), parse_timestamp(event["timestamp"])))
            groups[event["userId"]] = event["tenantId"]
    return Interactions.from_records(records, [i.id for i in demo_items()], groups)
