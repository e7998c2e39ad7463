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
Results are printed and written to ``bench/results/serve-cpu-tiny.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bench.machine import cpu_name

RESULTS = Path(__file__).resolve().parent / "results"
BASE = "hone-tiny"
INSTANT = "hone-instant"  # a catalog entry whose upstream answers at once (the gateway's own cost)
PROJECT = "bench"
PROMPT = "Tell me a short story about a blue door and a painter."
LORA_B_STD = 0.05  # large enough that every adapter's greedy answer differs from the base's
TARGET_GATEWAY_RATIO = 0.95


# ---------------------------------------------------------------------------------------------
# The client process: one asyncio loop, one httpx client per upstream URL (kept across rounds).


def _body(model: str, max_tokens: int, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": PROMPT}],
                            "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return body


async def _one(client: Any, url: str, model: str, max_tokens: int, stream: bool) -> list[Any]:
    """[start, end, ttft, completion_tokens, status, text] for one request."""
    t0 = time.perf_counter()
    ttft, tokens, text = None, 0, ""
    if not stream:
        r = await client.post(url, json=_body(model, max_tokens, False))
        if r.status_code == 200:
            doc = r.json()
            tokens = doc["usage"]["completion_tokens"]
            text = doc["choices"][0]["message"]["content"] or ""
        else:
            text = r.text[:500]
        return [t0, time.perf_counter(), None, tokens, r.status_code, text]
    async with client.stream("POST", url, json=_body(model, max_tokens, True)) as r:
        if r.status_code != 200:
            text = (await r.aread()).decode(errors="replace")[:500]
            return [t0, time.perf_counter(), None, 0, r.status_code, text]
        parts = []
        async for line in r.aiter_lines():
            if not line.startswith("data: "):
                continue
            if ttft is None:
                ttft = time.perf_counter() - t0
            if line == "data: [DONE]":
                break
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            for choice in chunk.get("choices") or ():
                parts.append(choice["delta"].get("content") or "")
        text = "".join(parts)
    return [t0, time.perf_counter(), ttft, tokens, 200, text]


async def _serve_loads(conn: Any) -> None:
    import httpx

    clients: dict[tuple[str, str], httpx.AsyncClient] = {}
    loop = asyncio.get_running_loop()
    while True:
        job = await loop.run_in_executor(None, conn.recv)
        if job is None:
            break
        key = (job["base_url"], job["api_key"] or "")
        if key not in clients:
            headers = {"authorization": f"Bearer {job['api_key']}"} if job["api_key"] else {}
            clients[key] = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(300.0),
                                             limits=httpx.Limits(max_connections=256, max_keepalive_connections=256))
        client, url = clients[key], job["base_url"].rstrip("/") + "/v1/chat/completions"
        models, n, c = job["models"], job["n"], job["concurrency"]
        next_i = 0
        samples: list[list[Any]] = [[] for _ in range(n)]

        async def worker() -> None:
            nonlocal next_i
            while next_i < n:
                i, next_i = next_i, next_i + 1
                samples[i] = await _one(client, url, models[i % len(models)], job["max_tokens"], job["stream"])

        cpu0 = time.process_time()
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(min(c, n))))
        conn.send({"wall": time.perf_counter() - t0, "client_cpu": time.process_time() - cpu0, "samples": samples})
    for client in clients.values():
        await client.aclose()


def load_process(conn: Any) -> None:
    asyncio.run(_serve_loads(conn))


# An upstream that answers every request at once with the same chat completion: what is left of
# a request's cost is the gateway's own (and the client's).
_CANNED = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "hone-instant",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "word " * 16}, "finish_reason": "length"}],
    "usage": {"prompt_tokens": 24, "completion_tokens": 16, "total_tokens": 40}}).encode()


def instant_upstream(port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                await reader.readexactly(length)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                             % (len(_CANNED), _CANNED))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, StopIteration):
            writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
        await server.serve_forever()

    asyncio.run(serve())


# ---------------------------------------------------------------------------------------------
# Measurements


