"""The preference center: `GET` / `PUT /v1/preferences`."""

from __future__ import annotations

import re
from typing import Annotated, Any, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from litestar import Request, Response, get, put

from app.engine.profile import (
    Channel,
    Digest,
    NotificationPreferences,
    Personalization,
    Preferences,
)
from app.errors import ConflictError, InvalidInputError, wrong_region
from app.http.auth import Caller, caller_name, check_id, verify_user
from app.http.contract import BROWSER, KEYED, WITH_BODY, documented
from app.http.dependencies import RuntimeDep, SettingsDep
from app.http.errors import json_response
from app.serving.runtime import Runtime
from app.storage.events import tenants_elsewhere
from app.storage.preferences import (
    load_preferences,
    load_tenant_consent,
    save_preferences,
    save_tenant_consent,
)
from app.storage.suppressions import suppressed_among

Req = Request[Any, Any, Any]


@get(
    "/v1/preferences",
    opt=documented("A user's preferences", ok=Preferences, errors=(*KEYED, 400, 409), auth=BROWSER),
)
async def get_preferences(
    request: Req,
    principal: Caller,
    runtime: RuntimeDep,
    settings: SettingsDep,
    tenant_id: str,
    user_id: str,
) -> Response[bytes]:
    verify_user(principal, request, settings, tenant_id, user_id)
    await _require_here(runtime, tenant_id, user_id, writing=False)
    prefs = await load_preferences(runtime.pool, tenant_id, user_id)
    return json_response(prefs)


@put(
    "/v1/preferences",
    status_code=200,
    opt=documented(
        "Replace a user's preferences",
        ok=Preferences,
        body=Preferences,
        errors=(*KEYED, *WITH_BODY, 409),
        auth=BROWSER,
    ),
)
async def put_preferences(
    request: Req,
    principal: Caller,
    runtime: RuntimeDep,
    settings: SettingsDep,
    tenant_id: str,
    user_id: str,
) -> Response[bytes]:
    verify_user(principal, request, settings, tenant_id, user_id)
    await _require_here(runtime, tenant_id, user_id, writing=True)
    body = await request.body()
    try:
        prefs = msgspec.json.decode(body, type=Preferences)
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).partition(" - at `$")
        field = where.rstrip("`").lstrip(".") or None
        if "unknown field" in message:
            field = message.split("`")[1] if "`" in message else field
        raise InvalidInputError(
            "invalid_preferences", message.replace("`", "'") + ".", field
        ) from exc
    except msgspec.DecodeError as exc:
        raise InvalidInputError("invalid_json", "The body is not valid JSON.") from exc
    _check_purposes(runtime, prefs.purposes)
    quiet = prefs.notifications.quiet_hours
    if quiet is not None and not _known_zone(quiet.time_zone):
        raise InvalidInputError(
            "invalid_preferences",
            f"Unknown time zone '{quiet.time_zone}': use an IANA name such as 'Europe/Berlin'.",
            "notifications.quiet_hours.time_zone",
        )
    await save_preferences(runtime.pool, tenant_id, user_id, prefs)
    runtime.profiles.invalidate(tenant_id, user_id)
    return json_response(prefs)


def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name no file can have
        return False
    return True


def _check_purposes(runtime: Runtime, chosen: dict[str, bool]) -> None:
    purposes = runtime.vocabulary.signals.purposes
    for name, allowed in chosen.items():
        if name not in purposes:
            known = ", ".join(purposes) or "none"
            raise InvalidInputError(
                "invalid_preferences", f"Unknown purpose '{name}' (known: {known}).",
                f"purposes.{name}",
            )  # fmt: skip
        if purposes[name].required and not allowed:
            raise InvalidInputError(
                "invalid_preferences",
                f"'{name}' is needed to run the product and cannot be turned off.",
                f"purposes.{name}",
            )


