"""Executes eval runs in the background of the control plane (see EvalRunner).

A run is held through a lease in its row (service.evals.leases): any number of replicas may run
this loop; each run is executed by the one that claimed it, and continued, after the items
already recorded, by whichever claims it once the holder's lease lapses (its process died) or
is released (its process stopped). Database work runs in threads; the event loop only awaits
the model calls and the graders."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.context import AppContext
from service.errors import DatabaseUnavailable
from service.evals import leases
from service.evals.execute import RunPlan, execute_item, load_plan
from service.evals.item_source import DataSourceError, ItemSource, Row
from service.evals.leases import ItemRecord

log = logging.getLogger(__name__)
T = TypeVar("T")


class _Lost(Exception):
    """The runner no longer holds the run (cancelled, deleted, or taken over): stop executing it."""


@dataclass
class _Held:
    """A run this runner executes: ``poke`` asks its supervisor to check the lease now (after a
    kick: a cancel is noticed at once, not at the next renewal)."""

    poke: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class EvalRunner:
    """Claims queued eval runs (and runs whose runner's lease lapsed) and executes them: at most
    ``evals.max_running_runs`` at once, each with at most ``evals.run_concurrency`` items in
    flight. Looks every ``loop_interval_s`` and whenever ``kick()`` is called."""

    # items recorded in one transaction at most (also the size of a run's queue of records)
    RECORD_BATCH = 64

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.owner = f"evals-{uuid.uuid4().hex[:12]}"
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runs: dict[str, _Held] = {}

    @property
    def running(self) -> list[str]:
        """The ids of the runs this runner executes now."""
        return list(self._runs)

    def kick(self) -> None:
        """Look for runs now instead of at the next tick (a run was just created or cancelled).
        Safe from any thread (sync endpoints run in a thread pool); a no-op when not started."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._forever(), name="eval-runner")

    async def stop(self) -> None:
        """Stop looking and stop every run: items in flight are not recorded, and each run's
        lease is released so that the next runner continues it at once."""
        self._loop = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        tasks = [held.task for held in self._runs.values() if held.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- the loop -----------------------------------------------------------------------

    async def _forever(self) -> None:
        interval = self.ctx.settings.loop_interval_s
        while True:
            self._wake.clear()
            try:
                await self.tick()
            except Exception:  # the loop never dies: the next tick tries again
                log.exception("the eval runner's tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
                for held in self._runs.values():  # kicked: a run may have been cancelled
                    held.poke.set()

    async def tick(self) -> int:
        """Claim and start what runs there is room for; returns how many were started."""
        free = self.ctx.settings.evals.max_running_runs - len(self._runs)
        if free <= 0:
            return 0
        skip = tuple(self._runs)
        candidates = await self._db(lambda s: leases.claimable(s, free, skip))
        started = 0
        for run_id in candidates:
            if not await self._db(partial(leases.claim, run_id=run_id, owner=self.owner, lease_s=self._lease_s)):
                continue  # another replica was faster
            held = self._runs[run_id] = _Held()
            held.task = asyncio.create_task(self._hold(run_id, held), name=f"eval-run-{run_id}")
            started += 1
        return started

    @property
    def _lease_s(self) -> float:
        return self.ctx.settings.evals.run_lease_s

    async def _db(self, work: Callable[[Session], T]) -> T:
        def unit() -> T:
            with self.ctx.db.session() as s:
                return work(s)

        return await asyncio.to_thread(unit)

    # -- one run --------------------------------------------------------------------------

    async def _hold(self, run_id: str, held: _Held) -> None:
        """Execute the run while renewing its lease every third of it (and when poked); losing
        the lease stops the execution, items in flight unrecorded."""
        work = asyncio.create_task(self._execute(run_id))
        try:
            while not work.done():
                held.poke.clear()
                poke = asyncio.create_task(held.poke.wait())
                await asyncio.wait({work, poke}, timeout=self._lease_s / 3, return_when=asyncio.FIRST_COMPLETED)
                poke.cancel()
                if not work.done() and not await self._renew(run_id):
                    log.info("eval run %s: no longer held by %s (cancelled, deleted or taken over)", run_id, self.owner)
                    work.cancel()
                    break
            [outcome] = await asyncio.gather(work, return_exceptions=True)
            if isinstance(outcome, Exception):  # e.g. the database went away while the run was being failed
                log.error("eval run %s: its execution ended on %r; the next claim continues it", run_id, outcome)
        except asyncio.CancelledError:  # stop(): give the run up for the next runner
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self._db(lambda s: leases.release(s, run_id, self.owner))
            raise
        finally:
            self._runs.pop(run_id, None)

    async def _renew(self, run_id: str) -> bool:
        try:
            return await self._db(lambda s: leases.renew(s, run_id, self.owner, self._lease_s))
        except Exception:  # the database is away: the lease still holds until it lapses; try at the next beat
            log.warning("eval run %s: renewing the lease failed", run_id, exc_info=True)
            return True

    async def _execute(self, run_id: str) -> None:
        try:
            plan = await asyncio.to_thread(load_plan, self.ctx, run_id)
            if plan is None:
                return  # deleted with its eval
            total = await asyncio.to_thread(_count, plan.source)
            if not await self._db(lambda s: leases.set_total(s, run_id, self.owner, self._lease_s, total)):
                return
            done = await self._db(lambda s: leases.recorded_items(s, run_id))
            await self._items(plan, done)
            if await self._db(lambda s: leases.finish(s, run_id, self.owner, self._lease_s)):
                log.info("eval run %s completed (%d items)", run_id, total)
        except _Lost:
            log.info("eval run %s: stopped, no longer held by %s", run_id, self.owner)
        except DataSourceError as e:
            code, why = e.code, e.message
            log.info("eval run %s failed: %s", run_id, why)
            await self._db(lambda s: leases.fail(s, run_id, self.owner, self._lease_s, code, why))
        except DatabaseUnavailable:  # the run is intact: the next claim continues it
            log.warning("eval run %s: the database went away; the run is given up for now", run_id)
            with contextlib.suppress(Exception):
                await self._db(lambda s: leases.release(s, run_id, self.owner))
        except Exception as e:
            log.exception("eval run %s failed on an internal error", run_id)
            message = f"The eval run failed due to an internal error ({type(e).__name__})."
            with contextlib.suppress(Exception):
                await self._db(lambda s: leases.fail(s, run_id, self.owner, self._lease_s, "internal_error", message))

    async def _items(self, plan: RunPlan, done: set[int]) -> None:
        """Execute every row not yet recorded, at most ``run_concurrency`` at once; rows are
        read (in a thread) only as fast as there is room for them. An item holds its slot while
        it is sampled and graded and until its record is in the writer's queue (bounded: when the
        writer falls behind, items wait for room, so a run holds at most ``run_concurrency`` +
        twice ``RECORD_BATCH`` records); the writer records them in batches. Returns once every
        item is recorded."""
        room = self.ctx.settings.evals.run_concurrency
        slots = asyncio.Semaphore(room)
        queue: asyncio.Queue[ItemRecord | None] = asyncio.Queue(maxsize=self.RECORD_BATCH)
        tasks: set[asyncio.Task[None]] = set()
        failures: list[BaseException] = []
        rows = plan.source.rows()

        def finished(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            slots.release()
            if not task.cancelled() and (e := task.exception()) is not None:
                failures.append(e)

        def writer_ended(task: asyncio.Task[None]) -> None:
            if not task.cancelled() and (e := task.exception()) is not None:
                failures.append(e)
                for item in list(tasks):  # their records can no longer be written: free their slots
                    item.cancel()

        writer = asyncio.create_task(self._writer(plan, queue), name=f"eval-run-{plan.run_id}-writer")
        writer.add_done_callback(writer_ended)
        closing: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            while not failures:
                batch = await asyncio.to_thread(_take, rows, room)
                if not batch:
                    break
                for row in batch:
                    if row.index in done:
                        continue
                    await slots.acquire()
                    if failures:
                        slots.release()
                        break
                    task = asyncio.create_task(self._one(plan, row, queue))
                    tasks.add(task)
                    task.add_done_callback(finished)
            while tasks and not failures:
                await asyncio.wait(set(tasks), return_when=asyncio.FIRST_EXCEPTION)
            if not failures:  # every item is queued: the writer records the rest, reads the end marker and ends
                closing = asyncio.create_task(queue.put(None))  # (a writer that fails instead never reads it)
                await asyncio.wait({writer})
        finally:
            for pending in [*tasks, writer, closing]:
                pending.cancel()
            await asyncio.gather(*tasks, writer, closing, return_exceptions=True)
            with contextlib.suppress(ValueError):  # still being read by a cancelled thread: left to the GC
                rows.close()
        if failures:
            raise failures[0]

    async def _one(self, plan: RunPlan, row: Row, queue: asyncio.Queue[ItemRecord | None]) -> None:
        await queue.put(await execute_item(plan, row))

    async def _writer(self, plan: RunPlan, queue: asyncio.Queue[ItemRecord | None]) -> None:
        """The run's one writer: records whatever is queued, up to ``RECORD_BATCH`` items, in
        one transaction, until the end marker (None). Raises _Lost when the run is no longer
        held: nothing of that batch is written and the execution stops."""
        while True:
            batch = [await queue.get()]
            while len(batch) < self.RECORD_BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            records = [record for record in batch if record is not None]
            if records and not await asyncio.to_thread(self._record_batch, plan, records):
                raise _Lost()
            if len(records) < len(batch):
                return

    def _record_batch(self, plan: RunPlan, records: list[ItemRecord]) -> bool:
        try:
            return self._record_many(plan, records)
        except IntegrityError:  # an item recorded meanwhile (the unique run/item pair): once more, skipping it
            return self._record_many(plan, records)

    def _record_many(self, plan: RunPlan, records: list[ItemRecord]) -> bool:
        with self.ctx.db.session() as s:
            return leases.record_many(s, plan.run_id, self.owner, self._lease_s, records, plan.criteria_names)


def _count(source: ItemSource) -> int:
    """The first pass: every row read and checked (a bad one fails the run before any model
    call), and counted."""
    return sum(1 for _ in source.rows())


def _take(rows: Iterator[Row], n: int) -> list[Row]:
    return list(itertools.islice(rows, n))
