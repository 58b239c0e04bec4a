"""The real bot (VideoBot) in-process against the fake Discord and a provider."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
from PIL import Image

from bot.app import VideoBot
from bot.config import Settings
from bot.store import Job
from cogs.errors import SORRY
from tests.fakes.fake_discord import FakeDiscord, Perm
from tests.fakes.fake_discord.models import Message
from tests.fakes.fake_discord.pointing import running_client
from tests.pgserver import database_settings


@dataclass
class World:
    fd: FakeDiscord
    bot: VideoBot
    guild: int
    channel: int
    member: int
    moderator: int

    async def command(self, name: str, options: dict[str, Any] | None = None, *,
                      user: int | None = None, **kw: Any) -> int:
        payload = self.fd.slash(name, options or {}, guild_id=self.guild,
                                channel_id=kw.pop("channel_id", self.channel),
                                user_id=user or self.member, **kw)
        await self.fd.send_interaction(payload)
        return int(payload["id"])

    async def acked(self, interaction_id: int, within: float = 5.0) -> float:
        await self.fd.wait_for(lambda: self.fd.ack_latency(interaction_id) is not None, within)
        latency = self.fd.ack_latency(interaction_id)
        assert latency is not None
        return latency

    def videos(self, channel: int | None = None) -> list[Message]:
        return [m for m in self.fd.messages(channel or self.channel, source="channel")
                if m.attachments]

    def reply_text(self, interaction_id: int) -> str:
        """Everything the member was told in answer to one interaction."""
        texts: list[str] = []
        for message in self.fd.messages(self.channel, include_ephemeral=True,
                                        source="interaction"):
            if str(getattr(message, "interaction_id", "")) == str(interaction_id):
                texts.append(message.content or "")
                texts.extend(str(e) for e in message.embeds)
        return "\n".join(texts)

    def replies_private(self, interaction_id: int) -> bool:
        """Whether everything said in answer to the interaction was ephemeral."""
        said = [m for m in self.fd.messages(self.channel, include_ephemeral=True,
                                            source="interaction")
                if str(getattr(m, "interaction_id", "")) == str(interaction_id)]
        return bool(said) and all(m.ephemeral for m in said)

    async def wait_reply(self, interaction_id: int, needle: str, within: float = 10.0) -> str:
        await self.fd.wait_for(lambda: needle in self.reply_text(interaction_id), within)
        return self.reply_text(interaction_id)

    async def refused(self, interaction_id: int, needle: str, within: float = 10.0) -> str:
        """Wait for a refusal containing ``needle`` and check it is one: said privately,
        as plain text (no status card, no buttons), and not the bot's apology for an error
        of its own. Returns everything said."""
        text = await self.wait_reply(interaction_id, needle, within)
        said = [m for m in self.fd.messages(self.channel, include_ephemeral=True,
                                            source="interaction")
                if str(getattr(m, "interaction_id", "")) == str(interaction_id)]
        assert said and all(m.ephemeral for m in said), f"not private: {text!r}"
        assert not any(m.embeds or m.components for m in said), f"not a refusal: {text!r}"
        assert SORRY not in text, f"an error, not a refusal: {text!r}"
        return text

    async def settled(self, count: int, within: float = 30.0) -> list[Job]:
        """Wait until ``count`` jobs exist and none is unfinished (the video message can
        appear a moment before its job is recorded as delivered); return them."""
        return await settled_jobs(
            lambda: self.bot.store.jobs_for(self.guild, None, limit=10_000), count, within)

    async def wait_videos(self, count: int, within: float = 30.0) -> list[Message]:
        await self.fd.wait_for(lambda: len(self.videos()) >= count, within)
        return self.videos()


async def settled_jobs(read: Callable[[], Awaitable[list[Job]]], count: int, within: float,
                       every: float = 0.05) -> list[Job]:
    """Read the jobs every ``every`` seconds until ``count`` exist and none is unfinished."""
    deadline = time.monotonic() + within
    while True:
        jobs = await read()
        if len(jobs) >= count and all(job.terminal for job in jobs):
            return jobs
        if time.monotonic() > deadline:
            states = sorted(job.state.value for job in jobs)
            raise AssertionError(f"jobs did not settle within {within} s: {states}")
        await asyncio.sleep(every)


def png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (40, 120, 200)).save(buf, format="PNG")
    return buf.getvalue()


def decodes_as_mp4(data: bytes) -> float:
    with av.open(io.BytesIO(data)) as container:
        frames = sum(1 for _ in container.decode(video=0))
        assert frames > 0
        return float(container.duration or 0) / 1e6


def settings_for(tmp_path: Path, fd: FakeDiscord, **values: Any) -> Settings:
    base: dict[str, Any] = {
        "discord_token": fd.token, "discord_api_base_url": fd.api_base,
        "discord_gateway_url": fd.gateway_url, **database_settings(tmp_path),
        "webhook_host": "127.0.0.1", "webhook_port": 0, "poll_first_s": 0.05,
        "poll_interval_s": 0.1, "sandbox_delay_s": 0.2, "job_lease_s": 1.0,
    }
    if values.get("provider") == "apixo":
        # These tests were written for Sora's 4/8/12 s: they keep MODEL=sora-2 explicitly,
        # as an owner may; tests/bot/test_models.py drives the live models.
        base["model"] = "sora-2"
    base.update(values)
    return Settings(_env_file=None, **base)  # type: ignore[call-arg]


@contextlib.asynccontextmanager
async def running_bot(settings: Settings, fd: FakeDiscord) -> AsyncIterator[VideoBot]:
    async with running_client(fd, VideoBot(settings, guild_ready_timeout=0.05)) as bot:
        yield bot


@contextlib.asynccontextmanager
async def world(tmp_path: Path, **settings: Any) -> AsyncIterator[World]:
    async with FakeDiscord() as fd:
        guild = fd.add_guild("Videos")
        channel = fd.text_channels(guild)[0]
        member = fd.add_member(guild, name="member")
        moderator = fd.add_member(guild, name="mod", permissions=Perm.MANAGE_GUILD)
        config = settings_for(tmp_path, fd, **settings)
        async with running_bot(config, fd) as bot:
            yield World(fd, bot, guild, channel, member, moderator)


async def eventually(predicate: Any, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
