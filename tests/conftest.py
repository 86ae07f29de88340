"""Real parts for every test: a redis-server on a free loopback port, and hub processes.

`redis_server` starts one Redis for the session; `redis_url` gives each test its own key prefix
in it. `hub` starts `semantest-*` console scripts as real OS processes and stops them after the
test, even when it fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin"
JS = ROOT / "tests" / "js"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port} after {timeout}s")


def stop_process(process: subprocess.Popen[bytes], grace: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `grace` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def mark_tier(config: pytest.Config, items: list[pytest.Item], marker: pytest.MarkDecorator,
              start_timeout: float) -> None:
    """Mark a tier's tests; whichever runs first also pays for starting what the tier shares,
    so their pytest-timeout (when no marker sets one) gets `start_timeout` on top."""
    try:
        base = float(config.getini("timeout") or 0)
    except ValueError:  # pytest-timeout not installed
        base = 0
    for item in items:
        item.add_marker(marker)
        if base and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(base + start_timeout))


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is missing: `make test` installs it (make system-deps)")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )
    wait_for_port(port, process)
    yield RedisServer(port, process)
    stop_process(process)


@pytest.fixture
def redis_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}:"


@dataclass
class HubProcess:
    command: str
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """`kill -9`: no cleanup at all."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        stop_process(self.process)


@dataclass
class Hubs:
    """Starts hub processes for one test; everything started is stopped at teardown."""

    workdir: Path
    started: list[HubProcess] = field(default_factory=list)

    def config_file(self, config: dict[str, object]) -> Path:
        path = self.workdir / f"config-{uuid.uuid4().hex[:6]}.json"
        path.write_bytes(orjson.dumps(config))
        return path

    def start(self, command: str = "semantest-server", env: dict[str, str] | None = None,
              config: dict[str, object] | None = None, wait: bool = True,
              port: int | None = None) -> HubProcess:
        port = port or free_port()
        full_env = {key: value for key, value in os.environ.items()
                    if not key.startswith(("REDIS_", "JWT_", "AUTH_", "CONFIG_", "LOG_"))}
        full_env.update({"PORT": str(port), "HOST": "127.0.0.1", "PYTHONUNBUFFERED": "1"})
        if config is not None:
            full_env["CONFIG_FILE"] = str(self.config_file(config))
        full_env.update(env or {})
        log = self.workdir / f"{command}-{port}-{len(self.started)}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen([str(BIN / command)], env=full_env, cwd=self.workdir,
                                       stdout=sink, stderr=subprocess.STDOUT)
        hub = HubProcess(command, port, full_env, process, log)
        self.started.append(hub)
        if wait:
            try:
                wait_for_port(port, process)
            except (RuntimeError, TimeoutError) as exc:
                raise RuntimeError(f"{command} did not start: {exc}\n{hub.output()}") from None
        return hub

    def stop_all(self) -> None:
        for hub in reversed(self.started):
            hub.stop()


@pytest.fixture
def hubs(tmp_path: Path) -> Iterator[Hubs]:
    started = Hubs(tmp_path)
    yield started
    started.stop_all()


@pytest.fixture(scope="module")
def module_hubs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hubs]:
    started = Hubs(tmp_path_factory.mktemp("hubs"))
    yield started
    started.stop_all()


def run_node(script: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a test script with the official socket.io-client installed under tests/js."""
    if not (JS / "node_modules" / "socket.io-client").exists():
        pytest.fail("tests/js/node_modules is missing: `make test` installs it (make js-deps)")
    return subprocess.run(["node", str(script), *args], cwd=JS, capture_output=True, text=True,
                          timeout=timeout, check=False)
