"""Tokens and keys: what is accepted, and what is refused with which code."""

from __future__ import annotations

import time
from collections.abc import Callable

import jwt
import pytest

from semantest import credentials
from semantest.bus.memory import InProcessStore
from semantest.config import load_settings
from semantest.protocol import ErrorCode, HubError, Principal, revoked_token_key

SECRET = "unit-test-secret-of-enough-length-0123456789"


@pytest.fixture
def verifier() -> credentials.Verifier:
    settings = load_settings({"JWT_SECRET": SECRET, "ADMIN_API_KEY": "admin-key"})
    settings = settings.model_validate({
        **settings.model_dump(by_alias=True, mode="python"),
        "auth": {**settings.auth.model_dump(by_alias=True, mode="python"),
                 "apiKeys": {"keys": ["static-key"]}},
    })
    return credentials.Verifier(settings, InProcessStore())


def claims(**changes: object) -> dict[str, object]:
    now = int(time.time())
    return {"sub": "u", "jti": "j1", "iat": now, "nbf": now, "exp": now + 60,
            "tenant": "t", "scopes": ["client"], **changes}


async def test_issued_tokens_resolve_to_their_principal(verifier: credentials.Verifier) -> None:
    issued = credentials.issue_token(
        Principal("alice", "acme", frozenset({"client"})), SECRET, 3600)
    principal = await verifier.resolve(issued.token, None)
    assert (principal.subject, principal.tenant, principal.scopes) == (
        "alice", "acme", frozenset({"client"}))
    assert principal.credential_id == issued.jti
    assert jwt.decode(issued.token, SECRET, algorithms=["HS256"])["jti"] == issued.jti


async def test_keys_resolve_with_their_scopes(verifier: credentials.Verifier) -> None:
    static = await verifier.resolve(None, "static-key")
    assert static.scopes == {"client", "extension"} and static.tenant == "default"
    admin = await verifier.resolve(None, "admin-key")
    assert "admin" in admin.scopes
    assert "static-key" not in static.subject  # the key itself never becomes a name


@pytest.mark.parametrize(
    ("make_token", "code"),
    [  # made when the test runs: a token made at collection time could expire before it
        (lambda: jwt.encode(claims(exp=int(time.time()) - 60), SECRET), ErrorCode.AUTH_EXPIRED),
        (lambda: jwt.encode(claims(nbf=int(time.time()) + 600), SECRET), ErrorCode.AUTH_INVALID),
        (lambda: jwt.encode(claims(), "wrong-secret-of-enough-length-0123456789"),
         ErrorCode.AUTH_INVALID),
        (lambda: jwt.encode(claims(), None, algorithm="none"), ErrorCode.AUTH_INVALID),
        (lambda: jwt.encode(claims(), SECRET + SECRET, algorithm="HS512"),
         ErrorCode.AUTH_INVALID),
        (lambda: jwt.encode({k: v for k, v in claims().items() if k != "jti"}, SECRET),
         ErrorCode.AUTH_INVALID),
        (lambda: jwt.encode(claims(scopes="admin"), SECRET), ErrorCode.AUTH_INVALID),
        (lambda: "garbage", ErrorCode.AUTH_INVALID),
    ],
    ids=["expired", "not-yet-valid", "forged", "alg-none", "hs512", "no-jti",
         "scopes-not-a-list", "garbage"],
)
async def test_bad_tokens_are_refused(verifier: credentials.Verifier,
                                      make_token: Callable[[], str], code: ErrorCode) -> None:
    token = make_token()
    with pytest.raises(HubError) as caught:
        await verifier.resolve(token, None)
    assert caught.value.code is code
    assert token not in caught.value.message


async def test_revoked_token_is_refused(verifier: credentials.Verifier) -> None:
    issued = credentials.issue_token(Principal("a"), SECRET, 60)
    await verifier._store.put(revoked_token_key(issued.jti), {"at": 1})
    with pytest.raises(HubError) as caught:
        await verifier.resolve(issued.token, None)
    assert caught.value.code is ErrorCode.AUTH_INVALID


async def test_missing_and_unknown_credentials(verifier: credentials.Verifier) -> None:
    with pytest.raises(HubError) as caught:
        await verifier.resolve(None, None)
    assert caught.value.code is ErrorCode.AUTH_REQUIRED
    with pytest.raises(HubError) as caught:
        await verifier.resolve(None, "not-a-key")
    assert caught.value.code is ErrorCode.AUTH_INVALID
