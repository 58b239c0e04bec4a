"""Embeds and short texts of command replies (quota, usage). Pure functions: no I/O."""

from __future__ import annotations

from datetime import date

import discord

from bot.catalog.pricing import micros
from bot.catalog.pricing import money as money_of
from bot.media.chart import UsageChart, member_series, viewer_series
from bot.store import QuotaExceeded, QuotaSettings, Usage, UsageReport
from bot.store.charts import DayUsage

CHART_FILE = "usage.png"


def quota_refusal(exc: QuotaExceeded) -> str:
    when = f"<t:{int(exc.resets_at)}:R>"
    if exc.reason == "price_unknown":
        return ("This server caps its spending, and this model's price is not known here, "
                "so it cannot be checked: nothing was charged. A server admin can set its "
                "price in MODEL_PRICES (or pick another model).")
    if exc.reason in ("spend", "member_spend"):
        whose = "your" if exc.reason == "member_spend" else "this server's"
        return (f"That would pass {whose} spend cap: {money_of(exc.remaining)} left of "
                f"{money_of(exc.limit)} this period, and this video costs more. Nothing was "
                f"charged. The cap renews {when}.")
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
    if usage.guild_spend_limit is not None:
        embed.add_field(name="Server spend", value=(
            f"{money_of(usage.guild_spend_remaining)} left of "
            f"{money_of(usage.guild_spend_limit)} ({money_of(usage.guild_spent)} used)"),
            inline=True)
    else:
        embed.add_field(name="Server spend", value=f"{money_of(usage.guild_spent)} used, no cap",
                        inline=True)
    if usage.member_spend_limit is not None:
        embed.add_field(name="Your spend", value=(
            f"{money_of(usage.member_spend_remaining)} left of "
            f"{money_of(usage.member_spend_limit)}"), inline=True)
    if quota.concurrent:
        embed.add_field(name="At once", value=f"{quota.concurrent} job(s)", inline=True)
    embed.add_field(name="Renews", value=f"<t:{int(usage.resets_at)}:R>", inline=True)
    return embed


def money(value: float | None) -> str:
    """Dollars as the reports show them (unknown when no price is known)."""
    return money_of(None if value is None else micros(value))


def usage_embed(report: UsageReport, chart: UsageChart | None = None) -> discord.Embed:
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
    models = [f"`{m.model}` on {m.provider} — {m.seconds} s in {m.jobs} job(s), {money(m.cost)}"
              for m in report.models[:10]]
    if models:
        embed.add_field(name="By model", value="\n".join(models), inline=False)
    if chart is not None:
        embed.add_field(name="Seconds per day (picture)", value=chart_legend(chart),
                        inline=False)
        embed.set_image(url=f"attachment://{CHART_FILE}")
    embed.set_footer(text="Counts since the period began or the last /quota reset")
    return embed



def usage_chart(rows: list[DayUsage], days: list[date], quota: QuotaSettings, *,
                viewer: int | None, today: date) -> UsageChart:
    """What the /usage picture shows: per member for moderators (``viewer`` None), else
    the member's own seconds against everyone else's."""
    series = member_series(rows, days) if viewer is None else viewer_series(rows, days, viewer)
    span = {"day": "last 7 days", "week": "this week",
            "month": days[0].strftime("%B %Y")}[quota.period]
    return UsageChart(
        title=f"Seconds of video per day · {span}", days=days, series=series, today=today,
        daily_limit=quota.seconds if quota.period == "day" else None,
    )


def chart_legend(chart: UsageChart) -> str:
    """The picture's colours, named: members by mention, so no name is drawn."""
    lines = []
    for item in chart.series:
        who = f"{item.label} <@{item.user_id}>" if item.label.startswith("#") else item.label
        lines.append(f"{item.emoji} {who} — {sum(item.values)} s")
    return "\n".join(lines)
