"""A trainer Job that Kueue has not admitted (suspended) shows as ``queued`` through the SDK,
turns ``running`` once admitted, and can be cancelled while it waits (finding 7 of issue 11).

The real control plane (HTTP server, dispatcher, reconciler) and the real ``KubernetesLauncher``
run over the in-memory FAKE Kubernetes API of ``tests/fakes/kubernetes.py`` with its Kueue
emulation (a queue-labelled Job is created suspended until ``admit_job``): no cluster can run here."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import openai

from service.catalog.catalog import Catalog
from service.launcher.config import KubernetesLauncherConfig
from service.launcher.kubernetes import KubernetesLauncher, job_name
from tests.contract.helpers import chat_line, upload, wait_status
from tests.fakes.kubernetes import FakeKubernetes
from tests.harness.server import start_server


def _until(what: str, check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while not check():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_a_job_waiting_for_kueue_is_queued_then_running(tmp_path: Path, catalog: Catalog) -> None:
    cluster = FakeKubernetes(kueue=True)
    cfg = KubernetesLauncherConfig(kueue_queue="hone-gpu")
    launcher = KubernetesLauncher(cfg, batch=cluster.batch, core=cluster.core, start_watch=False)
    server = start_server(tmp_path, catalog, launcher=launcher, loop_interval_s=0.05)
    try:
        client = openai.OpenAI(base_url=server.v1, api_key=server.new_key("acme"), max_retries=0)
        training_file = upload(client, [chat_line(i) for i in range(12)])
        job = client.fine_tuning.jobs.create(model="hone-tiny", training_file=training_file)
        name = job_name(job.id, 1)
        _until("the attempt's Job", lambda: ("Job", "hone", name) in cluster.objects)

        def waiting() -> bool:
            return any("waiting for the cluster" in e.message for e in client.fine_tuning.jobs.list_events(job.id))

        _until("the reconciler to see the suspended Job", waiting)
        assert client.fine_tuning.jobs.retrieve(job.id).status == "queued"
        time.sleep(0.3)  # several reconciler ticks later: still queued, and still one Job
        assert client.fine_tuning.jobs.retrieve(job.id).status == "queued" and cluster.jobs_named("hone", name) == 1
        assert client.fine_tuning.jobs.list().data[0].status == "queued"

        cluster.admit_job("hone", name)
        assert wait_status(client, job.id, {"running"}, timeout=30).status == "running"

        # A second job waits; cancelled while suspended, its Job is deleted.
        other = client.fine_tuning.jobs.create(model="hone-tiny", training_file=training_file)
        server.settings.max_running_jobs = 2
        other_name = job_name(other.id, 1)
        _until("the second Job", lambda: ("Job", "hone", other_name) in cluster.objects)
        _until(
            "the second job to show as waiting",
            lambda: any("waiting for the cluster" in e.message for e in client.fine_tuning.jobs.list_events(other.id)),
        )
        assert client.fine_tuning.jobs.retrieve(other.id).status == "queued"
        assert client.fine_tuning.jobs.cancel(other.id).status == "cancelled"
        _until("the cancelled Job's deletion", lambda: ("Job", "hone", other_name) not in cluster.objects)
        assert cluster.jobs_named("hone", other_name) == 1  # never launched twice
    finally:
        server.stop()
