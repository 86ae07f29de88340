"""Every command of the extension, end to end: a Python SDK client → the hub → the extension in
headless Chromium → pages served by the test. Each test runs on the all-in-one hub and on
auth + router + gateway over Redis."""

from __future__ import annotations

import asyncio
import base64

import pytest

from semantest.client import (
    Cancelled,
    CommandFailed,
    CommandTimeout,
    Forbidden,
    Hub,
    PayloadTooLarge,
    Progress,
    ValidationFailed,
)
from tests.browser import site
from tests.browser.conftest import HUB_MAX_PAYLOAD, Browser, Devtools, eventually
from tests.conftest import free_port

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


async def test_navigate_answers_url_and_title(hub: Hub, pages: str, browser: Browser) -> None:
    progress: list[Progress] = []
    result = await hub.run("NAVIGATE", url=f"{pages}/form.html", on_progress=progress.append)
    assert result.data["url"] == f"{pages}/form.html"
    assert result.data["title"] == "Form"
    assert isinstance(result.data["tabId"], int)
    assert result.extension == browser.extension_id
    assert [p.percent for p in progress] == [10, 90]


async def test_navigate_refusals(hub: Hub) -> None:
    with pytest.raises(ValidationFailed, match="NAVIGATE needs url"):
        await hub.run("NAVIGATE")
    with pytest.raises(ValidationFailed, match="must be http"):
        await hub.run("NAVIGATE", url="file:///etc/passwd")
    closed = f"http://127.0.0.1:{free_port()}/"
    with pytest.raises(CommandFailed) as failed:
        await hub.run("NAVIGATE", url=closed)
    assert failed.value.code == "NAVIGATION_FAILED" and closed in failed.value.message


async def test_navigate_that_does_not_load_in_time_or_is_cancelled(hub: Hub,
                                                                   pages: str) -> None:
    with pytest.raises(CommandTimeout, match="NAVIGATE did not finish before its deadline") as late:
        await hub.run("NAVIGATE", url=f"{pages}/slow.html?key=late", timeout=2)
    assert late.value.result is not None  # the extension's answer, before the hub's deadline
    progress: asyncio.Queue[Progress] = asyncio.Queue()
    handle = await hub.submit("NAVIGATE", url=f"{pages}/slow.html?key=cancelled",
                              on_progress=progress.put_nowait)
    assert (await asyncio.wait_for(progress.get(), 10)).percent == 10  # loading
    assert await handle.cancel() is True
    with pytest.raises(Cancelled):
        await handle
    await site.release(pages, "cancelled")
    # The browser is free for the next command: it was not left waiting for that load.
    opened = await hub.run("NAVIGATE", url=f"{pages}/form.html")
    assert opened.data["title"] == "Form"


async def test_type_fires_input_and_change_and_click_clicks(hub: Hub, pages: str) -> None:
    await hub.run("NAVIGATE", url=f"{pages}/form.html")
    typed = await hub.run("TYPE", selector="#name", text="hello")
    assert typed.data == {"value": "hello"}
    assert (await hub.run("GET_TEXT", selector="#echo")).data == {"text": "input:hello"}
    assert (await hub.run("GET_TEXT", selector="#changed")).data == {"text": "change:hello"}
    more = await hub.run("TYPE", selector="#name", text=" world", clear=False)
    assert more.data == {"value": "hello world"}
    # The seed's shape works too: the selector in `target`.
    clicked = await hub.run("CLICK", target={"selector": "#go"})
    assert clicked.data == {"clicked": True, "tag": "button"}
    await hub.run("CLICK", selector="#go")
    assert (await hub.run("GET_TEXT", selector="#count")).data == {"text": "2"}
    assert "Go" in (await hub.run("GET_TEXT")).data["text"]  # no selector: the whole page


