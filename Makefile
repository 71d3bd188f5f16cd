# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch comes first, pinned, so nothing pulls a CUDA build (docs/engines/xtts.md).
TORCH := torch==2.13.0
# torchaudio's wheels are CUDA-linked: tools/cpu_torchaudio.py installs this
# release without its native libraries beside CPU torch (docs/engines/xtts.md).
TORCHAUDIO_VERSION := 2.11.0
# Debian's Chromium, which the web page tests drive (tests/test_web.py); the
# test target installs it when missing (as root). No browser is ever downloaded.
CHROMIUM := /usr/bin/chromium

.PHONY: run test lint check bench bench-quick bench-kokoro bench-ray soak gpu-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[piper]'
	touch $@

$(VENV)/.test-installed: pyproject.toml tools/cpu_torchaudio.py | $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH) numpy
	$(BIN)/python tools/cpu_torchaudio.py --version $(TORCHAUDIO_VERSION)
	$(BIN)/pip install --quiet -e '.[piper,kokoro,test,bench,xtts,zipvoice,ray]' $(TORCH) torchaudio==$(TORCHAUDIO_VERSION)
	touch $@

run: $(VENV)/.run-installed
	$(BIN)/wyoming-polytts --config config.yaml

# actionlint checks the GitHub workflows (.github/workflows), their run: scripts with shellcheck.
# The manual (docs/, mkdocs.yml) builds strictly: a page left out of the nav or a broken
# link or anchor fails it (never add --quiet: it hides the warnings --strict counts).
lint: $(VENV)/.test-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/actionlint -shellcheck $(BIN)/shellcheck
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

$(CHROMIUM):
	apt-get update -qq && apt-get install -y -qq chromium

# tests/ray start a Ray cluster, which binds every interface: they run in a network
# namespace of their own with only loopback (unshare needs root, as CI has).
test: lint | $(CHROMIUM)
	$(BIN)/pytest
	unshare --net sh -c 'ip link set lo up && $(BIN)/pytest tests/ray'

$(VENV)/.bench-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[piper,bench]'
	touch $@

# Benchmarks (docs/benchmarks.md): results into bench/results/. Options go in
# BENCH_ARGS, e.g. make bench BENCH_ARGS="--config my.yaml --set pool.threads=1".
bench: $(VENV)/.bench-installed
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-quick: $(VENV)/.bench-installed
	$(BIN)/python -m bench --quick $(BENCH_ARGS)

# Piper in-process against one and two Ray replicas (docs/ray.md): a
# two-node cluster on this machine, in a network namespace with only loopback (root).
bench-ray: $(VENV)/.test-installed
	unshare --net sh -c 'ip link set lo up && $(BIN)/python -m bench.ray_bench $(BENCH_ARGS)'

$(VENV)/.bench-kokoro-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[kokoro,bench]'
	touch $@

# Kokoro side by side (docs/benchmarks.md): our OpenAI endpoint against fastkokoro's
# and kokoro-onnx in process, each from PyPI in a venv of its own made once; results into
# bench/results/kokoro.md and kokoro.json. Options in BENCH_ARGS, e.g. BENCH_ARGS="--quick".
bench-kokoro: $(VENV)/.bench-kokoro-installed
	$(BIN)/python -m bench.kokoro $(BENCH_ARGS)

# The five-minute soak (docs/operations/reliability.md): 32 Wyoming + 16 HTTP clients;
# figures into bench/results/soak.md and soak.json. Options in SOAK_ARGS, e.g.
# SOAK_ARGS="--minutes 30".
soak: $(VENV)/.bench-installed
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

# Real weights on a GPU box (docs/docker-gpu.md, "Checking real weights on a GPU"):
# every engine of GPU_CHECK_CONFIG (local weight folders; gpu-check.example.yaml shows the
# shape) loaded, speaking and cloning, then the tests marked gpu; the report goes
# to gpu-check/report.md and report.json. Installs into this venv as it finds it
# (a CUDA torch and onnxruntime-gpu installed by hand are kept).
GPU_CHECK_CONFIG ?= gpu-check.yaml
gpu-check: | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[piper,kokoro,xtts,zipvoice,test]'
	$(BIN)/python -m wyoming_polytts.gpu_check --config $(GPU_CHECK_CONFIG) --out gpu-check $(GPU_CHECK_ARGS)

clean:
	rm -rf $(VENV)
