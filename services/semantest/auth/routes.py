"""The /auth/* operations, as plain functions of a forwarded request.

A request arrives as `{method, path, body, authorization, ip}` from a gateway; the answer is
`(status, body)`. Every error body is `{error: {code, message}}`.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from semantest import credentials
from semantest.auth.passwords import verify_password
from semantest.bus.base import Store
from semantest.config import Settings
from semantest.protocol import ErrorCode, HubError, Principal, revoked_token_key

Reply = tuple[int, dict[str, Any]]


class Login(BaseModel):
    model_config = ConfigDict(extra="ignore")
    username: str = Field(min_length=1, max_length=256)
    password: str = Field(min_length=1, max_length=4096)


def error(status: int, code: ErrorCode, message: str) -> Reply:
    return status, {"error": {"code": code.value, "message": message}}


def bearer(authorization: str | None) -> str | None:
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip() or None
    return None


class AuthRoutes:
    def __init__(self, settings: Settings, store: Store) -> None:
        secret = settings.auth.jwt.secret
        if secret is None:
            raise ValueError("auth.jwt.secret is required by the auth service")
        self.settings = settings
        self.store = store
        self.secret = secret.get_secret_value()
        self.users = {user.username: user for user in settings.auth.users}

    async def handle(self, request: dict[str, Any]) -> Reply:
        route = (request.get("method"), request.get("path"))
        if route == ("POST", "/auth/login"):
            return await self.login(request.get("body"))
        if route == ("POST", "/auth/logout"):
            return await self.logout(request.get("authorization"))
        return error(404, ErrorCode.VALIDATION_FAILED, f"no route {route[0]} {route[1]}")

    async def login(self, body: Any) -> Reply:
        try:
            form = Login.model_validate(body)
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(part) for part in problem["loc"]) or "body"
            return error(400, ErrorCode.VALIDATION_FAILED, f"{where}: {problem['msg']}")
        user = self.users.get(form.username)
        if not await verify_password(user.password_hash if user else None, form.password):
            return error(401, ErrorCode.AUTH_INVALID, "invalid username or password")
        assert user is not None
        principal = Principal(user.username, user.tenant, frozenset(user.scopes))
        issued = credentials.issue_token(
            principal, self.secret, self.settings.auth.jwt.expires_in_seconds
        )
        return 200, {"token": issued.token, "tokenType": "Bearer", "expiresIn": issued.expires_in}

    async def logout(self, authorization: str | None) -> Reply:
        token = bearer(authorization)
        if token is None:
            return error(401, ErrorCode.AUTH_REQUIRED, "a Bearer token is required")
        try:
            claims = credentials.decode_token(token, self.secret)
        except HubError as exc:
            return error(401, exc.code, exc.message)
        remaining_ms = max(int((float(claims["exp"]) - time.time()) * 1000), 1000)
        await self.store.put(revoked_token_key(str(claims["jti"])), {"at": time.time()},
                             ttl_ms=remaining_ms + credentials.LEEWAY_S * 1000)
        return 200, {"revoked": True}
