"""kokoro-onnx timed inside its own environment: the floor of ``python -m bench.kokoro``.

Run by the Python of that environment (``python kokoro_onnx_worker.py MODEL VOICES
VOICE THREADS``), so it imports nothing of this project. It opens the model in an
ONNX Runtime session set up as our engine sets up each of its own (``THREADS``
intra-op threads that sleep rather than spin: on a shared machine spinning threads
made kokoro-onnx's default session a quarter slower), answers ``{"ready": true}``,
then reads one JSON request per line on stdin, ``{"phonemes": [piece, ...]}``, and
synthesizes the pieces one after another with ``Kokoro.create(..., is_phonemes=True)``,
answering one JSON line: ``{"first": s, "total": s, "samples": n, "rate": hz}``,
times from the first call.
"""

from __future__ import annotations

import json
import sys
import time

import onnxruntime
from kokoro_onnx import Kokoro


def main() -> None:
    model, voices, voice, threads = sys.argv[1:5]
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    kokoro = Kokoro.from_session(session, voices)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        pieces: list[str] = json.loads(line)["phonemes"]
        first: float | None = None
        samples = rate = 0
        started = time.perf_counter()
        for phonemes in pieces:
            audio, rate = kokoro.create(phonemes, voice, is_phonemes=True)
            if first is None:
                first = time.perf_counter() - started
            samples += len(audio)
        total = time.perf_counter() - started
        answer = {"first": first, "total": total, "samples": samples, "rate": rate}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
