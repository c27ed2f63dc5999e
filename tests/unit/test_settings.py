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


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CAIRN_RATE_LIMIT_USER", "lots"),
        ("CAIRN_RATE_LIMIT_KEY", "5 per fortnight"),
    ],
)
def test_rate_limits_that_cannot_be_read_fail_at_start_up(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({**KEYS, name: value})


def test_rate_limits_read_the_limits_notation_or_off() -> None:
    settings = Settings.from_env({**KEYS, "CAIRN_RATE_LIMIT_USER": "off",
                                  "CAIRN_RATE_LIMIT_KEY": "100/second;1000/minute"})  # fmt: skip
    assert (settings.rate_limit_user, settings.rate_limit_key) == ("off", "100/second;1000/minute")


def test_a_failing_counter_store_lets_requests_through(caplog: pytest.LogCaptureFixture) -> None:
    """A rate limit never blocks a core flow: when its store fails, requests go through, with
    one warning (not one per request)."""
    from app.errors import RateLimitedError
    from app.http.ratelimit import RateLimits

    limits = RateLimits(Settings.from_env({**KEYS, "CAIRN_RATE_LIMIT_USER": "2/minute"}))
    limits.user("acme", "u1")
    limits.user("acme", "u1")
    with pytest.raises(RateLimitedError) as refused:
        limits.user("acme", "u1")
    assert refused.value.retry_after >= 1

    def broken(*_: object) -> bool:
        raise ConnectionError("store down")

    limits._limiter.hit = broken  # type: ignore[union-attr, method-assign]
    for _ in range(5):
        limits.user("acme", "u1")
    assert [r.message for r in caplog.records].count(
        "rate limits not counted, their store failed: ConnectionError('store down')"
    ) == 1
