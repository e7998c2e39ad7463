"""Every request model, every kind of wrong value, through the official SDKs: the exact
message, ``param`` (the dotted path, list indexes in brackets, as OpenAI reports it) and
``code`` a user sees. The SDK's typed parameters take wrong values when passed anyway (and
unknown ones through ``extra_body`` / ``extra_query``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import NotGiven
from openai.types import Upload
from openai.types.fine_tuning import FineTuningJob

from tests.contract.helpers import chat_line, jsonl, upload
from tests.contract.openapi import SpecChecker
from tests.harness.node import run_node
from tests.harness.server import RunningServer

Call = Callable[[openai.OpenAI, dict[str, str]], Any]


@pytest.fixture(scope="module")
def ids(client: openai.OpenAI) -> dict[str, str]:
    """A real training file and job, for the calls whose path names one."""
    train = upload(client, jsonl([chat_line(i) for i in range(12)]))
    job = client.fine_tuning.jobs.create(model="hone-tiny", training_file=train)
    return {"file": train, "job": job.id}


def _create(**kwargs: Any) -> Call:
    return lambda c, ids: c.fine_tuning.jobs.create(**{"model": "hone-tiny", "training_file": ids["file"], **kwargs})


def _method(method_type: str, **hyperparameters: Any) -> Call:
    return _create(method={"type": method_type, method_type: {"hyperparameters": hyperparameters}})


SUP = "method.supervised.hyperparameters"
ROWS: list[tuple[str, Call, str | None, str | None, str]] = [
    # ---- POST /v1/fine_tuning/jobs: hyperparameters name their whole range
    (
        "n_epochs above its range (the issue's case)",
        _create(hyperparameters={"n_epochs": 60}),
        "hyperparameters.n_epochs",
        "integer_above_max_value",
        "Invalid 'hyperparameters.n_epochs': n_epochs must be an integer from 1 to 50, or 'auto', but got 60 instead.",
    ),
    (
        "n_epochs in method, below its range",
        _method("supervised", n_epochs=0),
        f"{SUP}.n_epochs",
        "integer_below_min_value",
        f"Invalid '{SUP}.n_epochs': n_epochs must be an integer from 1 to 50, or 'auto', but got 0 instead.",
    ),
    (
        "batch_size a string other than auto",
        _method("supervised", batch_size="8"),
        f"{SUP}.batch_size",
        "invalid_value",
        f"Invalid value for '{SUP}.batch_size': batch_size must be an integer from 1 to 256, or 'auto', "
        "but got '8' instead.",
    ),
    (
        "hone's lora_rank as a string",
        _method("supervised", lora_rank="8"),
        f"{SUP}.lora_rank",
        "invalid_type",
        f"Invalid type for '{SUP}.lora_rank': lora_rank must be an integer from 1 to 1,024, but got a string instead.",
    ),
    (
        "batch_size as a boolean (OpenAI refuses true for an integer)",
        _method("supervised", batch_size=True),
        f"{SUP}.batch_size",
        "invalid_type",
        f"Invalid type for '{SUP}.batch_size': batch_size must be an integer from 1 to 256, or 'auto', "
        "but got a boolean instead.",
    ),
    (
        "batch_size as a fraction",
        _create(hyperparameters={"batch_size": 2.5}),
        "hyperparameters.batch_size",
        "invalid_type",
        "Invalid type for 'hyperparameters.batch_size': batch_size must be an integer from 1 to 256, or 'auto', "
        "but got a number instead.",
    ),
    (
        "learning_rate_multiplier zero",
        _method("supervised", learning_rate_multiplier=0),
        f"{SUP}.learning_rate_multiplier",
        "integer_below_min_value",
        f"Invalid '{SUP}.learning_rate_multiplier': learning_rate_multiplier must be a number greater than 0 "
        "and at most 10, or 'auto', but got 0 instead.",
    ),
    (
        "learning_rate_multiplier a word other than auto",
        _method("supervised", learning_rate_multiplier="high"),
        f"{SUP}.learning_rate_multiplier",
        "invalid_value",
        f"Invalid value for '{SUP}.learning_rate_multiplier': learning_rate_multiplier must be a number greater "
        "than 0 and at most 10, or 'auto', but got 'high' instead.",
    ),
    (
        "dpo beta above its range",
        _method("dpo", beta=2.5),
        "method.dpo.hyperparameters.beta",
        "decimal_above_max_value",
        "Invalid 'method.dpo.hyperparameters.beta': beta must be a number greater than 0 and at most 2, or "
        "'auto', but got 2.5 instead.",
    ),
    (
        "hone's lora_rank below 1",
        _method("supervised", lora_rank=0),
        f"{SUP}.lora_rank",
        "integer_below_min_value",
        f"Invalid '{SUP}.lora_rank': lora_rank must be an integer from 1 to 1,024, but got 0 instead.",
    ),
    (
        "hone's training_type not a known one",
        _method("supervised", training_type="adapter"),
        f"{SUP}.training_type",
        "invalid_value",
        f"Invalid value for '{SUP}.training_type': training_type must be 'lora' or 'qlora' or 'full', "
        "but got 'adapter' instead.",
    ),
    (
        "hone's gradient_checkpointing not a boolean",
        _method("supervised", gradient_checkpointing="yes"),
        f"{SUP}.gradient_checkpointing",
        "invalid_type",
        f"Invalid type for '{SUP}.gradient_checkpointing': expected a boolean, but got a string instead.",
    ),
    (
        "an unknown hyperparameter",
        _method("supervised", learning_rate=0.1),
        f"{SUP}.learning_rate",
        None,
        f"Unrecognized request argument supplied: {SUP}.learning_rate",
    ),
    (
        "hyperparameters not an object",
        _create(hyperparameters="fast"),
        "hyperparameters",
        "invalid_type",
        "Invalid type for 'hyperparameters': expected an object, but got a string instead.",
    ),
    # ---- method
    (
        "method.type missing",
        _create(method={"supervised": {}}),
        "method.type",
        "missing_required_parameter",
        "Missing required parameter: 'method.type'.",
    ),
    (
        "method.type not a string",
        _create(method={"type": 5}),
        "method.type",
        "invalid_type",
        "Invalid type for 'method.type': expected a string, but got an integer instead.",
    ),
    (
        "method.type unknown",
        _create(method={"type": "orpo"}),
        "method.type",
        "invalid_value",
        "Invalid value for 'method.type': 'orpo'. Supported values are: 'supervised' and 'dpo'.",
    ),
    (
        "method's body for a method not an object",
        _create(method={"type": "supervised", "supervised": "x"}),
        "method.supervised",
        "invalid_type",
        "Invalid type for 'method.supervised': expected an object, but got a string instead.",
    ),
    (
        "an unknown field in method",
        _create(method={"type": "supervised", "orpo": {}}),
        "method.orpo",
        None,
        "Unrecognized request argument supplied: method.orpo",
    ),
    # ---- top-level fields
    (
        "model missing",
        lambda c, ids: c.post("/fine_tuning/jobs", body={"training_file": ids["file"]}, cast_to=FineTuningJob),
        "model",
        "missing_required_parameter",
        "Missing required parameter: 'model'.",
    ),
    (
        "model empty",
        _create(model=""),
        "model",
        None,
        "Invalid 'model': string too short. Expected a string with minimum length 1, but got an empty string instead.",
    ),
    (
        "training_file not a string",
        _create(training_file=7),
        "training_file",
        "invalid_type",
        "Invalid type for 'training_file': expected a string, but got an integer instead.",
    ),
    (
        "seed a string",
        _create(seed="42"),
        "seed",
        "invalid_type",
        "Invalid type for 'seed': expected an integer, but got a string instead.",
    ),
    (
        "seed a boolean",
        _create(seed=True),
        "seed",
        "invalid_type",
        "Invalid type for 'seed': expected an integer, but got a boolean instead.",
    ),
    (
        "seed negative",
        _create(seed=-1),
        "seed",
        "integer_below_min_value",
        "Invalid 'seed': integer below minimum value. Expected a value >= 0, but got -1 instead.",
    ),
    (
        "seed above 2^31-1",
        _create(seed=2**31),
        "seed",
        "integer_above_max_value",
        "Invalid 'seed': integer above maximum value. Expected a value <= 2147483647, but got 2147483648 instead.",
    ),
    (
        "suffix too long",
        _create(suffix="s" * 65),
        "suffix",
        "string_above_max_length",
        "Invalid 'suffix': string too long. Expected a string with maximum length 64, but got a string with "
        "length 65 instead.",
    ),
    (
        "an unknown top-level argument",
        lambda c, ids: c.fine_tuning.jobs.create(
            model="hone-tiny", training_file=ids["file"], extra_body={"learning_rate": 1}
        ),
        "learning_rate",
        None,
        "Unrecognized request argument supplied: learning_rate",
    ),
    # ---- the metadata map
    (
        "metadata with 17 pairs",
        _create(metadata={f"k{i}": "v" for i in range(17)}),
        "metadata",
        None,
        "Invalid 'metadata': too many keys. Expected an object with at most 16 keys, but got 17 instead.",
    ),
    (
        "metadata key of 65 characters",
        _create(metadata={"k" * 65: "v"}),
        "metadata." + "k" * 65,
        "string_above_max_length",
        "Invalid key in 'metadata': string too long. Expected a string with maximum length 64, but got a string "
        "with length 65 instead.",
    ),
    (
        "metadata value of 513 characters",
        _create(metadata={"k": "v" * 513}),
        "metadata.k",
        "string_above_max_length",
        "Invalid 'metadata.k': string too long. Expected a string with maximum length 512, but got a string "
        "with length 513 instead.",
    ),
    (
        "metadata value not a string",
        _create(metadata={"k": 1}),
        "metadata.k",
        "invalid_type",
        "Invalid type for 'metadata.k': expected a string, but got an integer instead.",
    ),
    # ---- integrations: list indexes in brackets
    (
        "integration of an unknown type",
        _create(integrations=[{"type": "mlflow", "mlflow": {}}]),
        "integrations[0].type",
        "invalid_value",
        "Invalid value for 'integrations[0].type': 'mlflow'. Supported values are: 'wandb'.",
    ),
    (
        "integration without its project",
        _create(integrations=[{"type": "wandb", "wandb": {}}]),
        "integrations[0].wandb.project",
        "missing_required_parameter",
        "Missing required parameter: 'integrations[0].wandb.project'.",
    ),
    (
        "no body at all",
        lambda c, ids: c.post("/fine_tuning/jobs", cast_to=FineTuningJob),
        None,
        None,
        "The request body is missing: send a JSON object.",
    ),
    # ---- POST /v1/files: multipart form fields, checked by hand with the same builders
    (
        "file purpose not one of OpenAI's",
        lambda c, ids: c.files.create(file=("x.jsonl", b"{}\n"), purpose="fine-tuning"),  # type: ignore[arg-type]
        "purpose",
        "invalid_value",
        "Invalid value for 'purpose': 'fine-tuning'. Supported values are: 'assistants', 'batch', 'fine-tune', "
        "'vision', 'user_data', and 'evals'.",
    ),
    (
        "file expires_after seconds below an hour",
        lambda c, ids: c.files.create(
            file=("x.jsonl", b"{}\n"), purpose="fine-tune", expires_after={"anchor": "created_at", "seconds": 10}
        ),
        "expires_after[seconds]",
        "integer_below_min_value",
        "Invalid 'expires_after[seconds]': integer below minimum value. Expected a value >= 3600, but got 10 instead.",
    ),
    (
        "file expires_after seconds not a number",
        lambda c, ids: c.files.create(
            file=("x.jsonl", b"{}\n"),
            purpose="fine-tune",
            expires_after={"anchor": "created_at", "seconds": "²"},  # type: ignore[typeddict-item]
        ),
        "expires_after[seconds]",
        "invalid_type",
        "Invalid 'expires_after[seconds]': expected an integer, but got '²' instead.",
    ),
    (
        "file expires_after seconds of 5,000 digits",
        lambda c, ids: c.files.create(
            file=("x.jsonl", b"{}\n"),
            purpose="fine-tune",
            expires_after={"anchor": "created_at", "seconds": "9" * 5000},  # type: ignore[typeddict-item]
        ),
        "expires_after[seconds]",
        "integer_above_max_value",
        "Invalid 'expires_after[seconds]': integer above maximum value. Expected a value <= 2592000, but got "
        + "9" * 29
        + "... instead.",
    ),
    (
        "file expires_after anchor unknown",
        lambda c, ids: c.files.create(
            file=("x.jsonl", b"{}\n"),
            purpose="fine-tune",
            expires_after={"anchor": "last_used_at", "seconds": 3600},  # type: ignore[typeddict-item]
        ),
        "expires_after[anchor]",
        "invalid_value",
        "Invalid value for 'expires_after[anchor]': 'last_used_at'. Supported values are: 'created_at'.",
    ),
    # ---- POST /v1/uploads and /v1/uploads/{id}/complete
    (
        "upload bytes not a number",
        lambda c, ids: c.uploads.create(
            bytes="ten",  # type: ignore[arg-type]
            filename="a.jsonl",
            mime_type="text/jsonl",
            purpose="fine-tune",
        ),
        "bytes",
        "invalid_type",
        "Invalid type for 'bytes': expected an integer, but got a string instead.",
    ),
    (
        "upload without its mime_type",
        lambda c, ids: c.post(
            "/uploads", body={"bytes": 10, "filename": "a.jsonl", "purpose": "fine-tune"}, cast_to=Upload
        ),
        "mime_type",
        "missing_required_parameter",
        "Missing required parameter: 'mime_type'.",
    ),
    (
        "upload expires_after without seconds",
        lambda c, ids: c.uploads.create(
            bytes=10,
            filename="a.jsonl",
            mime_type="text/jsonl",
            purpose="batch",
            expires_after={"anchor": "created_at"},  # type: ignore[typeddict-item]
        ),
        "expires_after.seconds",
        "missing_required_parameter",
        "Missing required parameter: 'expires_after.seconds'.",
    ),
    (
        "upload completed with part_ids not an array",
        lambda c, ids: c.uploads.complete("upload_x", part_ids="part_x"),  # type: ignore[arg-type]
        "part_ids",
        "invalid_type",
        "Invalid type for 'part_ids': expected an array, but got a string instead.",
    ),
    (
        "upload completed with a part id not a string",
        lambda c, ids: c.uploads.complete("upload_x", part_ids=["part_x", 7]),  # type: ignore[list-item]
        "part_ids[1]",
        "invalid_type",
        "Invalid type for 'part_ids[1]': expected a string, but got an integer instead.",
    ),
    # ---- query parameters on list endpoints
    (
        "files limit below 1",
        lambda c, ids: c.files.list(limit=0),
        "limit",
        "integer_below_min_value",
        "Invalid 'limit': integer below minimum value. Expected a value >= 1, but got 0 instead.",
    ),
    (
        "files limit not a number",
        lambda c, ids: c.files.list(limit="ten"),  # type: ignore[arg-type]
        "limit",
        "invalid_type",
        "Invalid 'limit': expected an integer, but got 'ten' instead.",
    ),
    (
        "files order unknown",
        lambda c, ids: c.files.list(order="newest"),  # type: ignore[arg-type]
        "order",
        "invalid_value",
        "Invalid value for 'order': 'newest'. Supported values are: 'asc' and 'desc'.",
    ),
    (
        "files after an id not in the list",
        lambda c, ids: c.files.list(after="file-nope"),
        "after",
        None,
        "Invalid 'after': no object with id 'file-nope' in this list.",
    ),
    (
        "jobs limit above 100",
        lambda c, ids: c.fine_tuning.jobs.list(limit=101),
        "limit",
        "integer_above_max_value",
        "Invalid 'limit': integer above maximum value. Expected a value <= 100, but got 101 instead.",
    ),
    (
        "events limit not a number",
        lambda c, ids: c.fine_tuning.jobs.list_events(ids["job"], limit=1.5),  # type: ignore[arg-type]
        "limit",
        "invalid_type",
        "Invalid 'limit': expected an integer, but got '1.5' instead.",
    ),
    (
        "checkpoints limit below 1",
        lambda c, ids: c.fine_tuning.jobs.checkpoints.list(ids["job"], limit=-5),
        "limit",
        "integer_below_min_value",
        "Invalid 'limit': integer below minimum value. Expected a value >= 1, but got -5 instead.",
    ),
]


@pytest.mark.parametrize(("case", "call", "param", "code", "message"), ROWS, ids=[r[0] for r in ROWS])
def test_wrong_value_message(
    client: openai.OpenAI, ids: dict[str, str], case: str, call: Call, param: str, code: str | None, message: str
) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        call(client, ids)
    error = e.value
    assert error.status_code == 400 and error.type == "invalid_request_error", case
    body = error.body
    assert isinstance(body, dict)
    assert (body["message"], error.param, error.code) == (message, param, code)
    assert message in error.message  # the SDK's str(error) carries it too


CKPT = "ft:hone-tiny:acme::abc123:ckpt-step-1"  # request validation answers before any lookup
ADMIN_ROWS: list[tuple[str, Callable[[Any], Any], str | None, str | None, str]] = [
    (
        "project name not a string",
        lambda o: o.admin.organization.projects.create(name=5),
        "name",
        "invalid_type",
        "Invalid type for 'name': expected a string, but got an integer instead.",
    ),
    (
        "project without a name",
        lambda o: o.admin.organization.projects.create(extra_body={"external_key_id": None}, name=NotGiven()),
        "name",
        "missing_required_parameter",
        "Missing required parameter: 'name'.",
    ),
    (
        "projects limit below 1",
        lambda o: o.admin.organization.projects.list(limit=0),
        "limit",
        "integer_below_min_value",
        "Invalid 'limit': integer below minimum value. Expected a value >= 1, but got 0 instead.",
    ),
    (
        "projects include_archived not a boolean",
        lambda o: o.admin.organization.projects.list(include_archived="maybe"),
        "include_archived",
        "invalid_type",
        "Invalid 'include_archived': expected a boolean, but got 'maybe' instead.",
    ),
    # ---- checkpoint permissions
    (
        "permission project_ids not an array",
        lambda o: o.fine_tuning.checkpoints.permissions.create(CKPT, project_ids="proj_x"),
        "project_ids",
        "invalid_type",
        "Invalid type for 'project_ids': expected an array, but got a string instead.",
    ),
    (
        "permission project id not a string",
        lambda o: o.fine_tuning.checkpoints.permissions.create(CKPT, project_ids=[5]),
        "project_ids[0]",
        "invalid_type",
        "Invalid type for 'project_ids[0]': expected a string, but got an integer instead.",
    ),
    (
        "permissions order unknown",
        lambda o: o.fine_tuning.checkpoints.permissions.list(CKPT, order="sideways"),
        "order",
        "invalid_value",
        "Invalid value for 'order': 'sideways'. Supported values are: 'ascending' and 'descending'.",
    ),
    (
        "permissions limit not a number",
        lambda o: o.fine_tuning.checkpoints.permissions.list(CKPT, limit="many"),
        "limit",
        "invalid_type",
        "Invalid 'limit': expected an integer, but got 'many' instead.",
    ),
]


@pytest.fixture(scope="module")
def admin(server: RunningServer, spec_checker: SpecChecker) -> Iterator[openai.OpenAI]:
    http = httpx.Client(event_hooks={"response": [spec_checker.hook]}, timeout=60)
    key = server.new_admin_key()  # checkpoint permissions take it as the bearer key, admin calls as admin_api_key
    with openai.OpenAI(base_url=server.v1, api_key=key, admin_api_key=key, max_retries=0, http_client=http) as c:
        yield c


@pytest.mark.parametrize(("case", "call", "param", "code", "message"), ADMIN_ROWS, ids=[r[0] for r in ADMIN_ROWS])
def test_admin_wrong_value_message(
    admin: openai.OpenAI, case: str, call: Callable[[Any], Any], param: str, code: str | None, message: str
) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        call(admin)
    body = e.value.body
    assert isinstance(body, dict) and e.value.status_code == 400, case
    assert (body["message"], e.value.param, e.value.code) == (message, param, code)


def test_a_wrong_request_stores_nothing(client: openai.OpenAI, ids: dict[str, str]) -> None:
    before = [j.id for j in client.fine_tuning.jobs.list(limit=100)]
    for _, call, _, _, _ in ROWS:
        with pytest.raises(openai.BadRequestError):
            call(client, ids)
    assert [j.id for j in client.fine_tuning.jobs.list(limit=100)] == before


def test_node_sdk_carries_the_message_param_and_code(server: RunningServer, tmp_path: Path) -> None:
    results = run_node("param_errors.mjs", tmp_path, base_url=server.v1, api_key=server.new_key("node-params"))
    assert results["checked"] == 5


@pytest.mark.parametrize(
    ("call", "param", "message"),
    [
        (lambda c: c.files.retrieve("file-nope"), "id", "No such File object: file-nope"),
        (lambda c: c.files.delete("file-" + "x" * 300), "id", "No such File object: file-" + "x" * 120 + "..."),
        (
            lambda c: c.fine_tuning.jobs.retrieve("ftjob-nope"),
            "fine_tuning_job_id",
            "Fine-tuning job ftjob-nope not found.",
        ),
        (
            lambda c: c.fine_tuning.jobs.list_events("ftjob-nope", limit=0),
            "fine_tuning_job_id",
            "Fine-tuning job ftjob-nope not found.",
        ),
    ],
)
def test_path_parameters_name_the_id(
    client: openai.OpenAI, call: Callable[[Any], Any], param: str, message: str
) -> None:
    """Path parameters are plain strings (nothing to mistype); an id that names nothing is a 404
    whose param names the path parameter, and whose message repeats the id (cut when long)."""
    with pytest.raises(openai.NotFoundError) as e:
        call(client)
    body = e.value.body
    assert isinstance(body, dict) and (body["message"], e.value.param) == (message, param)
