"""OpenAI model and voice names onto the catalog.

``model`` is either one of OpenAI's names, which leave the choice of engine to
the voice, or an engine name, which the voice must then belong to. ``voice`` is
looked up as a configured alias first, then as a catalog voice; an OpenAI voice
name that is neither speaks with the default voice.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from wyoming_polytts.common.echo import clip
from wyoming_polytts.errors import VoiceNotFoundError
from wyoming_polytts.speech.catalog import Catalog, CatalogVoice

from .errors import ApiError

OPENAI_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts", "gpt-4o-mini-tts-2025-12-15")
OPENAI_VOICES = frozenset(
    {
        "alloy",
        "ash",
        "ballad",
        "cedar",
        "coral",
        "echo",
        "fable",
        "marin",
        "nova",
        "onyx",
        "sage",
        "shimmer",
        "verse",
    }
)


class VoiceResolver:
    """Finds the catalog voice for a request's ``model`` and ``voice``."""

    def __init__(
        self, catalog: Catalog, engines: Collection[str], aliases: Mapping[str, str]
    ) -> None:
        self._catalog = catalog
        self._engines = tuple(engines)
        self._aliases = dict(aliases)

    def model_ids(self) -> list[str]:
        """Every accepted ``model``: the enabled engines, then OpenAI's names."""
        return [*self._engines, *OPENAI_MODELS]

    def resolve(self, model: str, voice: str | None) -> CatalogVoice:
        """The voice to speak with; :class:`ApiError` 404 for an unknown model, 400 for a
        voice of another engine; the catalog's errors for unknown or unusable voices."""
        engine = self._engine(model)
        name = self._aliases.get(voice, voice) if voice is not None else None
        found = self._lookup(name, engine, fallback=voice in OPENAI_VOICES)
        if engine is not None and found.engine != engine:
            raise ApiError(
                400,
                f"voice '{clip(found.name)}' belongs to engine '{found.engine}', not to model "
                f"'{model}'; pick a voice of '{model}' or use model '{OPENAI_MODELS[0]}'",
                param="voice",
                code="voice_model_mismatch",
            )
        return found

    def _engine(self, model: str) -> str | None:
        if model in OPENAI_MODELS:
            return None
        if model in self._engines:
            return model
        raise ApiError(
            404,
            f"the model '{clip(model)}' does not exist; available: {', '.join(self.model_ids())}",
            param="model",
            code="model_not_found",
        )

    def _lookup(self, name: str | None, engine: str | None, fallback: bool) -> CatalogVoice:
        """A bare name under an engine model means that engine's voice first."""
        if name is not None and engine is not None and ":" not in name:
            try:
                return self._catalog.resolve(f"{engine}:{name}")
            except VoiceNotFoundError:
                pass
        try:
            return self._catalog.resolve(name)
        except VoiceNotFoundError:
            if not fallback:
                raise
        return self._catalog.resolve(None)
