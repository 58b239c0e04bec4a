"""Embeds and short texts of command replies (quota, usage). Pure functions: no I/O."""

from __future__ import annotations

import discord

from bot.store import QuotaExceeded, QuotaSettings, Usage, UsageReport


def quota_refusal(exc: QuotaExceeded) -> str:
    when = f"<t:{int(exc.resets_at)}:R>"
    if exc.reason == "concurrent":
        return (
            f"This server already has {exc.limit} video(s) in progress, its limit. "
            "Try again when one finishes."
        )
    who = "You have" if exc.reason == "member" else "This server has"
    return (
        f"{who} {exc.remaining} s of video left this period (limit {exc.limit} s); "
        f"that request needs more. The quota renews {when}."
    )


def quota_embed(quota: QuotaSettings, usage: Usage, *, is_default: bool) -> discord.Embed:
    embed = discord.Embed(title="Video quota", colour=discord.Colour.blurple())
    per = {"day": "per day", "week": "per week", "month": "per month"}[quota.period]
    note = " (the default; a moderator can change it with /quota set)" if is_default else ""
    embed.description = f"{quota.seconds} s of video {per}{note}."
    embed.add_field(
        name="Server", value=f"{usage.guild_remaining} s left of {usage.guild_limit} s",
        inline=True,
    )
    if usage.member_limit is not None:
        embed.add_field(
            name="You", value=f"{usage.member_remaining} s left of {usage.member_limit} s",
            inline=True,
        )
    else:
        embed.add_field(name="You", value=f"{usage.member_used} s used", inline=True)
    if quota.concurrent:
        embed.add_field(name="At once", value=f"{quota.concurrent} job(s)", inline=True)
    embed.add_field(name="Renews", value=f"<t:{int(usage.resets_at)}:R>", inline=True)
    return embed


def money(value: float | None) -> str:
    return "unknown" if value is None else f"${value:,.2f}"


def usage_embed(report: UsageReport) -> discord.Embed:
    embed = discord.Embed(title="Usage this period", colour=discord.Colour.blurple())
    embed.description = (
        f"{report.total_seconds} s of video in {report.jobs} job(s) "
        f"({report.delivered} delivered, {report.failed} failed) · "
        f"estimated cost {money(report.total_cost)}"
    )
    lines = [
        f"{rank}. <@{m.user_id}> — {m.seconds} s in {m.jobs} job(s), {money(m.cost)}"
        for rank, m in enumerate(report.top, start=1)
    ]
    embed.add_field(name="Top members", value="\n".join(lines) or "nobody yet", inline=False)
    embed.set_footer(text="Counts since the period began or the last /quota reset")
    return embed

