"""Build hone's tiny test model: a random-init Llama causal LM in Hugging Face format.

No network and no torch: the byte-level BPE tokenizer is trained locally with `tokenizers`
on ``tiny_corpus.txt``, the weights are drawn with numpy and written with
``safetensors.numpy``, and the ChatML chat template is read from ``chatml.jinja``.
The same seed gives byte-identical files.

    >>> build_tiny_model("/tmp/tiny")  # doctest: +SKIP
    PosixPath('/tmp/tiny')
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

__all__ = ["build_tiny_model", "ARCH", "IM_START", "IM_END", "ENDOFTEXT"]

_HERE = Path(__file__).resolve().parent
CORPUS_PATH = _HERE / "tiny_corpus.txt"
CHAT_TEMPLATE_PATH = _HERE / "chatml.jinja"

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
ENDOFTEXT = "<|endoftext|>"
SPECIAL_TOKENS = [ENDOFTEXT, IM_START, IM_END]  # ids 0, 1, 2

# Architecture; vocab_size comes from the trained tokenizer.
ARCH: dict[str, Any] = {
    "hidden_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "intermediate_size": 512,
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
}
TARGET_VOCAB_SIZE = 3000
INIT_STD = 0.02
# The LM head is drawn wider (1/sqrt(hidden)): with N(0, 0.02) and a frozen head, the largest
# logit a LoRA adapter can reach is about 5, too flat for the memorisation tests to drive the
# loss down; at 1/sqrt(256) it is about 16.
LM_HEAD_STD = 1.0 / 16.0


def _train_tokenizer() -> Tokenizer:
    """Train a byte-level BPE on the bundled corpus (deterministic for a fixed corpus)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=TARGET_VOCAB_SIZE,
        min_frequency=1,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = CORPUS_PATH.read_text(encoding="utf-8").splitlines()
    tok.train_from_iterator(lines, trainer=trainer)
    return tok


def _weights(vocab_size: int, seed: int) -> dict[str, np.ndarray]:
    """Llama weights named as transformers' LlamaForCausalLM expects: N(0, 0.02) (the head
    N(0, 1/16)), norms = 1."""
    rng = np.random.Generator(np.random.PCG64(seed))
    h, inter = ARCH["hidden_size"], ARCH["intermediate_size"]
    q_dim = ARCH["num_attention_heads"] * ARCH["head_dim"]
    kv_dim = ARCH["num_key_value_heads"] * ARCH["head_dim"]

    def normal(*shape: int, std: float = INIT_STD) -> np.ndarray:
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(std)

    def ones(n: int) -> np.ndarray:
        return np.ones((n,), dtype=np.float32)

    w: dict[str, np.ndarray] = {"model.embed_tokens.weight": normal(vocab_size, h)}
    for i in range(ARCH["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w[p + "self_attn.q_proj.weight"] = normal(q_dim, h)
        w[p + "self_attn.k_proj.weight"] = normal(kv_dim, h)
        w[p + "self_attn.v_proj.weight"] = normal(kv_dim, h)
        w[p + "self_attn.o_proj.weight"] = normal(h, q_dim)
        w[p + "mlp.gate_proj.weight"] = normal(inter, h)
        w[p + "mlp.up_proj.weight"] = normal(inter, h)
        w[p + "mlp.down_proj.weight"] = normal(h, inter)
        w[p + "input_layernorm.weight"] = ones(h)
        w[p + "post_attention_layernorm.weight"] = ones(h)
    w["model.norm.weight"] = ones(h)
    w["lm_head.weight"] = normal(vocab_size, h, std=LM_HEAD_STD)
    return w


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def build_tiny_model(out_dir: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """Write the tiny model (config, safetensors weights, tokenizer, chat template) to ``out_dir``.

    Returns the output directory. Overwrites the files it writes; leaves other files alone.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    tok = _train_tokenizer()
    vocab_size = tok.get_vocab_size(with_added_tokens=True)
    ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
    tok.save(str(out / "tokenizer.json"), pretty=True)

    special = {"bos_token": ENDOFTEXT, "eos_token": IM_END, "pad_token": ENDOFTEXT}
    _write_json(out / "special_tokens_map.json", special)
    _write_json(
        out / "tokenizer_config.json",
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            **special,
            "additional_special_tokens": [IM_START, IM_END],
            "model_max_length": ARCH["max_position_embeddings"],
            "model_input_names": ["input_ids", "attention_mask"],  # no token_type_ids (4.x default)
            "add_prefix_space": False,
            "clean_up_tokenization_spaces": False,
            "chat_template": CHAT_TEMPLATE_PATH.read_text(encoding="utf-8"),
        },
    )

    token_ids = {
        "bos_token_id": ids[ENDOFTEXT],
        "eos_token_id": ids[IM_END],
        "pad_token_id": ids[ENDOFTEXT],
    }
    _write_json(
        out / "config.json",
        {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            **ARCH,
            "vocab_size": vocab_size,
            "hidden_act": "silu",
            "initializer_range": INIT_STD,
            "attention_bias": False,
            "attention_dropout": 0.0,
            "mlp_bias": False,
            "pretraining_tp": 1,
            "rope_scaling": None,
            "tie_word_embeddings": False,
            "use_cache": True,
            "torch_dtype": "float32",
            **token_ids,
        },
    )
    _write_json(out / "generation_config.json", token_ids)

    # save() + write_bytes rather than save_file(): save_file creates the file 0600, ignoring umask.
    weights = save(_weights(vocab_size, seed), metadata={"format": "pt"})
    (out / "model.safetensors").write_bytes(weights)
    return out


if __name__ == "__main__":  # pragma: no cover - convenience: python -m service.catalog.tiny DIR
    import sys

    print(build_tiny_model(sys.argv[1] if len(sys.argv) > 1 else "tiny-model"))
