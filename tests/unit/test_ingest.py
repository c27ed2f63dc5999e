"""Segment-spec parsing: the shapes accepted, every error and its field, time, identifiers."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from app.errors import CairnError
from app.http.errors import status_of
from app.ingest.segment import MAX_BATCH_BYTES, MAX_EVENT_BYTES, ParsedBatch, parse_batch, pii_key
from app.settings import PiiMode
from app.storage.events import EventRow

RECEIVED = datetime(2026, 11, 27, 10, 0, 5, tzinfo=UTC)
KEY = pii_key("whsec_test")


def parse(body: object, *, mode: PiiMode = "hash", received_at: datetime = RECEIVED) -> ParsedBatch:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_batch(raw, received_at=received_at, pii_mode=mode, pii_key=KEY)


def track(message_id: str = "m1", **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "track",
        "messageId": message_id,
        "tenantId": "acme",
        "userId": "u1",
        "event": "feature_used",
        "properties": {"feature": "reports"},
        "timestamp": "2026-11-27T10:00:00Z",
    }
    event.update(fields)
    return {k: v for k, v in event.items() if v is not None}


def one(event: dict[str, Any], **batch: Any) -> EventRow:
    parsed = parse({"batch": [event], **batch})
    assert len(parsed.rows) == 1
    return parsed.rows[0]


def rejected(body: object) -> CairnError:
    with pytest.raises(CairnError) as caught:
        parse(body)
    return caught.value


def expected_hash(value: str) -> str:
    return "hmac:" + hmac.new(KEY, value.encode(), hashlib.sha256).hexdigest()


# --- shapes -----------------------------------------------------------------------------------


def test_the_documented_batch_is_normalized() -> None:
    parsed = parse(
        {
            "batch": [
                {
                    "type": "identify",
                    "messageId": "m1",
                    "tenantId": "acme",
                    "userId": "u1",
                    "traits": {"role": "admin"},
                    "timestamp": "2026-11-27T10:00:00Z",
                },
                {
                    "type": "group",
                    "messageId": "m2",
                    "userId": "u1",
                    "groupId": "acme",
                    "traits": {
                        "plan": "trial",
                        "industry": "fintech",
                        "seats": 12,
                        "seats_used": 3,
                    },
                },
                {
                    "type": "track",
                    "messageId": "m3",
                    "tenantId": "acme",
                    "userId": "u1",
                    "event": "integration_connected",
                    "properties": {"integration": "slack"},
                },
            ],
            "sentAt": "2026-11-27T10:00:01Z",
        }
    )
    assert parsed.duplicates == 0
    assert parsed.paths == ["batch[0]", "batch[1]", "batch[2]"]
    identify, group, tracked = parsed.rows
    assert identify == EventRow(
        tenant_id="acme",
        message_id="m1",
        user_id="u1",
        type="identify",
        event=None,
        properties={},
        traits={"role": "admin"},
        context={},
        ts=datetime(2026, 11, 27, 10, 0, 4, tzinfo=UTC),  # +4 s: the client clock was behind
    )
    assert (group.type, group.tenant_id, group.group_id) == ("group", "acme", "acme")
    assert group.traits == {"plan": "trial", "industry": "fintech", "seats": 12, "seats_used": 3}
    assert group.ts == RECEIVED  # no timestamp: the receive time
    assert (tracked.event, tracked.properties) == (
        "integration_connected",
        {"integration": "slack"},
    )


def test_a_single_event_body_is_accepted_and_its_fields_have_no_batch_prefix() -> None:
    parsed = parse(track("solo", sentAt="2026-11-27T10:00:00Z"))
    assert [row.message_id for row in parsed.rows] == ["solo"]
    assert parsed.rows[0].ts == RECEIVED  # sent the moment it happened: no skew
    assert parsed.paths == [""]
    assert parsed.field(0, "userId") == "userId"
    assert rejected(track(userId=None)).field == "userId"


def test_the_segment_library_batch_shape_is_accepted() -> None:
    # What segment-analytics-python posts to /v1/batch: writeKey, nulls, integrations, library.
    body = {
        "batch": [
            {
                "integrations": {},
                "anonymousId": "anon-7",
                "properties": {"plan": "team"},
                "timestamp": "2026-11-27T09:59:58.123+00:00",
                "event": "plan_upgraded",
                "context": {
                    "library": {"name": "analytics-python", "version": "2.4.0"},
                    "groupId": "acme",
                },
                "userId": None,
                "type": "track",
                "messageId": "0b1c-uuid",
            },
            {
                "integrations": {"All": True},
                "anonymousId": None,
                "userId": 42,
                "traits": {"role": "maker"},
                "timestamp": "2026-11-27T09:59:59.000+00:00",
                "context": {"library": {"name": "analytics-python", "version": "2.4.0"}},
                "tenantId": "acme",
                "type": "identify",
                "messageId": "7f3a-uuid",
                "someFutureField": [1, 2, 3],
            },
        ],
        "sentAt": "2026-11-27T10:00:00.000000+00:00",
        "writeKey": "sk_live_key",
    }
    tracked, identified = parse(body).rows
    assert (tracked.tenant_id, tracked.user_id) == ("acme", "anon-7")  # context.groupId
    assert tracked.context["library"]["name"] == "analytics-python"
    assert tracked.ts == datetime(2026, 11, 27, 10, 0, 3, 123000, tzinfo=UTC)
    assert identified.user_id == "42"  # numeric ids become text


def test_a_batch_level_context_is_a_default_for_every_event() -> None:
    body = {
        "batch": [track("m1"), track("m2", tenantId=None, context={"locale": "fr-FR"})],
        "context": {"groupId": "globex", "locale": "en-US"},
    }
    first, second = parse(body).rows
    assert first.context == {"groupId": "globex", "locale": "en-US"}
    assert (second.tenant_id, second.context["locale"]) == ("globex", "fr-FR")


def test_userid_wins_over_anonymousid() -> None:
    assert one(track(anonymousId="anon", userId="u9")).user_id == "u9"
    assert one(track(anonymousId="anon", userId="")).user_id == "anon"


def test_page_and_screen_names_are_their_event_and_alias_keeps_the_previous_id() -> None:
    page = one(
        track(
            type="page",
            event=None,
            name="Pricing",
            category="Docs",
            properties={"path": "/pricing"},
        )
    )
    assert (page.type, page.event) == ("page", "Pricing")
    assert page.properties == {"path": "/pricing", "category": "Docs"}
    screen = one(track(type="screen", event=None, properties=None))
    assert (screen.type, screen.event, screen.properties) == ("screen", None, {})
    alias = one(track(type="alias", event=None, previousId="anon-1", properties=None))
    assert (alias.previous_id, alias.user_id) == ("anon-1", "u1")
    assert alias.properties == {"previousId": "anon-1"}


def test_tenant_sources_in_order_of_precedence() -> None:
    assert one(track(context={"groupId": "other"})).tenant_id == "acme"  # tenantId first
    assert one(track(tenantId=None, context={"groupId": 17})).tenant_id == "17"
    group = one({"type": "group", "messageId": "g", "userId": "u1", "groupId": "initech"})
    assert (group.tenant_id, group.group_id) == ("initech", "initech")


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        (b'{"batch": [', "invalid_json", None),
        (b'{"batch": []} trailing', "invalid_json", None),
        (b"[1, 2]", "invalid_json", None),
        (b'{"batch": {"type": "track"}}', "invalid_json", "batch"),
        (b'{"batch": []}', "empty_batch", "batch"),
        (b'{"batch": null}', "empty_batch", "batch"),
        (b'{"batch": [{"type": "track"}], "sentAt": 5}', "invalid_event", "sentAt"),
    ],
)
def test_body_level_errors(body: bytes, code: str, field: str | None) -> None:
    error = rejected(body)
    assert (status_of(error), error.code, error.field) == (400, code, field)


@pytest.mark.parametrize(
    ("event", "code", "field"),
    [
        ({**track(), "type": None}, "invalid_event", "batch[1].type"),
        (track(type="purchase"), "invalid_event", "batch[1].type"),
        (track(messageId=None), "invalid_event", "batch[1].messageId"),
        (track(messageId=""), "invalid_event", "batch[1].messageId"),
        (track(messageId=12), "invalid_event", "batch[1].messageId"),
        (track(userId=None), "invalid_event", "batch[1].userId"),
        (track(userId=True), "invalid_event", "batch[1].userId"),
        (track(userId="", anonymousId=""), "invalid_event", "batch[1].userId"),
        (track(userId="u" * 256), "invalid_event", "batch[1].userId"),
        (track(event=None), "invalid_event", "batch[1].event"),
        (track(event=""), "invalid_event", "batch[1].event"),
        (track(properties=["a"]), "invalid_event", "batch[1].properties"),
        (track(context="web"), "invalid_event", "batch[1].context"),
        (
            track(tenantId=None, context={"groupId": ["acme"]}),
            "invalid_event",
            "batch[1].context.groupId",
        ),
        (track(timestamp=1764237600), "invalid_event", "batch[1].timestamp"),
        (track(timestamp="yesterday"), "invalid_event", "batch[1].timestamp"),
        (
            track(timestamp=None, originalTimestamp="27/11/2026"),
            "invalid_event",
            "batch[1].originalTimestamp",
        ),
        (track(sentAt="soon"), "invalid_event", "batch[1].sentAt"),
        (track(properties={"note": "a\x00b"}), "invalid_event", "batch[1]"),
        (track(tenantId=None), "missing_tenant", "batch[1].tenantId"),
        ({"type": "group", "messageId": "g", "userId": "u1"}, "invalid_event", "batch[1].groupId"),
        (
            {"type": "group", "messageId": "g", "userId": "u1", "groupId": ""},
            "invalid_event",
            "batch[1].groupId",
        ),
        (
            {
                "type": "group",
                "messageId": "g",
                "userId": "u1",
                "tenantId": "acme",
                "groupId": "globex",
            },
            "invalid_event",
            "batch[1].groupId",
        ),
        (
            {"type": "alias", "messageId": "a", "userId": "u1", "tenantId": "acme"},
            "invalid_event",
            "batch[1].previousId",
        ),
        (7, "invalid_event", "batch[1]"),
    ],
)
def test_one_invalid_event_rejects_the_batch_naming_index_and_field(
    event: object, code: str, field: str
) -> None:
    error = rejected({"batch": [track("ok"), event, track("also-ok")]})
    assert (status_of(error), error.code, error.field) == (400, code, field)
    assert error.message.endswith(".")


def test_the_first_invalid_event_is_the_one_reported() -> None:
    error = rejected({"batch": [track("a"), track("b", userId=None), track("c", event=None)]})
    assert error.field == "batch[1].userId"


def test_an_event_over_32_kb_is_too_large() -> None:
    big = track("big", properties={"blob": "x" * MAX_EVENT_BYTES})
    error = rejected({"batch": [track("a"), big]})
    assert (status_of(error), error.code, error.field) == (400, "event_too_large", "batch[1]")
    just_fits = track("fits")
    just_fits["properties"] = {"blob": ""}
    room = MAX_EVENT_BYTES - len(json.dumps(just_fits, separators=(",", ":")))
    just_fits["properties"] = {"blob": "x" * room}
    body = json.dumps({"batch": [just_fits]}, separators=(",", ":")).encode()
    assert len(parse(body).rows) == 1


def test_a_body_over_500_kb_is_rejected_before_decoding() -> None:
    body = b"{" + b" " * MAX_BATCH_BYTES + b"}"  # not even JSON: the size is checked first
    error = rejected(body)
    assert (status_of(error), error.code) == (413, "batch_too_large")


def test_the_receive_time_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse({"batch": [track()]}, received_at=datetime(2026, 11, 27))


# --- time -------------------------------------------------------------------------------------


def test_clock_skew_is_corrected_with_sent_at() -> None:
    # The client's clock is 10 s ahead: it stamped 10:00:08 and sent at 10:00:10 (our 10:00:00).
    received = datetime(2026, 11, 27, 10, 0, 0, tzinfo=UTC)
    row = parse(
        {"batch": [track(timestamp="2026-11-27T10:00:08Z")], "sentAt": "2026-11-27T10:00:10Z"},
        received_at=received,
    ).rows[0]
    assert row.ts == datetime(2026, 11, 27, 9, 59, 58, tzinfo=UTC)


def test_an_events_own_sent_at_overrides_the_batch_sent_at() -> None:
    row = one(
        track(timestamp="2026-11-27T10:00:00Z", sentAt="2026-11-27T10:00:01Z"),
        sentAt="2026-11-27T09:00:00Z",
    )
    assert row.ts == RECEIVED - timedelta(seconds=1)


def test_missing_timestamp_means_the_receive_time() -> None:
    assert one(track(timestamp=None), sentAt="2026-11-27T10:00:00Z").ts == RECEIVED


def test_original_timestamp_is_used_when_timestamp_is_missing() -> None:
    row = one(track(timestamp=None, originalTimestamp="2026-11-27T09:00:00Z"))
    assert row.ts == datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def test_future_times_are_clamped_to_the_receive_time() -> None:
    assert one(track(timestamp="2027-01-01T00:00:00Z")).ts == RECEIVED
    # Still in the future after correction: clamped too.
    row = one(track(timestamp="2026-11-27T12:00:00Z"), sentAt="2026-11-27T10:00:00Z")
    assert row.ts == RECEIVED


def test_offsets_are_converted_to_utc_and_naive_times_read_as_utc() -> None:
    assert one(track(timestamp="2026-11-27T11:00:00+02:00")).ts == datetime(
        2026, 11, 27, 9, 0, tzinfo=UTC
    )
    assert one(track(timestamp="2026-11-27T09:30:00")).ts == datetime(
        2026, 11, 27, 9, 30, tzinfo=UTC
    )
    assert one(track(timestamp="2026-11-27T09:30:00Z")).ts.utcoffset() == timedelta(0)


def test_a_correction_out_of_range_is_a_field_error() -> None:
    error = rejected(
        {"batch": [track(timestamp="0001-01-01T00:00:00Z")], "sentAt": "9999-12-31T00:00:00Z"}
    )
    assert (error.code, error.field) == ("invalid_event", "batch[0].timestamp")


# --- direct identifiers -----------------------------------------------------------------------


def test_identifiers_are_hashed_with_the_key_in_hash_mode() -> None:
    row = one(
        track(
            type="identify",
            event=None,
            traits={
                "Email": " Ada@Example.com ",
                "firstName": "Ada",
                "last_name": "Lovelace",
                "PHONE_NUMBER": "+44 20",
                "address": {"city": "London"},
                "name": None,
                "role": "admin",
            },
            properties={"phone": 4420, "feature": "reports"},
            context={"ip": "10.0.0.1", "traits": {"email": "ada@example.com"}, "locale": "en-GB"},
        )
    )
    assert row.traits["Email"] == expected_hash("ada@example.com")  # trimmed, lower-cased
    assert row.traits["firstName"] == expected_hash("ada")
    assert row.traits["last_name"] == expected_hash("lovelace")
    assert row.traits["PHONE_NUMBER"] == expected_hash("+44 20")
    assert row.traits["address"].startswith("hmac:")
    assert row.traits["name"] is None  # nothing to hide
    assert row.traits["role"] == "admin"
    assert row.properties == {
        "phone": "hmac:" + hmac.new(KEY, b"4420", hashlib.sha256).hexdigest(),
        "feature": "reports",
    }
    assert row.context["ip"] == expected_hash("10.0.0.1")
    assert row.context["traits"] == {"email": expected_hash("ada@example.com")}
    assert row.context["locale"] == "en-GB"
    assert "Ada" not in msgspec.json.encode(row).decode()


def test_the_hash_depends_on_the_key() -> None:
    body = json.dumps({"batch": [track(traits={"email": "a@b.c"})]}).encode()
    one_key = parse_batch(body, received_at=RECEIVED, pii_mode="hash", pii_key=pii_key("one"))
    other = parse_batch(body, received_at=RECEIVED, pii_mode="hash", pii_key=pii_key("two"))
    assert one_key.rows[0].traits["email"] != other.rows[0].traits["email"]
    assert pii_key("one") != b"one"


def test_identifiers_are_removed_in_drop_mode() -> None:
    event = track(
        traits={"email": "a@b.c", "role": "admin"},
        properties={"Name": "Ada", "feature": "reports"},
        context={"ip": "10.0.0.1", "traits": {"phone": "1"}, "locale": "en"},
    )
    row = parse({"batch": [event]}, mode="drop").rows[0]
    assert row.traits == {"role": "admin"}
    assert row.properties == {"feature": "reports"}
    assert row.context == {"traits": {}, "locale": "en"}


# --- duplicates -------------------------------------------------------------------------------


def test_repeated_message_ids_keep_the_first_and_count_the_rest() -> None:
    parsed = parse(
        {
            "batch": [
                track("m1", properties={"feature": "first"}),
                track("m2"),
                track("m1", properties={"feature": "second"}),
                track("m1", properties={"feature": "third"}),
                track("m1", tenantId="globex"),  # another tenant: another event
            ]
        }
    )
    assert parsed.duplicates == 2
    assert [(r.tenant_id, r.message_id) for r in parsed.rows] == [
        ("acme", "m1"),
        ("acme", "m2"),
        ("globex", "m1"),
    ]
    assert parsed.rows[0].properties == {"feature": "first"}
    assert parsed.paths == ["batch[0]", "batch[1]", "batch[4]"]
    assert parsed.field(2) == "batch[4]"
    assert parsed.field(2, "tenantId") == "batch[4].tenantId"


def test_rows_are_immutable() -> None:
    row = one(track())
    with pytest.raises(AttributeError):
        row.user_id = "someone else"  # type: ignore[misc]
