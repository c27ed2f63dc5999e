"""What the recommender offers one decision: candidates for layout slots, with their reasons. Pure.

The edge (app.serving.recommendations) computes a `Recs` within the decision's time budget and
passes it in; the engine only reads it. Layout rules see it as `recs.*`, and a widget with a
`feed` shows its items (see `feed_of`). A `Recs` that is not `available` (the recommender is off,
down or over its budget) leaves every fed widget out, so the rules-only widgets fill the screen
instead.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

RecsStatus = Literal["ok", "off", "down", "over_budget", "not_ready"]
FEEDS = ("integrations", "templates", "help")


class RecDriver(msgspec.Struct, frozen=True, array_like=True):
    signal: str
    value: str | int | float


class RecItem(msgspec.Struct, frozen=True, kw_only=True):
    """One candidate: a catalog item, its score and confidence, and the evidence for its "why".

    `props` are the fields the widget shows (for instance `id`, `name`, `connect_href` and
    `peer_adoption` of an integration); `reason` is the sentence that explains it.
    """

    id: str
    kind: str
    score: float
    confidence: float
    reason: str
    drivers: tuple[RecDriver, ...] = ()
    props: dict[str, Any] = {}


class Recs(msgspec.Struct, frozen=True, kw_only=True):
    status: RecsStatus = "off"
    integrations: tuple[RecItem, ...] = ()
    templates: tuple[RecItem, ...] = ()
    help: tuple[RecItem, ...] = ()
    detail: str = ""  # why the recommender did not answer, for the trace and the inspector

    @property
    def available(self) -> bool:
        return self.status == "ok"

    def feed(self, name: str) -> tuple[RecItem, ...]:
        items: tuple[RecItem, ...] = getattr(self, name)
        return items


NO_RECS = Recs()


def recs_context(recs: Recs | None) -> dict[str, Any]:
    """The `recs` variable of layout rules."""
    recs = recs or NO_RECS
    out: dict[str, Any] = {"available": recs.available, "status": recs.status}
    for name in FEEDS:
        out[name] = [_item(i) for i in recs.feed(name)]
    return out


def _item(item: RecItem) -> dict[str, Any]:
    return {
        **item.props,
        "id": item.id,
        "kind": item.kind,
        "score": item.score,
        "confidence": item.confidence,
        "reason": item.reason,
    }


def feed_of(recs: Recs | None, name: str, limit: int) -> dict[str, Any]:
    """The `feed` variable of a fed widget: its items (best first, at most `limit`), the top one,
    the reason of the item the recommender is surest of, and the confidence that the widget is
    worth showing: the chance that at least one item is taken up, each counting with its own."""
    items = list((recs or NO_RECS).feed(name)[:limit])
    top = items[0] if items else None
    # The reason quoted is the best-evidenced item's: the one the recommender is surest of.
    best = max(items, key=lambda i: i.confidence) if items else None
    none_taken = 1.0
    for item in items:
        none_taken *= 1.0 - min(max(item.confidence, 0.0), 1.0)
    return {
        "items": [_item(i) for i in items],
        "count": len(items),
        "top": _item(top) if top else {},
        "reason": best.reason if best else "",
        "confidence": round(1.0 - none_taken, 3) if items else 0.0,
        "drivers": [{"signal": d.signal, "value": d.value} for d in best.drivers] if best else [],
    }


def sample_feed(name: str, sample_items: list[dict[str, Any]]) -> dict[str, Any]:
    """A feed for checking layouts when they load: the given sample items as candidates."""
    items = tuple(
        RecItem(
            id=str(p.get("id", "")),
            kind=str(p.get("kind", name)),
            score=0.5,
            confidence=0.8,
            reason="Teams like yours use this.",
            props=p,
        )
        for p in sample_items
    )
    recs = Recs(
        status="ok",
        integrations=items if name == "integrations" else (),
        templates=items if name == "templates" else (),
        help=items if name == "help" else (),
    )
    return feed_of(recs, name, len(items))
