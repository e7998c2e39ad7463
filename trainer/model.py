"""Loading the base model and making it trainable: LoRA (default), QLoRA (4-bit base, CUDA
only) or full fine-tuning. The hyperparameters (and their defaults) are the method's typed
model from ``contract.hyperparameters``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from contract.hyperparameters import Hyperparameters
from trainer import distributed

BASE_LEARNING_RATE = {"lora": 2e-4, "qlora": 2e-4, "full": 2e-5}


def attention_kernel(device: torch.device) -> str:
    if device.type == "cuda":
        import importlib.util

        if importlib.util.find_spec("flash_attn") is not None:
            return "flash_attention_2"  # varlen attention straight from position_ids, no mask
    return "sdpa"


def training_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


MMAP_THRESHOLD = 1 << 20  # buffers from 1 MiB up get their own mapping, returned to the OS when freed


def limit_heap_growth() -> bool:
    """On the CPU, stop glibc from keeping freed activation buffers in its heap.

    glibc raises its mmap threshold (up to 32 MiB) each time a mapped buffer is freed, so the
    1-32 MiB tensors of a backward pass (a 2,000 x 896 fp32 activation is 7 MiB) end up in the
    heap, which fragments and does not shrink: measured on the 0.5B shape with gradient
    checkpointing, each decoder layer added 0.14 GiB to the step's peak RSS, of which 0.01 GiB
    was live (``MALLOC_MMAP_THRESHOLD_`` fixed at 1 MiB, which this sets through ``mallopt``;
    a fixed threshold also switches the dynamic one off). Returns whether it was applied."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(-3, MMAP_THRESHOLD))  # -3: M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc
        return False


def pick_device() -> torch.device:
    if torch.cuda.is_available():
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def load_tokenizer(source: str) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(source)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_base(source: str, hp: Hyperparameters, device: torch.device) -> torch.nn.Module:
    """The base model from ``source`` in the dtype and attention kernel for ``device`` (4-bit for
    QLoRA)."""
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": training_dtype(device), "attn_implementation": attention_kernel(device)}
    if hp.training_type == "qlora":
        if device.type != "cuda":
            raise ValueError("QLoRA needs a CUDA GPU (bitsandbytes 4-bit)")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        kwargs["device_map"] = {"": device}
    return AutoModelForCausalLM.from_pretrained(source, **kwargs)


def make_trainable(
    model: torch.nn.Module,
    hp: Hyperparameters,
    device: torch.device,
    init_adapter: Path | None,
    checkpointing: bool = False,
) -> torch.nn.Module:
    """LoRA (a fresh adapter, or ``init_adapter`` trained further) or the whole model, with
    activation checkpointing when the memory plan asks for it."""
    model.config.use_cache = False  # type: ignore[union-attr]
    if checkpointing:  # non-reentrant: no need for inputs that require grad, RNG state preserved
        model.gradient_checkpointing_enable(  # type: ignore[operator]
            gradient_checkpointing_kwargs={"use_reentrant": False}
        )
    if hp.training_type == "full":
        return model.to(device)

    from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training

    if hp.training_type == "qlora":
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    if init_adapter is not None:
        peft_model = PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)
    else:
        peft_model = get_peft_model(
            model,
            LoraConfig(
                r=hp.lora_rank,
                lora_alpha=hp.lora_alpha,  # type: ignore[arg-type]  # peft annotates int; alpha / r is a float anyway
                lora_dropout=hp.lora_dropout,
                target_modules=hp.target_modules,
                bias="none",
                task_type="CAUSAL_LM",
            ),
        )
    return peft_model.to(device)


def load_trainable(
    source: str, hp: Hyperparameters, device: torch.device, init_adapter: Path | None, checkpointing: bool = False
) -> torch.nn.Module:
    if hp.training_type == "full" and init_adapter is not None and (init_adapter / "config.json").exists():
        source = str(init_adapter)  # continued full fine-tuning starts from the tuned weights
    return make_trainable(load_base(source, hp, device), hp, device, init_adapter, checkpointing)


def save_weights(model: torch.nn.Module, out: Path, state: dict[str, torch.Tensor] | None = None) -> None:
    """PEFT adapter files, or full weights, as safetensors only; ``state``: the gathered weights
    of a sharded model."""
    model.save_pretrained(str(out), safe_serialization=True, state_dict=state)  # type: ignore[operator]
    for stray in out.iterdir():  # PEFT also writes a README model card and, on old versions, .bin
        if stray.suffix not in (".safetensors", ".json"):
            stray.unlink()


def load_weights(model: torch.nn.Module, ckpt: Path) -> None:
    """A checkpoint's adapter or full weights into ``model`` (under DDP, into the wrapped model:
    DDP's own state dict names every tensor ``module.*`` and would match nothing)."""
    from safetensors.torch import load_file

    model = getattr(model, "module", model)
    adapter = ckpt / "adapter_model.safetensors"
    if adapter.exists():
        from peft import set_peft_model_state_dict

        result: Any = set_peft_model_state_dict(model, load_file(str(adapter)))  # torch's _IncompatibleKeys
        if result.unexpected_keys:  # an adapter that matches nothing would otherwise load silently
            raise ValueError(f"checkpoint adapter has tensors the model lacks: {result.unexpected_keys[:5]}")
        return
    state = {}
    for shard in sorted(ckpt.glob("model*.safetensors")):
        state.update(load_file(str(shard)))
    unexpected = sorted(set(state) - set(model.state_dict()))
    if unexpected:
        raise ValueError(f"checkpoint has unexpected tensors: {unexpected[:5]}")
    if distributed.is_sharded(model):
        distributed.load_full_state_dict(model, state)
    else:
        model.load_state_dict(state, strict=False)
