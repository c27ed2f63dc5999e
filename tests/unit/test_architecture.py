"""The import contracts hold, and they would catch the back-imports Cairn once had.

Each case copies the packages to a scratch directory, adds one import that runs against the
layers, and runs `lint-imports` on the copy: the contract must break, naming the import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        check=False,
        cwd=root,
        env=env,
    )


def test_the_shipped_code_keeps_every_contract() -> None:
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 4 kept, 0 broken." in result.stdout


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("layers")
    for package in ("app", "widgets", "recommender"):
        shutil.copytree(
            ROOT / package,
            root / package,
            symlinks=True,
            ignore=shutil.ignore_patterns("__pycache__", "templates", "migrations", "sdk"),
        )
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


# (module that gains the import, the import, the contract that must break)
BACK_IMPORTS = [
    # Key lookup once imported the HTTP layer's key ring.
    ("app/storage/keys.py", "import app.http.auth", "Layers"),
    # Decisions once raised the HTTP layer's error type.
    ("app/serving/decisions.py", "import app.http.errors", "Layers"),
    # The engine once read the designers' spec types from the config package.
    ("app/engine/model.py", "import app.config.yaml_source", "Layers"),
    # Storage once imported ingestion for the event row type.
    ("app/storage/events.py", "import app.ingest.segment", "Layers"),
    # The HTTP layer serving the demo's pages by importing them.
    ("app/http/ops.py", "import app.demo.routes", "Layers"),
    ("app/engine/signals.py", "import recommender.catalog", "The decision engine is pure"),
    ("app/engine/decide.py", "import numpy", "The decision engine is pure"),
    ("app/engine/decide.py", "import time", "The decision engine is pure"),
    ("recommender/candidates.py", "import app.engine.recs", "The recommender never imports"),
    ("widgets/base.py", "import app.engine.model", "Widgets know nothing of the app"),
]


@pytest.mark.parametrize(("module", "statement", "contract"), BACK_IMPORTS)
def test_a_back_import_breaks_its_contract(
    scratch: Path, module: str, statement: str, contract: str
) -> None:
    path = scratch / module
    original = path.read_text(encoding="utf-8")
    path.write_text(original + f"\n{statement}  # a back-import\n", encoding="utf-8")
    try:
        result = lint(scratch)
    finally:
        path.write_text(original, encoding="utf-8")
    assert result.returncode != 0, result.stdout
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken
    importer = module.removesuffix(".py").replace("/", ".")
    imported = statement.removeprefix("import ")
    assert importer in broken
    assert imported.split(".")[0] in broken


def test_advisory_locks_never_share_a_key() -> None:
    """Each job that runs in one process at a time holds its own PostgreSQL advisory lock: two
    jobs on one key would take each other's turns."""
    from app.serving import experiments, metrics_refresh
    from app.storage import db

    keys = [db._MIGRATION_LOCK, metrics_refresh._LOCK, experiments.GUARDRAIL_LOCK]
    assert len(set(keys)) == len(keys)
