"""Embeds for /settings, /blocklist list and /jobs. Pure functions: no I/O."""

from __future__ import annotations

from collections.abc import Sequence

import discord

from bot.catalog import ModelSpec
from bot.moderation.policy import BlockedMember, BlockEntry, GuildPolicy
from bot.posting.embeds import shorten
from bot.store import Job, JobState

FIELD_MAX = 1024
STATE_WORDS = {
    JobState.RESERVED: "⏳ waiting in line",
    JobState.SUBMITTING: "📨 sending",
    JobState.SUBMITTED: "🎬 rendering",
    JobState.SUCCEEDED: "⬇️ posting",
    JobState.DELIVERED: "✅ delivered",
    JobState.FAILED: "❌ failed",
    JobState.CANCELLED: "🛑 cancelled",
}


def _joined(items: Sequence[str], empty: str, limit: int = FIELD_MAX) -> str:
    text = ""
    for n, item in enumerate(items):
        more = f" and {len(items) - n} more"
        candidate = f"{text}, {item}" if text else item
        if len(candidate) + len(more) > limit:
            return text + more
        text = candidate
    return text or empty


def settings_embed(
    policy: GuildPolicy, offered: Sequence[ModelSpec], entries: Sequence[BlockEntry],
    blocked: Sequence[BlockedMember],
) -> discord.Embed:
    embed = discord.Embed(title="Video settings", colour=discord.Colour.blurple())
    embed.add_field(name="Channels", value=_joined(
        [f"<#{c}>" for c in policy.channels], "every channel"), inline=False)
    embed.add_field(name="Roles", value=_joined(
        [f"<@&{r}>" for r in policy.roles], "everyone"), inline=False)
    every = ", ".join(f"`{m.id}`" for m in offered)
    embed.add_field(name="Models", value=_joined(
        [f"`{m}`" for m in policy.models], f"every model ({every})"), inline=False)
    longest = max((d for m in offered for d in m.durations), default=0)
    embed.add_field(
        name="Longest video",
        value=f"{policy.max_duration} s" if policy.max_duration else f"no limit ({longest} s)",
        inline=True,
    )
    embed.add_field(
        name="Cooldown",
        value=f"{policy.cooldown_s} s between requests" if policy.cooldown_s else "none",
        inline=True,
    )
    embed.add_field(
        name="Per member", value=f"{policy.max_queued} video(s) on the way at once"
        if policy.max_queued else "no limit", inline=True,
    )
    embed.add_field(
        name="Audit channel",
        value=f"<#{policy.audit_channel_id}>" if policy.audit_channel_id else "off",
        inline=True,
    )
    words = sum(1 for e in entries if e.kind == "word")
    embed.add_field(
        name="Blocklist", value=f"{words} word(s), {len(entries) - words} pattern(s) — "
        "see /blocklist list", inline=True,
    )
    embed.add_field(name="Blocked members", value=_joined(
        [f"<@{b.user_id}>" for b in blocked], "nobody"), inline=False)
    embed.set_footer(text="Change these with /settings options (Manage Server); "
                          "quotas are under /quota")
    return embed


def blocklist_embed(entries: Sequence[BlockEntry]) -> discord.Embed:
    """Entries under spoilers: moderators open only what they mean to read."""
    embed = discord.Embed(title="Blocklist", colour=discord.Colour.dark_red())
    words = [f"||`{e.value}`||" for e in entries if e.kind == "word"]
    patterns = [f"||`{e.value}`||" for e in entries if e.kind == "pattern"]
    embed.add_field(name=f"Words and phrases ({len(words)})",
                    value=_joined(words, "none"), inline=False)
    embed.add_field(name=f"Patterns ({len(patterns)})",
                    value=_joined(patterns, "none"), inline=False)
    embed.set_footer(text="Matched case-insensitively on normalised text: look-alike letters, "
                          "accents and spacing tricks fold away. Words match whole words.")
    return embed


def job_line(job: Job, *, show_member: bool) -> str:
    state = STATE_WORDS[job.state]
    if job.state in (JobState.FAILED, JobState.CANCELLED):
        state += " (refunded)" if job.charge.value == "refunded" else " (not refunded)"
    parts = [f"`{job.id[:8]}`", state, f"<t:{int(job.created_at)}:R>", f"{job.duration} s",
             f"`{job.model}` on {job.provider}"]
    if show_member:
        parts.insert(1, f"<@{job.user_id}>")
    if job.message_id and job.guild_id and job.channel_id:
        parts.append(f"[video](https://discord.com/channels/{job.guild_id}/{job.channel_id}/"
                     f"{job.message_id})")
    prompt = shorten(job.prompt, 90).replace("`", "ˋ")
    return " · ".join(parts) + f"\n> {prompt}"


def jobs_embed(jobs: Sequence[Job], *, title: str, show_member: bool) -> discord.Embed:
    embed = discord.Embed(title=title, colour=discord.Colour.blurple())
    lines: list[str] = []
    for job in jobs:
        line = job_line(job, show_member=show_member)
        if sum(len(x) + 1 for x in lines) + len(line) > 4000:
            break
        lines.append(line)
    embed.description = "\n".join(lines) or "No videos yet."
    embed.set_footer(text="Stop an unfinished one with /cancel job:<id>")
    return embed
