"""Executes eval runs in the background of the control plane (see EvalRunner)."""

from __future__ import annotations

import asyncio

from service.context import AppContext


class EvalRunner:
    """Claims queued eval runs (and runs whose runner's lease lapsed) and executes them."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def kick(self) -> None:
        """Look for runs now instead of at the next tick (a run was just created or cancelled)."""
        self._wake.set()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass
