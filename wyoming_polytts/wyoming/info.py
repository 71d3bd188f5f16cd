"""The Wyoming ``info`` answer: one TTS program listing every catalog voice.

Home Assistant reads only the first TTS program, so all engines share one.
"""

from __future__ import annotations

from wyoming.info import Attribution, Info, TtsProgram, TtsVoice, TtsVoiceSpeaker

from .. import __version__
from ..const import PROGRAM_DESCRIPTION, PROGRAM_NAME, PROGRAM_URL
from ..speech.catalog import CatalogVoice


def build_info(voices: list[CatalogVoice]) -> Info:
    """Describe the server and all its ``voices``."""
    return Info(
        tts=[
            TtsProgram(
                name=PROGRAM_NAME,
                description=PROGRAM_DESCRIPTION,
                attribution=Attribution(name=PROGRAM_NAME, url=PROGRAM_URL),
                installed=True,
                version=__version__,
                voices=[_voice(v) for v in voices],
                supports_synthesize_streaming=True,
            )
        ]
    )


def _voice(voice: CatalogVoice) -> TtsVoice:
    info = voice.info
    description = info.description
    if not info.installed and info.reason:
        description = f"{description} (unavailable: {info.reason})"
    return TtsVoice(
        name=voice.name,
        description=f"{description} [{voice.engine}]",
        attribution=Attribution(name=info.attribution.name, url=info.attribution.url),
        installed=info.installed,
        version=info.version,
        languages=list(info.languages),
        speakers=[TtsVoiceSpeaker(name=s) for s in info.speakers] or None,
    )
