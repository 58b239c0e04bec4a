"""The audit channel: one compact line per request, refusal and outcome.

The ``*_line`` functions are pure. ``AuditPoster`` sends the lines from one background
worker (so lines keep their order and a slow or broken audit channel never holds up a
request), to the channel that the guild's settings name at that moment, with every
mention disabled. Requests and refusals come from the cogs; outcomes (done, failed,
cancelled) from the job service's ``on_update`` hook.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import discord

from bot.catalog.pricing import micros
from bot.catalog.pricing import money as money_of
from bot.jobs.types import JobUpdate, Phase
from bot.store import DatabaseUnavailable, Job, Store

log = logging.getLogger(__name__)

EXCERPT_CHARS = 80
REASON_CHARS = 160
QUEUE_MAX = 1000
# A line waits for a database that is away: this many tries, backing off up to the max.
OUTAGE_FIRST_S, OUTAGE_MAX_S, OUTAGE_TRIES = 0.5, 15.0, 12


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def excerpt(prompt: str, *, hidden: bool = False) -> str:
    """The prompt's start as a code span (no markdown, no mentions); a spoiler if hidden."""
    body = _short(prompt, EXCERPT_CHARS).replace("`", "ˋ") or " "
    span = f"`{body}`"
    return f"||{span}||" if hidden else span


def money(value: float | None) -> str:
    return "cost unknown" if value is None else f"est. {money_of(micros(value))}"


def _parts(*parts: str | None) -> str:
    return " · ".join(p for p in parts if p)


def request_line(job: Job) -> str:
    return _parts(
        f"🎬 request `{job.id[:8]}`", f"<@{job.user_id}>",
        f"<#{job.channel_id}>" if job.channel_id else None,
        f"`{job.model}` on {job.provider}", f"{job.seconds} s", money(job.cost),
        excerpt(job.prompt),
    )


def refusal_line(
    *, user_id: int, channel_id: int | None, model: str | None, seconds: int | None,
    cost: float | None, prompt: str, rule: str, reason: str, hide_prompt: bool = False,
) -> str:
    return _parts(
        "⛔ refused", f"<@{user_id}>", f"<#{channel_id}>" if channel_id else None,
        f"`{model}`" if model else None, f"{seconds} s" if seconds else None,
        money(cost) if model and seconds else None,
        excerpt(prompt, hidden=hide_prompt), f"rule: {rule}", _short(reason, REASON_CHARS),
    )


def outcome_line(update: JobUpdate) -> str | None:
    """A line for a final phase (done, failed, cancelled); None for the others."""
    job = update.job
    head = {Phase.DONE: "✅ done", Phase.FAILED: "❌ failed", Phase.CANCELLED: "🛑 cancelled"}
    if update.phase not in head:
        return None
    result: str | None = None
    if update.phase is Phase.DONE:
        if job.message_id and job.guild_id and job.channel_id:
            result = (f"[video](https://discord.com/channels/{job.guild_id}/{job.channel_id}/"
                      f"{job.message_id})")
        cost = money(job.cost)
    else:
        refunded = update.refunded or job.charge.value == "refunded"
        cost = f"{job.seconds} s refunded" if refunded else f"not refunded, {money(job.cost)}"
        if update.message:
            result = _short(update.message, REASON_CHARS)
    return _parts(f"{head[update.phase]} `{job.id[:8]}`", f"<@{job.user_id}>",
                  f"`{job.model}` on {job.provider}",
                  f"{job.seconds} s", cost, result)


class AuditPoster:
    def __init__(self, client: discord.Client, store: Store, *, queue_max: int = QUEUE_MAX) -> None:
        self._client = client
        self._store = store
        self._queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue(queue_max)
        self._worker: asyncio.Task[None] | None = None
        self.posted = 0

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.create_task(self._run(), name="audit-poster")

    async def close(self, grace_s: float = 2.0) -> None:
        """Post what is queued (for up to ``grace_s``), then stop."""
        if self._worker is not None:
            if not self._worker.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._queue.join(), grace_s)
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    def post(self, guild_id: int | None, line: str) -> None:
        """Queue a line for the guild's audit channel (if it has one); never blocks."""
        if guild_id is None:
            return
        try:
            self._queue.put_nowait((guild_id, line))
        except asyncio.QueueFull:
            log.warning("audit queue full: a line for guild %s was dropped", guild_id)

    async def on_update(self, update: JobUpdate) -> None:
        line = outcome_line(update)
        if line is not None:
            self.post(update.job.guild_id, line)

    async def idle(self) -> None:
        """Wait until every queued line was handled (tests)."""
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            guild_id, line = await self._queue.get()
            try:
                await self._send_when_possible(guild_id, line)
            except asyncio.CancelledError:
                raise
            except discord.HTTPException as exc:
                log.warning("could not post to the audit channel of guild %s: %s %s",
                            guild_id, exc.status, exc.text)
            except Exception:
                log.exception("audit line for guild %s failed", guild_id)
            finally:
                self._queue.task_done()

    async def _send_when_possible(self, guild_id: int, line: str) -> None:
        """Send, waiting out a database that is away for a while (lines keep their order);
        a line that still cannot be sent after that is dropped with a warning."""
        delay = OUTAGE_FIRST_S
        for _ in range(OUTAGE_TRIES):
            try:
                await self._send(guild_id, line)
                return
            except DatabaseUnavailable:
                await asyncio.sleep(delay)
                delay = min(delay * 2, OUTAGE_MAX_S)
        log.warning("the database stayed away: an audit line for guild %s was dropped",
                    guild_id)

    async def _send(self, guild_id: int, line: str) -> None:
        channel_id = (await self._store.get_policy(guild_id)).audit_channel_id
        if channel_id is None:
            return
        channel = self._client.get_partial_messageable(channel_id, guild_id=guild_id)
        await channel.send(line, allowed_mentions=discord.AllowedMentions.none())
        self.posted += 1
