"""The wire contract shared by every service: error codes, scopes, bus streams and store keys.

Stream and key names exist only here, so a reader can see the whole Redis layout in one place.
This module holds names and small value types; it must not do I/O.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

VERSION = "1.0.0"


def now_ms() -> int:
    """Epoch milliseconds: the one clock every service stamps commands with."""
    return int(time.time() * 1000)


class ErrorCode(enum.StrEnum):
    AUTH_REQUIRED = "AUTH_REQUIRED"
    AUTH_INVALID = "AUTH_INVALID"
    AUTH_EXPIRED = "AUTH_EXPIRED"
    FORBIDDEN = "FORBIDDEN"
    VALIDATION_FAILED = "VALIDATION_FAILED"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    RATE_LIMITED = "RATE_LIMITED"
    TOO_MANY_CONNECTIONS = "TOO_MANY_CONNECTIONS"
    NO_EXTENSION = "NO_EXTENSION"
    TIMEOUT = "TIMEOUT"
    EXTENSION_DISCONNECTED = "EXTENSION_DISCONNECTED"
    CANCELLED = "CANCELLED"
    SESSION_NOT_FOUND = "SESSION_NOT_FOUND"
    UNKNOWN_EVENT = "UNKNOWN_EVENT"
    UNAVAILABLE = "UNAVAILABLE"
    INTERNAL = "INTERNAL"


class HubError(Exception):
    """A refusal that reaches the caller as `{code, message}`; never carries secrets."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code.value, "message": self.message}


class Scope(enum.StrEnum):
    CLIENT = "client"
    EXTENSION = "extension"
    ADMIN = "admin"


class Role(enum.StrEnum):
    CLIENT = "client"
    EXTENSION = "extension"


