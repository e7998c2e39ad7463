"""Large Uploads against a real ``hone serve`` process: server memory and throughput.

    python -m bench.uploads.run [--local-gib 8] [--s3-gib 2] [--parallel 4] [--out PATH]

For each store (the local directory, then S3 on moto's S3 server in its own process) ``hone
serve`` runs in its own process (SQLite, no launcher), and this process is the client, with the
official ``openai`` SDK:

- **baseline**: ``POST /v1/files`` of 512 MiB (the largest single file), one request;
- **upload**: ``POST /v1/uploads`` for ``--*-gib`` GiB, its 64 MiB parts sent ``--parallel`` at a
  time, then ``complete`` with the part ids in order and the md5 of the whole content (so the
  server's assembly is checked end to end), purpose ``fine-tune`` (the JSONL check runs over
  everything).

The content is JSONL chat lines of ~1 KiB, generated per part from one 64 MiB block (its first
line names the part), never held whole. Recorded per phase: wall seconds, MiB/s, the server
process's CPU seconds and MiB per server CPU-second (throughput per core), and the server's RSS:
sampled every 0.2 s and its peak (VmHWM, reset before each phase). moto's RSS is recorded apart
(it keeps each object it completes in memory, so S3 runs at a smaller size).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.log import log
from bench.machine import cpu_name
from service.catalog.tiny import build_tiny_model
from tests.harness.ports import free_port
from tests.harness.process import ServerProcess, hone_serve, proc_status, reset_peak

RESULTS = Path(__file__).resolve().parents[1] / "results" / "uploads.json"
MiB = 1024 * 1024
PART = 64 * MiB
BASELINE = 512 * MiB


class Content:
    """Part ``i`` of a JSONL file made of 64 MiB parts: one fixed block whose first line names
    the part (so no two parts are equal); every part ends at a line end."""

    def __init__(self, part_size: int = PART) -> None:
        line = json.dumps(
            {
                "messages": [
                    {"role": "system", "content": "You are terse."},
                    {"role": "user", "content": "Summarise: " + "lorem ipsum dolor sit amet " * 30},
                    {"role": "assistant", "content": "Lorem ipsum " * 12},
                ]
            }
        ).encode()
        body_size = part_size - len(self._head(0))
        n = (body_size - 64) // (len(line) + 1)  # room left for one padding line
        body = (line + b"\n") * n
        filler = body_size - len(body)
        self.body = body + json.dumps({"pad": "x" * (filler - len(b'{"pad": ""}') - 1)}).encode() + b"\n"
        assert len(self._head(0)) + len(self.body) == part_size
        self.part_size = part_size

    @staticmethod
    def _head(i: int) -> bytes:
        return json.dumps({"messages": [{"role": "user", "content": f"part {i:08d}"}]}).encode() + b"\n"

    def part(self, i: int) -> bytes:
        return self._head(i) + self.body

    def md5(self, n_parts: int) -> str:
        digest = hashlib.md5(usedforsecurity=False)
        for i in range(n_parts):
            digest.update(self._head(i))
            digest.update(self.body)
        return digest.hexdigest()


class Sampler:
    """The server's RSS every 0.2 s and its CPU seconds, for one phase at a time."""

    def __init__(self, pid: int) -> None:
        self.proc, self.pid = psutil.Process(pid), pid
        self.samples: list[int] = []
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.samples.append(proc_status(self.pid)["VmRSS"])

    @contextmanager
    def phase(self, name: str, nbytes: int, out: dict[str, Any]) -> Iterator[None]:
        reset = reset_peak(self.pid)
        self.samples = [proc_status(self.pid)["VmRSS"]]
        self._stop.clear()
        thread = threading.Thread(target=self._run, daemon=True)
        cpu0, t0 = self.proc.cpu_times(), time.perf_counter()
        thread.start()
        try:
            yield
        finally:
            wall = time.perf_counter() - t0
            self._stop.set()
            thread.join()
            cpu1 = self.proc.cpu_times()
            cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
            status = proc_status(self.pid)
            out[name] = {
                "bytes": nbytes,
                "wall_s": round(wall, 2),
                "mib_per_s": round(nbytes / MiB / wall, 1),
                "server_cpu_s": round(cpu, 2),
                "mib_per_server_cpu_s": round(nbytes / MiB / cpu, 1) if cpu else None,
                "rss_start_mib": round(self.samples[0] / MiB, 1),
                "rss_max_sampled_mib": round(max(self.samples) / MiB, 1),
                "rss_peak_vmhwm_mib": round(status["VmHWM"] / MiB, 1) if reset else None,
            }
            log(f"  {name}: {json.dumps(out[name])}")


def _client(server: ServerProcess) -> Any:
    import openai

    return openai.OpenAI(
        base_url=server.base_url + "/v1",
        api_key=server.api_key,
        max_retries=0,
        timeout=httpx.Timeout(1800, connect=10),
    )


