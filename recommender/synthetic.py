"""A synthetic interactions data set for evaluating recommenders: clustered users, long-tail items.

Items belong to topics (patient scheduling, lending, incident response…) and sit somewhere along
the topic's journey, from first steps to advanced use; each has a title and description written
from its topic's vocabulary. Popularity within a topic is long-tailed. Users have a main topic and
often a second one; they move along their topics' journeys over time, mostly picking popular items
near where they are, sometimes something popular from anywhere, and they come back to items they
use. Deterministic for a seed.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import numpy as np

from recommender.catalog import CatalogItem

__all__ = ["SyntheticData", "activity_texts", "generate_interactions", "write_csv"]

# topic → (team, nouns, verbs)
# fmt: off
_TOPICS: Final[tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...]] = (
    ("patient scheduling", "clinic front desk",
     ("appointments", "reminders", "no-shows", "waitlists", "check-ins"),
     ("schedule", "confirm", "reschedule")),
    ("clinical records", "care team",
     ("patient charts", "lab results", "referrals", "care plans", "prescriptions"),
     ("review", "route", "document")),
    ("lending", "loan officers",
     ("loan applications", "credit checks", "underwriting decisions", "disbursements",
      "collateral"), ("assess", "approve", "fund")),
    ("compliance", "compliance",
     ("identity checks", "sanctions screening", "regulatory filings", "audits", "policies"),
     ("screen", "file", "attest")),
    ("payments", "finance operations",
     ("invoices", "refunds", "chargebacks", "payouts", "subscriptions"),
     ("reconcile", "collect", "dispute")),
    ("order fulfilment", "warehouse",
     ("orders", "shipments", "returns", "carriers", "packing slips"),
     ("pick", "ship", "track")),
    ("merchandising", "e-commerce marketing",
     ("promotions", "product launches", "discount codes", "campaigns", "product listings"),
     ("launch", "promote", "price")),
    ("inventory", "supply chain",
     ("stock levels", "purchase orders", "suppliers", "warehouses", "reorder points"),
     ("restock", "forecast", "order")),
    ("admissions", "admissions office",
     ("applications", "enrolments", "scholarships", "campus tours", "offers"),
     ("enrol", "admit", "follow up on")),
    ("teaching", "teachers",
     ("lesson plans", "assignments", "grades", "attendance", "parent meetings"),
     ("plan", "grade", "record")),
    ("software delivery", "engineering",
     ("sprints", "releases", "pull requests", "deployments", "feature flags"),
     ("ship", "review", "deploy")),
    ("incident response", "site reliability",
     ("incidents", "on-call rotas", "postmortems", "alerts", "status pages"),
     ("triage", "escalate", "resolve")),
    ("customer support", "support",
     ("tickets", "SLAs", "escalations", "satisfaction surveys", "macros"),
     ("answer", "escalate", "close")),
    ("sales pipeline", "sales",
     ("leads", "deals", "forecasts", "quotes", "territories"),
     ("qualify", "close", "forecast")),
    ("people operations", "HR",
     ("candidates", "new hires", "time off", "performance reviews", "job openings"),
     ("hire", "onboard", "review")),
    ("quality control", "quality",
     ("inspections", "defects", "corrective actions", "batches", "test results"),
     ("inspect", "reject", "correct")),
    ("maintenance", "plant maintenance",
     ("work orders", "machines", "spare parts", "downtime", "service intervals"),
     ("maintain", "repair", "schedule")),
    ("accounting", "accounting",
     ("budgets", "expenses", "month-end close", "ledgers", "accruals"),
     ("close", "approve", "book")),
    ("IT and security", "IT",
     ("access reviews", "single sign-on", "devices", "audit logs", "permissions"),
     ("grant", "revoke", "audit")),
    ("analytics", "data",
     ("dashboards", "KPIs", "metrics", "data exports", "cohort reports"),
     ("measure", "chart", "share")),
)
# fmt: on
_ARTIFACTS: Final = (
    "template",
    "checklist",
    "tracker",
    "dashboard",
    "report",
    "automation",
    "board",
    "workflow",
    "guide",
    "lesson",
)  # fmt: skip
_LEVELS: Final = (
    ("Starter", "Your first", "Basic", "Simple", "Getting started with"),
    ("Weekly", "Team", "Shared", "Standard", "Everyday"),
    ("Advanced", "Automated", "Multi-team", "Audit-ready", "Scaled"),
)
_LEVEL_PHRASES: Final = (
    "for teams setting up for the first time",
    "for the everyday work once the basics are in place",
    "for mature teams that run this at scale",
)


@dataclass(frozen=True)
class SyntheticData:
    rows: list[tuple[str, str, float]]  # (user id, item id, epoch seconds)
    item_texts: dict[str, str]


def _item_text(
    rng: np.random.Generator, topic: int, position: float
) -> tuple[str, str]:  # (title, description)
    name, team, nouns, verbs = _TOPICS[topic]
    level = min(2, int(position * 3))
    noun = nouns[int(rng.integers(len(nouns)))]
    artifact = _ARTIFACTS[int(rng.integers(len(_ARTIFACTS)))]
    prefix = _LEVELS[level][int(rng.integers(len(_LEVELS[level])))]
    title = f"{prefix} {noun} {artifact}"
    other = nouns[int(rng.integers(len(nouns)))]
    verb = verbs[int(rng.integers(len(verbs)))]
    text = (
        f"{title[0].upper()}{title[1:]}: a {artifact} for {team} teams to {verb} {noun} "
        f"and keep {other} on track, {_LEVEL_PHRASES[level]}. Part of {name}."
    )
    return title, text


def generate_interactions(
    rows: int = 100_000,
    *,
    users: int = 5000,
    items: int = 3000,
    seed: int = 3,
    start: datetime = datetime(2026, 1, 5, tzinfo=UTC),
) -> SyntheticData:
    """About `rows` interactions of `users` users with `items` items (counts vary a little)."""
    rng = np.random.default_rng(seed)
    n_topics = len(_TOPICS)
    topic_weight = 1.0 / np.arange(1, n_topics + 1) ** 0.6
    topic_weight /= topic_weight.sum()
    item_topic = rng.choice(n_topics, size=items, p=topic_weight)
    position = rng.random(items)
    # Long tail within each topic: early (introductory) items tend to be popular.
    popularity = np.zeros(items)
    for t in range(n_topics):
        members = np.flatnonzero(item_topic == t)
        order = np.argsort(position[members] + rng.normal(0, 0.35, len(members)))
        rank = np.empty(len(members))
        rank[order] = np.arange(len(members))
        popularity[members] = 1.0 / (rank + 1.0) ** 0.9
    global_p = popularity / popularity.sum()
    texts = {}
    item_ids = [f"item{n:05d}" for n in range(items)]
    for n in range(items):
        texts[item_ids[n]] = _item_text(rng, int(item_topic[n]), float(position[n]))[1]
    by_topic = [np.flatnonzero(item_topic == t) for t in range(n_topics)]

    distinct_target = rows / 1.7  # each distinct item is used 1.7 times on average
    sizes = np.clip(rng.lognormal(0.0, 0.8, users), 0.05, None)
    sizes = np.clip(np.round(sizes / sizes.sum() * distinct_target), 2, 300).astype(int)
    t0 = start.timestamp()
    out: list[tuple[str, str, float]] = []
    for u in range(users):
        main = int(rng.choice(n_topics, p=topic_weight))
        second = int(rng.choice(n_topics, p=topic_weight)) if rng.random() < 0.5 else main
        pace = rng.uniform(0.6, 1.4)
        user_id = f"user{u:05d}"
        now = t0 + rng.uniform(0, 150) * 86_400
        taken: set[int] = set()
        n = int(sizes[u])
        for step in range(n):
            progress = min(1.0, pace * (step + 1) / (n + 1)) + rng.normal(0, 0.08)
            r = rng.random()
            if r < 0.3:
                pool = np.arange(items)
                weights = global_p.copy()
            else:
                pool = by_topic[main if r < 0.85 else second]
                closeness = np.exp(-np.abs(position[pool] - progress) / 0.12)
                weights = popularity[pool] * closeness
            if taken:
                weights = np.where(np.isin(pool, list(taken)), 0.0, weights)
            total = weights.sum()
            if total <= 0:  # the topic is used up: anything popular not used yet
                pool = np.arange(items)
                weights = np.where(np.isin(pool, list(taken)), 0.0, global_p)
                total = weights.sum()
                if total <= 0:
                    break
            item = int(pool[rng.choice(len(pool), p=weights / total)])
            taken.add(item)
            now += rng.exponential(1.5) * 86_400
            out.append((user_id, item_ids[item], now))
            returns = int(rng.geometric(0.6)) - 1  # coming back to it
            out.extend(
                (user_id, item_ids[item], now + rng.exponential(3.0) * 86_400)
                for _ in range(returns)
            )
    return SyntheticData(out, texts)


def write_csv(
    data: SyntheticData, interactions: str | Path, items: str | Path | None = None
) -> None:
    """Write `user_id,item_id,timestamp` (ISO 8601) and optionally `item_id,text`."""
    with Path(interactions).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["user_id", "item_id", "timestamp"])
        for user, item, at in data.rows:
            stamp = datetime.fromtimestamp(math.floor(at), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            writer.writerow([user, item, stamp])
    if items is not None:
        with Path(items).open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["item_id", "text"])
            writer.writerows(sorted(data.item_texts.items()))


def item_ids(data: SyntheticData) -> Sequence[str]:
    return sorted(data.item_texts)


# --------------------------------------------------------------------------------------------------
# Realistic short texts for vector benchmarks and tests: what people do with catalog items.

# fmt: off
_ROLES: Final = (
    "An admin", "A maker", "An end user", "A team lead", "An operations manager", "A new hire",
    "A finance analyst", "An engineer", "A support agent", "A clinic manager", "A teacher",
    "A compliance officer",
)
_SIZES: Final = ("small", "growing", "ten-person", "fifty-seat", "mid-sized", "large", "remote")
_INDUSTRY_WORDS: Final = (
    "healthcare", "fintech", "e-commerce", "education", "software", "manufacturing", "retail",
    "logistics", "nonprofit", "legal", "real estate", "hospitality",
)
_ACTIONS: Final = (
    "set up", "started from", "connected", "read", "asked about", "customized", "shared",
    "automated", "troubleshot", "compared", "turned off", "recommended", "searched for",
    "bookmarked", "came back to", "reviewed",
)
_GOALS: Final = (
    "to save time every week", "before the quarterly review", "after a failed sync",
    "for the new team", "to replace a spreadsheet", "during onboarding", "to pass an audit",
    "because a customer asked", "after hitting a limit", "to cut manual work",
    "for the board meeting", "ahead of a launch", "when a report came back empty",
    "to get alerts sooner", "on the first day", "after an upgrade",
)
_FORMS: Final = (
    "{role} at a {size} {industry} team {action} {title} {goal}.",
    "{title}: {role_l} {action} it {goal}.",
    "How do I use {title} {goal}? We are a {size} {industry} team.",
    "{role} {action} {title} {goal}. {description}",
    "Our {industry} team {action} {title}; {description_l}",
    "{title} {goal} — {size} {industry} team, asked by {role_l}.",
)
# fmt: on


def activity_texts(n: int, items: Sequence[CatalogItem], *, seed: int = 11) -> list[str]:
    """`n` distinct, varied sentences about people using `items` (a product's catalog).

    Built from item titles and descriptions with roles, industries, team sizes, actions and goals,
    so their embeddings cluster by topic the way real product text does.
    """
    rng = np.random.default_rng(seed)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        item = items[int(rng.integers(len(items)))]
        role = _ROLES[int(rng.integers(len(_ROLES)))]
        first_sentence = item.description.split(". ")[0].rstrip(".") + "."
        text = _FORMS[int(rng.integers(len(_FORMS)))].format(
            role=role,
            role_l=role[0].lower() + role[1:],
            size=_SIZES[int(rng.integers(len(_SIZES)))],
            industry=_INDUSTRY_WORDS[int(rng.integers(len(_INDUSTRY_WORDS)))],
            action=_ACTIONS[int(rng.integers(len(_ACTIONS)))],
            title=item.title,
            goal=_GOALS[int(rng.integers(len(_GOALS)))],
            description=first_sentence,
            description_l=first_sentence[0].lower() + first_sentence[1:],
        )
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out
