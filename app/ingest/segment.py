"""Segment-spec events in, normalized rows out: validation, clock skew, direct identifiers.

Pure: no I/O; the receive time and the hashing key are arguments. Accepted bodies:

- a batch, `{"batch": [...], "sentAt": "..."}`, as posted to `/v1/batch` by Segment's libraries
  (which add `writeKey`, a batch-level `context`, `integrations`...: unknown fields are tolerated,
  and a batch-level `context` supplies defaults for every event's `context`);
- a single event object, as posted by Segment's single-call endpoints.

One invalid event rejects the whole batch with an `InvalidInputError` naming its index and
field (`batch[3].userId`), so a caller can fix it and send the batch again.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec

from app.errors import InvalidInputError, TooLargeError
from app.settings import PiiMode
from app.storage.events import EventRow, EventType

MAX_BATCH_BYTES = 500 * 1024
MAX_EVENT_BYTES = 32 * 1024
MAX_ID_LENGTH = 255  # identifiers and event names are primary-key material
MAX_ID_BYTES = 255  # ... and index entries are limited in bytes, not characters

# Keys holding direct identifiers, compared lower-cased and without underscores, so that `email`,
# `Email`, `first_name`, `firstName` and `phone_number` / `phoneNumber` are all caught. `ip` only
# ever appears in Segment's `context`.
IDENTIFIER_KEYS = frozenset(
    {"email", "name", "firstname", "lastname", "phone", "phonenumber", "address", "ip"}
)
# ...and any key containing one of these (`work_email`, `mobilePhone`, `full-name`...).
IDENTIFIER_PARTS = (
    "email",
    "phone",
    "mobile",
    "firstname",
    "lastname",
    "fullname",
    "surname",
    "displayname",
    "streetaddress",
    "homeaddress",
    "postaladdress",
)
HASH_PREFIX = "hmac:"

_Id = Annotated[str, msgspec.Meta(max_length=MAX_ID_LENGTH)] | int
_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)]


class _Call(msgspec.Struct, tag_field="type", rename="camel", kw_only=True, frozen=True):
    """Fields every Segment call may carry; unknown fields are ignored, `null` means absent."""

    message_id: _Name
    user_id: _Id | None = None
    anonymous_id: _Id | None = None
    tenant_id: _Id | None = None
    timestamp: str | None = None
    original_timestamp: str | None = None
    sent_at: str | None = None
    context: dict[str, Any] | None = None
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None


class _Identify(_Call, tag="identify", frozen=True):
    pass


class _Group(_Call, tag="group", frozen=True):
    group_id: _Id


class _Track(_Call, tag="track", frozen=True):
    event: _Name


class _Page(_Call, tag="page", frozen=True):
    name: str | None = None
    category: str | None = None


class _Screen(_Call, tag="screen", frozen=True):
    name: str | None = None
    category: str | None = None


class _Alias(_Call, tag="alias", frozen=True):
    previous_id: _Id


_AnyCall = _Identify | _Group | _Track | _Page | _Screen | _Alias


class _Envelope(msgspec.Struct, rename="camel", frozen=True):
    batch: list[msgspec.Raw] | msgspec.UnsetType | None = msgspec.UNSET
    sent_at: str | None = None
    context: dict[str, Any] | None = None


class ParsedBatch(msgspec.Struct, frozen=True):
    rows: list[EventRow]
    duplicates: int  # repeated (tenant, messageId) pairs within the body; the first one is kept
    paths: list[str]  # where each row came from: "batch[3]", or "" for a single-event body

    def field(self, index: int, name: str | None = None) -> str | None:
        """The error path of row `index`, or of one of its fields."""
        return _at(self.paths[index], name)


_ENVELOPE_DECODER = msgspec.json.Decoder(_Envelope)
_CALL_DECODER = msgspec.json.Decoder(_AnyCall)
_ERROR_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_MISSING_FIELD = re.compile(r"^Object missing required field `(?P<name>[^`]+)`$")


def pii_key(identity_secret: str) -> bytes:
    """The key direct identifiers are hashed under, derived from (never equal to) a secret."""
    return hmac.new(identity_secret.encode(), b"cairn/pii/v1", hashlib.sha256).digest()


def parse_batch(
    body: bytes, *, received_at: datetime, pii_mode: PiiMode, pii_key: bytes
) -> ParsedBatch:
    """Decode and validate a request body: every event is normalized, or `InvalidInputError` (or
    `TooLargeError`) is raised."""
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    if len(body) > MAX_BATCH_BYTES:
        raise TooLargeError(
            "batch_too_large", f"A batch may be at most {MAX_BATCH_BYTES // 1024} KB."
        )
    try:
        envelope = _ENVELOPE_DECODER.decode(body)
    except msgspec.ValidationError as exc:
        path, message = _describe(exc, "")
        if path == "":
            raise InvalidInputError(
                "invalid_json",
                'The body must be a JSON object: a batch {"batch": [...]} or one event.',
            ) from None
        if path == "batch":
            raise InvalidInputError(
                "invalid_json", "'batch' must be an array of events.", path
            ) from None
        raise InvalidInputError("invalid_event", message, path) from None
    except msgspec.DecodeError as exc:
        raise InvalidInputError("invalid_json", f"The body is not valid JSON ({exc}).") from None
    except RecursionError:
        raise InvalidInputError("invalid_json", _TOO_DEEP) from None

    if isinstance(envelope.batch, msgspec.UnsetType):
        # A single call: the body is the event, its sentAt and context are the event's own.
        raws: Sequence[bytes | msgspec.Raw] = [body]
        prefixes = [""]
        defaults: dict[str, Any] | None = None
        batch_sent_at = None
    else:
        raws = envelope.batch or []
        if not raws:
            raise InvalidInputError("empty_batch", "The batch holds no events.", "batch")
        prefixes = [f"batch[{i}]" for i in range(len(raws))]
        defaults = envelope.context
        batch_sent_at = _parse_time(envelope.sent_at, "sentAt")

    # JSON can only carry NUL as the escape \u0000, so one scan of the body rules it out cheaply.
    may_hold_nul = b"\\u0000" in body
    if may_hold_nul and defaults is not None and _has_nul(defaults):
        raise InvalidInputError("invalid_event", _NUL_MESSAGE, "context")
    normalizer = _Normalizer(received_at.astimezone(UTC), pii_mode, pii_key, may_hold_nul)
    rows: list[EventRow] = []
    paths: list[str] = []
    seen: set[tuple[str, str]] = set()
    duplicates = 0
    for raw, prefix in zip(raws, prefixes, strict=True):
        row = normalizer.event(raw, prefix, defaults, batch_sent_at)
        key = (row.tenant_id, row.message_id)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        rows.append(row)
        paths.append(prefix)
    return ParsedBatch(rows=rows, duplicates=duplicates, paths=paths)


_TOO_DEEP = "Values may nest at most a few hundred levels deep."
_NUL_MESSAGE = "Text may not contain the NUL character (\\u0000)."


class _Normalizer:
    def __init__(
        self, received_at: datetime, pii_mode: PiiMode, key: bytes, may_hold_nul: bool
    ) -> None:
        self.received_at = received_at
        self.pii_mode = pii_mode
        self.key = key
        self.may_hold_nul = may_hold_nul

    def event(
        self,
        raw: bytes | msgspec.Raw,
        prefix: str,
        defaults: dict[str, Any] | None,
        batch_sent_at: datetime | None,
    ) -> EventRow:
        if len(raw) > MAX_EVENT_BYTES:
            raise InvalidInputError(
                "event_too_large",
                f"An event may be at most {MAX_EVENT_BYTES // 1024} KB.",
                prefix or None,
            )
        try:
            call = _CALL_DECODER.decode(raw)
        except msgspec.ValidationError as exc:
            path, message = _describe(exc, prefix)
            raise InvalidInputError("invalid_event", message, path) from None
        except msgspec.DecodeError as exc:  # pragma: no cover - the envelope decoder checked syntax
            raise InvalidInputError(
                "invalid_json", f"The body is not valid JSON ({exc})."
            ) from None
        except RecursionError:
            raise InvalidInputError("invalid_event", _TOO_DEEP, prefix or None) from None
        if self.may_hold_nul and _has_nul(msgspec.structs.asdict(call)):
            raise InvalidInputError("invalid_event", _NUL_MESSAGE, prefix or None)

        identified = _text(call.user_id)
        anonymous_id = _text(call.anonymous_id)
        user_id = identified or anonymous_id
        if user_id is None:
            raise InvalidInputError(
                "invalid_event",
                "An event needs a userId or an anonymousId.",
                _at(prefix, "userId"),
            )

        context = call.context or {}
        if defaults:
            context = {**defaults, **context}
        tenant_id = _text(call.tenant_id) or self._context_group(context, prefix)

        event, properties, tenant_id, previous_id, group_id = _by_type(call, prefix, tenant_id)
        if tenant_id is None:
            raise InvalidInputError(
                "missing_tenant",
                "An event needs a tenant: tenantId, context.groupId, or groupId on group calls.",
                _at(prefix, "tenantId"),
            )
        _check_key_bytes(
            prefix,
            tenantId=tenant_id,
            messageId=call.message_id,
            userId=user_id,
            anonymousId=anonymous_id,
            previousId=previous_id,
            event=event,
        )
        return EventRow(
            tenant_id=tenant_id,
            message_id=call.message_id,
            user_id=user_id,
            type=_TYPES[type(call)],
            event=event,
            properties=self._scrub(properties),
            traits=self._scrub(call.traits or {}),
            context=self._scrub_context(context),
            ts=self._event_time(call, prefix, batch_sent_at),
            previous_id=previous_id,
            group_id=group_id,
            anonymous=identified is None,
            # an identify call that carries both ids links the anonymous one to the user
            anonymous_id=anonymous_id
            if identified is not None and anonymous_id != identified and isinstance(call, _Identify)
            else None,
        )

    def _context_group(self, context: dict[str, Any], prefix: str) -> str | None:
        value = context.get("groupId")
        if value is None:
            return None
        if (isinstance(value, str) and len(value) <= MAX_ID_LENGTH) or (
            isinstance(value, int) and not isinstance(value, bool)
        ):
            return _text(value)
        raise InvalidInputError(
            "invalid_event",
            f"context.groupId must be a string of at most {MAX_ID_LENGTH} characters.",
            _at(prefix, "context.groupId"),
        )

    def _event_time(self, call: _Call, prefix: str, batch_sent_at: datetime | None) -> datetime:
        received_at = self.received_at
        if call.timestamp:
            ts = _parse_time(call.timestamp, _at(prefix, name := "timestamp"))
        else:
            ts = _parse_time(call.original_timestamp, _at(prefix, name := "originalTimestamp"))
        if ts is None:
            return received_at
        sent_at = (
            _parse_time(call.sent_at, _at(prefix, "sentAt"))
            if call.sent_at is not None
            else batch_sent_at
        )
        if sent_at is not None:
            try:
                ts += received_at - sent_at
            except OverflowError:
                raise InvalidInputError(
                    "invalid_event",
                    "The timestamp is out of range once corrected for clock skew.",
                    _at(prefix, name),
                ) from None
        return min(ts, received_at)

    def _scrub(self, values: dict[str, Any], *, top: bool = True) -> dict[str, Any]:
        """The same mapping without direct identifiers in the clear (copied only where something
        changes). Keys such as `email` or `mobilePhone` are caught at any depth; plain `name`,
        `address` and `ip` only at the top, since nested ones (`library.name`) are not personal."""
        kept: dict[str, Any] | None = None
        for key, value in values.items():
            if _is_identifier(key, nested=not top):
                kept = dict(values) if kept is None else kept
                if self.pii_mode == "drop":
                    del kept[key]
                elif value is not None:
                    kept[key] = self._hash(value)
                continue
            clean = self._scrub_value(value)
            if clean is not value:
                kept = dict(values) if kept is None else kept
                kept[key] = clean
        return values if kept is None else kept

    def _scrub_value(self, value: Any) -> Any:
        if isinstance(value, dict):
            return self._scrub(value, top=False)
        if isinstance(value, list):
            items = [self._scrub_value(v) for v in value]
            return value if all(a is b for a, b in zip(items, value, strict=True)) else items
        return value

    def _scrub_context(self, context: dict[str, Any]) -> dict[str, Any]:
        traits = context.get("traits")
        if not isinstance(traits, dict):
            return self._scrub(context)
        # context.traits are the user's traits, as in identify calls: scrubbed as top-level ones.
        others = self._scrub({k: v for k, v in context.items() if k != "traits"})
        return {**others, "traits": self._scrub(traits)}

    def _hash(self, value: object) -> str:
        if isinstance(value, str):
            data = value.strip().lower().encode()
        else:
            data = msgspec.json.encode(value, order="sorted")
        return HASH_PREFIX + hmac.digest(self.key, data, "sha256").hex()


def _by_type(
    call: _Call, prefix: str, tenant_id: str | None
) -> tuple[str | None, dict[str, Any], str | None, str | None, str | None]:
    """What a call's type adds: (event name, properties, tenant, previousId, groupId)."""
    event: str | None = None
    properties = call.properties or {}
    previous_id = group_id = None
    if isinstance(call, _Track):
        event = call.event
    elif isinstance(call, _Page | _Screen):
        event = call.name or None
        if call.category and "category" not in properties:
            properties = {**properties, "category": call.category}
    elif isinstance(call, _Group):
        group_id = _text(call.group_id)
        if group_id is None:
            raise InvalidInputError(
                "invalid_event", "A group call needs a groupId.", _at(prefix, "groupId")
            )
        if tenant_id is not None and tenant_id != group_id:
            raise InvalidInputError(
                "invalid_event",
                f"The groupId names a tenant other than the event's tenant '{tenant_id}'.",
                _at(prefix, "groupId"),
            )
        tenant_id = group_id
    elif isinstance(call, _Alias):
        previous_id = _text(call.previous_id)
        if previous_id is None:
            raise InvalidInputError(
                "invalid_event", "An alias call needs a previousId.", _at(prefix, "previousId")
            )
        # Kept on the stored event too, so aliases can be rebuilt from the event log.
        properties = {**properties, "previousId": previous_id}
    return event, properties, tenant_id, previous_id, group_id


