"""The /auth/* operations, as plain functions of a forwarded request.

A request arrives as `{method, path, body, authorization, apiKey, ip}` from a gateway; the answer
is `(status, body)`. Every error body is `{error: {code, message}}`; a 429 also carries
`retryAfter` (ms), which the gateway turns into the `Retry-After` header. Login attempts are
counted per username and per client IP in the store, so every auth replica shares the count.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from semantest import credentials
from semantest import protocol as p
from semantest.auth.keys import ApiKeys, Reply, error, invalid
from semantest.auth.passwords import verify_password
from semantest.bus.base import Bus
from semantest.config import Settings
from semantest.protocol import ErrorCode, HubError, Principal, Scope, revoked_token_key

API_KEYS_PATH = "/auth/api-keys"


class Login(BaseModel):
    model_config = ConfigDict(extra="ignore")
    username: str = Field(min_length=1, max_length=256)
    password: str = Field(min_length=1, max_length=4096)


def bearer(authorization: str | None) -> str | None:
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip() or None
    return None


class AuthRoutes:
    def __init__(self, settings: Settings, bus: Bus) -> None:
        secret = settings.auth.jwt.secret
        if secret is None:
            raise ValueError("auth.jwt.secret is required by the auth service")
        self.settings = settings
        self.bus = bus
        self.store = bus.store
        self.secret = secret.get_secret_value()
        self.users = {user.username: user for user in settings.auth.users}
        self.verifier = credentials.Verifier(settings, bus.store)
        self.keys = ApiKeys(bus)

    async def handle(self, request: dict[str, Any]) -> Reply:
        method, path = request.get("method"), request.get("path")
        if (method, path) == ("POST", "/auth/login"):
            return await self.login(request.get("body"), str(request.get("ip") or "unknown"))
        if (method, path) == ("POST", "/auth/logout"):
            return await self.logout(request.get("authorization"))
        if isinstance(path, str) and (path == API_KEYS_PATH or
                                      path.startswith(API_KEYS_PATH + "/")):
            return await self.api_keys(method, path[len(API_KEYS_PATH) + 1:], request)
        return error(404, ErrorCode.VALIDATION_FAILED, f"no route {method} {path}")

    async def _admin(self, request: dict[str, Any]) -> Principal:
        token = bearer(request.get("authorization"))
        api_key = request.get("apiKey")
        if not token and not api_key:
            raise HubError(ErrorCode.AUTH_REQUIRED, "a Bearer token or an API key is required")
        principal = await self.verifier.resolve(token, api_key if isinstance(api_key, str)
                                                else None)
        if Scope.ADMIN.value not in principal.scopes:
            raise HubError(ErrorCode.FORBIDDEN, "managing API keys needs the admin scope")
        return principal

    async def api_keys(self, method: Any, key_id: str, request: dict[str, Any]) -> Reply:
        try:
            admin = await self._admin(request)
        except HubError as exc:
            return error(403 if exc.code is ErrorCode.FORBIDDEN else 401, exc.code, exc.message)
        if (method, key_id) == ("POST", ""):
            return await self.keys.create(admin, request.get("body"))
        if (method, key_id) == ("GET", ""):
            return await self.keys.list(admin)
        if method == "DELETE" and key_id and "/" not in key_id:
            return await self.keys.revoke(admin, key_id)
        return error(404, ErrorCode.VALIDATION_FAILED, f"no route {method} {request['path']}")

    async def _throttled(self, username: str, ip: str) -> Reply | None:
        """Count this attempt; a 429 when the username or the IP has had too many."""
        limits = self.settings.auth.login_attempts
        by_user, user_left = await self.store.hit(p.rate_key("login-user", username),
                                                  limits.window_ms)
        by_ip, ip_left = await self.store.hit(p.rate_key("login-ip", ip), limits.window_ms)
        waits = ([user_left] if by_user > limits.per_username else []) + (
            [ip_left] if by_ip > limits.per_ip else [])
        if not waits:
            return None
        status, body = error(429, ErrorCode.RATE_LIMITED, "too many login attempts; retry later")
        body["error"]["retryAfter"] = max(waits)
        return status, body

    async def login(self, body: Any, ip: str) -> Reply:
        try:
            form = Login.model_validate(body)
        except ValidationError as exc:
            return invalid(exc)
        throttled = await self._throttled(form.username, ip)
        if throttled is not None:
            return throttled  # before the hash: a blocked guess costs no CPU
        user = self.users.get(form.username)
        if not await verify_password(user.password_hash if user else None, form.password):
            return error(401, ErrorCode.AUTH_INVALID, "invalid username or password")
        assert user is not None
        await self.store.delete(p.rate_key("login-user", form.username))
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
        jti = str(claims["jti"])
        remaining_ms = max(int((float(claims["exp"]) - time.time()) * 1000), 1000)
        await self.store.put(revoked_token_key(jti), {"at": time.time()},
                             ttl_ms=remaining_ms + credentials.LEEWAY_S * 1000)
        await self.bus.publish(p.REVOCATIONS, {"credential": jti}, maxlen=10_000)
        return 200, {"revoked": True}
