"""Credentials → principals: JWT issue/verify (pyjwt) and API-key lookup.

Shared by auth (which issues) and the gateway (which verifies at connect time, locally, so a
message never costs a bus round trip). Error messages never echo a credential.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
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
    api_key_key,
    revoked_token_key,
)

ALGORITHM = "HS256"
LEEWAY_S = 5
STATIC_KEY_SCOPES = frozenset({Scope.CLIENT.value, Scope.EXTENSION.value})
ADMIN_SCOPES = frozenset({Scope.CLIENT.value, Scope.EXTENSION.value, Scope.ADMIN.value})
ANONYMOUS = Principal("anonymous", DEFAULT_TENANT, ADMIN_SCOPES - {Scope.ADMIN.value})
API_KEY_PREFIX = "smk_"
"""Keys made through /auth/api-keys read `smk_<id>_<secret>`: the id finds the record."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_in: int
    jti: str


def fingerprint(secret: str) -> str:
    """A stable, non-reversible id for a key: how it is stored and how logs may name it."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class NewApiKey:
    id: str
    key: str
    digest: str


def new_api_key() -> NewApiKey:
    """A fresh key (256 random bits): shown once; only its digest is ever stored."""
    key_id = secrets.token_hex(8)
    key = f"{API_KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    return NewApiKey(key_id, key, fingerprint(key))


def api_key_id(key: str) -> str | None:
    """The record id inside a made key, or None for anything else (a static key, a guess)."""
    if not key.startswith(API_KEY_PREFIX):
        return None
    key_id, _, rest = key[len(API_KEY_PREFIX):].partition("_")
    if len(key_id) != 16 or not rest or any(c not in "0123456789abcdef" for c in key_id):
        return None
    return key_id


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
    except jwt.PyJWTError:  # any other refusal, a key pyjwt will not use included
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
            return await self.api_key(api_key)
        if token:
            return await self.token(token)
        raise HubError(ErrorCode.AUTH_REQUIRED, "a token or an API key is required")

    async def api_key(self, api_key: str) -> Principal:
        digest = fingerprint(api_key)
        for known, principal in self._keys.items():
            if hmac.compare_digest(known, digest):
                return principal
        key_id = api_key_id(api_key)
        if key_id is not None:  # one store read: made keys live in the store, as hashes
            record = await self._store.get(api_key_key(key_id))
            if record is not None and hmac.compare_digest(str(record.get("hash")), digest):
                return Principal(f"apikey:{key_id}", str(record["tenant"]),
                                 frozenset(record["scopes"]), key_id)
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