def _check_key_bytes(prefix: str, **fields: str | None) -> None:
    """Identifiers are index entries, limited in bytes of UTF-8 (not characters)."""
    for field, text in fields.items():
        if text is not None and len(text.encode()) > MAX_ID_BYTES:
            raise InvalidInputError(
                "invalid_event",
                f"'{field}' may be at most {MAX_ID_BYTES} bytes of UTF-8.",
                _at(prefix, field),
            )


_TYPES: dict[type[_Call], EventType] = {
    _Identify: "identify",
    _Group: "group",
    _Track: "track",
    _Page: "page",
    _Screen: "screen",
    _Alias: "alias",
}


def _is_identifier(key: str, *, nested: bool = False) -> bool:
    known = _IDENTIFIER_SEEN.get(key)
    if known is None:
        folded = key.lower().replace("_", "").replace("-", "").replace(" ", "")
        exact = folded in IDENTIFIER_KEYS
        known = (exact, exact or any(part in folded for part in IDENTIFIER_PARTS))
        if len(_IDENTIFIER_SEEN) < 10_000:  # keys repeat; the memo stays small
            _IDENTIFIER_SEEN[key] = known
    exact, partial = known
    return partial and not (nested and exact and key.lower() in _TOP_LEVEL_ONLY)


_TOP_LEVEL_ONLY = frozenset({"name", "address", "ip"})
_IDENTIFIER_SEEN: dict[str, tuple[bool, bool]] = {}


