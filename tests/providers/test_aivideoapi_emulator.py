"""AivideoapiProvider against the aivideoapi.ai emulator (tests/fakes/aivideoapi.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bot.catalog import Orientation, get_model
from bot.providers.aivideoapi import AivideoapiProvider
from bot.providers.base import GenerationRequest, SourceImage, TaskState
from bot.providers.errors import (
    AuthenticationFailed,
    Forbidden,
    ImageRejected,
    InsufficientBalance,
    ModelUnavailable,
    ProviderDown,
    RateLimited,
    SubmitUncertain,
    TaskNotFound,
    UpstreamRefused,
    fail_message,
)
from bot.providers.http import RetryPolicy
from tests.fakes.aivideoapi import FakeAivideoapi
from tests.providers.emulator_support import FAST, callback_bodies, download_ok
from tests.providers.helpers import ScriptServer, image_bytes, wait_finished

SPEC = get_model("aivideoapi", "sora-2")
TEXT = GenerationRequest(prompt="a hot-air balloon over hills", duration=4)


class SpendLimitedFake(FakeAivideoapi):
    """The emulator has the spend_limit_exceeded error but no switch for it; add one."""

    spend_limited = False

    def _gate(self, request: web.Request, kind: str) -> web.Response | None:
        if self.spend_limited and kind == "submit" and self.check_auth(request):
            return self.error("spend_limit")
        return super()._gate(request, kind)


@pytest.fixture
async def fake() -> AsyncIterator[SpendLimitedFake]:
    async with SpendLimitedFake(queue_s=0.05, task_s=0.3) as emulator:
        yield emulator


@pytest.fixture
def provider(fake: FakeAivideoapi, session: aiohttp.ClientSession) -> AivideoapiProvider:
    return AivideoapiProvider(session, fake.base_url, fake.api_key, retry=FAST,
                              submit_retry=FAST)


def image_request(server: ScriptServer, width: int, height: int) -> GenerationRequest:
    server.images["src.png"] = image_bytes(width, height)
    image = SourceImage(data=server.images["src.png"], mime="image/png", width=width,
                        height=height, url=f"{server.url}/img/src.png")
    orientation = Orientation.LANDSCAPE if width >= height else Orientation.PORTRAIT
    return GenerationRequest(prompt="gentle wind", duration=8, orientation=orientation,
                             image=image)


@pytest.mark.parametrize("orientation", list(Orientation))
async def test_text_to_video(fake: FakeAivideoapi, provider: AivideoapiProvider,
                             orientation: Orientation, session: aiohttp.ClientSession,
                             tmp_path: Path) -> None:
    fake.report_progress = True
    request = GenerationRequest(prompt="a balloon", duration=8, orientation=orientation)
    task_id = await provider.submit(SPEC, request)
    assert fake.tasks[task_id].body["input"]["aspect_ratio"] == (
        "16:9" if orientation is Orientation.LANDSCAPE else "9:16")
    seen: list[float | None] = []
    while not (status := await provider.status(SPEC, task_id)).state.finished:
        seen.append(status.progress)
        await asyncio.sleep(0.03)
    assert status.state is TaskState.SUCCEEDED and status.progress == 1.0
    assert all(p is None or 0.0 <= p <= 1.0 for p in seen)
    assert any(p is not None and p > 0 for p in seen)
    await download_ok(provider, session, status.video_urls[0], tmp_path)
    assert fake.credits == 100_000 - 25 * 8


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (720, 1280)])
async def test_image_to_video(fake: FakeAivideoapi, provider: AivideoapiProvider,
                              server: ScriptServer, width: int, height: int) -> None:
    task_id = await provider.submit(SPEC, image_request(server, width, height))
    assert fake.tasks[task_id].body["input"]["image_urls"] == [f"{server.url}/img/src.png"]
    done = await wait_finished(provider, SPEC, task_id)
    assert done.state is TaskState.SUCCEEDED
    info = fake.tasks[task_id].image_info
    assert info is not None and (info.width, info.height) == (width, height)


async def test_unreachable_image(fake: FakeAivideoapi, provider: AivideoapiProvider,
                                 server: ScriptServer) -> None:
    request = image_request(server, 1280, 720)
    server.images.clear()
    with pytest.raises(ImageRejected):
        await provider.submit(SPEC, request)
    assert fake.submits_accepted == 0


@pytest.mark.parametrize("mode", ["normal", "duplicate", "early"])
async def test_callbacks(fake: FakeAivideoapi, provider: AivideoapiProvider,
                         server: ScriptServer, mode: str) -> None:
    fake.callback_mode = mode
    task_id = await provider.submit(SPEC, TEXT, f"{server.url}/callbacks/aivideoapi/tok")
    await fake.wait_until(lambda: fake.tasks[task_id].finished)
    await fake.wait_until(lambda: len(fake.callbacks_delivered) >= (3 if mode == "duplicate"
                                                                    else 1))
    bodies = callback_bodies(server)
    assert bodies and all(provider.parse_callback(b) == task_id for b in bodies)


@pytest.mark.parametrize("code", ["upstream_error", "content_policy_violation", "timeout"])
async def test_failed_task(fake: FakeAivideoapi, provider: AivideoapiProvider,
                           code: str) -> None:
    fake.outcome = code
    task_id = await provider.submit(SPEC, TEXT)
    done = await wait_finished(provider, SPEC, task_id)
    assert done.state is TaskState.FAILED and done.error_code == code
    assert done.error_message == fail_message(code, "Video generation failed")
    assert fake.credits == 100_000  # refunded, as the document says


async def test_keys(fake: FakeAivideoapi, provider: AivideoapiProvider,
                    session: aiohttp.ClientSession) -> None:
    await provider.check_key()
    for bad in ("sk-wrong", "no-prefix"):
        wrong = AivideoapiProvider(session, fake.base_url, bad, retry=FAST, submit_retry=FAST)
        with pytest.raises(AuthenticationFailed):
            await wrong.check_key()
        with pytest.raises(AuthenticationFailed):
            await wrong.submit(SPEC, TEXT)
    fake.forbidden = True
    with pytest.raises(Forbidden) as info:
        await provider.submit(SPEC, TEXT)
    assert "allowlist" in info.value.user_message


async def test_balance(fake: FakeAivideoapi, provider: AivideoapiProvider) -> None:
    fake.credits = 50  # a 4 s video costs 100 credits
    with pytest.raises(InsufficientBalance):
        await provider.submit(SPEC, TEXT)
    fake.credits, fake.balance_exhausted = 100_000, True
    with pytest.raises(InsufficientBalance):
        await provider.submit(SPEC, TEXT)
    assert fake.submits_accepted == 0


async def test_spend_limit_is_not_retried(fake: SpendLimitedFake,
                                          provider: AivideoapiProvider) -> None:
    fake.spend_limited = True
    with pytest.raises(InsufficientBalance) as info:
        await provider.submit(SPEC, TEXT)
    assert "spending limit" in info.value.user_message
    assert len(fake.requests_to("POST", "/v1/videos/generations")) == 1


async def test_retired_model(fake: FakeAivideoapi, provider: AivideoapiProvider) -> None:
    fake.retired_models.add("sora-2")
    with pytest.raises(ModelUnavailable) as info:
        await provider.submit(SPEC, TEXT)
    assert "no longer offered" in info.value.user_message


async def test_unknown_task(provider: AivideoapiProvider) -> None:
    with pytest.raises(TaskNotFound):
        await provider.status(SPEC, "00000000-0000-0000-0000-000000000000")


async def test_rate_limits(fake: FakeAivideoapi, provider: AivideoapiProvider) -> None:
    fake.fail_submits_with_429, fake.retry_after = 2, 0
    task_id = await provider.submit(SPEC, TEXT)
    assert len(fake.requests_to("POST", "/v1/videos/generations")) == 3
    assert list(fake.tasks) == [task_id]
    fake.fail_submits_with_429, fake.retry_after = 1, 1
    started = time.monotonic()
    await provider.submit(SPEC, TEXT)
    assert time.monotonic() - started >= 0.95
    fake.fail_submits_with_429, fake.retry_after = 100, 0
    with pytest.raises(RateLimited):
        await provider.submit(SPEC, TEXT)
    assert fake.submits_accepted == 2


async def test_create_uncertainty(fake: FakeAivideoapi, provider: AivideoapiProvider,
                                  session: aiohttp.ClientSession) -> None:
    fake.submit_5xx_after_create = True
    with pytest.raises(SubmitUncertain):
        await provider.submit(SPEC, TEXT)
    assert fake.submits_accepted == 1
    fake.submit_5xx_after_create, fake.submit_delay_s = False, 1.0
    slow = AivideoapiProvider(session, fake.base_url, fake.api_key,
                              submit_retry=RetryPolicy.fast(timeout=0.3))
    with pytest.raises(SubmitUncertain):
        await slow.submit(SPEC, TEXT)
    assert len(fake.requests_to("POST", "/v1/videos/generations")) == 2


async def test_upstream_error_on_create_is_a_definite_failure(
    fake: FakeAivideoapi, provider: AivideoapiProvider
) -> None:
    """Seed 002's 503 upstream_error refuses the request (and refunds it): the create fails
    at once, is not "uncertain", and is not re-sent."""
    fake.upstream_refusals = 1
    with pytest.raises(UpstreamRefused) as info:
        await provider.submit(SPEC, TEXT)
    assert not isinstance(info.value, SubmitUncertain)
    assert "upstream_error" in (info.value.detail or "")
    assert len(fake.requests_to("POST", "/v1/videos/generations")) == 1
    assert fake.submits_accepted == 0 and fake.credits == 100_000
    await provider.submit(SPEC, TEXT)  # the next request goes through


async def test_status_retries(fake: FakeAivideoapi, provider: AivideoapiProvider) -> None:
    task_id = await provider.submit(SPEC, TEXT)
    fake.status_429s, fake.retry_after, fake.status_5xx = 1, 0, 2  # 429, then 500, 503
    await provider.status(SPEC, task_id)
    assert len(fake.requests_to("GET", "/v1/tasks/")) == 4
    fake.status_5xx = 100
    with pytest.raises(ProviderDown):
        await provider.status(SPEC, task_id)
