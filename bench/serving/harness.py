"""The processes a serving run measures, each as a context manager that stops what it started:
one vLLM OpenAI server for the tiny model (``inference.launch.VllmServer``, with the hone
resolver plugin and the launcher's LoRA settings), the instant upstream, one hone server in this
process on the same data dir and blob store (``tests.harness.server``, as the tests start it),
and the client process."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.log import log
from bench.serving.loadgen import LoadClient
from bench.serving.upstream import start_instant
from bench.serving.workload import BASE, INSTANT
from inference.launch import VllmConfig, VllmServer, command
from service.catalog.catalog import BaseModelEntry, Catalog
from service.config import Settings
from tests.harness.ports import free_port
from tests.harness.server import RunningServer, start_server


def wait_for_sibling_benchmarks(limit_s: float = 1200) -> None:
    """Two benchmarks on one small machine distort each other: wait while ``bench.train`` runs."""
    deadline = time.monotonic() + limit_s
    while subprocess.run(["pgrep", "-f", r"bench\.train"], capture_output=True).returncode == 0:
        if time.monotonic() > deadline:
            log("bench.train is still running; measuring anyway (see other_processes_cores)")
            return
        log("bench.train is running; waiting for it to finish")
        time.sleep(30)


def vllm_config(model_dir: Path, data: Path) -> VllmConfig:
    return VllmConfig(
        name=BASE,
        source=str(model_dir),
        storage_url=storage_url(data),
        cache_dir=data / "adapter-cache",
        port=free_port(),
        max_model_len=2048,
    )


def storage_url(data: Path) -> str:
    return (data / "blobs").resolve().as_uri()


@contextlib.contextmanager
def vllm_server(cfg: VllmConfig, log_path: Path) -> Iterator[VllmServer]:
    """vLLM starting (not yet healthy: call ``wait_healthy``); stopped on exit, its log kept."""
    server = VllmServer(cfg, log_path).start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def instant_upstream() -> Iterator[str]:
    """The instant upstream's URL while it runs."""
    port = free_port()
    proc = start_instant(port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()


def bench_catalog(model_dir: Path, vllm_url: str, instant_url: str) -> Catalog:
    return Catalog(
        [
            BaseModelEntry(name=BASE, source=str(model_dir), upstreams=[vllm_url]),
            BaseModelEntry(name=INSTANT, source=str(model_dir), upstreams=[instant_url]),
        ]
    )


@contextlib.contextmanager
def hone_server(data: Path, catalog: Catalog) -> Iterator[RunningServer]:
    """hone on SQLite in ``data`` with the service's default loop interval (as deployed), no
    launcher (jobs stay queued; the bench only serves)."""
    srv = start_server(
        data, catalog, database_url=None, loop_interval_s=Settings.model_fields["loop_interval_s"].default
    )
    try:
        yield srv
    finally:
        srv.stop()


@contextlib.contextmanager
def load_client() -> Iterator[LoadClient]:
    client = LoadClient().start()
    try:
        yield client
    finally:
        client.stop()


def vllm_setup(cfg: VllmConfig, log_text: str) -> dict[str, Any]:
    """What the result records about the vLLM server it measured."""
    return {
        "version": _version("vllm"),
        "max_loras": cfg.max_loras,
        "max_cpu_loras": cfg.max_cpu_loras,
        "max_lora_rank": cfg.max_lora_rank,
        "args": " ".join(vllm_args(cfg)),
        "omp_thread_binding": omp_binding(log_text),
    }


def omp_binding(log_text: str) -> list[str]:
    """vLLM's CPU backend reports which cores its OpenMP threads are pinned to."""
    keys = ("VLLM_CPU_OMP_THREADS_BIND=", "core ids=", "reserved_cpus=")
    return [line.split("] ", 1)[-1].strip() for line in log_text.splitlines() if any(k in line for k in keys)][:4]


def vllm_args(cfg: VllmConfig) -> list[str]:
    """vLLM's command line less the interpreter, the module, and what differs per run."""
    cmd = command(cfg)
    skip = {"--model", "--port"}
    return [a for i, a in enumerate(cmd[3:], 3) if a not in skip and cmd[i - 1] not in skip]


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    for name in (dist, f"{dist}-cpu"):
        with contextlib.suppress(PackageNotFoundError):
            return version(name)
    return "unknown"
