"""Shapes of everything a socket may send (DESIGN §3), checked before anything else happens.

`parse` turns a pydantic failure into a `VALIDATION_FAILED` HubError naming the field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, ValidationError

from semantest.protocol import ID_PATTERN, TRACEPARENT_PATTERN, ErrorCode, HubError

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class Shape(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Handshake(Shape):
    token: str | None = None
    api_key: str | None = Field(None, alias="apiKey")
    role: Literal["client", "extension"] = "client"
    extension_id: Id | None = Field(None, alias="extensionId")
    capabilities: list[Name] = Field(default_factory=lambda: ["*"], max_length=256)
    name: Name | None = None
    version: Annotated[str, StringConstraints(max_length=64)] | None = None
    max_concurrency: int | None = Field(None, alias="maxConcurrency", ge=1, le=10_000)
    acks: StrictBool = False
    """The extension acknowledges every `command` (Socket.IO ack): then a command it may have
    missed is sent again after a reconnect, marked `redelivered: true`."""


class Command(BaseModel):
    """CommandMessage: any further top-level fields are kept and passed on unchanged."""

    model_config = ConfigDict(extra="allow")
    id: Id | None = None
    type: Name
    target: dict[str, Any] | None = None
    action: Any = None
    options: dict[str, Any] | None = None
    timeout: int | None = Field(None, ge=1)
    correlation_id: Id | None = Field(None, alias="correlationId")
    session_id: Id | None = Field(None, alias="sessionId")
    traceparent: Annotated[str, StringConstraints(pattern=TRACEPARENT_PATTERN)] | None = None
    """The caller's W3C trace context: the hub's spans continue its trace."""


class Cancel(Shape):
    id: Id


class Progress(Shape):
    id: Id
    percent: int | float = Field(ge=0, le=100)
    message: str | None = None
    data: Any = None


class ErrorInfo(Shape):
    code: Name
    message: str
    details: Any = None


class Result(Shape):
    id: Id
    success: StrictBool
    data: Any = None
    error: ErrorInfo | None = None


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: Any) -> M:
    if not isinstance(data, dict):
        kind = "nothing" if data is None else type(data).__name__
        raise HubError(ErrorCode.VALIDATION_FAILED, f"expected an object, got {kind}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"]) or "payload"
        raise HubError(ErrorCode.VALIDATION_FAILED, f"{where}: {problem['msg']}") from None
