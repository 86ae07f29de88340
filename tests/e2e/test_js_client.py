"""The seed's examples with the official JavaScript socket.io-client, unchanged.

Runs against the all-in-one server and against auth + 2 routers + 2 gateways over Redis, the
client and the extension on different gateways.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.conftest import JS, Hubs, RedisServer, run_node
from tests.e2e.conftest import KEY, PASSWORD


def run_seed(url: str, extension_url: str | None = None) -> dict[str, Any]:
    args = [url, KEY, "alice", PASSWORD]
    if extension_url:
        args.append(extension_url)
    done = run_node(JS / "seed_examples.mjs", *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def check(observed: dict[str, Any]) -> None:
    assert observed["loginStatus"] == 200
    assert observed["connectedWithToken"] is True
    assert observed["connectedWithApiKey"] is True
    by_type = {r["data"]["type"] if r["success"] else "FAIL": r for r in observed["results"]}
    assert set(by_type) == {"DOWNLOAD_IMAGE", "NAVIGATE", "CLICK", "FAIL"}
    assert by_type["NAVIGATE"]["data"]["url"] == "https://example.com"
    assert by_type["NAVIGATE"]["correlationId"] == by_type["CLICK"]["correlationId"]
    assert by_type["NAVIGATE"]["correlationId"].startswith("corr-")
    for result in observed["results"]:
        assert set(result["metadata"]) == {"duration", "timestamp", "extension"}
        assert result["metadata"]["extension"] == "seed-extension"
    assert by_type["FAIL"]["error"] == {"code": "NOT_FOUND", "message": "no such element"}
    assert observed["progress"] == [50, 50, 50, 50]
    assert observed["errors"][0]["code"] == "VALIDATION_FAILED"
    assert observed["errors"][0]["event"] == "command"
    assert observed["status"]["status"] == "healthy"
    assert "seed-extension" in {e["extensionId"] for e in observed["status"]["extensions"]}
    assert observed["pong"]["serverTime"] > 0
    assert observed["refusal"] == {
        "message": "AUTH_INVALID", "data": {"code": "AUTH_INVALID", "message": "API key is invalid"}
    }


def test_seed_examples_on_the_all_in_one_server(hubs: Hubs, hub_config: dict[str, Any]) -> None:
    check(run_seed(hubs.start("semantest-server", config=hub_config).url))


@pytest.mark.timeout(180)
def test_seed_examples_across_separate_services(hubs: Hubs, hub_config: dict[str, Any],
                                                redis_server: RedisServer) -> None:
    env = {"REDIS_URL": redis_server.url, "REDIS_KEY_PREFIX": f"js{uuid.uuid4().hex[:6]}:"}
    hubs.start("semantest-auth", env=env, config=hub_config)
    hubs.start("semantest-router", env=env, config=hub_config)
    hubs.start("semantest-router", env=env, config=hub_config)
    client_gateway = hubs.start("semantest-gateway", env=env, config=hub_config)
    extension_gateway = hubs.start("semantest-gateway", env=env, config=hub_config)
    check(run_seed(client_gateway.url, extension_gateway.url))
