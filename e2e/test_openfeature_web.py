"""OpenFeature's web SDK and OFREP web provider in Debian's Chromium against `cairn serve`.

The page bundles `@openfeature/web-sdk` and `@openfeature/ofrep-web-provider` (esbuild, from
web_sdk's dev tools) and authenticates as a browser does: the publishable key and the user's
hash. Nothing is mocked: the provider's own fetches reach Cairn's OFREP endpoints.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Page, Response

from app.serving.identity import user_hash
from e2e.conftest import Server
from e2e.page_helpers import known_user

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "web_sdk"
ENTRY = """
import { OpenFeature } from '@openfeature/web-sdk';
import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';
window.OpenFeature = OpenFeature;
window.OFREPWebProvider = OFREPWebProvider;
"""


@pytest.fixture(scope="module")
def openfeature_bundle(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("openfeature") / "openfeature.js"
    subprocess.run(
        [str(WEB / "node_modules/.bin/esbuild"), "--bundle", "--format=iife",
         "--loader:.js=js", f"--outfile={out}", "--log-level=warning"],
        input=ENTRY.encode(), cwd=WEB, check=True,
    )  # fmt: skip
    return out.read_text(encoding="utf-8")


def open_harness(page: Page, server: Server, bundle: str) -> None:
    """A page of Cairn's origin (as a host app's page would be with CORS) with the bundle."""
    url = f"{server.base}/openfeature-harness.html"
    page.route(
        url,
        lambda route: route.fulfill(
            content_type="text/html; charset=utf-8",
            body=f"<!doctype html><title>OpenFeature</title><script>{bundle}</script>",
        ),
    )
    page.goto(url)


def test_the_web_sdk_evaluates_client_flags_for_a_verified_user(
    page: Page, server: Server, openfeature_bundle: str
) -> None:
    tenant, user = f"ofw-{uuid.uuid4().hex[:8]}", "admin1"
    known_user(server, tenant, user, role="admin", plan="trial", seats=8)
    open_harness(page, server, openfeature_bundle)
    statuses: list[int] = []

    def seen(response: Response) -> None:
        if response.url.endswith("/ofrep/v1/evaluate/flags"):
            statuses.append(response.status)

    page.on("response", seen)
    result = page.evaluate(
        """async ([key, hash, tenant, user]) => {
          const provider = new OFREPWebProvider({
            baseUrl: location.origin,
            headers: [["Authorization", "Bearer " + key], ["X-Cairn-User-Hash", hash]],
            cacheMode: "disabled", changeDetection: "polling", pollInterval: 300,
          });
          await OpenFeature.setContext({targetingKey: user, tenant_id: tenant});
          await OpenFeature.setProviderAndWait(provider);
          const client = OpenFeature.getClient();
          const editor = client.getBooleanDetails("new_editor", false);
          const style = client.getStringDetails("checklist_style", "none");
          const hidden = client.getBooleanDetails("adaptive_help", false);
          const mismatch = client.getNumberDetails("checklist_style", 7);
          await new Promise((resolve) => setTimeout(resolve, 1500));
          return {editor, style, hidden, mismatch};
        }""",
        [
            server.settings.publishable_key,
            user_hash(server.settings.identity_secret, tenant, user),
            tenant,
            user,
        ],
    )
    editor = result["editor"]
    assert (editor["value"], editor["variant"], editor["reason"]) == (
        True, "on", "TARGETING_MATCH"
    )  # fmt: skip
    assert (result["style"]["value"], result["style"]["reason"]) == ("full", "DEFAULT")
    assert result["hidden"]["value"] is False
    assert result["hidden"]["errorCode"] == "FLAG_NOT_FOUND"  # server-only flags stay there
    assert result["mismatch"]["value"] == 7
    assert result["mismatch"]["errorCode"] == "TYPE_MISMATCH"
    # The first bulk evaluation is answered in full; the polls after it, with its ETag, are 304s.
    assert statuses[0] == 200
    assert 304 in statuses[1:], statuses


def test_a_wrong_user_hash_leaves_the_web_sdk_on_its_defaults(
    page: Page, server: Server, openfeature_bundle: str
) -> None:
    tenant = f"ofw-{uuid.uuid4().hex[:8]}"
    known_user(server, tenant, "admin1", role="admin", plan="trial", seats=8)
    open_harness(page, server, openfeature_bundle)
    result = page.evaluate(
        """async ([key, tenant]) => {
          const provider = new OFREPWebProvider({
            baseUrl: location.origin, cacheMode: "disabled",
            headers: [["Authorization", "Bearer " + key], ["X-Cairn-User-Hash", "00"]],
          });
          await OpenFeature.setContext({targetingKey: "admin1", tenant_id: tenant});
          let failed = null;
          try { await OpenFeature.setProviderAndWait(provider); }
          catch (e) { failed = String(e); }
          const got = OpenFeature.getClient().getBooleanDetails("new_editor", false);
          return {failed, value: got.value, errorCode: got.errorCode || null};
        }""",
        [server.settings.publishable_key, tenant],
    )
    assert result["value"] is False  # the caller's default: Cairn said 403
    assert result["failed"] or result["errorCode"], result
