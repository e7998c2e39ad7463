"""client.fine_tuning.jobs through the official SDK: creation shapes, request errors,
listing, events, idempotency. (Lifecycle with a trainer: test_lifecycle.py.)"""

from __future__ import annotations

import uuid

import httpx
import openai
import pytest

from tests.contract.helpers import chat_line, dpo_line, upload, wait_status


@pytest.fixture(scope="module")
def train_id(client: openai.OpenAI) -> str:
    return upload(client, [chat_line(i) for i in range(12)])


def test_create_minimal_then_validated(client: openai.OpenAI, train_id: str) -> None:
    job = client.fine_tuning.jobs.create(model="hone-tiny", training_file=train_id)
    assert job.id.startswith("ftjob-") and len(job.id) == 30
    assert (job.object, job.status, job.model, job.training_file) == (
        "fine_tuning.job",
        "validating_files",
        "hone-tiny",
        train_id,
    )
    assert job.hyperparameters.n_epochs == "auto" and job.fine_tuned_model is None and job.error is None
    assert job.result_files == [] and job.trained_tokens is None and job.finished_at is None
    assert job.method is not None and job.method.type == "supervised"
    assert 0 <= job.seed < 2**31
    job = wait_status(client, job.id, {"queued"})
    # "auto" resolved once the dataset size is known (12 examples: 100 // 12 = 8 epochs).
    assert (
        job.hyperparameters.n_epochs,
        job.hyperparameters.batch_size,
        job.hyperparameters.learning_rate_multiplier,
    ) == (8, 1, 2.0)
    assert job.method.supervised.hyperparameters.n_epochs == 8  # type: ignore[union-attr]
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id)]
    assert messages == [
        "Files validated, moving job to queued state",
        f"Validating training file: {train_id}",
        f"Created fine-tuning job: {job.id}",
    ]


def test_create_with_all_params(client: openai.OpenAI, train_id: str) -> None:
    valid_id = upload(client, [chat_line(i) for i in range(10)], "valid.jsonl")
    job = client.fine_tuning.jobs.create(
        model="hone-tiny",
        training_file=train_id,
        validation_file=valid_id,
        suffix="my-model.v1",
        seed=42,
        metadata={"team": "search", "run": "7"},
        integrations=None,
        method={
            "type": "supervised",
            "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 0.5}},
        },
    )
    assert (job.seed, job.validation_file, job.metadata) == (42, valid_id, {"team": "search", "run": "7"})
    assert job.hyperparameters.model_dump() == {"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 0.5}
    job = wait_status(client, job.id, {"queued"})
    assert job.hyperparameters.n_epochs == 2  # explicit values are kept
    events = [e.message for e in client.fine_tuning.jobs.list_events(job.id)]
    assert f"Validating training file: {train_id} and validation file: {valid_id}" in events


def test_extension_hyperparameters_are_echoed(client: openai.OpenAI, train_id: str) -> None:
    job = client.fine_tuning.jobs.create(
        model="hone-tiny",
        training_file=train_id,
        method={
            "type": "supervised",
            "supervised": {
                "hyperparameters": {
                    "lora_rank": 8,
                    "lora_alpha": 16,
                    "target_modules": ["q_proj", "v_proj"],
                    "checkpoint_interval": 10,
                }
            },
        },
    )
    hp = job.method.supervised.hyperparameters.model_dump()  # type: ignore[union-attr]
    assert (hp["lora_rank"], hp["lora_alpha"], hp["target_modules"], hp["checkpoint_interval"]) == (
        8,
        16,
        ["q_proj", "v_proj"],
        10,
    )
    assert (hp["training_type"], hp["lora_dropout"]) == ("lora", 0.05)  # defaults filled in


def test_create_sends_nulls_and_legacy_hyperparameters(client: openai.OpenAI, train_id: str) -> None:
    job = client.fine_tuning.jobs.create(
        model="hone-tiny",
        training_file=train_id,
        suffix=None,
        validation_file=None,
        seed=None,
        metadata=None,
        hyperparameters={"n_epochs": 3},
    )
    assert job.hyperparameters.n_epochs == 3 and job.validation_file is None and job.metadata is None


def test_dpo_job_shape(client: openai.OpenAI) -> None:
    dpo_file = upload(client, [dpo_line(i) for i in range(10)], "prefs.jsonl")
    job = client.fine_tuning.jobs.create(
        model="hone-tiny", training_file=dpo_file, method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2}}}
    )
    assert job.method.type == "dpo" and job.method.dpo.hyperparameters.beta == 0.2  # type: ignore[union-attr]
    job = wait_status(client, job.id, {"queued", "failed"})
    assert job.status == "queued", job.error