async def test_page_command_errors(hub: Hub, pages: str) -> None:
    await hub.run("NAVIGATE", url=f"{pages}/form.html")
    with pytest.raises(CommandFailed) as missing:
        await hub.run("CLICK", selector="#nothing")
    assert (missing.value.code, missing.value.message) == ("NOT_FOUND",
                                                           "no element matches #nothing")
    with pytest.raises(ValidationFailed, match="bad selector"):
        await hub.run("GET_TEXT", selector="##")
    with pytest.raises(ValidationFailed, match="not a text field"):
        await hub.run("TYPE", selector="#go", text="x")
    with pytest.raises(ValidationFailed, match="TYPE needs text"):
        await hub.run("TYPE", selector="#name")
    with pytest.raises(ValidationFailed, match="CLICK needs selector"):
        await hub.run("CLICK")
    with pytest.raises(CommandFailed) as no_tab:
        await hub.run("GET_TEXT", tabId=987654)
    assert no_tab.value.code == "NOT_FOUND"


async def test_wait_for_reports_progress_and_times_out_clearly(hub: Hub, pages: str) -> None:
    await hub.run("NAVIGATE", url=f"{pages}/late.html?key=wait")
    progress: asyncio.Queue[Progress] = asyncio.Queue()
    handle = await hub.submit("WAIT_FOR", selector="#late", on_progress=progress.put_nowait)
    assert (await asyncio.wait_for(progress.get(), 10)).message == "waiting for #late"
    await site.release(pages, "wait")  # only now does #late appear
    assert (await handle).data["found"] is True
    with pytest.raises(CommandTimeout, match="no element matched #never") as late:
        await hub.run("WAIT_FOR", selector="#never", options={"timeout": 300})
    assert late.value.result is not None  # the extension's answer, not the hub's deadline
    with pytest.raises(ValidationFailed, match="WAIT_FOR timeout"):
        await hub.run("WAIT_FOR", selector="#late", options={"timeout": "soon"})


async def test_evaluate_is_off_until_the_options_page_turns_it_on(
        hub: Hub, pages: str, devtools: Devtools, browser: Browser) -> None:
    await hub.run("NAVIGATE", url=f"{pages}/form.html")
    with pytest.raises(Forbidden, match="allowEvaluate"):
        await hub.run("EVALUATE", expression="1 + 1")
    await devtools.options_page({"allowEvaluate": True})
    try:
        # The worker reconnects with the new settings under the same extensionId.
        assert (await hub.run("EVALUATE", expression="document.title")).data == {"value": "Form"}
        answer = await hub.run("EVALUATE", expression="Promise.resolve({sum: 1 + 1})")
        assert answer.data == {"value": {"sum": 2}}
        assert (await hub.run("EVALUATE", expression="undefined")).data == {"value": None}
        with pytest.raises(CommandFailed, match="ReferenceError") as thrown:
            await hub.run("EVALUATE", expression="noSuchName")
        assert thrown.value.code == "EVALUATION_FAILED"
        await hub.run("NAVIGATE", url=f"{pages}/csp.html")
        with pytest.raises(CommandFailed, match="EvalError") as csp:
            await hub.run("EVALUATE", expression="1 + 1")
        assert csp.value.code == "EVALUATION_FAILED"
    finally:
        await devtools.options_page({"allowEvaluate": False})


async def test_screenshot_is_a_png_and_can_go_to_the_downloads_channel(hub: Hub,
                                                                       pages: str) -> None:
    await hub.run("NAVIGATE", url=f"{pages}/form.html")
    shot = await hub.run("SCREENSHOT")
    assert shot.data["mimeType"] == "image/png"
    png = base64.b64decode(shot.data["data"])
    assert png.startswith(PNG_SIGNATURE)
    assert shot.data["width"] == 1280 and shot.data["height"] > 500
    async with hub.subscribe("downloads") as downloads:
        saved = await hub.run("SCREENSHOT", download=True, filename="form.png")
        message = await asyncio.wait_for(anext(downloads), 10)
    assert saved.data["download"] == {"filename": "form.png", "mimeType": "image/png"}
    assert message.message["id"] == saved.id
    assert message.message["data"]["download"]["filename"] == "form.png"


