"""client.models through the SDK (fine-tuned models: test_lifecycle.py)."""

from __future__ import annotations

import openai
import pytest


def test_list_and_retrieve_base(client: openai.OpenAI) -> None:
    models = client.models.list()
    base = {m.id: m for m in models.data}["hone-tiny"]
    assert (base.object, base.owned_by, base.created) == ("model", "system", 1700000000)
    assert "/" not in base.id
    assert client.models.retrieve("hone-tiny").model_dump() == base.model_dump()


def test_unknown_models_are_404(client: openai.OpenAI) -> None:
    for name in ("gpt-4o", "ft:hone-tiny:acme::AbCdEfGh", "ft:hone-tiny:acme::AbCdEfGh:ckpt-step-1", "a/b"):
        with pytest.raises(openai.NotFoundError) as e:
            client.models.retrieve(name)
        assert e.value.code == "model_not_found" and name in e.value.message
        with pytest.raises(openai.NotFoundError):
            client.models.delete(name)


def test_base_model_cannot_be_deleted(client: openai.OpenAI) -> None:
    with pytest.raises(openai.PermissionDeniedError) as e:
        client.models.delete("hone-tiny")
    assert "base model" in e.value.message
    assert client.models.retrieve("hone-tiny").id == "hone-tiny"


@pytest.mark.anyio
async def test_async_models(async_client: openai.AsyncOpenAI) -> None:
    assert "hone-tiny" in [m.id async for m in async_client.models.list()]
    assert (await async_client.models.retrieve("hone-tiny")).id == "hone-tiny"
