"""What each adapter sends and how it reads replies, against a scripted loopback server."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import aiohttp
import pytest

from bot.catalog import ModelSpec, Orientation, get_model
from bot.config import Settings, SettingsError
from bot.providers import make_provider
from bot.providers.adapter import HttpAdapter, normalise_progress
from bot.providers.aivideoapi import AivideoapiProvider
from bot.providers.apixo import ApixoProvider
from bot.providers.base import GenerationRequest, TaskState
from bot.providers.errors import (
    AuthenticationFailed,
    ContentRejected,
    EndpointNotFound,
    Forbidden,
    ImageRejected,
    InsufficientBalance,
    InvalidRequest,
    ModelUnavailable,
    ProviderDown,
    ProviderError,
    RateLimited,
    TaskNotFound,
    UpstreamRefused,
)
from bot.providers.http import RetryPolicy
from bot.providers.pixazo import PixazoProvider
from tests.providers.helpers import KEY, ScriptServer, Step, source_image

FAST = RetryPolicy.fast(attempts=2)
APIXO_2 = get_model("apixo", "sora-2")
APIXO_PRO = get_model("apixo", "sora-2-pro")
AIV = get_model("aivideoapi", "sora-2")
PIX = get_model("pixazo", "sora-2-pro")
CB = "https://bot.example/callbacks/x/tok"
L, P = Orientation.LANDSCAPE, Orientation.PORTRAIT


def make(cls: type[HttpAdapter], server: ScriptServer, session: aiohttp.ClientSession,
         suffix: str = "") -> HttpAdapter:
    return cls(session, server.url + suffix, KEY, retry=FAST, submit_retry=FAST)


def text(duration: int = 8, orientation: Orientation = L) -> GenerationRequest:
    return GenerationRequest(prompt="  a red fox in snow ", duration=duration,
                             orientation=orientation)


def image(orientation: Orientation = L, url: str | None = "https://img.example/a.png"
          ) -> GenerationRequest:
    w, h = (1280, 720) if orientation is L else (720, 1280)
    return GenerationRequest(prompt="make it move", duration=4, orientation=orientation,
                             image=source_image(w, h, url=url))


APIXO_OK = Step(200, {"code": 200, "message": "success", "data": {"taskId": "task_9"}})


# ----- APIXO ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "request_", "callback", "expected"),
    [
        (APIXO_2, text(8, P), None, {
            "request_type": "async",
            "input": {"mode": "text-to-video", "prompt": "a red fox in snow", "duration": 8,
                      "aspect_ratio": "portrait", "remove_watermark": True}}),
        (APIXO_2, image(L), CB, {
            "request_type": "callback", "callback_url": CB,
            "input": {"mode": "image-to-video", "prompt": "make it move", "duration": 4,
                      "aspect_ratio": "landscape", "remove_watermark": True,
                      "image_urls": ["https://img.example/a.png"]}}),
        (APIXO_PRO, text(12, L), None, {
            "request_type": "async", "provider": "official",
            "input": {"mode": "text-to-video", "prompt": "a red fox in snow", "duration": 12,
                      "size": "1280*720"}}),
        (APIXO_PRO, image(P), CB, {
            "request_type": "callback", "callback_url": CB, "provider": "official",
            "input": {"mode": "image-to-video", "prompt": "make it move", "duration": 4,
                      "resolution": "720p", "image_urls": ["https://img.example/a.png"]}}),
    ],
)
async def test_apixo_body(server: ScriptServer, session: aiohttp.ClientSession, spec: object,
                          request_: GenerationRequest, callback: str | None,
                          expected: dict[str, object]) -> None:
    server.then(APIXO_OK)
    provider = make(ApixoProvider, server, session, "/api/v1")
    assert await provider.submit(spec, request_, callback) == "task_9"  # type: ignore[arg-type]
    seen = server.seen[0]
    assert seen.path == f"/api/v1/generateTask/{spec.api_model}"  # type: ignore[attr-defined]
    assert seen.headers["Authorization"] == f"Bearer {KEY}"
    assert seen.headers["Content-Type"].startswith("application/json")
    assert seen.json == expected


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"code": 400, "message": "Insufficient credits", "data": None}, InsufficientBalance),
        ({"code": 400, "message": "Content violates provider policy, please adjust the prompt",
          "data": None}, ContentRejected),
        ({"code": 400, "message": "input.duration must be 4, 8 or 12"}, InvalidRequest),
        ({"code": 401, "message": "Invalid key"}, AuthenticationFailed),
        # sora-2 is retired: APIXO's one documented model answer means it is gone.
        ({"code": 403, "message": "Key or route cannot access the model"}, ModelUnavailable),
        # The APIXO seeds document no model-not-found answer: a 404 is not "model retired".
        ({"code": 404, "message": "Model not found"}, EndpointNotFound),
    ],
)
async def test_apixo_http_200_error_bodies(server: ScriptServer, session: aiohttp.ClientSession,
                                           body: dict[str, object],
                                           error: type[ProviderError]) -> None:
    server.then(Step(200, body))
    with pytest.raises(error):
        await make(ApixoProvider, server, session).submit(APIXO_2, text())
    assert server.count("POST") == 1


async def test_apixo_403_on_a_live_model_is_a_refused_route(
    server: ScriptServer, session: aiohttp.ClientSession
) -> None:
    server.then(Step(403, {"code": 403, "message": "Key or route cannot access the model"}))
    with pytest.raises(Forbidden):
        await make(ApixoProvider, server, session).submit(
            get_model("apixo", "veo-3-1-fast"), text())
    assert server.count("POST") == 1


@pytest.mark.parametrize(
    ("cls", "spec", "answer"),
    [
        (ApixoProvider, APIXO_2, Step(404, {"code": 404, "message": "Not Found", "data": None})),
        (ApixoProvider, APIXO_2, Step(404, text="404 page not found")),
        (AivideoapiProvider, AIV, Step(404, text="<html>Not Found</html>")),
        (AivideoapiProvider, AIV, Step(404, {"error": {"code": "not_found", "message": "x"}})),
        (PixazoProvider, PIX, Step(404, {"statusCode": 404, "message": "Resource not found"})),
        (PixazoProvider, PIX, Step(404, {"error": "Model not found", "message": "gone"})),
    ],
)
async def test_a_404_on_create_is_not_model_retired(
    server: ScriptServer, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture,
    cls: type[HttpAdapter], spec: ModelSpec, answer: Step,
) -> None:
    """A wrong base URL (any 404 without the documented model-not-found answer) is an
    error of its own, logged with where it went, never the key."""
    caplog.set_level(logging.DEBUG)
    server.then(answer)
    with pytest.raises(EndpointNotFound) as info:
        await make(cls, server, session, "/wrong").submit(spec, text())
    assert not isinstance(info.value, ModelUnavailable)
    assert "base URL" in info.value.user_message
    assert "no longer offered" not in info.value.user_message
    assert server.count("POST") == 1
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("404" in m and f"{server.url}/wrong/" in m for m in logged), logged
    assert KEY not in caplog.text


@pytest.mark.parametrize(
    ("cls", "spec", "answer"),
    [
        (AivideoapiProvider, AIV, Step(404, {"error": {"code": "model_not_found",
                                                       "message": "Model does not exist"}})),
        (PixazoProvider, PIX, Step(400, {"error": "Model not found",
                                         "message": "Model 'sora-video' not found or is "
                                                    "disabled"})),
    ],
)
async def test_only_the_documented_answer_means_model_retired(
    server: ScriptServer, session: aiohttp.ClientSession, cls: type[HttpAdapter],
    spec: ModelSpec, answer: Step,
) -> None:
    server.then(answer)
    with pytest.raises(ModelUnavailable) as info:
        await make(cls, server, session).submit(spec, text())
    assert "no longer offered" in info.value.user_message


async def test_apixo_status(server: ScriptServer, session: aiohttp.ClientSession) -> None:
    provider = make(ApixoProvider, server, session, "/api/v1")
    result = json.dumps({"resultUrls": ["https://r2.example/v.mp4"]})
    server.then(
        Step(200, {"code": 200, "data": {"taskId": "t", "state": "pending"}}),
        Step(200, {"code": 200, "data": {"taskId": "t", "state": "processing"}}),
        Step(200, {"code": 200, "data": {"taskId": "t", "state": "success",
                                         "resultJson": result}}),
        Step(200, {"code": 200, "data": {"taskId": "t", "state": "failed",
                                         "failCode": "SensitiveContentDetected",
                                         "failMsg": "flagged by OpenAI"}}),
        Step(200, {"code": 200, "data": {"taskId": "t", "state": "failed",
                                         "failCode": "Weird", "failMsg": "Odd upstream thing"}}),
        Step(200, {"code": 200, "data": {"taskId": "t", "state": "success",
                                         "resultJson": "not json"}}),
    )
    states = [await provider.status(APIXO_PRO, "t") for _ in range(6)]
    assert [s.state for s in states] == [TaskState.QUEUED, TaskState.RUNNING,
                                         TaskState.SUCCEEDED, TaskState.FAILED,
                                         TaskState.FAILED, TaskState.FAILED]
    assert states[2].video_urls == ["https://r2.example/v.mp4"]
    assert states[3].error_code == "SensitiveContentDetected"
    assert states[3].error_message == "The provider's safety check flagged this content."
    assert states[4].error_message == "Odd upstream thing"
    assert states[5].error_code == "no_result"
    seen = server.seen[0]
    assert seen.method == "GET" and seen.path == "/api/v1/statusTask/sora-2-pro"
    assert seen.query == {"taskId": "t"}


async def test_apixo_status_404_is_task_not_found(server: ScriptServer,
                                                  session: aiohttp.ClientSession) -> None:
    server.then(Step(404, {"code": 404, "message": "Task not found", "data": None}))
    with pytest.raises(TaskNotFound):
        await make(ApixoProvider, server, session).status(APIXO_2, "nope")


@pytest.mark.parametrize(
    ("cls", "suffix", "path", "answer", "error"),
    [
        (ApixoProvider, "/api/v1", "/api/v1/statusTask/veo-3-1",
         Step(404, {"code": 404, "message": "Task not found"}), None),
        (ApixoProvider, "/api/v1", "/api/v1/statusTask/veo-3-1",
         Step(401, {"code": 401, "message": "Invalid or missing API key"}), AuthenticationFailed),
        (AivideoapiProvider, "", "/v1/credits",
         Step(200, {"code": 200, "data": {"credits": 5}}), None),
        (AivideoapiProvider, "", "/v1/credits",
         Step(401, {"error": {"code": "invalid_api_key", "message": "x"}}), AuthenticationFailed),
        (PixazoProvider, "", "/v2/requests/status/sora-video_check-key-probe",
         Step(404, {"error": "Not Found", "message": "Request not found"}), None),
        (PixazoProvider, "", "/v2/requests/status/sora-video_check-key-probe",
         Step(401, {"error": "Unauthorized", "message": "bad key"}), AuthenticationFailed),
        (PixazoProvider, "", "/v2/requests/status/sora-video_check-key-probe",
         Step(403, {"error": "Forbidden", "message": "no"}), Forbidden),
    ],
)
async def test_check_key(server: ScriptServer, session: aiohttp.ClientSession,
                         cls: type[HttpAdapter], suffix: str, path: str, answer: Step,
                         error: type[ProviderError] | None) -> None:
    server.then(answer)
    provider = make(cls, server, session, suffix)
    if error is None:
        await provider.check_key()
    else:
        with pytest.raises(error):
            await provider.check_key()
    assert server.seen[0].method == "GET" and server.seen[0].path == path


# ----- aivideoapi ------------------------------------------------------------------------------
AIV_OK = Step(200, {"code": 200, "msg": "success", "data": {"taskId": "cbf6b69d-4f03"}})


async def test_aivideoapi_bodies(server: ScriptServer, session: aiohttp.ClientSession) -> None:
    provider = make(AivideoapiProvider, server, session)
    server.then(AIV_OK, AIV_OK)
    assert await provider.submit(AIV, text(12, P)) == "cbf6b69d-4f03"
    assert await provider.submit(AIV, image(L), CB) == "cbf6b69d-4f03"
    first, second = server.seen
    assert first.path == "/v1/videos/generations"
    assert first.headers["Authorization"] == f"Bearer {KEY}"
    assert first.json == {"model": "sora-2", "input": {
        "prompt": "a red fox in snow", "duration": 12, "aspect_ratio": "9:16"}}
    assert second.json == {"model": "sora-2", "callback_url": CB, "input": {
        "prompt": "make it move", "duration": 4, "aspect_ratio": "16:9",
        "image_urls": ["https://img.example/a.png"]}}


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (400, "invalid_request", InvalidRequest),
        (401, "invalid_api_key", AuthenticationFailed),
        (402, "insufficient_credits", InsufficientBalance),
        (403, "ip_not_allowed", Forbidden),
        (404, "model_not_found", ModelUnavailable),
        (429, "spend_limit_exceeded", InsufficientBalance),
        (503, "upstream_error", UpstreamRefused),
    ],
)
async def test_aivideoapi_errors_not_retried(server: ScriptServer,
                                             session: aiohttp.ClientSession, status: int,
                                             code: str, error: type[ProviderError]) -> None:
    server.default = Step(status, {"error": {"code": code, "message": "m", "type": "t"}})
    with pytest.raises(error) as info:
        await make(AivideoapiProvider, server, session).submit(AIV, text())
    assert server.count("POST") == 1
    if code == "spend_limit_exceeded":
        assert "spending limit" in info.value.user_message


async def test_aivideoapi_status_errors(server: ScriptServer,
                                        session: aiohttp.ClientSession) -> None:
    provider = make(AivideoapiProvider, server, session)
    server.then(Step(404, {"error": {"code": "task_not_found", "message": "x"}}))
    with pytest.raises(TaskNotFound):
        await provider.status(AIV, "x")
    server.then(*[Step(429, {"error": {"code": "rate_limit_exceeded", "message": "x"}},
                       headers={"Retry-After": "0"})] * FAST.attempts)
    with pytest.raises(RateLimited):
        await provider.status(AIV, "x")
    server.then(*[Step(503, {"error": {"code": "upstream_error", "message": "x"}})] * 2)
    with pytest.raises(ProviderDown):
        await provider.status(AIV, "x")
    server.then(Step(500, {"error": {"code": "internal_error", "message": "x"}}),
                Step(200, {"id": "x", "status": "processing", "progress": 40}))
    status = await provider.status(AIV, "x")
    assert status.state is TaskState.RUNNING and status.progress == 0.4


async def test_aivideoapi_status(server: ScriptServer, session: aiohttp.ClientSession) -> None:
    provider = make(AivideoapiProvider, server, session)
    server.then(
        Step(200, {"id": "a/b", "status": "pending", "progress": None}),
        Step(200, {"id": "a/b", "status": "completed", "output": {
            "urls": ["https://r2.example/v.mp4?sig=1"], "metadata": {"duration": 8}}}),
        Step(200, {"id": "a/b", "status": "failed", "error": {
            "code": "upstream_error", "message": "Video generation failed"}}),
    )
    queued = await provider.status(AIV, "a/b")
    assert queued.state is TaskState.QUEUED and queued.progress is None
    done = await provider.status(AIV, "a/b")
    assert done.video_urls == ["https://r2.example/v.mp4?sig=1"]
    failed = await provider.status(AIV, "a/b")
    assert (failed.error_code, failed.error_message) == ("upstream_error",
                                                         "Video generation failed")
    assert server.seen[0].raw_path == "/v1/tasks/a%2Fb"  # the id stays one path segment


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), (0, 0.0), (0.5, 0.5), (1, 1.0), (50, 0.5), (100, 1.0), (150, 1.0),
     ("75", 0.75), ("75%", 0.75), (-3, None), ("soon", None), (True, None), ({}, None)],
)
def test_normalise_progress(value: object, expected: float | None) -> None:
    assert normalise_progress(value) == expected


# ----- Pixazo ----------------------------------------------------------------------------------
PIX_OK = Step(202, {"request_id": "sora-video_019d", "status": "QUEUED",
                    "polling_url": "https://evil.example/v2/requests/status/sora-video_019d"})


async def test_pixazo_text_body(server: ScriptServer, session: aiohttp.ClientSession) -> None:
    server.then(PIX_OK, PIX_OK)
    provider = make(PixazoProvider, server, session)
    assert await provider.submit(PIX, text(8, P)) == "sora-video_019d"
    assert await provider.submit(PIX, text(4, L), CB) == "sora-video_019d"
    first, second = server.seen
    assert first.path == "/sora-video/v1/video/generate"
    assert first.headers["Ocp-Apim-Subscription-Key"] == KEY
    assert first.headers["Cache-Control"] == "no-cache"
    assert "Authorization" not in first.headers and "X-Webhook-URL" not in first.headers
    assert first.json == {"prompt": "a red fox in snow", "size": "720x1280", "seconds": 8,
                          "model": "sora-2-pro"}
    # One callback, the documented webhook: never also the body's callback_url.
    assert second.json == {"prompt": "a red fox in snow", "size": "1280x720", "seconds": 4,
                           "model": "sora-2-pro"}
    assert second.headers["X-Webhook-URL"] == CB


async def test_pixazo_image_body_uses_a_data_uri(server: ScriptServer,
                                                 session: aiohttp.ClientSession) -> None:
    server.then(PIX_OK)
    request = image(P, url=None)
    await make(PixazoProvider, server, session).submit(PIX, request)
    seen = server.seen[0]
    assert seen.path == "/sora-video/v1/video/i2v/generate"
    body = seen.json
    assert body["size"] == "720x1280" and body["seconds"] == 4 and body["model"] == "sora-2-pro"
    header, _, payload = body["image"].partition(",")
    assert header == "data:image/png;base64"
    assert request.image is not None and base64.b64decode(payload) == request.image.data


async def test_pixazo_status_never_follows_polling_url(server: ScriptServer,
                                                       session: aiohttp.ClientSession) -> None:
    provider = make(PixazoProvider, server, session)
    server.then(
        Step(200, {"request_id": "r", "status": "PROCESSING", "error": None, "output": None}),
        Step(200, {"request_id": "r", "status": "COMPLETED", "error": None,
                   "output": {"media_url": ["https://r2.example/o.mp4"],
                              "media_type": "application/octet-stream"}}),
        Step(200, {"request_id": "r", "status": "ERROR", "error": "Description of the error",
                   "output": None}),
        Step(200, {"request_id": "r", "status": "FAILED", "error": None, "output": None}),
    )
    running = await provider.status(PIX, "sora-video_019d")
    assert running.state is TaskState.RUNNING
    done = await provider.status(PIX, "sora-video_019d")
    assert done.video_urls == ["https://r2.example/o.mp4"]
    error = await provider.status(PIX, "sora-video_019d")
    assert (error.state, error.error_code, error.error_message) == (
        TaskState.FAILED, "ERROR", "Description of the error")
    failed = await provider.status(PIX, "sora-video_019d")
    assert failed.error_message == "The provider could not make this video."
    assert {s.path for s in server.seen} == {"/v2/requests/status/sora-video_019d"}


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (402, {"error": "Insufficient Balance", "message": "Your wallet..."}, InsufficientBalance),
        (400, {"error": "Model not found", "message": "Model 'sora-video' not found or is "
               "disabled"}, ModelUnavailable),
        (400, {"error": "Bad Request", "message": "Unsupported image dimensions 1000x700"},
         ImageRejected),
        (400, {"error": "Bad Request", "message": "seconds must be 4, 8 or 12"}, InvalidRequest),
        # Only the documented "Model not found" answer means retired, not any wording.
        (400, {"error": "Bad Request", "message": "model sora-3 is not supported"},
         InvalidRequest),
        (401, {"error": "Unauthorized", "message": "x"}, AuthenticationFailed),
        (403, {"error": "Forbidden", "message": "x"}, Forbidden),
    ],
)
async def test_pixazo_errors(server: ScriptServer, session: aiohttp.ClientSession, status: int,
                             body: dict[str, str], error: type[ProviderError]) -> None:
    server.default = Step(status, body)
    with pytest.raises(error):
        await make(PixazoProvider, server, session).submit(PIX, text())
    assert server.count("POST") == 1


# ----- shared ----------------------------------------------------------------------------------
async def test_validation_runs_before_any_http(server: ScriptServer,
                                               session: aiohttp.ClientSession) -> None:
    for cls, spec in ((ApixoProvider, APIXO_2), (AivideoapiProvider, AIV), (PixazoProvider, PIX)):
        provider = make(cls, server, session)
        with pytest.raises(InvalidRequest):
            await provider.submit(spec, GenerationRequest(prompt=" ", duration=4))
        with pytest.raises(InvalidRequest):
            await provider.submit(spec, GenerationRequest(prompt="x", duration=5))
        with pytest.raises(InvalidRequest, match="belongs to"):
            await provider.submit(AIV if spec is not AIV else PIX, text())
    assert server.seen == []


CALLBACKS = [
    (ApixoProvider, b'{"code":200,"msg":"success","data":{"taskId":"task_12345678",'
                    b'"state":"success"}}', "task_12345678"),
    (ApixoProvider, b'{"taskId":"task_1"}', "task_1"),
    (AivideoapiProvider, b'{"id":"7d89c51e-9430","status":"completed"}', "7d89c51e-9430"),
    (PixazoProvider, b'{"request_id":"sora-video_019d","status":"COMPLETED"}',
     "sora-video_019d"),
]
GARBAGE = [b"", b"not json", b"\xff\xfe\x00", b"[]", b"null", b"42", b'"task_1"',
           b'{"data": "x"}', b'{"data": {"taskId": {"a": 1}}}', b'{"id": ""}',
           b'{"id": "../../etc/passwd"}', b'{"request_id": "a b"}',
           b'{"id": "' + b"x" * 500 + b'"}',
           b"[" * 10000 + b"]" * 10000]


@pytest.mark.parametrize(("cls", "body", "expected"), CALLBACKS)
def test_parse_callback(session_free: None, cls: type[HttpAdapter], body: bytes,
                        expected: str) -> None:
    provider = cls.__new__(cls)
    assert provider.parse_callback(body) == expected


@pytest.mark.parametrize("cls", [ApixoProvider, AivideoapiProvider, PixazoProvider])
@pytest.mark.parametrize("body", GARBAGE)
def test_parse_callback_garbage(session_free: None, cls: type[HttpAdapter], body: bytes) -> None:
    provider = cls.__new__(cls)
    assert provider.parse_callback(body) is None


@pytest.fixture
def session_free() -> None:
    """parse_callback needs no session or key (it is a pure function of the body)."""


# ----- make_provider ---------------------------------------------------------------------------
async def test_make_provider(session: aiohttp.ClientSession, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("APIXO_API_KEY", "AIVIDEOAPI_API_KEY", "PIXAZO_API_KEY", "PROVIDER"):
        monkeypatch.delenv(var, raising=False)
    settings = Settings(_env_file=None, pixazo_api_key="pk", pixazo_base_url="http://127.0.0.1:1/",
                        database_path=tmp_path / "bot.sqlite3")
    provider = make_provider("pixazo", settings, session)
    assert isinstance(provider, PixazoProvider) and provider.name == "pixazo"
    assert "pk" not in repr(provider)
    with pytest.raises(SettingsError) as info:
        make_provider("apixo", settings, session)
    assert info.value.problems[0].startswith("APIXO_API_KEY: required")
    with pytest.raises(SettingsError):
        make_provider("nope", settings, session)


async def test_make_provider_sandbox(session: aiohttp.ClientSession, tmp_path: Path) -> None:
    pytest.importorskip("bot.providers.sandbox")
    settings = Settings(_env_file=None, database_path=tmp_path / "bot.sqlite3",
                        sandbox_delay_s=0.5)
    provider = make_provider("sandbox", settings, session)
    assert provider.name == "sandbox"
