"""Worker programs that run engines in environments of their own.

Each worker is a Wyoming server on stdin/stdout (``python -m
wyoming_polytts.workers.<name>``), started and supervised by the main server
through the ``wyoming`` upstream engine. Workers import only light modules
(wyoming, numpy, PyYAML, soundfile) until their model loads, so they run in
another project's virtual environment.
"""
