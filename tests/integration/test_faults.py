"""Faults injected into a real deployment of the embedded default (``hone serve`` in its own
process, local trainer subprocesses): the job still ends correctly and nothing is lost or
recorded twice. Figures are printed (``pytest -s``) and collected in docs/reliability.md."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import openai
import pytest
import torch
from safetensors.torch import load_file

from service.launcher.local import LocalLauncher
from tests.harness.jobs import upload, wait_status
from tests.harness.process import HoneServe
from tests.harness.server import fresh_database_url, start_server
from tests.harness.waiting import wait_until
from tests.integration import tuning

KILLS = 20


def test_the_api_sigkilled_20_times_during_a_training_job(tmp_path: Path, tiny_model_dir: Path) -> None:
    """The trainer keeps training while its control plane is killed and restarted: its reports
    wait and retry (idempotent ids), each restarted API adopts the running attempt from its pid
    file, and the job finishes with every step's metrics recorded exactly once."""
    db_url = fresh_database_url(tmp_path)
    hone = HoneServe(tmp_path, tiny_model_dir, env={"HONE_DATABASE_URL": db_url} if db_url else None)
    server = hone.start()
    try:
        client = server.client()
        job = client.fine_tuning.jobs.create(
            model="hone-tiny",
            training_file=upload(client, tuning.memorisation_rows(copies=50)),  # 100 examples
            method={
                "type": "supervised",
                "supervised": {"hyperparameters": {"n_epochs": 20, "batch_size": 1, "checkpoint_interval": 250}},
            },  # 2,000 steps
        )
        wait_status(client, job.id, {"running"}, timeout=120)
        killed_while_running = 0
        for _ in range(KILLS):
            time.sleep(1.0)
            status = client.fine_tuning.jobs.retrieve(job.id).status
            hone.kill(signal.SIGKILL)
            killed_while_running += status == "running"
            server = hone.start()
            client = server.client()
        job = wait_status(client, job.id, timeout=600)
        assert job.status == "succeeded", job.error
        print(f"\n[faults] API SIGKILLed {KILLS} times, {killed_while_running} of them while the job was running")
        assert killed_while_running == KILLS
        events = list(client.fine_tuning.jobs.list_events(job.id, limit=1000))  # the SDK pages through all
        steps = Counter(e.data["step"] for e in events if e.type == "metrics")
        total = max(steps)
        assert total == 2000 and set(steps) == set(range(1, total + 1)) and set(steps.values()) == {1}
        assert len({e.id for e in events}) == len(events)
        messages = [e.message for e in events]
        assert not [m for m in messages if m.startswith("Training attempt")]  # never lost, never relaunched
        ckpts = [c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job.id, limit=100)]
        assert ckpts == sorted(set(ckpts), reverse=True) and len(ckpts) == 3  # newest three, no duplicates
        assert len(job.result_files) == 1
        runs = sorted(p.name for p in (server.data_dir / "runs" / job.id).iterdir())
        assert runs == ["attempt-1"]
    finally:
        hone.kill(signal.SIGINT)
        _stop_trainers(hone.data_dir / "runs")


def _stop_trainers(runs: Path) -> None:
    """Trainers outlive a killed API by design; a failed test must not leave them running."""
    launcher = LocalLauncher(runs)
    for attempt_dir in runs.glob("*/attempt-*"):
        pid = launcher.pid(attempt_dir.parent.name, int(attempt_dir.name.split("-")[1]))
        if pid is not None:
            os.killpg(pid, signal.SIGKILL)


