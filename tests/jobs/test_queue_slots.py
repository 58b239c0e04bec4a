"""Provider queue slots (flags on the job rows): each is given back exactly once, on every
path (restarts and cancelled waiters included), so the queue never stalls."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.jobs.queueing import SlotQueue
from bot.jobs.types import JobUpdate
from bot.media.video import HeldVideo, VideoInfo
from bot.quota import QuotaSettings
from bot.store import Job, NewJob, Store
from tests.fakes.apixo import FakeApixo
from tests.jobs.support import Recorder, harness

LIMIT = 10  # the catalog's max_concurrent for APIXO sora-2


class HeldRecorder(Recorder):
    """Never finishes a post: the jobs stay `succeeded` until the service stops."""

    async def deliver(self, job: Job, video: HeldVideo, info: VideoInfo) -> int:
        self.calls.append(job.id)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_restart_with_succeeded_jobs_then_a_full_queue_never_stalls(
    tmp_path: Path,
) -> None:
    async with FakeApixo(task_s=0.2) as fake:
        held = HeldRecorder()
        async with harness(tmp_path, provider="apixo", base_url=fake.api_base,
                           api_key=fake.api_key, recorder=held) as h:
            first = [await h.request() for _ in range(LIMIT)]
            for job in first:
                await h.wait_state(job.id, "succeeded")
            await asyncio.sleep(0.1)  # every delivery is under way (and held)
        # Restart with LIMIT succeeded jobs still to post.
        async with harness(tmp_path, provider="apixo", base_url=fake.api_base,
                           api_key=fake.api_key) as h2:
            for job in first:
                done = await h2.wait_state(job.id, "delivered", "failed")
                assert done.state.value == "delivered", done.error_message
            # More jobs than the model takes at once: each must still get a slot.
            more = [await h2.request() for _ in range(LIMIT + 2)]
            for job in more:
                done = await h2.wait_state(job.id, "delivered", "failed", within=20)
                assert done.state.value == "delivered", done.error_message
            assert fake.submits_accepted == 2 * LIMIT + 2
            assert h2.service._queue(more[0]).waiting == 0
            assert await h2.store.slots_in_use("apixo", "sora-2") == 0


class SlowStatusRecorder(Recorder):
    """Telling the member a job is queued takes long (a slow Discord edit, say)."""

    async def on_update(self, update: JobUpdate) -> None:
        self.updates.append(update)
        if update.phase.value == "queued":
            await asyncio.sleep(30)


async def test_a_waiting_job_holds_no_task_and_cancelling_it_leaves_nothing(
    tmp_path: Path,
) -> None:
    async with FakeApixo(task_s=0.5) as fake, harness(
        tmp_path, provider="apixo", base_url=fake.api_base, api_key=fake.api_key,
        recorder=SlowStatusRecorder(),
    ) as h:
        jobs = [await h.request() for _ in range(LIMIT + 1)]
        last = jobs[-1]

        def queued() -> bool:
            return any(u.phase.value == "queued" for u in h.recorder.updates
                       if u.job.id == last.id)

        for _ in range(200):
            if queued():
                break
            await asyncio.sleep(0.02)
        assert queued(), "the last job waits in line (and is told its place)"
        queue = h.service._queue(last)
        assert queue.waiting == 1 and h.service.position(last) == 1
        assert last.id not in h.service._tasks, "a waiting job has no task"
        assert not [t for t in asyncio.all_tasks() if t.get_name() == f"job-{last.id}"]
        # A slow status edit (the member being told the place) holds up no grant.
        await h.service.cancel(last.id, "cancelled by a test")
        assert queue.waiting == 0 and h.service.position(last) is None
        for job in jobs[:-1]:
            await h.wait_state(job.id, "delivered")
        await asyncio.sleep(0.1)
        # Nothing took a freed slot and kept it.
        assert await h.store.slots_in_use("apixo", "sora-2") == 0
        more = [await h.request() for _ in range(LIMIT)]
        for job in more:
            await h.wait_state(job.id, "delivered")
        assert queue.waiting == 0 and await h.store.slots_in_use("apixo", "sora-2") == 0


async def reserve(store: Store, *prompts: str) -> list[str]:
    """One reserved APIXO sora-2 job per prompt, oldest first: their ids."""
    ids = []
    for prompt in prompts:
        new = NewJob(guild_id=1, channel_id=2, user_id=3, provider="apixo", model="sora-2",
                     mode="text-to-video", prompt=prompt, duration=4, orientation="landscape",
                     seconds=4)
        job, _ = await store.reserve(new, QuotaSettings(seconds=600))
        ids.append(job.id)
    return ids


async def test_a_job_ended_elsewhere_leaves_the_line_and_the_next_is_started(
    tmp_path: Path,
) -> None:
    store = await Store.open(tmp_path / "bot.sqlite3")
    try:
        a, b, c = await reserve(store, "a", "b", "c")
        started: list[str] = []
        told: dict[str, int] = {}

        async def on_place(job_id: str, place: int) -> None:
            told[job_id] = place

        queue = SlotQueue(store, "apixo", "sora-2", 1, start=started.append, on_place=on_place)
        assert await queue.acquire(a)
        assert not await queue.acquire(b) and not await queue.acquire(c)
        for _ in range(100):
            if told == {b: 1, c: 2}:
                break
            await asyncio.sleep(0.02)
        assert told == {b: 1, c: 2} and queue.waiting == 2 and not started
        # b is cancelled by another process (its entry here is not told), then a ends.
        assert await store.cancel_job(b, "gone", refund=True)
        assert await store.fail_job(a, "done", "done")
        queue.kick()
        for _ in range(100):
            if started:
                break
            await asyncio.sleep(0.02)
        assert started == [c], "b left the line instead of holding it up; c was started"
        assert queue.waiting == 0 and await store.slots_in_use("apixo", "sora-2") == 1
        assert await queue.acquire(c)  # its slot is on its row: its task goes straight on
        await queue.close()
    finally:
        await store.close()


async def test_an_older_job_that_joins_the_line_later_is_served_first(tmp_path: Path) -> None:
    """A job taken over from a stopped peer joins this process's line after younger
    ones; the line follows the database's order, or the younger front would wait for it
    while it waits behind the front."""
    store = await Store.open(tmp_path / "bot.sqlite3")
    try:
        running, older, younger = await reserve(store, "running", "older", "younger")
        started: list[str] = []
        queue = SlotQueue(store, "apixo", "sora-2", 1, start=started.append)
        assert await queue.acquire(running)
        assert not await queue.acquire(younger)  # here first
        assert not await queue.acquire(older)  # taken over: joins later
        assert await store.fail_job(running, "done", "done")
        queue.kick()
        for _ in range(150):
            if started:
                break
            await asyncio.sleep(0.02)
        assert started == [older]
        assert queue.waiting == 1 and queue.position(younger) is not None
        await queue.close()
    finally:
        await store.close()
