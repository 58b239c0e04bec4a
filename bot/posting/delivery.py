"""Posting finished videos to Discord: the ``deliver`` function the job service is given.

One new channel message per job with the MP4 attached, shrunk with PyAV when it exceeds
the channel's upload limit, or a link with its expiry when it cannot fit. Idempotent by
job id: a repeated attempt first looks for the video message (the one with the job's
result buttons) an earlier attempt may have posted.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Callable

import aiohttp
import discord

from bot.catalog import get_model
from bot.jobs.types import DeliveryFailed
from bot.media.video import HeldVideo, VideoInfo, VideoProblem, shrink_to_fit_async
from bot.posting.views import is_result_message
from bot.store import Job

log = logging.getLogger(__name__)

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
# Multipart overhead and the embed travel with the file: keep a margin under the limit.
UPLOAD_MARGIN = 256 * 1024
HISTORY_LOOKBACK = 50

ViewFactory = Callable[[Job], discord.ui.View]
EmbedFactory = Callable[[Job, VideoInfo], discord.Embed]
LinkText = Callable[[Job, str, float], str]


class DiscordDelivery:
    def __init__(
        self,
        client: discord.Client,
        *,
        embed: EmbedFactory,
        view: ViewFactory,
        link_text: LinkText,
    ) -> None:
        self._client = client
        self._embed = embed
        self._view = view
        self._link_text = link_text

    def _channel(self, job: Job) -> discord.PartialMessageable:
        assert job.channel_id is not None
        return self._client.get_partial_messageable(job.channel_id, guild_id=job.guild_id)

    async def find_posted(self, job: Job) -> int | None:
        """The id of the video message an earlier attempt posted for this job, if any.

        Only the video carries the job's result buttons: a status message in the channel
        (which names the job too) is never taken for the video."""
        me = self._client.user
        try:
            async for message in self._channel(job).history(limit=HISTORY_LOOKBACK):
                if me is not None and message.author.id != me.id:
                    continue
                if is_result_message(message, job.id):
                    return message.id
        except discord.HTTPException:
            log.warning("could not read channel history for job %s", job.id)
        return None

    async def deliver(self, job: Job, video: HeldVideo, info: VideoInfo) -> int:
        if int(job.context.get("delivery_attempt", 1)) > 1:
            existing = await self.find_posted(job)
            if existing is not None:
                log.info("job %s was already posted as message %s", job.id, existing)
                return existing
        limit = int(job.context.get("upload_limit", DEFAULT_UPLOAD_LIMIT)) - UPLOAD_MARGIN
        if info.size_bytes <= limit:
            return await self._post_file(job, video, info)
        small = video.path.with_suffix(".small.mp4")
        try:
            source = await asyncio.to_thread(video.save)
            shown = await shrink_to_fit_async(source, small, limit)
        except VideoProblem:
            small.unlink(missing_ok=True)
            return await self._post_link(job)
        try:
            return await self._post_file(job, HeldVideo(small), shown)
        finally:
            small.unlink(missing_ok=True)

    async def _post_file(self, job: Job, video: HeldVideo, info: VideoInfo) -> int:
        mention = discord.AllowedMentions(
            everyone=False, roles=False, users=[discord.Object(job.user_id or 0)]
        )
        try:
            message = await self._channel(job).send(
                content=f"<@{job.user_id}>",
                embed=self._embed(job, info),
                file=_attachment(video, f"video-{job.id[:8]}.mp4"),
                view=self._view(job),
                allowed_mentions=mention,
                nonce=post_nonce(job),
            )
        except (discord.Forbidden, discord.NotFound) as exc:
            raise DeliveryFailed(
                "The bot can no longer post videos in that channel.", permanent=True
            ) from exc
        except discord.HTTPException as exc:
            if exc.status == 413 or exc.code == 40005:
                return await self._post_link(job)
            raise DeliveryFailed(f"Discord answered {exc.status}.", permanent=False) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise DeliveryFailed("Discord could not be reached.", permanent=False) from exc
        return message.id

    async def _post_link(self, job: Job) -> int:
        assert job.video_url is not None
        try:
            ttl = get_model(job.provider, job.model).result_ttl_s
        except LookupError:
            ttl = 24 * 3600
        expires = (job.finished_at or job.updated_at or time.time()) + ttl
        if job.video_url.startswith("sandbox://"):
            raise DeliveryFailed("The video is too large to post here.", permanent=True)
        try:
            message = await self._channel(job).send(
                content=self._link_text(job, job.video_url, expires),
                embed=self._embed_without_file(job),
                view=self._view(job),
                allowed_mentions=discord.AllowedMentions(
                    everyone=False, roles=False, users=[discord.Object(job.user_id or 0)]
                ),
                nonce=post_nonce(job),
            )
        except (discord.Forbidden, discord.NotFound) as exc:
            raise DeliveryFailed(
                "The bot can no longer post in that channel.", permanent=True
            ) from exc
        except discord.HTTPException as exc:
            raise DeliveryFailed(f"Discord answered {exc.status}.", permanent=False) from exc
        return message.id

    def _embed_without_file(self, job: Job) -> discord.Embed:
        info = VideoInfo(
            duration_s=float(job.duration), width=0, height=0, video_codec="h264",
            has_audio=False, size_bytes=0,
        )
        return self._embed(job, info)


def post_nonce(job: Job) -> str:
    """The same nonce for every attempt to post a job's video (discord.py sends it with
    ``enforce_nonce``): Discord then answers a repeated post within a few minutes with
    the message already made, even if the bot never saw the first answer."""
    return job.id[:25]  # Discord takes nonces of up to 25 characters


def _attachment(video: HeldVideo, filename: str) -> discord.File:
    """The video as a discord.File: from memory when held there, else streamed from disk."""
    if video.data is not None:
        return discord.File(io.BytesIO(video.data), filename=filename)
    return discord.File(video.path, filename=filename)
