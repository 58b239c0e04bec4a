"""Starting a job from an interaction: shared by /video, /animate and the Retry button.

The order is: cheap option checks, the bot's channel permissions, the deferral (instant
acknowledgement), then the moderation rules (they read the database) while holding the
member's lock, and only then the quota reservation. Every refusal on the way is one line
in the audit channel; so is every accepted request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import discord

from bot.catalog import Orientation, UnknownModel, get_model, request_price
from bot.jobs.intake import Refusal, VideoOptions, start_job
from bot.moderation.rules import RequestFacts, Rule, RuleRefusal
from bot.posting.audit import refusal_line, request_line
from bot.providers.base import SourceImage
from bot.store import Job, QuotaExceeded
from cogs.checks import missing_channel_permissions
from cogs.render import quota_refusal

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
        "interaction_at": interaction.client.started_at(interaction),
        "upload_limit": interaction.filesize_limit,
    }


async def defer(interaction: discord.Interaction[Any]) -> None:
    """Acknowledge at once, privately: refusals and the live status are the member's own;
    only the finished video is posted for everyone."""
    if not interaction.response.is_done():
        await interaction.response.defer(thinking=True, ephemeral=True)
        interaction.client.interaction_gate.settled(interaction.id)
        interaction.client.metrics.acknowledged(interaction.created_at, interaction.type.name)


def request_facts(interaction: discord.Interaction[Any], options: VideoOptions) -> RequestFacts:
    """The request as plain values for the rule check (a thread counts as its parent too)."""
    assert interaction.guild_id is not None and interaction.channel_id is not None
    channels = [interaction.channel_id]
    parent = getattr(interaction.channel, "parent_id", None)
    if isinstance(parent, int):
        channels.append(parent)
    roles = getattr(interaction.user, "roles", ())
    return RequestFacts(
        guild_id=interaction.guild_id,
        user_id=interaction.user.id,
        channel_ids=tuple(channels),
        model=options.spec.id,
        duration=options.duration,
        prompt=options.prompt,
        role_ids=frozenset(role.id for role in roles),
    )


@asynccontextmanager
async def admitted(
    interaction: discord.Interaction[VideoBot], options: VideoOptions
) -> AsyncIterator[None]:
    """Check the moderation rules (raises RuleRefusal); the body reserves the job while
    the member's lock is held. Call after the deferral: the rules read the database."""
    if interaction.guild_id is None:
        yield
        return
    async with interaction.client.rules.admit(request_facts(interaction, options)):
        yield


def _refusal_rule(exc: Exception) -> tuple[str, str]:
    if isinstance(exc, RuleRefusal):
        return exc.rule.value, exc.user_message
    if isinstance(exc, QuotaExceeded):
        return "quota", quota_refusal(exc)
    assert isinstance(exc, Refusal)
    return "options", exc.user_message


@asynccontextmanager
async def audited(
    interaction: discord.Interaction[VideoBot], *, prompt: str, model: str | None,
    duration: int | None,
) -> AsyncIterator[None]:
    """Write one audit line for a request refused inside the body, then re-raise."""
    try:
        yield
    except (Refusal, QuotaExceeded) as exc:
        bot = interaction.client
        rule, reason = _refusal_rule(exc)
        name = model or bot.settings.model
        seconds, cost = duration, None
        try:
            spec = get_model(bot.settings.provider, name)
            seconds = spec.length_for(duration)
            price = request_price(spec, seconds, bot.settings.model_prices)
            cost = None if price is None else price / 1_000_000
        except UnknownModel:
            pass
        bot.audit.post(interaction.guild_id, refusal_line(
            user_id=interaction.user.id, channel_id=interaction.channel_id, model=name,
            seconds=seconds, cost=cost, prompt=prompt, rule=rule, reason=reason,
            hide_prompt=rule == Rule.BLOCKLIST.value,
        ))
        raise


async def launch(
    interaction: discord.Interaction[VideoBot],
    options: VideoOptions,
    *,
    image: SourceImage | None = None,
    orientation: Orientation | None = None,
    end_image: SourceImage | None = None,
) -> Job:
    """Reserve and start; the job service then drives the status message."""
    bot = interaction.client
    assert interaction.channel_id is not None
    job = await start_job(
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
        end_image=end_image,
    )
    bot.audit.post(job.guild_id, request_line(job))
    return job
