"""TLS (`server.tls`): wss for the official JS client, mutual TLS with `ca`, and start-up checks.

The certificates come from a CA the test makes (see conftest `pki`); nothing is trusted by default.
"""

from __future__ import annotations

import json
import socket
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio

from semantest.config import ConfigError, Settings
from semantest.server import tls_context
from tests.conftest import JS, HubProcess, Hubs, run_node
from tests.e2e.conftest import KEY
from tests.security.conftest import Pki, merged


def tls_config(hub_config: dict[str, Any], pki: Pki, mutual: bool = False) -> dict[str, Any]:
    tls = {"enabled": True, "cert": str(pki.cert), "key": str(pki.key)}
    if mutual:
        tls["ca"] = str(pki.ca)
    return merged(hub_config, server={"tls": tls})


def https(port: int) -> str:
    return f"https://127.0.0.1:{port}"


def js_client(url: str, pki: Pki, *cert: Path) -> dict[str, Any]:
    done = run_node(JS / "tls_client.mjs", url, KEY, str(pki.ca), *map(str, cert))
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def client_context(pki: Pki, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


def handshake(port: int, context: ssl.SSLContext) -> None:
    """A full TLS handshake plus one request; raises when the server refuses us."""
    with socket.create_connection(("127.0.0.1", port), 5) as raw, context.wrap_socket(
            raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = tls.recv(100)
        if not answer:
            raise ssl.SSLError("connection closed")
        assert answer.startswith(b"HTTP/1.1 200")


@pytest.fixture(scope="module")
def tls_hub(module_hubs: Hubs, hub_config: dict[str, Any], pki: Pki) -> HubProcess:
    return module_hubs.start(config=tls_config(hub_config, pki))


def test_wss_with_the_official_js_client(tls_hub: HubProcess, pki: Pki) -> None:
    hub = tls_hub
    assert "https://127.0.0.1" in hub.output()
    outcome = js_client(https(hub.port), pki)
    assert outcome["connected"] is True, outcome
    assert outcome["transport"] == "websocket"
    assert outcome["pong"]["timestamp"] == 42


async def test_https_routes_and_python_client_over_tls(tls_hub: HubProcess, pki: Pki) -> None:
    hub = tls_hub
    context = client_context(pki)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http:
        async with http.get(f"{https(hub.port)}/health") as response:
            assert response.status == 200
    with pytest.raises(ssl.SSLCertVerificationError):  # untrusted without our CA
        handshake(hub.port, ssl.create_default_context())
    client = socketio.AsyncClient(reconnection=False,
                                  websocket_extra_options={"ssl": context})
    http_session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))
    client.eio.http = http_session
    await client.connect(https(hub.port), auth={"apiKey": KEY}, transports=["websocket"],
                         wait_timeout=10)
    assert (await client.call("ping", {"timestamp": 1}, timeout=10))["timestamp"] == 1
    await client.disconnect()
    await http_session.close()


def test_mutual_tls_refuses_clients_without_a_certificate_of_the_ca(
        hubs: Hubs, hub_config: dict[str, Any], pki: Pki) -> None:
    hub = hubs.start(config=tls_config(hub_config, pki, mutual=True))
    without = js_client(https(hub.port), pki)
    assert without["connected"] is False
    assert js_client(https(hub.port), pki, pki.stranger_cert, pki.stranger_key)[
        "connected"] is False
    accepted = js_client(https(hub.port), pki, pki.client_cert, pki.client_key)
    assert accepted["connected"] is True, accepted
    with pytest.raises((ssl.SSLError, ConnectionError)):
        handshake(hub.port, client_context(pki))
    with pytest.raises((ssl.SSLError, ConnectionError)):
        handshake(hub.port, client_context(pki, pki.stranger_cert, pki.stranger_key))
    handshake(hub.port, client_context(pki, pki.client_cert, pki.client_key))


def tls_error(config: dict[str, Any]) -> str:
    """The start-up check itself, in process (a process start costs seconds on a busy CI)."""
    settings = Settings.model_validate(config)
    with pytest.raises(ConfigError) as caught:
        tls_context(settings)
    return str(caught.value)


@pytest.mark.parametrize("broken", ["cert", "key", "ca"])
def test_a_missing_file_is_named(hub_config: dict[str, Any], pki: Pki, tmp_path: Path,
                                 broken: str) -> None:
    config = tls_config(hub_config, pki, mutual=True)
    config["server"]["tls"][broken] = str(tmp_path / f"missing-{broken}.pem")
    message = tls_error(config)
    assert message.startswith(f"config key server.tls.{broken}: cannot read")
    assert f"missing-{broken}.pem" in message and "No such file" in message


def test_unusable_files_are_named(hub_config: dict[str, Any], pki: Pki, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    config = tls_config(hub_config, pki)
    config["server"]["tls"]["key"] = str(garbage)
    assert tls_error(config).startswith("config key server.tls.cert/key")
    config = tls_config(hub_config, pki)
    config["server"]["tls"]["key"] = str(pki.client_key)  # a key, but not the cert's
    assert tls_error(config).startswith("config key server.tls.cert/key")
    config = tls_config(hub_config, pki, mutual=True)
    config["server"]["tls"]["ca"] = str(garbage)
    assert tls_error(config).startswith("config key server.tls.ca")
    config = tls_config(hub_config, pki)
    config["server"]["tls"]["cert"] = str(tmp_path)  # a directory
    assert tls_error(config).startswith("config key server.tls.cert: cannot read")
    config = tls_config(hub_config, pki)
    del config["server"]["tls"]["key"]
    assert tls_error(config) == "config key server.tls.key: required when TLS is enabled"


def test_a_bad_file_stops_the_process_with_one_line(hubs: Hubs, hub_config: dict[str, Any],
                                                    pki: Pki, tmp_path: Path) -> None:
    config = tls_config(hub_config, pki, mutual=True)
    config["server"]["tls"]["ca"] = str(tmp_path / "nowhere" / "ca.pem")
    hub = hubs.start(config=config, wait=False)
    assert hub.process.wait(30) != 0
    output = hub.output()
    assert "semantest: config key server.tls.ca: cannot read" in output
    assert "Traceback" not in output
