"""Starting a job from an interaction: shared by /video, /animate and the Retry button."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import discord

from bot.catalog import Orientation
from bot.intake import Refusal, VideoOptions, start_job
from bot.providers.base import SourceImage
from bot.store import Job
from cogs.checks import missing_channel_permissions

if TYPE_CHECKING:
    from bot.app import VideoBot


def check_can_post(interaction: discord.Interaction[Any]) -> None:
    """Before any charge: can the bot post a video in this channel?"""
    missing = missing_channel_permissions(interaction.app_permissions)
    if missing:
        raise Refusal(
            "I can't post videos in this channel: I need "
            + ", ".join(missing)
            + ". Ask a moderator to grant them, or use another channel."
        )


def job_context(interaction: discord.Interaction[Any]) -> dict[str, Any]:
    return {
        "interaction_token": interaction.token,
        "application_id": interaction.application_id,
        "interaction_at": time.time(),
        "upload_limit": interaction.filesize_limit,
    }


async def defer(interaction: discord.Interaction[Any]) -> None:
    if not interaction.response.is_done():
        await interaction.response.defer(thinking=True)


async def launch(
    interaction: discord.Interaction[VideoBot],
    options: VideoOptions,
    *,
    image: SourceImage | None = None,
    orientation: Orientation | None = None,
) -> Job:
    """Reserve and start; the job service then drives the status message."""
    bot = interaction.client
    assert interaction.channel_id is not None
    return await start_job(
        bot.jobs,
        bot.store,
        bot.settings,
        options,
        guild_id=interaction.guild_id,
        channel_id=interaction.channel_id,
        user_id=interaction.user.id,
        context=job_context(interaction),
        image=image,
        orientation=orientation,
    )
