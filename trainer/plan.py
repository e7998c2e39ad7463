"""The memory plan: before the model is loaded, from the base model's config, the training type,
the device's memory and the data's lengths, pick the tokens per packed micro-batch and whether
to checkpoint activations, and estimate the peak. A job that cannot fit fails here, at once,
with ``DoesNotFit`` (no attempt is retried for it), instead of dying of an out-of-memory error
three times.

The estimate is deliberately simple and on the safe side; ``bench/train.py`` prints it beside
the measured peak. Terms, in bytes:

- weights: every parameter in the training dtype (QLoRA: 4-bit base, ~0.56 byte a parameter);
- trainable state: gradient + AdamW's two moments per trainable parameter (LoRA: its A and B);
  full fine-tuning on several ranks shards weights and state (FSDP2), LoRA keeps a whole base
  per rank;
- activations, per token and layer: the tensors a decoder layer keeps for its backward pass
  (~12 x hidden + 4 x intermediate values, plus the inputs LoRA's dropout copies); with
  checkpointing only each layer's input is kept, and one layer's activations exist at a time;
- attention: without a variable-length kernel (SDPA with a packed row's block mask) the
  T x T mask and one layer's scores;
- the loss: three chunk-sized fp32 buffers (``trainer.losses.chunk_tokens``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.hyperparameters import Hyperparameters
from trainer.losses import chunk_tokens

GiB = 1 << 30
HEADROOM = 0.9  # of the device's memory the plan may use (allocator fragmentation, buffers)
RUNTIME_OVERHEAD = {"cuda": 1.0 * GiB, "cpu": 0.6 * GiB}  # CUDA context / the Python process
MAX_TOKENS = {"flash": 16384, "sdpa": 2048}  # per packed row, by attention kernel (docs/benchmarks.md)
MIN_TOKENS = 256
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class DoesNotFit(ValueError):
    """The job needs more memory than the device has, at any micro-batch size the data allows."""


@dataclass(frozen=True)
class Shape:
    """What the estimate needs from a Hugging Face ``config.json``."""

    hidden: int
    layers: int
    intermediate: int
    vocab: int
    heads: int
    kv_heads: int
    head_dim: int
    tied: bool

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Shape:
        text = config.get("text_config") or config
        hidden, heads = int(text["hidden_size"]), int(text["num_attention_heads"])
        return cls(
            hidden=hidden,
            layers=int(text["num_hidden_layers"]),
            intermediate=int(text.get("intermediate_size") or 4 * hidden),
            vocab=int(text["vocab_size"]),
            heads=heads,
            kv_heads=int(text.get("num_key_value_heads") or heads),
            head_dim=int(text.get("head_dim") or hidden // heads),
            tied=bool(config.get("tie_word_embeddings", text.get("tie_word_embeddings", False))),
        )

    @classmethod
    def from_source(cls, source: str) -> Shape:
        """From a model directory (or anything ``AutoConfig`` loads), before any weight is read."""
        local = Path(source) / "config.json"
        if local.is_file():
            return cls.from_config(json.loads(local.read_text()))
        from transformers import AutoConfig

        return cls.from_config(AutoConfig.from_pretrained(source).to_dict())

    def projection_dims(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each linear layer of one decoder layer."""
        h, q, kv, i = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim, self.intermediate
        return {
            "q_proj": (h, q),
            "k_proj": (h, kv),
            "v_proj": (h, kv),
            "o_proj": (q, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }

    @property
    def parameters(self) -> int:
        per_layer = sum(a * b for a, b in self.projection_dims().values()) + 2 * self.hidden
        return self.layers * per_layer + self.vocab * self.hidden * (1 if self.tied else 2) + self.hidden

    def targeted(self, hp: Hyperparameters) -> dict[str, tuple[int, int]]:
        dims = self.projection_dims()
        if hp.target_modules == "all-linear":
            return dims
        names = [hp.target_modules] if isinstance(hp.target_modules, str) else hp.target_modules
        return {n: d for n, d in dims.items() if n in names}


@dataclass(frozen=True)
class Device:
    kind: str  # "cuda" or "cpu"
    count: int  # processes (one device each) in the run
    memory: int  # bytes one process may use
    dtype_bytes: int  # 2 for bf16 on CUDA, 4 for fp32 on the CPU
    varlen_attention: bool  # a kernel that attends within each packed example without a T x T mask

    @property
    def label(self) -> str:
        return f"{self.count} x {self.memory / GiB:.0f} GiB {self.kind}"


@dataclass(frozen=True)
class Plan:
    shape: Shape
    device: Device
    training_type: str
    tokens_per_micro_batch: int
    gradient_checkpointing: bool
    estimated_peak: int
    sharded: bool = False  # FSDP2 over the ranks (trainer/distributed.py)

    def message(self) -> str:
        """One line for the job's events."""
        size = _size(self.shape.parameters)
        dtype = {2: "bf16", 4: "fp32"}[self.device.dtype_bytes]
        return (
            f"plan: {size} {self.training_type_label} {dtype} on {self.device.label}"
            f"{', sharded (FSDP2)' if self.sharded else ''}, "
            f"{self.tokens_per_micro_batch:,} tokens/micro-batch, "
            f"checkpointing {'on' if self.gradient_checkpointing else 'off'}, "
            f"estimated peak {self.estimated_peak / GiB:.1f} GiB"
        )

    @property
    def training_type_label(self) -> str:
        return {"lora": "LoRA", "qlora": "QLoRA", "full": "full"}[self.training_type]


def estimate(
    shape: Shape, hp: Hyperparameters, device: Device, tokens: int, checkpointing: bool, sharded: bool = False
) -> int:
    """Peak bytes of one training step of ``tokens`` tokens per micro-batch on one device."""
    b = device.dtype_bytes
    params = shape.parameters
    if hp.training_type == "full":
        weights, trainable = params * b, params
        dropout_copies = 0
    else:
        targeted = shape.targeted(hp)
        trainable = shape.layers * sum(hp.lora_rank * (i + o) for i, o in targeted.values())
        weights = int(params * (0.5625 if hp.training_type == "qlora" else b)) + trainable * b
        dropout_copies = sum(i for i, _ in targeted.values()) if hp.lora_dropout > 0 else 0
    # gradients and the two AdamW moments
    state = trainable * b * 3
    if sharded:
        # FSDP2 (trainer/distributed.py) shards weights, gradients and state over the ranks; a
        # layer is gathered whole while it runs, and the next one is prefetched
        layer = sum(i * o for i, o in shape.projection_dims().values()) * b
        weights, state = weights // device.count + 2 * layer, state // device.count
    per_token_layer = (12 * shape.hidden + 4 * shape.intermediate + dropout_copies) * b
    attention = 0 if device.varlen_attention else tokens * tokens * (1 + 4 * shape.heads)  # mask + scores
    if checkpointing:
        activations = shape.layers * tokens * shape.hidden * b + 2 * (tokens * per_token_layer + attention)
    else:
        activations = shape.layers * (tokens * per_token_layer + attention)
    loss = 3 * chunk_tokens(shape.vocab) * shape.vocab * 4 + tokens * shape.hidden * 4
    return int(weights + state + activations + loss + RUNTIME_OVERHEAD[device.kind])


def make_plan(shape: Shape, hp: Hyperparameters, device: Device, longest_example: int) -> Plan:
    """The largest micro-batch that fits, without checkpointing if that fits at the kernel's
    full row length, else with it; on several ranks, full fine-tuning always sharded and LoRA
    sharded only when a whole base per rank does not fit; ``DoesNotFit`` if nothing does."""
    budget = int(device.memory * HEADROOM)
    cap = hp.max_tokens_per_micro_batch or MAX_TOKENS["flash" if device.varlen_attention else "sdpa"]
    sizes = [cap] if hp.max_tokens_per_micro_batch else _halvings(cap)
    choices = [False, True] if hp.gradient_checkpointing is None else [hp.gradient_checkpointing]
    for sharded in _sharding(hp, device):
        for checkpointing in choices:
            # without checkpointing only the full row length counts: shorter rows would trade the
            # same memory for more passes, and checkpointing trades it for a third more compute
            for tokens in sizes if checkpointing or len(choices) == 1 else sizes[:1]:
                peak = estimate(shape, hp, device, _row(tokens, longest_example, hp), checkpointing, sharded)
                if peak <= budget:
                    return Plan(shape, device, hp.training_type, tokens, checkpointing, peak, sharded)
    smallest = _row(sizes[-1], longest_example, hp)
    need = estimate(shape, hp, device, smallest, choices[-1], _sharding(hp, device)[-1])
    raise DoesNotFit(
        f"{_size(shape.parameters)} {hp.training_type} fine-tuning needs about {need / GiB:.1f} GiB per device "
        f"even at {smallest:,} tokens per micro-batch (the longest example is {longest_example:,} tokens)"
        f"{'' if choices[-1] else ' without gradient checkpointing'}, "
        f"but {device.label} allows {budget / GiB:.1f} GiB; use a machine with more memory, "
        f"{'QLoRA or LoRA' if hp.training_type == 'full' else 'a smaller base model'}, or shorter examples"
    )


def _row(tokens: int, longest_example: int, hp: Hyperparameters) -> int:
    """The longest packed row a step can build: at most ``tokens`` (an example longer than that
    goes alone), and never more than a whole batch of the longest example."""
    row = max(tokens, longest_example)
    batch = hp.batch_size if isinstance(hp.batch_size, int) else None
    return min(row, batch * longest_example) if batch else row


def _sharding(hp: Hyperparameters, device: Device) -> list[bool]:
    """Whether to shard, in the order to try. QLoRA's 4-bit weights are not sharded."""
    if device.count == 1 or hp.training_type == "qlora":
        return [False]
    return [True] if hp.training_type == "full" else [False, True]


def _halvings(cap: int) -> list[int]:
    sizes = [cap]
    while sizes[-1] // 2 >= MIN_TOKENS:
        sizes.append(sizes[-1] // 2)
    return sizes


def _size(n: int) -> str:
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"


def device_memory(kind: str, index: int = 0) -> int:
    """Bytes one process may use: the GPU's total memory, or on the CPU what the machine (or the
    container's cgroup limit, whichever is lower) has available."""
    if kind == "cuda":
        import torch

        return int(torch.cuda.get_device_properties(index).total_memory)
    available = _meminfo("MemAvailable")
    limit = _cgroup_limit()
    return min(available, limit) if limit else available


def _meminfo(field: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _cgroup_limit() -> int | None:
    for path, usage in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            raw = Path(path).read_text().strip()
        except OSError:
            continue
        if raw == "max" or int(raw) >= 1 << 60:
            return None
        used = int(Path(usage).read_text().strip()) if Path(usage).exists() else 0
        return max(0, int(raw) - used)
    return None
