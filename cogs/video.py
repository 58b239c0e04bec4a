"""/video and /animate: parse options, check the rules, hand them to bot.jobs.intake, and let the
job run."""

from __future__ import annotations

from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import VideoBot
from bot.catalog import MODELS, Mode, Orientation, offered_models
from bot.jobs.intake import Refusal, VideoOptions, check_attachment, check_options, prepare_image
from bot.providers.base import SourceImage
from cogs.launch import admitted, audited, check_can_post, defer, launch

DURATIONS = sorted({d for spec in MODELS for d in spec.durations})
DURATION_CHOICES = [app_commands.Choice(name=f"{d} seconds", value=d) for d in DURATIONS]
Orient = Literal["landscape", "portrait"]


class Video(commands.Cog):
    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot

    async def model_names(
        self, interaction: discord.Interaction[VideoBot], current: str
    ) -> list[app_commands.Choice[str]]:
        return [
            app_commands.Choice(name=f"{spec.id} — {spec.label}", value=spec.id)
            for spec in offered_models(self.bot.settings.provider, self.bot.settings.model)
            if current.lower() in spec.id
        ][:25]

    @app_commands.command(name="video", description="Make a short AI video from a prompt")
    @app_commands.describe(
        prompt="What the video should show",
        duration="Length in seconds",
        orientation="Landscape (16:9) or portrait (9:16)",
        model="Which model to use",
    )
    @app_commands.choices(duration=DURATION_CHOICES)
    @app_commands.guild_only()
    async def video(
        self,
        interaction: discord.Interaction[VideoBot],
        prompt: str,
        duration: int | None = None,
        orientation: Orient | None = None,
        model: str | None = None,
    ) -> None:
        async with audited(interaction, prompt=prompt, model=model, duration=duration):
            options = check_options(
                self.bot.settings, prompt=prompt, duration=duration, orientation=orientation,
                model=model, mode=Mode.TEXT,
            )
            check_can_post(interaction)
            await defer(interaction)
            async with admitted(interaction, options):
                await launch(interaction, options)

    @app_commands.command(name="animate", description="Bring an image to life as a short video")
    @app_commands.describe(
        image="A JPEG, PNG or WebP image",
        prompt="How the image should move",
        duration="Length in seconds",
        orientation="Defaults to the image's own",
        model="Which model to use",
    )
    @app_commands.choices(duration=DURATION_CHOICES)
    @app_commands.guild_only()
    async def animate(
        self,
        interaction: discord.Interaction[VideoBot],
        image: discord.Attachment,
        prompt: str,
        duration: int | None = None,
        orientation: Orient | None = None,
        model: str | None = None,
    ) -> None:
        async with audited(interaction, prompt=prompt, model=model, duration=duration):
            options = check_options(
                self.bot.settings, prompt=prompt, duration=duration, orientation=orientation,
                model=model, mode=Mode.IMAGE,
            )
            check_attachment(image.size)
            check_can_post(interaction)
            await defer(interaction)
            async with admitted(interaction, options):
                source, picked = await self._fitted(image, options)
                await launch(interaction, options, image=source, orientation=picked)

    async def _fitted(
        self, image: discord.Attachment, options: VideoOptions
    ) -> tuple[SourceImage, Orientation]:
        try:
            data = await image.read()  # at once: signed attachment URLs expire
        except discord.HTTPException:
            raise Refusal("I could not download that attachment; please upload it again.") \
                from None
        source, picked = await prepare_image(data, options, original_url=image.url)
        needs_url = options.spec.image.transport == "url"
        if needs_url and source.url is None and not self.bot.settings.public_base_url:
            raise Refusal(
                "That image needs resizing for this provider, which the bot can only hand "
                "over with a public webhook URL. Please upload a JPEG, PNG or WebP under 10 MB."
            )
        return source, picked

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


async def setup(bot: VideoBot) -> None:
    await bot.add_cog(Video(bot))
