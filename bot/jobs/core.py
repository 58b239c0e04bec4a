"""The job service's shared state and the steps every stage uses: the callback token,
the per-model queue slot, failing with a refund, and telling the Discord layer."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import aiohttp

from bot.catalog import UnknownModel, get_model
from bot.config import Settings
from bot.jobs import queueing
from bot.jobs.failover import Failover
from bot.jobs.queueing import SlotQueue
from bot.jobs.types import Deliver, JobUpdate, OnUpdate, Phase
from bot.providers.base import VideoProvider
from bot.store import Job, Store
from bot.store.backend import DatabaseUnavailable
from bot.web.server import WebhookServer

log = logging.getLogger(__name__)

T = TypeVar("T")
# While the database is away, a job waits this long before trying again, doubling up to
# OUTAGE_MAX_S: the job carries on from its stored state once the database answers.
OUTAGE_FIRST_S = 0.5
OUTAGE_MAX_S = 15.0


async def outage_backoff(delay: float) -> float:
    """Sleep ``delay`` seconds; the next, longer delay (bounded)."""
    await asyncio.sleep(delay)
    return min(delay * 2, OUTAGE_MAX_S)


class JobCore:
    """State shared by the stages of a job's life (see ``bot.jobs.service``)."""

    def __init__(
        self,
        *,
        store: Store,
        session: aiohttp.ClientSession,
        settings: Settings,
        providers: Callable[[str], VideoProvider],
        deliver: Deliver,
        work_dir: Path,
        on_update: OnUpdate | None = None,
        webhook: WebhookServer | None = None,
        owner: str | None = None,
    ) -> None:
        self._store = store
        self._session = session
        self._settings = settings
        self._providers = providers
        self._deliver = deliver
        self._on_update = on_update
        self._webhook = webhook
        self._work_dir = work_dir
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._queues: dict[str, SlotQueue] = {}
        self._secret = b""
        self._sweeper: asyncio.Task[None] | None = None
        self._failover = Failover(settings)
        # This process, as named on the job leases it holds: stable across restarts.
        self.owner = owner or settings.process_identity
        self._busy: set[str] = set()  # jobs between a request that costs and its record
        self._idle = asyncio.Event()  # set while ``_busy`` is empty
        self._idle.set()
        # Requests whose reservation failed with the database away (the member was told
        # nothing was charged): withdrawn if they turn up written after all.
        self._withdrawn: set[str] = set()

    def token_for(self, job_id: str) -> str:
        """The job's callback secret: derived, so it is never stored in plain text."""
        digest = hmac.new(self._secret, job_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def _queue(self, job: Job) -> SlotQueue:
        key = f"{job.provider}/{job.model}"
        if key not in self._queues:
            try:
                limit = get_model(job.provider, job.model).max_concurrent
            except UnknownModel:
                limit = 1
            self._queues[key] = SlotQueue(self._store, job.provider, job.model, limit,
                                          start=self._spawn, on_place=self._tell_place)
        return self._queues[key]

    def _waiting(self) -> set[str]:
        """The jobs waiting here for a provider slot (they have no task meanwhile)."""
        return set().union(*(queue.waiting_ids() for queue in self._queues.values()))

    def _leave_queues(self, job_id: str) -> None:
        for queue in self._queues.values():
            queue.leave(job_id)

    async def _tell_place(self, job_id: str, place: int) -> None:
        job = await self._store.job(job_id)
        if job is not None and not job.terminal:
            await self._notify(JobUpdate(job, Phase.QUEUED, position=place))

    def _spawn(self, job_id: str) -> None:
        """Run the job in a task of its own (``JobService`` defines how)."""
        raise NotImplementedError

    async def _slot_freed(self, job: Job) -> None:
        """The job gave its provider slot back (the store clears it with the state that
        ends it): wake the queue here and in every peer process."""
        self._queue(job).kick()
        try:
            await self._store.notify(queueing.CHANNEL, f"{job.provider}/{job.model}")
        except Exception:
            log.warning("could not tell other processes that a slot came free", exc_info=True)

    @contextlib.contextmanager
    def _critical(self, job_id: str) -> Iterator[None]:
        """A step a stopping process lets finish (a create POST, a post to Discord)."""
        self._busy.add(job_id)
        self._idle.clear()
        try:
            yield
        finally:
            self._busy.discard(job_id)
            if not self._busy:
                self._idle.set()

    def _callbacks_on(self) -> bool:
        return self._webhook is not None and self._webhook.public_base_url is not None

    def _drop_image(self, job: Job) -> None:
        for kept in (job.image_path, job.context.get("end_image_path")):
            if kept:
                Path(kept).unlink(missing_ok=True)

    async def _persist(self, job_id: str, what: str, step: Callable[[], Awaitable[T]]) -> T:
        """A database step that follows something the member or a provider has already
        seen (a post, a paid task, a refund): retried until the database takes it, with a
        bounded backoff, never turned into a failure of the job."""
        delay = OUTAGE_FIRST_S
        while True:
            try:
                return await step()
            except DatabaseUnavailable as exc:
                log.warning("job %s: could not %s (%s); trying again in %.1f s", job_id,
                            what, exc.reason, delay)
                delay = await outage_backoff(delay)

    async def _fail(self, job: Job, code: str, message: str) -> None:
        """Fail and refund, exactly once; tell the member."""
        if await self._persist(job.id, "record the refund",
                               lambda: self._store.fail_job(job.id, code, message)):
            await self._slot_freed(job)
            log.info("job %s failed (%s); %d s refunded", job.id, code, job.seconds)
            self._drop_image(job)
            (self._work_dir / "videos" / f"{job.id}.mp4").unlink(missing_ok=True)
            failed = await self._persist(job.id, "read the failed job",
                                         lambda: self._store.job(job.id)) or job
            await self._notify(JobUpdate(failed, Phase.FAILED, message=message, refunded=True))

    async def _notify(self, update: JobUpdate) -> None:
        if self._on_update is None:
            return
        try:
            await self._on_update(update)
        except Exception:
            log.exception("status update for job %s failed", update.job.id)
