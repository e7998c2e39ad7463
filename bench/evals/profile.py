"""Where an eval run's items wait inside hone: a stack sampler over hone's threads during a run.

    python -m bench.evals.profile [--items 1000] [--max-tokens 8]

hone runs in this process (tests/harness/vllm.py ``tiny_stack``: real vLLM, hone's app on a
thread), so its threads can be sampled with the standard library alone
(``sys._current_frames()`` every 2 ms). A thread that is idle (waiting on its queue, the event
loop's selector) is not counted. Per sample, the innermost frame of hone's own code on the
thread's stack is counted, and per round whether the run's writer is recording a batch
(``EvalRunner._record_batch``, one thread at most: the share of the run's time spent writing;
items no longer hold a concurrency slot while their record waits to be written).
Printed, not written to bench/results (bench.evals.run measures throughput; this explains it).
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType

import openai

from bench.evals.run import make_items, through_hone
from service.catalog.tiny import build_tiny_model
from tests.harness.vllm import tiny_stack

IDLE_FILES = ("threading.py", "selectors.py", "queue.py", "thread.py", "socket.py", "asyncio/")


class Sampler:
    def __init__(self, skip: set[int]) -> None:
        self.skip, self.stop = skip, threading.Event()
        self.by_function: collections.Counter[str] = collections.Counter()
        self.samples = self.rounds = self.recording = 0

    def _stack(self, frame: FrameType | None) -> list[FrameType]:
        out = []
        while frame is not None:
            out.append(frame)
            frame = frame.f_back
        return out

    def run(self) -> None:
        self.skip.add(threading.get_ident())
        while not self.stop.is_set():
            self.rounds += 1
            for tid, frame in sys._current_frames().items():
                if (
                    tid in self.skip
                    or frame.f_code.co_filename.endswith(IDLE_FILES)
                    or "asyncio/" in frame.f_code.co_filename
                ):
                    continue
                stack = self._stack(frame)
                self.samples += 1
                own = next((f for f in stack if "/service/" in f.f_code.co_filename), None)
                where = (
                    "(no hone frame)"
                    if own is None
                    else f"{own.f_code.co_filename.split('/service/')[1]}:{own.f_code.co_name}"
                )
                self.by_function[where] += 1
                self.recording += any(
                    f.f_code.co_name == "_record_batch" and "runner" in f.f_code.co_filename for f in stack
                )
            time.sleep(0.002)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.evals.profile", description=(__doc__ or "").split("\n")[0])
    p.add_argument("--items", type=int, default=1000)
    p.add_argument("--max-tokens", type=int, default=8)
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="hone-bench-evals-profile-"))
    with tiny_stack(work / "data", build_tiny_model(work / "tiny")) as (srv, _):
        client = openai.OpenAI(base_url=srv.base_url + "/v1", api_key=srv.new_key("bench"), max_retries=0)
        items = make_items(args.items)
        through_hone(client, items[:50], args.max_tokens)[2]()  # warm-up
        sampler = Sampler({threading.get_ident()})
        thread = threading.Thread(target=sampler.run, daemon=True)
        t0 = time.perf_counter()
        _, _, wait = through_hone(client, items, args.max_tokens)
        thread.start()
        done = wait()
        sampler.stop.set()
        thread.join()
    print(f"run {done.status} in {time.perf_counter() - t0:.1f} s; {sampler.samples} busy-thread samples")
    print(f"rounds with the writer inside EvalRunner._record_batch: {sampler.recording / sampler.rounds:.1%}")
    for where, n in sampler.by_function.most_common(12):
        print(f"{n / sampler.samples:6.1%}  {where}")


if __name__ == "__main__":
    main()
