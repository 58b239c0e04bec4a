"""Waiting for a provider task: polls on the provider's schedule, woken early by callbacks.

An unsigned callback is only a hint: it wakes the waiter, which then asks the provider's
status endpoint and trusts that answer alone. A signed webhook, once verified, may carry
the final status itself (``pushed``): then no status call is needed. Polling stays the
safety net for lost callbacks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.catalog import ModelSpec
from bot.providers.base import TaskStatus, VideoProvider
from bot.providers.errors import ProviderDown, RateLimited, TimedOut

log = logging.getLogger(__name__)

# With callbacks on, the poll is only a safety net for lost callbacks.
SAFETY_NET_INTERVAL_S = 30.0


@dataclass(frozen=True)
class PollSchedule:
    first_s: float
    interval_s: float
    timeout_s: float
    # The least time between two status checks, however many callbacks arrive.
    min_gap_s: float = 1.0

    @classmethod
    def for_job(
        cls,
        spec: ModelSpec,
        duration: int,
        *,
        timeout_s: float,
        first_s: float | None = None,
        interval_s: float | None = None,
        callbacks: bool = False,
    ) -> PollSchedule:
        """The provider's advice, unless POLL_FIRST_S / POLL_INTERVAL_S say otherwise."""
        first = first_s if first_s is not None else spec.first_poll_after(duration)
        interval = interval_s if interval_s is not None else spec.poll_interval_s
        if callbacks and interval_s is None:
            interval = max(interval, SAFETY_NET_INTERVAL_S)
        return cls(first, interval, timeout_s, min_gap_s=min(1.0, interval))


StatusHook = Callable[[TaskStatus, float], Awaitable[None]]
# The final status a verified webhook delivered, if any (looked at on every wake).
Pushed = Callable[[], Awaitable[TaskStatus | None]]


async def wait_for_task(
    provider: VideoProvider,
    spec: ModelSpec,
    task_id: str,
    schedule: PollSchedule,
    *,
    wake: asyncio.Event | None = None,
    on_status: StatusHook | None = None,
    started_at: float | None = None,
    pushed: Pushed | None = None,
    signed: bool = False,
) -> TaskStatus:
    """Return the task's finished status; raise TimedOut after ``schedule.timeout_s``.

    ``started_at`` (time.time()) lets a resumed job keep its original deadline. With
    ``signed`` webhooks a wake brings its news through ``pushed``: a wake without a final
    status (a verified start event) makes no status call before the scheduled one.
    """
    start = started_at if started_at is not None else time.time()
    deadline = start + schedule.timeout_s
    next_check = max(time.time(), start + schedule.first_s)
    last_check = 0.0
    while True:
        if pushed is not None:
            delivered = await pushed()
            if delivered is not None and delivered.state.finished:
                return delivered
        now = time.time()
        if now >= deadline:
            raise TimedOut("The video was not ready in time, so the bot stopped waiting.")
        delay = max(0.0, min(next_check, deadline) - now)
        if wake is not None:
            try:
                await asyncio.wait_for(wake.wait(), timeout=delay)
                wake.clear()
                if pushed is not None:
                    delivered = await pushed()
                    if delivered is not None and delivered.state.finished:
                        return delivered
                    if signed and time.time() < next_check:
                        continue
                # Many callbacks (or forged ones) never make us hammer the provider.
                gap = last_check + schedule.min_gap_s - time.time()
                if gap > 0:
                    await asyncio.sleep(gap)
            except TimeoutError:
                pass
        else:
            await asyncio.sleep(delay)
        if time.time() >= deadline:
            continue
        last_check = time.time()
        try:
            status = await provider.status(spec, task_id)
        except (RateLimited, ProviderDown, TimedOut) as exc:
            # Transient even after the adapter's own retries: try again next round.
            wait = schedule.interval_s
            if isinstance(exc, RateLimited) and exc.retry_after:
                wait = max(wait, exc.retry_after)
            log.warning("status check for task %s failed (%s); retrying in %.0f s",
                        task_id, exc.code, wait)
            next_check = time.time() + wait
            continue
        if on_status is not None:
            await on_status(status, time.time() - start)
        if status.state.finished:
            return status
        next_check = time.time() + schedule.interval_s
