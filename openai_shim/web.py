"""The web page at ``/``: hear every voice, speak typed text, clone and manage voices.

The page is static HTML, CSS and JavaScript modules in the ``web`` folder beside
this module, with no build step and nothing fetched from elsewhere; it calls the
same endpoints as any client. Every URL in it is relative, so it works behind
Home Assistant's ingress proxy, which serves it under
``/api/hassio_ingress/<token>/`` and names that prefix in ``X-Ingress-Path``:
the page's ``<base href>`` is set from that header, so relative URLs resolve
under the prefix even when the address lacks its trailing slash.
"""

from __future__ import annotations

import functools
import html
import re
from pathlib import Path

from aiohttp import hdrs, web

WEB_DIR = Path(__file__).parent / "web"

_BASE_MARK = '<base href="./">'
"""The ``<base>`` element of index.html, replaced by the ingress prefix when there is one."""

INGRESS_HEADER = "X-Ingress-Path"
"""Header naming the path prefix Home Assistant's ingress serves the page under."""

_INGRESS_PATH = re.compile(r"^/[A-Za-z0-9/_.~-]*$")
"""A plausible ``X-Ingress-Path`` (``/api/hassio_ingress/<token>``); anything else is ignored."""

_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}

_POLICY = "; ".join(
    (
        "default-src 'self'",
        "img-src 'self' data:",
        "media-src 'self' blob: data:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
    )
)
"""Content-Security-Policy of the page: its own files and the API, nothing from elsewhere."""

_NO_CACHE: dict[str, str] = {hdrs.CACHE_CONTROL: "no-cache"}
"""Browsers revalidate (ETag / Last-Modified), so an upgraded server serves its new page."""


@functools.cache
def _template() -> str:
    page = (WEB_DIR / "index.html").read_text(encoding="utf-8")
    if _BASE_MARK not in page:
        raise RuntimeError(f"index.html lacks {_BASE_MARK}")
    return page


def base_href(ingress_path: str | None) -> str:
    """The page's base URL: the ingress prefix with a trailing slash, else the page's folder."""
    if ingress_path and _INGRESS_PATH.match(ingress_path):
        return ingress_path.rstrip("/") + "/"
    return "./"


async def index(request: web.Request) -> web.Response:
    base = html.escape(base_href(request.headers.get(INGRESS_HEADER)), quote=True)
    page = _template().replace(_BASE_MARK, f'<base href="{base}">')
    return web.Response(
        text=page,
        content_type="text/html",
        headers={**_NO_CACHE, "Content-Security-Policy": _POLICY},
    )


async def asset(request: web.Request) -> web.FileResponse:
    """One of the page's scripts, styles or icons; nothing else in the folder is served."""
    name = request.match_info["name"]
    path = WEB_DIR / name
    kind = _TYPES.get(path.suffix)
    if kind is None or "/" in name or name.startswith(".") or not path.is_file():
        raise web.HTTPNotFound(text=f"no file '{name}' in the web page")
    return web.FileResponse(path, headers={**_NO_CACHE, hdrs.CONTENT_TYPE: kind})
