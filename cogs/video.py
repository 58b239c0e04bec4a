"""/video and /animate: parse options, check the rules, hand them to bot.jobs.intake, and let the
job run."""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import VideoBot
from bot.catalog import Mode, ModelSpec, Orientation, UnknownModel, get_model, offered_models
from bot.jobs.intake import Refusal, VideoOptions, check_attachment, check_options, prepare_image
from bot.providers.base import SourceImage
from cogs.launch import admitted, audited, check_can_post, defer, launch

Orient = Literal["landscape", "portrait"]
Seed = app_commands.Range[int, 0, 2**31 - 1]


class Video(commands.Cog):
    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot

    async def model_names(
        self, interaction: discord.Interaction[VideoBot], current: str
    ) -> list[app_commands.Choice[str]]:
        return model_choices(self.bot, current)

    def chosen_model(self, interaction: discord.Interaction[VideoBot]) -> ModelSpec:
        """The model named so far in the command (else the default), for autocomplete."""
        settings = self.bot.settings
        name = getattr(interaction.namespace, "model", None) or settings.model
        try:
            return get_model(settings.provider, str(name))
        except UnknownModel:
            return get_model(settings.provider, settings.model)

    async def duration_names(
        self, interaction: discord.Interaction[VideoBot], current: int | str
    ) -> list[app_commands.Choice[int]]:
        spec = self.chosen_model(interaction)
        if spec.fixed_length is not None:
            return [app_commands.Choice(name=f"{spec.fixed_length} seconds (the only length "
                                             f"{spec.id} makes)", value=spec.fixed_length)]
        return [app_commands.Choice(name=f"{d} seconds", value=d) for d in spec.durations]

    @app_commands.command(name="video", description="Make a short AI video from a prompt")
    @app_commands.describe(
        prompt="What the video should show",
        duration="Length in seconds (the model's lengths)",
        orientation="Landscape (16:9) or portrait (9:16)",
        model="Which model to use",
        negative_prompt="What the video should avoid (models that take one)",
        seed="A seed, to make a result repeatable (models that take one)",
        audio="Sound on or off (models whose provider lets you choose)",
    )
    @app_commands.guild_only()
    async def video(
        self,
        interaction: discord.Interaction[VideoBot],
        prompt: str,
        duration: int | None = None,
        orientation: Orient | None = None,
        model: str | None = None,
        negative_prompt: str | None = None,
        seed: Seed | None = None,
        audio: bool | None = None,
    ) -> None:
        async with audited(interaction, prompt=prompt, model=model, duration=duration):
            options = check_options(
                self.bot.settings, prompt=prompt, duration=duration, orientation=orientation,
                model=model, mode=Mode.TEXT, negative_prompt=negative_prompt, seed=seed,
                audio=audio,
            )
            check_can_post(interaction)
            await defer(interaction)
            async with admitted(interaction, options):
                await launch(interaction, options)

    @app_commands.command(name="animate", description="Bring an image to life as a short video")
    @app_commands.describe(
        image="A JPEG, PNG or WebP image: the first frame",
        prompt="How the image should move",
        duration="Length in seconds (the model's lengths)",
        orientation="Defaults to the image's own",
        model="Which model to use",
        end_image="The last frame (models that take one)",
        negative_prompt="What the video should avoid (models that take one)",
        seed="A seed, to make a result repeatable (models that take one)",
        audio="Sound on or off (models whose provider lets you choose)",
    )
    @app_commands.guild_only()
    async def animate(
        self,
        interaction: discord.Interaction[VideoBot],
        image: discord.Attachment,
        prompt: str,
        duration: int | None = None,
        orientation: Orient | None = None,
        model: str | None = None,
        end_image: discord.Attachment | None = None,
        negative_prompt: str | None = None,
        seed: Seed | None = None,
        audio: bool | None = None,
    ) -> None:
        async with audited(interaction, prompt=prompt, model=model, duration=duration):
            options = check_options(
                self.bot.settings, prompt=prompt, duration=duration, orientation=orientation,
                model=model, mode=Mode.IMAGE, end_frame=end_image is not None,
                negative_prompt=negative_prompt, seed=seed, audio=audio,
            )
            check_attachment(image.size)
            if end_image is not None:
                check_attachment(end_image.size)
            check_can_post(interaction)
            await defer(interaction)
            async with admitted(interaction, options):
                source, picked = await self._fitted(image, options)
                end = None
                if end_image is not None:  # fitted to the start frame's orientation
                    shaped = replace(options, orientation=options.orientation or picked)
                    end, _ = await self._fitted(end_image, shaped)
                await launch(interaction, options, image=source, orientation=picked,
                             end_image=end)

    async def _fitted(
        self, image: discord.Attachment, options: VideoOptions
    ) -> tuple[SourceImage, Orientation]:
        try:
            data = await image.read()  # at once: signed attachment URLs expire
        except discord.HTTPException:
            raise Refusal("I could not download that attachment; please upload it again.") \
                from None
        return await fitted(self.bot, data, image.url, options)

    @video.autocomplete("model")
    async def _video_models(
        self, interaction: discord.Interaction[VideoBot], current: str
    ) -> list[app_commands.Choice[str]]:
        return await self.model_names(interaction, current)

    @animate.autocomplete("model")
    async def _animate_models(
        self, interaction: discord.Interaction[VideoBot], current: str
    ) -> list[app_commands.Choice[str]]:
        return await self.model_names(interaction, current)

    @video.autocomplete("duration")
    async def _video_durations(
        self, interaction: discord.Interaction[VideoBot], current: int | str
    ) -> list[app_commands.Choice[int]]:
        return await self.duration_names(interaction, current)

    @animate.autocomplete("duration")
    async def _animate_durations(
        self, interaction: discord.Interaction[VideoBot], current: int | str
    ) -> list[app_commands.Choice[int]]:
        return await self.duration_names(interaction, current)


def model_choices(bot: VideoBot, current: str) -> list[app_commands.Choice[str]]:
    """Autocomplete: the models members may pick whose id contains what was typed."""
    return [
        app_commands.Choice(name=f"{spec.id} — {spec.label}", value=spec.id)
        for spec in offered_models(bot.settings.provider, bot.settings.model)
        if current.lower() in spec.id
    ][:25]


async def fitted(
    bot: VideoBot, data: bytes, url: str, options: VideoOptions
) -> tuple[SourceImage, Orientation]:
    """An image checked and fitted to the model, ready to hand to the provider."""
    source, picked = await prepare_image(data, options, original_url=url)
    needs_url = options.spec.image.transport == "url"
    if needs_url and source.url is None and not bot.settings.public_base_url:
        raise Refusal(
            "That image needs resizing for this provider, which the bot can only hand "
            "over with a public webhook URL. Please upload a JPEG, PNG or WebP under 10 MB."
        )
    return source, picked


async def setup(bot: VideoBot) -> None:
    await bot.add_cog(Video(bot))
