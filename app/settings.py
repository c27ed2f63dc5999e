"""Configuration, read once from the environment at start-up."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

import msgspec

PiiMode = Literal["hash", "drop"]


class ConfigError(Exception):
    """Configuration that cannot run; raised at start-up, never at request time."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    secret_key: str
    publishable_key: str
    identity_secret: str
    database_url: str | None = None
    data_dir: Path = Path(".cairn")
    layouts_dir: Path = Path("layouts")
    cors_origins: tuple[str, ...] = ()
    pii_mode: PiiMode = "hash"
    recommender_budget_ms: float = 20.0
    profile_cache_size: int = 50_000
    reload_layouts: bool = True
    tracing: str = "off"  # off | on | console
    embedding_model: str = ""  # a sentence-transformers model name or path; "" = packaged MiniLM
    recommender: bool = True  # embed and index the catalog in the background
    metrics_refresh_s: float = 300.0  # seconds between metric refreshes; 0: only on command
    # a serving process moves what start-up and model builds made out of the cyclic collector's
    # reach (gc.freeze): full collections then stall requests for tens of ms, not hundreds
    settle_heap: bool = False
    holdout_percent: float | None = None  # overrides experiments.yaml's global holdout
    guardrail_interval_s: float = 60.0  # seconds between guardrail checks; 0: never
    # k-anonymous peer proof: a number is quoted only from at least k tenants that did the thing,
    # in a cohort of at least k tenants
    peer_min_tenants: int = 5
    # rate limits in the `limits` library's notation, or "off" (app.http.ratelimit)
    rate_limit_key: str = "5000/second"
    rate_limit_user: str = "20/second;600/minute"
    audit_decision_sample: float = 0.001  # the share of decisions kept on the audit log
    # the data residency region this deployment serves: tenants whose `region` trait names
    # another are refused (None: no residency checks)
    region: str | None = None
    body_timeout_s: float = 10.0  # a request body that stops arriving this long: 408

    @classmethod
    def from_env(
        cls, env: dict[str, str] | None = None, *, generate_keys: bool = False
    ) -> Settings:
        """Read `CAIRN_*` and `DATABASE_URL`; with `generate_keys`, missing keys are created."""
        env = dict(os.environ if env is None else env)
        keys = {}
        for name, prefix in (
            ("CAIRN_SECRET_KEY", "sk_"),
            ("CAIRN_PUBLISHABLE_KEY", "pk_"),
            ("CAIRN_IDENTITY_SECRET", "whsec_"),
        ):
            value = env.get(name, "")
            if not value:
                if not generate_keys:
                    raise ConfigError(f"{name} is not set (cairn demo creates one when missing)")
                value = prefix + secrets.token_urlsafe(24)
            keys[name] = value
        pii = env.get("CAIRN_PII_MODE", "hash")
        if pii not in ("hash", "drop"):
            raise ConfigError(f"CAIRN_PII_MODE must be 'hash' or 'drop', not {pii!r}")
        try:
            budget = float(env.get("CAIRN_RECOMMENDER_BUDGET_MS", "20"))
        except ValueError as exc:
            raise ConfigError("CAIRN_RECOMMENDER_BUDGET_MS must be a number") from exc
        try:
            metrics_refresh = float(env.get("CAIRN_METRICS_REFRESH_S", "300"))
        except ValueError as exc:
            raise ConfigError("CAIRN_METRICS_REFRESH_S must be a number of seconds") from exc
        holdout = _number(env, "CAIRN_HOLDOUT_PERCENT", None, "a percent from 0 to 50")
        if holdout is not None and not 0 <= holdout <= 50:
            raise ConfigError("CAIRN_HOLDOUT_PERCENT must be a percent from 0 to 50")
        guardrails = _number(env, "CAIRN_GUARDRAIL_INTERVAL_S", 60.0, "a number of seconds")
        k = _number(env, "CAIRN_PEER_MIN_TENANTS", 5, "a whole number of tenants, 2 or more")
        if k is None or k != int(k) or k < 2:
            raise ConfigError("CAIRN_PEER_MIN_TENANTS must be a whole number of tenants, 2 or more")
        sample = _number(env, "CAIRN_AUDIT_DECISION_SAMPLE", 0.001, "a share from 0 to 1")
        if sample is None or not 0 <= sample <= 1:
            raise ConfigError("CAIRN_AUDIT_DECISION_SAMPLE must be a share from 0 to 1")
        limits = {
            name: _rate_limits(env, name, default)
            for name, default in (
                ("CAIRN_RATE_LIMIT_KEY", "5000/second"),
                ("CAIRN_RATE_LIMIT_USER", "20/second;600/minute"),
            )
        }
        origins = tuple(
            o.strip() for o in env.get("CAIRN_CORS_ORIGINS", "").split(",") if o.strip()
        )
        return cls(
            secret_key=keys["CAIRN_SECRET_KEY"],
            publishable_key=keys["CAIRN_PUBLISHABLE_KEY"],
            identity_secret=keys["CAIRN_IDENTITY_SECRET"],
            database_url=env.get("DATABASE_URL") or None,
            data_dir=Path(env.get("CAIRN_DATA_DIR", ".cairn")),
            layouts_dir=Path(env.get("CAIRN_LAYOUTS_DIR", "layouts")),
            cors_origins=origins,
            pii_mode=pii,  # type: ignore[arg-type]
            recommender_budget_ms=budget,
            reload_layouts=env.get("CAIRN_RELOAD_LAYOUTS", "1") not in ("0", "false", "no"),
            tracing=_tracing(env.get("CAIRN_TRACING", "off")),
            embedding_model=env.get("CAIRN_EMBEDDING_MODEL", ""),
            recommender=env.get("CAIRN_RECOMMENDER", "1") not in ("0", "false", "no"),
            metrics_refresh_s=max(metrics_refresh, 0.0),
            settle_heap=env.get("CAIRN_SETTLE_HEAP", "1") not in ("0", "false", "no"),
            holdout_percent=holdout,
            guardrail_interval_s=max(guardrails or 0.0, 0.0),
            peer_min_tenants=int(k),
            rate_limit_key=limits["CAIRN_RATE_LIMIT_KEY"],
            rate_limit_user=limits["CAIRN_RATE_LIMIT_USER"],
            audit_decision_sample=sample,
            region=env.get("CAIRN_REGION", "").strip() or None,
            body_timeout_s=_positive(env, "CAIRN_BODY_TIMEOUT_S", 10.0),
        )


def _number(env: dict[str, str], name: str, default: float | None, what: str) -> float | None:
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be {what}") from exc


def _positive(env: dict[str, str], name: str, default: float) -> float:
    value = _number(env, name, default, "a number of seconds above 0")
    if value is None or value <= 0:
        raise ConfigError(f"{name} must be a number of seconds above 0")
    return value


def _rate_limits(env: dict[str, str], name: str, default: str) -> str:
    """Limits in the `limits` library's notation ("20/second;600/minute"), or "off"."""
    from limits import parse_many

    text = env.get(name, "") or default
    if text.strip() == "off":
        return "off"
    try:
        parse_many(text)
    except ValueError:
        raise ConfigError(f"{name} must be limits like '20/second;600/minute', or 'off'") from None
    return text


def _tracing(value: str) -> str:
    if value not in ("off", "on", "console"):
        raise ConfigError(f"CAIRN_TRACING must be off, on or console, not {value!r}")
    return value