def pct(xs: Sequence[float], q: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


class CpuMeter:
    """Core-seconds used by the vLLM process tree and by this process (the hone server)."""

    def __init__(self, vllm_pid: int) -> None:
        import psutil

        self.root = psutil.Process(vllm_pid)
        self._procs: dict[int, Any] = {}

    def vllm(self) -> float:
        total = 0.0
        for p in [self.root, *self.root.children(recursive=True)]:
            proc = self._procs.setdefault(p.pid, p)
            with contextlib.suppress(Exception):
                t = proc.cpu_times()
                total += t.user + t.system
        return total

    def snapshot(self) -> tuple[float, float]:
        return self.vllm(), time.process_time()

    @staticmethod
    def machine() -> float:
        """Core-seconds the whole machine has been busy (everyone's processes)."""
        import psutil

        t = psutil.cpu_times()
        return t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)


class Arm:
    """All the rounds of one way of sending the workload."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.walls: list[float] = []
        self.samples: list[list[Any]] = []
        self.cpu = {"vllm": 0.0, "hone": 0.0, "client": 0.0, "other": 0.0}

    def add(self, result: dict[str, Any], cpu: dict[str, float]) -> None:
        bad = [s for s in result["samples"] if s[4] != 200]
        if bad:
            raise RuntimeError(f"{self.name}: {len(bad)} requests failed, e.g. HTTP {bad[0][4]}: {bad[0][5]}")
        self.walls.append(result["wall"])
        self.samples += result["samples"]
        for k, v in cpu.items():
            self.cpu[k] += v

    def rounds_rps(self) -> list[float]:
        per = len(self.samples) // len(self.walls)
        return [per / w for w in self.walls]

    def summary(self) -> dict[str, Any]:
        wall = sum(self.walls)
        n = len(self.samples)
        lat = [(s[1] - s[0]) * 1000 for s in self.samples]
        out = {"requests": n, "rounds": len(self.walls), "seconds": round(wall, 3),
               "requests_per_s": round(n / wall, 2),
               "completion_tokens_per_s": round(sum(s[3] for s in self.samples) / wall, 1),
               "latency_p50_ms": round(pct(lat, 0.5), 1), "latency_p95_ms": round(pct(lat, 0.95), 1),
               "rounds_requests_per_s": [round(x, 2) for x in self.rounds_rps()],
               "cpu_ms_per_request": {k: round(v / n * 1000, 2) for k, v in self.cpu.items()},
               "other_processes_cores": round(self.cpu["other"] / wall, 3)}
        ttft = [s[2] * 1000 for s in self.samples if s[2] is not None]
        if ttft:
            out |= {"ttft_p50_ms": round(pct(ttft, 0.5), 1), "ttft_p95_ms": round(pct(ttft, 0.95), 1)}
        return out


class Bench:
    def __init__(self, conn: Any, meter: CpuMeter, args: argparse.Namespace) -> None:
        self.conn, self.meter, self.args = conn, meter, args
        self.waited_for_quiet_s = 0.0
        self.rounds_started_under_load = 0

    def wait_quiet(self, limit_s: float = 60, busy_cores: float = 0.15) -> None:
        """Start a round only when nothing else keeps the machine busy (vLLM idles at ~0.01 cores),
        waiting at most ``limit_s``; the other processes' share during each round is reported too."""
        t0 = time.perf_counter()
        while True:
            m0, (v0, h0), w0 = self.meter.machine(), self.meter.snapshot(), time.perf_counter()
            time.sleep(0.5)
            (v1, h1), m1 = self.meter.snapshot(), self.meter.machine()
            busy = ((m1 - m0) - (v1 - v0) - (h1 - h0)) / (time.perf_counter() - w0)
            if busy < busy_cores:
                break
            if time.perf_counter() - t0 > limit_s:
                self.rounds_started_under_load += 1
                log(f"  the machine stays busy ({busy:.2f} cores used by other processes); measuring anyway")
                break
            time.sleep(2)
        self.waited_for_quiet_s += time.perf_counter() - t0

    def load(self, base_url: str, api_key: str | None, models: list[str], n: int, stream: bool = False,
             concurrency: int | None = None) -> tuple[dict[str, Any], dict[str, float]]:
        v0, h0 = self.meter.snapshot()
        m0 = self.meter.machine()
        self.conn.send({"base_url": base_url, "api_key": api_key, "models": models, "n": n,
                        "concurrency": concurrency or self.args.concurrency, "max_tokens": self.args.max_tokens,
                        "stream": stream})
        result = self.conn.recv()
        v1, h1 = self.meter.snapshot()
        m1 = self.meter.machine()
        cpu = {"vllm": v1 - v0, "hone": h1 - h0, "client": result["client_cpu"]}
        cpu["other"] = max(0.0, (m1 - m0) - sum(cpu.values()))  # anything else running on the machine
        return result, cpu

    def compare(self, arms: dict[str, tuple[str, str | None, list[str]]], n: int, rounds: int,
                stream: bool = False, concurrency: int | None = None) -> dict[str, Arm]:
        """One warm-up round per arm, then ``rounds`` rounds per arm, the order rotating."""
        names = list(arms)
        for name in names:
            self.load(*arms[name], n=max(self.args.concurrency * 2, n // 4), stream=stream, concurrency=concurrency)
        out = {name: Arm(name) for name in names}
        for r in range(rounds):
            order = names if r % 2 == 0 else names[::-1]
            for name in order:
                self.wait_quiet()
                out[name].add(*self.load(*arms[name], n=n, stream=stream, concurrency=concurrency))
            log(f"  round {r + 1}/{rounds}: " + ", ".join(
                f"{name} {out[name].rounds_rps()[-1]:.1f} req/s" for name in names))
        return out


def direct_vs_gateway(arms: dict[str, Arm], ttft: bool = False) -> dict[str, Any]:
    """The summary of one direct-vs-gateway comparison: both arms, the throughput ratio (overall,
    per round, median of rounds) and the latency the gateway adds."""
    a, b = arms["direct"].summary(), arms["gateway"].summary()
    pairs = per_round(arms["direct"], arms["gateway"])
    out = {"direct": a, "gateway": b, "throughput_ratio": round(b["requests_per_s"] / a["requests_per_s"], 3),
           "throughput_ratio_per_round": pairs, "throughput_ratio_median_of_rounds": round(statistics.median(pairs), 3),
           "added_latency_p50_ms": round(b["latency_p50_ms"] - a["latency_p50_ms"], 1),
           "added_latency_p95_ms": round(b["latency_p95_ms"] - a["latency_p95_ms"], 1)}
    if ttft:
        out["added_ttft_p50_ms"] = round(b["ttft_p50_ms"] - a["ttft_p50_ms"], 1)
    return out


def per_round(a: Arm, b: Arm) -> list[float]:
    """b's throughput over a's, round by round (each round runs the arms back to back)."""
    return [round(y / x, 3) for x, y in zip(a.rounds_rps(), b.rounds_rps())]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Adapters made without training, stored exactly as a finished job leaves them


def make_adapters(model_dir: Path, names: list[str], out: Path) -> dict[str, Path]:
    import torch

    from trainer.model import defaults, load_trainable, save_weights

    torch.set_num_threads(1)  # vLLM is starting on the same cores
    model = load_trainable(str(model_dir), defaults(), torch.device("cpu"), None)
    dirs = {}
    for i, name in enumerate(names):
        g = torch.Generator().manual_seed(1000 + i)
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if "lora_A" in pname:
                    p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) / p.shape[1] ** 0.5)
                elif "lora_B" in pname:
                    p.copy_(torch.randn(p.shape, generator=g) * LORA_B_STD)
        dirs[name] = out / name.replace(":", "_")
        save_weights(model, dirs[name])
    return dirs


