"""The pages the browser tests open: an aiohttp app on a loopback port, nothing from the internet.

- `/form.html`: a text field that echoes what its `input` and `change` events saw, a button
  that counts its clicks, and an image;
- `/late.html?key=k`: `#late` appears once the test calls `release(base, k)` (when the test has
  seen what it must see first: no timing); `/slow.html?key=k` answers (the form) only then;
- `/image.png` (a real PNG), `/noise.png?bytes=n` (n random bytes said to be a PNG),
  `/not-an-image.png` (text), anything else 404;
- `/csp.html`: a page whose Content-Security-Policy forbids eval.
"""

from __future__ import annotations

import asyncio
import os
import struct
import zlib
from collections import defaultdict
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

FORM = """<!doctype html><title>Form</title>
<input id="name"><p id="echo"></p><p id="changed"></p>
<button id="go">Go</button><p id="count">0</p><img id="pic" src="/image.png">
<script>
  const $ = (id) => document.getElementById(id);
  const field = $('name');
  field.addEventListener('input', () => { $('echo').textContent = 'input:' + field.value; });
  field.addEventListener('change', () => { $('changed').textContent = 'change:' + field.value; });
  $('go').addEventListener('click', () => { $('count').textContent++; });
</script>"""

LATE = """<!doctype html><title>Late</title><p id="early">here now</p>
<script>
  const key = new URLSearchParams(location.search).get('key');
  fetch('/released?key=' + key).then(() =>
    document.body.insertAdjacentHTML('beforeend', '<p id="late">late</p>'));
</script>"""

CSP = "<!doctype html><title>Strict</title><p>no eval here</p>"


def png(width: int, height: int) -> bytes:
    """A solid red RGB PNG, built by hand so the tests need no imaging library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                              0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


IMAGE = png(40, 30)

Handler = Callable[[web.Request], Awaitable[web.Response]]


def page(body: str, **headers: str) -> Handler:
    async def handler(_: web.Request) -> web.Response:
        return web.Response(text=body, content_type="text/html", headers=headers)
    return handler


RELEASES = web.AppKey("releases", dict[str, asyncio.Event])


async def release(base: str, key: str) -> None:
    """Let the `/late.html?key=<key>` pages show their `#late`."""
    async with aiohttp.ClientSession() as http, http.post(f"{base}/release?key={key}") as done:
        assert done.status == 204


def app() -> web.Application:
    site = web.Application()
    site[RELEASES] = defaultdict(asyncio.Event)

    async def released(request: web.Request) -> web.Response:
        await request.app[RELEASES][request.query["key"]].wait()
        return web.Response(status=204)

    async def slow(request: web.Request) -> web.Response:
        await request.app[RELEASES][request.query["key"]].wait()
        return web.Response(text=FORM, content_type="text/html")

    async def set_free(request: web.Request) -> web.Response:
        request.app[RELEASES][request.query["key"]].set()
        return web.Response(status=204)

    async def release_all(site: web.Application) -> None:  # nothing waits past the test
        for event in site[RELEASES].values():
            event.set()

    async def image(_: web.Request) -> web.Response:
        return web.Response(body=IMAGE, content_type="image/png")

    async def noise(request: web.Request) -> web.Response:
        return web.Response(body=os.urandom(int(request.query["bytes"])),
                            content_type="image/png")

    async def text(_: web.Request) -> web.Response:
        return web.Response(text="not an image", content_type="text/plain")

    site.router.add_get("/form.html", page(FORM))
    site.router.add_get("/late.html", page(LATE))
    site.router.add_get("/csp.html", page(CSP, **{"Content-Security-Policy": "script-src 'self'"}))
    site.router.add_get("/image.png", image)
    site.router.add_get("/not-an-image.png", text)
    site.router.add_get("/noise.png", noise)
    site.router.add_get("/released", released)
    site.router.add_get("/slow.html", slow)
    site.router.add_post("/release", set_free)
    site.on_shutdown.append(release_all)
    return site
