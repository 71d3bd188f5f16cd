"""A scripted OpenAI-compatible speech server, for measuring our overhead and for faults.

It answers ``GET /v1/audio/voices`` with its voice list and ``POST
/v1/audio/speech`` with fixed audio (pcm or wav, written in pieces), at once, so
that the time it takes is ours alone; or it misbehaves as its :class:`Script`
says: an error status with an OpenAI-shaped body (the 401 echoes the key it was
sent, as some servers do), a stall, audio held back after the first piece. It
records every speech request's body. It runs on an event loop in a thread of its
own, on a free loopback port, so a caller that blocks does not block it.
"""

from __future__ import annotations

import asyncio
import io
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soundfile
from aiohttp import web

from wyoming_polytts.engines.upstream.client import LoopThread

from .server_process import free_port
from .wyoming_client import HOST

HOLD_LIMIT = 300.0
"""Longest wait for :attr:`Script.hold`, beyond any client's patience."""


@dataclass
class Script:
    """What the server does; the caller may change it between requests."""

    audio: np.ndarray
    """16-bit mono samples every speech answer carries."""

    rate: int
    voices: list[str] = field(default_factory=lambda: ["echo"])
    piece: int = 2048
    """Samples per write."""

    key: str | None = None
    """The bearer key required, if any; a wrong one gets a 401 that repeats it."""

    voices_status: int = 200
    speech_status: int = 200
    stall: float = 0.0
    """Seconds to wait before answering a speech request."""

    hold: threading.Event | None = None
    """When set: after the first piece of audio, wait for this event before the rest."""

    bodies: list[dict[str, Any]] = field(default_factory=list)


class ScriptedUpstream:
    """The server; :meth:`start` and :meth:`stop` from any thread."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.port = free_port()
        self._loop: LoopThread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    def start(self) -> ScriptedUpstream:
        app = web.Application()
        app.router.add_get("/v1/audio/voices", self._voices)
        app.router.add_post("/v1/audio/speech", self._speech)
        self._loop = LoopThread("scripted-upstream")
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        self._loop.run(self._serve(self._runner))
        return self

    async def _serve(self, runner: web.AppRunner) -> None:
        await runner.setup()
        await web.TCPSite(runner, HOST, self.port).start()

    def stop(self) -> None:
        if self._loop is not None and self._runner is not None:
            self._loop.run(self._runner.cleanup())
            self._loop.stop()
        self._loop = self._runner = None

    # --- answers ------------------------------------------------------------

    def _refusal(self, request: web.Request) -> web.Response | None:
        script = self.script
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if script.key is not None and sent != script.key:
            return _error(401, f"Incorrect API key provided: {sent}", "invalid_api_key")
        return None

    async def _voices(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        if self.script.voices_status != 200:
            return _error(self.script.voices_status, "the voice list is unwell", "scripted")
        return web.json_response({"voices": self.script.voices})

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        script = self.script
        body = await request.json()
        script.bodies.append(body)
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        if script.stall:
            await asyncio.sleep(script.stall)
        if script.speech_status != 200:
            return _error(script.speech_status, "the model fell over", "scripted_failure")
        if body.get("voice") not in script.voices:
            return _error(404, f"voice {body.get('voice')!r} not found", "voice_not_found")
        response = web.StreamResponse()
        response.content_type = "audio/pcm" if body["response_format"] == "pcm" else "audio/wav"
        await response.prepare(request)
        data = script.audio.astype("<i2").tobytes()
        if body["response_format"] == "wav":
            data = _wav_header(script.rate) + data
        step = script.piece * 2
        for start in range(0, len(data), step):
            await response.write(data[start : start + step])
            if start == 0 and script.hold is not None:
                await asyncio.to_thread(script.hold.wait, HOLD_LIMIT)
        await response.write_eof()
        return response


def _error(status: int, message: str, code: str) -> web.Response:
    error = {"message": message, "type": "invalid_request_error", "code": code}
    return web.json_response({"error": error}, status=status)


def _wav_header(rate: int) -> bytes:
    """A streamed WAV's header: sizes unknown (0xFFFFFFFF), as servers write it."""
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(0, np.int16), rate, format="WAV", subtype="PCM_16")
    header = bytearray(buffer.getvalue())
    header[4:8] = header[-4:] = b"\xff\xff\xff\xff"
    return bytes(header)
