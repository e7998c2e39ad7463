"""Resume state in a checkpoint directory, beside the PEFT adapter (or full weights): optimizer
and RNG state as safetensors, scheduler and progress as JSON. No pickle anywhere. The directory
is uploaded with ``contract.manifest.upload_dir`` (every file, then ``manifest.json`` last), so
one without a manifest is incomplete and is never resumed from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file


def save_optimizer(state_dict: dict[str, Any], local: Path) -> None:
    """An optimizer's ``state_dict()``: tensors as safetensors under ``<param>.<name>`` (the param
    an index, or a parameter name under FSDP), everything else as JSON."""
    state = state_dict["state"]
    tensors = {
        f"{idx}.{name}": t.detach().cpu().contiguous()
        for idx, st in state.items()
        for name, t in st.items()
        if torch.is_tensor(t)
    }
    scalars = {str(idx): {n: v for n, v in st.items() if not torch.is_tensor(v)} for idx, st in state.items()}
    if tensors:
        save_file(tensors, str(local / "optimizer.safetensors"))
    (local / "optimizer.json").write_text(json.dumps({"param_groups": state_dict["param_groups"], "scalars": scalars}))


def load_optimizer(local: Path) -> dict[str, Any]:
    meta = json.loads((local / "optimizer.json").read_text())
    tensors = load_file(str(local / "optimizer.safetensors")) if (local / "optimizer.safetensors").exists() else {}
    state: dict[Any, dict[str, Any]] = {_param_key(i): dict(s) for i, s in meta["scalars"].items()}
    for key, t in tensors.items():
        idx, name = key.rsplit(".", 1)  # state names (exp_avg, step) have no dots; parameter names do
        state.setdefault(_param_key(idx), {})[name] = t
    return {"state": state, "param_groups": meta["param_groups"]}


def _param_key(key: str) -> int | str:
    return int(key) if key.isdigit() else key


def save_rng(local: Path) -> None:
    tensors = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda{i}"] = s
    save_file(tensors, str(local / "rng.safetensors"))


def load_rng(local: Path) -> None:
    tensors = load_file(str(local / "rng.safetensors"))
    torch.set_rng_state(tensors["cpu"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda"))]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)
