"""Drive the provider emulators with plain aiohttp requests (loopback only)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import av
import pytest
from aiohttp import web
from PIL import Image

from .aivideoapi import FakeAivideoapi
from .apixo import FakeApixo
from .pixazo import FakePixazo

FAST = {"queue_s": 0.05, "task_s": 0.2}


def image_bytes(width: int, height: int, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 80, 40)).save(buf, fmt)
    return buf.getvalue()


class Receiver:
    """A tiny loopback server: records callbacks, can fail the first N, serves images."""

    def __init__(self) -> None:
        self.received: list[tuple[str, Any]] = []
        self.fail_first = 0
        self.images: dict[str, bytes] = {}
        self.url = ""

    async def _callback(self, request: web.Request) -> web.Response:
        self.received.append((request.match_info["name"], await request.json()))
        if self.fail_first > 0:
            self.fail_first -= 1
            return web.Response(status=500)
        return web.Response(text="ok")

    async def _image(self, request: web.Request) -> web.Response:
        data = self.images.get(request.match_info["name"])
        return web.Response(body=data) if data else web.Response(status=404)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rcv = Receiver()
    app = web.Application()
    app.router.add_post("/cb/{name}", rcv._callback)
    app.router.add_get("/img/{name}", rcv._image)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    rcv.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield rcv
    await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession, method: str, url: str, **kw: Any
) -> tuple[int, Any, aiohttp.typedefs.LooseHeaders]:
    async with http.request(method, url, **kw) as resp:
        return resp.status, await resp.json(content_type=None), resp.headers


async def poll(http: aiohttp.ClientSession, url: str, done: Any, **kw: Any) -> Any:
    for _ in range(100):
        status, body, _ = await call(http, "GET", url, **kw)
        assert status == 200, body
        if done(body):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError("task never finished")


async def assert_mp4(http: aiohttp.ClientSession, url: str, size: tuple[int, int]) -> None:
    async with http.get(url) as resp:
        assert resp.status == 200
        data = await resp.read()
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
    assert frames and (frames[0].width, frames[0].height) == size


def apixo_body(**inp: Any) -> dict[str, Any]:
    base = {
        "mode": "text-to-video",
        "prompt": "a calm lake",
        "duration": 4,
        "aspect_ratio": "landscape",
    }
    return {"request_type": "async", "input": {**base, **inp}}


APIXO_AUTH = {"Authorization": "Bearer test-key"}


async def ax_create(
    http: aiohttp.ClientSession, fake: FakeApixo, body: Any = None, model: str = "sora-2"
) -> tuple[int, Any, Any]:
    url = f"{fake.api_base}/generateTask/{model}"
    return await call(http, "POST", url, json=body or apixo_body(), headers=APIXO_AUTH)


async def test_auth_401_on_every_provider(http: aiohttp.ClientSession) -> None:
    async with FakeApixo() as ax, FakeAivideoapi(api_key="nosk-key") as av_, FakePixazo() as px:
        url = f"{ax.api_base}/generateTask/sora-2"
        status, body, _ = await call(http, "POST", url, json=apixo_body())
        assert (status, body) == (401, {"code": 401, "message": body["message"], "data": None})
        bad = {"Authorization": "Bearer wrong"}
        status, _, _ = await call(
            http, "GET", f"{ax.api_base}/statusTask/sora-2?taskId=x", headers=bad
        )
        assert status == 401
        # aivideoapi: a key must start with sk-, even if it is the configured one
        hdrs = {"Authorization": "Bearer nosk-key"}
        status, body, _ = await call(http, "GET", f"{av_.base_url}/v1/credits", headers=hdrs)
        assert status == 401 and body["error"]["code"] == "invalid_api_key"
        assert body["error"]["type"] == "authentication_error"
        status, body, _ = await call(
            http, "POST", f"{px.base_url}/sora-video/v1/video/generate", json={"prompt": "x"}
        )
        assert status == 401 and set(body) == {"error", "message"}
        assert ax.submits_accepted == av_.submits_accepted == px.submits_accepted == 0


async def test_apixo_text_task_success_and_mp4(http: aiohttp.ClientSession) -> None:
    async with FakeApixo(**FAST) as fake:
        body = apixo_body(aspect_ratio="portrait")
        status, reply, _ = await ax_create(http, fake, body)
        assert status == 200 and reply["code"] == 200 and reply["message"] == "success"
        task_id = reply["data"]["taskId"]
        assert task_id.startswith("task_")
        url = f"{fake.api_base}/statusTask/sora-2?taskId={task_id}"
        first = await poll(http, url, lambda b: True, headers=APIXO_AUTH)
        assert first["data"]["state"] in ("pending", "processing")
        assert set(first["data"]) == {"taskId", "state", "createTime"}
        done = await poll(http, url, lambda b: b["data"]["state"] == "success", headers=APIXO_AUTH)
        data = done["data"]
        assert data["costTime"] == data["completeTime"] - data["createTime"]
        assert "failCode" not in data
        urls = json.loads(data["resultJson"])["resultUrls"]
        await assert_mp4(http, urls[0], (180, 320))
        # another model's status path does not know this task
        other = f"{fake.api_base}/statusTask/sora-2-pro?taskId={task_id}"
        status, _, _ = await call(http, "GET", other, headers=APIXO_AUTH)
        assert status == 404


async def test_apixo_429_then_accept_creates_one_task(http: aiohttp.ClientSession) -> None:
    async with FakeApixo(**FAST) as fake:
        fake.fail_submits_with_429, fake.retry_after = 2, 0.5
        results = [await ax_create(http, fake) for _ in range(3)]
        assert [r[0] for r in results] == [429, 429, 200]
        assert results[0][1] == {"code": 429, "message": "Rate limit exceeded", "data": None}
        assert results[0][2]["Retry-After"] == "0.5"
        assert fake.submits_accepted == 1 and len(fake.tasks) == 1
        assert len(fake.requests_to("POST", "/api/v1/generateTask")) == 3


async def test_apixo_validation_and_quirks(http: aiohttp.ClientSession, receiver: Receiver) -> None:
    async with FakeApixo(**FAST) as fake:
        url = f"{fake.api_base}/generateTask/sora-2"
        pro = f"{fake.api_base}/generateTask/sora-2-pro"
        receiver.images["big.png"] = image_bytes(720, 1280)
        img = f"{receiver.url}/img/big.png"
        bad = [
            (url, apixo_body(duration="8")),
            (url, apixo_body(duration=10)),
            (url, apixo_body(aspect_ratio="16:9")),
            (url, apixo_body(prompt="")),
            (url, apixo_body(prompt="x" * 10001)),
            (url, apixo_body(mode="image-to-video", image_urls=[img, img])),
            (url, apixo_body(mode="image-to-video", image_urls=["https://example.com/a.jpg"])),
            (url, {**apixo_body(), "request_type": "callback"}),
            (url, {**apixo_body(), "provider": "cheap"}),
            (pro, apixo_body(size="1280*720", aspect_ratio=None)),  # provider missing
        ]
        for target, body in bad:
            body["input"] = {k: v for k, v in body["input"].items() if v is not None}
            status, reply, _ = await call(http, "POST", target, json=body, headers=APIXO_AUTH)
            assert status == 400 and reply["code"] == 400 and reply["data"] is None, body
        status, reply, _ = await ax_create(http, fake, model="sora-9")
        # no seed documents a 404 for a model: seed 000's 403 is the answer that fits
        assert (status, reply["message"]) == (403, "Key or route cannot access the model")
        # the documented HTTP 200 / code 400 replies
        body = apixo_body(prompt="tell me about the forbidden-topic")
        status, reply, _ = await ax_create(http, fake, body)
        assert status == 200 and reply["code"] == 400 and reply["data"] is None
        fake.balance_exhausted = True
        status, reply, _ = await ax_create(http, fake)
        assert (status, reply) == (
            200,
            {"code": 400, "message": "Insufficient credits", "data": None},
        )
        fake.balance_exhausted = False
        # sora-2-pro image-to-video with a real (loopback) image
        body = {
            "request_type": "async",
            "provider": "official",
            "input": {
                "mode": "image-to-video",
                "prompt": "wave",
                "duration": 8,
                "resolution": "720p",
                "image_urls": [img],
            },
        }
        status, reply, _ = await ax_create(http, fake, body, "sora-2-pro")
        assert status == 200, reply
        task = fake.tasks[reply["data"]["taskId"]]
        assert task.image_info == ("PNG", 720, 1280) and task.video_size == (180, 320)
        assert fake.submits_accepted == 1


async def test_apixo_callbacks_retry_duplicate_and_early(
    http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    async with FakeApixo(**FAST) as fake:
        fake.callback_retry_delay_s = 0.01
        receiver.fail_first = 1
        body = {**apixo_body(), "request_type": "callback", "callback_url": f"{receiver.url}/cb/a"}
        status, reply, _ = await ax_create(http, fake, body)
        assert status == 200
        await fake.wait_until(lambda: len(fake.callbacks_delivered) == 1)
        assert [c.status for c in fake.callbacks_sent] == [500, 200]
        _, payload = receiver.received[-1]
        assert payload["data"]["taskId"] == reply["data"]["taskId"]
        assert payload["data"]["state"] == "success" and payload["code"] == 200

        fake.callback_mode, fake.callback_duplicates = "duplicate", 3
        await ax_create(http, fake, body)
        await fake.wait_until(lambda: len(fake.callbacks_delivered) == 4)

        fake.callback_mode = "early"
        fake.task_s = 5.0
        status, reply, _ = await ax_create(http, fake, body)
        early = fake.callbacks_delivered[-1]
        assert early.kind == "early" and early.task_id == reply["data"]["taskId"]
        assert fake.tasks[early.task_id].phase() != "done"  # the callback lied
        fake.finish_now(early.task_id)
        await fake.wait_until(lambda: fake.callbacks_delivered[-1].kind == "final")


async def test_apixo_status_errors_and_failure(http: aiohttp.ClientSession) -> None:
    async with FakeApixo(**FAST) as fake:
        fake.outcome = "SensitiveContentDetected"
        _, reply, _ = await ax_create(http, fake)
        url = f"{fake.api_base}/statusTask/sora-2?taskId={reply['data']['taskId']}"
        fake.status_429s, fake.status_5xx = 1, 3
        codes = [(await call(http, "GET", url, headers=APIXO_AUTH))[0] for _ in range(4)]
        assert codes == [429, 500, 502, 504]
        done = await poll(http, url, lambda b: b["data"]["state"] == "failed", headers=APIXO_AUTH)
        assert done["data"]["failCode"] == "SensitiveContentDetected"
        assert "resultJson" not in done["data"] and "costTime" not in done["data"]
        fake.submit_5xx_after_create = True
        url = f"{fake.api_base}/generateTask/sora-2"
        async with http.post(url, json=apixo_body(), headers=APIXO_AUTH) as resp:
            page = await resp.text()
        # the task was made, but a gateway's bare page answered, not APIXO's error body
        assert resp.status == 502 and "Bad Gateway" in page and fake.submits_accepted == 2


async def test_aivideoapi_success_callback_and_credits(
    http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    async with FakeAivideoapi(**FAST) as fake:
        auth = {"Authorization": "Bearer sk-test"}
        body = {
            "model": "sora-2",
            "callback_url": f"{receiver.url}/cb/v",
            "input": {"prompt": "mountains", "duration": 8, "aspect_ratio": "16:9"},
        }
        status, reply, _ = await call(
            http, "POST", f"{fake.base_url}/v1/videos/generations", json=body, headers=auth
        )
        assert status == 200 and reply["msg"] == "success"
        task_id = reply["data"]["taskId"]
        url = f"{fake.base_url}/v1/tasks/{task_id}"
        done = await poll(http, url, lambda b: b["status"] == "completed", headers=auth)
        assert done["output"]["metadata"] == {"duration": 8, "prompt": "mountains"}
        await assert_mp4(http, done["output"]["urls"][0], (320, 180))
        await fake.wait_until(lambda: len(receiver.received) == 1)
        assert receiver.received[0][1]["id"] == task_id
        _, credits, _ = await call(http, "GET", f"{fake.base_url}/v1/credits", headers=auth)
        assert credits == {"code": 200, "data": {"credits": 100_000 - 200}}
        # failure is refunded
        fake.outcome = "upstream_error"
        _, reply, _ = await call(
            http, "POST", f"{fake.base_url}/v1/videos/generations", json=body, headers=auth
        )
        url = f"{fake.base_url}/v1/tasks/{reply['data']['taskId']}"
        done = await poll(http, url, lambda b: b["status"] == "failed", headers=auth)
        assert done["error"] == {"code": "upstream_error", "message": "Video generation failed"}
        await fake.wait_until(lambda: fake.credits == 100_000 - 200)


async def test_aivideoapi_validation(http: aiohttp.ClientSession, receiver: Receiver) -> None:
    async with FakeAivideoapi(**FAST) as fake:
        auth = {"Authorization": "Bearer sk-test"}
        url = f"{fake.base_url}/v1/videos/generations"
        receiver.images["thin.png"] = image_bytes(1000, 200)
        receiver.images["small.jpg"] = image_bytes(280, 400, "JPEG")
        receiver.images["ok.webp"] = image_bytes(400, 600, "WEBP")
        good = {"prompt": "p", "duration": 4, "aspect_ratio": "9:16"}
        bad_inputs = [
            {**good, "duration": "4"},
            {**good, "aspect_ratio": "portrait"},
            {**good, "prompt": "x" * 5001},
            {**good, "image_urls": [f"{receiver.url}/img/thin.png"]},
            {**good, "image_urls": [f"{receiver.url}/img/small.jpg"]},
            {**good, "image_urls": [f"{receiver.url}/img/missing.png"]},
        ]
        for inp in bad_inputs:
            status, reply, _ = await call(
                http, "POST", url, json={"model": "sora-2", "input": inp}, headers=auth
            )
            assert status == 400 and reply["error"]["code"] == "invalid_request", inp
        status, reply, _ = await call(http, "POST", url, json={"input": good}, headers=auth)
        assert (status, reply["error"]["message"]) == (400, "'model' is required.")
        fake.retired_models.add("sora-2")
        status, reply, _ = await call(
            http, "POST", url, json={"model": "sora-2", "input": good}, headers=auth
        )
        assert status == 404 and reply["error"]["code"] == "model_not_found"
        fake.retired_models.clear()
        inp = {**good, "image_urls": [f"{receiver.url}/img/ok.webp"]}
        status, reply, _ = await call(
            http, "POST", url, json={"model": "sora-2", "input": inp}, headers=auth
        )
        assert status == 200 and fake.tasks[reply["data"]["taskId"]].image_info == (
            "WEBP",
            400,
            600,
        )
        status, reply, _ = await call(http, "GET", f"{fake.base_url}/v1/tasks/nope", headers=auth)
        assert status == 404 and reply["error"]["code"] == "task_not_found"


async def test_pixazo_text_task_and_webhooks(
    http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    async with FakePixazo(**FAST) as fake:
        auth = {"Ocp-Apim-Subscription-Key": "test-key", "X-Webhook-URL": f"{receiver.url}/cb/hdr"}
        body = {
            "prompt": "beach",
            "size": "1792x1024",
            "seconds": 8,
            "callback_url": f"{receiver.url}/cb/body",
        }
        status, reply, _ = await call(
            http, "POST", f"{fake.base_url}/sora-video/v1/video/generate", json=body, headers=auth
        )
        assert status == 202 and reply["status"] == "QUEUED"
        assert reply["request_id"].startswith("sora-video_")
        done = await poll(
            http, reply["polling_url"], lambda b: b["status"] == "COMPLETED", headers=auth
        )
        assert done["error"] is None and done["completed_at"].endswith("Z")
        await assert_mp4(http, done["output"]["media_url"][0], (320, 182))
        await fake.wait_until(lambda: len(receiver.received) == 2)
        assert sorted(name for name, _ in receiver.received) == ["body", "hdr"]
        status, old, _ = await call(
            http,
            "POST",
            f"{fake.base_url}/sora-video/v1/video/result",
            json={"video_id": reply["request_id"]},
            headers=auth,
        )
        assert status == 200 and old["status"] == "completed" and old["video_url"]
        fake.outcome = "ERROR"
        _, reply, _ = await call(
            http,
            "POST",
            f"{fake.base_url}/sora-video/v1/video/generate",
            json={"prompt": "x"},
            headers=auth,
        )
        done = await poll(
            http, reply["polling_url"], lambda b: b["status"] == "ERROR", headers=auth
        )
        assert done["output"] is None and done["error"]


async def test_pixazo_i2v_validation(http: aiohttp.ClientSession, receiver: Receiver) -> None:
    async with FakePixazo(**FAST) as fake:
        auth = {"Ocp-Apim-Subscription-Key": "test-key"}
        url = f"{fake.base_url}/sora-video/v1/video/i2v/generate"
        good_uri = "data:image/png;base64," + base64.b64encode(image_bytes(720, 1280)).decode()
        bad_uri = "data:image/png;base64," + base64.b64encode(image_bytes(700, 1280)).decode()
        receiver.images["land.jpg"] = image_bytes(1280, 720, "JPEG")
        bad = [
            {"prompt": "smile"},
            {"prompt": "", "image": good_uri},
            {"prompt": "smile", "image": bad_uri},
            {"prompt": "smile", "image": good_uri, "size": "1280x720"},
            {"prompt": "smile", "image": good_uri, "seconds": "4"},
            {"prompt": "smile", "image": "data:image/png;base64,!!!"},
        ]
        for body in bad:
            status, reply, _ = await call(http, "POST", url, json=body, headers=auth)
            assert status == 400 and set(reply) == {"error", "message"}, body
        status, reply, _ = await call(
            http,
            "POST",
            url,
            json={"prompt": "smile", "image": good_uri, "model": "sora-2"},
            headers=auth,
        )
        assert (status, reply["error"]) == (400, "Model not found")
        fake.balance_exhausted = True
        status, reply, _ = await call(
            http, "POST", url, json={"prompt": "s", "image": good_uri}, headers=auth
        )
        assert (status, reply["error"]) == (402, "Insufficient Balance")
        fake.balance_exhausted = False
        body = {"prompt": "smile", "image": f"{receiver.url}/img/land.jpg", "seconds": 4}
        status, reply, _ = await call(http, "POST", url, json=body, headers=auth)
        assert status == 202
        task = fake.tasks[reply["request_id"]]
        assert task.image_info == ("JPEG", 1280, 720) and task.extra["size"] == "1280x720"
        assert fake.submits_accepted == 1
