"""Errors in OpenAI's JSON shape: ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from wyoming_polytts.errors import InvalidTextError, PolyttsError, VoiceNotFoundError

_PARAMS: dict[type[PolyttsError], str] = {VoiceNotFoundError: "voice", InvalidTextError: "input"}
"""The request field a server error is about, where one is."""


class ApiError(Exception):
    """An error answered with an HTTP status and OpenAI's error object."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        close: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.close = close
        """Close the connection after the answer (its request was not read to the end)."""

    @classmethod
    def from_polytts(cls, err: PolyttsError) -> ApiError:
        """The OpenAI form of a server error (its code with underscores, as OpenAI writes)."""
        return cls(
            err.http_status,
            str(err),
            param=_PARAMS.get(type(err)),
            code=err.code.replace("-", "_"),
        )

    @property
    def type(self) -> str:
        return "server_error" if self.status >= 500 else "invalid_request_error"

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> web.Response:
        response = web.json_response(self.body(), status=self.status)
        if self.close:
            response.force_close()
        return response
