"""Waiting for the provider to finish a submitted job (callbacks wake the poller)."""

from __future__ import annotations

import asyncio
import logging

from bot.catalog import ModelSpec
from bot.jobs.core import JobCore
from bot.jobs.types import JobUpdate, Phase
from bot.jobs.waiting import PollSchedule, wait_for_task
from bot.providers.base import TaskState, VideoProvider
from bot.providers.errors import ProviderError
from bot.store import Job

log = logging.getLogger(__name__)


class ResultSteps(JobCore):
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

        async def on_status(status: object, elapsed: float) -> None:
            progress = getattr(status, "progress", None)
            await self._notify(JobUpdate(job, Phase.RENDERING, progress=progress))

        try:
            status = await wait_for_task(
                provider,
                spec,
                job.task_id,
                schedule,
                wake=self._wake.setdefault(job.id, asyncio.Event()),
                on_status=on_status,
                started_at=job.submitted_at,
            )
        except ProviderError as exc:  # TimedOut included: the job's deadline passed
            await self._fail(job, exc.code, exc.user_message)
            return None
        if status.state is TaskState.FAILED or not status.video_urls:
            await self._fail(
                job, status.error_code or "failed",
                status.error_message or "The provider could not make this video.",
            )
            return None
        await self._store.mark_succeeded(job.id, status.video_urls[0])  # gives the slot back
        await self._slot_freed(job)
        return await self._store.job(job.id)
