"""The live status message of each job, edited with a throttle.

The status first lives in the interaction's original response. Interaction tokens die
after 15 minutes, so shortly before that the status moves to a channel message: a short
neutral line (no prompt, no options) naming the member, since everyone sees it.
Edits for one job are coalesced: at most one every ``min_interval`` seconds, the latest
state always wins, and final states are never dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import discord

from bot.jobs.types import JobUpdate, Phase
from bot.posting.embeds import channel_line
from bot.store import DatabaseUnavailable, Store

log = logging.getLogger(__name__)

TOKEN_LIFETIME_S = 15 * 60
TOKEN_SAFETY_S = 90  # move to a channel message this long before the token dies
FINAL = (Phase.DONE, Phase.FAILED, Phase.CANCELLED)
FIRST_EDIT_AFTER_S = 1.5  # the first status edit comes this long after the command

Render = Callable[[JobUpdate], discord.Embed]


class StatusBoard:
    def __init__(
        self,
        client: discord.Client,
        store: Store,
        render: Render,
        *,
        min_interval: float = 3.0,
        first_edit_after: float = FIRST_EDIT_AFTER_S,
        token_lifetime_s: float = TOKEN_LIFETIME_S,
    ) -> None:
        self._client = client
        self._store = store
        self._render = render
        self.min_interval = min_interval
        self.first_edit_after = first_edit_after
        self.token_lifetime_s = token_lifetime_s
        self._latest: dict[str, JobUpdate] = {}
        self._last_edit: dict[str, float] = {}
        self._flushers: dict[str, asyncio.Task[None]] = {}
        self.edits = 0

    async def update(self, update: JobUpdate) -> None:
        job_id = update.job.id
        self._latest[job_id] = update
        if job_id in self._flushers:
            return  # a flush is pending and will send the newest state
        self._flushers[job_id] = asyncio.create_task(self._flush_later(job_id))

    async def close(self) -> None:
        tasks = list(self._flushers.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _flush_later(self, job_id: str) -> None:
        try:
            wait = self._last_edit.get(job_id, 0.0) + self.min_interval - time.monotonic()
            if job_id not in self._last_edit:
                wait = self._first_edit_wait(self._latest.get(job_id))
            if wait > 0:
                await asyncio.sleep(wait)
            update = self._latest.pop(job_id, None)
            if update is not None:
                await self._edit(update)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("status update for job %s failed", job_id)
        finally:
            self._flushers.pop(job_id, None)
        if job_id in self._latest:  # something newer arrived while we were editing
            self._flushers[job_id] = asyncio.create_task(self._flush_later(job_id))

    def _first_edit_wait(self, update: JobUpdate | None) -> float:
        """How long a job's first status edit waits: until ``first_edit_after`` seconds
        after the member's command. The deferred reply already says the bot is thinking;
        meanwhile, under a burst of commands, the bot's time and connections go to
        acknowledging the others within Discord's 3 seconds instead of to edits."""
        if update is None:
            return 0.0
        try:
            started = float(update.job.context.get("interaction_at", 0))
        except (TypeError, ValueError):
            return 0.0
        return max(0.0, started + self.first_edit_after - time.time())

    async def _edit(self, update: JobUpdate) -> None:
        job = update.job
        try:  # the status message's id may have been recorded since
            fresh = await self._store.job(job.id)
        except DatabaseUnavailable:
            fresh = None  # the database is away: the update's own copy will do
        context = fresh.context if fresh is not None else job.context
        embed = self._render(update)
        self._last_edit[job.id] = time.monotonic()
        self.edits += 1
        if update.phase in FINAL:
            self._last_edit.pop(job.id, None)
        token = context.get("interaction_token")
        app_id = context.get("application_id")
        started = float(context.get("interaction_at", 0))
        safety = min(TOKEN_SAFETY_S, self.token_lifetime_s / 10)
        token_ok = token and app_id and (
            time.time() < started + self.token_lifetime_s - safety
        )
        status_message = context.get("status_message_id")
        if status_message is None and token_ok:
            webhook = discord.Webhook.partial(int(str(app_id)), str(token), client=self._client)
            try:
                # An interaction webhook takes "@original" as the id of its first response.
                original: Any = "@original"
                await webhook.edit_message(original, embed=embed, content=None)
                return
            except discord.NotFound:
                log.info("job %s: the interaction response is gone; posting status", job.id)
            except discord.HTTPException as exc:
                if exc.status != 401:
                    raise
        if job.channel_id is None:
            return
        await self._channel_status(update, status_message)

    async def _channel_status(self, update: JobUpdate, status_message: Any) -> None:
        """Once the token is dead the status can only be a channel message, which everyone
        sees: one neutral line without the prompt, posted once and changed only when the
        job ends."""
        job = update.job
        assert job.channel_id is not None
        channel = self._client.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
        text = channel_line(update)
        if status_message is not None:
            if update.phase not in FINAL:
                return  # the line already says the video is being made
            try:
                await channel.get_partial_message(int(status_message)).edit(
                    content=text, embed=None, allowed_mentions=discord.AllowedMentions.none()
                )
                return
            except discord.NotFound:
                pass
        if update.phase is Phase.DONE:
            return  # the video message itself tells the member; no new status needed
        mention = discord.AllowedMentions(
            everyone=False, roles=False, users=[discord.Object(job.user_id or 0)]
        )
        message = await channel.send(content=text, allowed_mentions=mention)
        # The line is in the channel: its id is recorded (waiting out a database that is
        # away), so the job's end changes this line instead of posting another.
        delay = 0.5
        while True:
            try:
                await self._store.update_context(job.id, {"status_message_id": message.id})
                return
            except DatabaseUnavailable:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15.0)
