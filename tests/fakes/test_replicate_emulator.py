"""The Replicate predictions emulator, driven with plain aiohttp on 127.0.0.1: a prediction's
life and object, its error bodies, every model's input rules as RESELLERS_BEYOND_APIXO.md
states them, retention, and Standard Webhooks that ``standardwebhooks`` verifies."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import aiohttp
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from .loopback import Hook, Loopback, call, mp4_facts, until, with_images
from .media import small_dims
from .replicate import FakeReplicate
from .replicate_cases import BAD, GOOD, HAILUO, KLING_21, VEO

pytestmark = pytest.mark.timeout(60)
E005 = ("The input or output was flagged as sensitive. Please try again with different "
        "inputs. (E005)")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def rx() -> AsyncIterator[Loopback]:
    async with Loopback() as receiver:
        yield receiver


def auth(fake: FakeReplicate) -> dict[str, str]:
    return {"Authorization": f"Bearer {fake.api_key}"}


async def create(http: aiohttp.ClientSession, fake: FakeReplicate, model: str,
                 inp: Any = None, **extra: Any) -> tuple[int, Any, Any]:
    body = {"input": {"prompt": "p"} if inp is None else inp, **extra}
    return await call(http, "POST", f"{fake.base_url}/models/{model}/predictions", json=body,
                      headers=auth(fake))


async def get(http: aiohttp.ClientSession, fake: FakeReplicate, url: str) -> Any:
    status, body, _ = await call(http, "GET", url, headers=auth(fake))
    assert status == 200, body
    return body


async def secret(http: aiohttp.ClientSession, fake: FakeReplicate) -> str:
    status, body, _ = await call(http, "GET", f"{fake.base_url}/webhooks/default/secret",
                                 headers=auth(fake))
    assert status == 200 and body["key"].startswith("whsec_")
    assert len(base64.b64decode(body["key"].removeprefix("whsec_"))) == 32
    return str(body["key"])


def read(key: str, hook: Hook) -> dict[str, Any]:
    """The webhook's prediction, once Standard Webhooks' check passes."""
    return Webhook(key).verify(hook.raw, hook.headers)  # type: ignore[no-any-return]


async def test_a_prediction_from_create_to_the_video_with_signed_events(
    http: aiohttp.ClientSession, rx: Loopback
) -> None:
    async with FakeReplicate(queue_s=0.15, task_s=0.4) as fake:
        inp = {"prompt": "a fox", "duration": 4, "generate_audio": False, "resolution": "720p"}
        status, made, _ = await create(http, fake, VEO, inp, webhook=rx.hook_url(),
                                       webhook_events_filter=["completed"])
        assert status == 201
        assert set(made) == {"id", "model", "version", "input", "output", "error", "logs",
                             "status", "created_at", "started_at", "completed_at",
                             "data_removed", "metrics", "urls"}
        assert (made["model"], made["input"], made["status"]) == (VEO, inp, "starting")
        assert made["output"] is made["error"] is made["started_at"] is None
        assert made["data_removed"] is False and made["logs"] == ""
        datetime.fromisoformat(made["created_at"])
        get_url = f"{fake.base_url}/predictions/{made['id']}"
        assert made["urls"]["get"] == get_url and made["urls"]["cancel"] == f"{get_url}/cancel"
        assert {"stream", "web"} <= set(made["urls"])
        task = fake.tasks[made["id"]]
        assert task.model == VEO and task.body["input"] == inp
        assert task.extra["webhook"] == rx.hook_url()

        assert (await get(http, fake, get_url))["status"] == "starting"
        await until(lambda: task.phase() == "processing")
        running = await get(http, fake, get_url)
        assert running["status"] == "processing" and running["started_at"]
        await until(lambda: len(rx.hooks) == 2)
        done = await get(http, fake, get_url)
        assert done["status"] == "succeeded" and done["error"] is None
        assert datetime.fromisoformat(done["completed_at"]) >= datetime.fromisoformat(
            done["started_at"])
        assert set(done["metrics"]) == {"predict_time", "total_time"}
        assert done["output"] == f"{fake.host}/files/{made['id']}.mp4"  # one URL string
        async with http.get(done["output"]) as resp:
            data = await resp.read()
        assert mp4_facts(data) == (4.0, *small_dims(1280, 720))

        key = await secret(http, fake)
        start, final = (read(key, hook) for hook in rx.hooks)
        assert (start["status"], start["id"]) == ("starting", made["id"])
        assert final == done  # the body is the prediction, as GET shows it
        ids = [hook.headers["webhook-id"] for hook in rx.hooks]
        assert ids[0] != ids[1] and fake.secret_fetches == 1
        for hook in rx.hooks:
            assert abs(int(hook.headers["webhook-timestamp"]) - time.time()) < 10


async def test_output_as_a_list_when_switched(http: aiohttp.ClientSession) -> None:
    async with FakeReplicate(queue_s=0.0, task_s=0.05) as fake:
        fake.output_as_list = True
        _, made, _ = await create(http, fake, HAILUO)
        await until(lambda: fake.tasks[made["id"]].phase() == "done")
        output = (await get(http, fake, made["urls"]["get"]))["output"]
        assert output == [fake.file_url(fake.tasks[made["id"]])]
        async with http.get(output[0]) as resp:
            assert mp4_facts(await resp.read())[0] == 6.0  # Hailuo's default length


async def test_error_bodies(http: aiohttp.ClientSession) -> None:
    async with FakeReplicate(queue_s=0.0, task_s=0.05) as fake:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Token x"}):
            status, body, _ = await call(http, "POST",
                                         f"{fake.base_url}/models/{VEO}/predictions",
                                         json={"input": {"prompt": "p"}}, headers=headers)
            assert (status, body) == (401, {"title": "Unauthenticated", "status": 401,
                                            "detail": "You did not pass a valid "
                                                      "authentication token"})
        status, body, _ = await create(http, fake, "google/veo-9")
        assert status == 404 and body["title"] == "Not found" and body["status"] == 404
        assert body["detail"]
        fake.forbidden = True
        status, body, _ = await create(http, fake, VEO)
        assert status == 403 and body["title"] == "Forbidden"
        fake.forbidden, fake.balance_exhausted = False, True
        status, body, _ = await create(http, fake, VEO)
        assert (status, body) == (402, {
            "title": "Insufficient credit", "status": 402,
            "detail": "You have insufficient credit to run this model. Go to "
                      "https://replicate.com/account/billing to purchase credit."})
        fake.balance_exhausted = False
        fake.throttle_creates, fake.throttle_s = 1, 7
        status, body, headers = await create(http, fake, VEO)
        assert (status, body) == (429, {"detail": "Request was throttled. Your rate limit "
                                                  "resets in ~7s."})
        assert "Retry-After" not in headers
        fake.throttle_creates, fake.throttle_retry_after = 1, True
        status, _, headers = await create(http, fake, VEO)
        assert status == 429 and headers["Retry-After"] == "7"
        fake.fail_submits_with_429 = 1
        assert (await create(http, fake, VEO))[0] == 429
        assert fake.submits_accepted == 0

        _, made, _ = await create(http, fake, VEO)
        fake.status_5xx = 1
        status, body, _ = await call(http, "GET", made["urls"]["get"], headers=auth(fake))
        assert status == 500 and body["status"] == 500
        missing = f"{fake.base_url}/predictions/nope"
        assert (await call(http, "GET", missing, headers=auth(fake)))[0] == 404
        assert (await call(http, "POST", f"{missing}/cancel", headers=auth(fake)))[0] == 404


async def test_refusals_and_failures_end_failed(http: aiohttp.ClientSession) -> None:
    async with FakeReplicate(queue_s=0.0, task_s=0.05) as fake:
        _, refused, _ = await create(http, fake, HAILUO, {"prompt": "a forbidden-topic"})
        fake.outcome = "failed"
        _, failed, _ = await create(http, fake, HAILUO)
        await until(lambda: all(t.phase() == "done" for t in fake.tasks.values()))
        refused = await get(http, fake, refused["urls"]["get"])
        failed = await get(http, fake, failed["urls"]["get"])
        assert (refused["status"], refused["error"], refused["output"]) == ("failed", E005, None)
        assert failed["status"] == "failed" and failed["error"] and "E005" not in failed["error"]


async def test_cancel(http: aiohttp.ClientSession, rx: Loopback) -> None:
    async with FakeReplicate(queue_s=0.2, task_s=0.5) as fake:
        fake.send_start_event = False
        _, made, _ = await create(http, fake, HAILUO, webhook=rx.hook_url())
        status, canceled, _ = await call(http, "POST", made["urls"]["cancel"],
                                         headers=auth(fake))
        assert status == 200 and canceled["status"] == "canceled"
        assert canceled["completed_at"] and canceled["output"] is None
        assert (await get(http, fake, made["urls"]["get"]))["status"] == "canceled"
        await until(lambda: rx.hooks)
        assert json.loads(rx.hooks[0].raw)["status"] == "canceled"

        fake.queue_s = fake.task_s = 0.05
        _, done, _ = await create(http, fake, HAILUO)
        await until(lambda: fake.tasks[done["id"]].phase() == "done")
        before = await get(http, fake, done["urls"]["get"])
        status, after, _ = await call(http, "POST", done["urls"]["cancel"], headers=auth(fake))
        assert (status, after) == (200, before)  # a finished prediction stays as it was
        assert fake.cancels == [made["id"], done["id"]]


async def test_data_is_removed_after_the_retention_time(http: aiohttp.ClientSession) -> None:
    async with FakeReplicate(queue_s=0.0, task_s=0.05) as fake:
        fake.retention_s = 0.4
        _, made, _ = await create(http, fake, HAILUO)
        await until(lambda: fake.tasks[made["id"]].phase() == "done")
        kept = await get(http, fake, made["urls"]["get"])
        assert kept["data_removed"] is False and kept["input"] == {"prompt": "p"}
        async with http.get(kept["output"]) as resp:
            assert resp.status == 200
        await asyncio.sleep(0.45)
        gone = await get(http, fake, made["urls"]["get"])
        assert gone["status"] == "succeeded" and gone["data_removed"] is True
        assert gone["input"] is None and gone["output"] is None
        async with http.get(kept["output"]) as resp:
            assert resp.status == 404


# ----- input rules, model by model (from the digest's Replicate table) ------------------------
@pytest.mark.parametrize("case", sorted(GOOD))
async def test_every_model_takes_a_good_input(
    http: aiohttp.ClientSession, rx: Loopback, case: str
) -> None:
    inp, (seconds, frame) = GOOD[case]
    async with FakeReplicate() as fake:
        sent = with_images(rx, inp)
        status, made, _ = await create(http, fake, case.split("#")[0], sent)
        assert status == 201, made
        task = fake.tasks[made["id"]]
        assert made["input"] == task.body["input"] == sent
        assert (task.duration, task.extra["frame"]) == (seconds, frame)


@pytest.mark.parametrize(("model", "inp", "field", "kind"), BAD)
async def test_an_input_against_the_model_rules_is_a_422(
    http: aiohttp.ClientSession, rx: Loopback, model: str, inp: dict[str, Any], field: str,
    kind: str
) -> None:
    async with FakeReplicate() as fake:
        status, body, _ = await create(http, fake, model, with_images(rx, inp))
        assert status == 422
        assert body["title"] == "Input validation failed" and body["status"] == 422
        assert field in body["detail"]
        assert {"type": kind, "field": f"input.{field}"} in [
            {"type": f["type"], "field": f["field"]} for f in body["invalid_fields"]]
        assert all(f["description"] for f in body["invalid_fields"])
        assert fake.submits_accepted == 0 and not fake.tasks


async def test_a_bad_envelope_or_image_is_a_422(
    http: aiohttp.ClientSession, rx: Loopback
) -> None:
    async with FakeReplicate() as fake:
        url = f"{fake.base_url}/models/{VEO}/predictions"
        cases: list[tuple[Any, str]] = [
            (["p"], "body"), ({"prompt": "p"}, "input"), ({"input": "p"}, "input"),
            ({"input": {"prompt": "p"}, "webhook": "nope"}, "webhook"),
            ({"input": {"prompt": "p"}, "webhook_events_filter": ["done"]},
             "webhook_events_filter"),
            ({"input": {"prompt": "p"}, "version": "x"}, "version"),
        ]
        for body, field in cases:
            status, answer, _ = await call(http, "POST", url, json=body, headers=auth(fake))
            assert status == 422 and field in [f["field"] for f in answer["invalid_fields"]]
        for ref in (rx.image_url("junk", b"not an image"), rx.image_url("missing"),
                    "http://images.example.com/a.png"):
            status, answer, _ = await create(http, fake, KLING_21,
                                             {"prompt": "p", "start_image": ref})
            assert status == 422
            assert [f["field"] for f in answer["invalid_fields"]] == ["input.start_image"]
        assert fake.submits_accepted == 0


# ----- webhooks ----------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["valid", "none", "wrong", "stale", "tampered"])
async def test_each_signing_switch_does_what_it_says(
    http: aiohttp.ClientSession, rx: Loopback, mode: str
) -> None:
    async with FakeReplicate(queue_s=0.0, task_s=0.05) as fake:
        fake.webhook_signing, fake.send_start_event = mode, False
        await create(http, fake, HAILUO, webhook=rx.hook_url())
        await until(lambda: rx.hooks)
        hook, key = rx.hooks[0], await secret(http, fake)
        sent = json.dumps(fake.callbacks_sent[0].payload).encode()
        assert json.loads(hook.raw)["status"] == "succeeded"  # always well-formed JSON
        if mode == "none":
            assert not [h for h in hook.headers if h.lower().startswith("webhook-")]
            assert hook.raw == sent
            return
        if mode == "valid":
            assert read(key, hook) == json.loads(sent)
            return
        with pytest.raises(WebhookVerificationError):
            read(key, hook)
        stamp = int(hook.headers["webhook-timestamp"])
        scheme, _, signature = hook.headers["webhook-signature"].partition(",")
        hmac_key = base64.b64decode(key.removeprefix("whsec_"))
        message = f"{hook.headers['webhook-id']}.{stamp}.".encode()
        expected = base64.b64encode(hmac.new(hmac_key, message + sent,
                                             hashlib.sha256).digest()).decode()
        assert scheme == "v1"
        if mode == "wrong":
            assert signature != expected and hook.raw == sent
        elif mode == "stale":
            assert signature == expected and 590 < time.time() - stamp < 610
        else:
            assert signature == expected and len(hook.raw) == len(sent)
            assert sum(a != b for a, b in zip(hook.raw, sent, strict=True)) == 1


async def test_a_rotated_secret_signs_from_then_on(
    http: aiohttp.ClientSession, rx: Loopback
) -> None:
    async with FakeReplicate(queue_s=0.0, task_s=0.05) as fake:
        fake.send_start_event = False
        old = await secret(http, fake)
        await create(http, fake, HAILUO, webhook=rx.hook_url("old"))
        await until(lambda: rx.hooks)
        fake.rotate_secret()
        new = await secret(http, fake)
        assert new != old and fake.secret_fetches == 2
        await create(http, fake, HAILUO, webhook=rx.hook_url("new"))
        await until(lambda: len(rx.hooks) == 2)
        before, after = rx.hooks
        read(old, before)
        read(new, after)
        for key, hook in ((new, before), (old, after)):
            with pytest.raises(WebhookVerificationError):
                read(key, hook)


@pytest.mark.parametrize(("start_switch", "events", "expected"), [
    (True, ["completed"], ["starting", "succeeded"]),  # the start event comes anyway
    (True, None, ["starting", "succeeded"]),
    (False, ["completed"], ["succeeded"]),
    (False, None, ["succeeded"]),  # no filter: the completed event only
    (False, ["start", "completed"], ["starting", "succeeded"]),
    (False, ["start"], ["starting"]),
])
async def test_which_events_are_sent(
    http: aiohttp.ClientSession, rx: Loopback, start_switch: bool, events: list[str] | None,
    expected: list[str]
) -> None:
    async with FakeReplicate(queue_s=0.0, task_s=0.1) as fake:
        fake.send_start_event = start_switch
        extra = {"webhook_events_filter": events} if events else {}
        _, made, _ = await create(http, fake, HAILUO, webhook=rx.hook_url(), **extra)
        await until(lambda: fake.tasks[made["id"]].finished)
        await asyncio.sleep(0.1)
        key = await secret(http, fake)
        assert [read(key, hook)["status"] for hook in rx.hooks] == expected


async def test_the_start_event_comes_first_and_ids_hold_across_retries_and_copies(
    http: aiohttp.ClientSession, rx: Loopback
) -> None:
    async with FakeReplicate(queue_s=0.0, task_s=0.02) as fake:
        fake.callback_retry_delay_s = 0.1
        rx.fail_first = 1  # the start event's first try fails: it is retried first
        await create(http, fake, HAILUO, webhook=rx.hook_url())
        await until(lambda: len(fake.callbacks_delivered) == 2)
        key = await secret(http, fake)
        assert [read(key, hook)["status"] for hook in rx.hooks] == [
            "starting", "starting", "succeeded"]
        ids = [hook.headers["webhook-id"] for hook in rx.hooks]
        assert ids[0] == ids[1] != ids[2]

        fake.callback_mode, fake.send_start_event = "duplicate", False
        rx.hooks.clear()
        await create(http, fake, HAILUO, webhook=rx.hook_url())
        await until(lambda: len(rx.hooks) == 3)
        assert len({hook.headers["webhook-id"] for hook in rx.hooks}) == 1
        assert all(read(key, hook)["status"] == "succeeded" for hook in rx.hooks)


async def test_dropped_and_early_completed_events(
    http: aiohttp.ClientSession, rx: Loopback
) -> None:
    async with FakeReplicate(queue_s=0.0, task_s=0.05) as fake:
        key = await secret(http, fake)
        fake.callback_mode = "drop"  # the completed event is lost; the start event is not
        _, dropped, _ = await create(http, fake, HAILUO, webhook=rx.hook_url("drop"))
        await until(lambda: fake.tasks[dropped["id"]].finished)
        await asyncio.sleep(0.1)
        assert [read(key, hook)["status"] for hook in rx.hooks] == ["starting"]

        fake.callback_mode, fake.task_s = "early", 1.0
        _, made, _ = await create(http, fake, HAILUO, webhook=rx.hook_url("early"))
        first = next(hook for hook in rx.hooks if hook.name == "early")  # before the reply
        news = read(key, first)
        assert (news["id"], news["status"]) == (made["id"], "succeeded")
        async with http.get(news["output"]) as resp:  # done at once: it tells the truth
            assert resp.status == 200
        await until(lambda: [hook.name for hook in rx.hooks].count("early") == 2)
