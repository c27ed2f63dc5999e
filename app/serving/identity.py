"""Identity verification: a browser or mobile caller proves which user it acts for.

The host app's server computes `user_hash` for its signed-in user and hands it to the page (as in
LaunchDarkly's secure mode or Intercom's identity verification); Cairn computes it again and
compares in constant time.
"""

from __future__ import annotations

import hashlib
import hmac


def user_hash(identity_secret: str, tenant_id: str, user_id: str) -> str:
    """The hex HMAC-SHA256 of "<tenant_id>:<user_id>" under the identity secret. A tenant id
    never contains ':' (so the message names one tenant and one user; user ids may)."""
    if ":" in tenant_id:
        raise ValueError("a tenant id proven by a user hash may not contain ':'")
    message = f"{tenant_id}:{user_id}".encode()
    return hmac.new(identity_secret.encode(), message, hashlib.sha256).hexdigest()


def proves_user(given: str, identity_secret: str, tenant_id: str, user_id: str) -> bool:
    """Whether `given` (hex, any case) is the user's hash; compared in constant time."""
    if ":" in tenant_id:
        return False
    expected = user_hash(identity_secret, tenant_id, user_id)
    return hmac.compare_digest(given.lower().encode(), expected.encode())
