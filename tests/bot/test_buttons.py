"""The buttons under a posted video: they acknowledge before any other work, refuse
clearly, and every unexpected error gets a short answer and a log line."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from bot.store import Job
from cogs.errors import SORRY
from tests.bot.support import World, world
from tests.fakes.fake_discord import Perm
from tests.fakes.fake_discord.models import Message

pytestmark = pytest.mark.timeout(90)


async def posted(w: World) -> tuple[Message, str]:
    await w.command("video", {"prompt": "a fox", "duration": 4})
    (video,) = await w.wait_videos(1)
    await w.settled(1)
    return video, video.embeds[0]["footer"]["text"].removeprefix("job ")


async def click(w: World, action: str, job_id: str, message_id: int, user: int) -> int:
    payload = w.fd.button(f"video:{action}:{job_id}", message_id, user_id=user)
    await w.fd.send_interaction(payload)
    return int(payload["id"])


@pytest.mark.parametrize("action", ["delete", "retry"])
async def test_a_click_is_acknowledged_before_the_database_is_read(
    tmp_path: Path, action: str
) -> None:
    async with world(tmp_path) as w:
        video, job_id = await posted(w)
        store = w.bot.store
        read_job = store.job
        reading = asyncio.Event()
        release = asyncio.Event()

        async def slow_job(wanted: str) -> Job | None:
            if wanted == job_id:
                reading.set()
                await release.wait()  # the database is busy (a write lock, say)
            return await read_job(wanted)

        store.job = slow_job  # type: ignore[method-assign]
        interaction = await click(w, action, job_id, video.id, w.member)
        await asyncio.wait_for(reading.wait(), 10)
        # The read is still waiting, yet Discord already has its acknowledgement.
        await w.fd.wait_for(lambda: w.fd.ack_latency(interaction) is not None, 10)
        assert w.replies_private(interaction)
        store.job = read_job  # type: ignore[method-assign]
        release.set()
        if action == "delete":
            await w.wait_reply(interaction, "Deleted.")
            assert w.videos() == []
        else:
            await w.wait_videos(2)


async def test_delete_of_a_message_already_gone_says_so(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        video, job_id = await posted(w)
        payload = w.fd.button(f"video:delete:{job_id}", video.id, user_id=w.member)
        w.fd.store.delete(w.fd.message(video.id))  # deleted by hand meanwhile
        await w.fd.send_interaction(payload)
        text = await w.refused(int(payload["id"]), "already deleted")
        assert "Deleted." not in text


async def test_an_unexpected_error_in_retry_is_answered_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with world(tmp_path) as w:
        video, job_id = await posted(w)
        store = w.bot.store
        read_job = store.job

        async def broken(wanted: str) -> Job | None:
            if wanted == job_id:
                raise RuntimeError("the database went away")
            return await read_job(wanted)

        store.job = broken  # type: ignore[method-assign]
        caplog.set_level(logging.ERROR, logger="cogs.errors")
        interaction = await click(w, "retry", job_id, video.id, w.member)
        text = await w.wait_reply(interaction, SORRY)
        assert "RuntimeError" not in text and "database" not in text
        assert w.replies_private(interaction)
        (record,) = [r for r in caplog.records if r.name == "cogs.errors"]
        assert f"button retry (job {job_id}) failed" in record.getMessage()
        assert f"user {w.member}" in record.getMessage()
        assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)
        store.job = read_job  # type: ignore[method-assign]
        assert len(w.videos()) == 1
        assert len(await store.jobs_for(w.guild, None)) == 1  # nothing new, nothing charged


async def test_delete_the_bot_may_not_do_is_refused_clearly(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        video, job_id = await posted(w)
        w.fd.set_bot_channel_permissions(w.channel, deny=Perm.VIEW_CHANNEL)
        interaction = await click(w, "delete", job_id, video.id, w.member)
        text = await w.refused(interaction, "not allowed to delete")
        assert "ask a moderator" in text
        assert len(w.videos()) == 1
