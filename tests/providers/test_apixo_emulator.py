"""ApixoProvider against the APIXO emulator (tests/fakes/apixo.py), loopback only."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.catalog import Orientation, get_model
from bot.providers.apixo import ApixoProvider
from bot.providers.base import GenerationRequest, SourceImage, TaskState
from bot.providers.errors import (
    AuthenticationFailed,
    ContentRejected,
    Forbidden,
    ImageRejected,
    InsufficientBalance,
    ModelUnavailable,
    ProviderDown,
    RateLimited,
    SubmitUncertain,
    TaskNotFound,
    fail_message,
)
from bot.providers.http import RetryPolicy
from tests.fakes.apixo import FAIL_MESSAGES, FakeApixo
from tests.providers.emulator_support import FAST, callback_bodies, download_ok
from tests.providers.helpers import ScriptServer, image_bytes, wait_finished

SORA2 = get_model("apixo", "sora-2")
# sora-2-pro's documented 60 requests a minute would space these polls a second apart;
# the rate itself is tested in test_ratelimit.py, so the flow tests here run unthrottled.
PRO = get_model("apixo", "sora-2-pro").model_copy(update={"requests_per_minute": None})
TEXT = GenerationRequest(prompt="a paper boat on a river", duration=4)


@pytest.fixture
async def fake() -> AsyncIterator[FakeApixo]:
    async with FakeApixo(queue_s=0.05, task_s=0.25) as emulator:
        yield emulator


@pytest.fixture
def provider(fake: FakeApixo, session: aiohttp.ClientSession) -> ApixoProvider:
    return ApixoProvider(session, fake.api_base, fake.api_key, retry=FAST, submit_retry=FAST)


def image_request(server: ScriptServer, orientation: Orientation) -> GenerationRequest:
    w, h = (1280, 720) if orientation is Orientation.LANDSCAPE else (720, 1280)
    data = image_bytes(w, h, "JPEG")
    server.images[f"src-{w}.jpg"] = data
    image = SourceImage(data=data, mime="image/jpeg", width=w, height=h,
                        url=f"{server.url}/img/src-{w}.jpg")
    return GenerationRequest(prompt="the waves start to move", duration=8,
                             orientation=orientation, image=image)


@pytest.mark.parametrize("spec", [SORA2, PRO], ids=lambda s: s.id)
@pytest.mark.parametrize("orientation", list(Orientation))
async def test_text_to_video(fake: FakeApixo, provider: ApixoProvider, spec: object,
                             orientation: Orientation, session: aiohttp.ClientSession,
                             tmp_path: Path) -> None:
    request = GenerationRequest(prompt="a paper boat", duration=12, orientation=orientation)
    task_id = await provider.submit(spec, request)  # type: ignore[arg-type]
    first = await provider.status(spec, task_id)  # type: ignore[arg-type]
    assert first.state in (TaskState.QUEUED, TaskState.RUNNING)
    done = await wait_finished(provider, spec, task_id)  # type: ignore[arg-type]
    assert done.state is TaskState.SUCCEEDED and done.video_urls
    assert (await download_ok(provider, session, done.video_urls[0], tmp_path))[4:8] == b"ftyp"
    assert fake.submits_accepted == 1


@pytest.mark.parametrize("spec", [SORA2, PRO], ids=lambda s: s.id)
@pytest.mark.parametrize("orientation", list(Orientation))
async def test_image_to_video(fake: FakeApixo, provider: ApixoProvider, server: ScriptServer,
                              spec: object, orientation: Orientation) -> None:
    request = image_request(server, orientation)
    task_id = await provider.submit(spec, request)  # type: ignore[arg-type]
    done = await wait_finished(provider, spec, task_id)  # type: ignore[arg-type]
    assert done.state is TaskState.SUCCEEDED
    task = fake.tasks[task_id]
    assert task.image_info is not None and (task.image_info.width, task.image_info.height) == (
        request.image.width, request.image.height)  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", ["normal", "duplicate", "early"])
async def test_callbacks_name_the_task(fake: FakeApixo, provider: ApixoProvider,
                                       server: ScriptServer, mode: str) -> None:
    fake.callback_mode = mode
    task_id = await provider.submit(SORA2, TEXT, f"{server.url}/callbacks/apixo/tok")
    assert fake.tasks[task_id].body["request_type"] == "callback"
    await fake.wait_until(lambda: len(fake.callbacks_delivered) >= (3 if mode == "duplicate"
                                                                    else 1))
    await fake.wait_until(lambda: fake.tasks[task_id].finished)
    bodies = callback_bodies(server)
    assert bodies and all(provider.parse_callback(b) == task_id for b in bodies)


async def test_async_mode_sends_no_callback(fake: FakeApixo, provider: ApixoProvider) -> None:
    task_id = await provider.submit(SORA2, TEXT)
    assert fake.tasks[task_id].body["request_type"] == "async"
    assert "callback_url" not in fake.tasks[task_id].body


@pytest.mark.parametrize("code", sorted(FAIL_MESSAGES))
async def test_every_fail_code(fake: FakeApixo, provider: ApixoProvider, code: str) -> None:
    fake.outcome = code
    task_id = await provider.submit(PRO, TEXT)
    done = await wait_finished(provider, PRO, task_id)
    assert done.state is TaskState.FAILED and done.error_code == code
    assert done.error_message == fail_message(code, FAIL_MESSAGES[code])
    assert done.video_urls == []


async def test_image_failure_as_task_failure(fake: FakeApixo, provider: ApixoProvider,
                                             server: ScriptServer) -> None:
    fake.image_failures_as_task_fail = True
    request = image_request(server, Orientation.LANDSCAPE)
    server.images.clear()  # the URL now answers 404
    done = await wait_finished(provider, SORA2, await provider.submit(SORA2, request))
    assert done.error_code == "INVALID_IMAGE_URL"
    assert done.error_message == "The provider could not fetch the image."


async def test_unreachable_image_is_refused(fake: FakeApixo, provider: ApixoProvider,
                                            server: ScriptServer) -> None:
    request = image_request(server, Orientation.PORTRAIT)
    server.images.clear()
    with pytest.raises(ImageRejected):
        await provider.submit(SORA2, request)
    assert fake.submits_accepted == 0


async def test_keys(fake: FakeApixo, provider: ApixoProvider,
                    session: aiohttp.ClientSession) -> None:
    await provider.check_key()
    wrong = ApixoProvider(session, fake.api_base, "wrong-key", retry=FAST, submit_retry=FAST)
    with pytest.raises(AuthenticationFailed):
        await wrong.check_key()
    with pytest.raises(AuthenticationFailed):
        await wrong.submit(SORA2, TEXT)
    with pytest.raises(AuthenticationFailed):
        await wrong.status(SORA2, "task_x")
    fake.forbidden = True
    veo = get_model("apixo", "veo-3-1-fast")
    with pytest.raises(Forbidden):  # a live model: the key or route is refused
        await provider.submit(veo, GenerationRequest(prompt="a fox", duration=8))
    with pytest.raises(Forbidden):
        await provider.check_key()
    assert fake.submits_accepted == 0


@pytest.mark.parametrize("http_402", [False, True])
async def test_balance_exhausted(fake: FakeApixo, provider: ApixoProvider,
                                 http_402: bool) -> None:
    fake.balance_exhausted, fake.balance_http_402 = True, http_402
    with pytest.raises(InsufficientBalance):
        await provider.submit(SORA2, TEXT)
    assert len(fake.requests_to("POST", "/api/v1/generateTask")) == 1


async def test_content_policy_refusal(fake: FakeApixo, provider: ApixoProvider) -> None:
    request = GenerationRequest(prompt=f"a {fake.content_policy_word} scene", duration=4)
    with pytest.raises(ContentRejected):
        await provider.submit(SORA2, request)


@pytest.mark.parametrize("spec", [SORA2, PRO], ids=lambda s: s.id)
async def test_retired_model(fake: FakeApixo, provider: ApixoProvider, spec: object) -> None:
    """APIXO documents no model-not-found answer: the emulator answers the seed's 403
    ("Key or route cannot access the model"), never an undocumented 404. For a model the
    catalog marks retired that answer means the model is gone ("no longer offered"); for a
    live model it stays a refused key or route (``test_keys``)."""
    assert spec.retired  # type: ignore[attr-defined]
    fake.retired_models.add(spec.api_model)  # type: ignore[attr-defined]
    with pytest.raises(ModelUnavailable) as info:
        await provider.submit(spec, TEXT)  # type: ignore[arg-type]
    assert (info.value.detail or "").startswith("HTTP 403")
    assert fake.submits_accepted == 0


async def test_unknown_task(provider: ApixoProvider) -> None:
    with pytest.raises(TaskNotFound):
        await provider.status(SORA2, "task_does_not_exist")


async def test_429_twice_then_one_task(fake: FakeApixo, provider: ApixoProvider) -> None:
    fake.fail_submits_with_429, fake.retry_after = 2, 0
    task_id = await provider.submit(SORA2, TEXT)
    assert len(fake.requests_to("POST", "/api/v1/generateTask")) == 3
    assert fake.submits_accepted == 1 and list(fake.tasks) == [task_id]


async def test_retry_after_is_honoured(fake: FakeApixo, provider: ApixoProvider) -> None:
    fake.fail_submits_with_429, fake.retry_after = 1, 1
    started = time.monotonic()
    await provider.submit(SORA2, TEXT)
    assert time.monotonic() - started >= 0.95


async def test_429_exhausted(fake: FakeApixo, provider: ApixoProvider) -> None:
    fake.fail_submits_with_429, fake.retry_after = 100, 0
    with pytest.raises(RateLimited) as info:
        await provider.submit(SORA2, TEXT)
    assert info.value.retry_after == 0
    assert len(fake.requests_to("POST", "/api/v1/generateTask")) == FAST.attempts
    assert fake.submits_accepted == 0


async def test_5xx_after_create_is_uncertain(fake: FakeApixo, provider: ApixoProvider) -> None:
    fake.submit_5xx_after_create = True
    with pytest.raises(SubmitUncertain):
        await provider.submit(SORA2, TEXT)
    assert len(fake.requests_to("POST", "/api/v1/generateTask")) == 1
    assert fake.submits_accepted == 1  # it did exist: re-sending would have paid twice


async def test_slow_submit_is_uncertain(fake: FakeApixo, session: aiohttp.ClientSession) -> None:
    fake.submit_delay_s = 1.0
    provider = ApixoProvider(session, fake.api_base, fake.api_key,
                             submit_retry=RetryPolicy.fast(timeout=0.3))
    with pytest.raises(SubmitUncertain):
        await provider.submit(SORA2, TEXT)
    assert len(fake.requests_to("POST", "/api/v1/generateTask")) == 1


async def test_status_rides_out_429_and_5xx(fake: FakeApixo, provider: ApixoProvider) -> None:
    task_id = await provider.submit(SORA2, TEXT)
    fake.status_429s, fake.retry_after = 2, 0
    await provider.status(SORA2, task_id)
    fake.status_5xx = 3  # 500, 502, 504
    await provider.status(SORA2, task_id)
    assert len(fake.requests_to("GET", "/api/v1/statusTask")) == 7
    fake.status_5xx = 100
    with pytest.raises(ProviderDown):
        await provider.status(SORA2, task_id)
