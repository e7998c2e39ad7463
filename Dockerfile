# syntax=docker/dockerfile:1.7
# Three images from one tree:
#   docker build --target api       -t ghcr.io/hone/api .        control plane + gateway (no torch)
#   docker build --target trainer   -t ghcr.io/hone/trainer .    CUDA torch, peft, bitsandbytes
#   docker build --target inference -t ghcr.io/hone/inference .  vLLM + the hone resolver plugin
# All run as the non-root user 10001 and work with a read-only root filesystem.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG TRAINER_BASE=pytorch/pytorch:2.11.0-cuda13.0-cudnn9-runtime
ARG VLLM_IMAGE=vllm/vllm-openai:v0.32.0

FROM ${PYTHON_IMAGE} AS api
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HONE_DATA_DIR=/tmp/hone
WORKDIR /app
COPY pyproject.toml README.md ./
# Each image ships only the packages it runs: the shared contract plus its own.
COPY contract ./contract
COPY service ./service
RUN pip install ".[service]" && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin hone
USER 10001
EXPOSE 8000
ENTRYPOINT []
CMD ["hone", "serve", "--host", "0.0.0.0", "--port", "8000"]

FROM ${TRAINER_BASE} AS trainer
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY contract ./contract
COPY trainer ./trainer
# torch comes with the base image; the trainer extra adds transformers, peft, boto3 ...
RUN pip install ".[trainer]" "bitsandbytes>=0.45" && useradd --uid 10001 --no-create-home hone || true
USER 10001
ENTRYPOINT []
CMD ["python", "-m", "trainer", "--help"]

FROM ${VLLM_IMAGE} AS inference
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 \
    VLLM_PLUGINS=hone VLLM_ALLOW_RUNTIME_LORA_UPDATING=True
WORKDIR /app
COPY pyproject.toml README.md ./
COPY contract ./contract
COPY inference ./inference
# --no-deps: keep the image's vLLM, torch and transformers exactly as built; the plugin needs
# only httpx, boto3 and pydantic on top (installed explicitly).
RUN pip install --no-deps . && pip install "boto3>=1.34" "httpx>=0.27" \
    && (useradd --uid 10001 --no-create-home hone || true)
USER 10001
ENTRYPOINT []
CMD ["python", "-m", "vllm.entrypoints.openai.api_server", "--help"]
