"""The model under test: ``--shape tiny`` is hone's tiny test model (``build_tiny_model``), loaded
as the trainer loads it; the other shapes are random-init Llama models of that shape built
directly on the device (no downloads). Either base is handed to ``trainer.model.make_trainable``
with the recipe's LoRA defaults. The random-init shapes keep their real vocabulary size (so
the LM head and loss cost what they cost) and take their text from the tiny tokenizer, whose
ids (< 3000) are all valid there, so nothing is clamped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from contract.hyperparameters import SupervisedHyperparameters
from service.catalog.tiny import build_tiny_model
from trainer.model import load_base, load_tokenizer, make_trainable

# Random-init Llama shapes. 0.5b and 1.5b follow Qwen2.5 (tied embeddings), 8b Llama 3.1.
SHAPES: dict[str, dict[str, Any]] = {
    "0.5b": dict(
        hidden_size=896,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        intermediate_size=4864,
        vocab_size=151936,
        tie_word_embeddings=True,
        rope_theta=1e6,
    ),
    "1.5b": dict(
        hidden_size=1536,
        num_hidden_layers=28,
        num_attention_heads=12,
        num_key_value_heads=2,
        intermediate_size=8960,
        vocab_size=151936,
        tie_word_embeddings=True,
        rope_theta=1e6,
    ),
    "8b": dict(
        hidden_size=4096,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        intermediate_size=14336,
        vocab_size=128256,
        tie_word_embeddings=False,
        rope_theta=5e5,
    ),
}


def hyperparameters() -> SupervisedHyperparameters:
    """The recipe's defaults (LoRA r=16, alpha 32, dropout 0.05, all-linear)."""
    return SupervisedHyperparameters(batch_size=8, n_epochs=1)


def random_base(shape: str, device: torch.device, dtype: torch.dtype, attention: str) -> torch.nn.Module:
    """A random-init Llama of ``shape``, built directly on ``device``."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    arch = SHAPES[shape]
    cfg = LlamaConfig(
        **arch,
        head_dim=arch["hidden_size"] // arch["num_attention_heads"],
        max_position_embeddings=4096,
        rms_norm_eps=1e-6,
        bos_token_id=0,
        eos_token_id=2,
        pad_token_id=0,
        use_cache=False,
    )
    with torch.device(device):
        return AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation=attention)


def build(
    shape: str, device: torch.device, seed: int, workdir: Path
) -> tuple[torch.nn.Module, Any, SupervisedHyperparameters]:
    """(the trainable model, the tiny tokenizer, the hyperparameters)."""
    tiny = str(build_tiny_model(workdir / "tiny"))
    tok = load_tokenizer(tiny)
    hp = hyperparameters()
    if shape == "tiny":
        torch.manual_seed(seed)
        base = load_base(tiny, hp, device)
    else:
        # the dtype and attention kernel the trainer's loader picks for this device
        reference = load_base(tiny, hp, device)
        dtype, attention = reference.dtype, reference.config._attn_implementation
        del reference
        torch.manual_seed(seed)
        base = random_base(shape, device, dtype, attention)
    return make_trainable(base, hp, device, None), tok, hp


def matmul_params(model: torch.nn.Module) -> int:
    """Weights of every Linear (base projections, LM head, LoRA A/B): the 6N of the MFU estimate.
    The input embedding (a lookup) is left out; a tied LM head counts once, as the head."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