DEFAULT_TENANT = "default"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: every credential resolves to one."""

    subject: str
    tenant: str = DEFAULT_TENANT
    scopes: frozenset[str] = field(default_factory=frozenset)
    # What revokes this principal's connections: an API key id or a token jti.
    credential_id: str = ""

    def allows(self, scope: Scope) -> bool:
        return scope.value in self.scopes or Scope.ADMIN.value in self.scopes

    def as_dict(self) -> dict[str, object]:
        return {"subject": self.subject, "tenant": self.tenant, "scopes": sorted(self.scopes)}


# --- bus streams -------------------------------------------------------------------------

AUTH_REQUESTS = "auth:requests"
"""HTTP requests for /auth/* forwarded by gateways; the auth group answers in the caller's inbox."""
AUTH_GROUP = "auth"


def auth_exchange_key(rid: str, part: str) -> str:
    """A forwarded /auth request (`part` "request") or its answer ("reply"), under a short TTL:
    both carry secrets (passwords, tokens, new keys), so they stay out of streams, which retain
    their entries; the stream entries name only `rid`."""
    return f"auth:{part}:{rid}"

REVOCATIONS = "revocations"
"""Credentials just revoked (`{credential}`: an API key id or a token jti): every gateway tails
this and drops the connections that authenticated with one."""


def gateway_inbox(gateway_id: str) -> str:
    """Deliveries for the sockets of one gateway process."""
    return f"gw:{gateway_id}"


# Message kinds carried on gateway inboxes.
DELIVER_TO_SOCKET = "socket"
DELIVER_TO_EXTENSION = "extension"
DELIVER_HTTP_REPLY = "http.reply"
DELIVER_TO_CHANNEL = "channel"


# --- sessions and channels ----------------------------------------------------------------

READ = "read"
WRITE = "write"
PERMISSIONS = (READ, WRITE)
SYSTEM_CHANNELS = frozenset({"downloads", "errors"})
"""Channels the hub publishes on; clients may subscribe but never publish there."""
CHANNEL_NAME = r"^[A-Za-z0-9_.:-]{1,128}$"
ID_PATTERN = r"^[A-Za-z0-9_.:@/+=#~-]{1,128}$"
"""Every id a client or extension chooses (command, correlation, extension, session): printable,
no spaces, no control characters, so no id can split a key or a log line."""
SYSTEM_PUBLISHER = "semantest"


ECHOED = ("correlationId", "sessionId", "traceparent")
"""Command fields that every progress and result of the command carries back (`traceparent`:
the W3C trace context the command travels with, see semantest.tracing)."""
TRACEPARENT_PATTERN = r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
"""A W3C traceparent as a client may send it on a command (lowercase hex, version-trace-span-
flags)."""


def echo(command: dict[str, object]) -> dict[str, object]:
    return {key: command[key] for key in ECHOED if key in command}


def progress_event(command: dict[str, object], report: dict[str, object]) -> dict[str, object]:
    """The `progress` a client sees for an extension's report on `command`."""
    event = {"id": command["id"], "percent": report["percent"]}
    for key in ("message", "data"):
        if key in report:
            event[key] = report[key]
    event.update(echo(command))
    return event


# --- store keys ---------------------------------------------------------------------------
# The command ledger's own keys are laid out in bus/ledger.lua (`layout`, documented in
# docs/architecture.md); those below are the ones Python reads or writes too.


def extension_key(tenant: str, extension_id: str) -> str:
    return f"ext:{tenant}:{extension_id}"


def extensions_index(tenant: str) -> str:
    return f"exts:{tenant}"


def extension_commands_key(tenant: str, extension_id: str) -> str:
    """The commands an extension holds now (its load is the set's size)."""
    return f"extcmds:{tenant}:{extension_id}"






def type_queue_key(tenant: str, command_type: str) -> str:
    """Sorted set: the tenant's commands of one type waiting for any extension that runs it."""
    return f"queue:{tenant}:{command_type}"


def queued_types_key(tenant: str) -> str:
    """Set: the command types with a `type_queue_key` queue now."""
    return f"queue-types:{tenant}"


def tenant_stats_key(tenant: str) -> str:
    """Hash: `inflight` (commands not ended) and `queued`, for `status`."""
    return f"stats:{tenant}"



def revoked_token_key(jti: str) -> str:
    return f"revoked:{jti}"


API_KEYS = "apikeys"
"""The set of every API key id made through /auth/api-keys."""


def api_key_key(key_id: str) -> str:
    """One API key made by an admin: name, scopes, tenant and the key's hash (never the key)."""
    return f"apikey:{key_id}"


def rate_key(bucket: str, who: str) -> str:
    """A rate-limit window: `bucket` says what is counted (event, connect, http, login-...)."""
    return f"rate:{bucket}:{who}"


def session_key(tenant: str, session_id: str) -> str:
    """The session record: name, owner, persistence."""
    return f"session:{tenant}:{session_id}"


def session_rights_key(tenant: str, session_id: str, subject: str) -> str:
    """What one member (a principal's subject) may do in a session."""
    return f"session-rights:{tenant}:{session_id}:{subject}"


def session_members_key(tenant: str, session_id: str) -> str:
    """Every subject that holds rights in a session (to clean up when it ends)."""
    return f"session-members:{tenant}:{session_id}"


def session_sockets_key(tenant: str, session_id: str) -> str:
    """The sockets attached to a session now, as `gateway\x1fsid\x1fpermissions`."""
    return f"session-sockets:{tenant}:{session_id}"


def session_affinity_key(tenant: str, session_id: str) -> str:
    """The extension a session's commands stick to."""
    return f"session-ext:{tenant}:{session_id}"


def sessions_owned_key(tenant: str, subject: str) -> str:
    """Schedule of the session ids a principal created, by expiry (epoch ms): its cap count."""
    return f"sessions-owned:{tenant}:{subject}"


def sessions_held_key(tenant: str) -> str:
    """Schedule of every session id of a tenant, by expiry (epoch ms): the tenant's cap count,
    and what the expiry sweep walks to clean up a session's leftover keys."""
    return f"sessions-held:{tenant}"


def channel_stream(tenant: str, channel: str) -> str:
    """A channel's messages; the entry id is the message offset, the stream its history."""
    return f"chan:{tenant}:{channel}"


def channel_gateways_key(tenant: str, channel: str) -> str:
    """Gateways with subscribers on a channel: the only ones a publish is fanned out to."""
    return f"chan-gws:{tenant}:{channel}"


DEADLINES = "deadlines"
"""Sorted set of `[tenant, command id]` (JSON) by deadline (epoch ms)."""


def session_readers(entries: Iterable[str], skip: Mapping[str, str]) -> dict[str, list[str]]:
    """Of a session's socket entries (`session_sockets_key`), the sockets with `read` by gateway,
    without `skip` (the origin, `{gw, sid}`): where a session's progress and results go."""
    by_gateway: dict[str, list[str]] = {}
    for entry in sorted(entries):
        gateway, sid, permissions = unpair(entry)
        if READ in permissions.split(",") and (gateway, sid) != (skip.get("gw"), skip.get("sid")):
            by_gateway.setdefault(gateway, []).append(sid)
    return by_gateway


def pair(*parts: str) -> str:
    """Several names in one set member (unit separator between them): only for names the hub
    makes itself or has validated (gateway ids, socket ids, permissions)."""
    return "\x1f".join(parts)


def unpair(member: str) -> list[str]:
    return member.split("\x1f")
