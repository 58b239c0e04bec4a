"""The fal.ai and Replicate emulators themselves, driven with plain HTTP on 127.0.0.1: they
follow the digest (paths, states, error bodies, per-endpoint input rules) and sign their
webhooks so that the documented checks verify them."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from standardwebhooks.webhooks import Webhook

from tests.fakes.fal import FakeFal
from tests.fakes.media import make_mp4
from tests.fakes.replicate import FakeReplicate

pytestmark = pytest.mark.timeout(60)


class Receiver:
    """A webhook receiver on loopback: keeps each raw body with its headers."""

    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append((dict(request.headers), await request.read()))
        return web.json_response({"ok": True})


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rx = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rx.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    rx.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    yield rx
    await runner.cleanup()


async def until(predicate: Any, within: float = 5.0) -> None:
    for _ in range(int(within / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("not in time")


def fal_verifies(fake: FakeFal, headers: dict[str, str], body: bytes) -> bool:
    message = "\n".join((headers["X-Fal-Webhook-Request-Id"], headers["X-Fal-Webhook-User-Id"],
                         headers["X-Fal-Webhook-Timestamp"],
                         hashlib.sha256(body).hexdigest())).encode()
    for jwk in fake.signer.jwks()["keys"]:  # type: ignore[union-attr]
        x = jwk["x"]
        key = Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(x + "=" * (-len(x) % 4)))
        try:
            key.verify(bytes.fromhex(headers["X-Fal-Webhook-Signature"]), message)
            return True
        except Exception:
            continue
    return False


async def test_fal_queue_from_submit_to_video_with_a_signed_webhook(receiver: Receiver) -> None:
    async with FakeFal(queue_s=0.1, task_s=0.3) as fake, aiohttp.ClientSession() as http:
        auth = {"Authorization": f"Key {fake.api_key}"}
        body = {"prompt": "a fox", "duration": "6s", "aspect_ratio": "9:16",
                "generate_audio": False, "resolution": "720p"}
        async with http.post(f"{fake.base_url}/fal-ai/veo3.1/fast", json=body, headers=auth,
                             params={"fal_webhook": receiver.url}) as resp:
            assert resp.status == 200
            made = await resp.json()
        assert made["status_url"] == (f"{fake.base_url}/fal-ai/veo3.1/requests/"
                                      f"{made['request_id']}/status")
        async with http.get(made["status_url"], headers=auth) as resp:
            assert (await resp.json())["status"] in ("IN_QUEUE", "IN_PROGRESS")
        async with http.get(made["response_url"], headers=auth) as resp:
            assert resp.status == 400  # still in progress
        await until(lambda: receiver.got)
        headers, raw = receiver.got[0]
        assert fal_verifies(fake, headers, raw)
        doc = json.loads(raw)
        assert doc["status"] == "OK" and doc["request_id"] == made["request_id"]
        async with http.get(made["status_url"], headers=auth) as resp:
            assert (await resp.json())["status"] == "COMPLETED"
        async with http.get(made["response_url"], headers=auth) as resp:
            video_url = (await resp.json())["video"]["url"]
        async with http.get(video_url) as resp:
            assert await resp.read() == make_mp4(6.0, *fake.tasks[made["request_id"]].video_size)


async def test_fal_errors_and_input_rules() -> None:
    async with FakeFal() as fake, aiohttp.ClientSession() as http:
        auth = {"Authorization": f"Key {fake.api_key}"}
        url = f"{fake.base_url}/fal-ai/kling-video/v2.5-turbo/pro/text-to-video"
        async with http.post(url, json={"prompt": "x"}) as resp:
            assert resp.status == 401
        for bad in ({"prompt": "x", "duration": 5}, {"prompt": "x", "seed": 3},
                    {"duration": "5"}):
            async with http.post(url, json=bad, headers=auth) as resp:
                assert resp.status == 422 and isinstance((await resp.json())["detail"], list)
        async with http.post(f"{fake.base_url}/fal-ai/nope", json={"prompt": "x"},
                             headers=auth) as resp:
            assert resp.status == 404
        fake.balance_exhausted = True
        async with http.post(url, json={"prompt": "x"}, headers=auth) as resp:
            assert resp.status == 403
            assert (await resp.json())["detail"].startswith("User is locked")


async def test_fal_content_refusal_and_cancel() -> None:
    async with FakeFal(queue_s=0.5, task_s=1.0) as fake, aiohttp.ClientSession() as http:
        auth = {"Authorization": f"Key {fake.api_key}"}
        url = f"{fake.base_url}/fal-ai/minimax/hailuo-2.3/standard/text-to-video"
        async with http.post(url, json={"prompt": "a forbidden-topic"}, headers=auth) as resp:
            refused = await resp.json()
        queued_url = url
        async with http.post(queued_url, json={"prompt": "ok", "duration": "10"},
                             headers=auth) as resp:
            queued = await resp.json()
        async with http.put(queued["cancel_url"], headers=auth) as resp:
            assert resp.status == 202
            assert (await resp.json())["status"] == "CANCELLATION_REQUESTED"
        async with http.get(queued["status_url"], headers=auth) as resp:
            assert (await resp.json())["status"] == "COMPLETED"
        async with http.get(queued["response_url"], headers=auth) as resp:
            assert resp.status == 400
        async with http.put(queued["cancel_url"], headers=auth) as resp:
            assert (await resp.json())["status"] == "ALREADY_COMPLETED"
        fake.finish_now(refused["request_id"])
        async with http.get(refused["response_url"], headers=auth) as resp:
            assert resp.status == 422
            assert (await resp.json())["detail"][0]["type"] == "content_policy_violation"


@pytest.mark.parametrize("mode", ["none", "wrong", "stale", "tampered"])
async def test_fal_signing_switches(receiver: Receiver, mode: str) -> None:
    async with FakeFal(queue_s=0.0, task_s=0.1) as fake, aiohttp.ClientSession() as http:
        fake.webhook_signing = mode
        async with http.post(f"{fake.base_url}/fal-ai/veo3.1", json={"prompt": "x"},
                             params={"fal_webhook": receiver.url},
                             headers={"Authorization": f"Key {fake.api_key}"}):
            pass
        await until(lambda: receiver.got)
        headers, raw = receiver.got[0]
        if mode == "none":
            assert "X-Fal-Webhook-Signature" not in headers
        elif mode == "stale":
            assert fal_verifies(fake, headers, raw)
            assert int(headers["X-Fal-Webhook-Timestamp"]) < datetime.now(UTC).timestamp() - 300
        else:
            assert not fal_verifies(fake, headers, raw)


async def test_replicate_prediction_with_signed_start_and_completed_events(
    receiver: Receiver
) -> None:
    async with FakeReplicate(queue_s=0.1, task_s=0.3) as fake, aiohttp.ClientSession() as http:
        auth = {"Authorization": f"Bearer {fake.api_key}"}
        body = {"input": {"prompt": "a fox", "duration": 4, "generate_audio": True},
                "webhook": receiver.url, "webhook_events_filter": ["completed"]}
        async with http.post(f"{fake.base_url}/models/google/veo-3.1/predictions", json=body,
                             headers=auth) as resp:
            assert resp.status == 201
            made = await resp.json()
        assert made["status"] == "starting" and made["urls"]["get"].endswith(made["id"])
        await until(lambda: len(receiver.got) == 2)
        async with http.get(f"{fake.base_url}/webhooks/default/secret", headers=auth) as resp:
            secret = (await resp.json())["key"]
        statuses = []
        for headers, raw in receiver.got:
            stamp = datetime.now(UTC).timestamp()
            assert abs(int(headers["webhook-timestamp"]) - stamp) < 60
            statuses.append(Webhook(secret).verify(raw, headers)["status"])
        assert statuses == ["starting", "succeeded"]
        async with http.get(made["urls"]["get"], headers=auth) as resp:
            done = await resp.json()
        assert isinstance(done["output"], str)
        async with http.get(done["output"]) as resp:
            assert resp.status == 200


async def test_replicate_errors_rules_retention_and_cancel() -> None:
    async with FakeReplicate(queue_s=0.5, task_s=1.0) as fake, aiohttp.ClientSession() as http:
        auth = {"Authorization": f"Bearer {fake.api_key}"}
        kling = f"{fake.base_url}/models/kwaivgi/kling-v2.1/predictions"
        for bad in ({"prompt": "x", "start_image": "http://127.0.0.1:1/a.png", "duration": "5"},
                    {"prompt": "x", "duration": 5}):
            async with http.post(kling, json={"input": bad}, headers=auth) as resp:
                assert resp.status == 422
                assert (await resp.json())["title"] == "Input validation failed"
        hailuo = f"{fake.base_url}/models/minimax/hailuo-2.3/predictions"
        async with http.post(hailuo, json={"input": {"prompt": "x", "resolution": "1080p",
                                                     "duration": 10}}, headers=auth) as resp:
            assert resp.status == 422
        fake.throttle_creates, fake.throttle_s = 1, 2
        async with http.post(hailuo, json={"input": {"prompt": "x"}}, headers=auth) as resp:
            assert resp.status == 429 and "resets in ~2s" in (await resp.json())["detail"]
        fake.balance_exhausted = True
        async with http.post(hailuo, json={"input": {"prompt": "x"}}, headers=auth) as resp:
            assert resp.status == 402
        fake.balance_exhausted = False
        async with http.post(hailuo, json={"input": {"prompt": "a forbidden-topic"}},
                             headers=auth) as resp:
            refused = await resp.json()
        async with http.post(hailuo, json={"input": {"prompt": "ok"}}, headers=auth) as resp:
            kept = await resp.json()
        async with http.post(kept["urls"]["cancel"], headers=auth) as resp:
            assert (await resp.json())["status"] == "canceled"
        fake.finish_now(refused["id"])
        async with http.get(refused["urls"]["get"], headers=auth) as resp:
            failed = await resp.json()
        assert failed["status"] == "failed" and "E005" in failed["error"]
        fake.retention_s = 0.0
        async with http.get(kept["urls"]["get"], headers=auth) as resp:
            assert (await resp.json())["data_removed"] is True
