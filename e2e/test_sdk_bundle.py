"""The committed SDK bundles (web_sdk/dist) are fresh and the core stays within its size budget.

With Node.js and the SDK's tools installed (`make node`), the bundles are rebuilt and compared byte
for byte. Without them, each bundle's first comment names the SHA-256 of what it was built from,
which must be today's web_sdk/src modules.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import shutil
import subprocess

import pytest

from e2e.conftest import ROOT

pytestmark = pytest.mark.e2e

SDK = ROOT / "web_sdk"
BUNDLES = ("cairn.min.js", "cairn.core.min.js", "cairn.css")
CORE_BUDGET = 6 * 1024  # bytes, gzip -9 (PRODUCT.md: web SDK core <= 6 KB gzip)


def source_digest() -> str:
    """What web_sdk/build.mjs names in each bundle's banner: the SHA-256 of every src/*.js in name
    order (name, NUL, content, NUL)."""
    digest = hashlib.sha256()
    for path in sorted((SDK / "src").glob("*.js"), key=lambda p: p.name):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
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
