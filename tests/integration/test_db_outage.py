"""PostgreSQL unreachable for 10 s under load (a network partition made by a TCP proxy between
hone and the database): requests during the outage get 503 ``database_unavailable`` with
``retry-after`` (never a 500), service resumes when the database is reachable again, and every
file the API acknowledged with a 200 is there afterwards: no acknowledged row is lost."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from service.catalog.catalog import Catalog
from tests.harness.jobs import jsonl
from tests.harness.server import fresh_database_url, start_server
from tests.harness.tcpproxy import TcpProxy

OUTAGE_S = 10


def test_postgresql_unreachable_for_10_s_under_load(tmp_path: Path, catalog: Catalog) -> None:
    db_url = fresh_database_url(tmp_path)
    if db_url is None:
        pytest.skip("needs PostgreSQL (HONE_TEST_POSTGRES)")
    real = urlparse(db_url.replace("postgresql+psycopg", "postgresql"))
    proxy = TcpProxy(real.hostname or "127.0.0.1", real.port or 5432)
    via_proxy = db_url.replace(f"{real.hostname}:{real.port}", f"127.0.0.1:{proxy.port}") + "?connect_timeout=3"
    srv = start_server(tmp_path, catalog, database_url=via_proxy)
    key = srv.new_key("acme")
    statuses: Counter[str] = Counter()
    acknowledged: list[str] = []
    stop = threading.Event()

    def load(n: int) -> None:
        with httpx.Client(base_url=srv.v1, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
            i = 0
            while not stop.is_set():
                i += 1
                if i % 2:
                    r = http.post(
                        "/files",
                        files={"file": (f"f{n}-{i}.jsonl", jsonl([{"a": i}])), "purpose": (None, b"fine-tune")},
                    )
                    if r.status_code == 200:
                        acknowledged.append(r.json()["id"])
                else:
                    r = http.get("/fine_tuning/jobs")
                statuses[str(r.status_code)] += 1
                if r.status_code == 503:
                    assert r.headers["retry-after"] == "5", r.text
                    assert r.json()["error"]["code"] == "database_unavailable", r.text
                time.sleep(0.02)

    clients = [threading.Thread(target=load, args=(n,)) for n in range(4)]
    try:
        for t in clients:
            t.start()
        time.sleep(2)
        proxy.cut()
        time.sleep(OUTAGE_S)
        during = statuses["503"]
        proxy.heal()
        time.sleep(5)
        stop.set()
        for t in clients:
            t.join(timeout=60)
        assert set(statuses) <= {"200", "503"}, dict(statuses)
        assert during > 0 and statuses["200"] > 0
        with httpx.Client(base_url=srv.v1, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
            stored = {f["id"] for f in http.get("/files", params={"limit": 10000}).json()["data"]}
        assert set(acknowledged) <= stored  # 0 acknowledged rows lost
        print(
            f"\n[faults] PostgreSQL cut for {OUTAGE_S} s under load: {dict(statuses)}, "
            f"{len(acknowledged)} files acknowledged, all stored"
        )
    finally:
        stop.set()
        srv.stop()
        proxy.close()