def store_adapters(store: Any, dirs: dict[str, Path]) -> dict[str, tuple[str, str]]:
    """Upload each as ``jobs/<job id>/final`` (manifest last) and publish it: name -> (job id, uri)."""
    from service.ids import job_id
    from service.models.index import publish
    from trainer.checkpoint import upload_dir

    out = {}
    for name, local in dirs.items():
        jid = job_id()
        cfg = json.loads((local / "adapter_config.json").read_text())
        uri = upload_dir(store, local, f"jobs/{jid}/final", {  # the fields trainer/attempt.py writes
            "model_name": name, "base_model": BASE, "job_id": jid, "step": 0, "training_type": "lora",
            "rank": cfg["r"], "target_modules": "all-linear"})
        publish(store, name, uri, BASE)
        out[name] = (jid, uri)
    return out


def register_models(ctx: Any, api_key_project: str, stored: dict[str, tuple[str, str]]) -> None:
    """The rows a succeeded job leaves behind, so the gateway lets these names through."""
    from service import auth
    from service.db.schema import FineTunedModel, Job

    now = int(time.time())
    with ctx.db.session() as s:
        p = auth.get_or_create_project(s, api_key_project)
        for name, (jid, uri) in stored.items():
            s.add(Job(id=jid, project_id=p.id, project_name=p.name, model=BASE, base_model=BASE, training_file="file-bench",
                      method_type="supervised", hyperparameters={}, seed=0, status="succeeded",
                      planned_model=name, fine_tuned_model=name, result_files=[], created_at=now, finished_at=now))
            s.flush()
            s.add(FineTunedModel(name=name, project_id=p.id, job_id=jid, base_model=BASE, kind="final",
                                 uri=uri, created_at=now))


