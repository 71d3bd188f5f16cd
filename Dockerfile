# GPU image: every engine on CUDA, for a home GPU box (see docker-compose.yml).
#   docker build -t wyoming-polytts:gpu .
#   docker run --gpus all -p 10200:10200 -p 8880:8880 wyoming-polytts:gpu
#
# The project is installed the way the README and CI install it
# (pip install '.[extras]' from this source), on these GPU builds:
# - torch: PyPI's Linux wheel of torch is the CUDA build (torch 2.13 uses
#   CUDA 13). It is installed first and held by a pip constraint (with the
#   torchaudio release the Makefile pins), as the Makefile does with the CPU
#   build.
# - onnxruntime-gpu: the same Python module as onnxruntime, in another
#   distribution. piper-tts (and the piper extra) require "onnxruntime" by
#   name, so pip installs it with the extras; it is then uninstalled and
#   onnxruntime-gpu installed in its place, and the build fails if plain
#   onnxruntime is still present or the CUDA provider is missing. (pip check
#   reports piper-tts's requirement as unmet for that reason; it is met by
#   onnxruntime-gpu.)
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04
FROM ${CUDA_IMAGE}

ARG TORCH_VERSION=2.13.0
ARG TORCHAUDIO_VERSION=2.11.0
ARG ONNXRUNTIME_GPU_VERSION=1.31.1
ARG EXTRAS=piper,kokoro,xtts

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    ORT_DISABLE_TELEMETRY=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:${PATH} \
    HF_HOME=/data/models/huggingface \
    POLYTTS_CONFIG=/etc/wyoming-polytts/config.yaml

# Ubuntu's python3 follows the CUDA image's release; pinning it would break
# on every base image update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv \
    && pip install "torch==${TORCH_VERSION}" \
    && printf 'torch==%s\ntorchaudio==%s\n' "${TORCH_VERSION}" "${TORCHAUDIO_VERSION}" \
        > /opt/venv/constraints.txt
ENV PIP_CONSTRAINT=/opt/venv/constraints.txt

WORKDIR /usr/src/wyoming-polytts
COPY . .

# Optional: GLM-TTS in a virtual environment of its own, /opt/glm-tts/.venv
# (docs/engines/glm-tts.md); it pins its own torch, so the constraint is lifted there.
#   docker build --build-arg GLM_TTS=1 -t wyoming-polytts:gpu .
# GLM_TTS empty (the default): not built. GLM_TTS_REF is the GLM-TTS commit the
# worker was checked against (later ones call torch.npu in their speaker
# embedding); docker/glm-tts-requirements.txt is what its inference imports, at
# that commit's pins (GLM-TTS has no minimal requirements file of its own). The
# checkpoint is downloaded at run time.
ARG GLM_TTS=""
ARG GLM_TTS_REF=c5dc7aecc3b4032032d631b271e767893984f821
# hadolint ignore=DL3008
RUN if [ -n "${GLM_TTS}" ]; then \
        apt-get update \
        && apt-get install -y --no-install-recommends git \
        && rm -rf /var/lib/apt/lists/* \
        && git clone https://github.com/zai-org/GLM-TTS.git /opt/glm-tts \
        && git -C /opt/glm-tts checkout "${GLM_TTS_REF}" \
        && /usr/bin/python3 -m venv /opt/glm-tts/.venv \
        && env -u PIP_CONSTRAINT /opt/glm-tts/.venv/bin/pip install \
            -r docker/glm-tts-requirements.txt "wyoming>=1.8" "PyYAML>=6.0" "soundfile>=0.12" \
        && env -u PIP_CONSTRAINT /opt/glm-tts/.venv/bin/pip install --no-deps . \
        && chown -R 1000:1000 /opt/glm-tts; \
    fi

RUN pip install "./[${EXTRAS}]" \
    && pip uninstall -y onnxruntime \
    && pip install "onnxruntime-gpu==${ONNXRUNTIME_GPU_VERSION}" \
    && if pip show onnxruntime > /dev/null 2>&1; then \
        echo "plain onnxruntime is installed beside onnxruntime-gpu" >&2; exit 1; \
    fi \
    && python -c "import onnxruntime as ort, sys; \
sys.exit('CUDAExecutionProvider' not in ort.get_available_providers())" \
    && mkdir -p /etc/wyoming-polytts \
    && cp docker/config.yaml /etc/wyoming-polytts/config.yaml \
    && rm -rf /usr/src/wyoming-polytts

# Run as a normal user (uid 1000, the usual first user on the host, so bind
# mounts owned by that user are writable). Ubuntu images ship "ubuntu" as 1000.
RUN (userdel --remove ubuntu 2> /dev/null || true) \
    && useradd --uid 1000 --create-home --shell /usr/sbin/nologin polytts \
    && mkdir -p /data/models /data/voices \
    && chown -R polytts:polytts /data

USER 1000:1000
WORKDIR /data
VOLUME ["/data/models", "/data/voices"]

# 10200: Wyoming (Home Assistant); 8880: OpenAI-compatible speech API.
EXPOSE 10200/tcp 8880/tcp

# A describe/info round trip on the Wyoming port (POLYTTS_URI if set).
HEALTHCHECK --start-period=10m --interval=30s --timeout=20s --retries=3 \
    CMD ["python", "-m", "wyoming_polytts.healthcheck"]

ENTRYPOINT ["wyoming-polytts"]
