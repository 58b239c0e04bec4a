"""A first-come queue per provider model, bounded by the catalog's concurrency limit.

The slots live in the database (``Store.take_slot``): a slot is a flag on the job's own
row, taken under the model's lock, so the limit holds across every process sharing the
database and a slot is never lost with a process's memory (a job taken over by a peer
keeps it; a job that ends gives it back in the same transaction).

A job that finds no free slot waits here as an entry of a few bytes, not as a task: its
row says everything about it. One dispatcher task per model lets only the oldest waiter
ask the database for a slot (a thousand waiting jobs cost one query per free slot, not a
thousand) and starts the job again (``start``) once it holds one. It wakes when a slot is
given back here, when a peer says so (``slots`` notifications), and at least every
``POLL_S`` seconds. Places in line come from the database and are told to ``on_place``
by one task, so a slow status edit holds up no grant.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.store import DatabaseUnavailable, JobState, Store

log = logging.getLogger(__name__)

CHANNEL = "bot_slots"
POLL_S = 1.0
POSITIONS_EVERY_S = 2.0

Start = Callable[[str], None]
OnPlace = Callable[[str, int], Awaitable[None]]


class SlotQueue:
    """The waiting jobs of one provider model in this process."""

    def __init__(self, store: Store, provider: str, model: str, limit: int, *,
                 start: Start, on_place: OnPlace | None = None) -> None:
        self._store = store
        self.provider, self.model, self.limit = provider, model, max(1, limit)
        self._start = start
        self._on_place = on_place
        self._waiters: dict[str, _Waiter] = {}  # in the database's order once sorted
        self._sorted = True
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._teller: asyncio.Task[None] | None = None
        self._positions_at = 0.0

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def waiting_ids(self) -> set[str]:
        return set(self._waiters)

    def position(self, job_id: str) -> int | None:
        """The job's last known place in the queue (1: next), None when not waiting."""
        waiter = self._waiters.get(job_id)
        return None if waiter is None else waiter.place

    def kick(self) -> None:
        """A slot may have come free: let the oldest waiter ask."""
        self._kick.set()

    async def acquire(self, job_id: str) -> bool:
        """True when the job holds a slot. Otherwise the job waits in line here (no task
        of its own) and ``start(job_id)`` is called once it holds one."""
        # A job resumed here may hold its slot already, and with nobody ahead of it (in
        # any process) a free slot is its own.
        if await self._store.take_slot(job_id, self.limit):
            self.leave(job_id)
            return True
        if job_id not in self._waiters:
            self._waiters[job_id] = _Waiter()
            self._sorted = False
        self._kick.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._dispatch(), name=f"slots-{self.model}")
        return False

    def leave(self, job_id: str) -> bool:
        """The job stops waiting here (cancelled, or run by another process now)."""
        return self._waiters.pop(job_id, None) is not None

    async def close(self) -> None:
        self._waiters.clear()
        for task in (self._task, self._teller):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _dispatch(self) -> None:
        while self._waiters:
            self._kick.clear()
            try:
                await self._grant()
                await self._find_places()
            except asyncio.CancelledError:
                raise
            except DatabaseUnavailable as exc:  # waits in line for the database too
                log.warning("provider queue for %s/%s: %s; retrying", self.provider,
                            self.model, exc.reason)
            except Exception:
                log.exception("provider queue for %s/%s failed; retrying", self.provider,
                              self.model)
            if not self._waiters:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), POLL_S)

    async def _grant(self) -> None:
        if not self._sorted:
            await self._sort()
        for job_id in list(self._waiters):
            if job_id not in self._waiters:
                continue
            if await self._store.take_slot(job_id, self.limit):
                if self.leave(job_id):
                    self._start(job_id)
                continue
            # Still waiting, unless it moved on meanwhile: an ended job (cancelled or
            # failed from another process) leaves the line instead of holding up the
            # others, one in any other state is started again from its stored state.
            job = await self._store.job(job_id)
            if job is not None and job.state is JobState.RESERVED and not job.slot:
                return  # the oldest still waits: so do the younger
            if self.leave(job_id) and job is not None and not job.terminal:
                self._start(job_id)

    async def _sort(self) -> None:
        """Put the line in the database's order. Jobs join it in the order they reach
        this process, not the order they asked in: a job taken over from a stopped peer
        is older than the ones here. Only the front asks for a slot, and the database
        gives none to a younger job while an older one waits, so out of order the two
        would wait for each other for good."""
        self._sorted = True  # a job joining during the query sets it back
        order = await self._store.waiting_jobs(self.provider, self.model)
        rank = {job_id: index for index, job_id in enumerate(order)}
        last = len(rank)
        self._waiters = dict(sorted(self._waiters.items(), key=lambda kv: rank.get(kv[0], last)))

    async def _find_places(self) -> None:
        now = time.monotonic()
        if not self._waiters or (now - self._positions_at < POSITIONS_EVERY_S
                                 and all(w.place is not None for w in self._waiters.values())):
            return
        self._positions_at = now
        order = await self._store.waiting_jobs(self.provider, self.model)
        places = {job_id: index for index, job_id in enumerate(order, start=1)}
        for job_id, waiter in self._waiters.items():
            waiter.place = places.get(job_id, waiter.place)
        if self._on_place is not None and (self._teller is None or self._teller.done()):
            self._teller = asyncio.create_task(self._tell(), name=f"places-{self.model}")

    async def _tell(self) -> None:
        """Tell each waiting job's new place, oldest first, until all are told."""
        assert self._on_place is not None
        while True:
            changed = [(job_id, w) for job_id, w in self._waiters.items()
                       if w.place is not None and w.place != w.told]
            if not changed:
                return
            for job_id, waiter in changed:
                if self._waiters.get(job_id) is not waiter or waiter.place is None:
                    continue
                waiter.told = waiter.place
                try:
                    await self._on_place(job_id, waiter.told)
                except Exception:
                    log.exception("telling job %s its place in line failed", job_id)


@dataclass(slots=True)
class _Waiter:
    place: int | None = None  # last known place in line (1: next)
    told: int | None = None  # the place the job was last told
