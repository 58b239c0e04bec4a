"""A create the provider definitely refused fails the job at once, with a refund."""

from __future__ import annotations

from pathlib import Path

from bot.store import QuotaSettings
from tests.fakes.aivideoapi import FakeAivideoapi
from tests.jobs.support import harness


async def test_upstream_error_on_create_fails_and_refunds_at_once(tmp_path: Path) -> None:
    """aivideoapi's documented 503 upstream_error: no task exists, so the job must not wait
    for a callback until JOB_TIMEOUT_S (here 600 s) as an uncertain submit would; it fails
    within the bounded wait below, refunded, after exactly one create."""
    async with FakeAivideoapi() as fake, harness(
        tmp_path, provider="aivideoapi", base_url=fake.base_url, api_key=fake.api_key,
        callbacks=True, job_timeout_s=600,
    ) as h:
        fake.upstream_refusals = 1
        quota = QuotaSettings(seconds=8, period="day")
        job = await h.request(duration=8, quota=quota)
        assert (await h.store.usage(1, 7, quota)).guild_remaining == 0
        failed = await h.wait_state(job.id, "failed", "delivered", within=10)
        assert failed.state.value == "failed"
        assert failed.error_code == "upstream_refused"
        assert failed.charge.value == "refunded"
        assert await h.store.ledger_balance(job.id) == 0
        assert (await h.store.usage(1, 7, quota)).guild_remaining == 8
        last = h.recorder.updates[-1]
        assert last.phase.value == "failed" and last.refunded
        assert last.message and "upstream" in last.message
        assert len(fake.requests_to("POST", "/v1/videos/generations")) == 1
        assert fake.submits_accepted == 0
        # The slot was given back: the next job goes through and is delivered.
        second = await h.request(duration=4)
        done = await h.wait_state(second.id, "delivered", "failed", within=10)
        assert done.state.value == "delivered", done.error_message


async def test_a_bare_gateway_error_on_create_stays_uncertain(tmp_path: Path) -> None:
    """The counterpart: a gateway's own 502 page may hide a created task; with callbacks
    on, the job waits for the provider's callback naming it, and is delivered."""
    async with FakeAivideoapi() as fake, harness(
        tmp_path, provider="aivideoapi", base_url=fake.base_url, api_key=fake.api_key,
        callbacks=True, job_timeout_s=600,
    ) as h:
        fake.submit_5xx_after_create = True
        job = await h.request(duration=4)
        done = await h.wait_state(job.id, "delivered", "failed", within=15)
        assert done.state.value == "delivered", done.error_message
        assert len(fake.requests_to("POST", "/v1/videos/generations")) == 1
        assert fake.submits_accepted == 1
