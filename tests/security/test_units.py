"""The defences in process, without a hub: client IPs behind proxies, the rate limiter's window
and local memory, API key format and lookup, the HS/RS confusion, and the auth routes."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from semantest import credentials
from semantest import protocol as p
from semantest.auth.routes import AuthRoutes
from semantest.bus.memory import InProcessBus, InProcessStore
from semantest.config import RateLimiting, Settings, load_settings, masked
from semantest.gateway import limits
from semantest.gateway.connections import Connection, Connections
from semantest.protocol import ErrorCode, HubError, Principal, Role

SECRET = "unit-test-secret-of-enough-length-0123456789"


@pytest.mark.parametrize(("remote", "forwarded", "trust", "seen"), [
    ("10.0.0.9", None, 0, "10.0.0.9"),
    ("10.0.0.9", "203.0.113.7", 0, "10.0.0.9"),  # not trusted: the header is ignored
    ("10.0.0.9", "203.0.113.7", 1, "203.0.113.7"),
    ("10.0.0.9", "6.6.6.6, 203.0.113.7", 1, "203.0.113.7"),  # a client-made entry is skipped
    ("10.0.0.9", "6.6.6.6, 203.0.113.7, 10.1.1.1", 2, "203.0.113.7"),
    ("10.0.0.9", "203.0.113.7", 3, "203.0.113.7"),
    (None, None, 1, "unknown"),
])
def test_client_ip_trusts_only_the_configured_hops(remote: str | None, forwarded: str | None,
                                                   trust: int, seen: str) -> None:
    assert limits.client_ip(remote, forwarded, trust) == seen


class CountingStore(InProcessStore):
    def __init__(self) -> None:
        super().__init__()
        self.hits = 0

    async def hit(self, key: str, window_ms: int) -> tuple[int, int]:
        self.hits += 1
        return await super().hit(key, window_ms)


async def test_rate_limiter_counts_then_refuses_without_asking_the_store_again() -> None:
    store = CountingStore()
    limiter = limits.RateLimiter(RateLimiting(enabled=True, window_ms=60_000, max_requests=3,
                                              message="calm down"), store)
    for _ in range(3):
        await limiter.check("event", "alice")
    for _ in range(5):
        with pytest.raises(limits.RateLimited) as caught:
            await limiter.check("event", "alice")
        assert caught.value.as_dict() == {"code": "RATE_LIMITED", "message": "calm down",
                                          "retryAfter": caught.value.retry_after_ms}
        assert 0 < caught.value.retry_after_ms <= 60_000
    assert store.hits == 4  # the flood after the first refusal is answered from memory
    await limiter.check("event", "bob")  # a separate bucket
    await limiter.check("http", "alice")


async def test_rate_limiter_opens_a_new_window_when_the_old_one_closes() -> None:
    limiter = limits.RateLimiter(RateLimiting(enabled=True, window_ms=50, max_requests=1),
                                 InProcessStore())
    await limiter.check("event", "alice")
    with pytest.raises(limits.RateLimited):
        await limiter.check("event", "alice")
    await asyncio.sleep(0.1)
    await limiter.check("event", "alice")


async def test_disabled_rate_limiter_never_touches_the_store() -> None:
    store = CountingStore()
    limiter = limits.RateLimiter(RateLimiting(enabled=False, max_requests=1), store)
    for _ in range(10):
        await limiter.check("event", "alice")
    assert store.hits == 0


def test_the_per_principal_cap_counts_subject_and_tenant() -> None:
    settings = Settings.model_validate({"server": {"maxConnectionsPerPrincipal": 2}})
    cap = limits.Limits(settings, InProcessStore())
    connections = Connections()
    alice = Principal("alice", "t1", frozenset({"client"}))
    for n in range(2):
        cap.admit(alice, connections)
        connections.add(Connection(f"s{n}", alice, Role.CLIENT))
    with pytest.raises(HubError) as caught:
        cap.admit(alice, connections)
    assert caught.value.code is ErrorCode.TOO_MANY_CONNECTIONS
    cap.admit(Principal("alice", "t2"), connections)  # same name, other tenant
    limits.Limits(Settings(), InProcessStore()).admit(alice, connections)  # off by default


def test_made_api_keys_carry_their_id_and_guesses_do_not() -> None:
    made = credentials.new_api_key()
    assert credentials.api_key_id(made.key) == made.id
    assert made.digest == hashlib.sha256(made.key.encode()).hexdigest()
    assert len(made.key) > 50 and made.id not in made.key.split("_", 2)[2]
    for guess in ("key1", "smk_", f"smk_{made.id}", f"smk_{made.id}_", "smk_XYZ_abc",
                  f"smk_{made.id.upper()}_abc", "smk_0123_abc"):
        assert credentials.api_key_id(guess) is None, guess


async def test_a_made_key_resolves_only_with_its_exact_secret() -> None:
    store = InProcessStore()
    made = credentials.new_api_key()
    await store.put(p.api_key_key(made.id), {"id": made.id, "hash": made.digest,
                                             "tenant": "acme", "scopes": ["client"]})
    verifier = credentials.Verifier(load_settings({"JWT_SECRET": SECRET}), store)
    principal = await verifier.resolve(None, made.key)
    assert (principal.tenant, principal.scopes, principal.credential_id) == (
        "acme", frozenset({"client"}), made.id)
    with pytest.raises(HubError) as caught:
        await verifier.resolve(None, made.key[:-1] + "x")
    assert caught.value.code is ErrorCode.AUTH_INVALID and made.key not in caught.value.message


async def test_hs_rs_confusion_is_refused() -> None:
    """A token signed HS256 with a PEM public key as the HMAC secret, and a genuine RS256 token:
    only HS256 with the hub's own secret is ever accepted."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    now = int(time.time())
    claims = {"sub": "m", "jti": "j", "iat": now, "nbf": now, "exp": now + 60,
              "scopes": ["admin"]}

    def part(data: dict[str, Any]) -> str:
        return jwt.utils.base64url_encode(json.dumps(data).encode()).decode()

    signing = f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}"
    confused = signing + "." + jwt.utils.base64url_encode(
        hmac.new(public_pem, signing.encode(), hashlib.sha256).digest()).decode()
    for token in (confused, jwt.encode(claims, private, algorithm="RS256")):
        with pytest.raises(HubError) as caught:
            credentials.decode_token(token, SECRET)
        assert caught.value.code is ErrorCode.AUTH_INVALID
        with pytest.raises(HubError):  # nor would the public key itself work as our secret
            credentials.decode_token(token, public_pem.decode())


async def test_auth_routes_throttle_logins_before_hashing(password_hash: str) -> None:
    settings = Settings.model_validate({"auth": {
        "jwt": {"secret": SECRET}, "loginAttempts": {"perUsername": 2, "perIp": 100},
        "users": [{"username": "alice", "passwordHash": password_hash}]}})
    routes = AuthRoutes(settings, InProcessBus())
    request = {"method": "POST", "path": "/auth/login", "ip": "1.2.3.4",
               "body": {"username": "alice", "password": "wrong"}}
    assert (await routes.handle(request))[0] == 401
    assert (await routes.handle(request))[0] == 401
    status, body = await routes.handle(request)
    assert status == 429 and body["error"]["code"] == "RATE_LIMITED"
    assert 0 < body["error"]["retryAfter"] <= 900_000


def test_print_config_masks_a_password_inside_the_redis_url() -> None:
    settings = load_settings({"REDIS_URL": "redis://user:hunter2@redis:6379/0"})
    shown = json.dumps(masked(settings))
    assert "hunter2" not in shown and "redis://user:***@redis:6379/0" in shown
