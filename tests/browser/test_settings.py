"""The extension's settings: a bad config.json is reported (not connected with), a refused key
is reported with the hub's code, and the options page fixes both. All-in-one hub only: nothing
here depends on how the hub is deployed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.browser.conftest import (
    HUB_CONFIG,
    KEY,
    Devtools,
    attached,
    eventually,
    registered,
    start_browser,
)
from tests.conftest import Hubs


async def status(devtools: Devtools, state: str, timeout: float = 10) -> dict[str, Any]:
    """The status the extension shows on its options page, once it is `state`."""
    async def reached() -> dict[str, Any] | None:
        shown = await devtools.in_worker("(await chrome.storage.session.get('status')).status")
        return shown if shown and shown["state"] == state else None
    return await eventually(reached, timeout)


async def test_bad_settings_are_reported_and_the_options_page_fixes_them(
        hubs: Hubs, tmp_path: Path) -> None:
    url = hubs.start("semantest-server", config=HUB_CONFIG).url
    process = start_browser(tmp_path, {"hubUrl": "ftp://nowhere", "extensionId": "has space",
                                       "capabilities": ["FLY"], "allowEvaluate": "yes"})
    try:
        async with attached(process) as devtools:
            # Chromium answers chrome.storage.managed only 3-5 s after it starts on this machine.
            invalid = await status(devtools, "invalid", timeout=40)
            for named in ("hubUrl must be an http(s) or ws(s) URL", "extensionId must match",
                          "capabilities must be a non-empty list of NAVIGATE",
                          "allowEvaluate must be true or false"):
                assert named in invalid["message"]
            host = await devtools.extension_host()
            await devtools.options_page(host, {
                "hubUrl": url, "apiKey": "wrong-key-0123456789", "extensionId": "fixed-1",
                "capabilities": "NAVIGATE, GET_TEXT", "allowEvaluate": False})
            refused = await status(devtools, "refused")
            assert refused["code"] == "AUTH_INVALID"
            await devtools.options_page(host, {"apiKey": KEY})
            assert (await status(devtools, "connected"))["extensionId"] == "fixed-1"
            await registered(url, "fixed-1")
    finally:
        process.stop()
