"""Waiting for the provider to finish a submitted job (callbacks wake the poller)."""

from __future__ import annotations

import asyncio
import logging

from bot.catalog import ModelSpec
from bot.jobs.core import JobCore
from bot.jobs.types import JobUpdate, Phase
from bot.jobs.waiting import PollSchedule, wait_for_task
from bot.providers.base import TaskState, TaskStatus, VideoProvider
from bot.providers.errors import ProviderError
from bot.store import Job, JobState

log = logging.getLogger(__name__)

PUSHED = "pushed_status"  # the job context's key for a verified webhook's final status
CANCEL_ASKED = "cancel_asked"  # the member's reason, once the provider was asked to stop


class ResultSteps(JobCore):
    async def _cancel_asked(self, job_id: str) -> str | None:
        job = await self._store.job(job_id)
        asked = job.context.get(CANCEL_ASKED) if job is not None else None
        return asked if isinstance(asked, str) else None

    async def _pushed(self, job_id: str) -> TaskStatus | None:
        """The final status a verified webhook stored for the job, if any."""
        job = await self._store.job(job_id)
        found = job.context.get(PUSHED) if job is not None else None
        if not isinstance(found, dict):
            return None
        try:
            return TaskStatus.model_validate(found)
        except ValueError:
            return None

    async def _await_result(self, job: Job, spec: ModelSpec, provider: VideoProvider) -> Job | None:
        assert job.task_id is not None
        schedule = PollSchedule.for_job(
            spec,
            job.duration,
            timeout_s=self._settings.job_timeout_s,
            first_s=self._settings.poll_first_s,
            interval_s=self._settings.poll_interval_s,
            callbacks=self._webhook is not None and self._webhook.public_base_url is not None,
        )
        await self._notify(JobUpdate(job, Phase.RENDERING))
        wake = self._wake.setdefault(job.id, asyncio.Event())

        async def on_status(status: object, elapsed: float) -> None:
            progress = getattr(status, "progress", None)
            await self._notify(JobUpdate(job, Phase.RENDERING, progress=progress))

        try:
            status = await wait_for_task(
                provider,
                spec,
                job.task_id,
                schedule,
                wake=wake,
                on_status=on_status,
                started_at=job.submitted_at,
                pushed=lambda: self._pushed(job.id),
                signed=provider.signed_webhooks,
            )
        except ProviderError as exc:  # TimedOut included: the job's deadline passed
            await self._fail(job, exc.code, exc.user_message)
            return None
        asked = await self._cancel_asked(job.id)
        if asked is not None:  # the member cancelled; the provider's final word decides
            stopped = status.state is TaskState.FAILED or not status.video_urls
            if await self._store.cancel_job(job.id, asked, stopped,
                                            expected=JobState.SUBMITTED):
                await self._slot_freed(job)
                ended = await self._store.job(job.id) or job
                message = asked if stopped else (
                    f"{asked} The provider finished the video before it could stop, and "
                    "charged for it; it was not posted.")
                await self._notify(JobUpdate(ended, Phase.CANCELLED, message=message,
                                             refunded=stopped))
            return None
        if status.state is TaskState.FAILED or not status.video_urls:
            await self._fail(
                job, status.error_code or "failed",
                status.error_message or "The provider could not make this video.",
            )
            return None
        # The provider made the video: recording it is retried, never turned into a
        # failure (it gives the provider slot back too).
        url = status.video_urls[0]
        await self._persist(job.id, "record the finished video",
                            lambda: self._store.mark_succeeded(job.id, url))
        await self._slot_freed(job)
        return await self._store.job(job.id)
