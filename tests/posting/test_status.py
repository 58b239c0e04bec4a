"""The live status message: throttled edits, and the move to a channel message before the
interaction token dies."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests.bot.support import world

pytestmark = pytest.mark.timeout(60)


async def test_status_edits_are_throttled(tmp_path: Path) -> None:
    async with world(tmp_path, sandbox_delay_s=3.0, poll_interval_s=0.05) as w:
        w.bot.status_board.min_interval = 1.0
        interaction = await w.command("video", {"prompt": "a fox", "duration": 4})
        await w.wait_videos(1)
        await w.wait_reply(interaction, "Done")
        edits = w.fd.requests_to("PATCH", "/messages/@original")
        # ~60 status polls in 3 s, but at most one edit a second (plus the final ones).
        assert 2 <= len(edits) <= 7
        times = sorted(r.at for r in edits)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert sum(1 for g in gaps if g < 0.9) <= 1  # only the final state may jump the queue


async def test_status_moves_to_a_channel_message_before_the_token_expires(
    tmp_path: Path,
) -> None:
    async with world(tmp_path, sandbox_delay_s=3.0) as w:
        w.bot.status_board.min_interval = 0.2
        w.bot.status_board.token_lifetime_s = 1.5  # Discord's is 15 minutes
        await w.command("video", {"prompt": "a patient fox", "duration": 4})
        await w.wait_videos(1)
        channel = w.fd.messages(w.channel, source="channel")
        status = [m for m in channel if not m.attachments]
        assert len(status) == 1, "one status message, edited in place"
        assert status[0].embeds and status[0].embeds[0]["title"] == "Your video"
        assert status[0].allowed_mentions.get("parse") in ([], None)
