"""PixazoProvider against the Pixazo gateway emulator (tests/fakes/pixazo.py)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.catalog import Orientation, get_model
from bot.providers.base import GenerationRequest, SourceImage, TaskState
from bot.providers.errors import (
    AuthenticationFailed,
    Forbidden,
    ImageRejected,
    InsufficientBalance,
    InvalidRequest,
    ModelUnavailable,
    ProviderDown,
    RateLimited,
    SubmitUncertain,
    TaskNotFound,
)
from bot.providers.http import RetryPolicy
from bot.providers.pixazo import PixazoProvider
from tests.fakes.pixazo import FakePixazo
from tests.providers.emulator_support import FAST, callback_bodies, download_ok
from tests.providers.helpers import ScriptServer, image_bytes, wait_finished

SPEC = get_model("pixazo", "sora-2-pro")
TEXT = GenerationRequest(prompt="neon rain on a city street", duration=4)
SIZES = [(1280, 720), (720, 1280), (1792, 1024), (1024, 1792)]


@pytest.fixture
async def fake() -> AsyncIterator[FakePixazo]:
    async with FakePixazo(queue_s=0.05, task_s=0.25) as emulator:
        yield emulator


@pytest.fixture
def provider(fake: FakePixazo, session: aiohttp.ClientSession) -> PixazoProvider:
    return PixazoProvider(session, fake.base_url, fake.api_key, retry=FAST, submit_retry=FAST)


def image_request(width: int, height: int, fmt: str = "PNG") -> GenerationRequest:
    mime = "image/png" if fmt == "PNG" else "image/jpeg"
    image = SourceImage(data=image_bytes(width, height, fmt), mime=mime, width=width,
                        height=height)
    orientation = Orientation.LANDSCAPE if width >= height else Orientation.PORTRAIT
    return GenerationRequest(prompt="the lights flicker on", duration=8,
                             orientation=orientation, image=image)


@pytest.mark.parametrize("orientation", list(Orientation))
async def test_text_to_video(fake: FakePixazo, provider: PixazoProvider,
                             orientation: Orientation, session: aiohttp.ClientSession,
                             tmp_path: Path) -> None:
    request = GenerationRequest(prompt="rain", duration=12, orientation=orientation)
    task_id = await provider.submit(SPEC, request)
    assert fake.tasks[task_id].extra["size"] == (
        "1280x720" if orientation is Orientation.LANDSCAPE else "720x1280")
    assert fake.tasks[task_id].duration == 12
    done = await wait_finished(provider, SPEC, task_id)
    assert done.state is TaskState.SUCCEEDED
    await download_ok(provider, session, done.video_urls[0], tmp_path)
    # Status always goes to the configured base, never to the reply's polling_url.
    assert all(r.path.startswith(("/sora-video/", "/v2/requests/status/", "/files/"))
               for r in fake.requests)


@pytest.mark.parametrize(("width", "height"), SIZES)
async def test_image_to_video_with_a_data_uri(fake: FakePixazo, provider: PixazoProvider,
                                              width: int, height: int) -> None:
    task_id = await provider.submit(SPEC, image_request(width, height, "JPEG"))
    body = fake.tasks[task_id].body
    assert body["image"].startswith("data:image/jpeg;base64,")
    assert body["size"] == f"{width}x{height}" and fake.tasks[task_id].extra["size"] == (
        f"{width}x{height}")
    done = await wait_finished(provider, SPEC, task_id)
    assert done.state is TaskState.SUCCEEDED


async def test_wrong_image_size_never_reaches_pixazo(fake: FakePixazo,
                                                     provider: PixazoProvider) -> None:
    with pytest.raises(InvalidRequest, match="exactly"):
        await provider.submit(SPEC, image_request(1000, 700))
    assert fake.requests == []


async def test_image_pixazo_refuses(fake: FakePixazo, provider: PixazoProvider) -> None:
    broken = SourceImage(data=b"\x89PNG not really", mime="image/png", width=1280, height=720)
    request = GenerationRequest(prompt="x", duration=4, image=broken)
    with pytest.raises(ImageRejected):
        await provider.submit(SPEC, request)
    assert fake.submits_accepted == 0


@pytest.mark.parametrize("mode", ["normal", "duplicate", "early"])
async def test_callbacks(fake: FakePixazo, provider: PixazoProvider, server: ScriptServer,
                         mode: str) -> None:
    fake.callback_mode = mode
    url = f"{server.url}/callbacks/pixazo/tok"
    task_id = await provider.submit(SPEC, TEXT, url)
    sent = fake.requests_to("POST", "/sora-video/v1/video/generate")[0]
    # Only the documented webhook header; a body callback_url would add a second
    # callback in the undocumented "video details" shape.
    assert sent.json is not None and "callback_url" not in sent.json
    assert sent.headers["X-Webhook-URL"] == url
    assert fake.tasks[task_id].callback_urls == [url]  # one callback, not two
    await fake.wait_until(lambda: fake.tasks[task_id].finished)
    expected = {"normal": 1, "duplicate": 3, "early": 2}[mode]
    await fake.wait_until(lambda: len(fake.callbacks_delivered) >= expected)
    bodies = callback_bodies(server)
    assert bodies and all(provider.parse_callback(b) == task_id for b in bodies)
    assert len(bodies) == expected


async def test_completed_status_follows_the_seed(fake: FakePixazo,
                                                 provider: PixazoProvider) -> None:
    """Seed 003's completed document: media_type application/octet-stream."""
    task_id = await provider.submit(SPEC, TEXT)
    done = await wait_finished(provider, SPEC, task_id)
    assert done.state is TaskState.SUCCEEDED
    doc = fake.render(fake.tasks[task_id], "done", "success")
    assert doc["output"]["media_type"] == "application/octet-stream"
    assert done.video_urls == doc["output"]["media_url"]


