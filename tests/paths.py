"""Where the repository's shipped files are, for tests that read them."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYOUTS_DIR = ROOT / "layouts"
GOLDEN_DECISIONS_DIR = ROOT / "tests" / "golden" / "decisions"
