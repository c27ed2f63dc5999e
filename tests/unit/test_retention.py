"""Retention windows: which window an event gets, when a month expires, and retention.yaml's
problems at file:line:col."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.config.layouts import LayoutConfigError, load_layouts
from app.engine.retention import Retention, expired, month_start, parse_window, stored
from tests.paths import LAYOUTS_DIR

WINDOWS = Retention(default_days=730, by_event={"page": 90, "widget_viewed": 30, "signed_up": 0})


def test_an_event_gets_its_names_window_then_its_call_types_then_the_default() -> None:
    assert WINDOWS.days_for("track", "widget_viewed") == 30
    assert WINDOWS.days_for("track", "signed_up") == 0  # kept, whatever the default
    assert WINDOWS.days_for("track", "feature_used") == 730
    assert WINDOWS.days_for("page", "widget_viewed") == 90  # a page's name is not a track name
    assert WINDOWS.days_for("identify", None) == 730


def test_a_month_expires_once_its_last_instant_is_older_than_the_window() -> None:
    may = month_start(datetime(2026, 5, 31, 23, 59, tzinfo=UTC))
    assert may == datetime(2026, 5, 1, tzinfo=UTC)
    assert not expired(30, may, datetime(2026, 6, 30, 23, 59, tzinfo=UTC))
    assert expired(30, may, datetime(2026, 7, 1, tzinfo=UTC))
    assert not expired(0, may, datetime(2099, 1, 1, tzinfo=UTC))  # kept
    december = month_start(datetime(2026, 12, 15, tzinfo=UTC))
    assert not expired(1, december, datetime(2027, 1, 1, 23, tzinfo=UTC))
    assert expired(1, december, datetime(2027, 1, 2, tzinfo=UTC))  # the year turns
    assert stored(30, datetime(2026, 5, 2, tzinfo=UTC), datetime(2026, 6, 30, tzinfo=UTC))
    assert not stored(30, datetime(2026, 5, 2, tzinfo=UTC), datetime(2026, 7, 2, tzinfo=UTC))


@pytest.mark.parametrize(("text", "days"), [
    ("keep", 0), ("1d", 1), ("395d", 395), ("36500d", 36500), ("0d", None), ("30", None),
    ("36501d", None), ("1w", None), (" 30d", None)])  # fmt: skip
def test_a_window_is_keep_or_days(text: str, days: int | None) -> None:
    assert parse_window(text) == days


def test_a_bad_window_is_pointed_at(tmp_path: Path) -> None:
    target = tmp_path / "layouts"
    shutil.copytree(LAYOUTS_DIR, target)
    path = target / "retention.yaml"
    text = path.read_text().replace("screen: 395d", "screen: 13 months")
    path.write_text(text.replace("dedup_days: 7 ", "dedup_days: 0 "))
    with pytest.raises(LayoutConfigError) as info:
        load_layouts(target)
    problems = sorted(str(p) for p in info.value.problems)
    lines = text.splitlines()
    dedup = next(i for i, line in enumerate(lines) if "dedup_days" in line) + 1
    screen = next(i for i, line in enumerate(lines) if "screen: 13" in line) + 1
    assert problems == [
        f"layouts/retention.yaml:{dedup}:15: expected 1 to 90 days",
        f"layouts/retention.yaml:{screen}:13: expected a window: 'keep' or a number of days"
        " such as '90d' (at most 36500d)",
    ]


def test_the_shipped_windows_load() -> None:
    retention = load_layouts(LAYOUTS_DIR).retention
    assert retention.days_for("page", "Home") == 395
    assert retention.days_for("track", "feature_used") == 0
