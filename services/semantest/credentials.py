"""Credentials → principals: JWT issue/verify (pyjwt) and API-key lookup.

Shared by auth (which issues) and the gateway (which verifies at connect time, locally, so a
message never costs a bus round trip). Error messages never echo a credential.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass

import jwt

from semantest.bus.base import Store
from semantest.config import Settings
from semantest.protocol import (
    DEFAULT_TENANT,
    ErrorCode,
    HubError,
    Principal,
    Scope,
    revoked_token_key,
)

ALGORITHM = "HS256"
LEEWAY_S = 5
STATIC_KEY_SCOPES = frozenset({Scope.CLIENT.value, Scope.EXTENSION.value})
ADMIN_SCOPES = frozenset({Scope.CLIENT.value, Scope.EXTENSION.value, Scope.ADMIN.value})
ANONYMOUS = Principal("anonymous", DEFAULT_TENANT, ADMIN_SCOPES - {Scope.ADMIN.value})


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_in: int
    jti: str


def fingerprint(secret: str) -> str:
    """A stable, non-reversible id for a key: how it is stored and how logs may name it."""
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_token(principal: Principal, secret: str, expires_in: int) -> IssuedToken:
    now = int(time.time())
    jti = uuid.uuid4().hex
    claims = {
        "sub": principal.subject,
        "tenant": principal.tenant,
        "scopes": sorted(principal.scopes),
        "jti": jti,
        "iat": now,
        "nbf": now,
        "exp": now + expires_in,
    }
    return IssuedToken(jwt.encode(claims, secret, algorithm=ALGORITHM), expires_in, jti)


def decode_token(token: str, secret: str) -> dict[str, object]:
    """Verify signature and times; only HS256 is ever accepted (no `none`, no confusion)."""
    try:
        return jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            leeway=LEEWAY_S,
            options={"require": ["exp", "iat", "nbf", "sub", "jti"]},
        )
    except jwt.ExpiredSignatureError:
        raise HubError(ErrorCode.AUTH_EXPIRED, "token has expired") from None
    except jwt.ImmatureSignatureError:
        raise HubError(ErrorCode.AUTH_INVALID, "token is not valid yet") from None
    except jwt.InvalidTokenError:
        raise HubError(ErrorCode.AUTH_INVALID, "token is invalid") from None


class Verifier:
    """Resolves a token or API key to a principal; the gateway's whole view of auth."""

    def __init__(self, settings: Settings, store: Store) -> None:
        auth = settings.auth
        self.enabled = auth.enabled
        secret = auth.jwt.secret
        self._secret = secret.get_secret_value() if secret else None
        self._store = store
        self._keys: dict[str, Principal] = {}
        if auth.api_keys.enabled:
            for key in auth.api_keys.keys:
                digest = fingerprint(key.get_secret_value())
                self._keys[digest] = Principal(
                    f"key:{digest[:12]}", DEFAULT_TENANT, STATIC_KEY_SCOPES, digest
                )
        for key in auth.admin_keys:
            digest = fingerprint(key.get_secret_value())
            self._keys[digest] = Principal(
                f"admin:{digest[:12]}", DEFAULT_TENANT, ADMIN_SCOPES, digest
            )

    async def resolve(self, token: str | None, api_key: str | None) -> Principal:
        if not self.enabled:
            return ANONYMOUS
        if api_key:
            return self.api_key(api_key)
        if token:
            return await self.token(token)
        raise HubError(ErrorCode.AUTH_REQUIRED, "a token or an API key is required")

    def api_key(self, api_key: str) -> Principal:
        digest = fingerprint(api_key)
        for known, principal in self._keys.items():
            if hmac.compare_digest(known, digest):
                return principal
        raise HubError(ErrorCode.AUTH_INVALID, "API key is invalid")

    async def token(self, token: str) -> Principal:
        if self._secret is None:
            raise HubError(ErrorCode.AUTH_INVALID, "token authentication is not configured")
        claims = decode_token(token, self._secret)
        jti = str(claims["jti"])
        if await self._store.get(revoked_token_key(jti)) is not None:
            raise HubError(ErrorCode.AUTH_INVALID, "token has been revoked")
        scopes = claims.get("scopes")
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise HubError(ErrorCode.AUTH_INVALID, "token is invalid")
        tenant = claims.get("tenant", DEFAULT_TENANT)
        return Principal(str(claims["sub"]), str(tenant), frozenset(scopes), jti)
