"""QLoRA and full fine-tuning need a CUDA GPU: these run the whole path (SDK -> control plane
-> local launcher -> trainer on the GPU) and skip where there is no GPU."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import openai
import pytest
import torch

from service.launcher.local import LocalLauncher
from tests.harness.jobs import upload, wait_status
from tests.harness.server import start_server
from tests.integration import tuning

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def _train(tmp_path: Path, catalog, hp: dict) -> tuple[object, Path]:  # type: ignore[no-untyped-def,type-arg]
    srv = start_server(tmp_path, catalog, launcher=LocalLauncher(tmp_path / "runs"), trainer_accelerator="cuda")
    try:
        client = openai.OpenAI(base_url=srv.base_url + "/v1", api_key=srv.new_key("gpu"), max_retries=0)
        file_id = upload(client, tuning.memorisation_rows())
        job = client.fine_tuning.jobs.create(
            model="hone-tiny",
            training_file=file_id,
            seed=1,
            method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 15, "batch_size": 2, **hp}}},
        )
        job = wait_status(client, job.id)
        log = (tmp_path / "runs" / job.id / "attempt-1" / "trainer.log").read_text()
        assert job.status == "succeeded", (job.error, log[-3000:])
        steps = tuning.metrics(client, job.id)
        assert steps[-1]["train_loss"] < steps[0]["train_loss"] / 5
        return job, tmp_path / "blobs" / "jobs" / job.id / "final"
    finally:
        srv.stop()


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="needs bitsandbytes")
def test_qlora_on_gpu(tmp_path: Path, catalog, tiny_model_dir: Path) -> None:  # type: ignore[no-untyped-def]
    _, final = _train(tmp_path, catalog, {"training_type": "qlora", "learning_rate_multiplier": 5})
    assert (final / "adapter_model.safetensors").exists()
    tok, tuned = tuning.load(tiny_model_dir, final)
    assert tuning.answer(tok, tuned, tuning.PAIRS[0][0]) == tuning.PAIRS[0][1]


def test_full_fine_tuning_on_gpu(tmp_path: Path, catalog, tiny_model_dir: Path) -> None:  # type: ignore[no-untyped-def]
    _, final = _train(tmp_path, catalog, {"training_type": "full", "learning_rate_multiplier": 50})
    assert (final / "model.safetensors").exists() and (final / "config.json").exists()
    assert not list(final.glob("*.bin"))
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(final, dtype=torch.float32).eval()
    assert tuning.answer(tok, model, tuning.PAIRS[0][0]) == tuning.PAIRS[0][1]
