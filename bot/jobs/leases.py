"""Job leases: which process runs which job, and taking over from a process that died.

Every process has an owner id: its identity (INSTANCE_ID, or the host and its shard
ids), the same across restarts. A job's row names the process holding its lease and
until when; the keeper renews the leases of the jobs this process is running (a task, or
a place in a provider's line) every third of ``JOB_LEASE_S``, notices a lease a peer
took over (this process was frozen too long) and stops that job here, resumes at once a
job it holds but runs no task for (its task ended without ending the job), and claims
the jobs nobody holds (a process stopped and gave them back) or whose lease ran out (a
process died), resuming each from its stored state exactly as a restart does. A process
started again under the same identity takes its own jobs back at once.

The database may be away for a while: the keeper then waits and tries again, quietly
(one line when it goes, one when it is back), and never stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from bot.store import Store
from bot.store.backend import DatabaseUnavailable

log = logging.getLogger(__name__)

RELEASED = "bot_released"  # notified when a process gives its leases back
SCAN_EVERY_S = 2.0  # how often unowned or expired jobs are looked for (at most)
OUTAGE_WAIT_MAX_S = 10.0  # while the database is away, the keeper looks this often at most


class LeaseKeeper:
    def __init__(
        self,
        store: Store,
        owner: str,
        lease_s: float,
        *,
        running: Callable[[], set[str]],
        take: Callable[[str], None],
        lost: Callable[[str], Awaitable[None]],
    ) -> None:
        self._store = store
        self.owner = owner
        self.lease_s = lease_s
        self._running = running
        self._take = take
        self._lost = lost
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.taking = True  # False once the process is stopping
        self.database_away: str | None = None  # why, while the database does not answer

    @property
    def renew_every_s(self) -> float:
        return self.lease_s / 3

    @property
    def scan_every_s(self) -> float:
        return min(SCAN_EVERY_S, self.lease_s / 10)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="job-leases")

    def kick(self) -> None:
        """Look for jobs to take over now (a peer just gave its leases back)."""
        self._kick.set()

    async def stop(self) -> None:
        self.taking = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def adopt_own(self) -> int:
        """At start: the jobs this identity held when it stopped (or crashed) are taken
        back at once, without waiting for their leases to run out."""
        taken = 0
        for job_id in await self._store.jobs_held(self.owner):
            if await self._store.claim_job(job_id, self.owner, self.lease_s):
                self._take(job_id)
                taken += 1
        return taken

    async def scan(self) -> int:
        """Claim every job nobody holds; returns how many were taken."""
        taken = 0
        for job_id in await self._store.claimable_jobs():
            if not self.taking:
                break
            if await self._store.claim_job(job_id, self.owner, self.lease_s):
                log.info("took over job %s", job_id)
                self._take(job_id)
                taken += 1
        return taken

    async def renew(self) -> None:
        running = self._running()
        held = await self._store.renew_leases(self.owner, self.lease_s, running)
        for job_id in running - held:
            job = await self._store.job(job_id)
            if job is not None and not job.terminal and job.owner != self.owner:
                log.warning("job %s was taken over by %s; stopping it here", job_id, job.owner)
                await self._lost(job_id)
        if self.taking:
            await self.resume_orphans()

    async def resume_orphans(self) -> int:
        """A job this process holds but runs no task for (its task ended without ending
        it) is started again here: no job sits leased to a live process with nothing
        running it."""
        held = await self._store.jobs_held(self.owner)
        orphans = held - self._running()
        for job_id in sorted(orphans):
            log.warning("job %s was held here with nothing running it; resuming it", job_id)
            self._take(job_id)
        return len(orphans)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_renew = loop.time() + self.renew_every_s
        wait = self.scan_every_s
        while True:
            try:
                if loop.time() >= next_renew:
                    await self.renew()
                    next_renew = loop.time() + self.renew_every_s
                if self.taking:
                    await self.scan()
                if self.database_away is not None:
                    log.info("the database answers again; job leases are kept as before")
                    self.database_away = None
                    next_renew = loop.time()  # renew (and resume orphans) at once
                wait = self.scan_every_s
            except asyncio.CancelledError:
                raise
            except DatabaseUnavailable as exc:
                if self.database_away is None:
                    log.warning("keeping job leases: %s; waiting for the database",
                                exc.reason)
                self.database_away = exc.reason
                wait = min(max(wait * 2, self.scan_every_s), OUTAGE_WAIT_MAX_S)
            except Exception:
                log.exception("keeping job leases failed; retrying")
            self._kick.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), wait)
