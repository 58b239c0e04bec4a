"""The job service: reserve quota, submit, wait, download, deliver, refund.

Each state is written before the side effect that depends on it:
reserved -> submitting -> submitted (task id) -> succeeded (video URL) -> delivered,
or failed / cancelled with the reservation refunded. Nothing here imports discord:
the Discord layer hands in ``deliver`` and ``on_update``. The stages live beside this
module (``submit``, ``result``, ``deliver``); this one owns the life cycle: start and
recovery, requests, cancelling, callbacks and the sweep of old working files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

from bot.catalog import UnknownModel, get_model
from bot.jobs import files as jobfiles
from bot.jobs import queueing
from bot.jobs.core import OUTAGE_FIRST_S, outage_backoff
from bot.jobs.deliver import DeliverySteps
from bot.jobs.leases import RELEASED, LeaseKeeper
from bot.jobs.result import CANCEL_ASKED, PUSHED, ResultSteps
from bot.jobs.submit import SubmitSteps
from bot.jobs.types import JobUpdate, Phase
from bot.providers.base import (
    CancelOutcome,
    SourceImage,
    TaskState,
    VideoProvider,
    WebhookNews,
)
from bot.providers.errors import ProviderError, WebhookRejected
from bot.store import GuildQuota, Job, JobState, NewJob, QuotaSettings
from bot.store.backend import DatabaseUnavailable

log = logging.getLogger(__name__)

# Source images are kept this long for the Retry button, then swept away.
KEEP_FILES_S = 24 * 3600
SWEEP_EVERY_S = 3600
# A stopping process lets a create request or a post in flight finish for this long.
STOP_GRACE_S = 5.0
WAKE = "bot_wake"  # a callback for a job: the payload is the job id
WITHDRAWN_MESSAGE = "The database failed while this request was recorded; it was withdrawn."
INTERNAL_ERROR_MESSAGE = (
    "Something went wrong on the bot's side. Please try again, and tell a moderator "
    "if it keeps happening."
)

class JobService(SubmitSteps, ResultSteps, DeliverySteps):
    _keeper: LeaseKeeper | None = None

    async def start(self) -> None:
        """Hold this process's identity (raises IdentityInUse while another live process
        runs under it), load the callback secret, take back this identity's own jobs at
        once and the unfinished jobs nobody else holds, and keep this process's leases
        (see ``bot.jobs.leases``)."""
        await self._store.hold_identity(self.owner)
        secret = await self._store.meta_setdefault("callback_secret", secrets.token_hex(32))
        self._secret = bytes.fromhex(secret)
        for sub in ("images", "videos"):
            (self._work_dir / sub).mkdir(parents=True, exist_ok=True)
        self._keeper = LeaseKeeper(
            self._store, self.owner, self._settings.job_lease_s,
            running=self._active, take=self._spawn, lost=self._lose,
        )
        await self._store.listen(WAKE, self._woken)
        await self._store.listen(queueing.CHANNEL, self._slots_freed_elsewhere)
        await self._store.listen(RELEASED, lambda _payload: self._keeper_kick())
        self._store.on_reconnect(self._reconnected)
        if self._store.dialect == "sqlite":
            await self._store.release_every_lease()  # one process per file: all ours now
        taken = await self._keeper.adopt_own() + await self._keeper.scan()
        if taken:
            log.info("resumed %d unfinished job(s)", taken)
        self._keeper.start()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="job-file-sweeper")

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop taking work, let a create request or a post in flight finish (for up to
        ``grace_s``), stop every job and give the leases back, so a peer process takes
        the jobs over at once; alone, the next start resumes them."""
        if self._keeper is not None:
            await self._keeper.stop()
        if self._busy:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), grace_s)
        for queue in self._queues.values():  # first: they start waiting jobs
            await queue.close()
        tasks = list(self._tasks.values())
        if self._sweeper is not None:
            tasks.append(self._sweeper)
            self._sweeper = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        if self._keeper is not None:
            self._keeper = None
            try:
                released = await self._store.release_leases(self.owner)
                if released:
                    await self._store.notify(RELEASED, self.owner)
                    log.info("gave %d job lease(s) back", released)
            except Exception:
                log.warning("could not give the job leases back; they expire in %.0f s",
                            self._settings.job_lease_s, exc_info=True)

    def _keeper_kick(self) -> None:
        if self._keeper is not None:
            self._keeper.kick()

    def _reconnected(self) -> None:
        """Wake-ups sent while the database was away are lost: every waiting job looks
        again, the provider queues ask for slots and the keeper scans."""
        self._keeper_kick()
        for queue in self._queues.values():
            queue.kick()
        for event in self._wake.values():
            event.set()

    def _woken(self, job_id: str) -> None:
        event = self._wake.get(job_id)
        if event is not None:
            event.set()

    def _slots_freed_elsewhere(self, key: str) -> None:
        queue = self._queues.get(key)
        if queue is not None:
            queue.kick()

    async def _lose(self, job_id: str) -> None:
        """A peer holds this job's lease now: stop working on it here."""
        self._leave_queues(job_id)
        task = self._tasks.get(job_id)
        if task is not None:
            task.cancel()

    def _active(self) -> set[str]:
        """The jobs this process works on: running, or waiting in line for a slot."""
        return set(self._tasks) | self._waiting()

    async def leases_held(self) -> int:
        return await self._store.leases_held(self.owner)

    async def drain(self, within_s: float) -> bool:
        """Wait until no job is running or waiting (tests, command-line use)."""
        deadline = time.monotonic() + within_s
        while self._active() and (left := deadline - time.monotonic()) > 0:
            if self._tasks:
                await asyncio.wait(list(self._tasks.values()), timeout=left)
            else:  # only waiting jobs: their queue starts them as slots come free
                await asyncio.sleep(min(0.05, left))
        return not self._active()

    async def request(
        self, new: NewJob, quota: QuotaSettings | GuildQuota, image: SourceImage | None = None,
        end_image: SourceImage | None = None,
    ) -> Job:
        """Reserve the seconds (raises QuotaExceeded, writing nothing) and start the job.

        A job needs a server (its quota and rules apply): ValueError without one.
        """
        if new.guild_id is None:
            raise ValueError("a job needs a server: guild_id is None")
        job_id = uuid.uuid4().hex
        if image is not None:
            path = await jobfiles.save_image(self._work_dir, job_id, image)
            context = dict(new.context)
            if image.url:
                context["image_url"] = image.url
            if end_image is not None:  # the end frame: kept beside the start frame
                end = await jobfiles.save_image(self._work_dir, f"{job_id}.end", end_image)
                context["end_image_path"] = str(end)
                if end_image.url:
                    context["end_image_url"] = end_image.url
            new = new.model_copy(update={"image_path": str(path), "context": context})
        new = new.model_copy(update={
            "owner": self.owner, "lease_until": time.time() + self._settings.job_lease_s})
        try:
            job, _ = await self._store.reserve(
                new, quota, job_id=job_id, token=self.token_for(job_id)
            )
        except BaseException as exc:
            for kept in (new.image_path, new.context.get("end_image_path")):
                if kept:
                    Path(kept).unlink(missing_ok=True)
            if isinstance(exc, DatabaseUnavailable):
                # The member is told nothing was charged; should the reservation turn out
                # to have been written (its commit's answer lost), it is withdrawn.
                self._withdrawn.add(job_id)
            raise
        self._spawn(job.id)
        return job

    def position(self, job: Job) -> int | None:
        """The job's last known place in its model's queue (1: next), None if not waiting."""
        return self._queue(job).position(job.id)

    async def cancel(self, job_id: str, reason: str) -> tuple[Job | None, bool]:
        """Stop a job. Returns (job, refunded).

        Not yet submitted: dropped and refunded. Already at a provider that can cancel
        (fal, Replicate): the provider is asked; confirmed at once, the job is cancelled
        and refunded; otherwise the job stays ``cancel_asked`` in its context and its
        final status decides (stopped: refunded; made anyway: charged, not posted).
        At another provider: the bot stops waiting and refunds only if the provider says
        the task failed.
        """
        job = await self._store.job(job_id)
        if job is None or job.state in (JobState.DELIVERED, JobState.FAILED, JobState.CANCELLED):
            return job, False
        refund = job.state is JobState.RESERVED
        if not refund and job.task_id and job.state is JobState.SUBMITTED:
            outcome = await self._ask_provider_to_cancel(job)
            if outcome is CancelOutcome.REQUESTED:
                await self._store.update_context(job_id, {CANCEL_ASKED: reason})
                await self._wake_job(job_id)
                return await self._store.job(job_id), False
            refund = outcome is CancelOutcome.CANCELLED
        if not refund and job.task_id:
            try:
                status = await self._providers(job.provider).status(
                    get_model(job.provider, job.model), job.task_id
                )
                refund = status.state is TaskState.FAILED
            except ProviderError:
                refund = False
        # Compare-and-set on the state the refund was decided on: a job that moved on
        # meanwhile (into submitting, say: its POST under way) is left alone.
        if not await self._store.cancel_job(job_id, reason, refund, expected=job.state):
            return await self._store.job(job_id), False
        return await self._cancelled(job, reason, refund), refund

    async def _ask_provider_to_cancel(self, job: Job) -> CancelOutcome:
        assert job.task_id is not None
        try:
            return await self._providers(job.provider).cancel(
                get_model(job.provider, job.model), job.task_id)
        except ProviderError as exc:
            log.warning("job %s: asking %s to cancel failed (%s)", job.id, job.provider,
                        exc.code)
            return CancelOutcome.UNSUPPORTED

    async def _cancelled(self, job: Job, reason: str, refunded: bool) -> Job | None:
        """After the store cancelled the job: stop its work here, free its slot, tell."""
        self._leave_queues(job.id)
        task = self._tasks.get(job.id)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        await self._slot_freed(job)
        fresh = await self._store.job(job.id)
        if fresh is not None:
            await self._notify(JobUpdate(fresh, Phase.CANCELLED, message=reason,
                                         refunded=refunded))
        return fresh

    async def _wake_job(self, job_id: str) -> None:
        event = self._wake.get(job_id)
        if event is not None:
            event.set()
        else:  # the job runs in another process (or none yet): wake it wherever it is
            await self._store.notify(WAKE, job_id)

    async def handle_callback(
        self, provider: str, token: str, body: bytes, headers: Mapping[str, str] | None = None,
    ) -> bool:
        """A provider's callback for the job whose token is in its URL; False when no
        such job. An unsigned one is only a hint to ask the status endpoint; a signed one
        is verified over its raw body first (raises WebhookRejected, changing nothing, or
        WebhookUnverifiable) and may carry the final status itself."""
        job = await self._store.job_by_token(token)
        if job is None or job.provider != provider:
            return False
        adapter = self._providers(provider)
        if adapter.signed_webhooks:
            news = await adapter.read_webhook(headers or {}, body)
            if not await self._take_news(job, adapter, news):
                return True  # a verified event with nothing new (Replicate's "start")
        else:
            hint = adapter.parse_callback(body)
            if hint and job.state in (JobState.RESERVED, JobState.SUBMITTING) \
                    and not job.task_hint:
                # The callback arrived before the submit call returned: remember the task.
                await self._store.set_task_hint(job.id, hint)
        await self._wake_job(job.id)
        return True

    async def _take_news(self, job: Job, adapter: VideoProvider, news: WebhookNews) -> bool:
        """What a verified webhook says, kept for the job wherever it runs: the task it
        names (before the create answered, it settles the submit) and its final status.
        Whether there was anything new to wake the job for."""
        known = job.task_id or job.task_hint
        if known is not None and adapter.task_key(known) != news.task_id:
            raise WebhookRejected("the webhook is about another task", status=400)
        news_for_job = False
        if job.state in (JobState.RESERVED, JobState.SUBMITTING) and not job.task_hint:
            await self._store.set_task_hint(job.id, news.task_id)
            news_for_job = True
        if news.status is not None and news.status.state.finished and not job.terminal:
            await self._store.update_context(job.id,
                                             {PUSHED: news.status.model_dump(mode="json")})
            news_for_job = True
        return news_for_job

    def _spawn(self, job_id: str) -> None:
        running = self._tasks.get(job_id)
        if running is not None and not running.done():
            return
        self._wake.setdefault(job_id, asyncio.Event())
        task = asyncio.create_task(self._run(job_id), name=f"job-{job_id}")
        self._tasks[job_id] = task
        task.add_done_callback(lambda t: self._forget(job_id, t))

    def _forget(self, job_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(job_id) is task:
            del self._tasks[job_id]
            self._wake.pop(job_id, None)
        if not task.cancelled() and task.exception() is not None:
            # The lease keeper resumes the job (it is still held here, with no task).
            log.error("job %s: its task ended with an error", job_id,
                      exc_info=task.exception())

    async def _run(self, job_id: str) -> None:
        """Run the job from its stored state; while the database is away, wait and carry
        on from the stored state once it answers (the job is never failed for that)."""
        delay = OUTAGE_FIRST_S
        while True:
            try:
                await self._run_once(job_id)
                return
            except DatabaseUnavailable as exc:
                log.warning("job %s waits for the database (%s); trying again in %.1f s",
                            job_id, exc.reason, delay)
                delay = await outage_backoff(delay)

    async def _run_once(self, job_id: str) -> None:
        found = await self._store.job(job_id)
        if found is None:
            return
        if job_id in self._withdrawn and found.state is JobState.RESERVED:
            log.warning("job %s was written although its request failed; withdrawing it",
                        job_id)
            await self._store.cancel_job(job_id, WITHDRAWN_MESSAGE, True,
                                         expected=JobState.RESERVED)
            self._withdrawn.discard(job_id)
            self._drop_image(found)
            return
        job: Job | None = found
        try:
            spec = get_model(found.provider, found.model)
            provider = self._providers(found.provider)
            if found.state is JobState.RESERVED:
                job = await self._submit(found, spec, provider)
            elif found.state is JobState.SUBMITTING:
                job = await self._resolve_submitting(found, spec, provider)
            if job is not None and job.provider != found.provider:  # it failed over
                spec = get_model(job.provider, job.model)
                provider = self._providers(job.provider)
            if job is not None and job.state is JobState.SUBMITTED:
                job = await self._await_result(job, spec, provider)
            if job is not None and job.state is JobState.SUCCEEDED:
                await self._deliver_video(job, provider)
        except (asyncio.CancelledError, DatabaseUnavailable):
            raise
        except UnknownModel:
            # The catalog no longer has the job's model (the provider's own answer that
            # a model is gone arrives as ModelUnavailable, a ProviderError, in the steps).
            log.warning("job %s: model %s/%s is not in the catalog", job_id,
                        found.provider, found.model)
            await self._fail(found, "model_unavailable", "This model is no longer offered.")
        except Exception:
            current = job.state if job is not None else found.state
            log.exception("job %s (%s/%s, state %s) failed unexpectedly", job_id,
                          found.provider, found.model, current)
            await self._fail(found, "internal", INTERNAL_ERROR_MESSAGE)

    async def _sweep_forever(self) -> None:
        while True:
            try:
                removed = await self.sweep_files()
                if removed:
                    log.info("removed %d old working file(s)", removed)
            except Exception:
                log.exception("sweeping old working files failed")
            await asyncio.sleep(SWEEP_EVERY_S)

    async def sweep_files(self, now: float | None = None) -> int:
        """Delete working files older than KEEP_FILES_S, except running jobs' files."""
        busy = {job.id for job in await self._store.unfinished_jobs()}
        cutoff = (time.time() if now is None else now) - KEEP_FILES_S
        return await asyncio.to_thread(jobfiles.sweep, self._work_dir, busy, cutoff)
