"""Python SDK for the Semantest hub: `Hub` sends commands, `Worker` serves them.

It speaks docs/protocol.md over python-socketio and imports nothing of the hub itself
(.importlinter holds it to that), so it works against any hub of the same contract.
"""

from semantest.client.commands import CommandHandle
from semantest.client.errors import (
    AuthExpired,
    AuthInvalid,
    AuthRequired,
    Cancelled,
    CommandFailed,
    CommandTimeout,
    ExtensionDisconnected,
    Forbidden,
    HubError,
    Internal,
    NoExtension,
    PayloadTooLarge,
    RateLimited,
    SessionNotFound,
    TooManyConnections,
    Unavailable,
    UnknownEvent,
    ValidationFailed,
)
from semantest.client.hub import Hub
from semantest.client.messages import ChannelMessage, Progress, Result, Session
from semantest.client.subscription import SessionWatch, Subscription
from semantest.client.worker import CommandError, Context, Worker

__all__ = [
    "AuthExpired", "AuthInvalid", "AuthRequired", "Cancelled", "ChannelMessage",
    "CommandError", "CommandFailed", "CommandHandle", "CommandTimeout", "Context",
    "ExtensionDisconnected", "Forbidden", "Hub", "HubError", "Internal", "NoExtension",
    "PayloadTooLarge", "Progress", "RateLimited", "Result", "Session", "SessionNotFound",
    "SessionWatch", "Subscription", "TooManyConnections", "Unavailable", "UnknownEvent",
    "ValidationFailed", "Worker",
]
