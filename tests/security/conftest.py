"""Fixtures of the security suite: hubs with everything on, a test CA, and helpers.

The e2e peers (`connect`, `refused`, `extension`) and the shared `hub_config` are reused, so an
attack is made exactly as a client would make it: over a real socket, against real processes.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import ipaddress
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import Hubs, RedisServer
from tests.e2e.conftest import ADMIN_KEY, Peer, hub_config, password_hash, peers

__all__ = ["hub_config", "password_hash", "peers"]


def merged(base: dict[str, Any], **sections: Any) -> dict[str, Any]:
    """`base` with each top-level section deep-merged with the given values."""
    config = copy.deepcopy(base)

    def merge(into: dict[str, Any], values: dict[str, Any]) -> None:
        for key, value in values.items():
            if isinstance(value, dict) and isinstance(into.get(key), dict):
                merge(into[key], value)
            else:
                into[key] = value

    merge(config, sections)
    return config


def cluster(hubs: Hubs, config: dict[str, Any], redis: RedisServer | None,
            gateways: int = 2) -> list[str]:
    """All-in-one (`redis` None: one URL, `gateways` times) or auth + router + N gateways."""
    if redis is None:
        return [hubs.start("semantest-server", config=config).url] * gateways
    env = {"REDIS_URL": redis.url, "REDIS_KEY_PREFIX": f"sec{uuid.uuid4().hex[:8]}:"}
    hubs.start("semantest-auth", env=env, config=config)
    hubs.start("semantest-router", env=env, config=config)
    return [hubs.start("semantest-gateway", env=env, config=config).url
            for _ in range(gateways)]


async def http(method: str, url: str, **options: Any) -> tuple[int, dict[str, str], Any]:
    """One request: status, headers, and the body (JSON when it is JSON)."""
    async with aiohttp.ClientSession() as session, session.request(
            method, url, **options) as response:
        body: Any = await response.read()
        if response.content_type == "application/json":
            body = await response.json()
        return response.status, dict(response.headers), body


async def make_key(url: str, scopes: list[str], tenant: str | None = None,
                   admin: str = ADMIN_KEY, headers: dict[str, str] | None = None
                   ) -> dict[str, Any]:
    """A new API key made through POST /auth/api-keys by `admin`."""
    body: dict[str, Any] = {"name": f"test-{uuid.uuid4().hex[:6]}", "scopes": scopes}
    if tenant:
        body["tenant"] = tenant
    status, _, made = await http("POST", f"{url}/auth/api-keys", json=body,
                                 headers={"X-API-Key": admin, **(headers or {})})
    assert status == 201, made
    return made


async def dropped(peer: Peer, timeout: float = 10) -> None:
    """Wait until the server has closed this peer's connection."""
    await asyncio.wait_for(peer.sio.wait(), timeout)
    assert not peer.sio.connected


@dataclass
class Pki:
    """A test CA with a server certificate for 127.0.0.1/localhost and a client certificate."""

    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path
    stranger_key: Path


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _issue(subject: str, issuer: x509.Name | None, signer: ec.EllipticCurvePrivateKey | None,
           *, ca: bool = False, server: bool = False
           ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
    elif server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False).add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(signer or key, hashes.SHA256()), key


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    where = tmp_path_factory.mktemp("pki")
    ca, ca_key = _issue("Semantest test CA", None, None, ca=True)
    server, server_key = _issue("localhost", ca.subject, ca_key, server=True)
    client, client_key = _issue("test client", ca.subject, ca_key)
    other_ca, other_ca_key = _issue("Some other CA", None, None, ca=True)
    stranger, stranger_key = _issue("stranger", other_ca.subject, other_ca_key)
    files = {}
    for name, data in {
        "ca.pem": ca.public_bytes(serialization.Encoding.PEM),
        "server.pem": server.public_bytes(serialization.Encoding.PEM),
        "server.key": _key_pem(server_key),
        "client.pem": client.public_bytes(serialization.Encoding.PEM),
        "client.key": _key_pem(client_key),
        "stranger.pem": stranger.public_bytes(serialization.Encoding.PEM),
        "stranger.key": _key_pem(stranger_key),
    }.items():
        (where / name).write_bytes(data)
        files[name] = where / name
    return Pki(files["ca.pem"], files["server.pem"], files["server.key"], files["client.pem"],
               files["client.key"], files["stranger.pem"], files["stranger.key"])
