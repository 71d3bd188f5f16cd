"""The voice catalog: every enabled engine's voices under one unique name each.

A voice is advertised by its engine-local id when no other engine uses that id,
otherwise as ``engine:id``. Both forms always resolve, so a name saved in Home
Assistant keeps working.

The catalog is kept, so a request looks its voice up in memory and never makes
an engine list its folders. It is built again when something may have changed:
at every Wyoming describe and ``GET /v1/audio/voices`` (:meth:`Catalog.refresh`),
after a change of the voice library through the API, when an engine's state or
self-learned voices change (:meth:`Catalog.invalidate`, through
:meth:`EnginePool.watch_voices`), and on first use after ``refresh_interval``
seconds, for files changed behind the server's back (a voice dropped into
Piper's folder, ``voices_cli`` in another process).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, replace

from ..common.echo import clip
from ..const import CATALOG_REFRESH_INTERVAL
from ..engines.base import VoiceInfo
from ..errors import EngineUnavailableError, VoiceNotFoundError
from ..pool.pool import EnginePool
from ..pool.slot import EngineState

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class CatalogVoice:
    """A voice as clients see it."""

    name: str
    """Unique advertised name."""

    engine: str
    info: VoiceInfo

    @property
    def qualified_name(self) -> str:
        return f"{self.engine}:{self.info.id}"


class Catalog:
    """Answers which voices exist and which engine serves a named voice."""

    def __init__(
        self,
        pool: EnginePool,
        default_voice: str,
        refresh_interval: float = CATALOG_REFRESH_INTERVAL,
    ) -> None:
        """``refresh_interval``: seconds after which the kept catalog is built again
        when next used."""
        self._pool = pool
        self.default_voice = default_voice
        self._refresh_interval = refresh_interval
        self._voices: list[CatalogVoice] = []
        self._names: dict[str, CatalogVoice] = {}
        self._built = 0.0
        self._stale = True
        pool.watch_voices(self.invalidate)

    def invalidate(self) -> None:
        """Build the catalog again when it is next used. Safe from any thread."""
        self._stale = True

    def refresh(self) -> list[CatalogVoice]:
        """Ask every engine for its voices now, and keep the answer."""
        self._stale = False  # first: a change while the engines answer marks it again
        self._built = time.monotonic()
        voices = self._collect()
        self._voices, self._names = voices, _lookup_table(voices)
        return voices

    def voices(self) -> list[CatalogVoice]:
        """All voices of all enabled engines, in engine order."""
        if self._stale or time.monotonic() - self._built >= self._refresh_interval:
            return self.refresh()
        return self._voices

    def resolve(self, name: str | None) -> CatalogVoice:
        """The voice called ``name`` (advertised, qualified or bare id); None is the default.

        A bare id that several engines share resolves to the first engine in config order.
        """
        wanted = name or self.default_voice
        voices = self.voices()
        match = self._names.get(wanted) or self._dynamic(wanted)
        if match is None:
            known = ", ".join(v.name for v in voices[:10])
            more = " ..." if len(voices) > 10 else ""
            raise VoiceNotFoundError(f"unknown voice '{clip(wanted)}'; available: {known}{more}")
        if not match.info.installed:
            raise EngineUnavailableError(
                f"voice '{match.name}' cannot be used: {match.info.reason or 'not installed'}"
            )
        return match

    def _collect(self) -> list[CatalogVoice]:
        entries: list[tuple[str, VoiceInfo]] = []
        for name, engine in self._pool.engines.items():
            try:
                infos = engine.voices()
            except Exception:  # one broken engine must not hide the others' voices
                _LOGGER.exception("Engine %s failed to list its voices", name)
                continue
            entries.extend((name, info) for info in self._mark_failed(name, infos))
        counts = Counter(info.id for _, info in entries)
        return [
            CatalogVoice(info.id if counts[info.id] == 1 else f"{engine}:{info.id}", engine, info)
            for engine, info in entries
        ]

    def _dynamic(self, wanted: str) -> CatalogVoice | None:
        """A voice an engine builds from its name (e.g. a blend), bare or ``engine:`` qualified."""
        for name, engine in self._pool.engines.items():
            info = engine.dynamic_voice(wanted.removeprefix(f"{name}:"))
            if info is not None:
                return CatalogVoice(wanted, name, self._mark_failed(name, [info])[0])
        return None

    def _mark_failed(self, name: str, infos: list[VoiceInfo]) -> list[VoiceInfo]:
        """The voices of a failed engine marked as not installed, with the reason."""
        status = self._pool.status(name)
        if status.state is not EngineState.FAILED:
            return infos
        reason = f"engine '{name}' failed to load: {status.error}"
        return [replace(info, installed=False, reason=reason) for info in infos]


def _lookup_table(voices: list[CatalogVoice]) -> dict[str, CatalogVoice]:
    """Every name a voice answers to: advertised and qualified names first, then bare
    ids; the first voice in engine order wins a name."""
    table: dict[str, CatalogVoice] = {}
    for voice in voices:
        table.setdefault(voice.name, voice)
        table.setdefault(voice.qualified_name, voice)
    for voice in voices:
        table.setdefault(voice.info.id, voice)
    return table