@pytest.mark.parametrize(
    ("outcome", "code", "message"),
    [("FAILED", "FAILED", "Video generation failed"),
     ("ERROR", "ERROR", "Description of the error"),
     ("Moderation blocked this prompt", "FAILED", "Moderation blocked this prompt")],
)
async def test_failed_task(fake: FakePixazo, provider: PixazoProvider, outcome: str,
                           code: str, message: str) -> None:
    fake.outcome = outcome
    done = await wait_finished(provider, SPEC, await provider.submit(SPEC, TEXT))
    assert (done.state, done.error_code, done.error_message) == (TaskState.FAILED, code,
                                                                 message)


async def test_keys(fake: FakePixazo, provider: PixazoProvider,
                    session: aiohttp.ClientSession) -> None:
    await provider.check_key()
    wrong = PixazoProvider(session, fake.base_url, "wrong", retry=FAST, submit_retry=FAST)
    with pytest.raises(AuthenticationFailed):
        await wrong.check_key()
    with pytest.raises(AuthenticationFailed):
        await wrong.submit(SPEC, TEXT)
    fake.forbidden = True
    with pytest.raises(Forbidden):
        await provider.submit(SPEC, TEXT)


async def test_balance(fake: FakePixazo, provider: PixazoProvider) -> None:
    fake.balance_exhausted = True
    with pytest.raises(InsufficientBalance):
        await provider.submit(SPEC, TEXT)
    with pytest.raises(InsufficientBalance):
        await provider.submit(SPEC, image_request(1280, 720))
    assert fake.submits_accepted == 0


@pytest.mark.parametrize("retired", ["sora-2-pro", "sora-video"])
async def test_retired_model(fake: FakePixazo, provider: PixazoProvider, retired: str) -> None:
    fake.retired_models.add(retired)
    with pytest.raises(ModelUnavailable) as info:
        await provider.submit(SPEC, TEXT)
    assert "no longer offered" in info.value.user_message


async def test_unknown_request(provider: PixazoProvider) -> None:
    with pytest.raises(TaskNotFound):
        await provider.status(SPEC, "sora-video_missing")


async def test_rate_limits(fake: FakePixazo, provider: PixazoProvider) -> None:
    fake.fail_submits_with_429, fake.retry_after = 2, 0
    task_id = await provider.submit(SPEC, TEXT)
    assert len(fake.requests_to("POST", "/sora-video/")) == 3 and list(fake.tasks) == [task_id]
    fake.fail_submits_with_429, fake.retry_after = 1, 1
    started = time.monotonic()
    await provider.submit(SPEC, image_request(720, 1280))
    assert time.monotonic() - started >= 0.95
    fake.fail_submits_with_429, fake.retry_after = 100, 0
    with pytest.raises(RateLimited):
        await provider.submit(SPEC, TEXT)
    assert fake.submits_accepted == 2


async def test_create_uncertainty(fake: FakePixazo, provider: PixazoProvider,
                                  session: aiohttp.ClientSession) -> None:
    fake.submit_5xx_after_create = True
    with pytest.raises(SubmitUncertain):
        await provider.submit(SPEC, TEXT)
    assert fake.submits_accepted == 1
    fake.submit_5xx_after_create, fake.submit_delay_s = False, 1.0
    slow = PixazoProvider(session, fake.base_url, fake.api_key,
                          submit_retry=RetryPolicy.fast(timeout=0.3))
    with pytest.raises(SubmitUncertain):
        await slow.submit(SPEC, TEXT)
    assert len(fake.requests_to("POST", "/sora-video/")) == 2


async def test_status_retries(fake: FakePixazo, provider: PixazoProvider) -> None:
    task_id = await provider.submit(SPEC, TEXT)
    fake.status_429s, fake.retry_after, fake.status_5xx = 1, 0, 2
    await provider.status(SPEC, task_id)
    assert len(fake.requests_to("GET", "/v2/requests/status/")) == 4
    fake.status_5xx = 100
    with pytest.raises(ProviderDown):
        await provider.status(SPEC, task_id)