@pytest.mark.parametrize(
    ("kwargs", "param", "needle"),
    [
        ({"model": "gpt-9"}, "model", "not available for fine-tuning"),
        ({"training_file": "file-doesnotexist000000000000"}, "training_file", "invalid training_file"),
        ({"validation_file": "file-nope"}, "validation_file", "invalid validation_file"),
        ({"suffix": "has:colon"}, "suffix", "suffix"),
        ({"suffix": "x" * 65}, "suffix", "suffix"),
        ({"seed": -1}, "seed", "seed"),
        ({"hyperparameters": {"n_epochs": 0}}, "hyperparameters.n_epochs", "n_epochs"),
        ({"hyperparameters": {"batch_size": 2.5}}, "hyperparameters.batch_size", "batch_size"),
        (
            {"method": {"type": "supervised", "supervised": {"hyperparameters": {"learning_rate_multiplier": 0}}}},
            "method.supervised.hyperparameters.learning_rate_multiplier",
            "learning_rate_multiplier",
        ),
        (
            {"method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 3}}}},
            "method.dpo.hyperparameters.beta",
            "beta",
        ),
        ({"method": {"type": "dpo"}, "hyperparameters": {"n_epochs": 2}}, "hyperparameters", "supervised"),
        ({"method": {"type": "reinforcement", "reinforcement": {"grader": {}}}}, "method.type", "reinforcement"),
        (
            {
                "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}},
                "hyperparameters": {"n_epochs": 2},
            },
            "hyperparameters",
            "not both",
        ),
        ({"integrations": [{"type": "wandb", "wandb": {"project": "p"}}]}, "integrations", "not available"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", "16"),
        ({"extra_body": {"learning_rate": 1}}, "learning_rate", "Unrecognized request argument"),
        # hone's extensions and the train-to-serve gate
        (
            {"method": {"type": "supervised", "supervised": {"hyperparameters": {"lora_rank": 128}}}},
            "method.supervised.hyperparameters.lora_rank",
            "max_lora_rank 64",
        ),
        (
            {"method": {"type": "supervised", "supervised": {"hyperparameters": {"training_type": "qlora"}}}},
            "method.supervised.hyperparameters.training_type",
            "CUDA",
        ),
        (
            {
                "method": {
                    "type": "supervised",
                    "supervised": {"hyperparameters": {"target_modules": ["q_proj", "lm_head"]}},
                }
            },
            "method.supervised.hyperparameters.target_modules",
            "lm_head",
        ),
        (
            {"method": {"type": "supervised", "supervised": {"hyperparameters": {"training_type": "adapter"}}}},
            "method.supervised.hyperparameters.training_type",
            "training_type",
        ),
        (
            {"method": {"type": "supervised", "supervised": {"hyperparameters": {"lora_dropout": 1}}}},
            "method.supervised.hyperparameters.lora_dropout",
            "lora_dropout",
        ),
        # every method comes from the registry; the messages name the range
        ({"method": {"type": "orpo"}}, "method.type", "Supported values are: 'supervised' and 'dpo'"),
        (
            {"hyperparameters": {"n_epochs": 60}},
            "hyperparameters.n_epochs",
            "n_epochs must be an integer from 1 to 50, or 'auto'",
        ),
        (
            {"method": {"type": "supervised", "supervised": {"hyperparameters": {"learning_rate_multiplier": 1e308}}}},
            "method.supervised.hyperparameters.learning_rate_multiplier",
            "learning_rate_multiplier must be a number greater than 0 and at most 10, or 'auto'",
        ),
        (
            {"method": {"type": "supervised", "supervised": {"hyperparameters": {"lora_alpha": 1e300}}}},
            "method.supervised.hyperparameters.lora_alpha",
            "lora_alpha must be a number greater than 0 and at most 4,096",
        ),
    ],
)
def test_create_request_errors(client: openai.OpenAI, train_id: str, kwargs: dict, param: str, needle: str) -> None:  # type: ignore[type-arg]
    args = {"model": "hone-tiny", "training_file": train_id, **kwargs}
    before = len(list(client.fine_tuning.jobs.list(limit=100)))
    with pytest.raises(openai.BadRequestError) as e:
        client.fine_tuning.jobs.create(**args)
    assert e.value.param == param
    assert needle in e.value.message
    assert len(list(client.fine_tuning.jobs.list(limit=100))) == before


def test_wrong_purpose_file_is_refused(client: openai.OpenAI) -> None:
    other = client.files.create(file=("x.txt", b"hello"), purpose="user_data").id
    with pytest.raises(openai.BadRequestError) as e:
        client.fine_tuning.jobs.create(model="hone-tiny", training_file=other)
    assert e.value.param == "training_file" and "purpose" in e.value.message


def test_malformed_body_is_400(server, api_key: str) -> None:  # type: ignore[no-untyped-def]
    r = httpx.post(
        server.base_url + "/v1/fine_tuning/jobs",
        content=b"{not json",
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
    )
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.post(
        server.base_url + "/v1/fine_tuning/jobs",
        json={"training_file": "file-x"},
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"


@pytest.mark.parametrize("value", ["Infinity", "-Infinity", "NaN", "1e999"])
def test_non_finite_hyperparameters_are_400_before_anything_is_stored(
    server,
    api_key: str,
    client: openai.OpenAI,
    train_id: str,
    value: str,
) -> None:
    before = len(list(client.fine_tuning.jobs.list(limit=100)))
    hp = f'{{"learning_rate_multiplier": {value}}}'  # not JSON: json.dumps would refuse to write it
    method = f'{{"type": "supervised", "supervised": {{"hyperparameters": {hp}}}}}'
    body = f'{{"model": "hone-tiny", "training_file": "{train_id}", "method": {method}}}'

    r = httpx.post(
        server.base_url + "/v1/fine_tuning/jobs",
        content=body.encode(),
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
    )
    assert r.status_code == 400, r.text
    assert "learning_rate_multiplier must be a number" in r.json()["error"]["message"]
    assert len(list(client.fine_tuning.jobs.list(limit=100))) == before


def test_list_pagination_and_metadata_filter(client: openai.OpenAI, train_id: str) -> None:
    tag = uuid.uuid4().hex[:8]
    made = [
        client.fine_tuning.jobs.create(
            model="hone-tiny", training_file=train_id, metadata={"batch": tag, "i": str(i)}
        ).id
        for i in range(5)
    ]
    tagged = client.fine_tuning.jobs.list(metadata={"batch": tag}, limit=2)
    assert len(tagged.data) == 2 and tagged.has_more
    assert [j.id for j in tagged] == made[::-1]
    assert [j.id for j in client.fine_tuning.jobs.list(metadata={"batch": tag, "i": "3"})] == [made[3]]
    everything = [j.id for j in client.fine_tuning.jobs.list(limit=3)]
    assert everything[:5] == made[::-1]  # newest first, across pages
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.list(after="ftjob-nosuchjob")


def test_events_paginate_newest_first(client: openai.OpenAI, train_id: str) -> None:
    job = client.fine_tuning.jobs.create(model="hone-tiny", training_file=train_id)
    wait_status(client, job.id, {"queued"})
    first = client.fine_tuning.jobs.list_events(job.id, limit=1)
    assert len(first.data) == 1 and first.has_more
    all_events = list(first)
    assert [e.message for e in all_events][-1] == f"Created fine-tuning job: {job.id}"
    assert all(
        e.id.startswith("ftevent-") and e.object == "fine_tuning.job.event" and e.level == "info" for e in all_events
    )
    assert [e.created_at for e in all_events] == sorted((e.created_at for e in all_events), reverse=True)


def test_cancel_and_state_errors(client: openai.OpenAI, train_id: str) -> None:
    job = client.fine_tuning.jobs.create(model="hone-tiny", training_file=train_id)
    wait_status(client, job.id, {"queued"})
    paused = client.fine_tuning.jobs.pause(job.id)
    assert paused.status == "paused"
    resumed = client.fine_tuning.jobs.resume(job.id)
    assert resumed.status == "queued"
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    for call in (client.fine_tuning.jobs.cancel, client.fine_tuning.jobs.pause, client.fine_tuning.jobs.resume):
        with pytest.raises(openai.BadRequestError) as e:
            call(job.id)
        assert "cancelled" in e.value.message
    assert client.fine_tuning.jobs.list_events(job.id, limit=1).data[0].message == "The job was cancelled"
    assert client.fine_tuning.jobs.checkpoints.list(job.id).data == []


def test_not_found(client: openai.OpenAI) -> None:
    for call in (
        client.fine_tuning.jobs.retrieve,
        client.fine_tuning.jobs.cancel,
        client.fine_tuning.jobs.pause,
        client.fine_tuning.jobs.resume,
        client.fine_tuning.jobs.list_events,
        client.fine_tuning.jobs.checkpoints.list,
    ):
        with pytest.raises(openai.NotFoundError) as e:
            call("ftjob-AAAAAAAAAAAAAAAAAAAAAAAA")
        assert e.value.code == "fine_tuning_job_not_found"


def test_idempotency_key(client: openai.OpenAI, train_id: str) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    a = client.fine_tuning.jobs.create(model="hone-tiny", training_file=train_id, seed=7, extra_headers=key)
    b = client.fine_tuning.jobs.create(model="hone-tiny", training_file=train_id, seed=7, extra_headers=key)
    assert a.id == b.id
    assert sum(j.id == a.id for j in client.fine_tuning.jobs.list(limit=100)) == 1
    with pytest.raises(openai.ConflictError) as e:
        client.fine_tuning.jobs.create(model="hone-tiny", training_file=train_id, seed=8, extra_headers=key)
    assert e.value.code == "idempotency_key_reused"
    # Uploads honour it too: same bytes -> same file, different bytes -> 409.
    fkey = {"Idempotency-Key": uuid.uuid4().hex}
    f1 = client.files.create(file=("a.jsonl", b"{}\n"), purpose="fine-tune", extra_headers=fkey)
    f2 = client.files.create(file=("a.jsonl", b"{}\n"), purpose="fine-tune", extra_headers=fkey)
    assert f1.id == f2.id
    with pytest.raises(openai.ConflictError):
        client.files.create(file=("a.jsonl", b"{}\n{}\n"), purpose="fine-tune", extra_headers=fkey)


def test_concurrent_retries_create_one_job(server, api_key: str, train_id: str) -> None:  # type: ignore[no-untyped-def]
    from concurrent.futures import ThreadPoolExecutor

    key = {"Idempotency-Key": uuid.uuid4().hex}
    c = openai.OpenAI(base_url=server.base_url + "/v1", api_key=api_key, max_retries=3)

    def create(_: int) -> str:
        return c.fine_tuning.jobs.create(model="hone-tiny", training_file=train_id, extra_headers=key).id

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(create, range(8)))
    assert len(ids) == 1


@pytest.mark.anyio
async def test_async_client_jobs(async_client: openai.AsyncOpenAI, train_id: str) -> None:
    job = await async_client.fine_tuning.jobs.create(model="hone-tiny", training_file=train_id)
    assert (await async_client.fine_tuning.jobs.retrieve(job.id)).id == job.id
    assert job.id in [j.id async for j in async_client.fine_tuning.jobs.list()]
    assert [e async for e in async_client.fine_tuning.jobs.list_events(job.id)]
    assert (await async_client.fine_tuning.jobs.checkpoints.list(job.id)).data == []
    assert (await async_client.fine_tuning.jobs.cancel(job.id)).status == "cancelled"
