"""Driving the web page in Debian's Chromium: a watched page, waits, screenshots, and a
reverse proxy that serves the server under a Home Assistant ingress prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from aiohttp import web
from playwright.async_api import ConsoleMessage, Page

from .helpers import free_port

CHROMIUM = "/usr/bin/chromium"
"""Debian's package (``make test`` installs it); Playwright never downloads a browser here."""

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
JOE = "en_US-joe-medium"
TOKEN = "/api/hassio_ingress/5e5a1b2c3d4e5f60718293a4b5c6d7e8"
"""The path prefix the Supervisor serves an add-on's ingress page under."""

STATES = "#speak-status:is([data-state=done], [data-state=failed], [data-state=stopped])"

LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]
"""Headless system Chromium that plays audio without a gesture and grants a fake microphone."""


class Watched:
    """A fresh page whose console errors and uncaught exceptions are collected."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.allowed: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and not any(text in message.text for text in self.allowed):
            self.errors.append(message.text)


async def open_page(watched: Watched, url: str) -> Page:
    page = watched.page
    await page.goto(url)
    await page.locator(f'li.voice[data-voice="{JOE}"]').wait_for()
    await page.locator("#engine-table tbody tr").first.wait_for()
    return page


async def spoken(page: Page, timeout: float = 60_000) -> float:
    """Wait for the Speak status to settle; the <audio> element's duration in seconds."""
    status = page.locator(STATES)
    await status.wait_for(timeout=timeout)
    assert await status.get_attribute("data-state") == "done", await status.text_content()
    return float(await page.evaluate("document.querySelector('#player').duration"))


async def shot(page: Page, name: str, full: bool = True) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"web-{name}.png"), full_page=full)


def plausible(seconds: float, text: str) -> None:
    assert len(text) / 25 <= seconds <= len(text) / 6 + 1.0, f"{seconds:.2f} s for {text!r}"


@asynccontextmanager
async def ingress_proxy(target: int, seen: list[str]) -> AsyncIterator[int]:
    """Forward TOKEN/... to the server as the Supervisor does, streaming the answers."""

    async def forward(request: web.Request) -> web.StreamResponse:
        seen.append(request.path)
        if not request.path.startswith(TOKEN):
            raise web.HTTPNotFound()
        path = request.path[len(TOKEN) :] or "/"
        # Every header goes on, Host and Origin included, as Home Assistant and the
        # Supervisor forward them; the server trusts this peer (openai.trusted_proxies).
        skip = ("content-length", "transfer-encoding")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
        headers["X-Ingress-Path"] = TOKEN
        async with session.request(
            request.method,
            f"http://127.0.0.1:{target}{path}",
            params=request.query,
            headers=headers,
            data=await request.read(),
            allow_redirects=False,
        ) as upstream:
            response = web.StreamResponse(status=upstream.status)
            for name in ("Content-Type", "Content-Security-Policy", "Cache-Control"):
                if name in upstream.headers:
                    response.headers[name] = upstream.headers[name]
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            yield port
        finally:
            await runner.cleanup()
