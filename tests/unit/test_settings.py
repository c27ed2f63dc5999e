"""Configuration from the environment: bad values fail at start-up, naming the variable."""

from __future__ import annotations

import pytest

from app.settings import ConfigError, Settings

KEYS = {"CAIRN_SECRET_KEY": "sk_x", "CAIRN_PUBLISHABLE_KEY": "pk_x", "CAIRN_IDENTITY_SECRET": "s"}


def test_peer_proofs_k_defaults_to_five_and_is_configurable() -> None:
    assert Settings.from_env(KEYS).peer_min_tenants == 5
    assert Settings.from_env({**KEYS, "CAIRN_PEER_MIN_TENANTS": "10"}).peer_min_tenants == 10


@pytest.mark.parametrize("value", ["1", "0", "2.5", "many", "-3"])
def test_a_k_below_two_or_not_whole_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="CAIRN_PEER_MIN_TENANTS"):
        Settings.from_env({**KEYS, "CAIRN_PEER_MIN_TENANTS": value})
