"""Submitting a job to its provider, and settling a submit that may or may not have
reached it (never sent twice: a callback naming the task settles it, else a refund)."""

from __future__ import annotations

import asyncio
import logging
import time

from bot.catalog import ModelSpec
from bot.jobs import files as jobfiles
from bot.jobs.core import JobCore
from bot.jobs.failover import (
    job_price,
    moved_audio,
    moves_on,
    over_spend,
    reason,
    unsuitable,
)
from bot.jobs.types import JobUpdate, Phase
from bot.providers.base import TaskStatus, VideoProvider
from bot.providers.errors import ProviderError, RateLimited, SubmitUncertain, TaskNotFound
from bot.store import Job, QuotaExceeded

log = logging.getLogger(__name__)

RESTART_SUBMIT_MESSAGE = (
    "The bot restarted while sending this request and the provider never confirmed it; "
    "to avoid paying twice it was not sent again. Your seconds were refunded."
)

# Backoff of the status check on a task a callback named, while the provider errs.
HINT_RETRY_FIRST_S = 1.0
HINT_RETRY_MAX_S = 60.0


class SubmitSteps(JobCore):
    async def _submit(self, job: Job, spec: ModelSpec, provider: VideoProvider) -> Job | None:
        while True:
            moved = await self._skip_cooling(job, spec)
            if moved is not None:
                job, spec, provider = moved
            outcome = await self._submit_once(job, spec, provider)
            if not isinstance(outcome, ProviderError):
                return outcome
            moved = await self._move_on(job, spec, outcome)
            if moved is None:
                await self._fail(job, outcome.code, outcome.user_message)
                return None
            job, spec, provider = moved

    async def _submit_once(
        self, job: Job, spec: ModelSpec, provider: VideoProvider
    ) -> Job | ProviderError | None:
        """One provider's try: the job as it stands after it, or the refusal that a
        fallback provider may still get past (the job is still ``submitting``)."""
        # The slot is a flag on the job's row: cancelling here (a stopping process) leaves
        # it with the job for whoever resumes it, and ending the job gives it back. With
        # no slot free the job waits in line without a task: the queue starts it again.
        if not await self._queue(job).acquire(job.id):
            return None
        try:
            request = await jobfiles.build_request(job, spec, self._webhook)
        except ProviderError as exc:
            await self._fail(job, exc.code, exc.user_message)
            return None
        if not await self._store.mark_submitting(job.id):
            return await self._store.job(job.id)  # cancelled meanwhile
        await self._notify(JobUpdate(job, Phase.SUBMITTING))
        callback = self._webhook.callback_url(job.provider, self.token_for(job.id)) \
            if self._webhook else None
        with self._critical(job.id):
            try:
                task_id = await provider.submit(spec, request, callback)
            except SubmitUncertain as exc:
                fresh = await self._store.job(job.id) or job
                return await self._resolve_submitting(
                    fresh, spec, provider, code=exc.code, message=exc.user_message
                )
            except ProviderError as exc:
                if moves_on(exc):
                    return exc
                await self._fail(job, exc.code, exc.user_message)
                return None
            # The provider has the task (and may charge for it): recording its id is
            # retried until the database takes it, never turned into a refund.
            await self._persist(job.id, f"record the provider's task {task_id}",
                                lambda: self._store.mark_submitted(job.id, task_id))
        return await self._store.job(job.id)

    async def _skip_cooling(
        self, job: Job, spec: ModelSpec
    ) -> tuple[Job, ModelSpec, VideoProvider] | None:
        """A provider that just failed every job is not tried first for a while (unless
        the next one cannot make this job as it was asked: then it is tried anyway)."""
        if not self._failover.cooling(job.provider):
            return None
        tried = [*job.context.get("providers_tried", []), job.provider]
        other = self._failover.next_for(spec, tried)
        if other is None or await unsuitable(job, other) is not None:
            return None
        try:
            return await self._move(job, other, tried, f"{job.provider} is cooling down")
        except QuotaExceeded:  # dearer there than the spend cap allows: try this one
            return None

    async def _move_on(
        self, job: Job, spec: ModelSpec, exc: ProviderError
    ) -> tuple[Job, ModelSpec, VideoProvider] | None:
        """The next provider that sells the job's model, if it can make the job exactly as
        asked (else the job fails, refunded, saying why)."""
        self._failover.mark_down(job.provider, exc)
        tried = [*job.context.get("providers_tried", []), job.provider]
        other = self._failover.next_for(spec, tried)
        if other is None:
            return None
        why = f"{job.provider} {reason(exc)}"
        problem = await unsuitable(job, other)
        if problem is not None:
            await self._fail(job, "failover_unsuitable",
                             f"{why}, and {other.provider} cannot take the job as asked: "
                             f"{problem}")
            return None
        try:
            return await self._move(job, other, tried, why)
        except QuotaExceeded as exc:  # its price there does not fit the spend cap
            await self._fail(job, "failover_over_spend",
                             f"{why}, and {over_spend(other, exc)}")
            return None

    async def _move(
        self, job: Job, other: ModelSpec, tried: list[str], why: str
    ) -> tuple[Job, ModelSpec, VideoProvider] | None:
        """Move the job to ``other`` at its price there (raises QuotaExceeded when that
        does not fit the guild's spend cap)."""
        audio = moved_audio(job, other, self._settings.audio_default)
        price = job_price(job, other, audio, self._settings.model_prices)
        if not await self._store.move_to_provider(
                job.id, other.provider, other.id, price, tried, audio=audio,
                default_seconds=self._settings.default_quota_seconds):
            return None
        await self._slot_freed(job)
        log.info("job %s moves from %s to %s: %s", job.id, job.provider, other.provider, why)
        fresh = await self._store.job(job.id)
        if fresh is None:
            return None
        await self._notify(JobUpdate(
            fresh, Phase.QUEUED, message=f"{why}; trying {other.provider} instead."))
        return fresh, other, self._providers(other.provider)

    async def _wait_for_hint(self, job: Job) -> Job | None:
        """Wait (until the job's deadline) for a callback naming the provider's task."""
        deadline = job.created_at + self._settings.job_timeout_s
        event = self._wake.setdefault(job.id, asyncio.Event())
        await self._notify(JobUpdate(
            job, Phase.SUBMITTING,
            message="Waiting for the provider to confirm the request (it is never sent twice).",
        ))
        while (left := deadline - time.time()) > 0:
            try:
                await asyncio.wait_for(event.wait(), left)
            except TimeoutError:
                break
            event.clear()
            fresh = await self._store.job(job.id)
            if fresh is not None and fresh.task_hint:
                return fresh
        return None

    async def _check_hint(
        self, job: Job, spec: ModelSpec, provider: VideoProvider, hint: str
    ) -> TaskStatus | None:
        """The status of the task a callback named, or None when the provider says
        definitely that there is no such task (or the job's deadline passed first).

        Any other error (an outage, a 429) is passing: the provider may be rendering the
        task, so the check is retried with backoff until the job's deadline.
        """
        deadline = job.created_at + self._settings.job_timeout_s
        delay = HINT_RETRY_FIRST_S
        while True:
            try:
                return await provider.status(spec, hint)
            except TaskNotFound:
                log.info("job %s: the provider has no task %s", job.id, hint)
                return None
            except ProviderError as exc:
                left = deadline - time.time()
                if left <= 0:
                    log.warning("job %s: task %s still unconfirmed at the deadline (%s)",
                                job.id, hint, exc.code)
                    return None
                wait = delay
                if isinstance(exc, RateLimited) and exc.retry_after:
                    wait = max(wait, exc.retry_after)
                wait = min(wait, left)
                log.warning("job %s: status of task %s failed (%s); retrying in %.1f s",
                            job.id, hint, exc.code, wait)
                await asyncio.sleep(wait)
                delay = min(delay * 2, HINT_RETRY_MAX_S)

    async def _resolve_submitting(
        self,
        job: Job,
        spec: ModelSpec,
        provider: VideoProvider,
        *,
        code: str = "submit_uncertain",
        message: str = RESTART_SUBMIT_MESSAGE,
    ) -> Job | None:
        """A job whose submit may or may not have reached the provider: never re-sent.

        A callback naming the task settles it (the provider's status endpoint must know
        the task); with callbacks on, the bot waits for one until the job's deadline.
        Otherwise the job fails and its seconds are refunded.
        """
        if not job.task_hint and self._callbacks_on():
            job = await self._wait_for_hint(job) or job
        if job.task_hint:
            status = await self._check_hint(job, spec, provider, job.task_hint)
            if status is not None:
                log.info("job %s: adopted task %s named by a callback", job.id, job.task_hint)
                hint = job.task_hint
                await self._persist(job.id, "record the adopted task",
                                    lambda: self._store.mark_submitted(job.id, hint))
                return await self._store.job(job.id)
        await self._fail(job, code, message)
        return None
