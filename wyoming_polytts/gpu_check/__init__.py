"""``python -m wyoming_polytts.gpu_check``: every engine that has real weights, measured.

For a GPU owner (``make gpu-check``, docs/docker-gpu.md):
given local folders of weights in a small YAML file, it loads each engine,
speaks a fixed set of sentences with it, clones one voice per cloning engine
from a recording made at run time with the bundled Piper voice, runs the tests
marked ``gpu`` against the same weights, and writes a report (load time,
memory, time to first audio, real-time factor, and Whisper's word error rate
for English when faster-whisper is installed).
"""
