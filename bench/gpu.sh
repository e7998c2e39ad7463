#!/usr/bin/env bash
# The training bench's GPU figures (docs/benchmarks.md, "GPU figures: pending"): python -m bench.train
# on one CUDA GPU, LoRA on the 0.5b and 8b shapes, 8b again with 16,384-token micro-batches, then
# full fine-tuning and QLoRA on 0.5b (recipe only), all under one overall budget (default 8
# minutes, BUDGET_S to change) enforced with timeout: each run gets at most its own cap and what
# is left of the budget, and a run the budget no longer allows is skipped and said so. JSON goes
# to bench/results/train-cuda-<name>.json. Run from anywhere, in the project's environment:
#
#     bash bench/gpu.sh            # PYTHON=.venv/bin/python bash bench/gpu.sh
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
BUDGET_S=${BUDGET_S:-480}
START=$(date +%s)
FAILED=0

run() { # run NAME CAP_S ARGS...: one bench.train run, stopped at CAP_S or the budget's end
    local name=$1 cap=$2
    shift 2
    local left=$((BUDGET_S - ($(date +%s) - START)))
    if ((left < 45)); then
        echo "== $name: skipped, ${left}s of the ${BUDGET_S}s budget left"
        return
    fi
    ((cap > left)) && cap=$left
    echo "== $name: python -m bench.train --device cuda $* (at most ${cap}s)"
    timeout --kill-after=15 "$cap" "$PY" -m bench.train --device cuda "$@" --out "bench/results/train-cuda-$name.json"
    local rc=$?
    if ((rc != 0)); then
        echo "== $name: exit $rc$( ((rc == 124 || rc == 137)) && echo ' (timed out)')"
        FAILED=1
    fi
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c 'import importlib.util as u, torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "flash_attn", u.find_spec("flash_attn") is not None)'

# LoRA, chat-length data (log-normal, median 150 tokens), batch 8: recipe vs previous vs naive
run 0.5b 100 --shape 0.5b --warmup 2 --steps 10
run 8b 150 --shape 8b --warmup 2 --steps 10
# 8B with 16,384-token micro-batches: 16 examples of ~1,000 tokens packed into one row (the naive
# padded batch, 16 x 1,000 positions without checkpointing, may not fit: it is then reported as oom)
run 8b-16k 150 --shape 8b --batch-size 16 --lengths 1000 --max-tokens 16384 --warmup 1 --steps 4
# the other training types, recipe only (full fine-tuning keeps one copy of the weights per run)
run 0.5b-full 60 --shape 0.5b --training-type full --runs recipe --warmup 2 --steps 10 \
    --note "recipe only: each run would keep its own copy of every weight"
# QLoRA's 4-bit weights need bitsandbytes: without it the run is skipped and said so, not failed
if "$PY" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("bitsandbytes") is None)'; then
    run 0.5b-qlora 60 --shape 0.5b --training-type qlora --warmup 2 --steps 10
else
    echo "== 0.5b-qlora: skipped, bitsandbytes is not installed (QLoRA's 4-bit weights need it)"
fi

echo "done in $(($(date +%s) - START))s"
exit $FAILED
