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

    from contract.spec import (
        EXIT_BAD_INPUT,
        EXIT_FATAL,
        EXIT_PREEMPTED,
        EXIT_SUPERSEDED,
        MAX_MESSAGE_CHARS,
        JobSpec,
    )
    from trainer.attempt import Attempt, Stop
    from trainer.data import BadInput
    from trainer.plan import DoesNotFit
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
        return _exit(0)
    except Stop as stop:
        logging.info("stopping: %s", stop.reason)
        return _exit(EXIT_PREEMPTED if stop.reason == "preempted" else 0)
    except Superseded:
        logging.warning("this attempt was superseded; exiting")
        return _exit(EXIT_SUPERSEDED)
    except BadInput as e:
        logging.exception("unusable input")
        if attempt.is_main:
            message = f"The training data cannot be used: {e}"[:MAX_MESSAGE_CHARS]
            attempt.reporter.post("/fail", {"code": "invalid_training_data", "message": message})
        return _exit(EXIT_BAD_INPUT)
    except DoesNotFit as e:  # found before the model is loaded: no out-of-memory retries
        logging.error("%s", e)
        if attempt.is_main:
            message = f"The job does not fit this machine's memory: {e}"[:MAX_MESSAGE_CHARS]
            attempt.reporter.post("/fail", {"code": "insufficient_memory", "message": message})
        return _exit(EXIT_FATAL)
    except DETERMINISTIC as e:  # retrying would fail the same way; the traceback stays in the log
        logging.exception("training failed")
        if attempt.is_main:
            attempt.reporter.post("/fail", {"code": "training_failed", "message": f"Training failed: {one_line(e)}"})
        return _exit(EXIT_FATAL)
    finally:
        attempt.reporter.close()
        shutil.rmtree(workdir, ignore_errors=True)


# Errors that another attempt would meet again: bad configuration, unsupported settings, bugs.
# Everything else (OSError, RuntimeError: lost devices, network, a killed process) is retried.
DETERMINISTIC: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    NotImplementedError,
    ImportError,
    AssertionError,
    ZeroDivisionError,
)


def _exit(code: int) -> int:
    """The exit code, also left in the attempt's directory for a launcher that adopted the
    attempt after a restart and so cannot wait for it."""
    attempt_dir = os.environ.get("HONE_ATTEMPT_DIR")
    if attempt_dir:
        from contract.spec import ATTEMPT_EXIT_FILE

        try:
            (Path(attempt_dir) / ATTEMPT_EXIT_FILE).write_text(str(code))
        except OSError:
            logging.warning("could not record the exit code in %s", attempt_dir)
    return code


def one_line(e: BaseException, limit: int = 500) -> str:
    """``Type: first line of the message``, short enough for a job's ``error.message``."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    line = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    sys.exit(main())
