"""``python -m wyoming_polytts.gpu_check`` on what exists here: Piper and the tiny XTTS.

The check is meant for a GPU box with real weights; here it runs on the CPU,
against Piper's bundled voice and the tiny random XTTS, with one engine whose
weights are missing, and with a stand-in ``gpu`` test that checks the
environment the check hands to pytest. The report must hold every number.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from wyoming_polytts.gpu_check.__main__ import main
from wyoming_polytts.gpu_check.measure import CLONED_VOICE

from .xtts_fixture import SPEAKERS, engine_config

SHORT = ["The front door is locked.", "Good morning, the lights are off."]


@pytest.fixture
def report(tiny_xtts: Path, tmp_path: Path) -> tuple[int, dict, str]:
    (tmp_path / "empty").mkdir()
    config = {
        "engines": {
            "piper": {},
            "xtts": engine_config(tiny_xtts),
            "zipvoice": {"model_dir": "empty"},  # relative to the file
        },
        "sentences": {"en": SHORT},  # within the tiny XTTS's 60 text tokens
    }
    path = tmp_path / "check.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    tests = tmp_path / "gpu-tests"
    tests.mkdir()
    (tests / "test_env.py").write_text(
        "import os\n\nimport pytest\n\n\n@pytest.mark.gpu\ndef test_weights_reach_the_tests():\n"
        f"    assert os.environ['XTTS_CHECKPOINT_DIR'] == {str(tiny_xtts.resolve())!r}\n"
        "    assert 'ZIPVOICE_MODEL_DIR' in os.environ\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    code = main(["--config", str(path), "--out", str(out), "--tests", str(tests)])
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return code, data, (out / "report.md").read_text(encoding="utf-8")


def test_report_on_piper_and_tiny_xtts(report: tuple[int, dict, str]) -> None:
    code, data, markdown = report
    assert code == 1, "an engine without weights fails the check"
    engines = {engine["name"]: engine for engine in data["engines"]}
    assert list(engines) == ["piper", "xtts", "zipvoice"]

    piper, xtts, zipvoice = engines["piper"], engines["xtts"], engines["zipvoice"]
    for engine in (piper, xtts):
        assert engine["error"] is None
        assert engine["load_seconds"] > 0 and engine["memory"] > 0
        for utterance in engine["utterances"]:
            assert utterance["seconds"] > 0 and utterance["rtf"] > 0
            assert 0 < utterance["first_audio"] <= utterance["rtf"] * utterance["seconds"] + 1e-6
    assert [u["text"] for u in piper["utterances"]] == SHORT
    assert all(u["wer"] <= 0.2 for u in piper["utterances"]), piper["utterances"]
    voices = {u["voice"] for u in xtts["utterances"]}
    assert voices == {CLONED_VOICE, SPEAKERS[0]}, "the cloned voice and a studio speaker"
    assert all(u["wer"] is not None for u in xtts["utterances"])
    assert (
        "load failed" in zipvoice["error"] and "ZipVoice model files missing" in zipvoice["error"]
    )

    assert data["tests"]["exit_code"] == 0 and "1 passed" in data["tests"]["summary"]
    assert "| piper |" in markdown and "| xtts |" in markdown and "load failed" in markdown


def test_example_config_names_every_engine() -> None:
    from wyoming_polytts.engines import ENGINE_SPECS
    from wyoming_polytts.gpu_check.settings import read_settings

    example = read_settings(Path(__file__).resolve().parent.parent / "gpu-check.example.yaml")
    # Upstreams are other servers, with no weights of their own to check on this GPU.
    assert set(example.engines) == set(ENGINE_SPECS) - {"wyoming", "openai_api"}
    assert example.run_tests and set(example.sentences) == {"en", "zh"}
