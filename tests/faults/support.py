"""The real bot (in process) against the fake Discord and the APIXO emulator, with the
books every fault test checks afterwards: nothing lost, nothing posted twice, the quota
ledger balanced."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.providers.apixo import ApixoProvider
from bot.providers.http import RetryPolicy
from bot.store import Job
from tests.bot.support import World, world
from tests.fakes.apixo import FakeApixo

# Tight retry budgets so that storms play out in seconds, not minutes.
FAST_STATUS = RetryPolicy.fast(attempts=4, max_total=3.0, timeout=1.0)
FAST_SUBMIT = RetryPolicy.fast(attempts=4, max_total=3.0, timeout=1.0)


@dataclass
class Books:
    delivered: int
    failed: int
    lost: int  # jobs neither delivered nor failed-and-refunded
    duplicated: int  # extra video messages for a job
    overspent: int  # seconds charged beyond what was delivered
    unbalanced: int  # jobs whose ledger disagrees with their outcome


@contextlib.asynccontextmanager
async def fault_world(
    tmp_path: Path, *, callbacks: bool = False, fast_retries: bool = True, **settings: Any
) -> AsyncIterator[tuple[World, FakeApixo]]:
    async with FakeApixo(queue_s=0.05, task_s=0.3) as fake, world(
        tmp_path, provider="apixo", apixo_api_key=fake.api_key, apixo_base_url=fake.api_base,
        default_quota_seconds=10_000, **settings,
    ) as w:
        if callbacks:  # the port is known only once the webhook server listens
            w.bot.webhook.public_base_url = f"http://127.0.0.1:{w.bot.webhook.port}"
        if fast_retries:
            w.bot._providers["apixo"] = ApixoProvider(
                w.bot.session, fake.api_base, fake.api_key, retry=FAST_STATUS,
                submit_retry=FAST_SUBMIT)
        yield w, fake


async def videos(w: World, prompts: list[str], **options: Any) -> list[int]:
    """Ask for one 4-second video per prompt; returns the interaction ids once acked."""
    ids = [await w.command("video", {"prompt": p, "duration": 4, **options}) for p in prompts]
    for interaction in ids:
        assert await w.acked(interaction) < 3
    return ids


async def settle(w: World, count: int, within: float = 30.0) -> list[Job]:
    """Wait until ``count`` jobs exist and none is unfinished; then a moment more, for a
    late duplicate to show up; return them."""
    await w.settled(count, within)
    await asyncio.sleep(0.3)
    return await w.bot.store.jobs_for(w.guild, None, limit=10_000)


def job_of(message: Any) -> str:
    return str(message.embeds[0]["footer"]["text"]).removeprefix("job ")


async def books(w: World, jobs: list[Job]) -> Books:
    posted = Counter(job_of(m) for m in w.videos())
    delivered = failed = lost = duplicated = overspent = unbalanced = 0
    for job in jobs:
        balance = await w.bot.store.ledger_balance(job.id)
        copies = posted.get(job.id, 0)
        duplicated += max(0, copies - 1)
        if job.state.value == "delivered" and copies >= 1:
            delivered += 1
            unbalanced += balance != job.seconds or job.charge.value != "committed"
        elif job.state.value == "failed" and copies == 0 and job.error_message:
            failed += 1
            overspent += max(0, balance)
            unbalanced += balance != 0 or job.charge.value != "refunded"
        else:
            lost += 1
    usage = await w.bot.store.usage(w.guild, None, await w.bot.store.get_quota(w.guild, 10_000))
    overspent += max(0, usage.guild_used - sum(j.seconds for j in jobs
                                               if j.state.value == "delivered"))
    return Books(delivered, failed, lost, duplicated, overspent, unbalanced)


def assert_clean(result: Books, *, delivered: int | None = None) -> None:
    assert (result.lost, result.duplicated, result.overspent, result.unbalanced) == (
        0, 0, 0, 0), result
    if delivered is not None:
        assert result.delivered == delivered, result


async def take_write_lock(conn: sqlite3.Connection, within: float = 20.0) -> None:
    """BEGIN IMMEDIATE without blocking the event loop: the bot under test shares this
    loop, and its own open transaction can only finish while the loop runs."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.01)
