"""/quota show|set|reset and /usage."""

from __future__ import annotations

import asyncio
import io
import time
from datetime import UTC, datetime
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import VideoBot
from bot.catalog.pricing import micros
from bot.media.chart import UsageChart, chart_days, day_bounds
from bot.media.chart import draw as draw_chart
from bot.store import QuotaSettings, Store
from cogs.checks import moderator_only
from cogs.render import CHART_FILE, quota_embed, usage_chart, usage_embed

Period = Literal["day", "week", "month"]


class Quota(commands.Cog):
    quota = app_commands.Group(
        name="quota", description="This server's video quota", guild_only=True
    )

    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot

    async def _current(self, guild_id: int) -> tuple[QuotaSettings, bool]:
        settings = await self.bot.store.get_quota(guild_id, self.bot.settings.default_quota_seconds)
        return settings, not await self.bot.store.has_quota(guild_id)

    @quota.command(name="show", description="How many seconds of video are left")
    async def show(self, interaction: discord.Interaction[VideoBot]) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        quota, is_default = await self._current(interaction.guild_id)
        usage = await self.bot.store.usage(interaction.guild_id, interaction.user.id, quota)
        await interaction.followup.send(
            embed=quota_embed(quota, usage, is_default=is_default), ephemeral=True
        )

    @quota.command(name="set", description="Set this server's video quota (Manage Server)")
    @app_commands.describe(
        seconds="Seconds of video per period for the whole server",
        period="How often the quota renews",
        member_seconds="Most seconds one member may use per period (empty: no cap)",
        concurrent="Most videos in progress at once (empty: no limit)",
        spend="Most US dollars per period at the providers' list prices, e.g. 20 or 2.50 "
              "(0 removes the cap; empty: kept)",
        member_spend="Most US dollars one member may spend per period (0 removes the cap; "
                     "empty: kept)",
    )
    @moderator_only(subcommand=True)
    async def set_(
        self,
        interaction: discord.Interaction[VideoBot],
        seconds: app_commands.Range[int, 0, 1_000_000],
        period: Period = "day",
        member_seconds: app_commands.Range[int, 0, 1_000_000] | None = None,
        concurrent: app_commands.Range[int, 1, 100] | None = None,
        spend: app_commands.Range[float, 0, 1_000_000] | None = None,
        member_spend: app_commands.Range[float, 0, 1_000_000] | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        current, _ = await self._current(interaction.guild_id)
        quota = QuotaSettings(
            seconds=seconds, period=period, member_seconds=member_seconds, concurrent=concurrent,
            spend_micros=spend_cap(spend, current.spend_micros),
            member_spend_micros=spend_cap(member_spend, current.member_spend_micros),
        )
        await self.bot.store.set_quota(interaction.guild_id, quota, interaction.user.id)
        usage = await self.bot.store.usage(interaction.guild_id, interaction.user.id, quota)
        await interaction.followup.send(
            "Quota updated.", embed=quota_embed(quota, usage, is_default=False), ephemeral=True
        )

    @quota.command(name="reset", description="Give the server its full quota back now "
                   "(Manage Server)")
    @moderator_only(subcommand=True)
    async def reset(self, interaction: discord.Interaction[VideoBot]) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self.bot.store.reset_usage(interaction.guild_id, interaction.user.id)
        quota, is_default = await self._current(interaction.guild_id)
        usage = await self.bot.store.usage(interaction.guild_id, interaction.user.id, quota)
        await interaction.followup.send(
            "Usage reset: the full quota is available again.",
            embed=quota_embed(quota, usage, is_default=is_default), ephemeral=True,
        )

    @app_commands.command(name="usage", description="Video usage this period, with costs")
    @app_commands.guild_only()
    async def usage(self, interaction: discord.Interaction[VideoBot]) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        quota, _ = await self._current(interaction.guild_id)
        report = await self.bot.store.usage_report(interaction.guild_id, quota)
        # Moderators see each member's share; a member sees theirs against everyone else's.
        viewer = None if interaction.permissions.manage_guild else interaction.user.id
        chart = await usage_picture(self.bot.store, interaction.guild_id, quota, viewer)
        png = await asyncio.to_thread(draw_chart, chart)  # Pillow, off the event loop
        await interaction.followup.send(
            embed=usage_embed(report, chart), file=discord.File(io.BytesIO(png), CHART_FILE),
            ephemeral=True,
        )


def spend_cap(asked: float | None, current: int | None) -> int | None:
    """A spend cap in micro-dollars: as asked (0: no cap), or unchanged when not asked."""
    if asked is None:
        return current
    amount = micros(asked)
    return amount or None


async def usage_picture(store: Store, guild_id: int, quota: QuotaSettings,
                        viewer: int | None, now: float | None = None) -> UsageChart:
    """What /usage draws: seconds per day of the period, from the store."""
    now = time.time() if now is None else now
    days = chart_days(quota.period, now)
    rows = await store.daily_usage(guild_id, *day_bounds(days))
    today = datetime.fromtimestamp(now, UTC).date()
    return usage_chart(rows, days, quota, viewer=viewer, today=today)


async def setup(bot: VideoBot) -> None:
    await bot.add_cog(Quota(bot))
