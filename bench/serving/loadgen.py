"""The load generator: a separate client process (one asyncio loop, ``httpx``, one client per
upstream URL and key, kept across rounds) so the clients never share a GIL with the hone server
they measure. The parent sends it a ``LoadJob`` per round and gets a ``LoadResult`` back, one
``Sample`` per request."""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import time
from dataclasses import dataclass
from typing import Any

from bench.serving.workload import CHAT_PATH, auth_headers, chat_body


@dataclass(frozen=True, slots=True)
class Sample:
    """One request: when it started and ended (``time.perf_counter`` seconds), its time to
    first token (streaming only), the completion tokens it reported, its HTTP status, and the
    text it answered (or the start of the error body)."""

    start: float
    end: float
    ttft: float | None
    completion_tokens: int
    status: int
    text: str

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def latency_ms(self) -> float:
        return (self.end - self.start) * 1000


@dataclass(frozen=True, slots=True)
class LoadJob:
    """One round: ``n`` requests to ``base_url``, ``concurrency`` in flight, round-robin over
    ``models``."""

    base_url: str
    api_key: str | None
    models: list[str]
    n: int
    concurrency: int
    max_tokens: int
    stream: bool = False


@dataclass(frozen=True, slots=True)
class LoadResult:
    wall: float  # seconds from the first request sent to the last answer read
    client_cpu: float  # core-seconds the client process used meanwhile
    samples: list[Sample]


async def _request(client: Any, url: str, model: str, max_tokens: int) -> Sample:
    t0 = time.perf_counter()
    r = await client.post(url, json=chat_body(model, max_tokens, False))
    if r.status_code != 200:
        return Sample(t0, time.perf_counter(), None, 0, r.status_code, r.text[:500])
    doc = r.json()
    text = doc["choices"][0]["message"]["content"] or ""
    return Sample(t0, time.perf_counter(), None, doc["usage"]["completion_tokens"], 200, text)


async def _stream(client: Any, url: str, model: str, max_tokens: int) -> Sample:
    t0 = time.perf_counter()
    ttft, tokens, parts = None, 0, []
    async with client.stream("POST", url, json=chat_body(model, max_tokens, True)) as r:
        if r.status_code != 200:
            text = (await r.aread()).decode(errors="replace")[:500]
            return Sample(t0, time.perf_counter(), None, 0, r.status_code, text)
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
    return Sample(t0, time.perf_counter(), ttft, tokens, 200, "".join(parts))


async def _round(client: Any, job: LoadJob) -> LoadResult:
    url = job.base_url.rstrip("/") + CHAT_PATH
    send = _stream if job.stream else _request
    samples: list[Sample | None] = [None] * job.n
    next_i = 0

    async def worker() -> None:
        nonlocal next_i
        while next_i < job.n:
            i, next_i = next_i, next_i + 1
            samples[i] = await send(client, url, job.models[i % len(job.models)], job.max_tokens)

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(job.concurrency, job.n))))
    done = [s for s in samples if s is not None]
    return LoadResult(time.perf_counter() - t0, time.process_time() - cpu0, done)


async def _serve(conn: Any) -> None:
    import httpx

    clients: dict[tuple[str, str], httpx.AsyncClient] = {}
    loop = asyncio.get_running_loop()
    try:
        while (job := await loop.run_in_executor(None, conn.recv)) is not None:
            key = (job.base_url, job.api_key or "")
            if key not in clients:
                clients[key] = httpx.AsyncClient(
                    headers=auth_headers(job.api_key),
                    timeout=httpx.Timeout(300.0),
                    limits=httpx.Limits(max_connections=256, max_keepalive_connections=256),
                )
            conn.send(await _round(clients[key], job))
    finally:
        for client in clients.values():
            await client.aclose()


def client_main(conn: Any) -> None:
    """The client process's entry point: serve ``LoadJob``s from ``conn`` until it sends None."""
    asyncio.run(_serve(conn))


class LoadClient:
    """The parent's side: starts the client process, sends it rounds, stops it."""

    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=client_main, args=(child,), daemon=True)

    def start(self) -> LoadClient:
        self._proc.start()
        return self

    def run(self, job: LoadJob) -> LoadResult:
        self._conn.send(job)
        result: LoadResult = self._conn.recv()
        return result

    def stop(self) -> None:
        self._conn.send(None)
        self._proc.join(30)


def chat_once(base_url: str, api_key: str | None, model: str, max_tokens: int) -> tuple[float, str]:
    """One request from this process: (milliseconds, answer text); raises on an HTTP error."""
    import httpx

    t0 = time.perf_counter()
    r = httpx.post(
        base_url + CHAT_PATH, json=chat_body(model, max_tokens, False), headers=auth_headers(api_key), timeout=300
    )
    dt = (time.perf_counter() - t0) * 1000
    if r.status_code != 200:
        raise RuntimeError(f"{model}: HTTP {r.status_code}: {r.text[:500]}")
    return dt, r.json()["choices"][0]["message"]["content"] or ""
