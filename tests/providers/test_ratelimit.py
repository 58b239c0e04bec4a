"""Each provider model's documented request rate (catalog ``requests_per_minute``) holds
for creates and polls alike, counted at the emulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.catalog import get_model
from bot.providers.apixo import ApixoProvider
from bot.providers.base import GenerationRequest
from bot.providers.ratelimit import RequestRates
from tests.fakes.apixo import FakeApixo
from tests.providers.emulator_support import FAST

PRO = get_model("apixo", "sora-2-pro")
SORA2 = get_model("apixo", "sora-2")
TEXT = GenerationRequest(prompt="a paper boat on a river", duration=4)


@pytest.fixture
async def fake() -> AsyncIterator[FakeApixo]:
    async with FakeApixo(queue_s=0.05, task_s=30) as emulator:
        yield emulator


@pytest.fixture
def provider(fake: FakeApixo, session: aiohttp.ClientSession) -> ApixoProvider:
    return ApixoProvider(session, fake.api_base, fake.api_key, retry=FAST, submit_retry=FAST)


def test_the_catalog_rate_becomes_one_limiter_per_model() -> None:
    rates = RequestRates()
    assert PRO.requests_per_minute == 60  # seed 001
    limiter = rates.for_model(PRO)
    assert limiter is not None and limiter is rates.for_model(PRO)
    assert limiter.max_rate == 1 and limiter.time_period == pytest.approx(1.0)
    assert rates.for_model(SORA2.model_copy(update={"requests_per_minute": None})) is None


async def test_a_create_and_a_poll_share_the_model_budget(fake: FakeApixo,
                                                          provider: ApixoProvider) -> None:
    """One request a minute: after the create, the poll of the same model waits at the
    limiter and never reaches the emulator; another model's requests are not held."""
    slow = PRO.model_copy(update={"requests_per_minute": 1})
    task_id = await provider.submit(slow, TEXT)
    poll = asyncio.create_task(provider.status(slow, task_id))
    try:
        done, _ = await asyncio.wait({poll}, timeout=0.5)
        assert not done, "the poll went out within the minute"
        assert [r.method for r in fake.requests] == ["POST"]
        # sora-2 has its own budget (none documented): it is not held behind sora-2-pro.
        other = await provider.submit(SORA2, TEXT)
        await provider.status(SORA2, other)
        assert not poll.done()
        assert len(fake.requests_to("GET", "/api/v1/statusTask/sora-2-pro")) == 0
    finally:
        poll.cancel()
        await asyncio.gather(poll, return_exceptions=True)


async def test_polls_are_spaced_at_the_documented_rate(fake: FakeApixo,
                                                       provider: ApixoProvider) -> None:
    """240 a minute is one every 0.25 s: six polls fired at once reach the emulator spread
    out, never more than three in any half second (twice the rate, for scheduling slack);
    without the limiter all six arrive within milliseconds."""
    quick = PRO.model_copy(update={"requests_per_minute": 240})
    task_id = await provider.submit(quick, TEXT)
    await asyncio.wait_for(
        asyncio.gather(*(provider.status(quick, task_id) for _ in range(6))), timeout=20)
    arrivals = sorted(r.at for r in fake.requests)
    assert len(arrivals) == 7  # the create and six polls, none retried
    for i, start in enumerate(arrivals):
        in_window = [t for t in arrivals[i:] if t - start < 0.5]
        assert len(in_window) <= 3, [round(t - arrivals[0], 3) for t in arrivals]
