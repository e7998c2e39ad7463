"""Starts a vLLM OpenAI server for one catalog base model with LoRA enabled and the hone
resolver plugin (or, for a catalog entry with ``runner: pooling``, as an embedding model:
``--runner pooling --convert embed``, which serves /v1/embeddings from a decoder's normalised
last-token hidden state, or a native embedding model as it is; no LoRA, as nothing fine-tunes
an embedding model here), bound to loopback only and requiring an API key that only the gateway holds:
vLLM's runtime LoRA endpoints must never be reachable by users, who reach models through the
hone gateway. ``--max-model-len`` is the catalog entry's context length."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

log = logging.getLogger(__name__)
API_KEY_ENV = "VLLM_API_KEY"  # read by vLLM (as --api-key) and by the hone resolver plugin


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
    api_key: str | None = None  # required on /v1 (LoRA load/unload too): only the gateway has it
    runner: str = "generate"  # the catalog entry's runner: "generate" (LoRA) or "pooling" (embeddings)


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
        "--disable-log-stats",
    ]
    if cfg.runner == "pooling":
        cmd += ["--runner", "pooling", "--convert", "embed"]
    else:
        cmd += [
            "--enable-lora",
            "--max-loras",
            str(cfg.max_loras),
            "--max-cpu-loras",
            str(cfg.max_cpu_loras),
            "--max-lora-rank",
            str(cfg.max_lora_rank),
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
        "VLLM_NO_USAGE_STATS": "1",  # nothing leaves the deployment (vLLM reports usage otherwise)
        "DO_NOT_TRACK": "1",
    }
    if cfg.api_key:
        env[API_KEY_ENV] = cfg.api_key  # vLLM's --api-key, kept off the command line (ps shows that)
    if cfg.cpu:
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    return env


class VllmServer:
    def __init__(self, cfg: VllmConfig, log_path: Path, argv: list[str] | None = None) -> None:
        """``argv`` replaces vLLM's command line (tests supervise a stand-in process tree)."""
        self.cfg = cfg
        self.log_path = log_path
        self.argv = argv
        self.proc: subprocess.Popen[bytes] | None = None
        self.pgid: int | None = None  # the server's process group: the API server, engine and workers

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.cfg.port}"

    def start(self) -> VllmServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv or command(self.cfg),
                env=environment(self.cfg),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pgid = self.proc.pid  # a new session: the group is named after its leader
        return self

    def exited(self) -> int | None:
        """The leader's exit code once it has exited, else None."""
        return None if self.proc is None else self.proc.poll()

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
        """Stop the whole process group, also when its leader is already gone: vLLM's engine and
        worker processes outlive a killed API server and would hold their memory forever."""
        if self.pgid is None:
            return
        _signal_group(self.pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while group_alive(self.pgid) and time.monotonic() < deadline:
            if self.proc is not None:
                self.proc.poll()  # reap the leader so it does not count as alive
            time.sleep(0.1)
        _signal_group(self.pgid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()
        self.pgid = None


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def group_alive(pgid: int) -> bool:
    """Whether any process of the group is still running (zombies do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


class Supervisor:
    """Keeps one server running: when it exits unexpectedly its whole process group is stopped
    and it is started again after a backoff (1 s, doubling to 60 s; reset after a minute of
    health). ``ready`` says whether it serves now; ``on_restart(name, n)`` is told each restart."""

    def __init__(
        self,
        server: VllmServer,
        *,
        on_restart: Callable[[str, int], None] | None = None,
        health_timeout_s: float = 900,
        max_backoff_s: float = 60,
    ) -> None:
        self.server, self.on_restart = server, on_restart
        self.health_timeout_s, self.max_backoff_s = health_timeout_s, max_backoff_s
        self.state = "starting"  # starting | healthy | restarting | stopped
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"hone-vllm-{server.cfg.name}", daemon=True)

    @property
    def ready(self) -> bool:
        return self.state == "healthy"

    def start(self) -> Supervisor:
        """Start the server, wait until it is healthy, then watch it."""
        self.server.start()
        self.server.wait_healthy(self.health_timeout_s)
        self.state = "healthy"
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.state = "stopped"
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.server.stop()

    def _watch(self) -> None:
        backoff, healthy_since = 1.0, time.monotonic()
        while not self._stop.wait(0.5):
            code = self.server.exited()
            if code is None:
                if time.monotonic() - healthy_since > 60:
                    backoff = 1.0
                continue
            self.state = "restarting"
            log.error(
                "vLLM for %s exited with %s; restarting it in %.0f s. Last log lines:\n%s",
                self.server.cfg.name,
                code,
                backoff,
                self.server.log_tail(10),
            )
            self.server.stop()  # what is left of its process group
            if self._stop.wait(backoff):
                return
            backoff = min(backoff * 2, self.max_backoff_s)
            try:
                self.server.start()
                self.server.wait_healthy(self.health_timeout_s)
            except Exception as e:  # any failure to restart is retried; the watch must not die
                log.error("restarting vLLM for %s failed: %s", self.server.cfg.name, str(e).splitlines()[0])
                self.server.stop()  # exited or hung: either way the next turn starts it again
                continue
            self.restarts += 1
            self.state, healthy_since = "healthy", time.monotonic()
            log.warning("vLLM for %s is serving again (restart %d)", self.server.cfg.name, self.restarts)
            if self.on_restart is not None:
                try:
                    self.on_restart(self.server.cfg.name, self.restarts)
                except Exception:
                    log.exception("the restart callback failed")
