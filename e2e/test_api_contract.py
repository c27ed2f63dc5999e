"""The API keeps the contract its OpenAPI document states, checked by schemathesis against a real
`cairn serve` on its own seeded database: every operation, with data generated from the
document (valid and invalid: wrong types, missing fields, NUL characters, odd encodings), the
coverage and fuzzing phases and the stateful phase over the links schemathesis infers (a catalog
item put, then read). Zero server errors, zero responses outside their schema, zero status codes
or media types the document does not list, and no traceback in the server's log.

Bounded for the suite (`CAIRN_CONTRACT_EXAMPLES` examples per operation, 25 by default, with a
fixed seed, `CAIRN_CONTRACT_SEED`); raise both for a long run. The live stream
(`/v1/layouts/{screen}/stream`) never ends, so it is left to its own tests.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.settings import Settings
from e2e.conftest import ROOT, serving
from tests.conftest import fresh_database, run_sync

pytestmark = pytest.mark.e2e

SECRET = "sk_contract_secret"
CHECKS = ",".join((
    "not_a_server_error", "status_code_conformance", "content_type_conformance",
    "response_schema_conformance",
))  # fmt: skip


@pytest.fixture(scope="module")
def api(pg_server_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A server on a database of its own (what the run writes stays there); base URL and log."""
    from app.cli.seed import seed

    data_dir = tmp_path_factory.mktemp("cairn-contract")
    log = data_dir / "server.log"
    with fresh_database(pg_server_dsn) as dsn:
        env = {
            **os.environ,
            "CAIRN_SECRET_KEY": SECRET,
            "CAIRN_PUBLISHABLE_KEY": "pk_contract_publishable",
            "CAIRN_IDENTITY_SECRET": "whsec_contract_identity",
            "DATABASE_URL": dsn,
            "CAIRN_DATA_DIR": str(data_dir),
            "CAIRN_LAYOUTS_DIR": str(ROOT / "layouts"),
            "CAIRN_RELOAD_LAYOUTS": "0",
            "CAIRN_BODY_TIMEOUT_S": "2",
        }
        settings = Settings.from_env(env)
        run_sync(seed(dsn, settings, tenants=6, users=30, events=600, progress=False))
        with serving(env, log=log) as base:
            yield base, log


def test_every_operation_keeps_the_documented_contract(api: tuple[str, Path]) -> None:
    base, log = api
    examples = os.environ.get("CAIRN_CONTRACT_EXAMPLES", "25")
    seed = os.environ.get("CAIRN_CONTRACT_SEED", "20261207")
    command = [
        str(Path(sys.executable).with_name("st")), "run", f"{base}/schema/openapi.json",
        "--header", f"Authorization: Bearer {SECRET}",
        "--checks", CHECKS,
        "--mode", "all",
        "--max-examples", examples,
        "--seed", seed,
        "--exclude-path-regex", "/stream$",
        "--request-timeout", "15",
        "--workers", "1",
        "--no-color",
        "--generation-database", ":memory:",  # nothing written beside the code
    ]  # fmt: skip
    run = subprocess.run(  # in the server's data directory: schemathesis keeps a cache there
        command, capture_output=True, text=True, timeout=900, check=False, cwd=log.parent
    )
    report = run.stdout + run.stderr
    print(report)  # the summary, in the test's output
    assert run.returncode == 0, report[-6000:]
    operations = re.search(r"Operations:\s+(\d+) selected / (\d+) total", report)
    assert operations is not None and int(operations[1]) == int(operations[2]) - 1 >= 40
    cases = re.search(r"(\d+) generated, (\d+) passed", report)
    assert cases is not None and int(cases[1]) == int(cases[2]) > 1000, report[-2000:]
    for phase in ("Coverage", "Fuzzing", "Stateful"):
        assert re.search(rf"✅\s+{phase}", report), f"{phase} did not pass"
    served = log.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in served, served[-4000:]