@pytest.mark.db_incidental  # the trainer's numbers are its subject, not the job rows
def test_the_trainer_sigkilled_10_times_ends_with_the_uninterrupted_adapter(tmp_path: Path, catalog) -> None:  # type: ignore[no-untyped-def]
    """Kill the trainer each time it has written a new checkpoint, ten times: every attempt
    resumes from the newest complete checkpoint (model, optimizer, scheduler, RNG and data
    position), and the final adapter equals that of the same job run without a fault."""
    launcher = LocalLauncher(tmp_path / "runs")
    srv = start_server(tmp_path / "data", catalog, launcher=launcher, max_attempts=12, max_running_jobs=2)
    try:
        client = openai.OpenAI(base_url=srv.v1, api_key=srv.new_key("acme"), max_retries=0)
        rows = upload(client, tuning.memorisation_rows())  # 10 examples
        hp = {"n_epochs": 30, "batch_size": 1, "checkpoint_interval": 25}  # 300 steps, 11 checkpoints
        method = {"type": "supervised", "supervised": {"hyperparameters": hp}}
        plain, killed = (
            client.fine_tuning.jobs.create(model="hone-tiny", training_file=rows, seed=7, method=method).id
            for _ in range(2)
        )
        last_step = 0

        def kill_after_a_new_checkpoint() -> bool:
            nonlocal last_step
            steps = [c.step_number for c in client.fine_tuning.jobs.checkpoints.list(killed, limit=100)]
            if not steps or max(steps) <= last_step or client.fine_tuning.jobs.retrieve(killed).status != "running":
                return False
            current = max(int(d.name.split("-")[1]) for d in (tmp_path / "runs" / killed).glob("attempt-*"))
            pid = launcher.pid(killed, current)
            if pid is None:
                return False
            os.killpg(pid, signal.SIGKILL)
            last_step = max(steps)
            return True

        for kill in range(10):
            wait_until(kill_after_a_new_checkpoint, f"kill {kill + 1}: a new checkpoint to kill after", 600, 0.05)
        jobs = {j: wait_status(client, j, timeout=600) for j in (plain, killed)}
        assert all(j.status == "succeeded" for j in jobs.values()), {k: v.error for k, v in jobs.items()}
        messages = [e.message for e in client.fine_tuning.jobs.list_events(killed, limit=1000)]
        resumed_at = [
            int(m.split("step ")[1].split()[0]) for m in messages if m.startswith("Resuming from the checkpoint")
        ]
        assert len(resumed_at) == 10 and sorted(resumed_at) == sorted(set(resumed_at))  # newer checkpoint each time
        steps = Counter(m["step"] for m in tuning.metrics(client, killed))
        assert set(steps) == set(range(1, 301))
        blobs = srv.settings.data_dir / "blobs"
        a = load_file(str(tuning.adapter_dir(blobs, plain) / "adapter_model.safetensors"))
        b = load_file(str(tuning.adapter_dir(blobs, killed) / "adapter_model.safetensors"))
        assert a.keys() == b.keys()
        for name in a:
            torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-5)
        print(
            f"\n[faults] trainer SIGKILLed 10 times; resumed at steps {sorted(resumed_at)}; adapter equal to the "
            "uninterrupted run (rtol 1e-4, atol 1e-5)"
        )
    finally:
        srv.stop()


def test_a_sigtermed_trainer_checkpoints_and_resumes_without_a_failure(tmp_path: Path, catalog) -> None:  # type: ignore[no-untyped-def]
    """SIGTERM is how a node drain, a pod eviction or hone up's Ctrl-C stops a trainer: it
    checkpoints at the step boundary and exits as preempted, and the job resumes from that
    checkpoint without counting a failure (HONE_MAX_ATTEMPTS=1 here: one failure would fail it).
    Before, it exited 0, and a Kubernetes Job reported success without a result: a failed job."""
    launcher = LocalLauncher(tmp_path / "runs")
    srv = start_server(tmp_path / "data", catalog, launcher=launcher, max_attempts=1)
    try:
        client = openai.OpenAI(base_url=srv.v1, api_key=srv.new_key("acme"), max_retries=0)
        method = {
            "type": "supervised",
            "supervised": {"hyperparameters": {"n_epochs": 50, "batch_size": 1, "checkpoint_interval": 1000}},
        }
        job = client.fine_tuning.jobs.create(
            model="hone-tiny", training_file=upload(client, tuning.memorisation_rows()), method=method
        )
        wait_until(lambda: [m for m in tuning.metrics(client, job.id) if m["step"] >= 20], "step 20")
        pid = launcher.pid(job.id, 1)
        assert pid is not None
        os.killpg(pid, signal.SIGTERM)
        job = wait_status(client, job.id, timeout=300)
        assert job.status == "succeeded", job.error
        messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=1000)]
        assert any("stopped by its host after a checkpoint" in m for m in messages), messages[:20]
        assert any(m.startswith("Resuming from the checkpoint at step") and "(attempt 2)" in m for m in messages)
        steps = Counter(m["step"] for m in tuning.metrics(client, job.id))
        assert set(steps) == set(range(1, 501)) and set(steps.values()) == {1}
    finally:
        srv.stop()
