"""A 512 MiB fine-tune upload through the official SDK against ``hone serve`` in its own process.

Checks the upload path's promise (docs/architecture.md: "streams the body to the blob store, never whole
in memory"): the server's peak RSS grows by less than 100 MB while it receives a file of exactly
the default limit (536870912 bytes), the bytes come back identical (sha256) through a streamed
download, and one byte more is refused with 413 leaving no record and no stray blob behind.

Measured figures are printed (``pytest -s``): peak RSS growth, upload and download MB/s.
Speed is reported, never asserted; memory is asserted because it is a contract.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.harness.process import ServerProcess, proc_status, reset_peak

pytestmark = [pytest.mark.slow, pytest.mark.db_incidental]

MB = 1_000_000
LIMIT = 512 * 1024 * 1024  # the default HONE_MAX_UPLOAD_BYTES
MAX_RSS_GROWTH = 100 * MB


# --- the data: valid chat JSONL of an exact size, streamed to disk -------------------------------

_WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
    "november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu "
).split()


_TEXTS = [" ".join(_WORDS[(r + k) % len(_WORDS)] for k in range(300)) for r in range(len(_WORDS))]


def _line(i: int, pad: int = 0) -> bytes:
    """One chat example (~3 KB, different for every i); ``pad`` extra characters of content."""
    words = _TEXTS[(i * 7) % len(_TEXTS)]
    record = {
        "messages": [
            {"role": "system", "content": "You answer with the example number."},
            {"role": "user", "content": f"Example {i}: {words}" + "z" * pad},
            {"role": "assistant", "content": f"This is example {i}; {words[:1200]}"},
        ]
    }
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def jsonl_lines(size: int) -> Iterator[bytes]:
    """Lines of valid chat JSONL adding up to exactly ``size`` bytes."""
    remaining, i = size, 0
    while True:
        line = _line(i)
        if remaining - len(line) < 2 * len(line):
            break
        yield line
        remaining -= len(line)
        i += 1
    pad = remaining - len(_line(i))  # the last line is padded to land exactly on ``size``
    assert pad >= 0
    last = _line(i, pad)
    assert len(last) == remaining
    yield last


def write_jsonl(path: Path, size: int) -> str:
    """Stream ``jsonl_lines(size)`` to ``path`` in ~4 MiB writes; return the sha256."""
    digest, buf, written = hashlib.sha256(), bytearray(), 0
    with path.open("wb") as fh:
        for line in jsonl_lines(size):
            buf += line
            if len(buf) >= 4 * 1024 * 1024:
                digest.update(buf)
                fh.write(buf)
                written += len(buf)
                buf.clear()
        digest.update(buf)
        fh.write(buf)
        written += len(buf)
    assert written == size == path.stat().st_size
    return digest.hexdigest()


def test_jsonl_lines_are_exact_and_valid() -> None:
    for size in (20_000, 20_001, 123_457):
        data = b"".join(jsonl_lines(size))
        assert len(data) == size
        for raw in data.splitlines():
            assert json.loads(raw)["messages"][-1]["role"] == "assistant"


# --- the server process -------------------------------------------------------------------------


# --- the test -----------------------------------------------------------------------------------


def _blob_files(data_dir: Path) -> list[str]:
    root = data_dir / "blobs"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_512mib_upload_streams_and_round_trips(hone_process: ServerProcess, tmp_path: Path) -> None:
    srv = hone_process
    big = tmp_path / "big.jsonl"
    t0 = time.perf_counter()
    source_sha = write_jsonl(big, LIMIT)
    gen_s = time.perf_counter() - t0

    with srv.client() as client:
        # -- upload: stream the file from disk, watch the server's peak RSS
        exact_peak = reset_peak(srv.pid)
        before = proc_status(srv.pid)
        t0 = time.perf_counter()
        with big.open("rb") as fh:
            created = client.files.create(file=fh, purpose="fine-tune")
        up_s = time.perf_counter() - t0
        after_up = proc_status(srv.pid)
        # Growth of the peak over the RSS just before the upload: with the peak reset this is
        # exact; without it, it can only overstate (VmHWM >= VmRSS at all times).
        up_growth = after_up["VmHWM"] - before["VmRSS"]

        assert created.bytes == LIMIT
        assert created.purpose == "fine-tune"
        assert created.filename == "big.jsonl"
        assert created.status == "processed"
        assert client.files.retrieve(created.id).bytes == LIMIT

        # -- download: streamed to disk, hashed on the way
        out = tmp_path / "download.jsonl"
        reset_peak(srv.pid)
        before_down = proc_status(srv.pid)
        digest, got = hashlib.sha256(), 0
        t0 = time.perf_counter()
        with client.files.with_streaming_response.content(created.id) as resp, out.open("wb") as fh:
            assert int(resp.headers["content-length"]) == LIMIT
            for chunk in resp.iter_bytes(1024 * 1024):
                digest.update(chunk)
                fh.write(chunk)
                got += len(chunk)
        down_s = time.perf_counter() - t0
        after_down = proc_status(srv.pid)
        down_growth = after_down["VmHWM"] - before_down["VmRSS"]
        out.unlink()

        # -- one byte over the limit: 413, no record, no blob left behind
        over = tmp_path / "over.jsonl"
        big.unlink()
        write_jsonl(over, LIMIT + 1)
        blobs_before = _blob_files(srv.data_dir)
        t0 = time.perf_counter()
        with over.open("rb") as fh, pytest.raises(openai.APIStatusError) as info:
            client.files.create(file=fh, purpose="fine-tune")
        over_s = time.perf_counter() - t0
        after_over = proc_status(srv.pid)
        over.unlink()
        err = info.value
        assert err.status_code == 413, err
        body = err.response.json()["error"]
        assert body["type"] == "invalid_request_error"
        assert body["code"] == "file_too_large"
        assert body["param"] == "file"
        assert str(LIMIT) in body["message"]
        listed = [f.id for f in client.files.list()]
        assert listed == [created.id], listed
        assert _blob_files(srv.data_dir) == blobs_before == [f"files/{created.id}"]

        # the stored file is intact and still served after the refused upload
        assert client.files.retrieve(created.id).bytes == LIMIT
        assert client.files.delete(created.id).deleted is True
        assert _blob_files(srv.data_dir) == []

    print(f"\n[large upload] {LIMIT} bytes ({LIMIT / MB:.0f} MB), generated in {gen_s:.1f} s")
    print(
        f"[large upload] server RSS before upload {before['VmRSS'] / MB:.1f} MB "
        f"(VmHWM {before['VmHWM'] / MB:.1f} MB, peak reset: {exact_peak}); after upload VmRSS "
        f"{after_up['VmRSS'] / MB:.1f} MB, VmHWM {after_up['VmHWM'] / MB:.1f} MB"
    )
    print(
        f"[large upload] peak RSS growth: upload {up_growth / MB:.1f} MB, "
        f"download {down_growth / MB:.1f} MB (limit {MAX_RSS_GROWTH / MB:.0f} MB)"
    )
    print(
        f"[large upload] upload {LIMIT / MB / up_s:.1f} MB/s ({up_s:.1f} s), "
        f"download {LIMIT / MB / down_s:.1f} MB/s ({down_s:.1f} s), "
        f"refused over-limit upload in {over_s:.1f} s; VmRSS after all {after_over['VmRSS'] / MB:.1f} MB"
    )

    assert got == LIMIT
    assert digest.hexdigest() == source_sha
    assert up_growth < MAX_RSS_GROWTH, f"server peak RSS grew {up_growth / MB:.1f} MB during the upload"
    assert down_growth < MAX_RSS_GROWTH, f"server peak RSS grew {down_growth / MB:.1f} MB during the download"
    shutil.rmtree(srv.data_dir / "blobs", ignore_errors=True)
