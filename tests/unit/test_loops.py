"""The background loops: a kick from another thread (a sync endpoint runs in a worker thread)
wakes every loop at once rather than at its next tick."""

from __future__ import annotations

import asyncio
import threading

from service.scheduling.loops import BackgroundLoops
from tests.harness.waiting import wait_until


def test_a_kick_from_a_worker_thread_runs_every_loop_before_its_next_tick() -> None:
    ticks = {"validator": 0, "dispatcher": 0}
    loops = BackgroundLoops(interval_s=3600.0)  # no second tick unless a kick wakes the loop
    for name in ticks:
        loops.add(name, lambda name=name: ticks.__setitem__(name, ticks[name] + 1) or 0)  # type: ignore[misc]

    async def main() -> None:
        loops.start()
        try:
            await asyncio.to_thread(wait_until, lambda: all(ticks.values()), "the first ticks", 30)
            # As a sync endpoint does from anyio's worker thread, while this loop sleeps in its
            # selector (a thread of its own: nothing else on the loop completes and wakes it).
            kicker = threading.Timer(0.3, loops.kick)
            kicker.start()
            await asyncio.to_thread(wait_until, lambda: min(ticks.values()) >= 2, "the kicked ticks", 30)
            kicker.join()
        finally:
            await loops.stop()

    # In a thread of its own, so that a loop that is never woken fails this test instead of hanging it.
    runner = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    runner.start()
    runner.join(90)
    assert not runner.is_alive(), "the loops were not woken by the kick and did not stop"
    assert ticks == {"validator": 2, "dispatcher": 2}
