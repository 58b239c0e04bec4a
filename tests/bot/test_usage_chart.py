"""/usage attaches a picture of seconds per day: a member's own share, or per member for
moderators (the real bot against the fake Discord)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from bot.media.chart import HEIGHT, OTHERS, PALETTE, WIDTH
from tests.bot.support import World, world

pytestmark = pytest.mark.timeout(90)


def _usage_reply(w: World, interaction: int) -> tuple[str, Image.Image]:
    (message,) = [m for m in w.fd.messages(w.channel, include_ephemeral=True,
                                           source="interaction")
                  if str(getattr(m, "interaction_id", "")) == str(interaction)]
    assert message.ephemeral
    (attachment,) = message.attachments
    assert attachment.filename == "usage.png"
    assert message.embeds[0]["image"]["url"] == "attachment://usage.png"
    image = Image.open(io.BytesIO(attachment.data))
    image.load()  # it really decodes
    assert image.format == "PNG"
    return "\n".join(str(e) for e in message.embeds), image.convert("RGB")


def _has(image: Image.Image, colour: tuple[int, int, int]) -> bool:
    return any(c == colour for _, c in image.getcolors(maxcolors=1 << 16) or [])


async def test_usage_attaches_a_chart_per_member_for_moderators(tmp_path: Path) -> None:
    async with world(tmp_path, default_quota_seconds=100) as w:
        await w.command("video", {"prompt": "a fox", "duration": 8})
        await w.command("video", {"prompt": "an owl", "duration": 4}, user=w.moderator)
        await w.wait_videos(2)
        await w.settled(2)

        mine = await w.command("usage")
        await w.wait_reply(mine, "12 s of video in 2 job")
        text, picture = _usage_reply(w, mine)
        assert picture.size == (WIDTH, HEIGHT)
        assert "🟦 you — 8 s" in text and "⬜ everyone else — 4 s" in text
        assert _has(picture, PALETTE[0][1]) and _has(picture, OTHERS[1])
        assert not _has(picture, PALETTE[1][1])  # no second member drawn for a member

        theirs = await w.command("usage", user=w.moderator)
        await w.wait_reply(theirs, "12 s of video in 2 job")
        text, picture = _usage_reply(w, theirs)
        assert picture.size == (WIDTH, HEIGHT)
        assert f"🟦 #1 <@{w.member}> — 8 s" in text
        assert f"🟧 #2 <@{w.moderator}> — 4 s" in text
        assert _has(picture, PALETTE[0][1]) and _has(picture, PALETTE[1][1])
        assert not _has(picture, OTHERS[1])  # two members: nobody else to lump together
