#!/usr/bin/env bash
# The main job: set up, start `hone serve` on a fresh data dir, run examples/demo.py through
# the official openai SDK, stop the server.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export HONE_DATA_DIR="${HONE_DATA_DIR:-$(mktemp -d -t hone-demo-XXXX)}"
PORT="${HONE_DEMO_PORT:-8765}"
KEY=$(.venv/bin/hone keys create --project demo)
.venv/bin/hone serve --port "$PORT" --log-level warning &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null' EXIT
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
HONE_DEMO_BASE_URL="http://127.0.0.1:$PORT/v1" HONE_DEMO_API_KEY="$KEY" .venv/bin/python examples/demo.py
