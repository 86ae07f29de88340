"""The extension survives its service worker being stopped (as Chromium does to idle or
long-running MV3 workers): stopped for real over DevTools (`Target.closeTarget` on the worker
target), it comes back, reconnects with the same extensionId within the hub's grace period, and
the command it had acknowledged still ends in its result."""

from __future__ import annotations

import asyncio
import json

from semantest.client import Hub, Progress
from tests.browser import site
from tests.browser.conftest import Browser, Devtools, eventually


async def stop_worker(devtools: Devtools) -> str:
    """Stop the extension's service worker; answers its (old) target id."""
    old = await devtools.worker()
    await devtools.cdp.send("Target.closeTarget", {"targetId": old})
    return old


async def test_command_in_flight_survives_a_worker_stop(hub: Hub, pages: str, browser: Browser,
                                                        devtools: Devtools) -> None:
    await hub.run("NAVIGATE", url=f"{pages}/late.html?key=restart")
    progress: asyncio.Queue[Progress] = asyncio.Queue()
    handle = await hub.submit("WAIT_FOR", selector="#late", on_progress=progress.put_nowait)
    await asyncio.wait_for(progress.get(), 10)  # acknowledged and running in the old worker
    old = await stop_worker(devtools)
    await devtools.worker(other_than=old)  # nothing but the extension itself starts it again
    await site.release(pages, "restart")  # #late appears only after the worker was replaced
    result = await handle
    assert result.data["found"] is True
    assert result.extension == browser.extension_id
    # nothing left behind (the record goes once the hub has the result, just after the client)
    await eventually(lambda: devtools.in_worker(
        "!Object.keys(await chrome.storage.session.get(null)).some(k => k.startsWith('cmd:'))"))


async def test_commands_sent_while_the_worker_is_stopped_run_when_it_is_back(
        hub: Hub, pages: str, browser: Browser, devtools: Devtools) -> None:
    await hub.run("NAVIGATE", url=f"{pages}/form.html")
    old = await stop_worker(devtools)
    text = await hub.run("GET_TEXT", selector="#count")  # the hub holds it in the grace period
    assert text.data == {"text": "0"}
    assert text.extension == browser.extension_id
    await devtools.worker(other_than=old)


async def test_a_result_stored_but_not_sent_is_sent_by_the_next_worker(
        hub: Hub, pages: str, devtools: Devtools) -> None:
    """The worker stopped between writing a result down and the hub confirming it: the state is
    made by hand (that moment is too short to hit), then the worker is stopped for real."""
    await hub.run("NAVIGATE", url=f"{pages}/late.html?key=never-released")
    progress: asyncio.Queue[Progress] = asyncio.Queue()
    handle = await hub.submit("WAIT_FOR", selector="#late", on_progress=progress.put_nowait)
    await asyncio.wait_for(progress.get(), 10)
    key = f"cmd:{handle.id}"
    result = json.dumps({"id": handle.id, "success": True, "data": {"found": True, "kept": True}})
    await devtools.in_worker(f"""chrome.storage.session.get('{key}').then((stored) =>
        chrome.storage.session.set({{'{key}': {{...stored['{key}'], result: {result}}}}}))""")
    old = await stop_worker(devtools)
    await devtools.worker(other_than=old)
    assert (await handle).data == {"found": True, "kept": True}
