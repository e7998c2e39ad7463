#!/usr/bin/env bash
# The main job: set up, start `hone up` (API, trainers, vLLM) on a fresh data dir with
# SmolLM2-135M-Instruct as its base model, run examples/demo.py through the official openai SDK
# (fine-tune it on a few made-up facts, then ask both models), grade the base and the fine-tuned
# model on held-out questions with `hone eval compare` (the Evals API), then stop everything.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export HONE_DATA_DIR="${HONE_DATA_DIR:-$(mktemp -d -t hone-demo-XXXX)}"
export HONE_MODELS=smollm2-135m-instruct  # the base model examples/demo.py fine-tunes
PORT="${HONE_DEMO_PORT:-8765}"
.venv/bin/hone up --port "$PORT" &
HONE=$!
trap 'kill -INT $HONE 2>/dev/null; wait $HONE 2>/dev/null' EXIT
echo "waiting for hone up (a fresh data dir downloads SmolLM2 (93 MB) and converts it, then vLLM starts: a minute or two)"
for _ in $(seq 1 1200); do
  curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  kill -0 $HONE 2>/dev/null || { echo "hone up exited"; exit 1; }
  sleep 0.5
done
KEY="$(cat "$HONE_DATA_DIR/api-key")"
HONE_DEMO_BASE_URL="http://127.0.0.1:$PORT/v1" HONE_DEMO_API_KEY="$KEY" \
  .venv/bin/python -u examples/demo.py | tee "$HONE_DATA_DIR/demo.out"
JOB="$(grep -o -m1 'ftjob-[A-Za-z0-9]*' "$HONE_DATA_DIR/demo.out")"  # the fine-tuning job demo.py made first
echo "== hone eval compare $JOB: the base and the fine-tuned model graded on the job's validation file"
.venv/bin/hone eval compare "$JOB" --grader fuzzy_match --base-url "http://127.0.0.1:$PORT/v1" --api-key "$KEY"
