"""OpenFeature's own Python SDK and OFREP provider against `cairn serve`: no mock of either side.

The provider posts to Cairn's OFREP endpoints over real HTTP; the SDK turns the answers (and the
errors) into evaluation details, as it would for any OFREP flag system.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from app.serving.identity import user_hash
from e2e.conftest import Server
from e2e.page_helpers import known_user

pytestmark = pytest.mark.e2e


@pytest.fixture
def server_client(server: Server) -> Iterator[OpenFeatureClient]:
    """A client whose provider authenticates with the secret key, as a backend would."""
    secret = {"Authorization": f"Bearer {server.settings.secret_key}"}
    api.set_provider(OFREPProvider(server.base, headers_factory=lambda: secret), "server")
    yield api.get_client("server")
    api.shutdown()


def test_flags_evaluate_through_openfeatures_python_sdk(
    server: Server, server_client: OpenFeatureClient
) -> None:
    tenant = f"of-{uuid.uuid4().hex[:8]}"
    known_user(server, tenant, "admin1", role="admin", plan="trial")
    known_user(server, tenant, "maker1", role="maker", plan="trial")
    admin = EvaluationContext(targeting_key="admin1", attributes={"tenant_id": tenant})
    maker = EvaluationContext(targeting_key="maker1", attributes={"tenant_id": tenant})

    details = server_client.get_boolean_details("new_editor", False, admin)
    assert (details.value, details.variant, details.reason) == (True, "on", Reason.TARGETING_MATCH)
    assert details.error_code is None
    split = server_client.get_boolean_details("new_editor", False, maker)
    assert split.reason == Reason.SPLIT
    style = server_client.get_string_details("checklist_style", "full", admin)
    assert (style.value, style.reason) == ("compact", Reason.TARGETING_MATCH)  # 80 seats
    help_on = server_client.get_boolean_value("adaptive_help", False, maker)
    assert help_on is True


def test_errors_reach_the_sdk_with_openfeatures_codes(
    server: Server, server_client: OpenFeatureClient
) -> None:
    tenant = f"of-{uuid.uuid4().hex[:8]}"
    known_user(server, tenant, "u1", role="admin", plan="trial")
    ctx = EvaluationContext(targeting_key="u1", attributes={"tenant_id": tenant})

    missing = server_client.get_boolean_details("no_such_flag", False, ctx)
    assert (missing.value, missing.error_code) == (False, ErrorCode.FLAG_NOT_FOUND)
    mismatch = server_client.get_boolean_details("checklist_style", False, ctx)
    assert (mismatch.value, mismatch.error_code) == (False, ErrorCode.TYPE_MISMATCH)
    no_key = server_client.get_boolean_details(
        "new_editor", False, EvaluationContext(attributes={"tenant_id": tenant})
    )
    assert no_key.error_code == ErrorCode.TARGETING_KEY_MISSING
    no_tenant = server_client.get_boolean_details(
        "new_editor", False, EvaluationContext(targeting_key="u1")
    )
    assert no_tenant.error_code == ErrorCode.INVALID_CONTEXT
    assert no_tenant.error_message and "tenant_id" in no_tenant.error_message


def test_a_browser_key_sees_client_flags_for_its_own_user_only(server: Server) -> None:
    tenant, user = f"of-{uuid.uuid4().hex[:8]}", "u1"
    known_user(server, tenant, user, role="admin", plan="trial")
    browser = {
        "Authorization": f"Bearer {server.settings.publishable_key}",
        "X-Cairn-User-Hash": user_hash(server.settings.identity_secret, tenant, user),
    }
    api.set_provider(OFREPProvider(server.base, headers_factory=lambda: browser), "browser")
    try:
        client = api.get_client("browser")
        ctx = EvaluationContext(targeting_key=user, attributes={"tenant_id": tenant})
        assert client.get_boolean_value("new_editor", False, ctx) is True
        server_only = client.get_boolean_details("adaptive_help", False, ctx)
        assert server_only.error_code == ErrorCode.FLAG_NOT_FOUND
        someone_else = EvaluationContext(targeting_key="u2", attributes={"tenant_id": tenant})
        refused = client.get_boolean_details("new_editor", False, someone_else)
        assert refused.value is False and refused.error_code == ErrorCode.GENERAL
        assert refused.error_message == "forbidden"
    finally:
        api.shutdown()
