"""Real training on CPU with the tiny model, through the SDK, the local launcher and
``python -m trainer`` subprocesses: learning, resume after SIGKILL, reproducibility,
pause/resume/cancel, a control-plane restart mid-job, DPO, and two-process torchrun."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import torch
from safetensors.torch import load_file

from service.launcher.config import LocalLauncherConfig
from service.launcher.local import LocalLauncher
from tests.harness.jobs import upload, wait_status
from tests.harness.ports import free_port
from tests.harness.server import RunningServer, fresh_database_url, start_server
from tests.harness.waiting import wait_until
from tests.integration import tuning

pytestmark = pytest.mark.slow
SFT = {"n_epochs": 15, "batch_size": 2, "learning_rate_multiplier": 2.5}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, catalog) -> Iterator[RunningServer]:  # type: ignore[no-untyped-def]
    data = tmp_path_factory.mktemp("train")
    s = start_server(data, catalog, launcher=LocalLauncher(data / "runs"), max_running_jobs=3, max_attempts=3)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(srv: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url + "/v1", api_key=srv.new_key("acme"), max_retries=0)


@pytest.fixture(scope="module")
def train_file(client: openai.OpenAI) -> str:
    return upload(client, tuning.memorisation_rows())


def _job(
    client: openai.OpenAI,
    train_file: str,
    seed: int = 11,
    validation_file: str | None = None,  # type: ignore[no-untyped-def]
    model: str = "hone-tiny",
    **hp,
) -> str:
    return client.fine_tuning.jobs.create(
        model=model,
        training_file=train_file,
        seed=seed,
        validation_file=validation_file,
        method={"type": "supervised", "supervised": {"hyperparameters": {**SFT, **hp}}},
    ).id


def _blobs(srv: RunningServer) -> Path:
    return srv.settings.data_dir / "blobs"


def _pid(srv: RunningServer, job_id: str, attempt: int) -> int:
    pid = srv.ctx.launcher.pid(job_id, attempt)  # the launcher's verified pid (pid file + start time)
    assert pid is not None, f"{job_id} attempt {attempt} has no live process"
    return int(pid)


@pytest.mark.db_incidental  # the trainer's numbers are its subject, not the job rows
def test_learns_the_answers(srv: RunningServer, client: openai.OpenAI, train_file: str, tiny_model_dir: Path) -> None:
    job = wait_status(client, _job(client, train_file, validation_file=train_file))
    assert job.status == "succeeded", job.error
    steps = tuning.metrics(client, job.id)
    evaluated = [m for m in steps if "valid_loss" in m]
    assert [m["step"] for m in evaluated] == [5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75]
    assert (
        evaluated[-1]["valid_loss"] < evaluated[0]["valid_loss"] and evaluated[-1]["valid_mean_token_accuracy"] == 1.0
    )
    assert [m["step"] for m in steps] == list(range(1, 76))
    assert steps[0]["train_loss"] > 5 and steps[-1]["train_loss"] < 0.3, (steps[0], steps[-1])
    assert steps[-1]["train_mean_token_accuracy"] == 1.0
    assert job.trained_tokens and job.trained_tokens > 0
    assert job.hyperparameters.n_epochs == 15
    ckpts = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [c.step_number for c in ckpts] == [70, 65, 60]  # an epoch is 5 steps; the newest 3 are kept
    assert ckpts[0].metrics.train_loss is not None
    csv = client.files.content(job.result_files[0]).text.splitlines()
    assert csv[0] == "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy" and len(csv) == 76
    assert csv[5].startswith("5,") and not csv[5].endswith(",,") and csv[4].endswith(",,")
    adapter = tuning.adapter_dir(_blobs(srv), job.id)
    assert sorted(p.name for p in adapter.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "manifest.json",
    ]

    tok, tuned = tuning.load(tiny_model_dir, adapter)
    _, base = tuning.load(tiny_model_dir, None)
    for question, expected in tuning.PAIRS:
        assert tuning.answer(tok, tuned, question) == expected
        assert tuning.answer(tok, base, question) != expected


@pytest.mark.db_incidental  # the trainer's numbers are its subject, not the job rows
def test_sigkill_resumes_and_matches_an_uninterrupted_run(
    srv: RunningServer, client: openai.OpenAI, train_file: str
) -> None:
    plain, again, killed = (_job(client, train_file, seed=5, n_epochs=12) for _ in range(3))
    # Kill the third job's trainer once it has a complete checkpoint.
    deadline = time.time() + 120
    while not client.fine_tuning.jobs.checkpoints.list(killed).data:
        assert time.time() < deadline
        time.sleep(0.05)
    os.killpg(_pid(srv, killed, 1), signal.SIGKILL)
    jobs = {j: wait_status(client, j) for j in (plain, again, killed)}
    assert all(j.status == "succeeded" for j in jobs.values()), {k: v.error for k, v in jobs.items()}

    messages = [e.message for e in client.fine_tuning.jobs.list_events(killed, limit=1000)]
    assert any(m.startswith("Training attempt 1 exited with code -9; restarting") for m in messages), messages[:10]
    assert any(m.startswith("Resuming from the checkpoint at step ") for m in messages)
    steps = tuning.metrics(client, killed)
    assert [m["step"] for m in steps] == list(range(1, 61))  # the curve continues: each step once
    losses = [m["train_loss"] for m in steps]
    assert losses[-1] < losses[0] / 10

    def weights(job_id: str) -> dict[str, torch.Tensor]:
        return load_file(str(tuning.adapter_dir(_blobs(srv), job_id) / "adapter_model.safetensors"))

    def digest(job_id: str) -> str:
        return hashlib.sha256(
            (tuning.adapter_dir(_blobs(srv), job_id) / "adapter_model.safetensors").read_bytes()
        ).hexdigest()

    assert digest(plain) == digest(again)  # same seed, data and hardware: the same bytes
    a, b = weights(plain), weights(killed)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-5)


def test_pause_resume_cancel(srv: RunningServer, client: openai.OpenAI, train_file: str) -> None:
    job_id = _job(client, train_file, n_epochs=50, checkpoint_interval=1000)
    wait_status(client, job_id, {"running"})
    while len(tuning.metrics(client, job_id)) < 3:
        time.sleep(0.05)
    assert client.fine_tuning.jobs.pause(job_id).status == "pausing"
    job = wait_status(client, job_id, {"paused"})
    (ckpt,) = client.fine_tuning.jobs.checkpoints.list(job_id).data  # written on the way out
    paused_at = ckpt.step_number
    assert client.fine_tuning.jobs.resume(job_id).status == "queued"
    wait_status(client, job_id, {"running"})
    while max(m["step"] for m in tuning.metrics(client, job_id)) <= paused_at:
        time.sleep(0.05)
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job_id, limit=1000)]
    assert f"Resuming from the checkpoint at step {paused_at} (attempt 2)" in messages
    pid = _pid(srv, job_id, 2)
    assert client.fine_tuning.jobs.cancel(job_id).status == "cancelled"
    deadline = time.time() + 15
    while _alive(pid):
        assert time.time() < deadline, "the cancelled trainer is still running"
        time.sleep(0.1)
    assert job.status == "paused" and client.fine_tuning.jobs.retrieve(job_id).status == "cancelled"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by the launcher) is not running.
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split(")")[-1].split()[0] != "Z"


PREFERENCES = [
    ("Is the sky green?", "No, the sky is blue.", "Yes, it is green."),
    ("Is fire cold?", "No, fire is hot.", "Yes, fire is cold."),
]


def _preference_rows() -> list[dict]:  # type: ignore[type-arg]
    return [
        {
            "input": {"messages": [{"role": "user", "content": q}]},
            "preferred_output": [{"role": "assistant", "content": good}],
            "non_preferred_output": [{"role": "assistant", "content": bad}],
        }
        for q, good, bad in PREFERENCES
    ] * 5


@pytest.mark.db_incidental  # the trainer's numbers are its subject, not the job rows
def test_dpo_raises_the_preference_margin(srv: RunningServer, client: openai.OpenAI, tiny_model_dir: Path) -> None:
    prompts = PREFERENCES
    rows = _preference_rows()
    file_id = upload(client, rows)
    job = client.fine_tuning.jobs.create(
        model="hone-tiny",
        training_file=file_id,
        seed=3,
        method={
            "type": "dpo",
            "dpo": {"hyperparameters": {"n_epochs": 6, "batch_size": 2, "beta": 0.1, "learning_rate_multiplier": 4}},
        },
    )
    job = wait_status(client, job.id)
    assert job.status == "succeeded", job.error
    steps = tuning.metrics(client, job.id)
    assert steps[-1]["train_loss"] < steps[0]["train_loss"]
    tok, tuned = tuning.load(tiny_model_dir, tuning.adapter_dir(_blobs(srv), job.id))
    _, base = tuning.load(tiny_model_dir, None)
    for q, good, bad in prompts:
        msgs = [{"role": "user", "content": q}]
        before = tuning.sequence_logp(tok, base, msgs, good) - tuning.sequence_logp(tok, base, msgs, bad)
        after = tuning.sequence_logp(tok, tuned, msgs, good) - tuning.sequence_logp(tok, tuned, msgs, bad)
        assert after > before + 1.0, (q, before, after)


def test_control_plane_restart_loses_no_events(tmp_path: Path, catalog, train_file) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    db_url = fresh_database_url(tmp_path)  # PostgreSQL pass: one database for both lives
    s = start_server(tmp_path, catalog, launcher=LocalLauncher(tmp_path / "runs"), port=port, database_url=db_url)
    key = s.new_key("acme")
    client = openai.OpenAI(base_url=s.base_url + "/v1", api_key=key, max_retries=0)
    job_id = _job(client, upload(client, tuning.memorisation_rows()), n_epochs=40)
    wait_status(client, job_id, {"running"})
    while len(tuning.metrics(client, job_id)) < 2:
        time.sleep(0.05)
    s.stop()  # the trainer keeps going; its reports fail and are retried
    time.sleep(3)
    s = start_server(tmp_path, catalog, launcher=LocalLauncher(tmp_path / "runs"), port=port, database_url=db_url)
    try:
        client = openai.OpenAI(base_url=s.base_url + "/v1", api_key=key, max_retries=0)
        job = wait_status(client, job_id)
        assert job.status == "succeeded", job.error
        assert [m["step"] for m in tuning.metrics(client, job_id)] == list(range(1, 201))
        messages = [e.message for e in client.fine_tuning.jobs.list_events(job_id, limit=1000)]
        log = (tmp_path / "runs" / job_id / "attempt-1" / "trainer.log").read_text()
        assert not any("attempt 1" in m and "restarting" in m for m in messages), (messages[:8], log[-4000:])  # adopted
        assert messages.count("Fine-tuning job started") == 1
    finally:
        s.stop()


@pytest.mark.db_incidental  # the trainer's numbers are its subject, not the job rows
@pytest.mark.parametrize("method", ["supervised", "dpo", "full"])
def test_two_process_torchrun_on_cpu(tmp_path: Path, catalog, method: str) -> None:  # type: ignore[no-untyped-def]
    """Two ranks split each batch; their gradients are averaged, so both end with the same weights
    (each rank logs a checksum of its trainable weights). LoRA under DDP (SFT) or averaged by hand
    (DPO); full fine-tuning sharded with FSDP2, checkpointed mid-run and saved whole."""
    s = start_server(
        tmp_path, catalog, launcher=LocalLauncher(tmp_path / "runs", LocalLauncherConfig(nproc_per_node=2))
    )
    try:
        client = openai.OpenAI(base_url=s.base_url + "/v1", api_key=s.new_key("acme"), max_retries=0)
        if method == "supervised":
            job_id = _job(client, upload(client, tuning.memorisation_rows()), n_epochs=6)
        elif method == "full":
            rows = tuning.memorisation_rows()
            job_id = _job(client, upload(client, rows), n_epochs=2, training_type="full", checkpoint_interval=5)
        else:
            hp = {"n_epochs": 3, "batch_size": 2, "beta": 0.1, "learning_rate_multiplier": 4}
            job_id = client.fine_tuning.jobs.create(
                model="hone-tiny",
                training_file=upload(client, _preference_rows()),
                seed=3,
                method={"type": "dpo", "dpo": {"hyperparameters": hp}},
            ).id
        job = wait_status(client, job_id)
        log = (tmp_path / "runs" / job_id / "attempt-1" / "trainer.log").read_text()
        assert job.status == "succeeded", (job.error, log[-3000:])
        steps = tuning.metrics(client, job_id)
        assert [m["step"] for m in steps] == list(range(1, len(steps) + 1)) and len(steps) in (30, 15, 10)
        assert steps[-1]["train_loss"] < steps[0]["train_loss"]
        assert "distributed training: world_size=2 rank=0 backend=gloo" in log
        assert "distributed training: world_size=2 rank=1 backend=gloo" in log
        checksums = re.findall(r"final trainable weights checksum (\S+)", log)
        assert len(checksums) == 2 and checksums[0] == checksums[1], checksums
        if method == "full":
            assert [c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job_id)] == [5]
            final = load_file(str(tuning.adapter_dir(tmp_path / "blobs", job_id) / "model.safetensors"))
            base = load_file(str(Path(catalog.get("hone-tiny").source) / "model.safetensors"))
            assert final.keys() == base.keys() and any(not torch.equal(final[k], base[k]) for k in base)
    finally:
        s.stop()


@pytest.mark.db_incidental  # the trainer's numbers are its subject, not the job rows
def test_sharded_full_fine_tuning_resumes_and_matches_an_uninterrupted_run(tmp_path: Path, catalog) -> None:  # type: ignore[no-untyped-def]
    """FSDP2 across two ranks: a checkpoint gathered whole (weights and AdamW state keyed by
    parameter name), the trainer killed, and the resumed run resharded from it ends with the
    weights of a run that was never interrupted."""
    launcher = LocalLauncher(tmp_path / "runs", LocalLauncherConfig(nproc_per_node=2))
    s = start_server(tmp_path, catalog, launcher=launcher, max_running_jobs=2)
    try:
        client = openai.OpenAI(base_url=s.base_url + "/v1", api_key=s.new_key("acme"), max_retries=0)
        train = upload(client, tuning.memorisation_rows())
        plain, killed = (
            _job(client, train, seed=5, n_epochs=3, training_type="full", checkpoint_interval=4) for _ in range(2)
        )
        wait_until(lambda: client.fine_tuning.jobs.checkpoints.list(killed).data, "a checkpoint", timeout_s=180)
        os.killpg(_pid(s, killed, 1), signal.SIGKILL)
        jobs = {j: wait_status(client, j) for j in (plain, killed)}
        assert all(j.status == "succeeded" for j in jobs.values()), {k: v.error for k, v in jobs.items()}
        messages = [e.message for e in client.fine_tuning.jobs.list_events(killed, limit=1000)]
        assert any(m.startswith("Resuming from the checkpoint at step ") for m in messages), messages[:10]
        assert [m["step"] for m in tuning.metrics(client, killed)] == list(range(1, 16))
        a, b = (
            load_file(str(tuning.adapter_dir(tmp_path / "blobs", j) / "model.safetensors")) for j in (plain, killed)
        )
        assert a.keys() == b.keys()
        for name in a:
            torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-5)
    finally:
        s.stop()


@pytest.mark.db_incidental  # the trainer's numbers are its subject, not the job rows
@pytest.mark.parametrize("training_type", ["lora", "full"])
def test_fsdp2_sharded_steps_equal_one_process(tmp_path: Path, tiny_model_dir: Path, training_type: str) -> None:
    """The same steps on the same batch, sharded with FSDP2 over two ranks (LoRA: the layout the
    plan picks for a base too large for one GPU) and in one process: the saved weights agree."""
    import subprocess
    import sys

    from safetensors.torch import load_file

    def run(nproc: int, layout: str) -> dict[str, torch.Tensor]:
        out = tmp_path / f"{layout}-{nproc}"
        probe = ["-m", "tests.integration.fsdp_probe", str(tiny_model_dir), str(out), training_type, layout]
        launch = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"] if nproc > 1 else []
        done = subprocess.run([sys.executable, *launch, *probe], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"sharded={nproc > 1}" in done.stdout
        (weights,) = out.glob("*model.safetensors")
        return load_file(str(weights))

    sharded, whole = run(2, "sharded"), run(1, "whole")
    assert sharded.keys() == whole.keys() and len(whole) > 0
    # AdamW divides by the root of tiny second moments, so float32 sums reduced in another order
    # (two ranks' all-reduce) move a rare element by ~1e-5 (measured: 1 of 744,704 at 1.5e-5 on
    # this CPU); each step moves a weight by ~lr = 1e-3, so a wrong shard or a lost update
    # shows far above this tolerance.
    for name in whole:
        torch.testing.assert_close(sharded[name], whole[name], rtol=1e-3, atol=5e-5)


def test_a_crashing_trainer_is_retried_then_fails_with_its_log(tmp_path: Path, tiny_model_dir: Path) -> None:
    import shutil

    from service.catalog.catalog import BaseModelEntry, Catalog

    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").unlink()  # tokenizer and config stay: validation passes, loading fails
    catalog = Catalog([BaseModelEntry(name="broken", source=str(broken))])
    s = start_server(tmp_path / "data", catalog, launcher=LocalLauncher(tmp_path / "runs"), max_attempts=2)
    try:
        client = openai.OpenAI(base_url=s.base_url + "/v1", api_key=s.new_key("acme"), max_retries=0)
        job = wait_status(client, _job(client, upload(client, tuning.memorisation_rows()), model="broken"))
        assert job.status == "failed" and job.error.code == "training_failed"
        assert "after 2 failed attempts" in job.error.message and "exited with code 1" in job.error.message
        last = job.error.message.split("Last error: ")[1]
        assert "Error" in last and "\n" not in job.error.message  # one line; the traceback stays in the log
        assert "Traceback" in (tmp_path / "runs" / job.id / "attempt-2" / "trainer.log").read_text()
    finally:
        s.stop()


def test_a_deterministic_error_is_not_retried_and_is_one_line(tmp_path: Path, tiny_model_dir: Path) -> None:
    """A base model whose config names an unknown architecture: loading raises ValueError, which
    another attempt would raise again. One attempt, the job fails at once, one line of error."""
    import json
    import shutil

    from service.catalog.catalog import BaseModelEntry, Catalog

    broken = tmp_path / "unknown-arch"
    shutil.copytree(tiny_model_dir, broken)
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "model_type": "no-such-architecture"}))
    catalog = Catalog([BaseModelEntry(name="unknown-arch", source=str(broken))])
    s = start_server(tmp_path / "data", catalog, launcher=LocalLauncher(tmp_path / "runs"), max_attempts=3)
    try:
        client = openai.OpenAI(base_url=s.base_url + "/v1", api_key=s.new_key("acme"), max_retries=0)
        job = wait_status(client, _job(client, upload(client, tuning.memorisation_rows()), model="unknown-arch"))
        assert job.status == "failed" and job.error.code == "training_failed", job.error
        assert (
            job.error.message.startswith("Training failed: ValueError: ")
            and "no-such-architecture" in job.error.message
        )
        assert "\n" not in job.error.message and len(job.error.message) <= 520
        assert sorted(p.name for p in (tmp_path / "runs" / job.id).iterdir()) == ["attempt-1"]  # not retried
    finally:
        s.stop()


def test_a_stopped_trainer_is_timed_out_and_retried(tmp_path: Path, catalog) -> None:  # type: ignore[no-untyped-def]
    """SIGSTOP the real trainer's process group mid-training: its heartbeats stop with it, so
    after HONE_ATTEMPT_HEARTBEAT_TIMEOUT_S the reconciler stops the attempt (SIGTERM, then SIGKILL,
    which a stopped process cannot ignore) and a new attempt resumes and finishes the job."""
    runs = tmp_path / "runs"
    s = start_server(
        tmp_path / "data",
        catalog,
        launcher=LocalLauncher(runs, LocalLauncherConfig(kill_grace_s=2)),
        attempt_heartbeat_timeout_s=15,
    )
    try:
        client = openai.OpenAI(base_url=s.v1, api_key=s.new_key("acme"), max_retries=0)
        job_id = _job(
            client,
            upload(client, tuning.memorisation_rows(copies=10)),  # 1,000 steps: time to stop it
            n_epochs=50,
            batch_size=1,
            checkpoint_interval=10,
        )
        wait_until(lambda: [m for m in tuning.metrics(client, job_id) if m["step"] >= 12], "step 12")
        pid = _pid(s, job_id, 1)
        os.killpg(pid, signal.SIGSTOP)
        job = wait_status(client, job_id, timeout=300)
        assert job.status == "succeeded", job.error
        messages = [e.message for e in client.fine_tuning.jobs.list_events(job_id, limit=1000)]
        assert any("no report for" in m for m in messages), messages
        assert any(m.startswith("Resuming from the checkpoint at step") for m in messages)
        assert (runs / job_id / "attempt-2").is_dir()
        try:
            os.kill(pid, 0)
            with open(f"/proc/{pid}/stat") as fh:
                assert fh.read().rsplit(")", 1)[-1].split()[0] == "Z"  # killed; only awaiting its reaping
        except ProcessLookupError:
            pass  # killed and reaped
    finally:
        s.stop()


def test_a_job_that_cannot_fit_fails_at_once_with_the_plan(tmp_path: Path, tiny_model_dir: Path) -> None:
    """A base model whose config is Llama-3.1-70B's shape (its tokenizer the tiny one; no weights:
    the plan reads only the config): full fine-tuning cannot fit this machine, so the trainer
    fails before loading anything, with ``insufficient_memory``, and is not retried."""
    import json
    import shutil

    from service.catalog.catalog import BaseModelEntry, Catalog

    big = tmp_path / "llama-70b-shape"
    shutil.copytree(tiny_model_dir, big)
    (big / "model.safetensors").unlink()
    config = json.loads((big / "config.json").read_text())
    shape = {"hidden_size": 8192, "num_hidden_layers": 80, "intermediate_size": 28672, "num_attention_heads": 64}
    (big / "config.json").write_text(json.dumps({**config, **shape, "num_key_value_heads": 8, "head_dim": 128}))
    catalog = Catalog([BaseModelEntry(name="llama-70b-shape", source=str(big))])
    s = start_server(tmp_path / "data", catalog, launcher=LocalLauncher(tmp_path / "runs"), max_attempts=3)
    try:
        client = openai.OpenAI(base_url=s.base_url + "/v1", api_key=s.new_key("acme"), max_retries=0)
        job_id = _job(client, upload(client, tuning.memorisation_rows()), model="llama-70b-shape", training_type="full")
        job = wait_status(client, job_id)
        assert job.status == "failed" and job.error.code == "insufficient_memory", job.error
        assert job.error.message.startswith("The job does not fit this machine's memory: ")
        assert "full fine-tuning needs about" in job.error.message and "GiB" in job.error.message
        assert sorted(p.name for p in (tmp_path / "runs" / job.id).iterdir()) == ["attempt-1"]  # not retried
    finally:
        s.stop()


def test_the_memory_plan_is_an_event(client: openai.OpenAI, train_file: str) -> None:
    job = wait_status(client, _job(client, train_file, n_epochs=1))
    assert job.status == "succeeded", job.error
    plans = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100) if e.message.startswith("plan:")]
    assert len(plans) == 1, plans
    assert re.fullmatch(
        r"plan: \d+M LoRA fp32 on 1 x \d+ GiB cpu, 2,048 tokens/micro-batch, checkpointing off, "
        r"estimated peak \d+\.\d GiB",
        plans[0],
    ), plans[0]
