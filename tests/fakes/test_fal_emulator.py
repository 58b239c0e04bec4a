"""The fal.ai queue emulator, driven with plain aiohttp on 127.0.0.1: the queue's states and
URLs, its error bodies, every endpoint's input rules as RESELLERS_BEYOND_APIXO.md states
them, and webhooks signed with ED25519 that verify against the served JWKS."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .fal import FakeFal
from .fal_cases import BAD, GOOD, HAILUO, VEO_FAST
from .loopback import Hook, Loopback, call, image_bytes, mp4_facts, until, with_images
from .media import small_dims

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def rx() -> AsyncIterator[Loopback]:
    async with Loopback() as receiver:
        yield receiver


def auth(fake: FakeFal) -> dict[str, str]:
    return {"Authorization": f"Key {fake.api_key}"}


async def submit(http: aiohttp.ClientSession, fake: FakeFal, endpoint: str, body: Any,
                 webhook: str | None = None) -> tuple[int, Any, Any]:
    params = {"fal_webhook": webhook} if webhook else None
    return await call(http, "POST", f"{fake.base_url}/{endpoint}", json=body,
                      headers=auth(fake), params=params)


def signed_message(headers: dict[str, str], raw: bytes) -> bytes:
    return "\n".join((headers["X-Fal-Webhook-Request-Id"], headers["X-Fal-Webhook-User-Id"],
                      headers["X-Fal-Webhook-Timestamp"],
                      hashlib.sha256(raw).hexdigest())).encode()


def verifies(jwks: dict[str, Any], hook: Hook, raw: bytes | None = None) -> bool:
    """The documented check: ED25519 over request id, user id, timestamp and the body's
    SHA-256, with any key of the JWKS."""
    signature = bytes.fromhex(hook.headers["X-Fal-Webhook-Signature"])
    message = signed_message(hook.headers, hook.raw if raw is None else raw)
    for jwk in jwks["keys"]:
        assert (jwk["kty"], jwk["crv"]) == ("OKP", "Ed25519") and "=" not in jwk["x"]
        x = jwk["x"] + "=" * (-len(jwk["x"]) % 4)
        try:
            Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(x)).verify(
                signature, message)
            return True
        except InvalidSignature:
            continue
    return False


async def jwks(http: aiohttp.ClientSession, fake: FakeFal) -> dict[str, Any]:
    status, body, _ = await call(http, "GET", fake.jwks_url)  # no auth
    assert status == 200
    return body  # type: ignore[no-any-return]


async def test_a_request_from_submit_to_the_video_and_its_signed_webhook(
    http: aiohttp.ClientSession, rx: Loopback
) -> None:
    async with FakeFal(queue_s=0.15, task_s=0.4) as fake:
        body = {"prompt": "a fox", "duration": "6s", "generate_audio": False}
        status, made, _ = await submit(http, fake, "fal-ai/veo3.1/fast/image-to-video",
                                       {**body, "image_url": rx.image_url(
                                           "a", image_bytes(1280, 720))}, rx.hook_url())
        assert status == 200
        assert set(made) == {"request_id", "response_url", "status_url", "cancel_url",
                             "gateway_request_id"}
        where = f"{fake.base_url}/fal-ai/veo3.1/requests/{made['request_id']}"  # no sub-path
        assert (made["response_url"], made["status_url"], made["cancel_url"]) == (
            where, f"{where}/status", f"{where}/cancel")
        task = fake.tasks[made["request_id"]]
        assert task.model == "fal-ai/veo3.1/fast/image-to-video"
        assert task.body["generate_audio"] is False and task.body["duration"] == "6s"
        assert task.extra["webhook"] == rx.hook_url()

        _, queued, _ = await call(http, "GET", made["status_url"], headers=auth(fake))
        assert queued["status"] == "IN_QUEUE" and queued["queue_position"] == 0
        status, early, _ = await call(http, "GET", made["response_url"], headers=auth(fake))
        assert (status, early) == (400, {"detail": "Request is still in progress"})
        await until(lambda: task.phase() == "processing")
        _, running, _ = await call(http, "GET", made["status_url"] + "?logs=1",
                                   headers=auth(fake))
        assert running["status"] == "IN_PROGRESS" and running["logs"]
        await until(lambda: rx.hooks)
        _, done, _ = await call(http, "GET", made["status_url"], headers=auth(fake))
        assert done["status"] == "COMPLETED" and "inference_time" in done["metrics"]

        status, result, _ = await call(http, "GET", made["response_url"], headers=auth(fake))
        video = result["video"]
        assert status == 200 and video["url"] == f"{fake.base_url}/files/{task.id}.mp4"
        assert video["content_type"] == "video/mp4" and video["file_name"] == f"{task.id}.mp4"
        async with http.get(video["url"]) as resp:  # fal's CDN: no auth
            data = await resp.read()
        assert len(data) == video["file_size"]
        assert mp4_facts(data) == (6.0, *small_dims(1280, 720))

        hook = rx.hooks[0]
        keys = await jwks(http, fake)
        assert fake.jwks_fetches == 1 and verifies(keys, hook)
        assert abs(int(hook.headers["X-Fal-Webhook-Timestamp"]) - time.time()) < 10
        assert hook.headers["X-Fal-Webhook-Request-Id"] == task.id
        assert json.loads(hook.raw) == {"request_id": task.id, "gateway_request_id": task.id,
                                        "status": "OK", "payload": result}


async def test_queue_positions_count_the_requests_ahead(http: aiohttp.ClientSession) -> None:
    async with FakeFal(queue_s=2.0, task_s=3.0) as fake:
        ids = [(await submit(http, fake, HAILUO, {"prompt": f"p{i}"}))[1]["status_url"]
               for i in range(3)]
        positions = [(await call(http, "GET", url, headers=auth(fake)))[1]["queue_position"]
                     for url in ids]
        assert positions == [0, 1, 2]


@pytest.mark.parametrize("header", [None, "Key wrong", "Bearer test-key", "test-key"])
async def test_a_missing_wrong_or_malformed_key_is_a_401(
    http: aiohttp.ClientSession, header: str | None
) -> None:
    async with FakeFal() as fake:
        headers = {"Authorization": header} if header else {}
        status, body, _ = await call(http, "POST", f"{fake.base_url}/{VEO_FAST}",
                                     json={"prompt": "p"}, headers=headers)
        assert status == 401 and isinstance(body["detail"], str)
        assert (await call(http, "GET", fake.jwks_url))[0] == 200  # the keys need none
        assert fake.submits_accepted == 0


async def test_error_bodies(http: aiohttp.ClientSession) -> None:
    async with FakeFal(queue_s=0.0, task_s=0.05) as fake:
        fake.balance_exhausted = True
        status, body, _ = await submit(http, fake, VEO_FAST, {"prompt": "p"})
        assert (status, body) == (403, {"detail": "User is locked. Reason: Exhausted balance. "
                                                  "Top up your balance at "
                                                  "fal.ai/dashboard/billing."})
        fake.balance_exhausted, fake.forbidden = False, True
        status, body, _ = await submit(http, fake, VEO_FAST, {"prompt": "p"})
        assert status == 403 and "locked" not in body["detail"].lower()
        fake.forbidden = False
        for endpoint in ("fal-ai/veo4", "fal-ai/minimax/hailuo-2.3-fast/standard/text-to-video"):
            status, body, _ = await submit(http, fake, endpoint, {"prompt": "p"})
            assert status == 404 and isinstance(body["detail"], str)
        fake.retired_models.add(VEO_FAST)
        assert (await submit(http, fake, VEO_FAST, {"prompt": "p"}))[0] == 404
        fake.retired_models.clear()
        fake.fail_submits_with_429, fake.retry_after = 1, 3
        status, _, headers = await submit(http, fake, VEO_FAST, {"prompt": "p"})
        assert status == 429 and headers["Retry-After"] == "3"
        assert fake.submits_accepted == 0

        _, made, _ = await submit(http, fake, VEO_FAST, {"prompt": "p"})
        fake.status_5xx, fake.status_5xx_codes = 2, (500, 503)
        for code, kind in ((500, "internal_error"), (503, "runner_disconnected")):
            status, body, headers = await call(http, "GET", made["status_url"],
                                               headers=auth(fake))
            assert status == code and body["error_type"] == kind == headers["X-Fal-Error-Type"]
        other = made["status_url"].replace(made["request_id"], "0" * 8)
        assert (await call(http, "GET", other, headers=auth(fake)))[0] == 404
        wrong_app = made["status_url"].replace("/veo3.1/", "/kling-video/")
        assert (await call(http, "GET", wrong_app, headers=auth(fake)))[0] == 404
        assert (await call(http, "GET", made["response_url"] + "x", headers=auth(fake)))[0] \
            == 404


async def test_a_content_refusal_and_a_model_failure_end_completed(
    http: aiohttp.ClientSession, rx: Loopback
) -> None:
    async with FakeFal(queue_s=0.0, task_s=0.1) as fake:
        _, refused, _ = await submit(http, fake, HAILUO, {"prompt": "a forbidden-topic"},
                                     rx.hook_url("refused"))
        fake.outcome = "failed"
        _, failed, _ = await submit(http, fake, HAILUO, {"prompt": "p"}, rx.hook_url("failed"))
        await until(lambda: len(rx.hooks) == 2)
        for made in (refused, failed):
            _, doc, _ = await call(http, "GET", made["status_url"], headers=auth(fake))
            assert doc["status"] == "COMPLETED"  # there is no FAILED state

        status, body, headers = await call(http, "GET", refused["response_url"],
                                           headers=auth(fake))
        assert status == 422 and headers["X-Fal-Retryable"] == "false"
        [item] = body["detail"]
        assert item["type"] == "content_policy_violation" and item["loc"] == ["body", "prompt"]
        assert item["msg"] and item["ctx"] == {"categories": ["violence"]}
        status, failure, headers = await call(http, "GET", failed["response_url"],
                                              headers=auth(fake))
        assert status == 500 and failure["error_type"] == "runner_server_error"
        assert headers["X-Fal-Error-Type"] == "runner_server_error"

        keys = await jwks(http, fake)
        got = {hook.name: hook for hook in rx.hooks}
        for name, code, payload in (("refused", 422, body), ("failed", 500, failure)):
            assert verifies(keys, got[name])
            doc = json.loads(got[name].raw)
            assert doc["status"] == "ERROR" and doc["payload"] == payload
            assert doc["error"] == f"Invalid status code: {code}"


async def test_cancel_drops_a_queued_request_and_only_signals_a_running_one(
    http: aiohttp.ClientSession
) -> None:
    async with FakeFal(queue_s=0.3, task_s=0.6) as fake:
        _, queued, _ = await submit(http, fake, HAILUO, {"prompt": "q"})
        status, body, _ = await call(http, "PUT", queued["cancel_url"], headers=auth(fake))
        assert (status, body) == (202, {"status": "CANCELLATION_REQUESTED"})
        _, doc, _ = await call(http, "GET", queued["status_url"], headers=auth(fake))
        assert doc["status"] == "COMPLETED"
        status, body, _ = await call(http, "GET", queued["response_url"], headers=auth(fake))
        assert (status, body) == (400, {"detail": "Request was cancelled"})
        status, body, _ = await call(http, "PUT", queued["cancel_url"], headers=auth(fake))
        assert (status, body) == (400, {"status": "ALREADY_COMPLETED"})
        unknown = queued["cancel_url"].replace(queued["request_id"], "nope")
        status, body, _ = await call(http, "PUT", unknown, headers=auth(fake))
        assert (status, body) == (404, {"status": "NOT_FOUND"})
        assert fake.cancels == [queued["request_id"]] * 2

        _, running, _ = await submit(http, fake, HAILUO, {"prompt": "r"})
        _, stopped, _ = await submit(http, fake, HAILUO, {"prompt": "s"})
        await until(lambda: fake.tasks[stopped["request_id"]].phase() == "processing")
        assert (await call(http, "PUT", running["cancel_url"], headers=auth(fake)))[0] == 202
        fake.honour_cancel_running = True
        assert (await call(http, "PUT", stopped["cancel_url"], headers=auth(fake)))[0] == 202
        status, _, _ = await call(http, "GET", stopped["response_url"], headers=auth(fake))
        assert status == 400  # stopped as cancelled at once
        await until(lambda: fake.tasks[running["request_id"]].phase() == "done")
        status, result, _ = await call(http, "GET", running["response_url"], headers=auth(fake))
        assert status == 200 and "video" in result  # the signal was ignored


# ----- input rules, endpoint by endpoint (from the digest's fal table) ------------------------
@pytest.mark.parametrize("case", sorted(GOOD))
async def test_every_endpoint_takes_a_good_body(
    http: aiohttp.ClientSession, rx: Loopback, case: str
) -> None:
    body, (seconds, frame) = GOOD[case]
    async with FakeFal() as fake:
        sent = with_images(rx, body)
        status, made, _ = await submit(http, fake, case.split("#")[0], sent)
        assert status == 200, made
        task = fake.tasks[made["request_id"]]
        assert task.body == sent and task.extra["webhook"] is None
        assert (task.duration, task.extra["frame"]) == (seconds, frame)
        assert task.video_size == small_dims(*frame)


@pytest.mark.parametrize(("endpoint", "body", "field", "kind"), BAD)
async def test_a_body_against_the_endpoint_rules_is_a_422(
    http: aiohttp.ClientSession, rx: Loopback, endpoint: str, body: dict[str, Any],
    field: str, kind: str
) -> None:
    async with FakeFal() as fake:
        status, answer, _ = await submit(http, fake, endpoint, with_images(rx, body))
        assert status == 422
        assert {"loc": ["body", field], "type": kind} in [
            {"loc": d["loc"], "type": d["type"]} for d in answer["detail"]]
        assert all(isinstance(d["msg"], str) and d["msg"] for d in answer["detail"])
        assert fake.submits_accepted == 0 and not fake.tasks


async def test_images_that_do_not_load_are_a_422(
    http: aiohttp.ClientSession, rx: Loopback
) -> None:
    veo_i2v = "fal-ai/veo3.1/image-to-video"
    big = image_bytes(1800, 1600, compress_level=0)  # a real PNG over Veo's 8 MB
    assert len(big) > 8 * 1024 * 1024
    async with FakeFal() as fake:
        for endpoint, url in (
            (veo_i2v, rx.image_url("junk", b"not an image at all")),
            (veo_i2v, rx.image_url("missing")),
            (veo_i2v, "http://images.example.com/a.png"),
            (veo_i2v, rx.image_url("big", big)),
            (veo_i2v, "data:image/png;base64," + base64.b64encode(image_bytes(64, 64)).decode()),
            ("fal-ai/wan-25-preview/image-to-video", "data:image/png;base64,bm90IGFuIGltYWdl"),
        ):
            status, answer, _ = await submit(http, fake, endpoint,
                                             {"prompt": "p", "image_url": url})
            assert status == 422, url
            assert answer["detail"][0]["loc"] == ["body", "image_url"]
        status, _, _ = await submit(http, fake, "fal-ai/kling-video/v2.1/standard/image-to-video",
                                    {"prompt": "p", "image_url": rx.image_url("big")})
        assert status == 200  # the 8 MB cap is Veo's
        assert fake.submits_accepted == 1


async def test_a_body_that_is_not_an_object_or_a_bad_webhook_url_is_a_422(
    http: aiohttp.ClientSession
) -> None:
    async with FakeFal() as fake:
        assert (await submit(http, fake, VEO_FAST, ["prompt"]))[0] == 422
        status, body, _ = await submit(http, fake, VEO_FAST, {"prompt": "p"}, "not a url")
        assert status == 422 and body["detail"][0]["loc"] == ["query", "fal_webhook"]
        assert fake.submits_accepted == 0


# ----- webhook signing -----------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["valid", "none", "wrong", "stale", "tampered"])
async def test_each_signing_switch_does_what_it_says(
    http: aiohttp.ClientSession, rx: Loopback, mode: str
) -> None:
    async with FakeFal(queue_s=0.0, task_s=0.05) as fake:
        fake.webhook_signing = mode
        await submit(http, fake, VEO_FAST, {"prompt": "p"}, rx.hook_url())
        await until(lambda: rx.hooks)
        hook, keys = rx.hooks[0], await jwks(http, fake)
        sent = json.dumps(fake.callbacks_sent[0].payload).encode()  # the body as made
        json.loads(hook.raw)  # always well-formed JSON
        if mode == "none":
            assert not [h for h in hook.headers if h.lower().startswith("x-fal-webhook")]
            assert hook.raw == sent
            return
        assert len(hook.headers["X-Fal-Webhook-Signature"]) == 128  # 64 bytes, hex
        stamp = int(hook.headers["X-Fal-Webhook-Timestamp"])
        age = time.time() - stamp
        if mode == "valid":
            assert verifies(keys, hook) and abs(age) < 10
        elif mode == "wrong":
            assert not verifies(keys, hook) and hook.raw == sent and abs(age) < 10
        elif mode == "stale":
            assert verifies(keys, hook) and 590 < age < 610
        else:
            assert not verifies(keys, hook) and verifies(keys, hook, raw=sent)
            assert len(hook.raw) == len(sent)
            assert sum(a != b for a, b in zip(hook.raw, sent, strict=True)) == 1


async def test_a_rotated_key_replaces_the_old_one_in_the_jwks(
    http: aiohttp.ClientSession, rx: Loopback
) -> None:
    async with FakeFal(queue_s=0.0, task_s=0.05) as fake:
        await submit(http, fake, VEO_FAST, {"prompt": "p"}, rx.hook_url("old"))
        await until(lambda: rx.hooks)
        old_keys = await jwks(http, fake)
        fake.rotate_key()
        new_keys = await jwks(http, fake)
        assert fake.jwks_fetches == 2 and len(new_keys["keys"]) == 1
        assert new_keys["keys"][0]["kid"] != old_keys["keys"][0]["kid"]
        assert new_keys["keys"][0]["x"] != old_keys["keys"][0]["x"]
        await submit(http, fake, VEO_FAST, {"prompt": "p"}, rx.hook_url("new"))
        await until(lambda: len(rx.hooks) == 2)
        old, new = rx.hooks
        assert verifies(old_keys, old) and not verifies(new_keys, old)
        assert verifies(new_keys, new) and not verifies(old_keys, new)


async def test_webhooks_are_retried_repeated_dropped_or_early_as_switched(
    http: aiohttp.ClientSession, rx: Loopback
) -> None:
    async with FakeFal(queue_s=0.0, task_s=0.05) as fake:
        fake.callback_retry_delay_s = 0.02
        keys = await jwks(http, fake)
        rx.fail_first = 2
        _, made, _ = await submit(http, fake, VEO_FAST, {"prompt": "p"}, rx.hook_url("retry"))
        await until(lambda: len(fake.callbacks_delivered) == 1)
        assert [c.attempt for c in fake.callbacks_sent] == [1, 2, 3]
        assert all(verifies(keys, h) for h in rx.hooks) and len(rx.hooks) == 3
        assert {json.loads(h.raw)["request_id"] for h in rx.hooks} == {made["request_id"]}

        fake.callback_mode = "duplicate"
        await submit(http, fake, VEO_FAST, {"prompt": "p"}, rx.hook_url("dup"))
        await until(lambda: len([h for h in rx.hooks if h.name == "dup"]) == 3)
        fake.callback_mode = "drop"
        _, dropped, _ = await submit(http, fake, VEO_FAST, {"prompt": "p"}, rx.hook_url("drop"))
        await until(lambda: fake.tasks[dropped["request_id"]].finished)
        fake.callback_mode, fake.task_s = "early", 1.0
        _, early, _ = await submit(http, fake, VEO_FAST, {"prompt": "p"}, rx.hook_url("early"))
        first = next(h for h in rx.hooks if h.name == "early")  # before the reply came back
        news = json.loads(first.raw)  # done at once, so what it says is true
        assert (news["request_id"], news["status"]) == (early["request_id"], "OK")
        async with http.get(news["payload"]["video"]["url"]) as resp:
            assert len(await resp.read()) == news["payload"]["video"]["file_size"]
        await until(lambda: [h.name for h in rx.hooks].count("early") == 2)  # and as usual
        assert "drop" not in [h.name for h in rx.hooks]
        assert all(verifies(keys, h) for h in rx.hooks)

        fake.callback_mode = "normal"
        _, far, _ = await submit(http, fake, VEO_FAST, {"prompt": "p"},
                                 "http://hooks.example.com/x")
        await until(lambda: any(c.task_id == far["request_id"] for c in fake.callbacks_sent))
        [attempt] = [c for c in fake.callbacks_sent if c.task_id == far["request_id"]]
        assert attempt.status is None and "loopback" in (attempt.error or "")