# ---------------------------------------------------------------------------------------------
# Servers


def wait_for_sibling_benchmarks(limit_s: float = 1200) -> None:
    """Two benchmarks on one small machine distort each other: wait while ``bench.train`` runs."""
    deadline = time.monotonic() + limit_s
    while subprocess.run(["pgrep", "-f", r"bench\.train"], capture_output=True).returncode == 0:
        if time.monotonic() > deadline:
            log("bench.train is still running; measuring anyway (see other_processes_cores)")
            return
        log("bench.train is running; waiting for it to finish")
        time.sleep(30)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def hone_server(data_dir: Path, catalog: Any) -> Iterator[tuple[Any, str]]:
    """The hone app on a real port in a thread of this process (as ``tests.conftest``)."""
    import threading

    import uvicorn

    from service.app import create_app
    from service.config import Settings

    port = free_port()
    settings = Settings(data_dir=data_dir, host="127.0.0.1", port=port, launcher="none")
    app = create_app(settings, catalog=catalog)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("the hone server did not start")
        time.sleep(0.05)
    try:
        yield app.state.ctx, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


# ---------------------------------------------------------------------------------------------


def chat_once(base_url: str, api_key: str | None, model: str, max_tokens: int) -> tuple[float, str]:
    import httpx

    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    t0 = time.perf_counter()
    r = httpx.post(base_url + "/v1/chat/completions", json=_body(model, max_tokens, False), headers=headers, timeout=300)
    dt = (time.perf_counter() - t0) * 1000
    if r.status_code != 200:
        raise RuntimeError(f"{model}: HTTP {r.status_code}: {r.text[:500]}")
    return dt, r.json()["choices"][0]["message"]["content"] or ""


