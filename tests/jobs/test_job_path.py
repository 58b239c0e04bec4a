"""The job path's own safeguards: /cancel's compare-and-set, uncertain submits settled by
a callback through passing errors, honest error messages, image decoding off the event
loop, refusing jobs without a server, and the interaction's own time."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import bot.jobs.files as jobfiles
import bot.jobs.intake as intake
import bot.jobs.submit as submit
from bot.app import VideoBot
from bot.catalog import Mode, models_for
from bot.jobs.intake import Refusal, check_options, prepare_image, start_job
from bot.media import images
from bot.store import JobState, NewJob, QuotaSettings, Store
from cogs.launch import job_context
from tests.bot.support import png
from tests.fakes.apixo import FakeApixo
from tests.jobs.support import harness

LIMIT = 10  # the catalog's max_concurrent for APIXO sora-2


def apixo(tmp_path: Path, fake: FakeApixo, **kw: Any):  # type: ignore[no-untyped-def]
    return harness(tmp_path, provider="apixo", base_url=fake.api_base, api_key=fake.api_key,
                   **kw)


# -- /cancel: compare-and-set on the state the decision was made on ----------------------


async def test_cancel_does_not_refund_a_job_that_moved_to_submitting_meanwhile(
    tmp_path: Path,
) -> None:
    async with FakeApixo(task_s=30) as fake, apixo(tmp_path, fake) as h:
        jobs = [await h.request() for _ in range(LIMIT + 1)]
        last = jobs[-1]
        await h.wait_state(jobs[0].id, "submitted")
        assert (await h.store.job(last.id)).state is JobState.RESERVED  # type: ignore[union-attr]
        original = h.store.cancel_job

        async def racing_cancel(job_id: str, *args: Any, **kwargs: Any) -> bool:
            # Between /cancel's read (reserved: refund) and its write, the job's own
            # task takes a slot (leaving the line) and starts its POST. Left in line, the
            # queue would soon start it from `submitting` and resolve it as never sent.
            h.service._leave_queues(job_id)
            assert await h.store.mark_submitting(job_id)
            return await original(job_id, *args, **kwargs)

        h.store.cancel_job = racing_cancel  # type: ignore[method-assign]
        after, refunded = await h.service.cancel(last.id, "cancelled by the member")
        assert not refunded
        assert after is not None and after.state is JobState.SUBMITTING
        assert after.charge.value == "reserved"
        assert await h.store.ledger_balance(last.id) == last.seconds
        task = h.service._tasks.get(last.id)  # (a job waiting in line has no task)
        assert task is None or not task.cancelled()  # its POST is not cut short


# -- a callback names a task whose create was uncertain ----------------------------------


async def test_passing_errors_on_the_named_task_are_retried_not_refunded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(submit, "HINT_RETRY_FIRST_S", 0.05)
    async with FakeApixo() as fake, apixo(tmp_path, fake, callbacks=True) as h:
        fake.submit_5xx_after_create = True  # the create reached it; the answer did not
        fake.retry_after = 0.01
        fake.status_429s = 7  # more than one status call's own 5 attempts absorb
        job = await h.request()
        done = await h.wait_state(job.id, "delivered", "failed", within=20)
        assert done.state.value == "delivered", done.error_message
        assert fake.status_429s == 0
        assert len(fake.requests_to("POST", "/api/v1/generateTask")) == 1
        assert done.charge.value == "committed"


async def test_a_named_task_the_provider_does_not_know_fails_at_once(tmp_path: Path) -> None:
    async with FakeApixo() as fake, apixo(tmp_path, fake, callbacks=True) as h:
        fake.submit_5xx_after_create = True
        fake.callback_mode = "drop"
        job = await h.request()
        await h.wait_state(job.id, "submitting")
        forged = {"code": 200, "data": {"taskId": "task_nobody_made", "state": "success"}}
        assert await h.service.handle_callback("apixo", h.service.token_for(job.id),
                                               json.dumps(forged).encode())
        failed = await h.wait_state(job.id, "failed", within=10)  # not the 30 s deadline
        assert failed.error_code == "submit_uncertain"
        assert failed.charge.value == "refunded"


# -- errors say what happened -------------------------------------------------------------


async def test_a_lookup_bug_is_an_internal_error_not_a_retired_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        return {}["missing"]  # a KeyError bug somewhere in the job path

    monkeypatch.setattr(jobfiles, "build_request", broken)
    async with FakeApixo() as fake, apixo(tmp_path, fake) as h:
        with caplog.at_level(logging.ERROR, logger="bot.jobs"):
            job = await h.request()
            failed = await h.wait_state(job.id, "failed")
        assert failed.error_code == "internal"
        assert "no longer offered" not in (failed.error_message or "")
        assert failed.charge.value == "refunded"
        logged = [r for r in caplog.records if job.id in r.getMessage()]
        assert logged and logged[0].exc_info is not None  # logged with its traceback
        assert "apixo/sora-2" in logged[0].getMessage()
        assert fake.submits_accepted == 0


async def test_a_model_missing_from_the_catalog_is_reported_as_not_offered(
    tmp_path: Path,
) -> None:
    async with FakeApixo() as fake, apixo(tmp_path, fake) as h:
        job = await h.request(model="no-such-model")
        failed = await h.wait_state(job.id, "failed")
        assert failed.error_code == "model_unavailable"
        assert fake.submits_accepted == 0


# -- image decoding runs in worker threads -------------------------------------------------


def _record_threads(monkeypatch: pytest.MonkeyPatch, module: Any, name: str,
                    seen: list[int]) -> None:
    original = getattr(module, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        seen.append(threading.get_ident())
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapped)


async def test_the_submit_path_decodes_the_image_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[int] = []
    _record_threads(monkeypatch, jobfiles, "inspect_image", seen)
    spec = models_for("sandbox")[0]
    path = tmp_path / "source.png"
    path.write_bytes(png(640, 360))
    store = await Store.open(tmp_path / "bot.sqlite3")
    try:
        job, _ = await store.reserve(NewJob(
            guild_id=1, channel_id=10, user_id=7, provider="sandbox", model=spec.id,
            mode="image-to-video", prompt="a fox", duration=spec.durations[0],
            orientation="landscape", seconds=spec.durations[0], price_per_second=0.0,
            image_path=str(path),
        ), QuotaSettings(seconds=600))
        request = await jobfiles.build_request(job, spec, None)
    finally:
        await store.close()
    assert request.image is not None and (request.image.width, request.image.height) == (640, 360)
    assert seen and threading.get_ident() not in seen


async def test_intake_fits_the_image_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[int] = []
    for name in ("inspect_image", "fit_image"):
        _record_threads(monkeypatch, intake, name, seen)
    spec = models_for("sandbox")[0]
    options = intake.VideoOptions(spec, "a fox", spec.durations[0], None, Mode.IMAGE)
    source, _ = await prepare_image(png(640, 360), options)
    assert source.width > 0
    assert len(seen) == 2 and threading.get_ident() not in seen
    assert images.inspect_image is not intake.inspect_image  # the wrappers were used


# -- no job without a server ------------------------------------------------------------


async def test_a_request_without_a_server_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    async with FakeApixo() as fake, apixo(tmp_path, fake) as h:
        options = check_options(h.settings, prompt="a fox", duration=None, orientation=None,
                                model=None, mode=Mode.TEXT)
        with pytest.raises(Refusal) as refused:
            await start_job(h.service, h.store, h.settings, options, guild_id=None,
                            channel_id=10, user_id=7, context={})
        assert "server" in refused.value.user_message
        with pytest.raises(ValueError, match="needs a server"):
            await h.request(guild_id=None)
        await asyncio.sleep(0.2)
        assert await h.store.jobs_for(None, None) == []
        assert await h.store.ledger_rows() == []
        assert fake.submits_accepted == 0


# -- the interaction's own time ------------------------------------------------------------


def test_the_job_context_keeps_when_the_interaction_was_made() -> None:
    made = datetime.now(UTC) - timedelta(seconds=40)  # a command that waited in a backlog
    client = SimpleNamespace(started_at=lambda i: VideoBot.started_at(bot, i))
    bot = SimpleNamespace(_received={})
    interaction = SimpleNamespace(id=1, token="tok", application_id=5, created_at=made,
                                  filesize_limit=25 * 1024 * 1024, client=client)
    context = job_context(interaction)  # type: ignore[arg-type]
    assert context["interaction_at"] == made.timestamp()
    bot._received[1] = made.timestamp() - 5  # received here before its snowflake time:
    assert job_context(interaction)["interaction_at"] == made.timestamp() - 5  # the earlier
