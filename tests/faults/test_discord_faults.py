"""Discord answering 429, 5xx or nothing useful when the video is posted: one message
per job, whatever happens; a channel that refuses for good refunds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fakes.fake_discord import Perm
from tests.fakes.fake_discord.bodies import ApiError
from tests.faults.support import assert_clean, books, fault_world, settle, videos

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_video_post_answered_with_errors(tmp_path: Path, status: int) -> None:
    async with fault_world(tmp_path) as (w, _fake):
        w.fd.fail_next_message_posts(2, status=status, retry_after=0.2)
        await videos(w, ["fox"])
        jobs = await settle(w, 1, within=30)
        assert_clean(await books(w, jobs), delivered=1)
        assert len(w.fd.injected_failures) == 2


@pytest.mark.parametrize("status", [500, 503])
async def test_video_posted_but_the_answer_lost(tmp_path: Path, status: int) -> None:
    """Discord made the message and then answered an error: the bot's next attempt (or
    discord.py's own retry of a 500) must not post a second copy."""
    async with fault_world(tmp_path) as (w, _fake):
        create = w.fd.store.create
        broken = {"left": 1}

        def create_then_fail(*args: Any, **kw: Any) -> Any:
            message = create(*args, **kw)
            if message.attachments and broken["left"]:
                broken["left"] -= 1
                raise ApiError(status, 0, f"{status}: the answer got lost")
            return message

        w.fd.store.create = create_then_fail  # type: ignore[method-assign]
        await videos(w, ["fox"])
        jobs = await settle(w, 1, within=30)
        assert broken["left"] == 0
        assert_clean(await books(w, jobs), delivered=1)


async def test_channel_that_refuses_for_good_refunds(tmp_path: Path) -> None:
    async with fault_world(tmp_path) as (w, fake):
        fake.task_s = 1.0
        await videos(w, ["fox"])
        await fake.wait_until(lambda: fake.submits_accepted == 1)
        w.fd.set_bot_channel_permissions(w.channel, deny=Perm.ATTACH_FILES)
        (job,) = await settle(w, 1, within=30)
        assert_clean(await books(w, [job]), delivered=0)
        assert job.error_code == "delivery_failed"
