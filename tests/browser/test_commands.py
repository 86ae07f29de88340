"""Every command of the extension, end to end: a Python SDK client → the hub → the extension in
headless Chromium → pages served by the test. Each test runs on the all-in-one hub and on
auth + router + gateway over Redis."""

from __future__ import annotations

from semantest.client import Hub
from tests.browser.conftest import Browser


async def test_navigate_answers_url_and_title(hub: Hub, pages: str, browser: Browser) -> None:
    progress = []
    result = await hub.run("NAVIGATE", url=f"{pages}/form.html", on_progress=progress.append)
    assert result.data["url"] == f"{pages}/form.html"
    assert result.data["title"] == "Form"
    assert result.extension == browser.extension_id
    assert [p.percent for p in progress] == [10, 90]
