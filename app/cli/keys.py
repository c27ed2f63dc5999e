"""`cairn keys ...` (tenant-scoped API keys) and `cairn user-hash` (identity verification).

    cairn keys create --tenant T [--kind secret|publishable]   a key for one tenant, shown once
    cairn keys list [--tenant T]                                 keys by fingerprint, never the key
    cairn keys revoke KEY_OR_FINGERPRINT                         every server forgets it at once
    cairn user-hash TENANT USER                                  X-Cairn-User-Hash for a user

`cairn keys --tenant T` (without `create`) still creates a key, as it did before `create` existed.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from app.cli.common import cli_actor, with_pool


def add_commands(sub: Any) -> None:
    keys = sub.add_parser("keys", help="create, list and revoke keys scoped to one tenant")
    # The form before `create` existed: `cairn keys --tenant T [--kind K]`.
    keys.add_argument("--tenant", dest="legacy_tenant", help=argparse.SUPPRESS)
    keys.add_argument(
        "--kind", dest="legacy_kind", choices=["secret", "publishable"], help=argparse.SUPPRESS
    )
    keys.set_defaults(func=cmd_keys_legacy)
    actions = keys.add_subparsers(dest="keys_command")

    p = actions.add_parser("create", help="create a key scoped to one tenant (shown once)")
    p.add_argument("--tenant", required=True)
    p.add_argument("--kind", choices=["secret", "publishable"], default="secret")
    p.set_defaults(func=cmd_keys_create)

    p = actions.add_parser("list", help="list tenant-scoped keys by fingerprint")
    p.add_argument("--tenant", help="only this tenant's keys")
    p.set_defaults(func=cmd_keys_list)

    p = actions.add_parser("revoke", help="revoke a key; every server forgets it at once")
    p.add_argument("key", help="the key, or its fingerprint as `cairn keys list` shows it")
    p.set_defaults(func=cmd_keys_revoke)

    p = sub.add_parser("user-hash", help="compute X-Cairn-User-Hash for a user")
    p.add_argument("tenant_id")
    p.add_argument("user_id")
    p.set_defaults(func=cmd_user_hash)


def cmd_keys_legacy(args: argparse.Namespace) -> int:
    if args.legacy_tenant is None:
        print("cairn keys: say create, list or revoke (see cairn keys --help)", file=sys.stderr)
        return 2
    print(
        "cairn keys: `cairn keys --tenant T` is now `cairn keys create --tenant T`; the old form "
        "goes away in the next release",
        file=sys.stderr,
    )
    args.tenant, args.kind = args.legacy_tenant, args.legacy_kind or "secret"
    return cmd_keys_create(args)


def cmd_keys_create(args: argparse.Namespace) -> int:
    from app.storage.audit import AuditEntry
    from app.storage.keys import create_api_key, key_fingerprint

    key = with_pool(
        "keys create",
        lambda pool: create_api_key(pool, args.tenant, args.kind),
        lambda made: AuditEntry(
            action="key.created", actor=cli_actor(), tenant_id=args.tenant,
            detail={"kind": args.kind, "fingerprint": key_fingerprint(made)[:16]},
        ),
    )  # fmt: skip
    if key is None:
        return 2
    print(key)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    from app.storage.keys import list_api_keys

    found = with_pool("keys list", lambda pool: list_api_keys(pool, args.tenant))
    if found is None:
        return 2
    for key in found:
        created = key.created_at.strftime("%Y-%m-%d %H:%M")
        print(f"{key.fingerprint}  {key.kind:<11}  {key.tenant_id}  created {created} UTC")
    if not found:
        print("no tenant-scoped keys", file=sys.stderr)
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from app.storage.audit import AuditEntry
    from app.storage.keys import key_fingerprint, revoke_api_key

    named = args.key.strip()
    fingerprint = named.lower() if named[:3] not in ("sk_", "pk_") else key_fingerprint(named)
    revoked = with_pool(
        "keys revoke",
        lambda pool: revoke_api_key(pool, args.key),
        lambda done: AuditEntry(action="key.revoked", actor=cli_actor(),
                                detail={"fingerprint": fingerprint[:16]}) if done else None,
    )  # fmt: skip
    if revoked is None:
        return 2
    if not revoked:
        print(
            "cairn keys revoke: no such key (or the fingerprint names more than one)",
            file=sys.stderr,
        )
        return 1
    print("revoked; every Cairn server stops accepting it now")
    return 0


def cmd_user_hash(args: argparse.Namespace) -> int:
    from app.serving.identity import user_hash

    secret = os.environ.get("CAIRN_IDENTITY_SECRET", "")
    if not secret:
        print("cairn user-hash: set CAIRN_IDENTITY_SECRET", file=sys.stderr)
        return 2
    if ":" in args.tenant_id:
        print("cairn user-hash: a tenant id may not contain ':'", file=sys.stderr)
        return 2
    print(user_hash(secret, args.tenant_id, args.user_id))
    return 0
