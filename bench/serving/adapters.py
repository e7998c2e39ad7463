"""LoRA adapters made without training (PEFT r=16 all-linear on the tiny model, random non-zero
``lora_B`` so they change the answers), stored exactly as a finished job leaves them: uploaded
under the job's ``final`` prefix with the manifest last, published in the adapter index, and
registered as the job's fine-tuned model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.serving.workload import BASE, PROJECT
from contract.adapter_index import AdapterIndexEntry, publish
from contract.blobstore import BlobStore
from contract.hyperparameters import SupervisedHyperparameters
from contract.layout import JobLayout
from contract.manifest import Manifest, upload_dir
from contract.names import ModelName
from tests.harness.records import register_finished_model

LORA_B_STD = 0.05  # large enough that every adapter's greedy answer differs from the base's
HP = SupervisedHyperparameters()  # the recipe's LoRA shape: r=16, alpha 32, all-linear


@dataclass(frozen=True)
class StoredAdapter:
    job_id: str
    uri: str


def adapter_names(prefix: str, count: int) -> list[str]:
    """``count`` fine-tuned model names of the tiny base, short ids ``<prefix>0001``... (8 characters)."""
    width = 8 - len(prefix)
    return [str(ModelName(BASE, PROJECT, None, f"{prefix}{i + 1:0{width}d}")) for i in range(count)]


def make_adapters(model_dir: Path, names: list[str], out: Path) -> dict[str, Path]:
    """One adapter directory per name (PEFT's files), each with its own random weights."""
    import torch

    from trainer.model import load_trainable, save_weights

    torch.set_num_threads(1)  # vLLM is starting on the same cores
    model = load_trainable(str(model_dir), HP, torch.device("cpu"), None)
    dirs = {}
    for i, name in enumerate(names):
        g = torch.Generator().manual_seed(1000 + i)
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if "lora_A" in pname:
                    p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) / p.shape[1] ** 0.5)
                elif "lora_B" in pname:
                    p.copy_(torch.randn(p.shape, generator=g) * LORA_B_STD)
        dirs[name] = out / name.replace(":", "_")
        save_weights(model, dirs[name])
    return dirs


def store_adapters(store: BlobStore, dirs: dict[str, Path]) -> dict[str, StoredAdapter]:
    """Upload each as ``jobs/<job id>/final`` (manifest last) and publish it in the adapter index."""
    from service.ids import job_id

    out = {}
    for name, local in dirs.items():
        jid = job_id()
        manifest = Manifest(
            model_name=name,
            base_model=BASE,
            job_id=jid,
            step=0,
            training_type=HP.training_type,
            rank=HP.lora_rank,
            target_modules=HP.target_modules,
        )  # as trainer/attempt.py writes it
        uri = upload_dir(store, local, JobLayout.for_job(jid).final, manifest)
        publish(store, AdapterIndexEntry(name=name, uri=uri, base_model=BASE))
        out[name] = StoredAdapter(jid, uri)
    return out


def register_models(ctx: Any, project: str, stored: dict[str, StoredAdapter]) -> None:
    """The rows a succeeded job leaves behind, so the gateway lets these names through."""
    for name, a in stored.items():
        register_finished_model(ctx.db, project, name, a.uri, job_id=a.job_id, base_model=BASE)
