"""The HTTP access log: what was asked and answered, never what a client sent along.

aiohttp's default line carries the request line with its query string (where a
client may put a key) and the Referer and User-Agent headers. This one logs the
peer, the method, the path without its query, the status, the body size and the
time taken; client-chosen parts are clipped.
"""

from __future__ import annotations

import logging

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from wyoming_polytts.common.echo import clip


class AccessLog(AbstractAccessLogger):
    """One INFO line per response: ``peer "METHOD /path" status bytes seconds``."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %s %s %.3fs',
            request.remote,
            clip(request.method, 16),
            clip(request.rel_url.raw_path),
            response.status,
            response.body_length,
            time,
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
