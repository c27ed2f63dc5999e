"""Catalog items, the text that gets embedded, content hashes, plan gating, and the demo catalog."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from app.demo.catalog import demo_catalog, demo_items
from app.demo.population import (
    DEFAULT_INTEGRATIONS,
    DEFAULT_TEMPLATES,
    EXTRA_INTEGRATIONS,
    FEATURES,
    HELP_ARTICLES,
    INDUSTRIES,
    INDUSTRY_INTEGRATIONS,
    INDUSTRY_TEMPLATES,
)
from recommender.catalog import (
    KINDS,
    Catalog,
    CatalogItem,
    content_hash,
    decode_items,
    embed_changed,
    embedding_text,
    off_plan,
    on_plan,
)
from recommender.embedder import HashingEmbedder

LAYOUTS = Path(__file__).resolve().parents[2] / "layouts"

SLACK = CatalogItem(
    id="slack",
    kind="integration",
    title="Slack",
    description="Post alerts into Slack channels.",
    href="/settings/integrations/slack",
    tags=("integrations", "chat"),
    roles=("admin",),
)


def _yaml(name: str) -> Any:
    return yaml.safe_load((LAYOUTS / name).read_text())


def test_embedding_text_says_what_the_item_is_and_for_whom() -> None:
    text = embedding_text(SLACK)
    assert text.startswith("Integration: Slack.")
    assert "Post alerts into Slack channels." in text
    assert "chat" in text
    assert "admins" in text
    assert "/settings" not in text  # links are not meaning


def test_content_hash_changes_only_with_the_embedded_text_or_the_model() -> None:
    base = content_hash(SLACK, "m1")
    assert base == content_hash(SLACK, "m1")
    assert content_hash(msgspec.structs.replace(SLACK, href="/elsewhere"), "m1") == base
    assert content_hash(msgspec.structs.replace(SLACK, description="Other."), "m1") != base
    assert content_hash(msgspec.structs.replace(SLACK, tags=("integrations",)), "m1") != base
    assert content_hash(SLACK, "m2") != base


def test_unchanged_items_are_never_embedded_again() -> None:
    embedder = HashingEmbedder(32)
    items = demo_items()[:20]
    first = embed_changed(items, embedder, {})
    assert first.ids == [i.id for i in items]
    assert first.vectors.shape == (20, 32)
    assert embedder.calls == 20
    stored = dict(zip(first.ids, first.hashes, strict=True))
    again = embed_changed(items, embedder, stored)
    assert again.ids == []
    assert again.vectors.shape == (0, 32)
    assert again.unchanged == [i.id for i in items]
    assert embedder.calls == 20
    edited = [*items[:5], msgspec.structs.replace(items[5], title="Renamed"), *items[6:]]
    third = embed_changed(edited, embedder, stored)
    assert third.ids == [items[5].id]
    assert embedder.calls == 21


def test_plans_gate_templates_integrations_and_features_but_not_help() -> None:
    features = {"reports", "templates", "automations", "integrations", "sso"}
    free = {"reports", "templates"}
    catalog = demo_catalog()
    assert not on_plan(catalog["slack"], free, features)
    assert on_plan(catalog["slack"], free | {"integrations"}, features)
    assert not on_plan(catalog["appointment_reminders"], free, features)  # needs automations
    assert on_plan(catalog["patient_intake"], free, features)
    assert not on_plan(catalog["sso"], free, features)
    assert on_plan(catalog["kb_sso_setup"], free, features)  # anyone may read help
    gone = off_plan(catalog.values(), free, features)
    assert {"slack", "appointment_reminders", "sso", "automations"} <= gone
    assert not gone & {"patient_intake", "kb_sso_setup", "reports", "lesson_reports_101"}
    assert "lesson_automations" in gone  # a lesson on a feature the plan lacks


def test_items_decode_from_the_wire_tolerantly() -> None:
    body = b'[{"id": "x", "kind": "lesson", "title": "T", "tags": ["reports"], "future_field": 1}]'
    (item,) = decode_items(body)
    assert item == CatalogItem(id="x", kind="lesson", title="T", tags=("reports",))
    with pytest.raises(msgspec.ValidationError):
        decode_items(b'[{"id": "x", "kind": "video", "title": "T"}]')


def test_catalog_refuses_duplicate_ids_and_looks_up_by_kind() -> None:
    with pytest.raises(ValueError, match="twice"):
        Catalog([SLACK, SLACK])
    catalog = Catalog([SLACK])
    assert catalog.of_kind("integration") == [SLACK]
    assert catalog.of_kind("article") == []
    assert SLACK.for_industry(None)
    assert not SLACK.for_role("maker")


# --- the demo catalog -----------------------------------------------------------------------------


def test_demo_catalog_is_big_varied_and_well_formed() -> None:
    items = demo_items()
    kinds = Counter(i.kind for i in items)
    assert len(items) >= 150
    assert set(kinds) == set(KINDS)
    assert kinds["template"] >= 40
    assert kinds["integration"] >= 30
    assert kinds["article"] + kinds["lesson"] >= 50
    assert len({i.id for i in items}) == len(items)
    assert len({i.title + i.description for i in items}) == len(items)
    for item in items:
        assert item.title.strip()
        assert len(item.description.split()) >= 5, item.id
        assert item.href.startswith("/"), item.id
        assert set(item.industries) <= set(INDUSTRIES), item.id
        assert set(item.roles) <= {"admin", "maker", "end_user"}, item.id
    for industry in INDUSTRIES:  # templates and integrations for every industry
        assert sum(1 for i in items if i.kind == "template" and industry in i.industries) >= 6
        assert sum(1 for i in items if i.kind == "integration" and industry in i.industries) >= 3
    for feature in FEATURES:  # help for every feature
        assert any(i.kind in ("article", "lesson") and feature in i.tags for i in items)


def test_every_id_the_shipped_layouts_name_is_in_the_demo_catalog() -> None:
    catalog = demo_catalog()
    presets = _yaml("presets.yaml")
    help_yaml = _yaml("help.yaml")
    signals = _yaml("signals.yaml")
    wanted: dict[str, str] = {}
    for integration in presets["integrations"]:
        wanted[integration] = "integration"
    for variant in [*presets["industries"].values(), presets["default"]]:
        for integration in variant["integrations"]:
            wanted[integration] = "integration"
        for template in variant["templates"]:
            wanted[template["id"]] = "template"
    for article in help_yaml["articles"]:
        wanted[article["id"]] = "lesson" if article["kind"] in ("lesson", "video") else "article"
    for feature in signals["features"]:
        wanted[feature] = "feature"
    for plan in signals["plans"].values():
        for feature in plan["features"]:
            wanted[feature] = "feature"
    for article in help_yaml["articles"]:
        for feature in article["features"]:
            wanted[feature] = "feature"
    missing = sorted(i for i in wanted if i not in catalog)
    assert not missing, f"not in the demo catalog: {missing}"
    wrong = sorted(i for i, kind in wanted.items() if catalog[i].kind != kind)
    assert not wrong, f"of another kind in the demo catalog: {wrong}"


def test_every_item_the_demo_population_uses_is_in_the_demo_catalog() -> None:
    catalog = demo_catalog()
    used = {
        *(i for ids in INDUSTRY_INTEGRATIONS.values() for i in ids),
        *DEFAULT_INTEGRATIONS,
        *EXTRA_INTEGRATIONS,
        *(t for ids in INDUSTRY_TEMPLATES.values() for t in ids),
        *DEFAULT_TEMPLATES,
        *(a for articles in HELP_ARTICLES.values() for a in articles),
        *FEATURES,
    }
    assert sorted(used - set(catalog)) == []
    for topic, articles in HELP_ARTICLES.items():
        for article in articles:
            if topic in FEATURES:
                assert topic in catalog[article].tags, article