def _text(value: str | int | None) -> str | None:
    """An identifier as text; empty strings count as absent."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text or None


def _parse_time(value: str | None, field: str | None) -> datetime | None:
    """ISO 8601 to an aware UTC datetime; a time without an offset is taken as UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidInputError(
            "invalid_event",
            f"'{value[:64]}' is not an ISO 8601 time such as 2026-11-27T10:00:00Z.",
            field,
        ) from None


def _at(prefix: str, name: str | None) -> str | None:
    if name is None:
        return prefix or None
    return f"{prefix}.{name}" if prefix else name


def _describe(exc: msgspec.ValidationError, prefix: str) -> tuple[str, str]:
    """The field path (`batch[3].userId`) and a sentence from a msgspec validation error."""
    match = _ERROR_AT.match(str(exc))
    assert match is not None  # the pattern matches any text
    detail, path = match["message"], (match["path"] or "")
    missing = _MISSING_FIELD.match(detail)
    if missing:
        path = f"{path}.{missing['name']}"
    field = f"{prefix}{path}" if prefix else path.removeprefix(".")
    if missing:
        return field, f"'{field}' is required."
    if field.endswith("type") and detail.startswith("Invalid value"):
        return field, f"'{field}' must be one of {', '.join(_TYPES.values())}."
    return field, f"Invalid '{field}': {detail[:1].lower()}{detail[1:]}."


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False
