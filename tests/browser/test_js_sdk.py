"""A command driven through the JS SDK (`@semantest/client`, sdk/js) into the extension in
Chromium: the same browser and hubs as test_commands.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

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
