"""Job leases: which process runs which job, and taking over from a process that died.

Every process has an owner id. A job's row names the process holding its lease and until
when; the keeper renews this process's leases every third of ``JOB_LEASE_S``, notices a
lease a peer took over (this process was frozen too long) and stops that job here, and
claims the jobs nobody holds (a process stopped and gave them back) or whose lease ran
out (a process died), resuming each from its stored state exactly as a restart does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable

from bot.store import Store

log = logging.getLogger(__name__)

RELEASED = "bot_released"  # notified when a process gives its leases back
SCAN_EVERY_S = 2.0  # how often unowned or expired jobs are looked for (at most)


def new_owner_id() -> str:
    """host:pid:random; unique per run, readable in /healthz and the logs."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


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
        held = await self._store.renew_leases(self.owner, self.lease_s)
        for job_id in self._running() - held:
            job = await self._store.job(job_id)
            if job is not None and not job.terminal and job.owner != self.owner:
                log.warning("job %s was taken over by %s; stopping it here", job_id, job.owner)
                await self._lost(job_id)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_renew = loop.time() + self.renew_every_s
        while True:
            try:
                if loop.time() >= next_renew:
                    next_renew = loop.time() + self.renew_every_s
                    await self.renew()
                if self.taking:
                    await self.scan()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("keeping job leases failed; retrying")
            self._kick.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self.scan_every_s)
