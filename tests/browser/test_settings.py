"""The extension's settings: a bad config.json is reported (not connected with), a refused key
is reported with the hub's code, and the options page fixes both. All-in-one hub only: nothing
here depends on how the hub is deployed."""

from __future__ import annotations

from pathlib import Path

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


async def status(devtools: Devtools, shows: str, timeout: float = 10) -> str:
    """The status line of the options page, once it starts with `shows`."""
    async with devtools.options() as session:
        async def reached() -> str | None:
            line = await devtools.cdp.evaluate(
                session, "document.getElementById('status').textContent")
            return line if line.startswith(shows) else None
        return str(await eventually(reached, timeout))


async def test_bad_settings_are_reported_and_the_options_page_fixes_them(
        hubs: Hubs, tmp_path: Path) -> None:
    url = hubs.start("semantest-server", config=HUB_CONFIG).url
    process = start_browser(tmp_path, {"hubUrl": "ftp://nowhere", "extensionId": "has space",
                                       "capabilities": ["FLY"], "allowEvaluate": "yes",
                                       "maxResultBytes": 5})
    try:
        async with attached(process) as devtools:
            # Chromium answers chrome.storage.managed only 3-5 s after it starts on this machine.
            invalid = await status(devtools, "invalid: ", timeout=40)
            for named in ("hubUrl must be an http(s) or ws(s) URL", "extensionId must match",
                          "capabilities must be a non-empty list of NAVIGATE",
                          "allowEvaluate must be true or false",
                          "maxResultBytes must be an integer of at least 1024"):
                assert named in invalid
            await devtools.options_page({
                "hubUrl": url, "apiKey": "wrong-key-0123456789", "extensionId": "fixed-1",
                "capabilities": "NAVIGATE, GET_TEXT", "allowEvaluate": False,
                "maxResultBytes": "500000"})
            await status(devtools, "refused (AUTH_INVALID): API key is invalid")
            await devtools.options_page({"apiKey": KEY})
            await status(devtools, "connected")
            await registered(url, "fixed-1")
    finally:
        process.stop()
