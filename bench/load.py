"""Load on the control plane: job lists, job creates and proxied chats at high concurrency.

    python -m bench.load [--concurrency 200] [--requests 1000] [--jobs 40] [--out PATH]

``hone serve`` runs in its own process (SQLite in a fresh data dir, no launcher: created jobs
are validated and wait in ``queued``), chat completions go to an upstream in a third process
that answers at once (so what is measured is hone's own cost), and the load comes from this
process: ``--concurrency`` requests in flight (httpx, asyncio) until ``--requests`` are done.
Each mix is also sent one request at a time first: its sequential rate is the baseline the
concurrent run is compared with. Reported: requests/s, p50/p99 latency, errors, and the
server's CPU seconds per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil

from bench.log import log
from bench.machine import cpu_name
from bench.serving.metrics import pct
from bench.serving.upstream import start_instant
from service.catalog.tiny import build_tiny_model
from tests.harness.jobs import jsonl, upload, wait_status
from tests.harness.ports import free_port
from tests.harness.process import hone_serve

RESULTS = Path(__file__).resolve().parent / "results" / "load-cpu.json"
Request = Callable[[int], tuple[str, str, bytes]]


def _rows(n: int) -> list[dict[str, Any]]:
    return [
        {"messages": [{"role": "user", "content": f"Q{i}"}, {"role": "assistant", "content": f"A{i}."}]}
        for i in range(n)
    ]


def mixes(file_id: str) -> dict[str, Request]:
    """Each mix: request number -> (method, path, JSON body)."""
    chat = json.dumps(
        {"model": "hone-tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
    ).encode()
    create = json.dumps(
        {
            "model": "hone-tiny",
            "training_file": file_id,
            "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1}}},
        }
    ).encode()
    listing = ("GET", "/v1/fine_tuning/jobs?limit=20", b"")
    return {
        "list": lambda i: listing,
        "create": lambda i: ("POST", "/v1/fine_tuning/jobs", create),
        "chat": lambda i: ("POST", "/v1/chat/completions", chat),
        "mixed": lambda i: (
            listing
            if i % 10 < 7
            else ("POST", "/v1/chat/completions", chat)
            if i % 10 < 9
            else ("POST", "/v1/fine_tuning/jobs", create)
        ),
    }


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, body: bytes) -> int:
    """One HTTP/1.1 request on a kept-alive connection; returns the status. A minimal client:
    httpx spends ~15 ms of CPU a request at 200 connections, more than the server it measures."""
    writer.write(head + b"content-length: %d\r\n\r\n" % len(body) + body)
    status_line = await reader.readuntil(b"\r\n")
    length, chunked = 0, False
    while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
        elif name.lower() == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while (size := int((await reader.readuntil(b"\r\n")).strip(), 16)) > 0:
            await reader.readexactly(size + 2)
        await reader.readuntil(b"\r\n")
    else:
        await reader.readexactly(length)
    return int(status_line.split()[1])


async def _run(base_url: str, key: str, request: Request, n: int, concurrency: int) -> dict[str, Any]:
    host, port = base_url.removeprefix("http://").split(":")
    latencies: list[float] = []
    errors: dict[str, int] = {}
    next_i = 0

    async def worker() -> None:
        nonlocal next_i
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while next_i < n:
                i, next_i = next_i, next_i + 1
                method, path, body = request(i)
                head = (
                    f"{method} {path} HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {key}\r\n"
                    "content-type: application/json\r\n"
                ).encode()
                t0 = time.perf_counter()
                try:
                    status = str(await _exchange(reader, writer, head, body))
                except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                    status = type(e).__name__
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, int(port))
                latencies.append(time.perf_counter() - t0)
                if status != "200":
                    errors[status] = errors.get(status, 0) + 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "requests": n,
        "concurrency": concurrency,
        "seconds": round(elapsed, 3),
        "requests_per_s": round(n / elapsed, 1),
        "p50_ms": round(pct(latencies, 0.5) * 1000, 1),
        "p99_ms": round(pct(latencies, 0.99) * 1000, 1),
        "errors": errors,
    }


def _cpu_s(pid: int) -> float:
    """Core-seconds the process has used (user + system)."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def measure(server: Any, key: str, mix: Request, requests: int, concurrency: int) -> dict[str, Any]:
    sequential = asyncio.run(_run(server.base_url, key, mix, max(requests // 10, 50), 1))
    cpu0 = _cpu_s(server.pid)
    concurrent = asyncio.run(_run(server.base_url, key, mix, requests, concurrency))
    concurrent["server_cpu_ms_per_request"] = round((_cpu_s(server.pid) - cpu0) * 1000 / requests, 2)
    concurrent["sequential"] = sequential
    concurrent["throughput_vs_sequential"] = round(concurrent["requests_per_s"] / sequential["requests_per_s"], 2)
    return concurrent


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n")[0])
    p.add_argument("--concurrency", type=int, default=200)
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--jobs", type=int, default=40, help="jobs in the project before the load")
    p.add_argument("--mix", action="append", help="list, create, chat, mixed (default: all)")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="hone-load-"))
    instant_port = free_port()
    instant = start_instant(instant_port)
    results: dict[str, Any] = {"machine": cpu_name(), "args": {k: str(v) for k, v in vars(args).items()}}
    try:
        model = build_tiny_model(work / "tiny")
        env = {"HONE_LAUNCHER__BACKEND": "none"}
        with hone_serve(work, model, env=env, upstreams=[f"http://127.0.0.1:{instant_port}"]) as server:
            client = server.client()
            file_id = upload(client, jsonl(_rows(12)))
            jobs = [
                client.fine_tuning.jobs.create(model="hone-tiny", training_file=file_id).id for _ in range(args.jobs)
            ]
            for job_id in jobs:  # validated before the load starts: the validator is not what is measured
                wait_status(client, job_id, {"queued"}, timeout=300)
            for name, mix in mixes(file_id).items():
                if args.mix and name not in args.mix:
                    continue
                log(f"{name}: {args.requests} requests at concurrency {args.concurrency}")
                results[name] = measure(server, server.api_key, mix, args.requests, args.concurrency)
                log(f"  {json.dumps(results[name])}")
    finally:
        instant.terminate()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
