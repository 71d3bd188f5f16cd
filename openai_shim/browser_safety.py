"""Checks that keep web pages elsewhere from using the API through the user's browser.

- **Host** (DNS rebinding): a page on ``evil.example`` whose name is made to resolve
  to this server's address can read and call the API as its own origin; the browser
  then sends ``Host: evil.example``. Only IP literals, ``localhost``, this machine's
  own names and ``openai.allowed_hosts`` are served.
- **Origin** (cross-site requests): a page elsewhere may POST a "simple request" to
  the API without a CORS preflight. Every request that changes state or
  synthesizes and carries an ``Origin`` must come from the server's own address
  (its web page) or an origin in ``openai.cors_origins``. Clients that are not
  browsers send no ``Origin`` and are not affected.
- **Trusted ingress**: Home Assistant's Supervisor forwards its users' requests
  with ``X-Ingress-Path`` after Home Assistant authenticated them, under the
  address of Home Assistant. Such a request, from a peer in
  ``openai.trusted_proxies``, passes these checks and needs no API key.
"""

from __future__ import annotations

import ipaddress
import re
import socket

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from wyoming_polytts.common.echo import clip

from .errors import ApiError
from .middleware import READ_METHODS, Cors
from .settings import ShimSettings
from .web import INGRESS_HEADER

_AUTHORITY = re.compile(
    r"(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)(?:%[^\]]*)?\]|(?P<name>[^:\[\]@/\\?#\s]+))(?::(?P<port>\d{1,5}))?"
)
"""``host[:port]`` as in a Host header or an origin: a bracketed IPv6 address or a name."""

_DEFAULT_PORTS = {"http": 80, "https": 443}


def own_names() -> set[str]:
    """This machine's names: ``localhost``, its host name (short, with ``.local``) and FQDN."""
    hostname = socket.gethostname()
    short = hostname.split(".")[0]
    return {"localhost", hostname, short, f"{short}.local", socket.getfqdn()}


class BrowserGuard:
    """The Host and Origin checks (middlewares) and who is exempt from them."""

    def __init__(self, settings: ShimSettings) -> None:
        self._any_host = "*" in settings.allowed_hosts
        self._hosts = frozenset(
            _folded(name) for name in (*own_names(), *settings.allowed_hosts) if name
        )
        self._cors = Cors(settings.cors_origins)
        self._proxies = settings.trusted_proxies

    def via_ingress(self, request: web.Request) -> bool:
        """Whether a trusted proxy forwarded the request for a user it authenticated."""
        if not self._proxies or INGRESS_HEADER not in request.headers:
            return False
        try:
            peer = ipaddress.ip_address(request.remote or "")
        except ValueError:
            return False
        if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
            peer = peer.ipv4_mapped
        return peer in self._proxies

    @web.middleware
    async def check_host(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Refuse (403) a Host header naming a host that is not this server."""
        host = request.headers.get(hdrs.HOST)
        if host is not None and not self._host_allowed(host) and not self.via_ingress(request):
            raise ApiError(
                403,
                f"host {clip(host, 80)!r} is not served here: reach the server by its IP "
                "address, or add the name to openai.allowed_hosts",
                code="host_not_allowed",
            )
        return await handler(request)

    @web.middleware
    async def check_origin(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Refuse (403) a request that changes something from a web page elsewhere."""
        origin = request.headers.get(hdrs.ORIGIN)
        if (
            origin is None
            or request.method in READ_METHODS
            or self._cors.allowed(request) is not None
            or _same_origin(origin, request.headers.get(hdrs.HOST, ""))
            or self.via_ingress(request)
        ):
            return await handler(request)
        raise ApiError(
            403,
            f"requests from web pages at {clip(origin, 80)} are refused; "
            "add that origin to openai.cors_origins to allow it",
            code="origin_not_allowed",
        )

    def _host_allowed(self, header: str) -> bool:
        if self._any_host:
            return True
        match = _AUTHORITY.fullmatch(header)
        if match is None:
            return False
        if match["ipv6"] is not None:
            return _is_address(match["ipv6"])
        name = _folded(match["name"])
        return name in self._hosts or _is_address(name)


def _same_origin(origin: str, host_header: str) -> bool:
    """Whether ``origin`` is the address the request was sent to (the server's own page).

    Host names must be equal; ports too when the Host header names one (a proxy in
    front, e.g. one adding TLS, may leave the port out).
    """
    scheme, _, authority = origin.partition("://")
    ours, theirs = _AUTHORITY.fullmatch(host_header), _AUTHORITY.fullmatch(authority)
    if scheme not in _DEFAULT_PORTS or ours is None or theirs is None:
        return False
    if _host_of(ours) != _host_of(theirs):
        return False
    port = theirs["port"] or _DEFAULT_PORTS[scheme]
    return ours["port"] is None or int(ours["port"]) == int(port)


def _host_of(match: re.Match[str]) -> str:
    return match["ipv6"].lower() if match["ipv6"] is not None else _folded(match["name"])


def _folded(name: str) -> str:
    return name.lower().rstrip(".")


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