def stats(xs: Sequence[float]) -> dict[str, float]:
    return {"p50_ms": round(pct(xs, 0.5), 1), "p95_ms": round(pct(xs, 0.95), 1),
            "min_ms": round(min(xs), 1), "max_ms": round(max(xs), 1)}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=100, help="requests per round (default 100)")
    ap.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    ap.add_argument("--rounds", type=int, default=8, help="timed rounds per arm (default 8)")
    ap.add_argument("--stream-requests", type=int, default=None, help="requests per streaming round (default N/2; 0 skips)")
    ap.add_argument("--adapters", type=int, default=8, help="adapters in the multi-adapter phase (default 8)")
    ap.add_argument("--cold", type=int, default=10, help="fresh adapters in the cold-load phase (default 10)")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--out", type=Path, default=RESULTS / "serve-cpu-tiny.json")
    args = ap.parse_args(argv)
    stream_n = args.requests // 2 if args.stream_requests is None else args.stream_requests

    from contract.blobstore import open_blobstore
    from inference.cache import AdapterCache
    from inference.launch import VllmConfig, VllmServer
    from service import auth
    from service.catalog.catalog import BaseModelEntry, Catalog
    from service.catalog.tiny import build_tiny_model

    wait_for_sibling_benchmarks()
    load_before = os.getloadavg()
    t_start = time.perf_counter()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="hone-bench-serve-") as tmp_s:
        tmp = Path(tmp_s)
        model_dir = build_tiny_model(tmp / "models" / BASE)
        data = tmp / "data"
        storage_url = (data / "blobs").resolve().as_uri()
        cfg = VllmConfig(name=BASE, source=str(model_dir), storage_url=storage_url, cache_dir=data / "adapter-cache",
                         port=free_port(), max_model_len=2048)
        vllm = VllmServer(cfg, data / "vllm.log").start()
        try:
            t0 = time.perf_counter()
            warm_names = [f"ft:{BASE}:{PROJECT}::Adapt{i + 1:03d}" for i in range(args.adapters)]
            cold_names = [f"ft:{BASE}:{PROJECT}::Cold{i + 1:04d}" for i in range(args.cold)]
            dirs = make_adapters(model_dir, warm_names + cold_names, tmp / "adapters")
            store = open_blobstore(storage_url)
            stored = store_adapters(store, dirs)
            adapter_bytes = sum(f.stat().st_size for f in dirs[warm_names[0]].iterdir())
            log(f"{len(dirs)} adapters built and published in {time.perf_counter() - t0:.1f}s "
                f"({adapter_bytes / 1024:.0f} KiB each)")
            vllm.wait_healthy(600)
            log(f"vLLM healthy {time.perf_counter() - t_start:.0f}s after start")
            instant_url = f"http://127.0.0.1:{free_port()}"
            instant = mp.get_context("spawn").Process(target=instant_upstream, args=(int(instant_url.rsplit(":", 1)[1]),),
                                                      daemon=True)
            instant.start()
            catalog = Catalog([BaseModelEntry(name=BASE, source=str(model_dir), upstreams=[vllm.url]),
                               BaseModelEntry(name=INSTANT, source=str(model_dir), upstreams=[instant_url])])
            with hone_server(data, catalog) as (ctx, hone_url):
                register_models(ctx, PROJECT, stored)
                with ctx.db.session() as s:
                    key = auth.create_api_key(s, auth.get_or_create_project(s, PROJECT))
                parent, child = mp.get_context("spawn").Pipe()
                client_proc = mp.get_context("spawn").Process(target=load_process, args=(child,), daemon=True)
                client_proc.start()
                try:
                    meter = CpuMeter(vllm.proc.pid)  # type: ignore[union-attr]
                    bench = Bench(parent, meter, args)
                    time.sleep(2)
                    (v0, h0), t0 = meter.snapshot(), time.perf_counter()
                    time.sleep(5)
                    (v1, h1), dt = meter.snapshot(), time.perf_counter() - t0
                    idle = {"vllm": round((v1 - v0) / dt, 2), "hone": round((h1 - h0) / dt, 3)}
                    log(f"idle CPU (cores busy): {idle}")
                    results = run_phases(bench, args, stream_n, vllm.url, instant_url, hone_url, key, warm_names,
                                         cold_names)
                    results["idle_cpu_cores"] = idle
                    results["interference"] = {"waited_for_a_quiet_machine_s": round(bench.waited_for_quiet_s, 1),
                                               "rounds_started_under_other_load": bench.rounds_started_under_load}
                finally:
                    parent.send(None)
                    client_proc.join(30)
                # The resolver's share of a cold load: index entry + manifest + download + sha256.
                fetch_ms = []
                scratch = AdapterCache(store, tmp / "scratch-cache", BASE, 1 << 30)
                for name in cold_names:
                    t0 = time.perf_counter()
                    scratch.fetch(name)
                    fetch_ms.append((time.perf_counter() - t0) * 1000)
                if fetch_ms:
                    results["cold_vs_warm"]["resolver_fetch_verify"] = stats(fetch_ms)
            instant.terminate()
        finally:
            vllm.stop()
            binding = omp_binding(vllm.log_tail(100000))
    results = {
        "benchmark": "serve", "command": " ".join(["python -m bench.serve", *(sys.argv[1:] if argv is None else argv)]),
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "load_avg_before": [round(x, 2) for x in load_before],
                    "load_avg_after": [round(x, 2) for x in os.getloadavg()]},
        "setup": {"model": BASE, "prompt": PROMPT, "max_tokens": args.max_tokens, "ignore_eos": True,
                  "temperature": 0, "concurrency": args.concurrency, "requests_per_round": args.requests,
                  "rounds": args.rounds, "client": "httpx (asyncio) in its own process",
                  "vllm": {"version": _version("vllm"), "max_loras": cfg.max_loras, "max_cpu_loras": cfg.max_cpu_loras,
                           "max_lora_rank": cfg.max_lora_rank, "args": " ".join(vllm_args(cfg)),
                           "omp_thread_binding": binding},
                  "adapter": {"rank": 16, "target_modules": "all-linear", "bytes": adapter_bytes}},
        **results, "total_seconds": round(time.perf_counter() - t_start, 1)}
    print_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    log(f"wrote {args.out}")
    return results


