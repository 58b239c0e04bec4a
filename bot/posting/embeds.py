"""Embeds and texts of what the bot posts: the live status and the finished video.

Pure functions: no I/O."""

from __future__ import annotations

import time

import discord

from bot.catalog import ModelSpec, get_model, money
from bot.jobs.types import JobUpdate, Phase
from bot.media.video import VideoInfo
from bot.store import Job

COLOURS = {
    Phase.QUEUED: discord.Colour.light_grey(),
    Phase.SUBMITTING: discord.Colour.blurple(),
    Phase.RENDERING: discord.Colour.blurple(),
    Phase.DOWNLOADING: discord.Colour.blurple(),
    Phase.POSTING: discord.Colour.blurple(),
    Phase.DONE: discord.Colour.green(),
    Phase.FAILED: discord.Colour.red(),
    Phase.CANCELLED: discord.Colour.dark_grey(),
}


def shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def duration_words(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, sec = divmod(seconds, 60)
    return f"{minutes} min {sec:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def spec_of(job: Job) -> ModelSpec | None:
    try:
        return get_model(job.provider, job.model)
    except LookupError:
        return None


def phase_line(update: JobUpdate) -> str:
    phase = update.phase
    if phase is Phase.QUEUED:
        where = f" (position {update.position})" if update.position else ""
        return f"⏳ Waiting in line{where}"
    if phase is Phase.SUBMITTING:
        return "📨 Sending to the video provider"
    if phase is Phase.RENDERING:
        pct = f" — {update.progress:.0%}" if update.progress is not None else ""
        return f"🎬 Rendering{pct}"
    if phase is Phase.DOWNLOADING:
        return "⬇️ Downloading the video"
    if phase is Phase.POSTING:
        return "📤 Posting the video"
    if phase is Phase.DONE:
        return "✅ Done"
    if phase is Phase.CANCELLED:
        refund = " Your seconds were refunded." if update.refunded else ""
        return f"🛑 Cancelled.{refund}"
    refund = f" Your {update.job.seconds} s were refunded." if update.refunded else ""
    return f"❌ {update.message or 'The video could not be made.'}{refund}"


def sound_words(job: Job) -> str | None:
    """'with sound' / 'no sound' where the member chose; None where the model decides."""
    audio = (job.context.get("options") or {}).get("audio")
    if not isinstance(audio, bool):
        return None
    return "with sound" if audio else "no sound"


def cost_words(job: Job) -> str:
    return f"est. {money(job.price_micros)}" if job.price_micros is not None else \
        "cost unknown"


def options_line(job: Job) -> str:
    mode = "image → video" if job.mode == "image-to-video" else "text → video"
    parts = [f"`{job.model}` on {job.provider}", f"{job.duration} s", job.orientation, mode,
             sound_words(job), cost_words(job)]
    return " · ".join(p for p in parts if p)


def status_embed(update: JobUpdate, *, now: float | None = None) -> discord.Embed:
    job = update.job
    now = time.time() if now is None else now
    embed = discord.Embed(
        title="Your video", description=phase_line(update), colour=COLOURS[update.phase]
    )
    embed.add_field(name="Prompt", value=shorten(job.prompt, 300), inline=False)
    embed.add_field(name="Options", value=options_line(job), inline=False)
    embed.add_field(name="Elapsed", value=duration_words(now - job.created_at), inline=True)
    spec = spec_of(job)
    if spec is not None and update.phase not in (Phase.DONE, Phase.FAILED, Phase.CANCELLED):
        low, high = spec.typical_s.get(job.duration, (0, 0))
        if high:
            embed.add_field(
                name="Usually takes",
                value=f"{duration_words(low)} – {duration_words(high)}",
                inline=True,
            )
    if job.message_id and job.channel_id and job.guild_id and update.phase is Phase.DONE:
        url = f"https://discord.com/channels/{job.guild_id}/{job.channel_id}/{job.message_id}"
        embed.add_field(name="Video", value=f"[Jump to the video]({url})", inline=True)
    embed.add_field(name="Requested by", value=f"<@{job.user_id}>", inline=True)
    embed.set_footer(text=f"job {job.id}")
    return embed


def result_embed(job: Job, info: VideoInfo) -> discord.Embed:
    embed = discord.Embed(description=shorten(job.prompt, 350), colour=discord.Colour.green())
    embed.add_field(name="Model", value=f"`{job.model}` on {job.provider}", inline=True)
    embed.add_field(name="Length", value=f"{info.duration_s:.0f} s", inline=True)
    embed.add_field(name="Requested by", value=f"<@{job.user_id}>", inline=True)
    if job.provider != "sandbox":
        embed.add_field(name="Cost", value=cost_words(job), inline=True)
    sound = sound_words(job)
    if sound is not None:
        embed.add_field(name="Sound", value=sound, inline=True)
    if job.provider == "sandbox":
        embed.add_field(
            name="Sandbox", value="A local test card, not made by AI. It cost nothing.",
            inline=False,
        )
    embed.set_footer(text=f"job {job.id}")
    return embed


def link_text(job: Job, url: str, expires_at: float) -> str:
    return (
        f"<@{job.user_id}> your video is too large to upload in this channel even after "
        f"shrinking it. Download it here before <t:{int(expires_at)}:f>: {url}"
    )


def channel_line(update: JobUpdate) -> str:
    """The status once the interaction token has died and only a channel message is
    possible: one neutral line for everyone to see, never the prompt or the options."""
    job = update.job
    who = f"<@{job.user_id}>"
    if update.phase is Phase.DONE:
        return f"{who} your video has been posted here."
    if update.phase in (Phase.FAILED, Phase.CANCELLED):
        return f"{who} {phase_line(update)}"
    return f"{who} your video is still being made; it will be posted here."
