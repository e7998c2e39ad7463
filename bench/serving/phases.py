"""The measured phases of a serving run, each one function returning its part of the result.

0. Gateway ceiling: the workload sent straight to the instant upstream and through hone's
   gateway to it: what one hone process can proxy, its CPU per request, the latency it adds.
1. Gateway overhead: the same workload straight to vLLM and through hone's ``/v1`` with an API
   key, in alternating rounds; also one request at a time, and streamed (time to first token).
2. Multi-adapter: after one warm-up request per adapter (which also checks that every adapter
   answers differently from the base), the workload to the base model, to one adapter, and
   round-robin over all adapters, in alternating rounds.
3. Cold vs warm: adapters never requested before, one at a time: the first request (vLLM asks
   the hone resolver, which downloads and verifies the files, and loads the adapter) and the one
   right after it, with a base-model request beside each as the reference; then the resolver's
   own share (``AdapterCache.fetch``: index entry, manifest, download, sha256) alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.log import log
from bench.serving.loadgen import chat_once
from bench.serving.metrics import direct_vs_gateway, pct, per_round, stats
from bench.serving.runner import Runner, Target
from bench.serving.workload import BASE, INSTANT
from contract.blobstore import BlobStore

TARGET_GATEWAY_RATIO = 0.95


@dataclass(frozen=True)
class Endpoints:
    vllm_url: str
    instant_url: str
    hone_url: str
    api_key: str

    def direct(self, model: str = BASE) -> Target:
        return (self.instant_url if model == INSTANT else self.vllm_url), None, [model]

    def gateway(self, *models: str) -> Target:
        return self.hone_url, self.api_key, list(models)


@dataclass(frozen=True)
class Plan:
    requests: int  # per round
    rounds: int
    concurrency: int
    max_tokens: int
    stream_requests: int  # per streaming round; 0 skips streaming


def gateway_ceiling(runner: Runner, ep: Endpoints, plan: Plan) -> dict[str, Any]:
    log("gateway ceiling: instant upstream, direct vs through the gateway")
    out: dict[str, Any] = {}
    n = plan.requests
    for label, c, m in (("concurrent", plan.concurrency, 10 * n), ("one_at_a_time", 1, 2 * n)):
        arms = runner.compare({"direct": ep.direct(INSTANT), "gateway": ep.gateway(INSTANT)}, m, 3, concurrency=c)
        a, b = arms["direct"].summary(), arms["gateway"].summary()
        out[label] = {
            "concurrency": c,
            "direct": a,
            "gateway": b,
            "added_latency_p50_ms": round(b["latency_p50_ms"] - a["latency_p50_ms"], 2),
        }
    return out


def gateway_overhead(runner: Runner, ep: Endpoints, plan: Plan) -> dict[str, Any]:
    """``gateway_overhead`` (concurrent), ``..._sequential`` and, unless skipped, ``..._stream``."""
    n, rounds = plan.requests, plan.rounds
    arms = {"direct": ep.direct(), "gateway": ep.gateway(BASE)}
    log(f"gateway overhead: {rounds} rounds x {n} requests per arm, concurrency {plan.concurrency}")
    out = {
        "gateway_overhead": {**direct_vs_gateway(runner.compare(arms, n, rounds)), "target_ratio": TARGET_GATEWAY_RATIO}
    }
    seq_n = max(n * 2 // 5, 20)
    log(f"gateway overhead, one request at a time: {rounds} rounds x {seq_n} requests per arm")
    out["gateway_overhead_sequential"] = direct_vs_gateway(runner.compare(arms, seq_n, rounds, concurrency=1))
    if plan.stream_requests:
        log(f"gateway overhead, streaming: {rounds} rounds x {plan.stream_requests} requests per arm")
        out["gateway_overhead_stream"] = direct_vs_gateway(
            runner.compare(arms, plan.stream_requests, rounds, stream=True), ttft=True
        )
    return out


def warm_up_adapters(ep: Endpoints, names: list[str], max_tokens: int) -> tuple[dict[str, str], list[float]]:
    """One request per adapter (its answer and milliseconds), checking that each answers
    differently from the base and the same when asked again (greedy): the right weights."""
    _, base_text = chat_once(ep.hone_url, ep.api_key, BASE, max_tokens)
    texts, warmup_ms = {}, []
    for name in names:
        dt, texts[name] = chat_once(ep.hone_url, ep.api_key, name, max_tokens)
        warmup_ms.append(dt)
    same_as_base = [nm for nm, t in texts.items() if t == base_text]
    if same_as_base:
        raise RuntimeError(f"adapters answer exactly as the base model (not applied?): {same_as_base}")
    for name in names:
        if chat_once(ep.hone_url, ep.api_key, name, max_tokens)[1] != texts[name]:
            raise RuntimeError(f"{name} answered differently the second time")
    return texts, warmup_ms


def multi_adapter(runner: Runner, ep: Endpoints, plan: Plan, names: list[str]) -> dict[str, Any]:
    log(f"multi-adapter: warming {len(names)} adapters")
    texts, warmup_ms = warm_up_adapters(ep, names, plan.max_tokens)
    log(f"multi-adapter: {plan.rounds} rounds x {plan.requests} requests per arm")
    arms = runner.compare(
        {"base": ep.gateway(BASE), "one_adapter": ep.gateway(names[0]), "adapters_round_robin": ep.gateway(*names)},
        plan.requests,
        plan.rounds,
    )
    s = {k: v.summary() for k, v in arms.items()}
    rps = {k: v["requests_per_s"] for k, v in s.items()}
    return {
        "adapters": len(names),
        "distinct_answers": len(set(texts.values())),
        "first_request_per_adapter": stats(warmup_ms),
        **s,
        "ratio_round_robin_vs_base": round(rps["adapters_round_robin"] / rps["base"], 3),
        "ratio_one_adapter_vs_base": round(rps["one_adapter"] / rps["base"], 3),
        "ratio_round_robin_vs_one_adapter": round(rps["adapters_round_robin"] / rps["one_adapter"], 3),
        "ratio_round_robin_vs_base_per_round": per_round(arms["base"], arms["adapters_round_robin"]),
        "ratio_one_adapter_vs_base_per_round": per_round(arms["base"], arms["one_adapter"]),
    }


def cold_vs_warm(ep: Endpoints, plan: Plan, names: list[str], requested_before: int) -> dict[str, Any]:
    log(f"cold vs warm: {len(names)} fresh adapters, one at a time")
    cold, warm, base = [], [], []
    for name in names:
        base.append(chat_once(ep.hone_url, ep.api_key, BASE, plan.max_tokens)[0])
        cold.append(chat_once(ep.hone_url, ep.api_key, name, plan.max_tokens)[0])
        warm.append(chat_once(ep.hone_url, ep.api_key, name, plan.max_tokens)[0])
    return {
        "adapters": len(names),
        "first_request_cold": stats(cold),
        "second_request_warm": stats(warm),
        "base_model_request": stats(base),
        "added_by_cold_load_p50_ms": round(pct(cold, 0.5) - pct(warm, 0.5), 1),
        "distinct_adapters_requested_in_run": requested_before + len(names),
    }


def resolver_fetch_verify(store: BlobStore, cache_dir: Path, names: list[str]) -> dict[str, float]:
    """The resolver's share of a cold load alone, into a fresh cache: index entry + manifest +
    download + sha256."""
    from inference.cache import AdapterCache

    cache = AdapterCache(store, cache_dir, BASE, 1 << 30)
    fetch_ms = []
    for name in names:
        t0 = time.perf_counter()
        cache.fetch(name)
        fetch_ms.append((time.perf_counter() - t0) * 1000)
    return stats(fetch_ms)


def run_phases(
    runner: Runner, ep: Endpoints, plan: Plan, warm_names: list[str], cold_names: list[str]
) -> dict[str, Any]:
    out: dict[str, Any] = {"gateway_ceiling": gateway_ceiling(runner, ep, plan)}
    out |= gateway_overhead(runner, ep, plan)
    if warm_names:
        out["multi_adapter"] = multi_adapter(runner, ep, plan, warm_names)
    if cold_names:
        out["cold_vs_warm"] = cold_vs_warm(ep, plan, cold_names, len(warm_names))
    return out
