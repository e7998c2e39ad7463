"""``python -m trainer --spec spec.json``: run one attempt of one job.

Exit codes: 0 done (or paused, or cancelled on request); 65 the job's input is unusable
(the launcher must not retry); 75 superseded (the control plane moved on); anything else a
failure the control plane may retry from the newest checkpoint.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer")
    parser.add_argument("--spec", required=True, type=Path)
    parser.add_argument("--workdir", type=Path, default=None, help="parent of the attempt's scratch dir")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per report is noise
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from contract.spec import EXIT_BAD_INPUT, EXIT_SUPERSEDED, JobSpec
    from trainer.attempt import Attempt, Stop
    from trainer.data import BadInput
    from trainer.report import Superseded

    spec = JobSpec.model_validate_json(args.spec.read_text())  # an unknown method fails here, loudly
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        import torch.distributed as dist

        dist.init_process_group("nccl" if _cuda() else "gloo")
        logging.info(
            "distributed training: world_size=%d rank=%d backend=%s",
            dist.get_world_size(),
            dist.get_rank(),
            dist.get_backend(),
        )
    # Copies of the customer's data and weights live here only while the attempt runs.
    workdir = Path(tempfile.mkdtemp(prefix=f"hone-{spec.job_id}-", dir=args.workdir))
    attempt = Attempt(spec, workdir)
    module, _, function = spec.method_spec.recipe.partition(":")
    recipe = getattr(importlib.import_module(module), function)
    try:
        recipe(attempt)
        return 0
    except Stop as stop:
        logging.info("stopping: %s", stop.reason)
        return 0
    except Superseded:
        logging.warning("this attempt was superseded; exiting")
        return EXIT_SUPERSEDED
    except BadInput as e:
        if attempt.is_main:
            attempt.reporter.post(
                "/fail", {"code": "invalid_training_data", "message": f"The training data cannot be used: {e}"[:4000]}
            )
        logging.exception("unusable input")
        return EXIT_BAD_INPUT
    finally:
        attempt.reporter.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    sys.exit(main())
