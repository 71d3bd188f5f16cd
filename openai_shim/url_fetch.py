"""Fetch a voice's reference audio from a URL, safely.

Only http(s) to public addresses: every host (including each redirect's) is
resolved first and refused when any of its addresses is loopback, private,
link-local or otherwise not globally routable (an IPv6 address that carries an
IPv4 one, as IPv4-mapped, IPv4-compatible, 6to4, Teredo and NAT64 addresses do,
is judged by that IPv4 address too), and the connection goes to the checked
address. Size and total time are bounded.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urljoin, urlparse

import aiohttp

from wyoming_polytts.common.echo import clip
from wyoming_polytts.errors import InvalidRequestError

from .bounded_read import read_bounded

_MAX_REDIRECTS = 3
_CARRY_IPV4 = (ipaddress.ip_network("::/96"), ipaddress.ip_network("64:ff9b::/96"))
"""IPv6 ranges whose last 32 bits are an IPv4 address: IPv4-compatible and NAT64."""


async def fetch_audio(url: str, max_bytes: int, timeout: float) -> bytes:
    """The body at ``url``; raises a client error for anything not allowed or too big."""
    try:
        async with asyncio.timeout(timeout):
            return await _fetch(url, max_bytes)
    except TimeoutError as err:
        raise InvalidRequestError(f"fetching {clip(url)} took longer than {timeout:g} s") from err
    except aiohttp.ClientError as err:
        raise InvalidRequestError(f"fetching {clip(url)} failed: {clip(err)}") from err


async def _fetch(url: str, max_bytes: int) -> bytes:
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(resolver=_PublicResolver(), use_dns_cache=False)
    ) as session:
        for _ in range(_MAX_REDIRECTS + 1):
            await _check_url(url)
            async with session.get(url, allow_redirects=False) as response:
                if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                    url = urljoin(url, response.headers["Location"])
                    continue
                if response.status != 200:
                    raise InvalidRequestError(
                        f"fetching {clip(url)} failed: HTTP {response.status}"
                    )
                return await read_bounded(
                    response.content, response.content_length, max_bytes, "the audio at the URL"
                )
        raise InvalidRequestError(f"fetching {clip(url)} failed: too many redirects")


async def _check_url(url: str) -> None:
    try:
        parsed = urlparse(url)
        host, port = parsed.hostname, parsed.port  # .port raises for "x:y" or 99999
    except ValueError as err:  # also "http://[::1/"
        raise InvalidRequestError(f"{clip(url)} is not a valid URL: {clip(err)}") from err
    if parsed.scheme not in ("http", "https") or not host:
        raise InvalidRequestError("only http:// and https:// URLs with a host are accepted")
    await _public_addresses(host, port or 0)


async def _public_addresses(host: str, port: int) -> list[str]:
    """The host's addresses, if every one is public; else refuse."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as err:  # UnicodeError: not a valid IDNA name
        raise InvalidRequestError(f"cannot resolve host {clip(host)!r}") from err
    addresses = sorted({str(info[4][0]) for info in infos})
    for address in addresses:
        if not _is_public(ipaddress.ip_address(address.split("%")[0])):
            raise InvalidRequestError(
                f"refusing to fetch from {clip(host)}: {address} is not a public address"
            )
    return addresses


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped.is_global
        carried = [ip.sixtofour, ip.teredo[1] if ip.teredo else None]
        if any(ip in network for network in _CARRY_IPV4):
            carried.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if any(v4 is not None and not v4.is_global for v4 in carried):
            return False
    return ip.is_global


class _PublicResolver(aiohttp.abc.AbstractResolver):
    """Resolves like the system, but only ever hands out checked public addresses."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in await _public_addresses(host, port)
        ]

    async def close(self) -> None:
        """Nothing to release."""
