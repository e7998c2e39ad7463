"""A FAKE trainer process for launcher tests: it trains nothing and talks to no control plane. It
takes the real trainer's command line (``python -m tests.fakes.trainer_process --spec spec.json
--workdir DIR``, see ``service.launcher.torchrun.trainer_command``), reads the spec the launcher
wrote, appends its pid to ``fake-trainer.pids`` in the attempt directory (``HONE_ATTEMPT_DIR``,
else the working directory) so a test can count the processes started for an attempt, then
sleeps ``HONE_FAKE_TRAINER_SLEEP_S`` seconds (default 0) and exits with ``HONE_FAKE_TRAINER_EXIT``
(default 0). SIGTERM ends it at once, as it would the real trainer's process group. Standard
library only, so it starts fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

PIDS_FILE = "fake-trainer.pids"
SLEEP_ENV = "HONE_FAKE_TRAINER_SLEEP_S"
EXIT_ENV = "HONE_FAKE_TRAINER_EXIT"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", required=True, type=Path)
    parser.add_argument("--workdir", required=True, type=Path)
    args = parser.parse_args(argv)
    attempt_dir = Path(os.environ.get("HONE_ATTEMPT_DIR") or Path.cwd())
    with (attempt_dir / PIDS_FILE).open("a") as fh:  # first, so an exited process is still counted
        fh.write(f"{os.getpid()}\n")
    spec = json.loads(args.spec.read_text())
    sleep_s, code = float(os.environ.get(SLEEP_ENV, "0")), int(os.environ.get(EXIT_ENV, "0"))
    print(f"fake trainer: job {spec['job_id']} attempt {spec['attempt']}: exit {code} after {sleep_s}s", flush=True)
    time.sleep(sleep_s)
    if code:
        print(f"fake trainer: failing with exit code {code}", file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
