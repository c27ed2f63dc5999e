"""An installed Cairn (a wheel, not this checkout) carries and serves the built web SDK."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "web_sdk" / "dist"
ASSETS = (
    "cairn.min.js",
    "cairn.core.min.js",
    "cairn.preferences.min.js",
    "cairn.css",
    "admin/metrics.js",
)
TYPES = ROOT / "web_sdk" / "src" / "cairn.d.ts"

pytestmark = pytest.mark.integration

# Run from the unpacked wheel: read each asset the way the SDK routes do.
PROBE = """
import json, app, app.http.ops as ops
out = {"app": app.__file__, "assets": {}}
for name in %r:
    out["assets"][name] = (ops.SDK_ASSETS / name).read_bytes().hex()
out["script"] = ops._script("cairn.min.js").content.hex()
import importlib.resources as r
out["types"] = (r.files("app.http") / "cairn.d.ts").read_bytes().hex()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Cairn built as a wheel and unpacked as pip would install it, away from the checkout.
    The sources are copied first, so that the build leaves nothing in the checkout."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "node_modules")
    for tree in ("app", "widgets", "recommender", "web_sdk/dist", "web_sdk/src"):
        shutil.copytree(ROOT / tree, source / tree, symlinks=True, ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
         "--quiet", "--wheel-dir", str(tmp / "dist")],
        check=True,
        capture_output=True,
        cwd=tmp,
    )  # fmt: skip
    (wheel,) = (tmp / "dist").glob("cairn-*.whl")
    site = tmp / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site


def test_the_wheel_carries_the_built_sdk_templates_and_migrations(installed: Path) -> None:
    for name in ASSETS:
        assert (installed / "app" / "http" / "sdk" / name).read_bytes() == (
            DIST / name
        ).read_bytes()
    assert list((installed / "app" / "storage" / "migrations").glob("*.sql"))
    assert (installed / "app" / "http" / "templates" / "admin_why.html").is_file()
    assert (installed / "app" / "demo" / "templates" / "demo.html").is_file()
    assert (installed / "widgets" / "layout.schema.json").is_file()
    assert (installed / "app" / "http" / "cairn.d.ts").read_bytes() == TYPES.read_bytes()


def test_the_installed_package_serves_the_sdk_from_itself(installed: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(installed)}
    result = subprocess.run(
        [sys.executable, "-c", PROBE % (ASSETS,)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,  # not the checkout
        env=env,
    )
    found = json.loads(result.stdout)
    assert Path(found["app"]).is_relative_to(installed)  # the installed copy, not the checkout
    for name in ASSETS:
        assert bytes.fromhex(found["assets"][name]) == (DIST / name).read_bytes()
    assert bytes.fromhex(found["script"]) == (DIST / "cairn.min.js").read_bytes()
    assert bytes.fromhex(found["types"]) == TYPES.read_bytes()