async def test_download_image(hub: Hub, pages: str) -> None:
    await hub.run("NAVIGATE", url=f"{pages}/form.html")
    async with hub.subscribe("downloads") as downloads:
        by_selector = await hub.run("DOWNLOAD_IMAGE", selector="#pic")
        message = await asyncio.wait_for(anext(downloads), 10)
    assert base64.b64decode(by_selector.data["data"]) == site.IMAGE
    assert by_selector.data | {"data": None} == {
        "url": f"{pages}/image.png", "filename": "image.png", "mimeType": "image/png",
        "size": len(site.IMAGE), "data": None}
    assert message.message["id"] == by_selector.id
    by_url = await hub.run("DOWNLOAD_IMAGE", url=f"{pages}/image.png", filename="red.png")
    assert by_url.data["filename"] == "red.png" and by_url.data["size"] == len(site.IMAGE)
    for path, reason in (("missing.png", "HTTP 404"), ("not-an-image.png", "not an image")):
        with pytest.raises(CommandFailed, match=reason) as failed:
            await hub.run("DOWNLOAD_IMAGE", url=f"{pages}/{path}")
        assert failed.value.code == "DOWNLOAD_FAILED"
    with pytest.raises(ValidationFailed, match="DOWNLOAD_IMAGE needs selector"):
        await hub.run("DOWNLOAD_IMAGE")


async def test_results_too_large_for_the_hub_fail_clearly(hub: Hub, pages: str) -> None:
    # Over the extension's maxResultBytes (1 MiB): it never sends the result.
    with pytest.raises(PayloadTooLarge, match="over maxResultBytes") as own:
        await hub.run("DOWNLOAD_IMAGE", url=f"{pages}/noise.png?bytes=900000")
    assert own.value.result is not None
    # Under it but over the hub's websocket.maxPayload: the hub refuses it, the extension says so.
    with pytest.raises(PayloadTooLarge, match=f"websocket.maxPayload is {HUB_MAX_PAYLOAD}"):
        await hub.run("DOWNLOAD_IMAGE", url=f"{pages}/noise.png?bytes=500000")
    small = await hub.run("DOWNLOAD_IMAGE", url=f"{pages}/noise.png?bytes=1000")
    assert small.data["size"] == 1000


async def test_list_and_close_tabs(hub: Hub, pages: str) -> None:
    opened = await hub.run("NAVIGATE", url=f"{pages}/form.html", newTab=True)
    tab_id = opened.data["tabId"]
    tabs = {tab["id"]: tab for tab in (await hub.run("LIST_TABS")).data["tabs"]}
    assert tabs[tab_id]["url"] == f"{pages}/form.html" and tabs[tab_id]["title"] == "Form"
    assert (await hub.run("CLOSE_TAB", tabId=tab_id)).data == {"closed": tab_id}
    assert tab_id not in {tab["id"] for tab in (await hub.run("LIST_TABS")).data["tabs"]}
    with pytest.raises(CommandFailed, match=f"no tab with id {tab_id}"):
        await hub.run("CLOSE_TAB", tabId=tab_id)


async def test_unknown_type_is_a_clear_error(hub: Hub) -> None:
    with pytest.raises(CommandFailed) as unknown:
        await hub.run("FLY")
    assert unknown.value.code == "UNKNOWN_COMMAND"
    assert unknown.value.message.startswith('unknown command type "FLY": this extension runs')
    assert "SCREENSHOT" in unknown.value.message


async def test_cancel_stops_the_work_in_the_browser(hub: Hub, pages: str,
                                                    devtools: Devtools) -> None:
    await hub.run("NAVIGATE", url=f"{pages}/late.html?key=never")
    started: asyncio.Queue[Progress] = asyncio.Queue()
    handle = await hub.submit("WAIT_FOR", selector="#late", on_progress=started.put_nowait)
    await asyncio.wait_for(started.get(), 10)  # the browser is polling the page
    stored = f"(await chrome.storage.session.get('cmd:{handle.id}'))['cmd:{handle.id}'] ?? null"
    assert (await devtools.in_worker(stored))["command"]["type"] == "WAIT_FOR"
    assert await handle.cancel() is True
    with pytest.raises(Cancelled):
        await handle
    # The extension drops it (and stops polling the page).
    await eventually(lambda: devtools.in_worker(f"{stored} === null"))
