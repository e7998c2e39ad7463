"""Starts a vLLM OpenAI server for one catalog base model with LoRA enabled and the hone
resolver plugin, bound to loopback only: vLLM's runtime LoRA endpoints must never be reachable
by users, who reach models through the hone gateway."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx


@dataclass
class VllmConfig:
    name: str  # the catalog short name, served as the model name
    source: str  # weights: local directory (or hub id where there is internet)
    storage_url: str
    cache_dir: Path
    port: int
    max_lora_rank: int = 64
    max_loras: int = 4  # adapters in one batch on the device
    max_cpu_loras: int = 16  # adapters kept in host memory (vLLM's LRU)
    max_model_len: int | None = None
    cache_bytes: int = 20 << 30
    extra_args: list[str] = field(default_factory=list)
    cpu: bool = True


def command(cfg: VllmConfig) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        cfg.source,
        "--served-model-name",
        cfg.name,
        "--host",
        "127.0.0.1",
        "--port",
        str(cfg.port),
        "--enable-lora",
        "--max-loras",
        str(cfg.max_loras),
        "--max-cpu-loras",
        str(cfg.max_cpu_loras),
        "--max-lora-rank",
        str(cfg.max_lora_rank),
        "--disable-log-stats",
    ]
    if cfg.max_model_len:
        cmd += ["--max-model-len", str(cfg.max_model_len)]
    if cfg.cpu:
        cmd += ["--gpu-memory-utilization", "0.3"]
    return cmd + cfg.extra_args


def environment(cfg: VllmConfig) -> dict[str, str]:
    env = {
        **os.environ,
        "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
        "VLLM_PLUGINS": "hone",
        "HONE_STORAGE_URL": cfg.storage_url,
        "HONE_BASE_MODEL": cfg.name,
        "HONE_ADAPTER_CACHE_DIR": str(cfg.cache_dir),
        "HONE_ADAPTER_CACHE_BYTES": str(cfg.cache_bytes),
        "HONE_VLLM_PORT": str(cfg.port),
        "TOKENIZERS_PARALLELISM": "false",
    }
    if cfg.cpu:
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    return env


class VllmServer:
    def __init__(self, cfg: VllmConfig, log_path: Path) -> None:
        self.cfg = cfg
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.cfg.port}"

    def start(self) -> VllmServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                command(self.cfg),
                env=environment(self.cfg),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    def wait_healthy(self, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"vLLM for {self.cfg.name} exited with {self.proc.returncode}; "
                    f"see {self.log_path}:\n{self.log_tail()}"
                )
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"vLLM for {self.cfg.name} not healthy after {timeout_s:.0f}s; see {self.log_path}")

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, grace_s: float = 20) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
