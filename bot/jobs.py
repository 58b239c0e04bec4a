"""The job service: reserve quota, submit, wait, download, deliver, refund.

Each state is written before the side effect that depends on it:
reserved -> submitting -> submitted (task id) -> succeeded (video URL) -> delivered,
or failed / cancelled with the reservation refunded. Nothing here imports discord:
the Discord layer hands in ``deliver`` and ``on_update``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from bot import jobfiles
from bot.catalog import ModelSpec, get_model
from bot.config import Settings
from bot.download import DownloadError
from bot.jobs_types import Deliver, DeliveryFailed, JobUpdate, OnUpdate, Phase
from bot.media.video import VideoInfo, VideoProblem, probe_mp4
from bot.providers.base import SourceImage, TaskState, VideoProvider
from bot.providers.errors import ProviderError, SubmitUncertain
from bot.queueing import ProviderQueue
from bot.store import GuildQuota, Job, JobState, NewJob, QuotaSettings, Store
from bot.waiting import PollSchedule, wait_for_task
from bot.webhooks import WebhookServer

log = logging.getLogger(__name__)

DELIVERY_ATTEMPTS = 5
DELIVERY_BACKOFF_S = 1.0
# Source images are kept this long for the Retry button, then swept away.
KEEP_FILES_S = 24 * 3600
SWEEP_EVERY_S = 3600
RESTART_SUBMIT_MESSAGE = (
    "The bot restarted while sending this request and the provider never confirmed it; "
    "to avoid paying twice it was not sent again. Your seconds were refunded."
)


class JobService:
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
        self._queues: dict[str, ProviderQueue] = {}
        self._secret = b""
        self._sweeper: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Load the callback secret and resume every unfinished job."""
        secret = await self._store.meta_setdefault("callback_secret", secrets.token_hex(32))
        self._secret = bytes.fromhex(secret)
        for sub in ("images", "videos"):
            (self._work_dir / sub).mkdir(parents=True, exist_ok=True)
        jobs = await self._store.unfinished_jobs()
        for job in jobs:
            if job.state in (JobState.SUBMITTED, JobState.SUCCEEDED):
                self._queue(job).occupy(job.id)
        for job in jobs:
            log.info("resuming job %s in state %s", job.id, job.state)
            self._spawn(job.id)
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="job-file-sweeper")

    async def stop(self) -> None:
        """Stop waiting; every job stays in the database and resumes at the next start."""
        tasks = list(self._tasks.values())
        if self._sweeper is not None:
            tasks.append(self._sweeper)
            self._sweeper = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    async def drain(self, within_s: float) -> bool:
        """Wait until no job is running (tests, command-line use)."""
        deadline = time.monotonic() + within_s
        while self._tasks and time.monotonic() < deadline:
            await asyncio.wait(list(self._tasks.values()), timeout=deadline - time.monotonic())
        return not self._tasks

    # -- requests --------------------------------------------------------------------

    def token_for(self, job_id: str) -> str:
        """The job's callback secret: derived, so it is never stored in plain text."""
        digest = hmac.new(self._secret, job_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    async def request(
        self, new: NewJob, quota: QuotaSettings | GuildQuota, image: SourceImage | None = None
    ) -> Job:
        """Reserve the seconds (raises QuotaExceeded, writing nothing) and start the job."""
        job_id = uuid.uuid4().hex
        if image is not None:
            path = await jobfiles.save_image(self._work_dir, job_id, image)
            context = dict(new.context)
            if image.url:
                context["image_url"] = image.url
            new = new.model_copy(update={"image_path": str(path), "context": context})
        try:
            job, _ = await self._store.reserve(
                new, quota, job_id=job_id, token=self.token_for(job_id)
            )
        except BaseException:
            if new.image_path:
                Path(new.image_path).unlink(missing_ok=True)
            raise
        self._spawn(job.id)
        return job

    def position(self, job: Job) -> int | None:
        return self._queue(job).position(job.id)

    async def cancel(self, job_id: str, reason: str) -> tuple[Job | None, bool]:
        """Stop a job. Returns (job, refunded).

        Not yet submitted: dropped and refunded. Already at the provider: the bot stops
        waiting and refunds only if the provider says the task failed.
        """
        job = await self._store.job(job_id)
        if job is None or job.state in (JobState.DELIVERED, JobState.FAILED, JobState.CANCELLED):
            return job, False
        refund = job.state is JobState.RESERVED
        if not refund and job.task_id:
            try:
                status = await self._providers(job.provider).status(
                    get_model(job.provider, job.model), job.task_id
                )
                refund = status.state is TaskState.FAILED
            except ProviderError:
                refund = False
        if not await self._store.cancel_job(job_id, reason, refund):
            return await self._store.job(job_id), False
        task = self._tasks.get(job_id)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        self._release(job)
        job = await self._store.job(job_id)
        if job is not None:
            await self._notify(JobUpdate(job, Phase.CANCELLED, message=reason, refunded=refund))
        return job, refund

    async def handle_callback(self, provider: str, token: str, body: bytes) -> bool:
        """A provider's callback: only a hint to ask the status endpoint."""
        job = await self._store.job_by_token(token)
        if job is None or job.provider != provider:
            return False
        hint = self._providers(provider).parse_callback(body)
        if hint and job.state in (JobState.RESERVED, JobState.SUBMITTING) and not job.task_hint:
            # The callback arrived before the submit call returned: remember the task id.
            await self._store.set_task_hint(job.id, hint)
        event = self._wake.get(job.id)
        if event is not None:
            event.set()
        return True

    # -- the job's life ------------------------------------------------------------------

    def _spawn(self, job_id: str) -> None:
        if job_id in self._tasks:
            return
        self._wake.setdefault(job_id, asyncio.Event())
        task = asyncio.create_task(self._run(job_id), name=f"job-{job_id}")
        self._tasks[job_id] = task
        task.add_done_callback(lambda t: self._forget(job_id, t))

    def _forget(self, job_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(job_id) is task:
            del self._tasks[job_id]
            self._wake.pop(job_id, None)

    def _queue(self, job: Job) -> ProviderQueue:
        key = f"{job.provider}/{job.model}"
        if key not in self._queues:
            try:
                limit = get_model(job.provider, job.model).max_concurrent
            except LookupError:
                limit = 1
            self._queues[key] = ProviderQueue(limit)
        return self._queues[key]

    def _release(self, job: Job) -> None:
        self._queue(job).release(job.id)

    async def _run(self, job_id: str) -> None:
        found = await self._store.job(job_id)
        if found is None:
            return
        job: Job | None = found
        try:
            spec = get_model(found.provider, found.model)
            provider = self._providers(found.provider)
            if found.state is JobState.RESERVED:
                job = await self._submit(found, spec, provider)
            elif found.state is JobState.SUBMITTING:
                job = await self._resolve_submitting(found, spec, provider)
            if job is not None and job.state is JobState.SUBMITTED:
                job = await self._await_result(job, spec, provider)
            if job is not None and job.state is JobState.SUCCEEDED:
                await self._deliver_video(job, provider)
        except asyncio.CancelledError:
            raise
        except LookupError:
            await self._fail(found, "model_unavailable", "This model is no longer offered.")
        except Exception:
            log.exception("job %s failed unexpectedly", job_id)
            await self._fail(found, "internal", "Something went wrong on the bot's side.")

    async def _submit(self, job: Job, spec: ModelSpec, provider: VideoProvider) -> Job | None:
        queue = self._queue(job)
        waiting = asyncio.create_task(queue.acquire(job.id))
        await asyncio.sleep(0)
        if not waiting.done():
            await self._notify(JobUpdate(job, Phase.QUEUED, position=queue.position(job.id)))
        await waiting
        try:
            try:
                request = await jobfiles.build_request(job, spec, self._webhook)
            except ProviderError as exc:
                await self._fail(job, exc.code, exc.user_message)
                return None
            if not await self._store.mark_submitting(job.id):
                self._release(job)
                return await self._store.job(job.id)
            await self._notify(JobUpdate(job, Phase.SUBMITTING))
            callback = self._webhook.callback_url(job.provider, self.token_for(job.id)) \
                if self._webhook else None
            try:
                task_id = await provider.submit(spec, request, callback)
            except SubmitUncertain as exc:
                fresh = await self._store.job(job.id) or job
                return await self._resolve_submitting(
                    fresh, spec, provider, code=exc.code, message=exc.user_message
                )
            except ProviderError as exc:
                await self._fail(job, exc.code, exc.user_message)
                return None
            await self._store.mark_submitted(job.id, task_id)
            return await self._store.job(job.id)
        except BaseException:
            current = await asyncio.shield(self._store.job(job.id))
            if current is None or current.state is not JobState.SUBMITTED:
                self._release(job)
            raise

    def _callbacks_on(self) -> bool:
        return self._webhook is not None and self._webhook.public_base_url is not None

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
            try:
                status = await provider.status(spec, job.task_hint)
            except ProviderError:
                status = None
            if status is not None:
                log.info("job %s: adopted task %s named by a callback", job.id, job.task_hint)
                self._queue(job).occupy(job.id)
                await self._store.mark_submitted(job.id, job.task_hint)
                return await self._store.job(job.id)
        await self._fail(job, code, message)
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
        self._release(job)
        if status.state is TaskState.FAILED or not status.video_urls:
            await self._fail(
                job, status.error_code or "failed",
                status.error_message or "The provider could not make this video.",
            )
            return None
        await self._store.mark_succeeded(job.id, status.video_urls[0])
        return await self._store.job(job.id)

    async def _deliver_video(self, job: Job, provider: VideoProvider) -> None:
        assert job.video_url is not None
        path = self._work_dir / "videos" / f"{job.id}.mp4"
        await self._notify(JobUpdate(job, Phase.DOWNLOADING))
        try:
            if not path.exists() or job.video_path != str(path):
                await provider.download(
                    self._session, job.video_url, path, self._settings.max_video_bytes
                )
                await self._store.set_video_path(job.id, str(path))
            info = await asyncio.to_thread(probe_mp4, path)
        except (DownloadError, VideoProblem) as exc:
            path.unlink(missing_ok=True)
            await self._fail(job, "bad_result", f"The finished video could not be used: "
                             f"{exc.user_message}")
            return
        await self._notify(JobUpdate(job, Phase.POSTING))
        message_id = await self._post_with_retries(job, path, info)
        if message_id is None:
            return
        await self._store.mark_delivered(job.id, message_id)
        path.unlink(missing_ok=True)  # the source image stays for Retry until swept
        done = await self._store.job(job.id)
        if done is not None:
            await self._notify(JobUpdate(done, Phase.DONE))

    async def _post_with_retries(self, job: Job, path: Path, info: VideoInfo) -> int | None:
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
                    return await self._deliver(job, path, info)
        except DeliveryFailed as exc:
            path.unlink(missing_ok=True)
            await self._fail(job, "delivery_failed", exc.user_message)
        return None

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

    def _drop_image(self, job: Job) -> None:
        if job.image_path:
            Path(job.image_path).unlink(missing_ok=True)

    async def _fail(self, job: Job, code: str, message: str) -> None:
        """Fail and refund, exactly once; tell the member."""
        self._release(job)
        if await self._store.fail_job(job.id, code, message):
            log.info("job %s failed (%s); %d s refunded", job.id, code, job.seconds)
            self._drop_image(job)
            (self._work_dir / "videos" / f"{job.id}.mp4").unlink(missing_ok=True)
            failed = await self._store.job(job.id) or job
            await self._notify(JobUpdate(failed, Phase.FAILED, message=message, refunded=True))

    async def _notify(self, update: JobUpdate) -> None:
        if self._on_update is None:
            return
        try:
            await self._on_update(update)
        except Exception:
            log.exception("status update for job %s failed", update.job.id)
