"""Posting the video exactly once: a later attempt looks for the message an earlier one
may have posted, and only the video message itself counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.jobs.types import JobUpdate, Phase
from bot.posting.embeds import status_embed
from tests.bot.support import World, world

pytestmark = pytest.mark.timeout(60)


async def assert_one_video(w: World) -> None:
    (video,) = await w.wait_videos(1, within=30)
    (job,) = await w.settled(1)
    assert job.state.value == "delivered"
    assert job.message_id == video.id, "the job records the video, not another message"
    assert int(job.context["delivery_attempt"]) == 2  # the first post really failed
    assert len(w.videos()) == 1


async def test_status_in_the_channel_and_a_failed_first_post_still_post_the_video(
    tmp_path: Path,
) -> None:
    async with world(tmp_path, sandbox_delay_s=3.0) as w:
        w.bot.status_board.min_interval = 0.2
        w.bot.status_board.token_lifetime_s = 1.5  # the status moves to the channel
        await w.command("video", {"prompt": "a patient fox", "duration": 4})
        await w.fd.wait_for(lambda: w.fd.messages(w.channel, source="channel"), 10)
        w.fd.fail_next_message_posts(1, status=503)  # the video's first post
        await assert_one_video(w)


async def test_a_message_naming_the_job_is_not_taken_for_the_video(tmp_path: Path) -> None:
    """A bot message whose embed names the job (a status card, as earlier versions posted
    it in the channel) is not the video: after a failed first post the video is posted."""
    async with world(tmp_path, sandbox_delay_s=4.0) as w:
        await w.command("video", {"prompt": "a patient fox", "duration": 4})
        # The first status edit comes once the job is recorded, well before the video.
        await w.fd.wait_for(lambda: w.fd.requests_to("PATCH", "/messages/@original"), 10)
        (job,) = await w.bot.store.jobs_for(w.guild, None)
        assert not job.terminal
        card = status_embed(JobUpdate(job, Phase.RENDERING))
        assert card.footer.text == f"job {job.id}"
        await w.bot.get_partial_messageable(w.channel, guild_id=w.guild).send(embed=card)
        w.fd.fail_next_message_posts(1, status=503)
        await assert_one_video(w)
