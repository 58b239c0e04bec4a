"""Apps -> Animate on any message with an image: a form asks for the prompt (and length and
orientation), then it runs exactly like /animate. The image is read as soon as the menu is
used (signed attachment URLs expire) while the member fills the form in."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import VideoBot
from bot.catalog import Mode
from bot.jobs.intake import Refusal, check_attachment, check_options
from cogs.errors import handle_error, reply
from cogs.forms import VideoForm, parse_length, parse_orientation
from cogs.launch import admitted, audited, check_can_post, defer, launch
from cogs.video import fitted

IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")
IMAGE_ENDINGS = (".jpg", ".jpeg", ".png", ".webp")


def images_of(message: discord.Message) -> list[discord.Attachment]:
    return [a for a in message.attachments
            if (a.content_type or "").split(";")[0] in IMAGE_TYPES
            or a.filename.lower().endswith(IMAGE_ENDINGS)]


async def animate_message(
    interaction: discord.Interaction[VideoBot], message: discord.Message
) -> None:
    images = images_of(message)
    if not images:
        await reply(interaction, "That message has no image to animate: use Animate on a "
                                 "message with a JPEG, PNG or WebP attached. Nothing was charged.")
        return
    image = images[0]
    try:
        check_attachment(image.size)
    except Refusal as exc:
        await reply(interaction, exc.user_message)
        return
    hint = None
    if len(images) > 1:
        hint = f"Animating the first of {len(images)} images: {image.filename}"
    download = asyncio.create_task(image.read(), name=f"animate-image-{interaction.id}")

    async def submit(submitted: discord.Interaction[Any], form: VideoForm) -> None:
        await run_animate(submitted, form, image, download)

    form = VideoForm(title="Animate this image", submit=submit, on_failure=_failed,
                     prompt_hint=hint or f"How {image.filename} should move")
    try:
        await interaction.response.send_modal(form)
    except BaseException:
        download.cancel()
        raise
    form.on_timeout = _cancelling(download)  # type: ignore[method-assign]


def _cancelling(task: asyncio.Task[bytes]) -> Any:
    async def on_timeout() -> None:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
    return on_timeout


async def run_animate(
    interaction: discord.Interaction[VideoBot], form: VideoForm, image: discord.Attachment,
    download: asyncio.Task[bytes],
) -> None:
    prompt = form.prompt.value
    async with audited(interaction, prompt=prompt, model=None, duration=None):
        options = check_options(
            interaction.client.settings, prompt=prompt,
            duration=parse_length(form.length.value),
            orientation=parse_orientation(form.orientation.value),
            model=None, mode=Mode.IMAGE,
        )
        check_can_post(interaction)
        await defer(interaction)
        async with admitted(interaction, options):
            try:
                data = await download
            except discord.HTTPException:
                raise Refusal("I could not download that image; please try again or use "
                              "/animate.") from None
            source, picked = await fitted(interaction.client, data, image.url, options)
            await launch(interaction, options, image=source, orientation=picked)


async def _failed(interaction: discord.Interaction[Any], error: Exception) -> None:
    await handle_error(interaction, error, "form animate")


class AnimateMenu(commands.Cog):
    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot
        self.menu = app_commands.ContextMenu(name="Animate", callback=animate_message)
        self.menu.guild_only = True

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)


async def setup(bot: VideoBot) -> None:
    await bot.add_cog(AnimateMenu(bot))
