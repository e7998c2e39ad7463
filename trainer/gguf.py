"""``python -m trainer.gguf --gguf FILE --out DIR``: turn a GGUF checkpoint (as llama.cpp
writes it, any quantisation transformers can read) into a Hugging Face model directory that
the trainer and vLLM load: ``config.json`` without the GGUF ``quantization_config``,
``model.safetensors`` and the tokenizer with its chat template.

transformers dequantises the GGUF tensors itself (``from_pretrained(..., gguf_file=...)``), but
the model it returns refuses ``save_pretrained`` (the GGUF quantisation config cannot be
serialised). So a fresh model is built from the same config without that entry, the
dequantised weights are loaded into it, and that one is saved. The weights are saved in
bfloat16 by default: vLLM serves a float32 checkpoint in bfloat16 anyway (it downcasts float32
to the platform's preferred dtype), the trainer upcasts to float32 on the CPU, and the file is
half the size. What comes out is the dequantised GGUF, not the original checkpoint it was
quantised from.

The directory is written beside ``DIR`` under a temporary name and renamed into place, so
``DIR`` is either absent or complete. It lives in the trainer package because it needs torch;
the control plane reaches it only as a subprocess (``service/catalog/smollm2.py``).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DTYPES = ("bfloat16", "float32")


def _say(message: str) -> None:
    print(f"[gguf] {message}", flush=True)


def load_gguf(gguf: Path) -> tuple[Any, Any]:
    """transformers' own reading of ``gguf``: (tokenizer, float32 model with dequantised
    weights; its config still carries the GGUF quantisation entry)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    return tokenizer, model.eval()


def plain_model(model: Any, dtype: str = "bfloat16") -> Any:
    """A model with ``model``'s weights (cast to ``dtype``) and its config minus the GGUF
    ``quantization_config``, which ``save_pretrained`` can write."""
    import torch
    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = dtype
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(model.state_dict(), strict=True)
    fresh = fresh.to(getattr(torch, dtype)).eval()
    if getattr(config, "tie_word_embeddings", False):
        head, embed = fresh.get_output_embeddings(), fresh.get_input_embeddings()
        if head is not None and head.weight is not embed.weight:
            raise RuntimeError("tie_word_embeddings is set but the LM head is not the input embedding")
    return fresh


def _portable_tokenizer_config(path: Path) -> None:
    """transformers 5 writes its own class name (``TokenizersBackend``) and how this copy was
    loaded (``is_local``, ``local_files_only``); older transformers (the trainer and vLLM
    images may bring their own) know the class as ``PreTrainedTokenizerFast``, which 5 still
    reads, and the loading flags mean nothing in a model directory."""
    config = json.loads(path.read_text(encoding="utf-8"))
    for key in ("backend", "is_local", "local_files_only"):
        config.pop(key, None)
    if config.get("tokenizer_class") == "TokenizersBackend":
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _publish(tmp: Path, out: Path) -> None:
    """Rename the finished ``tmp`` to ``out`` (an empty ``out`` is replaced)."""
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    os.rename(tmp, out)


def convert(gguf: Path, out: Path, *, dtype: str = "bfloat16") -> Path:
    """Write the Hugging Face directory for ``gguf`` to ``out`` (which must not hold anything
    yet); returns ``out``."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if not gguf.is_file():
        raise FileNotFoundError(f"no such GGUF file: {gguf}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} already exists and is not empty")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' GGUF reader draws its own bar
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    started = time.monotonic()
    _say(f"reading {gguf.name} ({gguf.stat().st_size / 2**20:.0f} MiB) and dequantising its tensors")
    tokenizer, model = load_gguf(gguf)
    n_params = sum(p.numel() for p in model.parameters())
    _say(f"{model.config.model_type}: {n_params / 1e6:.1f}M parameters, {time.monotonic() - started:.0f} s")
    fresh = plain_model(model, dtype)
    del model
    tokenizer.model_max_length = int(getattr(fresh.config, "max_position_embeddings", tokenizer.model_max_length))

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        _say(f"writing {dtype} safetensors and the tokenizer")
        fresh.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        _portable_tokenizer_config(tmp / "tokenizer_config.json")
        umask = os.umask(0)
        os.umask(umask)
        for path in tmp.iterdir():  # safetensors creates its file 0600, whatever the umask
            path.chmod(0o666 & ~umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it 0700
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _say(f"done in {time.monotonic() - started:.0f} s: {out}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trainer.gguf", description="Convert a GGUF checkpoint into a Hugging Face model directory"
    )
    parser.add_argument("--gguf", required=True, type=Path, help="the .gguf file")
    parser.add_argument("--out", required=True, type=Path, help="the model directory to create")
    parser.add_argument("--dtype", choices=DTYPES, default="bfloat16", help="dtype of the saved weights")
    args = parser.parse_args(argv)
    try:
        convert(args.gguf, args.out, dtype=args.dtype)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
