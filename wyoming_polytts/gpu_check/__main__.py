"""``python -m wyoming_polytts.gpu_check --config gpu-check.yaml``: see the package docstring."""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import tempfile
from pathlib import Path

from ..engines import EngineSetupError, create_engines
from ..engines.base import EngineContext
from ..errors import ConfigError
from ..library.library import VoiceLibrary, VoiceMeta
from ..library.reference_audio import AudioLimits
from .gpu_tests import gpu_test_environment, run_gpu_tests
from .measure import CLONED_VOICE, EngineResult, Transcribe, check_engine
from .recording import TRANSCRIPT, piper_recording
from .report import TestsOutcome, write_report
from .settings import CheckSettings, read_settings
from .wer import Transcriber, bundled_whisper

_LOGGER = logging.getLogger(__name__)

_LIMITS = AudioLimits(rate=24000, min_seconds=1.0, max_seconds=30.0, max_bytes=20 * 2**20)
_TESTS = Path(__file__).resolve().parents[2] / "tests"
"""The repository's tests, when the check runs from a checkout."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m wyoming_polytts.gpu_check")
    parser.add_argument("--config", type=Path, required=True, help="the check's YAML file")
    parser.add_argument("--out", type=Path, default=Path("gpu-check"), help="report folder")
    parser.add_argument(
        "--cache-dir", type=Path, help="engines' cache (converted weights); default OUT/cache"
    )
    parser.add_argument("--tests", type=Path, default=_TESTS, help="folder of the gpu tests")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the check; 0 when every engine spoke and the gpu tests passed."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = read_settings(args.config)
    except ConfigError as err:
        print(f"gpu-check: {err}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as work:
        results = _check_engines(settings, Path(work), args.cache_dir or args.out / "cache")
    tests: TestsOutcome | None = None
    if settings.run_tests and args.tests.is_dir():
        env = gpu_test_environment(settings.engines, settings.base_dir)
        tests = run_gpu_tests(args.tests, env)
    report = write_report(args.out, _machine(), results, tests)
    print(report.read_text(encoding="utf-8"))
    failed = any(result.error for result in results) or (tests is not None and tests.exit_code)
    return 1 if failed else 0


def _check_engines(settings: CheckSettings, work: Path, cache: Path) -> list[EngineResult]:
    library = VoiceLibrary(work / "voices", _LIMITS)
    meta = VoiceMeta(languages=["en_US"], transcript=TRANSCRIPT)
    library.add(CLONED_VOICE, piper_recording(), meta)
    context = EngineContext(
        cache_dir=cache.resolve(),
        voices_dir=library.root,
        threads=os.cpu_count() or 1,
        base_dir=settings.base_dir,
        reference_voices=library,
    )
    transcribe = _transcriber(settings)
    results = []
    for name, options in settings.engines.items():
        try:
            engine = create_engines({name: options}, context)[name]
        except EngineSetupError as err:
            results.append(EngineResult(name, error=str(err)))
            continue
        results.append(check_engine(name, engine, transcribe, settings.sentences))
    return results


def _transcriber(settings: CheckSettings) -> Transcribe | None:
    model = settings.whisper or bundled_whisper()
    try:
        return Transcriber(model) if model is not None else None
    except ImportError:
        _LOGGER.warning("faster-whisper is not installed: no word error rates")
        return None


def _machine() -> str:
    try:
        import torch
    except ImportError:
        return f"{platform.machine()}, no torch"
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    return f"{platform.machine()}, CPU only (torch {torch.__version__})"


if __name__ == "__main__":
    sys.exit(main())
