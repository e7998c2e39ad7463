"""Runs the scheduling loops as asyncio tasks; each tick runs in a worker thread."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


class BackgroundLoops:
    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._steps: list[tuple[str, Callable[[], int]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._wake: dict[str, asyncio.Event] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, name: str, step: Callable[[], int]) -> None:
        self._steps.append((name, step))

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for name, step in self._steps:
            self._wake[name] = asyncio.Event()
            self._tasks.append(asyncio.create_task(self._run(name, step), name=f"hone-{name}"))

    def kick(self) -> None:
        """Run every loop now instead of at its next tick (e.g. after a job was created).

        Safe from any thread: the sync endpoints that call it run in anyio's worker threads, and
        an ``asyncio.Event`` may only be set on its own loop (set from elsewhere, the waiting
        task is not reliably woken and waits for its next tick)."""
        loop = self._loop
        if loop is None:  # not started: the first tick runs everything anyway
            return
        for ev in self._wake.values():
            try:
                loop.call_soon_threadsafe(ev.set)
            except RuntimeError:  # the loop closed meanwhile (shutdown): nothing left to wake
                return

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _run(self, name: str, step: Callable[[], int]) -> None:
        wake = self._wake[name]
        while True:
            try:
                await asyncio.to_thread(step)
            except asyncio.CancelledError:
                raise
            except Exception:  # keep the loop alive; the failure is logged with its traceback
                log.exception("background loop %s failed", name)
            try:
                await asyncio.wait_for(wake.wait(), timeout=self.interval_s)
            except TimeoutError:
                pass
            wake.clear()
