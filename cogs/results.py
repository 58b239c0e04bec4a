"""What the buttons under a posted video do (Retry, Delete); the buttons themselves live in
``bot.posting.views`` so that posting needs no cog.

Each handler acknowledges first (an ephemeral deferral) and then does its work; it raises
``Refusal`` for what the member should be told, and every error goes through the one
handler in ``cogs.errors`` (``ResultActions.run``)."""

from __future__ import annotations

from pathlib import Path

import discord
from discord.ext import commands

from bot.app import VideoBot
from bot.catalog import Mode, Orientation, UnknownModel, get_model
from bot.jobs.intake import Refusal, check_options, prepare_image
from bot.posting.views import ResultButton
from cogs.errors import reply
from cogs.launch import admitted, audited, check_can_post, defer, launch


async def delete(interaction: discord.Interaction[VideoBot], job_id: str) -> None:
    """Delete the video message: for the member who asked for it or a moderator."""
    await defer(interaction)  # acknowledge before the database or Discord is asked
    job = await interaction.client.store.job(job_id)
    allowed = interaction.permissions.manage_messages or (
        job is not None and job.user_id == interaction.user.id
    )
    if not allowed:
        raise Refusal("Only the member who asked for this video, or someone with Manage "
                      "Messages, can delete it.")
    if interaction.message is not None:
        try:
            await interaction.message.delete()
        except discord.NotFound:
            await reply(interaction, "That video was already deleted.")
            return
        except discord.Forbidden:
            raise Refusal("I am not allowed to delete messages here any more; ask a "
                          "moderator to delete it.") from None
    await reply(interaction, "Deleted.")


async def retry(
    interaction: discord.Interaction[VideoBot], job_id: str, *, prompt: str | None = None,
    duration: int | None = None, orientation: str | None = None,
) -> None:
    """Same options as the original job (or the Remix form's edits), charged again to
    whoever clicks."""
    bot = interaction.client
    await defer(interaction)  # acknowledge before the database is read
    job = await bot.store.job(job_id)
    if job is None:
        raise Refusal("That video's request is no longer on record; please ask again.")
    if job.prompt_deleted_at is not None:
        raise Refusal("The member who asked for this video deleted its prompt, so it cannot "
                      "be retried.")
    prompt = job.prompt if prompt is None else prompt
    duration = job.duration if duration is None else duration
    orientation = orientation or job.orientation
    async with audited(interaction, prompt=prompt, model=job.model, duration=duration):
        mode = Mode(job.mode)
        extras = job.context.get("options") or {}
        end_path = job.context.get("end_image_path")
        # A model that keeps an animated image's shape takes no orientation.
        keeps = mode is Mode.IMAGE and _keeps_shape(bot.settings.provider, job.model)
        options = check_options(
            bot.settings, prompt=prompt, duration=duration,
            orientation=None if keeps else orientation,
            model=job.model, mode=mode, end_frame=mode is Mode.IMAGE and bool(end_path),
            negative_prompt=extras.get("negative_prompt"), seed=extras.get("seed"),
            audio=kept_audio(extras, bot.settings.provider, job.model),
        )
        check_can_post(interaction)
        async with admitted(interaction, options):
            image = end = None
            if mode is Mode.IMAGE:
                data = await _kept_image(job.image_path)
                image, _ = await prepare_image(data, options)
                if options.end_frame:
                    end, _ = await prepare_image(await _kept_image(end_path), options)
                if options.spec.image.transport == "url" and not bot.settings.public_base_url:
                    raise Refusal(
                        "Retrying an animation needs the image again: please use /animate."
                    )
            await launch(
                interaction, options, image=image, orientation=Orientation(orientation),
                end_image=end,
            )


def kept_audio(extras: dict[str, object], provider: str, model: str) -> bool | None:
    """The original's sound choice, where the model (at PROVIDER) lets members choose."""
    audio = extras.get("audio")
    try:
        takes = get_model(provider, model).takes_audio
    except UnknownModel:
        return None
    return audio if isinstance(audio, bool) and takes else None


def _keeps_shape(provider: str, model: str) -> bool:
    try:
        return get_model(provider, model).image_keeps_shape
    except UnknownModel:
        return False  # check_options says so


async def _kept_image(path: str | None) -> bytes:
    import asyncio

    if not path:
        raise Refusal("The source image is no longer kept; please use /animate again.")
    try:
        return await asyncio.to_thread(Path(path).read_bytes)
    except OSError:
        raise Refusal("The source image is no longer kept; please use /animate again.") from None


class Results(commands.Cog):
    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.bot.result_actions.register("retry", retry)
        self.bot.result_actions.register("delete", delete)
        self.bot.add_dynamic_items(ResultButton)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(ResultButton)
        self.bot.result_actions.unregister("retry")
        self.bot.result_actions.unregister("delete")


async def setup(bot: VideoBot) -> None:
    await bot.add_cog(Results(bot))
