"""The voice library on disk: registration, validation, atomicity, hand-made voices."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
import yaml

from wyoming_polytts.errors import (
    InvalidAudioError,
    InvalidRequestError,
    PayloadTooLargeError,
    VoiceExistsError,
    VoiceNotFoundError,
)
from wyoming_polytts.library import library as voice_library
from wyoming_polytts.library.library import VoiceLibrary, VoiceMeta
from wyoming_polytts.library.reference_audio import AudioLimits

LIMITS = AudioLimits(rate=24000, min_seconds=3.0, max_seconds=30.0, max_bytes=10 * 1024 * 1024)


@pytest.fixture
def library(tmp_path: Path) -> VoiceLibrary:
    return VoiceLibrary(tmp_path / "voices", LIMITS)


def _encode(samples: np.ndarray, rate: int, fmt: str, codec: str) -> bytes:
    """Encode int16 mono PCM with PyAV into a container in memory."""
    out = io.BytesIO()
    with av.open(out, "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


def _entries(library: VoiceLibrary) -> list[str]:
    return sorted(p.name for p in library.root.iterdir()) if library.root.exists() else []


def test_add_normalizes_and_writes_metadata(library: VoiceLibrary, reference_wav: Path) -> None:
    meta = VoiceMeta(languages=["en-us"], transcript="The front door is locked.", engines=["xtts"])
    voice = library.add("joe", reference_wav.read_bytes(), meta)
    assert voice.error is None
    audio, rate = soundfile.read(voice.audio_path, dtype="float32")
    assert rate == 24000 and audio.ndim == 1
    original, original_rate = soundfile.read(reference_wav)
    assert len(audio) / rate < len(original) / original_rate - 0.6, "silence was not trimmed"
    assert 0.9 < float(np.abs(audio).max()) <= 1.0
    stored = yaml.safe_load((voice.folder / "voice.yaml").read_text())
    assert stored["languages"] == ["en_US"]
    assert stored["transcript"] == "The front door is locked."
    assert stored["created"]
    assert [r.id for r in library.for_engine("xtts")] == ["joe"]
    assert library.for_engine("zipvoice") == []
    reference = library.for_engine("xtts")[0]
    assert reference.cache_dir == voice.folder / "cache" / "xtts"
    assert library.find("xtts", "joe") == reference
    assert library.find("zipvoice", "joe") is None  # voice.yaml names only xtts
    assert library.find("xtts", "nobody") is None
    assert library.find("xtts", "../joe") is None


def test_any_common_format_is_accepted(library: VoiceLibrary, reference_wav: Path) -> None:
    samples, rate = soundfile.read(reference_wav, dtype="int16")
    for fmt, codec in [("mp3", "libmp3lame"), ("flac", "flac"), ("adts", "aac")]:
        data = _encode(samples, rate, fmt, codec)
        assert library.add(f"joe-{fmt}", data, VoiceMeta()).error is None


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda wav: b"not audio at all" * 100, InvalidAudioError, "not a readable audio file"),
        (lambda wav: b"", InvalidAudioError, "empty"),
        (lambda wav: _clip(wav, 1.0), InvalidAudioError, "too short"),
        (lambda wav: _silence(5.0), InvalidAudioError, "silent"),
        (lambda wav: _clip(wav, 0) + b"\0" * (11 * 1024 * 1024), PayloadTooLargeError, "limit"),
        (lambda wav: _tone(70.0), InvalidAudioError, "too long"),
    ],
)
def test_bad_audio_is_refused_and_leaves_nothing(
    library: VoiceLibrary, reference_wav: Path, make, error, message: str
) -> None:
    with pytest.raises(error, match=message):
        library.add("bad", make(reference_wav), VoiceMeta())
    assert _entries(library) == []


@pytest.mark.parametrize(
    "name", ["../../etc", "a/b", ".hidden", "", "x" * 65, "voice name", "joe\n", "joe\r"]
)
def test_unsafe_names_are_refused(library: VoiceLibrary, reference_wav: Path, name: str) -> None:
    with pytest.raises(InvalidRequestError, match="invalid voice name"):
        library.add(name, reference_wav.read_bytes(), VoiceMeta())
    assert _entries(library) == []


def test_duplicate_and_racing_names(library: VoiceLibrary, reference_wav: Path) -> None:
    data = reference_wav.read_bytes()
    outcomes: list[str] = []

    def register() -> None:
        try:
            library.add("twin", data, VoiceMeta())
            outcomes.append("created")
        except VoiceExistsError:
            outcomes.append("exists")

    threads = [threading.Thread(target=register) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["created", "exists", "exists", "exists"]
    assert _entries(library) == ["twin"]
    with pytest.raises(VoiceExistsError):
        library.add("twin", data, VoiceMeta())


def test_names_differing_only_in_case_race_to_one_voice(
    library: VoiceLibrary, reference_wav: Path
) -> None:
    data = reference_wav.read_bytes()
    outcomes: list[str] = []

    def register(name: str) -> None:
        try:
            library.add(name, data, VoiceMeta())
            outcomes.append("created")
        except VoiceExistsError:
            outcomes.append("exists")

    threads = [threading.Thread(target=register, args=(n,)) for n in ("Twin", "twin", "TWIN")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["created", "exists", "exists"]
    assert len(_entries(library)) == 1  # no claim left behind either
    with pytest.raises(VoiceExistsError, match="differs only in case"):
        library.add("tWiN", data, VoiceMeta())


def test_a_voice_deleted_during_a_change_is_not_found(
    library: VoiceLibrary, reference_wav: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    library.add("gone", reference_wav.read_bytes(), VoiceMeta())
    write = voice_library.replace_file

    def deleted_first(path: Path, data: bytes) -> None:
        library.remove("gone")  # another request wins the race right here
        write(path, data)

    monkeypatch.setattr(voice_library, "replace_file", deleted_first)
    with pytest.raises(VoiceNotFoundError, match="deleted meanwhile") as err:
        library.update("gone", {"description": "too late"})
    assert str(library.root) not in str(err.value)
    assert _entries(library) == []


def test_crash_during_a_metadata_change_is_cleaned_at_start(
    library: VoiceLibrary, reference_wav: Path
) -> None:
    library.add("kept", reference_wav.read_bytes(), VoiceMeta(description="before"))
    crash = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from tests.test_voice_library import LIMITS\n"
        "from wyoming_polytts.library import files, library\n"
        "files.os.replace = lambda *a: os._exit(9)\n"
        "lib = library.VoiceLibrary(Path(sys.argv[1]), LIMITS)\n"
        "lib.update('kept', {'description': 'after'})\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", crash, str(library.root)],
        cwd=Path(__file__).resolve().parent.parent,
        timeout=60,
    )
    assert result.returncode == 9
    folder = library.root / "kept"
    (folder / ".voice.yaml.bak").write_text("mine")  # not of the pattern: stays
    partial = [p.name for p in folder.iterdir() if p.name.startswith(".voice.yaml.")]
    assert len(partial) == 2 and "after" in (folder / max(partial, key=len)).read_text()
    assert library.get("kept").meta.description == "before"
    library.cleanup()
    assert sorted(p.name for p in folder.iterdir()) == [
        ".voice.yaml.bak",
        "reference.wav",
        "voice.yaml",
    ]
    assert library.get("kept").meta.description == "before"


def test_crash_between_write_and_rename_leaves_library_readable(
    library: VoiceLibrary, reference_wav: Path
) -> None:
    library.add("kept", reference_wav.read_bytes(), VoiceMeta())
    crash = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from tests.test_voice_library import LIMITS\n"
        "from wyoming_polytts.library import library\n"
        "library.os.rename = lambda *a: os._exit(9)\n"
        "lib = library.VoiceLibrary(Path(sys.argv[1]), LIMITS)\n"
        "lib.add('half', Path(sys.argv[2]).read_bytes(), library.VoiceMeta())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", crash, str(library.root), str(reference_wav)],
        cwd=Path(__file__).resolve().parent.parent,
        timeout=60,
    )
    assert result.returncode == 9
    assert [v.id for v in library.voices()] == ["kept"]
    assert any(name.startswith(".tmp-") for name in _entries(library))
    library.cleanup()
    assert _entries(library) == ["kept"]


def test_hand_made_and_broken_voices(library: VoiceLibrary, reference_wav: Path) -> None:
    library.add("good", reference_wav.read_bytes(), VoiceMeta())
    hand = library.root / "by-hand"
    hand.mkdir()
    (hand / "sample.wav").write_bytes(reference_wav.read_bytes())
    (hand / "voice.yaml").write_text("audio: sample.wav\nlanguages: [de_DE]\n")
    broken = library.root / "broken"
    broken.mkdir()
    (broken / "reference.wav").write_bytes(reference_wav.read_bytes())
    (broken / "voice.yaml").write_text("languages: [unclosed\n")
    escaping = library.root / "escaping"
    escaping.mkdir()
    (escaping / "voice.yaml").write_text("audio: ../good/reference.wav\n")

    voices = {v.id: v for v in library.voices()}
    assert voices["by-hand"].error is None
    assert voices["by-hand"].languages == ["de_DE"]
    assert "broken voice.yaml" in (voices["broken"].error or "")
    assert "voice.yaml.audio" in (voices["escaping"].error or "")
    assert sorted(r.id for r in library.for_engine("xtts")) == ["by-hand", "good"]
    assert [library.find("xtts", name) is not None for name in voices] == [
        name in ("by-hand", "good") for name in voices
    ]


def test_update_and_remove(library: VoiceLibrary, reference_wav: Path) -> None:
    library.add("joe", reference_wav.read_bytes(), VoiceMeta(languages=["en_US"]))
    voice = library.update("joe", {"languages": ["en_US", "de"], "default_language": "de"})
    assert voice.languages == ["de", "en_US"]
    with pytest.raises(InvalidRequestError, match="cannot change 'audio'"):
        library.update("joe", {"audio": "../../etc/passwd"})
    with pytest.raises(InvalidRequestError, match="invalid language"):
        library.update("joe", {"languages": ["english please"]})
    library.remove("joe")
    assert _entries(library) == []
    with pytest.raises(VoiceNotFoundError):
        library.remove("joe")


def test_cli_add_list_remove(tmp_path: Path, reference_wav: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"voices_dir": str(tmp_path / "lib")}))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-c",
                "from wyoming_polytts.__main__ import run; run()",
                "voices",
                "--config",
                str(config),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )

    added = cli(
        "add", "cli-voice", str(reference_wav), "--transcript", "Hello.", "--language", "en_US"
    )
    assert added.returncode == 0, added.stderr
    listed = cli("list")
    assert "cli-voice\ten_US\tany\tok" in listed.stdout
    refused = cli("add", "cli-voice", str(reference_wav))
    assert refused.returncode == 1 and "already exists" in refused.stderr
    assert cli("remove", "cli-voice").returncode == 0
    assert "cli-voice" not in cli("list").stdout


def _clip(wav: Path, seconds: float) -> bytes:
    audio, rate = soundfile.read(wav, dtype="int16")
    start = int(0.6 * rate)
    out = io.BytesIO()
    soundfile.write(out, audio[start : start + int(seconds * rate)], rate, format="WAV")
    return out.getvalue()


def _silence(seconds: float) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, np.zeros(int(seconds * 16000), dtype=np.int16), 16000, format="WAV")
    return out.getvalue()


def _tone(seconds: float) -> bytes:
    t = np.arange(int(seconds * 8000)) / 8000
    out = io.BytesIO()
    soundfile.write(out, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 8000, format="WAV")
    return out.getvalue()
