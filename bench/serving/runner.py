"""Rounds of load: each arm's rounds in alternation (a b, b a, ...) to cancel drift, each round
started on a quiet machine, with the CPU time of every process it used."""

from __future__ import annotations

import time

from bench.log import log
from bench.serving.loadgen import LoadClient, LoadJob, LoadResult
from bench.serving.metrics import Arm, CpuMeter

# One arm: (base URL, API key or None, models sent round-robin).
Target = tuple[str, str | None, list[str]]


class Runner:
    def __init__(self, client: LoadClient, meter: CpuMeter, concurrency: int, max_tokens: int) -> None:
        self.client, self.meter = client, meter
        self.concurrency, self.max_tokens = concurrency, max_tokens
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

    def load(
        self, target: Target, n: int, stream: bool = False, concurrency: int | None = None
    ) -> tuple[LoadResult, dict[str, float]]:
        """One round of ``n`` requests to ``target``, and the core-seconds each party spent on it."""
        base_url, api_key, models = target
        v0, h0 = self.meter.snapshot()
        m0 = self.meter.machine()
        result = self.client.run(
            LoadJob(base_url, api_key, models, n, concurrency or self.concurrency, self.max_tokens, stream)
        )
        v1, h1 = self.meter.snapshot()
        m1 = self.meter.machine()
        cpu = {"vllm": v1 - v0, "hone": h1 - h0, "client": result.client_cpu}
        cpu["other"] = max(0.0, (m1 - m0) - sum(cpu.values()))  # anything else running on the machine
        return result, cpu

    def compare(
        self, arms: dict[str, Target], n: int, rounds: int, stream: bool = False, concurrency: int | None = None
    ) -> dict[str, Arm]:
        """One warm-up round per arm, then ``rounds`` rounds per arm, the order rotating."""
        names = list(arms)
        for name in names:
            self.load(arms[name], max(self.concurrency * 2, n // 4), stream, concurrency)
        out = {name: Arm(name) for name in names}
        for r in range(rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                self.wait_quiet()
                out[name].add(*self.load(arms[name], n, stream, concurrency))
            log(
                f"  round {r + 1}/{rounds}: "
                + ", ".join(f"{name} {out[name].rounds_rps()[-1]:.1f} req/s" for name in names)
            )
        return out

    def interference(self) -> dict[str, float | int]:
        return {
            "waited_for_a_quiet_machine_s": round(self.waited_for_quiet_s, 1),
            "rounds_started_under_other_load": self.rounds_started_under_load,
        }
