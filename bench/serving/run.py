"""One serving run: build the tiny model and the adapters, start vLLM, the instant upstream,
hone and the client process, run the phases, and stop everything again."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.log import log
from bench.serving.adapters import StoredAdapter, adapter_names, make_adapters, register_models, store_adapters
from bench.serving.harness import (
    bench_catalog,
    hone_server,
    instant_upstream,
    load_client,
    storage_url,
    vllm_config,
    vllm_server,
    vllm_setup,
)
from bench.serving.metrics import CpuMeter
from bench.serving.phases import Endpoints, Plan, resolver_fetch_verify, run_phases
from bench.serving.runner import Runner
from bench.serving.workload import BASE, PROJECT
from contract.blobstore import BlobStore, open_blobstore
from service.catalog.tiny import build_tiny_model


@dataclass
class Measured:
    results: dict[str, Any]  # the phases' parts of the result, plus idle CPU and interference
    vllm: dict[str, Any]  # what the result records about the vLLM server
    adapter_bytes: int  # one adapter's files


def prepare_adapters(
    model_dir: Path, names: list[str], out: Path, store: BlobStore
) -> tuple[dict[str, StoredAdapter], int]:
    t0 = time.perf_counter()
    dirs = make_adapters(model_dir, names, out)
    stored = store_adapters(store, dirs)
    size = sum(f.stat().st_size for f in next(iter(dirs.values())).iterdir()) if dirs else 0
    log(f"{len(dirs)} adapters built and published in {time.perf_counter() - t0:.1f}s ({size / 1024:.0f} KiB each)")
    return stored, size


def measure(tmp: Path, plan: Plan, n_adapters: int, n_cold: int, t_start: float) -> Measured:
    model_dir = build_tiny_model(tmp / "models" / BASE)
    data = tmp / "data"
    cfg = vllm_config(model_dir, data)
    store = open_blobstore(storage_url(data))
    warm_names, cold_names = adapter_names("Adapt", n_adapters), adapter_names("Cold", n_cold)
    with vllm_server(cfg, data / "vllm.log") as vllm:
        # the adapters are made while vLLM starts
        stored, adapter_bytes = prepare_adapters(model_dir, warm_names + cold_names, tmp / "adapters", store)
        vllm.wait_healthy(600)
        log(f"vLLM healthy {time.perf_counter() - t_start:.0f}s after start")
        assert vllm.proc is not None
        meter = CpuMeter(vllm.proc.pid)
        with (
            instant_upstream() as instant_url,
            hone_server(data, bench_catalog(model_dir, vllm.url, instant_url)) as hone,
            load_client() as client,
        ):
            register_models(hone.ctx, PROJECT, stored)
            ep = Endpoints(vllm.url, instant_url, hone.base_url, hone.new_key(PROJECT))
            runner = Runner(client, meter, plan.concurrency, plan.max_tokens)
            time.sleep(2)
            idle = meter.idle_cores()
            log(f"idle CPU (cores busy): {idle}")
            results = run_phases(runner, ep, plan, warm_names, cold_names)
            results["idle_cpu_cores"] = idle
            results["interference"] = runner.interference()
        if cold_names:
            results["cold_vs_warm"]["resolver_fetch_verify"] = resolver_fetch_verify(
                store, tmp / "scratch-cache", cold_names
            )
    return Measured(results, vllm_setup(cfg, vllm.log_tail(100000)), adapter_bytes)
