"""Scale-out state on both backends: job leases, provider slots, member locks, served
images and notifications between stores sharing one database."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

import bot.store.leases as leases_module
from bot.quota import QuotaSettings
from bot.store import Job, Store
from tests.store.test_store import new_job

QUOTA = QuotaSettings(seconds=100_000)


async def reserve(store: Store, n: int = 1, **changes: object) -> list[Job]:
    jobs = []
    for i in range(n):
        job, _ = await store.reserve(new_job(prompt=f"job {i}", **changes), QUOTA,
                                     now=time.time() + i * 0.001)
        jobs.append(job)
    return jobs


async def second_store(store: Store, db_target: str | Path) -> Store:
    """Another process's view of the same database (its own connection or pool)."""
    return await Store.open(db_target)


async def test_a_lease_keeps_a_job_until_it_runs_out(store: Store) -> None:
    (job,) = await reserve(store, owner="a", lease_until=time.time() + 30)
    assert job.owner == "a"
    assert not await store.claim_job(job.id, "b", 30)  # a live peer holds it
    assert await store.claimable_jobs() == []
    later = time.time() + 31
    assert await store.claimable_jobs(now=later) == [job.id]
    assert await store.claim_job(job.id, "b", 30, now=later)
    assert await store.renew_leases("a", 30, {job.id}) == set()  # "a" lost it
    assert await store.renew_leases("b", 30, {job.id}) == {job.id}
    assert await store.leases_held("b") == 1


async def test_only_the_leases_of_running_jobs_are_renewed(store: Store) -> None:
    """A job whose task ended without ending it is not renewed: its lease runs out and
    it is claimed again (a process renewing every row it owned kept such a job, its
    seconds and its provider slot, for good)."""
    now = time.time()
    running, orphan = await reserve(store, 2, owner="a", lease_until=now + 30)
    assert await store.jobs_held("a") == {running.id, orphan.id}
    assert await store.renew_leases("a", 30, {running.id}, now=now + 20) == {running.id}
    later = now + 31
    assert await store.claimable_jobs(now=later) == [orphan.id]
    assert await store.claim_job(orphan.id, "b", 30, now=later)
    assert await store.jobs_held("a") == {running.id}
    many = {f"{i:032x}" for i in range(1200)}  # more ids than one statement takes
    assert await store.renew_leases("a", 30, many | {running.id}) == {running.id}


async def test_released_leases_are_free_at_once_and_finished_jobs_hold_none(
    store: Store
) -> None:
    first, second = await reserve(store, 2, owner="a", lease_until=time.time() + 30)
    assert await store.release_leases("a", [first.id]) == 1
    assert await store.claimable_jobs() == [first.id]
    assert await store.release_leases("a") == 1
    assert set(await store.claimable_jobs()) == {first.id, second.id}
    assert await store.claim_job(second.id, "b", 30)
    assert await store.fail_job(second.id, "x", "failed")
    assert await store.leases_held("b") == 0
    assert not await store.claim_job(second.id, "b", 30)  # a finished job is nobody's


async def test_slots_are_first_come_first_served_and_given_back_by_the_job(
    store: Store
) -> None:
    j1, j2, j3, j4 = await reserve(store, 4)
    assert await store.take_slot(j1.id, 2)
    assert not await store.take_slot(j3.id, 2)  # j2 asked earlier and still waits
    assert (await store.waiting_jobs("sandbox", "sora-2")).index(j3.id) == 1  # 2nd
    assert await store.take_slot(j2.id, 2)
    assert await store.take_slot(j2.id, 2)  # already held: still true, still one slot
    assert await store.slots_in_use("sandbox", "sora-2") == 2
    assert await store.waiting_jobs("sandbox", "sora-2") == [j3.id, j4.id]
    assert not await store.take_slot(j3.id, 2)  # full
    assert await store.mark_submitting(j1.id) and await store.mark_submitted(j1.id, "t1")
    assert await store.take_slot(j1.id, 2)  # a submitted job keeps its slot
    assert await store.mark_succeeded(j1.id, "https://cdn.example/v.mp4")  # render done
    assert await store.take_slot(j3.id, 2)
    assert await store.fail_job(j2.id, "x", "failed")  # ending a job gives its slot back
    assert (await store.waiting_jobs("sandbox", "sora-2"))[0] == j4.id
    assert await store.take_slot(j4.id, 2)
    assert await store.slots_in_use("sandbox", "sora-2") == 2


async def test_two_stores_racing_never_exceed_the_limit(
    store: Store, db_target: str | Path
) -> None:
    other = await second_store(store, db_target)
    try:
        jobs = await reserve(store, 30)
        limit = 3
        peak = 0

        async def worker(s: Store, mine: list[Job]) -> None:
            nonlocal peak
            for job in mine:
                while not await s.take_slot(job.id, limit):  # noqa: ASYNC110 (racing)
                    await asyncio.sleep(0.001)
                peak = max(peak, await s.slots_in_use("sandbox", "sora-2"))
                assert await s.fail_job(job.id, "done", "done")

        await asyncio.wait_for(asyncio.gather(
            worker(store, jobs[0::2]), worker(other, jobs[1::2])), 60)
        assert 1 <= peak <= limit
        assert await store.slots_in_use("sandbox", "sora-2") == 0
    finally:
        await other.close()


async def test_the_member_lock_is_shared_and_expires(
    store: Store, db_target: str | Path
) -> None:
    other = await second_store(store, db_target)
    try:
        now = time.time()
        assert await store.lock_member(1, 2, "a", 30, now=now)
        assert not await other.lock_member(1, 2, "b", 30, now=now + 1)
        assert await other.lock_member(1, 3, "b", 30, now=now + 1)  # another member
        await other.unlock_member(1, 2, "b")  # not the holder: changes nothing
        assert not await other.lock_member(1, 2, "b", 30, now=now + 2)
        assert await other.lock_member(1, 2, "b", 30, now=now + 31)  # a dead holder's lock
        await other.unlock_member(1, 2, "b")
        assert await store.lock_member(1, 2, "a", 30, now=now + 32)
    finally:
        await other.close()


async def test_served_images_any_store_reads_them_and_they_are_bounded(
    store: Store, db_target: str | Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = await second_store(store, db_target)
    try:
        monkeypatch.setattr(leases_module, "IMAGE_KEEP_COUNT", 3)
        now = time.time()
        for i in range(5):
            await store.put_image(f"img{i}.png", bytes([i]) * 10, "image/png", now=now + i)
        assert await other.get_image("img4.png", now=now + 4) == (bytes([4]) * 10, "image/png")
        assert await other.get_image("img1.png", now=now + 4) is None  # the oldest went
        kept = [n for n in range(5) if await other.get_image(f"img{n}.png", now=now + 4)]
        assert kept == [2, 3, 4]
        later = now + leases_module.IMAGE_KEEP_S + 10
        assert await other.get_image("img4.png", now=later) is None  # expired
    finally:
        await other.close()


async def test_notifications_reach_every_store_on_the_database(
    store: Store, db_target: str | Path
) -> None:
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = store if store.dialect == "sqlite" else await second_store(store, db_target)
    try:
        await listener.listen("bot_test", heard.put_nowait)
        await store.notify("bot_test", "job-42")
        assert await asyncio.wait_for(heard.get(), 10) == "job-42"
    finally:
        if listener is not store:
            await listener.close()
