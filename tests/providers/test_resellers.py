"""The fal.ai and Replicate adapters against their emulators: every catalog entry in every
request shape it offers passes the endpoint's input rules and makes its video; errors
map to the error family (no balance, invalid input, throttled, content refusal);
webhooks are verified before they are read; cancel asks the provider."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bot.catalog import Orientation, Shape, get_model, models_for
from bot.providers.base import CancelOutcome, GenerationRequest, SourceImage, TaskState
from bot.providers.errors import (
    AuthenticationFailed,
    ImageRejected,
    InsufficientBalance,
    InvalidRequest,
    RateLimited,
    WebhookRejected,
)
from bot.providers.fal import FalProvider
from bot.providers.replicate import ReplicateProvider
from tests.fakes.fal import FakeFal
from tests.fakes.replicate import FakeReplicate
from tests.providers.emulator_support import FAST
from tests.providers.helpers import ScriptServer, Step, image_bytes, wait_finished

pytestmark = pytest.mark.timeout(60)
FAL_IDS = [m.id for m in models_for("fal")]
REPLICATE_IDS = [m.id for m in models_for("replicate")]


@pytest.fixture
async def fal() -> AsyncIterator[FakeFal]:
    async with FakeFal(queue_s=0.05, task_s=0.2) as fake:
        yield fake


@pytest.fixture
async def rep() -> AsyncIterator[FakeReplicate]:
    async with FakeReplicate(queue_s=0.05, task_s=0.2) as fake:
        yield fake


def fal_adapter(fake: FakeFal, session: aiohttp.ClientSession, key: str | None = None
                ) -> FalProvider:
    return FalProvider(session, fake.base_url, key or fake.api_key, jwks_url=fake.jwks_url,
                       retry=FAST, submit_retry=FAST)


def rep_adapter(fake: FakeReplicate, session: aiohttp.ClientSession) -> ReplicateProvider:
    return ReplicateProvider(session, fake.base_url, fake.api_key, retry=FAST,
                             submit_retry=FAST)


def image(server: ScriptServer, name: str, width: int = 1280, height: int = 720) -> SourceImage:
    server.images[name] = image_bytes(width, height)
    return SourceImage(data=server.images[name], mime="image/png", width=width, height=height,
                       url=f"{server.url}/img/{name}")


def requests_for(spec: Any, server: ScriptServer) -> list[tuple[Shape, GenerationRequest]]:
    out = []
    for shape in spec.shapes:
        start = image(server, "a.png") if shape is not Shape.TEXT else None
        end = image(server, "b.png") if shape is Shape.FRAMES else None
        out.append((shape, GenerationRequest(
            prompt="a heron takes off", duration=spec.durations[-1], image=start, end_image=end,
            orientation=Orientation.PORTRAIT if Orientation.PORTRAIT in spec.orientations
            else Orientation.LANDSCAPE,
            audio=False if spec.takes_audio else None,
            seed=7 if spec.takes_seed else None,
            negative_prompt="blur" if spec.takes_negative_prompt else None)))
    return out


@pytest.mark.parametrize("model", FAL_IDS)
async def test_each_fal_entry_makes_its_video_in_each_shape(
    fal: FakeFal, session: aiohttp.ClientSession, server: ScriptServer, model: str
) -> None:
    spec = get_model("fal", model)
    adapter = fal_adapter(fal, session)
    for shape, request in requests_for(spec, server):
        task_id = await adapter.submit(spec, request)
        status = await wait_finished(adapter, spec, task_id)
        assert status.state is TaskState.SUCCEEDED, (shape, status)
        task = fal.tasks[adapter.task_key(task_id)]
        assert task.model == spec.endpoint_for(shape)
        assert task.duration == request.duration
        sent = task.body
        if spec.duration_field:
            assert sent["duration"] == spec.duration_value(request.duration)
            assert isinstance(sent["duration"], str)  # fal wants "8s" / "5"
        if spec.takes_audio:
            assert sent["generate_audio"] is False
        assert task_id.startswith(f"{'/'.join(task.model.split('/')[:2])}/requests/")


@pytest.mark.parametrize("model", REPLICATE_IDS)
async def test_each_replicate_entry_makes_its_video_in_each_shape(
    rep: FakeReplicate, session: aiohttp.ClientSession, server: ScriptServer, model: str
) -> None:
    spec = get_model("replicate", model)
    adapter = rep_adapter(rep, session)
    for shape, request in requests_for(spec, server):
        task_id = await adapter.submit(spec, request)
        status = await wait_finished(adapter, spec, task_id)
        assert status.state is TaskState.SUCCEEDED, (shape, status)
        task = rep.tasks[task_id]
        assert task.model == spec.endpoint_for(shape)
        inp = task.body["input"]
        assert inp["duration"] == request.duration and isinstance(inp["duration"], int)
        if shape is Shape.FRAMES:
            assert spec.end_image_field in inp


async def test_fal_errors(fal: FakeFal, session: aiohttp.ClientSession) -> None:
    spec = get_model("fal", "veo-3-1-fast")
    request = GenerationRequest(prompt="p", duration=8)
    with pytest.raises(AuthenticationFailed):
        await fal_adapter(fal, session, key="wrong").submit(spec, request)
    with pytest.raises(AuthenticationFailed):
        await fal_adapter(fal, session, key="wrong").check_key()
    await fal_adapter(fal, session).check_key()  # a made-up request: 404, the key works
    fal.balance_exhausted = True
    with pytest.raises(InsufficientBalance):  # 403 "User is locked": no balance, not a key
        await fal_adapter(fal, session).submit(spec, request)
    fal.balance_exhausted = False
    bad = spec.model_copy(update={"input_extra": {"resolution": "8k"}})
    with pytest.raises(InvalidRequest):
        await fal_adapter(fal, session).submit(bad, request)


@pytest.mark.parametrize("status_url", [
    "/fal-ai/veo3.1/requests/abc/status",  # no scheme or host
    "queue.fal.run/fal-ai/veo3.1/requests/abc/status",  # no scheme
    "http://[::1/broken",  # not a URL at all
])
async def test_fal_status_url_that_is_not_absolute_falls_back_to_the_documented_path(
    server: ScriptServer, session: aiohttp.ClientSession, status_url: str
) -> None:
    """fal took the request: an odd status URL never turns that into an error (the task
    would be lost while fal makes, and charges for, the video)."""
    server.then(Step(200, {"request_id": "abc", "status_url": status_url}))
    adapter = FalProvider(session, server.url, "k", jwks_url=f"{server.url}/jwks",
                          retry=FAST, submit_retry=FAST)
    spec = get_model("fal", "veo-3-1-fast")
    task = await adapter.submit(spec, GenerationRequest(prompt="p", duration=8))
    assert task == "fal-ai/veo3.1/requests/abc"
    assert server.count("POST") == 1


@pytest.mark.parametrize("field", ["image_url", "first_frame_url", "last_frame_url"])
async def test_fal_an_image_field_refused_is_an_image_problem(
    server: ScriptServer, session: aiohttp.ClientSession, field: str
) -> None:
    server.then(Step(422, {"detail": [{"loc": ["body", field], "msg": "could not read it",
                                       "type": "value_error"}]}))
    adapter = FalProvider(session, server.url, "k", jwks_url=f"{server.url}/jwks",
                          retry=FAST, submit_retry=FAST)
    with pytest.raises(ImageRejected):
        await adapter.submit(get_model("fal", "veo-3-1-fast"),
                             GenerationRequest(prompt="p", duration=8))


async def test_fal_content_refusal_and_failure_are_read_from_the_result(
    fal: FakeFal, session: aiohttp.ClientSession
) -> None:
    spec = get_model("fal", "kling-2-5-turbo-pro")
    adapter = fal_adapter(fal, session)
    refused = await adapter.submit(spec, GenerationRequest(prompt="a forbidden-topic",
                                                           duration=5))
    status = await wait_finished(adapter, spec, refused)
    assert status.state is TaskState.FAILED and status.error_code == "content_policy_violation"
    assert "safety" in (status.error_message or "")
    fal.outcome = "failed"
    failed = await adapter.submit(spec, GenerationRequest(prompt="p", duration=5))
    status = await wait_finished(adapter, spec, failed)
    assert status.state is TaskState.FAILED and status.error_code == "runner_server_error"


async def test_fal_cancel_is_confirmed_by_the_final_status(
    session: aiohttp.ClientSession
) -> None:
    async with FakeFal(queue_s=2.0, task_s=3.0) as fake:
        spec = get_model("fal", "hailuo-2-3")
        adapter = fal_adapter(fake, session)
        task_id = await adapter.submit(spec, GenerationRequest(prompt="p", duration=6))
        assert await adapter.cancel(spec, task_id) is CancelOutcome.REQUESTED
        status = await adapter.status(spec, task_id)
        assert status.state is TaskState.FAILED  # dropped from the queue: nothing made
        assert await adapter.cancel(spec, task_id) is CancelOutcome.FINISHED


async def test_replicate_errors_throttling_and_outputs(
    rep: FakeReplicate, session: aiohttp.ClientSession
) -> None:
    spec = get_model("replicate", "hailuo-2-3")
    adapter = rep_adapter(rep, session)
    rep.balance_exhausted = True
    with pytest.raises(InsufficientBalance):
        await adapter.submit(spec, GenerationRequest(prompt="p", duration=6))
    rep.balance_exhausted = False
    too_long = spec.model_copy(update={"durations": (6, 10, 12)})
    with pytest.raises(InvalidRequest):
        await adapter.submit(too_long, GenerationRequest(prompt="p", duration=12))
    rep.throttle_creates, rep.throttle_s = 1, 1
    task_id = await adapter.submit(spec, GenerationRequest(prompt="p", duration=6))
    assert rep.throttle_creates == 0 and rep.submits_accepted == 1  # waited, then created
    rep.output_as_list = True
    status = await wait_finished(adapter, spec, task_id)
    assert status.state is TaskState.SUCCEEDED and len(status.video_urls) == 1
    refused = await adapter.submit(spec, GenerationRequest(prompt="a forbidden-topic",
                                                           duration=6))
    status = await wait_finished(adapter, spec, refused)
    assert status.error_code == "E005" and "safety" in (status.error_message or "")
    rep.throttle_creates, rep.throttle_s = 10, 30
    with pytest.raises(RateLimited) as info:
        await adapter.submit(spec, GenerationRequest(prompt="p", duration=6))
    assert info.value.retry_after == 30


async def test_replicate_cancel_and_retention(session: aiohttp.ClientSession) -> None:
    async with FakeReplicate(queue_s=2.0, task_s=3.0) as fake:
        spec = get_model("replicate", "veo-3-1-fast")
        adapter = rep_adapter(fake, session)
        task_id = await adapter.submit(spec, GenerationRequest(prompt="p", duration=4))
        assert await adapter.cancel(spec, task_id) is CancelOutcome.CANCELLED
        status = await adapter.status(spec, task_id)
        assert status.state is TaskState.FAILED and status.error_code == "cancelled"
        fake.queue_s = fake.task_s = 0.05
        done = await adapter.submit(spec, GenerationRequest(prompt="p", duration=4))
        await wait_finished(adapter, spec, done)
        fake.retention_s = 0.0  # an hour passed: the output is gone
        status = await adapter.status(spec, done)
        assert status.state is TaskState.FAILED and status.error_code == "result_removed"


@pytest.mark.parametrize("mode", ["valid", "none", "wrong", "stale", "tampered"])
async def test_signed_webhooks_are_verified_before_they_are_read(
    session: aiohttp.ClientSession, mode: str
) -> None:
    receiver = await ScriptServer().start()
    try:
        async with FakeFal(queue_s=0.0, task_s=0.1) as fal_fake, \
                FakeReplicate(queue_s=0.0, task_s=0.1) as rep_fake:
            fal_fake.webhook_signing = rep_fake.webhook_signing = mode
            for fake, adapter, model in (
                (fal_fake, fal_adapter(fal_fake, session), "veo-3-1-fast"),
                (rep_fake, rep_adapter(rep_fake, session), "veo-3-1-fast"),
            ):
                spec = get_model(adapter.name, model)
                task_id = await adapter.submit(spec, GenerationRequest(prompt="p", duration=8),
                                               f"{receiver.url}/hook/{adapter.name}")
                await fake.wait_until(lambda f=fake: any(  # type: ignore[misc]
                    c.kind == "final" and (c.status or c.error) for c in f.callbacks_sent))
                hooks = [s for s in receiver.seen if s.path == f"/hook/{adapter.name}"]
                for hook in hooks:
                    if mode != "valid":
                        with pytest.raises(WebhookRejected):
                            await adapter.read_webhook(hook.headers, hook.raw)
                        continue
                    news = await adapter.read_webhook(hook.headers, hook.raw)
                    assert news.task_id == adapter.task_key(task_id)
                    if json.loads(hook.raw).get("status") in ("starting",):
                        assert news.status is None  # a start event, taken in stride
                    else:
                        assert news.status is not None
                        assert news.status.state is TaskState.SUCCEEDED
                assert hooks
    finally:
        await receiver.close()
