"""The database going away for a moment never costs a member a video or a refund they
should not get: a write that follows something the member or the provider has seen is
retried; a job's task waits the outage out and carries on from its stored state; a job
left without a task is resumed by the process that holds it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.store import QuotaSettings
from tests.dbfaults import Outage
from tests.fakes.apixo import FakeApixo
from tests.jobs.support import Harness, Recorder, harness

pytestmark = pytest.mark.timeout(90)


def apixo(tmp_path: Path, fake: FakeApixo, **kw: object):  # type: ignore[no-untyped-def]
    return harness(tmp_path, provider="apixo", base_url=fake.api_base, api_key=fake.api_key,
                   **kw)


async def delivered_once(h: Harness, job_id: str, within: float = 30.0) -> None:
    job = await h.wait_state(job_id, "delivered", "failed", within=within)
    assert job.state.value == "delivered", (job.error_code, job.error_message)
    assert job.charge.value == "committed"
    assert h.recorder.calls.count(job_id) == 1
    assert await h.store.ledger_balance(job_id) == job.seconds


class PostThenOutage(Recorder):
    """Discord takes the post; right after, the database goes away for a moment."""

    outage: Outage

    async def deliver(self, job, video, info):  # type: ignore[no-untyped-def]
        message = await super().deliver(job, video, info)
        self.outage.start(1.0)
        return message


async def test_a_posted_video_is_never_refunded_when_recording_the_post_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = PostThenOutage()
    recorder.outage = Outage(monkeypatch)
    async with FakeApixo() as fake, apixo(tmp_path, fake, recorder=recorder) as h:
        job = await h.request()
        await delivered_once(h, job.id)
        assert recorder.outage.failed > 0
        assert [u.phase.value for u in h.recorder.updates if u.job.id == job.id][-1] == "done"


async def test_a_finished_render_is_kept_when_recording_it_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outage = Outage(monkeypatch)
    async with FakeApixo() as fake, apixo(tmp_path, fake) as h:
        outage.arm(at="video_url = ?", times=1)  # mark_succeeded fails once
        job = await h.request()
        await delivered_once(h, job.id)
        assert outage.failed > 0
        assert fake.submits_accepted == 1


async def test_a_task_the_provider_accepted_is_kept_when_recording_it_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outage = Outage(monkeypatch)
    async with FakeApixo() as fake, apixo(tmp_path, fake) as h:
        outage.arm(at="SELECT state, task_id FROM jobs", times=1)  # mark_submitted, once
        job = await h.request()
        await delivered_once(h, job.id)
        assert outage.failed > 0
        assert fake.submits_accepted == 1  # never sent twice


async def test_jobs_that_meet_an_outage_are_not_stranded_and_hold_no_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten jobs of a model with ten slots meet the outage as they ask for their slot; once
    the database answers they all carry on, and a later job is not stuck behind them.
    (The outage is shorter than the lease: the jobs stay leased to this live process.)"""
    outage = Outage(monkeypatch)
    quota = QuotaSettings(seconds=10_000)
    async with FakeApixo(task_s=0.3) as fake, apixo(tmp_path, fake) as h:
        outage.arm(at="SELECT provider, model, slot, state", seconds=0.6)  # take_slot
        jobs = await asyncio.gather(*(h.request(user_id=i, quota=quota) for i in range(10)))
        await outage.over()
        late = await h.request(user_id=99, quota=quota)
        for job in [*jobs, late]:
            await delivered_once(h, job.id, within=45)
        assert outage.failed >= 10
        assert fake.submits_accepted == 11
        assert await h.store.slots_in_use("apixo", "sora-2") == 0


async def test_a_job_held_with_no_task_is_resumed_by_its_own_process(tmp_path: Path) -> None:
    """A job whose task ended without ending it (its lease held by this live process) is
    picked up again here, without waiting for another process to take it over."""
    async with FakeApixo() as fake, apixo(tmp_path, fake) as h:
        service = h.service
        real_spawn = service._spawn
        service._spawn = lambda job_id: None  # type: ignore[method-assign]
        job = await h.request()  # reserved and leased here; no task runs it
        assert (await h.store.job(job.id)).owner == service.owner  # type: ignore[union-attr]
        service._spawn = real_spawn  # type: ignore[method-assign]
        await delivered_once(h, job.id, within=15)


@pytest.mark.parametrize("callbacks", [False, True])
async def test_a_refund_after_a_refused_create_waits_out_the_outage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, callbacks: bool
) -> None:
    """The provider refused the create outright; the refund's write meets the database
    away once. The refund is written when it answers: the member hears why at once, not
    "the provider may have the request" after the job's deadline."""
    outage = Outage(monkeypatch)
    async with FakeApixo() as fake, harness(
            tmp_path, provider="apixo", base_url=fake.api_base, api_key=fake.api_key,
            callbacks=callbacks, job_timeout_s=20) as h:
        outage.arm(at="UPDATE jobs SET state = ?, charge = ?", times=1)  # fail_job, once
        job = await h.request(prompt="a forbidden-topic fox")
        ended = await h.wait_state(job.id, "failed", "delivered", within=15)
        assert outage.failed == 1 and fake.submits_accepted == 0
        assert ended.error_code != "submit_uncertain", ended.error_message
        assert ended.charge.value == "refunded"
