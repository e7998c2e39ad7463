"""Serving: what the hone gateway costs, what many adapters cost, and what a cold adapter costs.

    python -m bench.serve [--requests N] [--concurrency C] [--rounds R] [--adapters 8] [--cold K]
                          [--max-tokens 16] [--out PATH]

One run starts one vLLM OpenAI server for the tiny model (``inference.launch.VllmServer``, with
the hone resolver plugin and the launcher's LoRA settings) and one hone server in this process
on the same data dir and blob store, as ``tests/e2e`` does. The load comes from a separate
client process (``httpx``, asyncio, ``C`` requests in flight at a time), so the clients never
share a GIL with the hone server they measure. Every request is the same short chat, greedy
(``temperature 0``), ``max_tokens`` completion tokens with ``ignore_eos`` so that every request
produces exactly that many tokens whatever model answers.

0. Gateway ceiling: the workload sent (a) straight to an upstream that answers every request at
   once with a canned completion (a catalog entry ``hone-instant``) and (b) through hone's
   gateway to it: what one hone process can proxy, its CPU per request, the latency it adds.
1. Gateway overhead: the same workload sent (a) straight to vLLM's URL and (b) through hone's
   ``/v1`` with an API key, in alternating rounds (a b, b a, a b, ...) to cancel drift; also one
   request at a time, and with ``stream=True`` (time to first token). Before each round the bench
   waits (up to 60 s) until no other process keeps the machine busy.
2. Multi-adapter: ``--adapters`` LoRA adapters made without training (PEFT r=16 all-linear on
   the tiny model, random non-zero ``lora_B`` so they change the answers), uploaded to the blob
   store as a finished job would leave them (``jobs/<id>/final/`` with ``manifest.json`` last),
   published in the adapter index and registered as fine-tuned models. After one warm-up
   request each (which also checks that every adapter answers differently from the base), the
   workload is sent through the gateway to the base model, to one adapter, and round-robin
   over all adapters, in alternating rounds.
3. Cold vs warm: ``--cold`` more adapters never requested before, one at a time: the first
   request (the gateway passes it on, vLLM asks the hone resolver, which reads the index entry,
   downloads and verifies the files into its cache, and vLLM loads the adapter) and the request
   right after it (warm), with a base-model request beside each as the reference. The resolver's
   own share (``AdapterCache.fetch``: download + sha256 check) is timed separately afterwards.

CPU time is read per phase for the vLLM process tree, this process (the hone server) and the
client process: on a small CPU machine every core-second the gateway spends is taken from vLLM.
Results are printed and written to ``bench/results/serve-cpu-tiny.json``. The pieces live in
``bench/serving/`` (one module per concern, listed in its ``__init__``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.log import log
from bench.serving.harness import wait_for_sibling_benchmarks
from bench.serving.phases import Plan
from bench.serving.report import document, table
from bench.serving.run import measure

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=100, help="requests per round (default 100)")
    ap.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    ap.add_argument("--rounds", type=int, default=8, help="timed rounds per arm (default 8)")
    ap.add_argument(
        "--stream-requests", type=int, default=None, help="requests per streaming round (default N/2; 0 skips)"
    )
    ap.add_argument("--adapters", type=int, default=8, help="adapters in the multi-adapter phase (default 8)")
    ap.add_argument("--cold", type=int, default=10, help="fresh adapters in the cold-load phase (default 10)")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--out", type=Path, default=RESULTS / "serve-cpu-tiny.json")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    stream_n = args.requests // 2 if args.stream_requests is None else args.stream_requests
    plan = Plan(args.requests, args.rounds, args.concurrency, args.max_tokens, stream_n)
    wait_for_sibling_benchmarks()
    load_before = os.getloadavg()
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hone-bench-serve-") as tmp:
        m = measure(Path(tmp), plan, args.adapters, args.cold, t_start)
    command = " ".join(["python -m bench.serve", *(sys.argv[1:] if argv is None else argv)])
    doc = document(command, load_before, plan, m.vllm, m.adapter_bytes, m.results, time.perf_counter() - t_start)
    print(table(doc))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    log(f"wrote {args.out}")
    return doc


if __name__ == "__main__":
    main()
