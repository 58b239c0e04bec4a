"""Provider queue slots (flags on the job rows): each is given back exactly once, on every
path (restarts and cancelled waiters included), so the queue never stalls."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.jobs.queueing import SlotQueue
from bot.jobs.types import JobUpdate
from bot.media.video import VideoInfo
from bot.quota import QuotaSettings
from bot.store import Job, NewJob, Store
from tests.fakes.apixo import FakeApixo
from tests.jobs.support import Recorder, harness

LIMIT = 10  # the catalog's max_concurrent for APIXO sora-2


class HeldRecorder(Recorder):
    """Never finishes a post: the jobs stay `succeeded` until the service stops."""

    async def deliver(self, job: Job, path: Path, info: VideoInfo) -> int:
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


async def test_a_cancelled_waiting_job_leaves_no_queue_task_behind(tmp_path: Path) -> None:
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
        assert queued(), "the last job waits in line"
        # The job's task is cancelled while it waits, telling the member (as at shutdown).
        task = h.service._tasks[last.id]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        queue = h.service._queue(last)
        assert queue.waiting == 0
        assert not [t for t in asyncio.all_tasks()
                    if t.get_coro().__qualname__ == "SlotQueue.acquire"], \
            "no task is left waiting for a slot"
        await h.service.cancel(last.id, "cancelled by a test")  # ending it frees its row
        for job in jobs[:-1]:
            await h.wait_state(job.id, "delivered")
        await asyncio.sleep(0.1)
        # No orphan took a freed slot and kept it.
        assert await h.store.slots_in_use("apixo", "sora-2") == 0
        more = [await h.request() for _ in range(LIMIT)]
        for job in more:
            await h.wait_state(job.id, "delivered")
        assert queue.waiting == 0 and await h.store.slots_in_use("apixo", "sora-2") == 0


async def test_a_cancelled_waiter_leaves_the_line_and_the_next_gets_the_slot(
    tmp_path: Path,
) -> None:
    store = await Store.open(tmp_path / "bot.sqlite3")
    try:
        ids = []
        for name in ("a", "b", "c"):
            new = NewJob(guild_id=1, channel_id=2, user_id=3, provider="apixo", model="sora-2",
                         mode="text-to-video", prompt=name, duration=4, orientation="landscape",
                         seconds=4)
            job, _ = await store.reserve(new, QuotaSettings(seconds=600))
            ids.append(job.id)
        a, b, c = ids
        queue = SlotQueue(store, "apixo", "sora-2", 1)
        await queue.acquire(a)
        told: list[int] = []

        async def on_position(place: int) -> None:
            told.append(place)

        waiting_b = asyncio.create_task(queue.acquire(b, on_position))
        waiting_c = asyncio.create_task(queue.acquire(c, on_position))
        for _ in range(100):
            if told.count(2) and queue.waiting == 2:
                break
            await asyncio.sleep(0.02)
        assert sorted(told) == [1, 2] and queue.waiting == 2
        waiting_b.cancel()  # b gives up waiting (its job is then cancelled)
        await asyncio.gather(waiting_b, return_exceptions=True)
        assert await store.cancel_job(b, "gone", refund=True)
        assert await store.fail_job(a, "done", "done")  # a's slot comes free
        queue.kick()
        await asyncio.wait_for(waiting_c, 5)
        assert queue.waiting == 0 and await store.slots_in_use("apixo", "sora-2") == 1
        await queue.close()
    finally:
        await store.close()
