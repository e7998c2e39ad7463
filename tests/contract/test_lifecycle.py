"""The job lifecycle end to end through the SDK, with a FAKE trainer (tests/fakes) reporting
over the real internal API: success, checkpoints, models, result file, relaunch and resume
after a failed attempt, exhausted attempts, pause/resume of a running job, cancel."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from contract.blobstore import open_blobstore
from tests.contract.helpers import chat_line, upload, wait_status
from tests.contract.openapi import SpecChecker
from tests.fakes.launcher import FakeTrainerLauncher, Script
from tests.harness.jobs import TERMINAL_STATUSES
from tests.harness.server import RunningServer, start_server
from tests.harness.waiting import wait_until
from trainer.report import Reporter

TERMINAL = TERMINAL_STATUSES


@pytest.fixture(scope="module")
def launcher(tmp_path_factory) -> FakeTrainerLauncher:  # type: ignore[no-untyped-def]
    data_dir = tmp_path_factory.mktemp("hone-life")
    return FakeTrainerLauncher(open_blobstore((data_dir / "blobs").as_uri()))


@pytest.fixture(scope="module")
def server(launcher: FakeTrainerLauncher, catalog) -> Iterator[RunningServer]:  # type: ignore[no-untyped-def]
    data_dir = launcher.store.root.parent  # type: ignore[attr-defined]
    srv = start_server(data_dir, catalog, launcher=launcher, max_attempts=2, max_running_jobs=4)
    yield srv
    srv.stop()


@pytest.fixture
def script(launcher: FakeTrainerLauncher) -> Iterator[FakeTrainerLauncher]:
    yield launcher
    launcher.script, launcher.scripts = Script(), {}


@pytest.fixture(scope="module")
def train_id(client: openai.OpenAI) -> str:
    return upload(client, [chat_line(i) for i in range(12)])


def test_success_checkpoints_models_results(client: openai.OpenAI, train_id: str, spec_checker: SpecChecker) -> None:
    job = client.fine_tuning.jobs.create(model="hone-tiny", training_file=train_id, suffix="calc")
    job = wait_status(client, job.id, TERMINAL)
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model and job.fine_tuned_model.startswith("ft:hone-tiny:acme:calc:")
    assert job.trained_tokens == 4000 and job.finished_at is not None and job.estimated_finish is None
    ckpts = client.fine_tuning.jobs.checkpoints.list(job.id)
    assert [c.step_number for c in ckpts.data] == [4, 2]  # newest first
    assert all(c.id.startswith("ftckpt-") and c.fine_tuning_job_id == job.id for c in ckpts.data)
    assert ckpts.data[1].fine_tuned_model_checkpoint.endswith(":ckpt-step-2")
    assert ckpts.data[1].metrics.train_loss == 1.0
    page = client.fine_tuning.jobs.checkpoints.list(job.id, limit=1)
    assert page.has_more and [c.step_number for c in page] == [4, 2]

    models = {m.id for m in client.models.list()}
    assert {"hone-tiny", job.fine_tuned_model, ckpts.data[1].fine_tuned_model_checkpoint} <= models
    m = client.models.retrieve(job.fine_tuned_model)
    assert (m.id, m.object, m.owned_by) == (job.fine_tuned_model, "model", job.organization_id)

    (result_id,) = job.result_files
    result = client.files.retrieve(result_id)
    assert (result.purpose, result.filename) == ("fine-tune-results", "step_metrics.csv")
    csv = client.files.content(result_id).text.splitlines()
    assert csv[0] == "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy" and len(csv) == 5
    assert result_id in [f.id for f in client.files.list(purpose="fine-tune-results")]

    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100)][::-1]
    assert messages[:4] == [
        f"Created fine-tuning job: {job.id}",
        f"Validating training file: {train_id}",
        "Files validated, moving job to queued state",
        "Fine-tuning job started",
    ]
    assert messages[-2:] == [
        f"New fine-tuned model created: {job.fine_tuned_model}",
        "The job has successfully completed",
    ]
    metrics = [e for e in client.fine_tuning.jobs.list_events(job.id, limit=100) if e.type == "metrics"]
    assert [e.data["step"] for e in metrics] == [4, 3, 2, 1]  # type: ignore[index]

    # Continued training from the fine-tuned model, then deletion.
    cont = client.fine_tuning.jobs.create(model=job.fine_tuned_model, training_file=train_id)
    assert cont.model == job.fine_tuned_model
    cont = wait_status(client, cont.id, TERMINAL)
    assert cont.status == "succeeded" and cont.fine_tuned_model.startswith("ft:hone-tiny:acme::")  # type: ignore[union-attr]
    deleted = client.models.delete(job.fine_tuned_model)
    assert (deleted.id, deleted.deleted) == (job.fine_tuned_model, True)
    with pytest.raises(openai.NotFoundError) as e:
        client.models.retrieve(job.fine_tuned_model)
    assert e.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.models.delete(job.fine_tuned_model)
    assert job.fine_tuned_model not in {m.id for m in client.models.list()}
    with pytest.raises(openai.BadRequestError) as e:
        client.fine_tuning.jobs.create(model=job.fine_tuned_model, training_file=train_id)
    assert e.value.param == "model"
    # The checkpoint models are separate names and stay callable.
    assert (
        client.models.retrieve(ckpts.data[1].fine_tuned_model_checkpoint).id
        == ckpts.data[1].fine_tuned_model_checkpoint
    )
    assert spec_checker.checked > 10


def test_failed_attempt_is_relaunched_and_resumes(
    client: openai.OpenAI, train_id: str, script: FakeTrainerLauncher
) -> None:
    script.scripts = {1: Script(steps=6, checkpoint_every=2, fail_with_exit_code=137)}
    job = client.fine_tuning.jobs.create(model="hone-tiny", training_file=train_id)
    job = wait_status(client, job.id, TERMINAL)
    assert job.status == "succeeded", job.error
    specs = [s for s in script.started if s.job_id == job.id]
    assert [s.attempt for s in specs] == [1, 2]
    assert specs[0].resume_uri is None and specs[1].resume_uri and specs[1].resume_uri.endswith("/checkpoints/step-2")
    assert specs[0].report_token != specs[1].report_token
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100)]
    retry = "Training attempt 1 exited with code 137; restarting from the newest checkpoint (1 of 2 allowed failures)."
    assert any(m.startswith(retry) for m in messages), messages
    assert "Resuming from step 2" in messages
    # The dead attempt's token no longer reports.
    r = httpx.post(
        f"{specs[0].report_url}/events",
        json={"events": []},
        headers={"Authorization": f"Bearer {specs[0].report_token}"},
    )
    assert r.status_code == 401


def test_a_replaced_pod_resumes_from_the_newest_checkpoint_not_its_specs(
    client: openai.OpenAI, train_id: str, script: FakeTrainerLauncher
) -> None:
    """An evicted pod's replacement re-runs the spec its Job was created with; the trainer asks
    the control plane where to resume, so it continues after the checkpoint the evicted pod
    wrote rather than from the older one (or none) its spec names."""
    script.script = Script(steps=4, checkpoint_every=2, hold=True)
    job = client.fine_tuning.jobs.create(model="hone-tiny", training_file=train_id)
    wait_until(lambda: len(client.fine_tuning.jobs.checkpoints.list(job.id).data) >= 2, "two checkpoints")
    spec = next(s for s in script.started if s.job_id == job.id)
    assert spec.resume_uri is None  # launched from scratch
    newest = client.fine_tuning.jobs.checkpoints.list(job.id).data[0]
    replaced = Reporter(spec.report_url, spec.report_token, retry_for_s=5)
    try:
        uri = replaced.resume_point()
    finally:
        replaced.close()
    assert uri is not None and uri.endswith(f"/checkpoints/step-{newest.step_number}")
    stranger = httpx.get(f"{spec.report_url}/resume-point", headers={"Authorization": "Bearer not-the-token"})
    assert stranger.status_code == 401
    client.fine_tuning.jobs.cancel(job.id)


def test_attempts_exhausted_fail_with_log_tail(
    client: openai.OpenAI, train_id: str, script: FakeTrainerLauncher
) -> None:
    script.script = Script(steps=6, fail_with_exit_code=3)
    job = client.fine_tuning.jobs.create(model="hone-tiny", training_file=train_id)
    job = wait_status(client, job.id, TERMINAL)
    assert job.status == "failed" and job.error is not None
    assert job.error.code == "training_failed"
    assert "after 2 failed attempts" in job.error.message and "fake trainer exited with 3" in job.error.message
    assert client.fine_tuning.jobs.list_events(job.id, limit=1).data[0].level == "error"


def test_pause_resume_cancel_running_job(client: openai.OpenAI, train_id: str, script: FakeTrainerLauncher) -> None:
    script.script = Script(steps=3, checkpoint_every=100, hold=True)
    job = client.fine_tuning.jobs.create(model="hone-tiny", training_file=train_id)
    wait_status(client, job.id, {"running"})
    time.sleep(0.3)
    assert client.fine_tuning.jobs.pause(job.id).status == "pausing"
    job = wait_status(client, job.id, {"paused"})
    ckpts = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert len(ckpts) == 1  # the trainer checkpointed on its way out
    script.script = Script(steps=3, checkpoint_every=100, hold=True)
    assert client.fine_tuning.jobs.resume(job.id).status == "queued"
    wait_status(client, job.id, {"running"})
    spec = script.started[-1]
    assert spec.job_id == job.id and spec.attempt == 2
    assert spec.resume_uri and spec.resume_uri.endswith(f"step-{ckpts[0].step_number}")
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled"
    deadline = time.time() + 10
    while script.poll(job.id, spec.attempt).alive:  # the reconciler stops the attempt
        assert time.time() < deadline, "cancelled job's trainer still running"
        time.sleep(0.05)
    time.sleep(0.5)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "cancelled"


def test_pauses_do_not_use_up_attempts(client: openai.OpenAI, train_id: str, script: FakeTrainerLauncher) -> None:
    """Two pause/resume cycles and then one crash, with HONE_MAX_ATTEMPTS=2: the crash is the
    first failure, so the job is retried and succeeds (before, each pause used up an attempt)."""
    held = Script(steps=3, checkpoint_every=100, hold=True)
    script.scripts = {
        1: held,
        2: held,
        3: Script(steps=6, checkpoint_every=1, fail_with_exit_code=137),
        4: Script(steps=6, checkpoint_every=2),
    }
    job = client.fine_tuning.jobs.create(model="hone-tiny", training_file=train_id)
    for _ in range(2):
        wait_status(client, job.id, {"running"})
        client.fine_tuning.jobs.pause(job.id)
        wait_status(client, job.id, {"paused"})
        client.fine_tuning.jobs.resume(job.id)
    job = wait_status(client, job.id, TERMINAL)
    assert job.status == "succeeded", job.error
    assert [s.attempt for s in script.started if s.job_id == job.id] == [1, 2, 3, 4]


class _RefusingLauncher(FakeTrainerLauncher):
    """A FAKE launcher whose every start fails, as a cluster that refuses the Job would."""

    def start(self, spec, resources) -> None:  # type: ignore[no-untyped-def]
        self.started.append(spec)
        raise RuntimeError("admission webhook denied the request: quota exceeded")


def test_a_launch_that_fails_counts_as_a_failed_attempt(launcher: FakeTrainerLauncher, catalog) -> None:  # type: ignore[no-untyped-def]
    """A launcher that raises fails the attempt with its message, the job is retried up to
    HONE_MAX_ATTEMPTS and then fails naming the cause; nothing keeps it running."""
    refusing = _RefusingLauncher(launcher.store)
    data_dir = launcher.store.root.parent  # type: ignore[attr-defined]
    srv = start_server(data_dir / "refused", catalog, launcher=refusing, max_attempts=2, storage_url=launcher.store.url)
    try:
        client = openai.OpenAI(base_url=srv.v1, api_key=srv.new_key("acme"), max_retries=0)
        job = client.fine_tuning.jobs.create(
            model="hone-tiny", training_file=upload(client, [chat_line(i) for i in range(12)])
        )
        job = wait_status(client, job.id, TERMINAL, timeout=60)
        assert job.status == "failed" and job.error is not None, job
        assert job.error.code == "training_failed", job.error
        assert "after 2 failed attempts" in job.error.message and "quota exceeded" in job.error.message, job.error
        assert [s.attempt for s in refusing.started if s.job_id == job.id] == [1, 2]
        messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100)]
        assert any("1 of 2 allowed failures" in m and "quota exceeded" in m for m in messages), "\n".join(messages)
    finally:
        srv.stop()


def test_a_silent_trainer_is_stopped_and_retried(launcher: FakeTrainerLauncher, catalog) -> None:  # type: ignore[no-untyped-def]
    """An attempt that stays alive but stops reporting (hung, SIGSTOPped, cut off) is stopped
    after HONE_ATTEMPT_HEARTBEAT_TIMEOUT_S and counted as a failure; the next attempt finishes."""
    data_dir = launcher.store.root.parent  # type: ignore[attr-defined]
    srv = start_server(
        data_dir / "silent", catalog, launcher=launcher, attempt_heartbeat_timeout_s=1.0, storage_url=launcher.store.url
    )
    try:
        client = openai.OpenAI(base_url=srv.v1, api_key=srv.new_key("acme"), max_retries=0)
        launcher.scripts = {1: Script(steps=6, checkpoint_every=2, silent_after=3), 2: Script(steps=6)}
        job = client.fine_tuning.jobs.create(
            model="hone-tiny", training_file=upload(client, [chat_line(i) for i in range(12)])
        )
        job = wait_status(client, job.id, TERMINAL, timeout=30)
        assert job.status == "succeeded", job.error
        assert [s.attempt for s in launcher.started if s.job_id == job.id] == [1, 2]
        assert not launcher.poll(job.id, 1).alive  # the silent attempt was stopped
        messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100)]
        assert any("no report for" in m and "1 of 3 allowed failures" in m for m in messages), "\n".join(messages)
    finally:
        srv.stop()
        launcher.scripts = {}


def test_reports_need_the_attempt_token(server: RunningServer, client: openai.OpenAI, train_id: str) -> None:
    job = client.fine_tuning.jobs.create(model="hone-tiny", training_file=train_id)
    url = f"{server.base_url}/internal/v1/jobs/{job.id}/events"
    assert httpx.post(url, json={"events": []}).status_code == 401
    assert httpx.post(url, json={"events": []}, headers={"Authorization": "Bearer nope"}).status_code == 401
    wait_status(client, job.id, TERMINAL)


def test_jobs_with_hyperparameters_an_older_server_stored_fail_alone(
    server: RunningServer, client: openai.OpenAI, train_id: str, script: FakeTrainerLauncher
) -> None:
    """A row whose stored hyperparameters today's bounds refuse (a learning_rate_multiplier of 50,
    which an older server accepted) fails with a message, whether it is still validating or
    queued; the jobs behind it still run (before: it was retried forever and stalled the queue).

    The validating row is written as an older server left it, not created through the API and
    edited afterwards: a job created here may pass validation, or even start, before the edit
    lands (CI once saw that job launched under the next test step's holding script)."""
    from sqlalchemy import select, update

    from service import ids
    from service.db.schema import Job

    old_hp = {"n_epochs": 1, "batch_size": 1, "learning_rate_multiplier": 50}
    script.scripts = {1: Script(steps=3, checkpoint_every=100, hold=True)}
    queued = client.fine_tuning.jobs.create(model="hone-tiny", training_file=train_id)
    wait_status(client, queued.id, {"running"})
    client.fine_tuning.jobs.pause(queued.id)
    wait_status(client, queued.id, {"paused"})
    script.scripts = {}  # scripts are per attempt number: the next jobs' first attempts must not hold
    with server.ctx.db.session() as s:
        s.execute(update(Job).where(Job.id == queued.id).values(hyperparameters=old_hp))
        template = s.scalars(select(Job).where(Job.id == queued.id)).one()
        columns = {c.key: getattr(template, c.key) for c in Job.__mapper__.column_attrs if c.key != "seq"}
        validating_id = ids.job_id()
        s.add(
            Job(
                **columns
                | {
                    "id": validating_id,
                    "status": "validating_files",
                    "hyperparameters": old_hp,
                    "created_at": int(time.time()),
                    "attempt": 0,
                    "active_attempt": None,
                    "attempt_claimed_at": None,
                    "last_report_at": None,
                    "report_token_hash": None,
                }
            )
        )
    client.fine_tuning.jobs.resume(queued.id)  # queued again: the dispatcher must build its spec
    behind = client.fine_tuning.jobs.create(model="hone-tiny", training_file=train_id)
    for job_id in (validating_id, queued.id):
        job = wait_status(client, job_id, TERMINAL)
        assert job.status == "failed" and job.error is not None, job
        assert "learning_rate_multiplier must be" in job.error.message, job.error
    assert wait_status(client, behind.id, TERMINAL).status == "succeeded"
