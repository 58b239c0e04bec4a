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
import logging
import secrets
import time
import uuid
from pathlib import Path

from bot.catalog import UnknownModel, get_model
from bot.jobs import files as jobfiles
from bot.jobs.deliver import DeliverySteps
from bot.jobs.result import ResultSteps
from bot.jobs.submit import SubmitSteps
from bot.jobs.types import JobUpdate, Phase
from bot.providers.base import SourceImage, TaskState
from bot.providers.errors import ProviderError
from bot.store import Job, JobState, NewJob, QuotaSettings

log = logging.getLogger(__name__)

# Source images are kept this long for the Retry button, then swept away.
KEEP_FILES_S = 24 * 3600
SWEEP_EVERY_S = 3600
INTERNAL_ERROR_MESSAGE = (
    "Something went wrong on the bot's side. Please try again, and tell a moderator "
    "if it keeps happening."
)

class JobService(SubmitSteps, ResultSteps, DeliverySteps):
    async def start(self) -> None:
        """Load the callback secret and resume every unfinished job."""
        secret = await self._store.meta_setdefault("callback_secret", secrets.token_hex(32))
        self._secret = bytes.fromhex(secret)
        for sub in ("images", "videos"):
            (self._work_dir / sub).mkdir(parents=True, exist_ok=True)
        jobs = await self._store.unfinished_jobs()
        for job in jobs:
            # Only a task still rendering holds a provider slot; a succeeded job's
            # provider work is over (its delivery never releases a slot).
            if job.state is JobState.SUBMITTED:
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

    async def request(
        self, new: NewJob, quota: QuotaSettings, image: SourceImage | None = None
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
        refund = job.state in (JobState.REQUESTED, JobState.RESERVED)
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
        finally:
            # Every path out of a run gives its provider slot back (a no-op when the
            # job holds none): a slot is never left behind by a finished job.
            self._release(found)

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
