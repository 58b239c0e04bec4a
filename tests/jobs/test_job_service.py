"""The job service against the provider emulators: waiting, callbacks, refunds."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import pytest

from bot.jobs.types import DeliveryFailed
from bot.store import QuotaExceeded, QuotaSettings
from tests.fakes.aivideoapi import FakeAivideoapi
from tests.fakes.apixo import FakeApixo
from tests.fakes.common import make_mp4
from tests.fakes.pixazo import FakePixazo
from tests.jobs.support import Harness, harness


def apixo_harness(tmp_path: Path, fake: FakeApixo, **kw: object):  # type: ignore[no-untyped-def]
    return harness(tmp_path, provider="apixo", base_url=fake.api_base, api_key=fake.api_key, **kw)


async def assert_delivered_once(h: Harness, job_id: str, fake: FakeApixo | None = None) -> None:
    job = await h.wait_state(job_id, "delivered", "failed")
    assert job.state.value == "delivered", job.error_message
    assert h.recorder.calls.count(job_id) == 1
    assert job.charge.value == "committed"
    assert await h.store.ledger_balance(job_id) == job.seconds
    if fake is not None:
        task = fake.tasks[job.task_id or ""]
        assert h.recorder.posted[job_id] == make_mp4(float(task.duration), *task.video_size)


async def test_polling_only_delivers_and_commits(tmp_path: Path) -> None:
    async with FakeApixo() as fake, apixo_harness(tmp_path, fake) as h:
        job = await h.request()
        await assert_delivered_once(h, job.id)
        assert fake.submits_accepted == 1
        assert not fake.callbacks_sent  # no callback URL was given
        phases = h.recorder.phases(job.id)
        assert phases[-1] == "done" and "rendering" in phases and "posting" in phases


@pytest.mark.parametrize("fake_cls", [FakeApixo, FakeAivideoapi, FakePixazo])
async def test_callback_wakes_the_job_long_before_the_poll(tmp_path: Path, fake_cls: type) -> None:
    async with fake_cls() as fake:
        name = {"FakeApixo": "apixo", "FakeAivideoapi": "aivideoapi", "FakePixazo": "pixazo"}[
            fake_cls.__name__]
        base = fake.api_base if name == "apixo" else fake.base_url
        model = "sora-2-pro" if name == "pixazo" else "sora-2"
        async with harness(tmp_path, provider=name, base_url=base, api_key=fake.api_key,
                           model=model, callbacks=True, poll_first_s=60, poll_interval_s=60) as h:
            job = await h.request()
            done = await h.wait_state(job.id, "delivered", "failed", within=10)
            assert done.state.value == "delivered", done.error_message
            assert fake.callbacks_delivered, "the provider's callback reached the bot"
            assert fake.submits_accepted == 1


async def test_duplicate_callbacks_give_one_delivery(tmp_path: Path) -> None:
    async with FakeApixo() as fake, apixo_harness(
        tmp_path, fake, callbacks=True, poll_first_s=60, poll_interval_s=60
    ) as h:
        fake.callback_mode = "duplicate"
        job = await h.request()
        await assert_delivered_once(h, job.id)
        await fake.wait_until(lambda: len(fake.callbacks_delivered) >= 3)
        await asyncio.sleep(0.3)
        assert h.recorder.calls.count(job.id) == 1


async def test_early_callback_before_submit_returns(tmp_path: Path) -> None:
    async with FakeApixo() as fake, apixo_harness(
        tmp_path, fake, callbacks=True, poll_first_s=60, poll_interval_s=60
    ) as h:
        fake.callback_mode = "early"
        job = await h.request()
        await assert_delivered_once(h, job.id)
        assert fake.submits_accepted == 1


async def test_lost_callbacks_are_covered_by_the_safety_poll(tmp_path: Path) -> None:
    async with FakeApixo() as fake, apixo_harness(tmp_path, fake, callbacks=True) as h:
        fake.callback_mode = "drop"
        job = await h.request()
        await assert_delivered_once(h, job.id)
        assert not fake.callbacks_sent


async def test_forged_callbacks_change_nothing(tmp_path: Path) -> None:
    async with FakeApixo(task_s=1.5) as fake, apixo_harness(
        tmp_path, fake, callbacks=True, poll_first_s=60, poll_interval_s=60
    ) as h:
        fake.callback_mode = "drop"
        job = await h.request()
        running = await h.wait_state(job.id, "submitted")
        forged = {
            "code": 200, "message": "success",
            "data": {"taskId": running.task_id, "state": "success",
                     "resultJson": json.dumps({"resultUrls": ["http://127.0.0.1:9/evil.mp4"]})},
        }
        base = f"http://127.0.0.1:{h.server.port}/callbacks"
        token = h.service.token_for(job.id)
        async with aiohttp.ClientSession() as client:
            async with client.post(f"{base}/apixo/{token}", json=forged) as resp:
                assert resp.status == 200  # a hint is always welcome...
            async with client.post(f"{base}/apixo/not-a-token", json=forged) as resp:
                assert resp.status == 404
            async with client.post(f"{base}/pixazo/{token}", json=forged) as resp:
                assert resp.status == 404  # right token, wrong provider
            async with client.post(f"{base}/apixo/{token}", data=b"x" * 100_000) as resp:
                assert resp.status == 413
        await asyncio.sleep(0.3)
        # ...but only the status endpoint is trusted: the job is still rendering.
        still = await h.store.job(job.id)
        assert still is not None and still.state.value == "submitted"
        assert not h.recorder.calls
        # Lost callback: poll after the real finish to let the safety net pick it up.
        fake.finish_now(running.task_id or "")
        await h.service.handle_callback("apixo", token, b"{}")
        await assert_delivered_once(h, job.id, fake)


@pytest.mark.parametrize("code", ["SensitiveContentDetected", "Timeout", "Unknown error"])
async def test_provider_failure_refunds(tmp_path: Path, code: str) -> None:
    async with FakeApixo() as fake, apixo_harness(tmp_path, fake) as h:
        fake.outcome = code
        quota = QuotaSettings(seconds=8, period="day")
        job = await h.request(duration=8, quota=quota)
        usage = await h.store.usage(1, 7, quota)
        assert usage.guild_remaining == 0
        failed = await h.wait_state(job.id, "failed")
        assert failed.charge.value == "refunded"
        assert await h.store.ledger_balance(job.id) == 0
        assert (await h.store.usage(1, 7, quota)).guild_remaining == 8
        last = h.recorder.updates[-1]
        assert last.phase.value == "failed" and last.refunded and last.message


async def test_submit_errors_refund_without_retry(tmp_path: Path) -> None:
    async with FakeApixo() as fake, apixo_harness(tmp_path, fake) as h:
        fake.balance_exhausted = True
        job = await h.request()
        failed = await h.wait_state(job.id, "failed")
        assert failed.error_code == "insufficient_balance"
        assert await h.store.ledger_balance(job.id) == 0
        assert len(fake.requests_to("POST", "/api/v1/generateTask")) == 1


async def test_uncertain_submit_is_never_resent(tmp_path: Path) -> None:
    async with FakeApixo() as fake, apixo_harness(tmp_path, fake) as h:
        fake.submit_5xx_after_create = True
        job = await h.request()
        failed = await h.wait_state(job.id, "failed")
        assert failed.error_code == "submit_uncertain"
        assert len(fake.requests_to("POST", "/api/v1/generateTask")) == 1
        assert await h.store.ledger_balance(job.id) == 0


async def test_two_429s_then_one_task(tmp_path: Path) -> None:
    async with FakeApixo() as fake, apixo_harness(tmp_path, fake) as h:
        fake.fail_submits_with_429 = 2
        fake.retry_after = 0.1
        job = await h.request()
        await assert_delivered_once(h, job.id)
        assert fake.submits_accepted == 1
        assert len(fake.requests_to("POST", "/api/v1/generateTask")) == 3


async def test_never_finishing_job_times_out_and_refunds(tmp_path: Path) -> None:
    async with FakeApixo(task_s=60) as fake, apixo_harness(tmp_path, fake, job_timeout_s=0.6) as h:
        job = await h.request()
        failed = await h.wait_state(job.id, "failed")
        assert failed.error_code == "timed_out"
        assert await h.store.ledger_balance(job.id) == 0


async def test_delivery_retries_transient_and_refunds_permanent(tmp_path: Path) -> None:
    async with FakeApixo() as fake, apixo_harness(tmp_path, fake) as h:
        h.recorder.failures.append(DeliveryFailed("Discord said 500", permanent=False))
        job = await h.request()
        await assert_delivered_once_after_retry(h, job.id)
        h.recorder.failures.append(DeliveryFailed("Missing permissions", permanent=True))
        second = await h.request()
        failed = await h.wait_state(second.id, "failed", within=20)
        assert failed.error_code == "delivery_failed"
        assert await h.store.ledger_balance(second.id) == 0
        assert fake.submits_accepted == 2


async def assert_delivered_once_after_retry(h: Harness, job_id: str) -> None:
    job = await h.wait_state(job_id, "delivered", "failed", within=20)
    assert job.state.value == "delivered"
    assert h.recorder.calls.count(job_id) == 2 and job_id in h.recorder.posted


async def test_quota_refusal_writes_nothing_and_calls_no_provider(tmp_path: Path) -> None:
    async with FakeApixo() as fake, apixo_harness(tmp_path, fake) as h:
        quota = QuotaSettings(seconds=4, period="day")
        await h.request(quota=quota)
        with pytest.raises(QuotaExceeded) as refused:
            await h.request(quota=quota)
        assert refused.value.reason == "guild"
        await asyncio.sleep(0.3)
        assert fake.submits_accepted == 1


async def test_queue_positions_when_the_provider_is_full(tmp_path: Path) -> None:
    async with FakeApixo(task_s=1.0) as fake, apixo_harness(tmp_path, fake) as h:
        limit = 10  # the catalog's concurrency limit for APIXO sora-2
        jobs = [await h.request() for _ in range(limit + 2)]
        await asyncio.sleep(0.3)
        assert fake.submits_accepted == limit
        queued = [u for u in h.recorder.updates if u.phase.value == "queued"]
        assert [u.position for u in queued] == [1, 2]
        assert h.service.position(jobs[-1]) == 2
        for job in jobs:
            await assert_delivered_once(h, job.id)
        assert fake.submits_accepted == limit + 2


async def test_cancel_queued_job_refunds(tmp_path: Path) -> None:
    async with FakeApixo(task_s=2.0) as fake, apixo_harness(tmp_path, fake) as h:
        jobs = [await h.request() for _ in range(11)]
        await asyncio.sleep(0.2)
        job, refunded = await h.service.cancel(jobs[-1].id, "cancelled by the member")
        assert job is not None and job.state.value == "cancelled" and refunded
        assert await h.store.ledger_balance(jobs[-1].id) == 0
        # A job already at the provider: not refunded while the provider says it runs.
        job, refunded = await h.service.cancel(jobs[0].id, "cancelled")
        assert job is not None and job.state.value == "cancelled" and not refunded
        assert fake.submits_accepted == 10


async def test_restart_mid_wait_resumes_without_a_second_task(tmp_path: Path) -> None:
    async with FakeApixo(task_s=1.0) as fake:
        async with apixo_harness(tmp_path, fake) as h:
            job = await h.request()
            await h.wait_state(job.id, "submitted")
        # The service stopped while the provider was still rendering; a new one resumes.
        async with apixo_harness(tmp_path, fake) as h2:
            await assert_delivered_once(h2, job.id)
        assert fake.submits_accepted == 1


async def test_health_endpoint(tmp_path: Path) -> None:
    async with (
        FakeApixo() as fake,
        apixo_harness(tmp_path, fake) as h,
        aiohttp.ClientSession() as client,
        client.get(f"http://127.0.0.1:{h.server.port}/healthz") as resp,
    ):
        assert resp.status == 200
        assert (await resp.json())["database"] is True


async def test_old_working_files_are_swept_but_running_jobs_keep_theirs(tmp_path: Path) -> None:
    async with FakeApixo(task_s=5.0) as fake, apixo_harness(tmp_path, fake) as h:
        running = await h.request()
        images = tmp_path / "work" / "images"
        (images / f"{running.id}.png").write_bytes(b"in use")
        (images / f"{'0' * 32}.jpg").write_bytes(b"kept for Retry, now too old")
        (tmp_path / "work" / "videos" / f"{'1' * 32}.mp4").write_bytes(b"leftover")
        assert await h.service.sweep_files() == 0  # nothing is a day old yet
        removed = await h.service.sweep_files(now=time.time() + 2 * 24 * 3600)
        assert removed == 2
        assert [p.name for p in images.iterdir()] == [f"{running.id}.png"]
