"""Debian's Chromium, headless, with the unpacked extension loaded (docs/extension.md).

`--headless=new` runs MV3 extensions without a display; `--no-sandbox` because the tests run
as root; the real binary, not /usr/bin/chromium, whose wrapper adds an empty --load-extension.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import stop_process

BINARY = Path("/usr/lib/chromium/chromium")

FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--password-store=basic",
    "--window-size=1280,900",
    "--remote-debugging-port=0",
]


@dataclass
class Chromium:
    process: subprocess.Popen[bytes]
    profile: Path
    log: Path
    devtools_url: str

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        stop_process(self.process)
        shutil.rmtree(self.profile, ignore_errors=True)


def launch(extension: Path, workdir: Path, timeout: float = 30) -> Chromium:
    """Start Chromium; answers once its DevTools endpoint is up. Raises RuntimeError if not."""
    profile = workdir / "profile"
    profile.mkdir()
    log = workdir / "chromium.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(BINARY), *FLAGS, f"--user-data-dir={profile}",
             f"--load-extension={extension}", f"--disable-extensions-except={extension}",
             "about:blank"],
            stdout=sink, stderr=subprocess.STDOUT)
    # Chromium writes the port it chose, then the browser target's path, into this file.
    active = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited with {process.returncode}: "
                               f"{log.read_text(errors='replace')[-600:]}")
        with contextlib.suppress(FileNotFoundError, ValueError):
            port, path = active.read_text().split()[:2]
            return Chromium(process, profile, log, f"ws://127.0.0.1:{int(port)}{path}")
        time.sleep(0.1)
    process.kill()
    process.wait(10)
    raise RuntimeError(f"chromium did not open its DevTools port in {timeout}s")