class TenantConsent(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a tenant's admin allows for all its users: `false` withholds a purpose from every
    user of the tenant, whatever they chose (a B2B customer forbidding cross-tenant learning)."""

    purposes: Annotated[dict[str, bool], msgspec.Meta(max_length=20)] = {}


@get(
    "/v1/tenants/{tenant_id:str}/consent",
    opt=documented("A tenant's consent defaults for all its users", ok=TenantConsent),
)
async def get_tenant_consent(
    principal: Caller, runtime: RuntimeDep, tenant_id: str
) -> Response[bytes]:
    principal.require_secret()
    principal.require_tenant(tenant_id)
    consent = TenantConsent(purposes=await load_tenant_consent(runtime.pool, tenant_id))
    return json_response(consent)


@put(
    "/v1/tenants/{tenant_id:str}/consent",
    status_code=200,
    opt=documented(
        "Replace a tenant's consent defaults",
        ok=TenantConsent,
        body=TenantConsent,
        errors=(*KEYED, *WITH_BODY),
    ),
)
async def put_tenant_consent(
    request: Req, principal: Caller, runtime: RuntimeDep, tenant_id: str
) -> Response[bytes]:
    """The tenant's consent defaults (secret key: the tenant's own, or the deployment's)."""
    principal.require_secret()
    check_id("tenant_id", tenant_id)
    principal.require_tenant(tenant_id)
    try:
        consent = msgspec.json.decode(await request.body(), type=TenantConsent)
    except msgspec.ValidationError as exc:
        raise InvalidInputError("invalid_consent", str(exc).replace("`", "'") + ".") from exc
    except msgspec.DecodeError as exc:
        raise InvalidInputError("invalid_json", "The body is not valid JSON.") from exc
    _check_purposes(runtime, consent.purposes)
    await save_tenant_consent(runtime.pool, tenant_id, consent.purposes)
    runtime.forget(set(), [tenant_id])
    runtime.audit.record("tenant.consent_changed", caller_name(request),
                         {"purposes": consent.purposes}, tenant_id=tenant_id)  # fmt: skip
    return json_response(consent)


async def _require_here(runtime: Runtime, tenant_id: str, user_id: str, *, writing: bool) -> None:
    """409 for a tenant kept in another region; for a write, 409 for an erased user (nothing is
    kept of them again)."""
    pool = runtime.pool
    if runtime.region is not None:
        elsewhere = await tenants_elsewhere(pool, [tenant_id], runtime.region)
        if tenant_id in elsewhere:
            raise wrong_region(tenant_id, elsewhere[tenant_id], "tenant_id")
    if writing and await suppressed_among(pool, {(tenant_id, user_id)}):
        raise ConflictError(
            "user_erased",
            "This user was erased: Cairn keeps nothing of them, preferences included.",
            "user_id",
        )


_LEVELS = {
    "full": "We use every purpose you allow below to shape your home, next steps, help and "
    "suggestions.",
    "basic": "We use only what you and your team told us (your role, your plan and industry): "
    "no usage, no learning from other teams, no predictions.",
    "off": "We show everyone the same default layout and personalize nothing for you.",
}
_LEVEL_LABELS: dict[Personalization, str] = {"full": "Full", "basic": "Basic", "off": "Off"}
_CHANNEL_LABELS: dict[Channel, str] = {
    "in_app": "In the product",
    "email": "Email",
    "push": "Push notifications",
    "slack": "Slack",
}
_DIGEST_LABELS: dict[Digest, str] = {"off": "No digest", "daily": "Daily", "weekly": "Weekly"}
_CATEGORY_LABELS = {
    "product_updates": "Product updates",
    "tips": "Tips and how-tos",
    "billing": "Billing",
}
_DEFAULT_CATEGORIES = NotificationPreferences().categories


class Choice(msgspec.Struct, frozen=True):
    """One value a control offers, and what the preference center calls it."""

    id: str
    label: str


class LevelExplanation(msgspec.Struct, frozen=True):
    """A personalization level: what it means, and the purposes it grants before a user's own
    choices (the required ones included)."""

    id: Personalization
    label: str
    description: str
    purposes: list[str]


class PurposeExplanation(msgspec.Struct, frozen=True):
    id: str
    label: str
    description: str
    granted: bool
    set_by: str  # "required", "you", "your organization" or "the level '<level>'"
    signals: list[str]
    shapes: list[str]  # "<screen>: <widget>" resting on it
    if_off: str
    required: bool  # always granted: the user cannot turn it off
    withheld: bool  # the user's organization withholds it: the user's choice does not count


class Controls(msgspec.Struct, frozen=True):
    personalization: dict[str, str]
    purposes: str
    notifications: str


class NotificationChoices(msgspec.Struct, frozen=True):
    """What the notification controls offer: every channel and digest cadence, and the
    categories (the usual ones, and any other the user chose)."""

    channels: list[Choice]
    categories: list[Choice]
    digest: list[Choice]


class Explanation(msgspec.Struct, frozen=True):
    """`GET /v1/preferences/explain`: the preference center in plain language, with what its
    controls offer."""

    tenant_id: str
    user_id: str
    personalization: Personalization
    summary: str
    purposes: list[PurposeExplanation]
    controls: Controls
    level_grants: list[str]  # the purposes the user's level grants
    levels: list[LevelExplanation]
    notification_choices: NotificationChoices


@get(
    "/v1/preferences/explain",
    opt=documented(
        "The preference center in plain language",
        ok=Explanation,
        errors=(*KEYED, 400, 409),
        auth=BROWSER,
    ),
)
async def explain_preferences(
    request: Req,
    principal: Caller,
    runtime: RuntimeDep,
    settings: SettingsDep,
    tenant_id: str,
    user_id: str,
) -> Response[bytes]:
    """In plain language: what Cairn personalizes for this user, with which signals, for which
    purpose, and what each control changes."""
    verify_user(principal, request, settings, tenant_id, user_id)
    await _require_here(runtime, tenant_id, user_id, writing=False)
    prefs = await load_preferences(runtime.pool, tenant_id, user_id)
    withheld = {
        name for name, allowed in (await load_tenant_consent(runtime.pool, tenant_id)).items()
        if not allowed
    }  # fmt: skip
    layouts = runtime.layouts
    vocab = layouts.vocabulary
    level = vocab.granted(prefs.personalization)
    granted = vocab.granted(prefs.personalization, prefs.purposes) - withheld
    if prefs.personalization == "off":
        granted = vocab.granted("off")
    resting: dict[str, list[str]] = {}
    for screen in layouts.screens.values():
        for slot in screen.slots:
            for w in slot.widgets:
                for purpose in w.purposes:
                    resting.setdefault(purpose, []).append(f"{screen.name}: {w.id}")
    purposes = []
    for name, spec in vocab.signals.purposes.items():
        if spec.required:
            set_by = "required"
        elif name in withheld:
            set_by = "your organization"
        elif name in prefs.purposes:
            set_by = "you"
        else:
            set_by = f"the level '{prefs.personalization}'"
        uses = sorted(resting.get(name, []))
        purposes.append(PurposeExplanation(
            id=name, label=spec.label, description=spec.description,
            granted=name in granted, set_by=set_by, signals=list(spec.signals), shapes=uses,
            if_off=(
                "Cannot be turned off: the product needs it." if spec.required else
                "We stop using it" + (
                    f", and leave out the {len(uses)} parts of the product that rest on it."
                    if uses else ".")
            ),
            required=spec.required, withheld=name in withheld and not spec.required,
        ))  # fmt: skip
    categories = _DEFAULT_CATEGORIES + [
        c for c in prefs.notifications.categories if c not in _DEFAULT_CATEGORIES
    ]
    body = Explanation(
        tenant_id=tenant_id,
        user_id=user_id,
        personalization=prefs.personalization,
        summary=_LEVELS[prefs.personalization]
        + _withheld_sentence(withheld, {n: p.label for n, p in vocab.signals.purposes.items()}),
        purposes=purposes,
        controls=Controls(
            personalization=_LEVELS,
            purposes="Turn one purpose off (or on) whatever the level: we stop using it at once.",
            notifications="Channels, categories, a digest cadence and quiet hours in your time "
            "zone: where and when we may reach you outside the product.",
        ),
        level_grants=sorted(level),
        levels=[
            LevelExplanation(
                id=name,
                label=label,
                description=_LEVELS[name],
                purposes=sorted(vocab.granted(name)),
            )
            for name, label in _LEVEL_LABELS.items()
        ],
        notification_choices=NotificationChoices(
            channels=[Choice(c, _CHANNEL_LABELS.get(c, c)) for c in get_args(Channel)],
            categories=[Choice(c, _CATEGORY_LABELS.get(c) or _spoken(c)) for c in categories],
            digest=[Choice(d, _DIGEST_LABELS.get(d, d)) for d in get_args(Digest)],
        ),
    )
    return json_response(body)


def _withheld_sentence(withheld: set[str], labels: dict[str, str]) -> str:
    if not withheld:
        return ""
    named = sorted(labels.get(name, name).lower() for name in withheld)
    return f" Your organization does not allow: {', '.join(named)}."


def _spoken(category: str) -> str:
    """A category the preference center has no label for, as words: `release_notes` →
    "Release notes"."""
    words = re.sub(r"[_.:\-]+", " ", category).strip()
    return words[:1].upper() + words[1:] if words else category


ROUTES = [
    get_preferences,
    put_preferences,
    explain_preferences,
    get_tenant_consent,
    put_tenant_consent,
]
