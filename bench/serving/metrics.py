"""What the serving bench measures: percentiles, CPU time per process, and ``Arm``, the rounds
of one way of sending the workload with their summary."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Sequence
from typing import Any

from bench.serving.loadgen import LoadResult, Sample


def pct(xs: Sequence[float], q: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def stats(xs: Sequence[float]) -> dict[str, float]:
    return {
        "p50_ms": round(pct(xs, 0.5), 1),
        "p95_ms": round(pct(xs, 0.95), 1),
        "min_ms": round(min(xs), 1),
        "max_ms": round(max(xs), 1),
    }


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

    def idle_cores(self, seconds: float = 5) -> dict[str, float]:
        """Cores busy while nothing is asked of either server."""
        (v0, h0), t0 = self.snapshot(), time.perf_counter()
        time.sleep(seconds)
        (v1, h1), dt = self.snapshot(), time.perf_counter() - t0
        return {"vllm": round((v1 - v0) / dt, 2), "hone": round((h1 - h0) / dt, 3)}


class Arm:
    """All the rounds of one way of sending the workload."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.walls: list[float] = []
        self.samples: list[Sample] = []
        self.cpu = {"vllm": 0.0, "hone": 0.0, "client": 0.0, "other": 0.0}

    def add(self, result: LoadResult, cpu: dict[str, float]) -> None:
        bad = [s for s in result.samples if not s.ok]
        if bad:
            raise RuntimeError(f"{self.name}: {len(bad)} requests failed, e.g. HTTP {bad[0].status}: {bad[0].text}")
        self.walls.append(result.wall)
        self.samples += result.samples
        for k, v in cpu.items():
            self.cpu[k] += v

    def rounds_rps(self) -> list[float]:
        per = len(self.samples) // len(self.walls)
        return [per / w for w in self.walls]

    def summary(self) -> dict[str, Any]:
        wall = sum(self.walls)
        n = len(self.samples)
        lat = [s.latency_ms for s in self.samples]
        out = {
            "requests": n,
            "rounds": len(self.walls),
            "seconds": round(wall, 3),
            "requests_per_s": round(n / wall, 2),
            "completion_tokens_per_s": round(sum(s.completion_tokens for s in self.samples) / wall, 1),
            "latency_p50_ms": round(pct(lat, 0.5), 1),
            "latency_p95_ms": round(pct(lat, 0.95), 1),
            "rounds_requests_per_s": [round(x, 2) for x in self.rounds_rps()],
            "cpu_ms_per_request": {k: round(v / n * 1000, 2) for k, v in self.cpu.items()},
            "other_processes_cores": round(self.cpu["other"] / wall, 3),
        }
        ttft = [s.ttft * 1000 for s in self.samples if s.ttft is not None]
        if ttft:
            out |= {"ttft_p50_ms": round(pct(ttft, 0.5), 1), "ttft_p95_ms": round(pct(ttft, 0.95), 1)}
        return out


def per_round(a: Arm, b: Arm) -> list[float]:
    """b's throughput over a's, round by round (each round runs the arms back to back)."""
    return [round(y / x, 3) for x, y in zip(a.rounds_rps(), b.rounds_rps(), strict=True)]


def direct_vs_gateway(arms: dict[str, Arm], ttft: bool = False) -> dict[str, Any]:
    """The summary of one direct-vs-gateway comparison: both arms, the throughput ratio (overall,
    per round, median of rounds) and the latency the gateway adds."""
    a, b = arms["direct"].summary(), arms["gateway"].summary()
    pairs = per_round(arms["direct"], arms["gateway"])
    out = {
        "direct": a,
        "gateway": b,
        "throughput_ratio": round(b["requests_per_s"] / a["requests_per_s"], 3),
        "throughput_ratio_per_round": pairs,
        "throughput_ratio_median_of_rounds": round(statistics.median(pairs), 3),
        "added_latency_p50_ms": round(b["latency_p50_ms"] - a["latency_p50_ms"], 1),
        "added_latency_p95_ms": round(b["latency_p95_ms"] - a["latency_p95_ms"], 1),
    }
    if ttft:
        out["added_ttft_p50_ms"] = round(b["ttft_p50_ms"] - a["ttft_p50_ms"], 1)
    return out
