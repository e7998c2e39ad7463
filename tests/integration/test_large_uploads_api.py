"""A 1 GiB Upload (16 parts of 64 MiB, 4 sent at a time, the official SDK) against ``hone serve``
in its own process: the server's peak RSS grows by less than 100 MB through the parts and the
completion (parts stream to the store; completion joins them one chunk at a time), the md5 the
client computed matches what the server assembled, the File downloads byte-identical (sha256),
and no part blob is left. ``bench/uploads/run.py`` measures 8 GiB; memory is asserted here
because it is a contract, speed is only printed."""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.harness.process import ServerProcess, proc_status, reset_peak
from tests.integration.test_large_upload import MAX_RSS_GROWTH, MB

pytestmark = [pytest.mark.slow, pytest.mark.db_incidental]

PART = 64 * 1024 * 1024
PARTS = 16


def _part(i: int) -> bytes:
    """Part ``i``: complete JSONL lines (~1 KB each) adding up to exactly 64 MiB."""
    head = json.dumps({"messages": [{"role": "user", "content": f"part {i}"}]}).encode() + b"\n"
    line = (
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": f"Question of part {i}: " + "words " * 140},
                    {"role": "assistant", "content": "An answer."},
                ]
            }
        ).encode()
        + b"\n"
    )
    n = (PART - len(head) - 64) // len(line)
    fill = PART - len(head) - n * len(line)
    pad = json.dumps({"pad": "x" * (fill - len(b'{"pad": ""}') - 1)}).encode() + b"\n"
    data = head + line * n + pad
    assert len(data) == PART
    return data


def test_a_one_gib_upload_keeps_the_server_flat(hone_process: ServerProcess, tmp_path: Path) -> None:
    srv = hone_process
    md5, sha = hashlib.md5(), hashlib.sha256()
    for i in range(PARTS):
        part = _part(i)
        md5.update(part)
        sha.update(part)
    with srv.client() as client:
        upload = client.uploads.create(
            bytes=PART * PARTS, filename="big.jsonl", mime_type="text/jsonl", purpose="fine-tune"
        )
        exact_peak = reset_peak(srv.pid)
        before = proc_status(srv.pid)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=4) as pool:
            ids = list(pool.map(lambda i: client.uploads.parts.create(upload.id, data=_part(i)).id, range(PARTS)))
        parts_s = time.perf_counter() - t0
        after_parts = proc_status(srv.pid)
        t0 = time.perf_counter()
        done = client.uploads.complete(upload.id, part_ids=ids, md5=md5.hexdigest())
        complete_s = time.perf_counter() - t0
        after = proc_status(srv.pid)
        growth = after["VmHWM"] - before["VmRSS"]
        assert done.status == "completed" and done.file is not None and done.file.bytes == PART * PARTS

        digest = hashlib.sha256()
        with client.files.with_streaming_response.content(done.file.id) as resp:
            for chunk in resp.iter_bytes(1024 * 1024):
                digest.update(chunk)
        assert digest.hexdigest() == sha.hexdigest()
    parts_dir = srv.data_dir / "blobs" / "uploads"
    assert not parts_dir.exists() or not [p for p in parts_dir.rglob("*") if p.is_file()]  # the parts are gone
    print(
        f"\n[uploads] {PARTS} x 64 MiB: parts {PARTS * 64 / parts_s:.0f} MiB/s, complete "
        f"{PARTS * 64 / complete_s:.0f} MiB/s; RSS before {before['VmRSS'] / MB:.0f} MB, after parts "
        f"VmHWM {after_parts['VmHWM'] / MB:.0f} MB, after complete VmHWM {after['VmHWM'] / MB:.0f} MB "
        f"(peak reset: {exact_peak}); growth {growth / MB:.1f} MB (limit {MAX_RSS_GROWTH / MB:.0f} MB)"
    )
    assert growth < MAX_RSS_GROWTH, f"server peak RSS grew {growth / MB:.1f} MB during the upload"
