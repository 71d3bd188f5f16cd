"""The benchmark harnesses, run once each in quick mode against the real servers.

Speed is never asserted here; the test proves the harness measures every case
and writes a report, a chart and the machine's description.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import yaml

from bench.kokoro_report import FASTKOKORO, KOKORO_ONNX
from bench.results import FLOOR, ONE_SHOT, OURS, STREAMING, THEIRS
from bench.texts import KINDS, TEXTS, stream_plan

ROOT = Path(__file__).resolve().parent.parent


def test_stream_plan_keeps_text_and_marks_first_sentence() -> None:
    for text in TEXTS:
        plan = stream_plan(text.text)
        assert "".join(plan.chunks) == text.text
        first = "".join(plan.chunks[: plan.first_sentence_end + 1])
        assert first.rstrip().endswith((".", "?", "!"))
        assert first.count(".") == 1


def test_quick_run_measures_everything(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump({"cache_dir": str(tmp_path / "cache"), "voices_dir": str(tmp_path / "v")}),
        encoding="utf-8",
    )
    out = tmp_path / "results"
    argv = ["-m", "bench", "--quick", "--rounds", "1", "--clients", "1,2,4,8"]
    argv += ["--config", str(config), "--out", str(out)]
    done = subprocess.run(
        [sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "## piper: en_US-joe-medium" in done.stdout
    assert list(tmp_path.glob(".bench-*.yaml")) == [], "derived config left behind"

    data = json.loads((out / "results.json").read_text(encoding="utf-8"))
    (run,) = data["voices"]
    assert run["systems"] == [OURS, THEIRS, FLOOR]
    cases = {(s["system"], s["kind"], s["mode"]): s["result"] for s in run["singles"]}
    expected = {(s, k, ONE_SHOT) for s in (OURS, THEIRS, FLOOR) for k in KINDS}
    expected |= {(s, k, STREAMING) for s in (OURS, THEIRS) for k in KINDS}
    assert set(cases) == expected
    for case, result in cases.items():
        assert result["error"] is None, case
        assert 0 < result["ttfa"] <= result["total"], case
        assert result["audio"] > 1.0, case  # seconds of speech, not a blip
    for system in (OURS, THEIRS):
        bursts = {lv["run"]["clients"]: lv["run"] for lv in run["levels"] if lv["system"] == system}
        assert sorted(bursts) == [1, 2, 4, 8]
        assert bursts[8]["describe"], "no describe probe ran while 8 clients synthesized"
        for clients, burst in bursts.items():
            assert len(burst["requests"]) == clients
            assert all(r["error"] is None and r["audio"] > 1.0 for r in burst["requests"])
            assert all(0 <= r["stall"] < r["total"] for r in burst["requests"])
    formats = {f["response_format"]: f for f in run["openai"]}
    assert {"pcm", "wav", "mp3", "opus"} <= set(formats)
    for name, fmt in formats.items():
        assert fmt["samples"], name
        assert all(s["error"] is None and 0 < s["ttfb"] <= s["total"] for s in fmt["samples"])
        assert fmt["encode_per_second"] is not None, name
    assert formats["mp3"]["encode_per_second"] > 0
    assert data["memory"][OURS]["peak_rss"] > 50 * 2**20
    assert data["memory"][THEIRS]["peak_rss"] > 50 * 2**20
    unload = data["unload"]
    assert unload["unloaded"] < unload["peak"], "idle unloading gave nothing back"
    assert unload["loaded"] > 50 * 2**20

    report = (out / "results.md").read_text(encoding="utf-8")
    assert report.strip() in done.stdout
    for heading in ("**Targets**", "**Time to first audio, ms**", "**Concurrency", "**OpenAI"):
        assert heading in report
    assert "| 8 |" in report
    assert "playback stall" in report
    assert "once the engine was unloaded" in report
    machine = (out / "machine.md").read_text(encoding="utf-8")
    assert "logical cores" in machine and "wyoming-piper" in machine
    chart = matplotlib.image.imread(out / "results.png")
    height, width = chart.shape[:2]
    assert width > 800 and height > 300
    assert chart.std() > 0.05, "the chart is blank"


def test_kokoro_quick_run_measures_everything(tmp_path: Path) -> None:
    """bench.kokoro on one short text and two clients: ours, fastkokoro and kokoro-onnx."""
    out = tmp_path / "results"
    argv = ["-m", "bench.kokoro", "--quick", "--kinds", "short", "--clients", "2"]
    done = subprocess.run(
        [sys.executable, *argv, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    data = json.loads((out / "kokoro.json").read_text(encoding="utf-8"))
    (run,) = data["voices"]
    assert run["systems"] == [OURS, FASTKOKORO, KOKORO_ONNX]
    singles = {s["system"]: s["result"] for s in run["singles"]}
    assert set(singles) == set(run["systems"]) and len(run["singles"]) == 3
    for system, result in singles.items():
        assert result["error"] is None, system
        assert 0 < result["ttfa"] <= result["total"], system
        assert result["audio"] > 1.0, system  # seconds of speech, not a blip
    for server in (OURS, FASTKOKORO):
        assert 0 <= singles[server]["lead"] < 0.5, "silence before the speech"
        (burst,) = [lv["run"] for lv in run["levels"] if lv["system"] == server]
        assert burst["clients"] == 2 and len(burst["requests"]) == 2
        assert all(r["error"] is None and r["audio"] > 1.0 for r in burst["requests"])
        assert data["memory"][server]["peak_rss"] > 50 * 2**20
    assert data["machine"]["fastkokoro"] == "0.7.0"
    assert data["machine"]["kokoro-onnx"] == "0.6.1"

    report = (out / "kokoro.md").read_text(encoding="utf-8")
    assert report.strip() in done.stdout
    for heading in ("**Goals**", "**First audio, ms**", "**Simultaneous clients**", "## Memory"):
        assert heading in report
    assert "one client, short: first audio" in report
    assert "| 2 | ours/fastkokoro |" in report
