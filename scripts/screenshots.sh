#!/usr/bin/env bash
# Regenerates the dashboard screenshots in docs/screenshots/ (shown by the README and
# docs/dashboard.md): the browser tests, with real vLLM for the playground and the evals
# comparison, save one PNG per page while they run.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
HONE_UI_SCREENSHOTS="$PWD/docs/screenshots" .venv/bin/python -m pytest -q tests/browser tests/e2e/test_serving.py
ls -1 docs/screenshots
