"""Downloading a finished video, probing it and posting it with retries (idempotent)."""

from __future__ import annotations

import asyncio
import logging

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from bot.jobs.core import JobCore
from bot.jobs.types import DeliveryFailed, JobUpdate, Phase
from bot.media.video import HOLD_IN_MEMORY_BYTES, HeldVideo, VideoInfo, VideoProblem
from bot.providers.base import VideoProvider
from bot.providers.download import DownloadError
from bot.store import Job

log = logging.getLogger(__name__)

DELIVERY_ATTEMPTS = 5
DELIVERY_BACKOFF_S = 1.0

class DeliverySteps(JobCore):
    async def _deliver_video(self, job: Job, provider: VideoProvider) -> None:
        assert job.video_url is not None
        path = self._work_dir / "videos" / f"{job.id}.mp4"
        await self._notify(JobUpdate(job, Phase.DOWNLOADING))
        try:
            if job.video_path == str(path) and path.exists():
                video = HeldVideo(path)  # downloaded before a restart
            else:
                # A typical result (a few MB) stays in memory until it is posted; a
                # larger one is written, and recorded so that a restart skips the download.
                video = HeldVideo(path, await provider.fetch_result(
                    self._session, job.video_url, path, self._settings.max_video_bytes,
                    keep_in_memory=HOLD_IN_MEMORY_BYTES,
                ))
                if video.data is None:
                    await self._store.set_video_path(job.id, str(path))
            info = await asyncio.to_thread(video.probe)
        except (DownloadError, VideoProblem) as exc:
            path.unlink(missing_ok=True)
            await self._fail(job, "bad_result", f"The finished video could not be used: "
                             f"{exc.user_message}")
            return
        await self._notify(JobUpdate(job, Phase.POSTING))
        with self._critical(job.id):  # a stopping process lets the post finish
            message_id = await self._post_with_retries(job, video, info)
            if message_id is None:
                return
            # The video is in the channel: recording it is retried, never undone.
            await self._persist(job.id, "record the posted video",
                                lambda: self._store.mark_delivered(job.id, message_id))
        path.unlink(missing_ok=True)  # the source image stays for Retry until swept
        done = await self._persist(job.id, "read the delivered job",
                                   lambda: self._store.job(job.id))
        if done is not None:
            await self._notify(JobUpdate(done, Phase.DONE))

    async def _post_with_retries(
        self, job: Job, video: HeldVideo, info: VideoInfo
    ) -> int | None:
        previous = int(job.context.get("delivery_attempt", 0))
        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda e: isinstance(e, DeliveryFailed) and not e.permanent),
            stop=stop_after_attempt(DELIVERY_ATTEMPTS),
            wait=wait_exponential(multiplier=DELIVERY_BACKOFF_S, max=60),
            before_sleep=lambda state: log.warning(
                "delivery of job %s failed (attempt %d); retrying", job.id,
                state.attempt_number),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    # Written before each try: a later try (or a restart) then knows that
                    # an earlier one may have posted, and the deliverer looks first.
                    number = previous + attempt.retry_state.attempt_number
                    await self._store.update_context(job.id, {"delivery_attempt": number})
                    job = await self._store.job(job.id) or job
                    return await self._deliver(job, video, info)
        except DeliveryFailed as exc:
            video.path.unlink(missing_ok=True)
            await self._fail(job, "delivery_failed", exc.user_message)
        return None
