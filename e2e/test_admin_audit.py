"""The admin audit page in Chromium: entries listed and filtered, the chain verified, axe-clean."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from e2e.conftest import Server
from e2e.page_helpers import axe

pytestmark = pytest.mark.e2e


def test_the_audit_page_lists_filters_and_verifies(
    page: Page, server: Server, axe_script: Path
) -> None:
    secret = {"Authorization": f"Bearer {server.settings.secret_key}"}
    r = httpx.get(f"{server.base}/v1/users/auditee/export", params={"tenant_id": "audit-co"},
                  headers=secret)  # fmt: skip
    assert r.status_code == 200
    token = base64.b64encode(f"{server.settings.secret_key}:".encode()).decode()
    page.context.set_extra_http_headers({"Authorization": f"Basic {token}"})
    response = page.goto(f"{server.base}/admin/audit")
    assert response is not None and response.status == 200
    rows = page.get_by_role("row")
    expect(rows.filter(has_text="user.exported").first).to_contain_text("audit-co")
    expect(rows.filter(has_text="layouts.loaded").first).to_be_visible()
    # Filter by one user: only their entries, by pseudonym.
    page.get_by_label("Tenant", exact=True).fill("audit-co")
    page.get_by_label("User id", exact=True).fill("auditee")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("table")).to_contain_text("user.exported")
    expect(page.get_by_role("table")).not_to_contain_text("layouts.loaded")
    assert "auditee" not in page.get_by_role("table").inner_text()
    page.get_by_role("button", name="Verify the chain").click()
    expect(page.get_by_role("status")).to_contain_text("Intact:")
    assert axe(page, axe_script) == []
