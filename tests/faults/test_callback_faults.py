"""Callbacks lost, repeated, reordered and forged: a callback is only a hint, so none of
them loses a job, posts twice or posts what the provider did not make."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from tests.faults.support import assert_clean, books, fault_world, settle, videos

pytestmark = pytest.mark.timeout(60)

# With callbacks on, the safety poll is set far away: only callbacks can wake a job.
CALLBACKS_ONLY = {"poll_first_s": 30.0, "poll_interval_s": 30.0}


async def test_lost_callbacks_are_covered_by_polling(tmp_path: Path) -> None:
    async with fault_world(tmp_path, callbacks=True) as (w, fake):
        fake.callback_mode = "drop"
        await videos(w, ["fox", "owl", "hare"])
        assert_clean(await books(w, await settle(w, 3)), delivered=3)
        assert not fake.callbacks_sent


async def test_repeated_callbacks_give_one_video_each(tmp_path: Path) -> None:
    async with fault_world(tmp_path, callbacks=True, **CALLBACKS_ONLY) as (w, fake):
        fake.callback_mode, fake.callback_duplicates = "duplicate", 5
        await videos(w, ["fox", "owl", "hare"])
        jobs = await settle(w, 3, within=15)
        await fake.wait_until(lambda: len(fake.callbacks_delivered) >= 15)
        await asyncio.sleep(0.5)
        assert_clean(await books(w, jobs), delivered=3)


async def test_reordered_callbacks(tmp_path: Path) -> None:
    """Each callback arrives before the submit call returns; afterwards every callback
    is replayed, newest first, to every job: nothing changes."""
    async with fault_world(tmp_path, callbacks=True, **CALLBACKS_ONLY) as (w, fake):
        fake.callback_mode = "early"
        await videos(w, ["fox", "owl", "hare"])
        jobs = await settle(w, 3, within=15)
        assert_clean(await books(w, jobs), delivered=3)
        sent = list(reversed(fake.callbacks_sent))
        urls = sorted({c.url for c in sent})
        assert len(urls) == 3
        async with aiohttp.ClientSession() as client:
            for url in urls:
                for callback in sent:
                    async with client.post(url, json=callback.payload) as resp:
                        assert resp.status == 200
        await asyncio.sleep(0.5)
        assert_clean(await books(w, await settle(w, 3)), delivered=3)
        assert fake.submits_accepted == 3


async def test_forged_callbacks_post_nothing(tmp_path: Path) -> None:
    async with fault_world(tmp_path, callbacks=True, **CALLBACKS_ONLY) as (w, fake):
        fake.callback_mode, fake.task_s = "drop", 60.0  # rendering until we say so
        await videos(w, ["fox", "owl"])
        await fake.wait_until(lambda: fake.submits_accepted == 2)
        await asyncio.sleep(0.3)
        jobs = await w.bot.store.jobs_for(w.guild, None)
        base = f"http://127.0.0.1:{w.bot.webhook.port}/callbacks"
        async with aiohttp.ClientSession() as client:
            for job in jobs:
                forged = {"code": 200, "message": "success", "data": {
                    "taskId": job.task_id, "state": "success",
                    "resultJson": json.dumps({"resultUrls": ["http://127.0.0.1:9/evil.mp4"]})}}
                token = w.bot.jobs.token_for(job.id)
                for url, expected in ((f"{base}/apixo/{token}", 200),
                                      (f"{base}/apixo/{'A' * 43}", 404),
                                      (f"{base}/pixazo/{token}", 404)):
                    for _ in range(5):
                        async with client.post(url, json=forged) as resp:
                            assert resp.status == expected
        await asyncio.sleep(1.5)
        # Asked, the provider still says "rendering": nothing posted, nothing ended.
        assert w.videos() == []
        assert all(j.state.value == "submitted" for j in await w.bot.store.jobs_for(w.guild, None))
        for task_id in list(fake.tasks):
            fake.finish_now(task_id)
        for job in jobs:  # the real news, as a lost callback would have brought it
            await w.bot.jobs.handle_callback("apixo", w.bot.jobs.token_for(job.id), b"{}")
        jobs = await settle(w, 2, within=15)
        assert_clean(await books(w, jobs), delivered=2)
        assert not [r for r in fake.requests if "evil" in r.path]
