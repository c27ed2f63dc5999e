"""The committed SDK bundles (web_sdk/dist) are fresh and the core stays within its size budget.

With Node.js and the SDK's tools installed (`make node`), the bundles are rebuilt and compared byte
for byte. Without them, each bundle's first comment names the SHA-256 of what it was built from,
which must be today's web_sdk/src modules and the once-per-screen rule of the published schema.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Page

from e2e.conftest import ROOT

pytestmark = pytest.mark.e2e

SDK = ROOT / "web_sdk"
SCHEMA = ROOT / "widgets" / "layout.schema.json"
CORPUS = ROOT / "tests" / "golden" / "descriptors"
BUNDLES = ("cairn.min.js", "cairn.core.min.js", "cairn.preferences.min.js", "cairn.css")
CORE_BUDGET = 6 * 1024  # bytes, gzip -9: the web SDK core's budget


def source_digest(sdk: Path = SDK, schema: Path = SCHEMA) -> str:
    """What web_sdk/build.mjs names in each bundle's banner: the SHA-256 of every src/*.js in name
    order (name, NUL, content, NUL), then the schema's once-per-screen rule as compact JSON."""
    digest = hashlib.sha256()
    for path in sorted((sdk / "src").glob("*.js"), key=lambda p: p.name):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    rule = json.loads(schema.read_text(encoding="utf-8"))["x-cairn-once-per-screen"]
    digest.update(json.dumps(rule, separators=(",", ":"), ensure_ascii=False).encode())
    return digest.hexdigest()


def test_the_bundles_were_built_from_todays_source() -> None:
    digest = source_digest()
    for name in BUNDLES:
        head = (SDK / "dist" / name).read_text(encoding="utf-8")[:200]
        match = re.match(r"/\* cairn\.js sha256:([0-9a-f]{16}) \*/", head)
        assert match, f"dist/{name} does not name its source"
        assert digest.startswith(match.group(1)), f"dist/{name} is stale: run `make sdk`"


def test_the_core_bundle_is_within_its_gzip_budget() -> None:
    core = gzip.compress((SDK / "dist" / "cairn.core.min.js").read_bytes(), compresslevel=9)
    assert len(core) <= CORE_BUDGET, f"core is {len(core)} bytes gzip, budget {CORE_BUDGET}"


def node_or_skip() -> str:
    node = shutil.which("node")
    if node is None or not (SDK / "node_modules" / "esbuild").exists():
        pytest.skip(
            "Node.js or esbuild is not installed (`make node`); the source hash was checked"
        )
    return node


def test_the_bundles_match_a_fresh_build() -> None:
    done = subprocess.run(
        [node_or_skip(), "build.mjs", "--check"],
        cwd=SDK,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def copy_of_the_sdk(tmp_path: Path) -> tuple[Path, Path]:
    """web_sdk (its node_modules linked) and the schema, laid out as in the repository."""
    copy = tmp_path / "web_sdk"
    copy.mkdir()
    for name in ("build.mjs", "package.json", "tsconfig.json"):
        shutil.copy(SDK / name, copy / name)
    for folder in ("src", "admin", "dist"):
        shutil.copytree(SDK / folder, copy / folder)
    (copy / "node_modules").symlink_to(SDK / "node_modules")
    (tmp_path / "widgets").mkdir()
    schema = tmp_path / "widgets" / "layout.schema.json"
    shutil.copy(SCHEMA, schema)
    return copy, schema


def set_screen_rule(schema: Path, rule: dict[str, str]) -> None:
    document = json.loads(schema.read_text(encoding="utf-8"))
    document["x-cairn-once-per-screen"] = rule
    schema.write_text(json.dumps(document), encoding="utf-8")


def build(node: str, copy: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [node, "build.mjs", *args], cwd=copy, capture_output=True, text=True, check=False
    )


def test_a_changed_screen_rule_in_the_schema_makes_the_bundles_stale(tmp_path: Path) -> None:
    node = node_or_skip()
    copy, schema = copy_of_the_sdk(tmp_path)
    assert build(node, copy, "--check").returncode == 0  # the copy builds as the repository does

    rule = json.loads(SCHEMA.read_text(encoding="utf-8"))["x-cairn-once-per-screen"]
    set_screen_rule(schema, {**rule, "help_tip": "modal"})
    done = build(node, copy, "--check")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "does not match a fresh build" in done.stderr
    assert source_digest(copy, schema) != source_digest()


@pytest.mark.parametrize("bundle", ["cairn.min.js", "cairn.core.min.js"])
def test_the_bundles_keep_one_widget_per_group_of_the_schemas_rule(
    page: Page, tmp_path: Path, bundle: str
) -> None:
    """Built with a rule that puts the upgrade gate and the next-step card in one group, the SDK
    shows only the first of them on a screen: it tracks the schema's groups, not widget types."""
    node = node_or_skip()
    copy, schema = copy_of_the_sdk(tmp_path)
    set_screen_rule(schema, {"next_step_card": "modal", "upgrade_gate": "modal"})
    done = build(node, copy)
    assert done.returncode == 0, done.stdout + done.stderr
    case = json.loads((CORPUS / "screen_rules_after_fallbacks.json").read_text(encoding="utf-8"))

    page.set_content('<main><h1>Rule</h1><div id="root"></div></main>')
    page.add_script_tag(path=str(copy / "dist" / bundle))
    shown = page.evaluate(
        """d => {
            const root = document.getElementById('root');
            Cairn.renderDescriptor(root, d, {preview: true});
            return [...root.querySelectorAll('[data-slot]')].map(s => [s.dataset.slot,
                [...s.querySelectorAll(':scope > [data-widget-id]')].map(w => w.dataset.widgetId)]);
        }""",
        case["descriptor"],
    )
    assert shown == [["alerts", ["seat_limit_gate"]], ["shortcuts", ["admin_shortcuts"]]]
