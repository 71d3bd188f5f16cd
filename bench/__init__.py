"""Benchmark harness: speed, concurrency and memory, side by side with wyoming-piper.

Run ``python -m bench --help`` (or ``make bench``); results go to ``bench/results/``.
"""
