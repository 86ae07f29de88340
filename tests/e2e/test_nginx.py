"""The shipped nginx configuration in front of two gateways, with a real nginx.

Both transports must work through it: WebSocket (needs the Upgrade headers) and long-polling
(needs `ip_hash` stickiness). The test only rewrites the upstream servers and the listen port.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    JS,
    ROOT,
    Hubs,
    RedisServer,
    free_port,
    run_node,
    stop_process,
    wait_for_port,
)
from tests.e2e.conftest import KEY, Peer, connect, extension
from tests.e2e.test_js_client import check, run_seed

SHIPPED = ROOT / "deploy" / "nginx" / "semantest.conf"


def render(gateway_ports: list[int], listen: int) -> str:
    text = SHIPPED.read_text()
    servers = "".join(f"    server 127.0.0.1:{port};\n" for port in gateway_ports)
    text = re.sub(r"(    ip_hash;\n)(    server .*;\n)+", lambda m: m.group(1) + servers, text)
    text = text.replace("listen 80;", f"listen 127.0.0.1:{listen};")
    assert servers in text and f"listen 127.0.0.1:{listen};" in text
    return text


@pytest.fixture(scope="module")
def balanced(module_hubs: Hubs, hub_config: dict[str, Any], redis_server: RedisServer,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.fail("nginx is missing: `make test` installs it (make system-deps)")
    env = {"REDIS_URL": redis_server.url, "REDIS_KEY_PREFIX": f"ng{uuid.uuid4().hex[:6]}:"}
    module_hubs.start("semantest-auth", env=env, config=hub_config)
    module_hubs.start("semantest-router", env=env, config=hub_config)
    ports = [module_hubs.start("semantest-gateway", env=env, config=hub_config).port
             for _ in range(2)]
    work = tmp_path_factory.mktemp("nginx")
    listen = free_port()
    (work / "semantest.conf").write_text(render(ports, listen))
    (work / "nginx.conf").write_text(
        f"worker_processes 1;\npid {work}/nginx.pid;\nerror_log {work}/error.log;\n"
        "events { worker_connections 1024; }\n"
        f"http {{\n  access_log off;\n  client_body_temp_path {work}/body;\n"
        f"  proxy_temp_path {work}/proxy;\n  include {work}/semantest.conf;\n}}\n"
    )
    process = subprocess.Popen([nginx, "-p", str(work), "-c", str(work / "nginx.conf"),
                                "-g", "daemon off;"], stderr=subprocess.PIPE)
    wait_for_port(listen, process)
    yield f"http://127.0.0.1:{listen}"
    stop_process(process)


def test_seed_examples_through_nginx(balanced: str) -> None:
    check(run_seed(balanced))


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_both_transports_through_nginx(balanced: str, transport: str,
                                             peers: list[Peer]) -> None:
    await extension(balanced, peers, {"apiKey": KEY, "role": "extension",
                                      "extensionId": f"ng-{transport}"})
    client = await connect(balanced, auth={"apiKey": KEY}, transport=transport)
    peers.append(client)
    ack = await client.call("command", {"type": "NAVIGATE",
                                        "target": {"extensionId": f"ng-{transport}"}})
    result = await client.next("result")
    assert result["id"] == ack["id"] and result["success"] is True
    assert client.sio.transport() == transport


def test_js_polling_only_client_through_nginx(balanced: str) -> None:
    done = run_node(JS / "polling_client.mjs", balanced, KEY)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1] == "polling ok"
