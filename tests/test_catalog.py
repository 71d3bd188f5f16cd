"""The kept catalog: requests look voices up in memory, never making an engine list its
folders; it is built again on a refresh, when an engine's state or self-learned voices
change, and on first use after its interval.

These run the real pool on the real Piper engine with a data folder of its own; the
engine's ``voices()`` is wrapped to count how often the catalog asks for it. The
same behaviour through the servers (describe, the voice listing, cloned voices) is in
test_piper.py, test_cloned_voices.py and test_voice_api.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from wyoming_polytts.const import DEFAULT_VOICE
from wyoming_polytts.engines.base import EngineContext, VoiceInfo
from wyoming_polytts.engines.piper.engine import PiperEngine, PiperOptions
from wyoming_polytts.errors import EngineUnavailableError, VoiceNotFoundError
from wyoming_polytts.pool.pool import EnginePool, LifecycleSettings
from wyoming_polytts.speech.catalog import Catalog

from .test_piper import drop_joe_copy

NEW_VOICE = "en_GB-dropped-medium"
HOUR = 3600.0


class _CountedPiper(PiperEngine):
    """Piper counting how often its voices are listed."""

    listings = 0

    def voices(self) -> list[VoiceInfo]:
        self.listings += 1
        return super().voices()


class _BrokenPiper(_CountedPiper):
    def load(self) -> None:
        raise RuntimeError("the weights are corrupt")


def _piper(
    tmp: Path, engine_type: type[_CountedPiper] = _CountedPiper, voices: tuple[str, ...] = ()
) -> _CountedPiper:
    context = EngineContext(cache_dir=tmp / "cache", voices_dir=tmp, threads=2, base_dir=tmp)
    options = PiperOptions(preload=False, data_dirs=[str(tmp / "piper")])
    options.voices = list(voices or options.voices)
    return engine_type(options, context)


async def test_requests_resolve_without_listing_voices(tmp_path: Path) -> None:
    piper = _piper(tmp_path)
    pool = EnginePool({"piper": piper}, 4, LifecycleSettings())
    catalog = Catalog(pool, DEFAULT_VOICE, refresh_interval=HOUR)
    try:
        assert catalog.resolve(None).name == DEFAULT_VOICE
        assert piper.listings == 1
        for _ in range(100):
            for name in (None, DEFAULT_VOICE, f"piper:{DEFAULT_VOICE}"):
                assert catalog.resolve(name).info.id == DEFAULT_VOICE
        assert piper.listings == 1, "a request listed the engine's voices"

        drop_joe_copy(tmp_path / "piper" / "nested", NEW_VOICE)
        for _ in range(10):  # an unknown name does not list them either
            with pytest.raises(VoiceNotFoundError, match=NEW_VOICE):
                catalog.resolve(NEW_VOICE)
        assert piper.listings == 1

        assert NEW_VOICE in [voice.name for voice in catalog.refresh()]  # as a describe does
        assert catalog.resolve(f"piper:{NEW_VOICE}").info.languages == ["en_US"]
        assert piper.listings == 2
    finally:
        await pool.close()


async def test_the_catalog_is_built_again_after_its_interval(tmp_path: Path) -> None:
    piper = _piper(tmp_path)
    pool = EnginePool({"piper": piper}, 4, LifecycleSettings())
    always = Catalog(pool, DEFAULT_VOICE, refresh_interval=0)  # every use is after it
    try:
        always.resolve(None)
        drop_joe_copy(tmp_path / "piper", NEW_VOICE)
        assert always.resolve(NEW_VOICE).engine == "piper"
        assert piper.listings == 2
    finally:
        await pool.close()


async def test_an_engine_telling_of_new_voices_is_heard(tmp_path: Path) -> None:
    piper = _piper(tmp_path)
    pool = EnginePool({"piper": piper}, 4, LifecycleSettings())
    catalog = Catalog(pool, DEFAULT_VOICE, refresh_interval=HOUR)
    try:
        catalog.resolve(None)
        drop_joe_copy(tmp_path / "piper", NEW_VOICE)
        piper.voices_changed()  # as an upstream engine does when its server's voices change
        assert catalog.resolve(NEW_VOICE).info.id == NEW_VOICE
        assert piper.listings == 2
    finally:
        await pool.close()


async def test_a_load_shows_what_it_found(tmp_path: Path) -> None:
    """A voice configured but missing is advertised as not installed once the load has
    looked for it, without anyone refreshing the catalog."""
    piper = _piper(tmp_path, voices=(DEFAULT_VOICE, NEW_VOICE))
    pool = EnginePool({"piper": piper}, 4, LifecycleSettings())
    catalog = Catalog(pool, DEFAULT_VOICE, refresh_interval=HOUR)
    try:
        with pytest.raises(VoiceNotFoundError):
            catalog.resolve(NEW_VOICE)
        await pool.start(["piper"])
        with pytest.raises(EngineUnavailableError, match=f"{NEW_VOICE}.onnx not found"):
            catalog.resolve(NEW_VOICE)
        assert catalog.resolve(None).info.installed
    finally:
        await pool.close()


async def test_a_failed_engine_marks_its_voices_unusable(tmp_path: Path) -> None:
    broken = _piper(tmp_path, _BrokenPiper)
    pool = EnginePool({"piper": broken}, 4, LifecycleSettings(retry_after=HOUR))
    catalog = Catalog(pool, DEFAULT_VOICE, refresh_interval=HOUR)
    try:
        assert catalog.resolve(None).info.installed
        await pool.start(["piper"])
        with pytest.raises(EngineUnavailableError, match="the weights are corrupt"):
            catalog.resolve(None)
        (voice,) = catalog.voices()
        assert not voice.info.installed
        assert voice.info.reason == "engine 'piper' failed to load: the weights are corrupt"
        assert broken.listings == 2
    finally:
        await pool.close()
