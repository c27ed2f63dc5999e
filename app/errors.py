"""Errors a caller can act on, raised by any layer; `app.http.errors` alone turns them into HTTP.

Each carries a snake_case `code` (stable, for programs), a `message` (a sentence, for people) and,
when one field of the input is at fault, that field's path (`batch[3].userId`). The class says
what kind of problem it is; the HTTP layer maps kinds to status codes and the contract's error
body, `{"error": {"code", "message", "field"}}`.
"""

from __future__ import annotations


class CairnError(Exception):
    """Base of every error meant for the caller rather than for the logs."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class InvalidInputError(CairnError):
    """The request as sent cannot be accepted; sending it again unchanged will fail again."""


class NotAuthenticatedError(CairnError):
    """No credentials, or credentials that name no key."""


class NotAllowedError(CairnError):
    """The caller is known but may not do this (a browser key acting for the whole tenant...)."""


class NotFoundError(CairnError):
    """No such object, or one the caller may not know exists (another tenant's)."""


class ConflictError(CairnError):
    """The request conflicts with where or how the data is kept (a tenant of another region)."""


class BodyTimeoutError(CairnError):
    """The request body stopped arriving before it was whole."""


class TooLargeError(CairnError):
    """The body is over its size limit."""


class UnsupportedEncodingError(CairnError):
    """The body's encoding (Content-Encoding) is not one Cairn reads."""


class RateLimitedError(CairnError):
    """Too many requests from one key or for one user; `retry_after` seconds until there is room."""

    def __init__(self, code: str, message: str, *, retry_after: int) -> None:
        super().__init__(code, message)
        self.retry_after = retry_after


class UnavailableError(CairnError):
    """A dependency cannot answer now (the database); the same request may succeed later."""


def wrong_region(tenant_id: str, named: str, field: str | None = None) -> ConflictError:
    return ConflictError(
        "wrong_region",
        f"Tenant '{tenant_id}' is kept in region '{named}': send its data to that region's Cairn.",
        field,
    )
