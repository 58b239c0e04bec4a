"""Remix: the third button under a posted video. It opens a form prefilled with the
video's prompt, length and orientation; the edit becomes a new job charged to whoever
clicked, with the same source image for animations while it is kept. Like Retry and
Delete it works after restarts (the button's id carries the job)."""

from __future__ import annotations

import asyncio
from typing import Any

import discord
from discord.ext import commands

from bot.app import VideoBot
from bot.catalog import Mode
from cogs.errors import handle_error, reply
from cogs.forms import PROMPT_MAX, VideoForm, parse_length, parse_orientation
from cogs.results import retry

# The form must open within Discord's 3 s: a store slower than this gets a short answer.
READ_WITHIN_S = 2.0


async def remix_clicked(interaction: discord.Interaction[VideoBot], job_id: str) -> None:
    try:
        job = await asyncio.wait_for(interaction.client.store.job(job_id), READ_WITHIN_S)
    except TimeoutError:
        await reply(interaction, "The bot is busy right now; please click Remix again.")
        return
    if job is None:
        await reply(interaction, "That video's request is no longer on record; please ask "
                                 "again with /video.")
        return
    if job.prompt_deleted_at is not None:
        await reply(interaction, "The member who asked for this video deleted its prompt, "
                                 "so it cannot be remixed.")
        return
    if len(job.prompt) > PROMPT_MAX:
        await reply(interaction, (
            f"This video's prompt is {len(job.prompt):,} characters, more than the Remix "
            f"form holds ({PROMPT_MAX:,}); nothing was cut or charged. Use /video (or "
            "/animate) with your edited prompt instead."))
        return

    async def submit(submitted: discord.Interaction[Any], form: VideoForm) -> None:
        await retry(submitted, job_id, prompt=form.prompt.value,
                    duration=parse_length(form.length.value),
                    orientation=parse_orientation(form.orientation.value))

    animation = job.mode == Mode.IMAGE.value
    form = VideoForm(
        title="Remix this animation" if animation else "Remix this video",
        submit=submit, on_failure=_failed, prompt=job.prompt, length=str(job.duration),
        orientation=job.orientation,
    )
    await interaction.response.send_modal(form)


async def _failed(interaction: discord.Interaction[Any], error: Exception) -> None:
    await handle_error(interaction, error, "form remix")


class Remix(commands.Cog):
    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.bot.result_actions.register("remix", remix_clicked)

    async def cog_unload(self) -> None:
        self.bot.result_actions.unregister("remix")


async def setup(bot: VideoBot) -> None:
    await bot.add_cog(Remix(bot))
