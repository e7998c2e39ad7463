"""Run by ``tests/integration/test_training.py`` under torchrun (or alone): a few LoRA or full
fine-tuning steps on a fixed batch through the trainer's own pieces (``trainer.model``,
``trainer.losses``, ``trainer.distributed``), sharded with FSDP2 or not, then the weights saved
the way a checkpoint saves them (gathered whole on rank 0).

    python -m torch.distributed.run --nproc-per-node 2 -m tests.integration.fsdp_probe \\
        MODEL_DIR OUT_DIR lora|full sharded|whole
"""

from __future__ import annotations

import os
import sys
import zlib
from pathlib import Path

import torch

from contract.hyperparameters import SupervisedHyperparameters
from trainer import distributed, losses, model
from trainer.data import IGNORE, Example

STEPS = 3


def main(source: str, out: Path, training_type: str, layout: str) -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        torch.distributed.init_process_group("gloo")
    hp = SupervisedHyperparameters(training_type=training_type, lora_dropout=0.0)
    torch.manual_seed(0)
    net = model.load_trainable(source, hp, torch.device("cpu"), None, checkpointing=True)
    if training_type == "lora":  # B starts at zero; give both layouts the same non-trivial adapter
        for name, p in net.named_parameters():
            if p.requires_grad:
                torch.nn.init.normal_(p, std=0.02, generator=torch.Generator().manual_seed(zlib.crc32(name.encode())))
    net = distributed.wrap(net, layout == "sharded")
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)
    example = Example(list(range(5, 69)), [IGNORE] * 24 + list(range(29, 69)))
    world, _ = distributed.world()
    for _ in range(STEPS):  # every rank gets one copy of the example: the batch is `world` copies
        losses.sft_loss(net, distributed.shard([example] * world), torch.device("cpu"), 2048, backward=True)
        distributed.average_gradients(params)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    weights = distributed.full_state_dict(net)
    if distributed.world()[1] == 0:
        model.save_weights(getattr(net, "module", net), out, weights)
    print(f"sharded={distributed.is_sharded(net)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4])
