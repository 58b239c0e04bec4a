"""A first-come queue per provider model, bounded by the catalog's concurrency limit."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable

OnQueued = Callable[[int], Awaitable[None]]


class ProviderQueue:
    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._active: set[str] = set()
        self._waiting: OrderedDict[str, asyncio.Future[None]] = OrderedDict()

    def position(self, job_id: str) -> int | None:
        """1 for the next job to go, None when the job is not waiting."""
        for index, key in enumerate(self._waiting, start=1):
            if key == job_id:
                return index
        return None

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def active(self) -> int:
        """How many slots are held."""
        return len(self._active)

    def occupy(self, job_id: str) -> None:
        """Count a job that is already at the provider (resumed after a restart)."""
        self._active.add(job_id)

    async def acquire(self, job_id: str, on_queued: OnQueued | None = None) -> None:
        """Take a slot, waiting in line when all are held (``on_queued`` is told the
        place in line). Awaited in the job's own task: a waiter cancelled at any point
        leaves the line, and a slot handed to it just then is passed on, never kept."""
        if job_id in self._active:
            return
        if len(self._active) < self.limit and not self._waiting:
            self._active.add(job_id)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[job_id] = future
        try:
            if on_queued is not None:
                await on_queued(self.position(job_id) or 1)
            await future
        except BaseException:
            if self._waiting.get(job_id) is future:
                del self._waiting[job_id]
            elif future.done() and not future.cancelled():
                self.release(job_id)  # the slot was handed to us just now: pass it on
            raise

    def release(self, job_id: str) -> None:
        self._active.discard(job_id)
        self._waiting.pop(job_id, None)
        while self._waiting and len(self._active) < self.limit:
            next_id, future = self._waiting.popitem(last=False)
            if future.done():
                continue
            self._active.add(next_id)
            future.set_result(None)
