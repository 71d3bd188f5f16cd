"""``python -m wyoming_polytts.healthcheck``: does a Wyoming TTS server answer?

Sends ``describe`` and waits (briefly) for an ``info`` that lists an installed
TTS program. Exit status 0 when it does, 1 otherwise, with one line on stderr
saying why. Used by the Docker ``HEALTHCHECK`` of both images and by the
add-on's discovery script, which announces the server once this passes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from urllib.parse import urlparse

from wyoming.client import AsyncClient
from wyoming.info import Info

from .common.describe import ClosedBeforeInfoError, request_info

DEFAULT_URI = "tcp://127.0.0.1:10200"
_WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def local_uri(uri: str) -> str:
    """The URI a local client connects to: a wildcard listen host becomes loopback."""
    parsed = urlparse(uri)
    if parsed.scheme != "tcp" or parsed.hostname not in _WILDCARD_HOSTS:
        return uri
    return f"tcp://127.0.0.1:{parsed.port}"


async def probe(uri: str, timeout: float) -> str | None:
    """None when ``uri`` answers ``describe`` with an installed TTS program, else the problem."""
    try:
        async with asyncio.timeout(timeout):
            info = await _describe(uri)
    except TimeoutError:
        return f"no info answer within {timeout:g} s"
    except ClosedBeforeInfoError:
        return "connection closed before an info answer"
    except OSError as err:
        return f"cannot connect ({err.strerror or err})"
    except ValueError as err:
        return f"not a Wyoming URI ({err})"
    if not any(program.installed for program in info.tts):
        return "the server answers but offers no installed TTS program"
    return None


async def _describe(uri: str) -> Info:
    async with AsyncClient.from_uri(uri) as client:
        return await request_info(client.read_event, client.write_event)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m wyoming_polytts.healthcheck",
        description="Exit 0 if a Wyoming TTS server answers describe, 1 otherwise.",
    )
    parser.add_argument(
        "--uri",
        default=local_uri(os.environ.get("POLYTTS_URI") or DEFAULT_URI),
        help=f"server to ask (default: POLYTTS_URI on loopback, else {DEFAULT_URI})",
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait in total (default 5)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    problem = asyncio.run(probe(args.uri, args.timeout))
    if problem is not None:
        print(f"unhealthy: {args.uri}: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
