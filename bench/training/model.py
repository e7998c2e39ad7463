"""The model under test: ``--shape tiny`` is hone's tiny test model (``build_tiny_model``), loaded
as the trainer loads it; ``--shape 135m`` is SmolLM2-135M-Instruct when it is on disk
(``--model-dir``, or ``$HONE_DATA_DIR/models/smollm2-135m-instruct``, default ``~/.hone``), loaded
as the trainer loads it with its own tokenizer, else a random-init Llama of its shape; the other
shapes are random-init Llama models of that shape built directly on the device (no downloads).
The base is handed to ``trainer.model.make_trainable`` with the recipe's defaults (LoRA r=16,
alpha 32, dropout 0.05, all-linear; or ``--training-type qlora|full``) once the memory plan has
said whether to checkpoint activations. The random-init shapes keep their real vocabulary size
(so the LM head and loss cost what they cost) and take their text from the tiny tokenizer, whose
ids (< 3000) are all valid there, so nothing is clamped."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from contract.hyperparameters import SupervisedHyperparameters
from service.catalog.tiny import build_tiny_model
from trainer.model import load_base, load_tokenizer
from trainer.plan import Device, Plan, Shape, device_memory, make_plan

GiB = 1 << 30
REAL_135M = "smollm2-135m-instruct"  # the catalog's name for SmolLM2-135M-Instruct under data_dir/models

# Random-init Llama shapes. 135m follows SmolLM2-135M, 0.5b and 1.5b Qwen2.5 (all three with
# tied embeddings), 8b Llama 3.1.
SHAPES: dict[str, dict[str, Any]] = {
    "135m": dict(
        hidden_size=576,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        intermediate_size=1536,
        vocab_size=49152,
        tie_word_embeddings=True,
        rope_theta=1e5,
    ),
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


def hyperparameters(
    training_type: str = "lora", max_tokens: int | None = None, checkpointing: bool | None = None
) -> SupervisedHyperparameters:
    """The recipe's defaults (LoRA r=16, alpha 32, dropout 0.05, all-linear); ``max_tokens`` and
    ``checkpointing`` None let the memory plan pick, as in the trainer."""
    return SupervisedHyperparameters(
        batch_size=8,
        n_epochs=1,
        training_type=training_type,
        max_tokens_per_micro_batch=max_tokens,
        gradient_checkpointing=checkpointing,
    )


def llama_config(shape: str) -> Any:
    from transformers import LlamaConfig

    arch = SHAPES[shape]
    return LlamaConfig(
        **arch,
        head_dim=arch["hidden_size"] // arch["num_attention_heads"],
        max_position_embeddings=4096,
        rms_norm_eps=1e-6 if shape != "135m" else 1e-5,
        bos_token_id=0,
        eos_token_id=2,
        pad_token_id=0,
        use_cache=False,
    )


def random_base(shape: str, device: torch.device, dtype: torch.dtype, attention: str) -> torch.nn.Module:
    """A random-init Llama of ``shape``, built directly on ``device``."""
    from transformers import AutoModelForCausalLM

    with torch.device(device):
        return AutoModelForCausalLM.from_config(llama_config(shape), dtype=dtype, attn_implementation=attention)


def real_model_dir(shape: str, model_dir: Path | None) -> Path | None:
    """The real checkpoint to load for ``shape``: ``--model-dir``, or for 135m the catalog's
    SmolLM2-135M-Instruct when it has been built into the data dir; None: random init."""
    if model_dir is not None:
        if not (model_dir / "config.json").is_file():
            raise FileNotFoundError(f"--model-dir {model_dir}: no config.json there")
        return model_dir
    if shape == "135m":
        built = Path(os.environ.get("HONE_DATA_DIR") or Path.home() / ".hone") / "models" / REAL_135M
        if (built / "config.json").is_file():
            return built
    return None


@dataclass
class Base:
    """The frozen base before it is made trainable, with what was loaded."""

    model: torch.nn.Module
    tokenizer: Any
    source: str  # "tiny", "random-init <shape>" or the checkpoint's directory


def load(
    shape: str,
    device: torch.device,
    seed: int,
    workdir: Path,
    hp: SupervisedHyperparameters,
    model_dir: Path | None = None,
) -> Base:
    """The base model in the dtype and attention kernel ``trainer.model.load_base`` picks on
    ``device`` (QLoRA: 4-bit, a random-init shape saved to ``workdir`` and loaded back)."""
    tiny = str(build_tiny_model(workdir / "tiny"))
    real = real_model_dir(shape, model_dir)
    if real is not None:
        torch.manual_seed(seed)
        return Base(load_base(str(real), hp, device), load_tokenizer(str(real)), str(real))
    tok = load_tokenizer(tiny)
    if shape == "tiny":
        torch.manual_seed(seed)
        return Base(load_base(tiny, hp, device), tok, "tiny")
    # the dtype and attention kernel the trainer's loader picks for this device
    reference = load_base(tiny, hyperparameters(), device)
    dtype, attention = reference.dtype, reference.config._attn_implementation
    del reference
    torch.manual_seed(seed)
    if hp.training_type == "qlora":  # 4-bit needs from_pretrained: write the random weights once
        saved = workdir / shape
        random_base(shape, torch.device("cpu"), dtype, attention).save_pretrained(str(saved))
        return Base(load_base(str(saved), hp, device), tok, f"random-init {shape}")
    return Base(random_base(shape, device, dtype, attention), tok, f"random-init {shape}")


def plan(
    base: torch.nn.Module, hp: SupervisedHyperparameters, device: torch.device, memory_gib: float | None, longest: int
) -> Plan:
    """The trainer's memory plan for this base and data (``trainer.plan.make_plan``), on a device
    of ``memory_gib`` (default: what ``trainer.plan.device_memory`` finds, as the trainer does)."""
    memory = int(memory_gib * GiB) if memory_gib else device_memory(device.type, device.index or 0)
    dev = Device(
        kind=device.type,
        count=1,
        memory=memory,
        dtype_bytes=2 if device.type == "cuda" else 4,
        varlen_attention=base.config._attn_implementation == "flash_attention_2",
    )
    return make_plan(Shape.from_config(base.config.to_dict()), hp, dev, longest)


def matmul_params(model: torch.nn.Module) -> int:
    """Weights of every Linear (base projections, LM head, LoRA A/B): the 6N of the MFU estimate.
    The input embedding (a lookup) is left out; a tied LM head counts once, as the head."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
