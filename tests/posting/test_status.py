"""The live status message: throttled edits, and the move to a channel message before the
interaction token dies."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from tests.bot.support import world
from tests.fakes.fake_discord import Perm
from tests.fakes.fake_discord.world import DISCORD_EPOCH_MS

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


async def test_status_moves_to_a_neutral_channel_line_before_the_token_expires(
    tmp_path: Path,
) -> None:
    """Once only a channel message is possible, everyone sees it: it says the video is
    coming, names the member, and shows neither the prompt nor the options."""
    async with world(tmp_path, sandbox_delay_s=3.0) as w:
        w.bot.status_board.min_interval = 0.2
        w.bot.status_board.token_lifetime_s = 1.5  # Discord's is 15 minutes
        await w.command("video", {"prompt": "a patient fox", "duration": 4})
        line = await w.fd.wait_for(lambda: [
            m for m in w.fd.messages(w.channel, source="channel") if not m.attachments], 10)
        (status,) = line
        assert status.content == (
            f"<@{w.member}> your video is still being made; it will be posted here.")
        assert not status.embeds
        assert [str(u) for u in status.allowed_mentions.get("users", [])] == [str(w.member)]
        await w.wait_videos(1)
        await w.settled(1)
        channel = w.fd.messages(w.channel, source="channel")
        status_now = [m for m in channel if not m.attachments]
        assert [m.id for m in status_now] == [status.id], "one status line, edited in place"
        await w.fd.wait_for(lambda: "posted here" in w.fd.message(status.id).content
                            and "still being made" not in w.fd.message(status.id).content, 10)
        for message in w.fd.messages(w.channel, source="channel", include_deleted=True):
            if not message.attachments:
                assert "patient fox" not in message.content + str(message.embeds)
                assert "sora" not in message.content + str(message.embeds)


async def test_a_failure_after_the_token_died_is_told_without_the_prompt(
    tmp_path: Path,
) -> None:
    async with world(tmp_path, sandbox_delay_s=3.0) as w:
        w.bot.status_board.min_interval = 0.2
        w.bot.status_board.token_lifetime_s = 1.5
        await w.command("video", {"prompt": "a secret fox", "duration": 4})
        (status,) = await w.fd.wait_for(lambda: [
            m for m in w.fd.messages(w.channel, source="channel") if not m.attachments], 10)
        # Allowed at the command, refused by the time the video is posted.
        w.fd.set_bot_channel_permissions(w.channel, deny=Perm.ATTACH_FILES)
        (job,) = await w.settled(1)
        assert job.state.value == "failed"
        await w.fd.wait_for(lambda: "❌" in w.fd.message(status.id).content, 10)
        text = w.fd.message(status.id).content
        assert text.startswith(f"<@{w.member}> ❌") and "refunded" in text
        assert "secret fox" not in text and not w.fd.message(status.id).embeds


async def test_a_snowflake_from_the_future_delays_nothing(tmp_path: Path) -> None:
    """Discord's clock a minute ahead of this host's: the interaction's snowflake says it
    was made in the future. The first status edit still comes about 1.5 s after the
    command, and the token's life is counted from when the command arrived here."""
    async with world(tmp_path, sandbox_delay_s=3.0) as w:
        payload = w.fd.slash("video", {"prompt": "a fox", "duration": 4}, guild_id=w.guild,
                             channel_id=w.channel, user_id=w.member)
        record = w.fd.interactions.pop(int(payload["id"]))
        ahead_ms = int((time.time() + 60) * 1000) - DISCORD_EPOCH_MS
        record.id = (ahead_ms << 22) | (1 << 17)
        payload["id"] = str(record.id)
        w.fd.register_interaction(record)
        sent = time.monotonic()
        await w.fd.send_interaction(payload)
        edits = await w.fd.wait_for(lambda: [
            r for r in w.fd.requests_to("PATCH", "/messages/@original") if r.at > sent], 10)
        assert edits[0].at - sent < 5
        (job,) = await w.bot.store.jobs_for(w.guild, None)
        assert job.context["interaction_at"] <= time.time() - 1
