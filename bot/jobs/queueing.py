"""A first-come queue per provider model, bounded by the catalog's concurrency limit.

The slots live in the database (``Store.take_slot``): a slot is a flag on the job's own
row, taken under the model's lock, so the limit holds across every process sharing the
database and a slot is never lost with a process's memory (a job taken over by a peer
keeps it; a job that ends gives it back in the same transaction).

Each process keeps one dispatcher task per model with a queue of its waiting jobs: only
the oldest waiter asks the database for a slot, so a thousand waiting jobs cost one query
per free slot, not a thousand. It wakes when a slot is given back here, when a peer says
so (``slots`` notifications), and at least every ``POLL_S`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot.store import Store

log = logging.getLogger(__name__)

CHANNEL = "bot_slots"
POLL_S = 1.0
POSITIONS_EVERY_S = 2.0

OnPosition = Callable[[int], Awaitable[None]]


class SlotQueue:
    """The waiting jobs of one provider model in this process."""

    def __init__(self, store: Store, provider: str, model: str, limit: int) -> None:
        self._store = store
        self.provider, self.model, self.limit = provider, model, max(1, limit)
        self._waiters: dict[str, _Waiter] = {}
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._positions_at = 0.0

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def position(self, job_id: str) -> int | None:
        """The job's last known place in the queue (1: next), None when not waiting."""
        waiter = self._waiters.get(job_id)
        return None if waiter is None else waiter.place

    def kick(self) -> None:
        """A slot may have come free: let the oldest waiter ask."""
        self._kick.set()

    async def acquire(self, job_id: str, on_position: OnPosition | None = None) -> None:
        """Return once the job holds a slot, telling ``on_position`` its place in line as
        it changes (in the job's own task: a slow status edit holds up no other job).
        Cancelling leaves nothing behind: a slot the job was just given stays on its row,
        where ending the job gives it back."""
        # Asked once on the way in: a job resumed here may hold its slot already, and with
        # nobody ahead of it (in any process) a free slot is its own.
        if await self._store.take_slot(job_id, self.limit):
            return
        waiter = _Waiter(asyncio.get_running_loop().create_future())
        self._waiters[job_id] = waiter
        self._kick.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._dispatch(), name=f"slots-{self.model}")
        told: int | None = None
        try:
            loop = asyncio.get_running_loop()
            while not waiter.granted.done():
                if on_position is not None and waiter.place not in (None, told):
                    told = waiter.place
                    await on_position(told)
                    continue
                waiter.moved = loop.create_future()  # no task per waiter: a plain future
                waits: set[asyncio.Future[Any]] = {waiter.granted, waiter.moved}
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            await waiter.granted
        finally:
            self._waiters.pop(job_id, None)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _dispatch(self) -> None:
        while self._waiters:
            self._kick.clear()
            try:
                await self._grant()
                await self._tell_positions()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("provider queue for %s/%s failed; retrying", self.provider,
                              self.model)
            if not self._waiters:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), POLL_S)

    async def _grant(self) -> None:
        for job_id in list(self._waiters):
            waiter = self._waiters.get(job_id)
            if waiter is None or waiter.granted.done():
                continue
            if not await self._store.take_slot(job_id, self.limit):
                return  # the oldest still waits: so do the younger
            if not waiter.granted.done():
                waiter.granted.set_result(None)

    async def _tell_positions(self) -> None:
        now = time.monotonic()
        if not self._waiters or (now - self._positions_at < POSITIONS_EVERY_S
                                 and all(w.place is not None for w in self._waiters.values())):
            return
        self._positions_at = now
        order = await self._store.waiting_jobs(self.provider, self.model)
        places = {job_id: index for index, job_id in enumerate(order, start=1)}
        for job_id, waiter in list(self._waiters.items()):
            place = places.get(job_id)
            if place is not None and place != waiter.place:
                waiter.place = place
                if waiter.moved is not None and not waiter.moved.done():
                    waiter.moved.set_result(None)


@dataclass
class _Waiter:
    granted: asyncio.Future[None]
    place: int | None = None  # last known place in line
    moved: asyncio.Future[None] | None = None  # resolved when ``place`` changes
