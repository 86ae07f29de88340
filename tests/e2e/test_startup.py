"""Start-up as a user meets it: the banner, the one-time keys, bad configs, hash-password."""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from pathlib import Path

import aiohttp
from argon2 import PasswordHasher

from tests.conftest import BIN, Hubs, RedisServer
from tests.e2e.conftest import KEY, Peer, connect, extension, refused


def wait_for_output(hub_output: callable, pattern: str, timeout: float = 10) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, hub_output())
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{pattern!r} never appeared in:\n{hub_output()}")


async def test_fresh_server_prints_how_to_connect_and_one_time_keys(
    hubs: Hubs, peers: list[Peer]
) -> None:
    hub = hubs.start("semantest-server")
    banner = wait_for_output(hub.output, r"client API key \(scopes client, extension\): (\S+)")
    assert f"http://127.0.0.1:{hub.port}" in hub.output()
    assert "io(" in hub.output()
    client = await connect(hub.url, auth={"apiKey": banner.group(1)})
    peers.append(client)
    assert (await client.call("ping"))["serverTime"] > 0
    admin = wait_for_output(hub.output, r"admin API key \(scope admin\): +(\S+)").group(1)
    assert admin != banner.group(1)
    error = await refused(hub.url, auth={"apiKey": "guess"})
    assert error["message"] == "AUTH_INVALID"


def exits_with(hubs: Hubs, command: str, env: dict[str, str] | None = None,
               config: dict[str, object] | None = None) -> str:
    hub = hubs.start(command, env=env, config=config, wait=False)
    assert hub.process.wait(20) != 0
    return hub.output()


def test_bad_config_stops_start_up_naming_the_key(hubs: Hubs) -> None:
    output = exits_with(hubs, "semantest-server", env={"PORT": "not-a-port"})
    assert "config key server.port (from PORT)" in output
    assert "Traceback" not in output
    output = exits_with(hubs, "semantest-server", config={"websocket": {"pingIntervall": 5}})
    assert "config key websocket.pingIntervall" in output


def test_separate_services_require_redis_and_a_jwt_secret(hubs: Hubs) -> None:
    assert "REDIS_URL" in exits_with(hubs, "semantest-gateway")
    output = exits_with(hubs, "semantest-auth", env={"REDIS_URL": "redis://127.0.0.1:1/0"})
    assert "config key auth.jwt.secret (JWT_SECRET) is required" in output


def test_tls_files_that_cannot_be_read_stop_start_up(hubs: Hubs, tmp_path: Path) -> None:
    output = exits_with(hubs, "semantest-server", config={"server": {"tls": {
        "enabled": True, "cert": str(tmp_path / "missing.crt"), "key": str(tmp_path / "k")}}})
    assert "config key server.tls" in output and "Traceback" not in output


def test_print_config_masks_secrets() -> None:
    done = subprocess.run([str(BIN / "semantest-server"), "--print-config"], check=True,
                          capture_output=True, text=True,
                          env={"JWT_SECRET": "very-secret-value", "PATH": "/usr/bin"})
    assert '"port": 3000' in done.stdout
    assert "very-secret-value" not in done.stdout


def test_hash_password_prints_an_argon2id_hash() -> None:
    done = subprocess.run([str(BIN / "semantest-server"), "hash-password"], input="s3cret\n",
                          capture_output=True, text=True, check=True)
    phc = done.stdout.strip()
    assert phc.startswith("$argon2id$")
    assert PasswordHasher().verify(phc, "s3cret")


def test_log_format_json_and_log_level(hubs: Hubs) -> None:
    hub = hubs.start("semantest-server", env={"LOG_FORMAT": "json", "LOG_LEVEL": "debug",
                                              "AUTH_ENABLED": "false"})
    line = wait_for_output(hub.output, r'\{"time".*"name": "semantest\.router".*\}').group(0)
    record = json.loads(line)
    assert record["level"] == "INFO" and "sweeping" in record["message"]
    quiet = hubs.start("semantest-server", env={"LOG_LEVEL": "error", "AUTH_ENABLED": "false"})
    wait_for_output(quiet.output, r"Semantest hub")
    assert "INFO" not in quiet.output()


async def test_all_in_one_over_redis_as_the_seed_runs_it(hubs: Hubs, hub_config: dict,
                                                        redis_server: RedisServer,
                                                        peers: list[Peer]) -> None:
    hub = hubs.start("semantest-server", config=hub_config, env={
        "REDIS_URL": redis_server.url, "REDIS_KEY_PREFIX": f"aio{uuid.uuid4().hex[:6]}:"})
    assert "over Redis" in hub.output()
    await extension(hub.url, peers, {"apiKey": KEY, "role": "extension", "extensionId": "aio"})
    client = await connect(hub.url, auth={"apiKey": KEY})
    peers.append(client)
    ack = await client.call("command", {"type": "NAVIGATE", "target": {"extensionId": "aio"}})
    assert (await client.next("result"))["id"] == ack["id"]
    async with aiohttp.ClientSession() as http, http.get(f"{hub.url}/health") as response:
        assert (await response.json())["redis"] == "connected"
