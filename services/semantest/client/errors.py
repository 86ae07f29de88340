"""Typed exceptions for every error code of the wire contract (docs/protocol.md, "Errors").

One class per code, all under `HubError` (code, message, details). A code the SDK does not know
(an extension's own, like `HANDLER_ERROR`) becomes `CommandFailed` with that code, so callers
can always `except HubError` and read `.code`. Nothing here does I/O.
"""

from __future__ import annotations

from typing import Any, ClassVar


class HubError(Exception):
    """An answer from the hub or an extension that means "no": the code says why."""

    code: ClassVar[str] = "INTERNAL"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None,
                 event: str | None = None, command_id: str | None = None,
                 result: Any = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code  # type: ignore[misc]  # CommandFailed carries any code
        self.message = message
        self.details = details
        self.event = event
        self.command_id = command_id
        self.result = result
        """The whole `Result` when a command ended with this error, else None."""

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class AuthRequired(HubError):
    code = "AUTH_REQUIRED"


class AuthInvalid(HubError):
    code = "AUTH_INVALID"


class AuthExpired(HubError):
    code = "AUTH_EXPIRED"


class Forbidden(HubError):
    code = "FORBIDDEN"


class ValidationFailed(HubError):
    code = "VALIDATION_FAILED"


class PayloadTooLarge(HubError):
    code = "PAYLOAD_TOO_LARGE"


class RateLimited(HubError):
    code = "RATE_LIMITED"

    @property
    def retry_after(self) -> float | None:
        """Seconds to wait before trying again, when the hub said."""
        after = self.details.get("retryAfter") if isinstance(self.details, dict) else None
        return after / 1000 if isinstance(after, int | float) else None


class TooManyConnections(HubError):
    code = "TOO_MANY_CONNECTIONS"


class NoExtension(HubError):
    code = "NO_EXTENSION"


class CommandTimeout(HubError):
    code = "TIMEOUT"


class ExtensionDisconnected(HubError):
    code = "EXTENSION_DISCONNECTED"


class Cancelled(HubError):
    code = "CANCELLED"


class SessionNotFound(HubError):
    code = "SESSION_NOT_FOUND"


class UnknownEvent(HubError):
    code = "UNKNOWN_EVENT"


class Unavailable(HubError):
    code = "UNAVAILABLE"


class Internal(HubError):
    code = "INTERNAL"


class CommandFailed(HubError):
    """An extension's own error code (not one of the hub's): `.code` is what it sent."""

    code = "COMMAND_FAILED"


BY_CODE: dict[str, type[HubError]] = {
    cls.code: cls
    for cls in (AuthRequired, AuthInvalid, AuthExpired, Forbidden, ValidationFailed,
                PayloadTooLarge, RateLimited, TooManyConnections, NoExtension, CommandTimeout,
                ExtensionDisconnected, Cancelled, SessionNotFound, UnknownEvent, Unavailable,
                Internal)
}

FATAL_ON_CONNECT = frozenset({"AUTH_REQUIRED", "AUTH_INVALID", "AUTH_EXPIRED", "FORBIDDEN",
                              "VALIDATION_FAILED"})
"""Refusals of a handshake that trying again cannot change."""


def from_wire(body: Any, *, result: Any = None) -> HubError:
    """The exception for an `error` body (`{code, message, details?, event?, id?, ...}`)."""
    if not isinstance(body, dict):
        return Internal(f"malformed error from the hub: {body!r}")
    code = str(body.get("code") or "INTERNAL")
    cls = BY_CODE.get(code, CommandFailed)
    details = body.get("details")
    if details is None and "retryAfter" in body:
        details = {"retryAfter": body["retryAfter"]}
    return cls(str(body.get("message") or code), code=code, details=details,
               event=body.get("event"), command_id=body.get("id"), result=result)
