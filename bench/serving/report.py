"""The serving bench's result document (``bench/results/serve-cpu-tiny.json``) and the table it
prints."""

from __future__ import annotations

import os
import platform
from typing import Any

from bench.machine import cpu_name
from bench.serving.phases import Plan
from bench.serving.workload import BASE, PROMPT


def document(
    command: str,
    load_before: tuple[float, float, float],
    plan: Plan,
    vllm: dict[str, Any],
    adapter_bytes: int,
    results: dict[str, Any],
    total_s: float,
) -> dict[str, Any]:
    return {
        "benchmark": "serve",
        "command": command,
        "machine": {
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_before": [round(x, 2) for x in load_before],
            "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "setup": {
            "model": BASE,
            "prompt": PROMPT,
            "max_tokens": plan.max_tokens,
            "ignore_eos": True,
            "temperature": 0,
            "concurrency": plan.concurrency,
            "requests_per_round": plan.requests,
            "rounds": plan.rounds,
            "client": "httpx (asyncio) in its own process",
            "vllm": vllm,
            "adapter": {"rank": 16, "target_modules": "all-linear", "bytes": adapter_bytes},
        },
        **results,
        "total_seconds": round(total_s, 1),
    }


def _row(label: str, s: dict[str, Any]) -> str:
    cpu = s["cpu_ms_per_request"]
    return (
        f"  {label:<34} {s['requests_per_s']:>8.2f} {s['completion_tokens_per_s']:>9.1f} "
        f"{s['latency_p50_ms']:>8.1f} {s['latency_p95_ms']:>8.1f} {s.get('ttft_p50_ms', float('nan')):>8.1f} "
        f"{cpu['vllm']:>8.2f} {cpu['hone']:>8.2f} {cpu['client']:>8.2f} {s['other_processes_cores']:>6.2f}"
    )


def _rows(r: dict[str, Any]) -> list[str]:
    rows = []
    for c in r.get("gateway_ceiling", {}).values():
        rows += [
            _row(f"instant upstream, c={c['concurrency']}", c["direct"]),
            _row(f"  through the gateway, c={c['concurrency']}", c["gateway"]),
        ]
    for key, what in (
        ("gateway_overhead", ""),
        ("gateway_overhead_sequential", ", 1 at a time"),
        ("gateway_overhead_stream", ", stream"),
    ):
        if g := r.get(key):
            rows += [
                _row(f"direct to vLLM{what}", g["direct"]),
                _row(f"through the {'hone ' if not what else ''}gateway{what}", g["gateway"]),
            ]
    if m := r.get("multi_adapter"):
        rows += [
            _row("gateway: base model", m["base"]),
            _row("gateway: one adapter", m["one_adapter"]),
            _row(f"gateway: {m['adapters']} adapters round-robin", m["adapters_round_robin"]),
        ]
    return rows


def _findings(r: dict[str, Any]) -> list[str]:
    lines = []
    if gc := r.get("gateway_ceiling"):
        cc, c1 = gc["concurrent"], gc["one_at_a_time"]
        lines.append(
            f"  gateway ceiling (instant upstream): {cc['gateway']['requests_per_s']:.0f} req/s at "
            f"c={cc['concurrency']}, {cc['gateway']['cpu_ms_per_request']['hone']:.2f} ms hone CPU per "
            f"request; added p50 {c1['added_latency_p50_ms']:+.2f} ms at c=1, "
            f"{cc['added_latency_p50_ms']:+.2f} ms at c={cc['concurrency']}"
        )
    if g := r.get("gateway_overhead"):
        lines.append(
            f"  gateway/direct throughput {g['throughput_ratio']:.3f} (median of rounds "
            f"{g['throughput_ratio_median_of_rounds']:.3f}; target >= {g['target_ratio']}), per round "
            f"{g['throughput_ratio_per_round']}; added p50 {g['added_latency_p50_ms']:+.1f} ms, "
            f"p95 {g['added_latency_p95_ms']:+.1f} ms"
        )
    if g1 := r.get("gateway_overhead_sequential"):
        lines.append(
            f"  one at a time: throughput {g1['throughput_ratio']:.3f} (median of rounds "
            f"{g1['throughput_ratio_median_of_rounds']:.3f}), added p50 {g1['added_latency_p50_ms']:+.1f} ms"
        )
    if gs := r.get("gateway_overhead_stream"):
        lines.append(
            f"  streaming: throughput {gs['throughput_ratio']:.3f} (median of rounds "
            f"{gs['throughput_ratio_median_of_rounds']:.3f}), added TTFT p50 "
            f"{gs['added_ttft_p50_ms']:+.1f} ms"
        )
    if m := r.get("multi_adapter"):
        lines.append(
            f"  {m['adapters']} adapters round-robin / base {m['ratio_round_robin_vs_base']:.3f}, one adapter "
            f"/ base {m['ratio_one_adapter_vs_base']:.3f}, round-robin / one adapter "
            f"{m['ratio_round_robin_vs_one_adapter']:.3f}"
        )
    if c := r.get("cold_vs_warm"):
        cold, warm = c["first_request_cold"], c["second_request_warm"]
        lines.append(
            f"  cold first request p50 {cold['p50_ms']:.1f} ms / p95 {cold['p95_ms']:.1f}; warm second "
            f"p50 {warm['p50_ms']:.1f} / p95 {warm['p95_ms']:.1f}; base p50 "
            f"{c['base_model_request']['p50_ms']:.1f}"
        )
        if "resolver_fetch_verify" in c:
            lines.append(f"  resolver fetch + verify alone p50 {c['resolver_fetch_verify']['p50_ms']:.1f} ms")
    return lines


def table(r: dict[str, Any]) -> str:
    head = (
        f"\nbench.serve on {r['machine']['cpu']} ({r['machine']['cores']} cores), concurrency "
        f"{r['setup']['concurrency']}, max_tokens {r['setup']['max_tokens']}"
    )
    cols = ("req/s", "tok/s", "p50 ms", "p95 ms", "ttft50", "cpu vllm", "cpu hone", "cpu clnt", "other")
    units = ("", "", "", "", "ms", "ms/req", "ms/req", "ms/req", "cores")
    widths = (8, 9, 8, 8, 8, 8, 8, 8, 6)

    def line(cells: tuple[str, ...]) -> str:
        return f"  {'':<34} " + " ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True))

    return "\n".join([head, line(cols), line(units), *_rows(r), "", *_findings(r), ""])