def omp_binding(log_text: str) -> list[str]:
    """vLLM's CPU backend reports which cores its OpenMP threads are pinned to."""
    keys = ("VLLM_CPU_OMP_THREADS_BIND=", "core ids=", "reserved_cpus=")
    return [line.split("] ", 1)[-1].strip() for line in log_text.splitlines() if any(k in line for k in keys)][:4]


def vllm_args(cfg: Any) -> list[str]:
    from inference.launch import command

    cmd = command(cfg)
    skip = {"--model", "--port"}
    return [a for i, a in enumerate(cmd[3:], 3) if a not in skip and cmd[i - 1] not in skip]


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    for name in (dist, f"{dist}-cpu"):
        with contextlib.suppress(PackageNotFoundError):
            return version(name)
    return "unknown"


def run_phases(bench: Bench, args: argparse.Namespace, stream_n: int, vllm_url: str, instant_url: str, hone_url: str,
               key: str, warm_names: list[str], cold_names: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    n, rounds = args.requests, args.rounds

    # 0. The gateway's own cost, against an upstream that answers at once
    log("gateway ceiling: instant upstream, direct vs through the gateway")
    ceiling: dict[str, Any] = {}
    for label, c, m in (("concurrent", args.concurrency, 10 * n), ("one_at_a_time", 1, 2 * n)):
        arms = bench.compare({"direct": (instant_url, None, [INSTANT]), "gateway": (hone_url, key, [INSTANT])},
                             m, 3, concurrency=c)
        a, b = arms["direct"].summary(), arms["gateway"].summary()
        ceiling[label] = {"concurrency": c, "direct": a, "gateway": b,
                          "added_latency_p50_ms": round(b["latency_p50_ms"] - a["latency_p50_ms"], 2)}
    out["gateway_ceiling"] = ceiling

    # 1. Gateway overhead
    log(f"gateway overhead: {rounds} rounds x {n} requests per arm, concurrency {args.concurrency}")
    arms = bench.compare({"direct": (vllm_url, None, [BASE]), "gateway": (hone_url, key, [BASE])}, n, rounds)
    out["gateway_overhead"] = {**direct_vs_gateway(arms), "target_ratio": TARGET_GATEWAY_RATIO}
    seq_n = max(n * 2 // 5, 20)
    log(f"gateway overhead, one request at a time: {rounds} rounds x {seq_n} requests per arm")
    arms = bench.compare({"direct": (vllm_url, None, [BASE]), "gateway": (hone_url, key, [BASE])}, seq_n, rounds,
                         concurrency=1)
    out["gateway_overhead_sequential"] = direct_vs_gateway(arms)
    if stream_n:
        log(f"gateway overhead, streaming: {rounds} rounds x {stream_n} requests per arm")
        arms = bench.compare({"direct": (vllm_url, None, [BASE]), "gateway": (hone_url, key, [BASE])}, stream_n,
                             rounds, stream=True)
        out["gateway_overhead_stream"] = direct_vs_gateway(arms, ttft=True)

    # 2. Multi-adapter
    if warm_names:
        log(f"multi-adapter: warming {len(warm_names)} adapters")
        _, base_text = chat_once(hone_url, key, BASE, args.max_tokens)
        texts, warmup_ms = {}, []
        for name in warm_names:
            dt, texts[name] = chat_once(hone_url, key, name, args.max_tokens)
            warmup_ms.append(dt)
        same_as_base = [nm for nm, t in texts.items() if t == base_text]
        if same_as_base:
            raise RuntimeError(f"adapters answer exactly as the base model (not applied?): {same_as_base}")
        for name in warm_names:  # the same adapter answers the same again (greedy): the right weights
            if chat_once(hone_url, key, name, args.max_tokens)[1] != texts[name]:
                raise RuntimeError(f"{name} answered differently the second time")
        log(f"multi-adapter: {rounds} rounds x {n} requests per arm")
        arms = bench.compare({"base": (hone_url, key, [BASE]), "one_adapter": (hone_url, key, warm_names[:1]),
                              "adapters_round_robin": (hone_url, key, warm_names)}, n, rounds)
        s = {k: v.summary() for k, v in arms.items()}
        out["multi_adapter"] = {
            "adapters": len(warm_names), "distinct_answers": len(set(texts.values())),
            "first_request_per_adapter": stats(warmup_ms),
            **s,
            "ratio_round_robin_vs_base": round(s["adapters_round_robin"]["requests_per_s"] / s["base"]["requests_per_s"], 3),
            "ratio_one_adapter_vs_base": round(s["one_adapter"]["requests_per_s"] / s["base"]["requests_per_s"], 3),
            "ratio_round_robin_vs_one_adapter": round(
                s["adapters_round_robin"]["requests_per_s"] / s["one_adapter"]["requests_per_s"], 3),
            "ratio_round_robin_vs_base_per_round": per_round(arms["base"], arms["adapters_round_robin"]),
            "ratio_one_adapter_vs_base_per_round": per_round(arms["base"], arms["one_adapter"])}

    # 3. Cold vs warm
    if cold_names:
        log(f"cold vs warm: {len(cold_names)} fresh adapters, one at a time")
        cold, warm, base = [], [], []
        for name in cold_names:
            base.append(chat_once(hone_url, key, BASE, args.max_tokens)[0])
            cold.append(chat_once(hone_url, key, name, args.max_tokens)[0])
            warm.append(chat_once(hone_url, key, name, args.max_tokens)[0])
        out["cold_vs_warm"] = {"adapters": len(cold_names), "first_request_cold": stats(cold),
                               "second_request_warm": stats(warm), "base_model_request": stats(base),
                               "added_by_cold_load_p50_ms": round(pct(cold, 0.5) - pct(warm, 0.5), 1),
                               "distinct_adapters_requested_in_run": len(warm_names) + len(cold_names)}
    return out


def print_table(r: dict[str, Any]) -> None:
    rows = []

    def row(label: str, s: dict[str, Any]) -> None:
        rows.append(f"  {label:<34} {s['requests_per_s']:>8.2f} {s['completion_tokens_per_s']:>9.1f} "
                    f"{s['latency_p50_ms']:>8.1f} {s['latency_p95_ms']:>8.1f} "
                    f"{s.get('ttft_p50_ms', float('nan')):>8.1f} "
                    f"{s['cpu_ms_per_request']['vllm']:>8.2f} {s['cpu_ms_per_request']['hone']:>8.2f} "
                    f"{s['cpu_ms_per_request']['client']:>8.2f} {s['other_processes_cores']:>6.2f}")

    print(f"\nbench.serve on {r['machine']['cpu']} ({r['machine']['cores']} cores), concurrency "
          f"{r['setup']['concurrency']}, max_tokens {r['setup']['max_tokens']}")
    print(f"  {'':<34} {'req/s':>8} {'tok/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'ttft50':>8} {'cpu vllm':>8} {'cpu hone':>8} {'cpu clnt':>8} {'other':>6}")
    print(f"  {'':<34} {'':>8} {'':>9} {'':>8} {'':>8} {'ms':>8} {'ms/req':>8} {'ms/req':>8} {'ms/req':>8} {'cores':>6}")
    for label, c in r.get("gateway_ceiling", {}).items():
        row(f"instant upstream, c={c['concurrency']}", c["direct"])
        row(f"  through the gateway, c={c['concurrency']}", c["gateway"])
    g = r.get("gateway_overhead")
    if g:
        row("direct to vLLM", g["direct"])
        row("through the hone gateway", g["gateway"])
    g1 = r.get("gateway_overhead_sequential")
    if g1:
        row("direct to vLLM, 1 at a time", g1["direct"])
        row("through the gateway, 1 at a time", g1["gateway"])
    gs = r.get("gateway_overhead_stream")
    if gs:
        row("direct to vLLM, stream", gs["direct"])
        row("through the gateway, stream", gs["gateway"])
    m = r.get("multi_adapter")
    if m:
        row("gateway: base model", m["base"])
        row("gateway: one adapter", m["one_adapter"])
        row(f"gateway: {m['adapters']} adapters round-robin", m["adapters_round_robin"])
    print("\n".join(rows))
    gc = r.get("gateway_ceiling")
    if gc:
        cc, c1 = gc["concurrent"], gc["one_at_a_time"]
        print(f"\n  gateway ceiling (instant upstream): {cc['gateway']['requests_per_s']:.0f} req/s at c={cc['concurrency']}, "
              f"{cc['gateway']['cpu_ms_per_request']['hone']:.2f} ms hone CPU per request; added p50 "
              f"{c1['added_latency_p50_ms']:+.2f} ms at c=1, {cc['added_latency_p50_ms']:+.2f} ms at c={cc['concurrency']}")
    if g:
        print(f"  gateway/direct throughput {g['throughput_ratio']:.3f} (median of rounds "
              f"{g['throughput_ratio_median_of_rounds']:.3f}; target >= {g['target_ratio']}), per round {g['throughput_ratio_per_round']}; added p50 {g['added_latency_p50_ms']:+.1f} ms, "
              f"p95 {g['added_latency_p95_ms']:+.1f} ms")
    if g1:
        print(f"  one at a time: throughput {g1['throughput_ratio']:.3f} (median of rounds "
              f"{g1['throughput_ratio_median_of_rounds']:.3f}), added p50 {g1['added_latency_p50_ms']:+.1f} ms")
    if gs:
        print(f"  streaming: throughput {gs['throughput_ratio']:.3f} (median of rounds "
              f"{gs['throughput_ratio_median_of_rounds']:.3f}), added TTFT p50 {gs['added_ttft_p50_ms']:+.1f} ms")
    if m:
        print(f"  {m['adapters']} adapters round-robin / base {m['ratio_round_robin_vs_base']:.3f}, one adapter / base "
              f"{m['ratio_one_adapter_vs_base']:.3f}, round-robin / one adapter {m['ratio_round_robin_vs_one_adapter']:.3f}")
    c = r.get("cold_vs_warm")
    if c:
        print(f"  cold first request p50 {c['first_request_cold']['p50_ms']:.1f} ms / p95 {c['first_request_cold']['p95_ms']:.1f}; "
              f"warm second p50 {c['second_request_warm']['p50_ms']:.1f} / p95 {c['second_request_warm']['p95_ms']:.1f}; "
              f"base p50 {c['base_model_request']['p50_ms']:.1f}")
        if "resolver_fetch_verify" in c:
            print(f"  resolver fetch + verify alone p50 {c['resolver_fetch_verify']['p50_ms']:.1f} ms")
    print()


if __name__ == "__main__":
    main()