def run_store(server: ServerProcess, gib: float, parallel: int, content: Content) -> dict[str, Any]:
    client, sampler, out = _client(server), Sampler(server.pid), {}
    out["rss_idle_mib"] = round(proc_status(server.pid)["VmRSS"] / MiB, 1)
    baseline_parts = BASELINE // content.part_size
    with sampler.phase("baseline_files_create", BASELINE, out):
        data = b"".join(content.part(i) for i in range(baseline_parts))
        f = client.files.create(file=("baseline.jsonl", data), purpose="fine-tune")
        del data
    client.files.delete(f.id)
    n_parts = int(gib * 1024 * MiB) // content.part_size
    total = n_parts * content.part_size
    log(f"  md5 of {total / MiB / 1024:.1f} GiB (client side, before the upload)")
    md5 = content.md5(n_parts)
    upload = client.uploads.create(bytes=total, filename="big.jsonl", mime_type="text/jsonl", purpose="fine-tune")
    ids: list[str] = [""] * n_parts

    def send(i: int) -> None:
        ids[i] = client.uploads.parts.create(upload.id, data=content.part(i)).id

    with sampler.phase("upload_parts", total, out):
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            list(pool.map(send, range(n_parts)))
    with sampler.phase("upload_complete", total, out):
        done = client.uploads.complete(upload.id, part_ids=ids, md5=md5)
    assert done.status == "completed" and done.file is not None and done.file.bytes == total
    parts, complete = out["upload_parts"], out["upload_complete"]
    wall = parts["wall_s"] + complete["wall_s"]
    cpu = parts["server_cpu_s"] + complete["server_cpu_s"]
    out["upload_total"] = {
        "bytes": total,
        "parts": n_parts,
        "parallel": parallel,
        "wall_s": round(wall, 2),
        "mib_per_s": round(total / MiB / wall, 1),
        "server_cpu_s": round(cpu, 2),
        "mib_per_server_cpu_s": round(total / MiB / cpu, 1),
        "rss_peak_mib": max(
            v for p in (parts, complete) for v in (p["rss_max_sampled_mib"], p["rss_peak_vmhwm_mib"] or 0)
        ),
    }
    base = out["baseline_files_create"]
    out["vs_baseline"] = {
        "mib_per_s": round(out["upload_total"]["mib_per_s"] / base["mib_per_s"], 2),
        "mib_per_server_cpu_s": round(out["upload_total"]["mib_per_server_cpu_s"] / base["mib_per_server_cpu_s"], 2),
    }
    client.files.delete(done.file.id)
    return out


@contextmanager
def moto_process(work: Path) -> Iterator[tuple[str, int]]:
    """moto's S3 server in its own process (its memory is not the client's nor hone's)."""
    port = free_port()
    env = {**os.environ, "TMPDIR": str(work)}  # objects over 5 MiB spill to temporary files
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                httpx.get(endpoint, timeout=1)
                break
            except httpx.TransportError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        yield endpoint, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _with_moto_peak(pid: int, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    peak, stop = [0], threading.Event()

    def watch() -> None:
        while not stop.wait(0.2):
            peak[0] = max(peak[0], proc_status(pid)["VmRSS"])

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        result = fn()
    finally:
        stop.set()
        thread.join()
    result["moto_rss_peak_mib"] = round(peak[0] / MiB, 1)
    return result


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m bench.uploads.run", description=__doc__.split("\n")[0])
    p.add_argument("--local-gib", type=float, default=8.0)
    p.add_argument("--s3-gib", type=float, default=2.0)
    p.add_argument("--parallel", type=int, default=4)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    content = Content()
    results: dict[str, Any] = {
        "machine": cpu_name(),
        "cpus": os.cpu_count(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "part_mib": PART // MiB,
    }
    work = Path(tempfile.mkdtemp(prefix="hone-bench-uploads-"))
    try:
        model = build_tiny_model(work / "tiny")
        env = {"HONE_LAUNCHER__BACKEND": "none"}
        if args.local_gib > 0:
            log(f"local store: {args.local_gib} GiB in {PART // MiB} MiB parts, {args.parallel} in parallel")
            (work / "local").mkdir()
            with hone_serve(work / "local", model, env=env) as server, _keep_log(work / "local"):
                results["local"] = run_store(server, args.local_gib, args.parallel, content)
            _write(args.out, results)
            shutil.rmtree(work / "local", ignore_errors=True)
        if args.s3_gib > 0:
            log(f"S3 (moto): {args.s3_gib} GiB in {PART // MiB} MiB parts, {args.parallel} in parallel")
            (work / "moto").mkdir()
            with moto_process(work / "moto") as (endpoint, moto_pid):
                import boto3

                aws = {
                    "AWS_ACCESS_KEY_ID": "bench",
                    "AWS_SECRET_ACCESS_KEY": "bench",
                    "AWS_DEFAULT_REGION": "us-east-1",
                }
                os.environ.update(aws)
                boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
                s3_env = {**env, **aws, "HONE_STORAGE_URL": "s3://bench/hone", "HONE_S3_ENDPOINT_URL": endpoint}
                (work / "s3").mkdir()
                with hone_serve(work / "s3", model, env=s3_env) as server, _keep_log(work / "s3"):
                    results["s3_moto"] = _with_moto_peak(
                        moto_pid, lambda: run_store(server, args.s3_gib, args.parallel, content)
                    )
                _write(args.out, results)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))
    return results


def _write(out: Path, results: dict[str, Any]) -> None:
    """After each store, so a failure later keeps what was measured."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


@contextmanager
def _keep_log(workdir: Path) -> Iterator[None]:
    """On a failure, the server's log goes where it outlives the work directory."""
    try:
        yield
    except BaseException:
        kept = Path(tempfile.gettempdir()) / f"hone-bench-uploads-{workdir.name}-server.log"
        shutil.copy(workdir / "server.log", kept)
        log(f"the server's log: {kept}")
        raise


if __name__ == "__main__":
    main()
