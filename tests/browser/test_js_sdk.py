"""Commands driven through the JS SDK (`@semantest/client`, sdk/js) into the extension in
Chromium: the same browser and hubs as test_commands.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.browser import site
from tests.browser.conftest import KEY, Browser, Devtools
from tests.conftest import ROOT

SCRIPT = Path(__file__).with_name("js_sdk_screenshot.mjs")


async def test_navigate_screenshot_and_an_error_through_the_js_sdk(
        hub_url: str, pages: str, browser: Browser, devtools: Devtools) -> None:
    if not (ROOT / "sdk" / "js" / "dist" / "index.js").exists():
        pytest.fail("sdk/js is not built: `make test` builds it (make sdk-js)")
    node = await asyncio.create_subprocess_exec(
        "node", str(SCRIPT), hub_url, KEY, f"{pages}/form.html",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(node.communicate(), 60)
    assert node.returncode == 0, err.decode()
    seen = json.loads(out.decode().strip().splitlines()[-1])
    assert seen["opened"]["url"] == f"{pages}/form.html" and seen["opened"]["title"] == "Form"
    assert seen["extension"] == browser.extension_id
    assert seen["progress"] == [10, 90]
    assert seen["shot"] == {"mimeType": "image/png", "png": "89504e470d0a1a0a"}
    assert seen["failure"] == {"typed": True, "code": "NOT_FOUND",
                               "message": "no element matches #nothing"}


async def test_every_command_type_through_the_js_sdk(
        hub_url: str, pages: str, browser: Browser) -> None:
    node = await asyncio.create_subprocess_exec(
        "node", str(Path(__file__).with_name("js_sdk_commands.mjs")), hub_url, KEY, pages,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(node.communicate(), 90)
    assert node.returncode == 0, err.decode()
    seen = json.loads(out.decode().strip().splitlines()[-1])
    assert seen["navigate"] == "Form"
    assert seen["type"] == {"value": "js"} and seen["echo"] == {"text": "input:js"}
    assert seen["click"] == {"clicked": True, "tag": "button"} and seen["count"] == {"text": "1"}
    assert seen["waitFor"] is True
    assert seen["image"] == {"filename": "image.png", "size": len(site.IMAGE)}
    assert seen["screenshot"] == "image/png"
    assert seen["listed"] is True and seen["closed"] is True
    assert seen["evaluate"] == {"class": "ForbiddenError", "code": "FORBIDDEN"}
    assert seen["unknown"] == {"class": "CommandFailedError", "code": "UNKNOWN_COMMAND"}
    assert seen["invalid"] == {"class": "ValidationFailedError", "code": "VALIDATION_FAILED"}
    assert seen["cancelAccepted"] is True
    assert seen["cancelled"] == {"class": "CancelledError", "code": "CANCELLED"}
