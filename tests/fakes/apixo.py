"""Emulator of the APIXO task API (seeds 000 sora-2, 001 sora-2-pro, 004 provider routing;
the models after Sora from MODELS_AFTER_SORA.md, their ``input`` rules in ``apixo_models``).

Routes (the client's base URL is ``api_base`` = ``base_url + "/api/v1"``):
  POST /api/v1/generateTask/{model}            -> {"code":200,"message":"success","data":{"taskId"}}
  GET  /api/v1/statusTask/{model}?taskId=...   -> {"code":200,"message":"success","data":{...}}
  GET  /files/{taskId}.mp4                     -> the result video (no auth)
Errors: HTTP 4xx/5xx with {"code": <same>, "message": ..., "data": null}; insufficient
credits and content-policy refusals come as HTTP 200 with {"code": 400, ...} (seed 001).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp import web

from .apixo_models import CASES
from .common import (
    STATUS,
    SUBMIT,
    FakeProvider,
    FakeTask,
    ImageInfo,
    ImageProblem,
    RecordedRequest,
    is_http_url,
    is_int,
    small_dims,
)

FAIL_MESSAGES = {
    "PromptInvalid": "Prompt was rejected or malformed",
    "SensitiveContent": "Prompt or media failed safety checks",
    "SensitiveContentDetected": "Your content was flagged by OpenAI as violating content policies.",
    "InputImageSensitiveContentDetected": "Reference image failed safety checks",
    "ImageFormatIncorrect": "Reference image format could not be processed",
    "InvalidImageSize": "Reference image dimensions or size are invalid",
    "RateLimited": "Upstream route was rate limited",
    "Timeout": "Generation did not finish in time",
    "Unknown error": "Upstream returned an unmapped failure",
    "CONTENT_VIOLATION": "Content does not meet safety guidelines",
    "INVALID_IMAGE_URL": "Cannot access provided image URL",
}
# image problem -> fail code, used when image_failures_as_task_fail is set
IMAGE_FAIL_CODES = {
    "bad_url": "INVALID_IMAGE_URL",
    "not_loopback": "INVALID_IMAGE_URL",
    "unreachable": "INVALID_IMAGE_URL",
    "too_large": "InvalidImageSize",
    "undecodable": "ImageFormatIncorrect",
    "bad_format": "ImageFormatIncorrect",
}
ERROR_MESSAGES = {
    "auth": (401, "Invalid or missing API key"),
    "forbidden": (403, "Key or route cannot access the model"),
    "rate_limit": (429, "Rate limit exceeded"),
    "server": (500, "Internal server error"),
    "bad_request": (400, "Invalid parameters"),
    "not_found": (404, "Task not found"),
    # No seed documents a model-not-found answer; the one that fits is seed 000's
    # "403: Key or route cannot access the model".
    "model": (403, "Key or route cannot access the model"),
    "balance": (402, "Insufficient balance"),
}
SERVER_MESSAGES = {
    500: "Internal server error",
    502: "Upstream service error",
    504: "Upstream timeout",
}
MODES = ("text-to-video", "image-to-video")
DURATIONS = (4, 8, 12)
ASPECT_RATIOS = {"landscape": (1280, 720), "portrait": (720, 1280)}
PRO_SIZES = ("720*1280", "1280*720", "1024*1792", "1792*1024")
PRO_RESOLUTIONS = ("720p", "1080p")
PROVIDERS = ("auto", "value", "official")


class FakeApixo(FakeProvider):
    """APIXO emulator. Extra attributes beyond FakeProvider:

    models: set of model ids served (default: Sora and every model in ``apixo_models``); ids in
        ``retired_models`` or outside this set answer 403 "Key or route cannot access the
        model" (the seeds document no 404 for a model).
    content_policy_word: a prompt containing it gets the HTTP 200 / code 400 policy refusal.
    balance_http_402: answer ``balance_exhausted`` as HTTP 402 instead of the 200/code-400 quirk.
    image_failures_as_task_fail: a bad reference image creates a task that fails with
        INVALID_IMAGE_URL / ImageFormatIncorrect / InvalidImageSize instead of a 400.
    """

    status_5xx_codes = (500, 502, 504)

    def __init__(self, api_key: str | None = None, **kw: Any) -> None:
        super().__init__(api_key, **kw)
        self.models: set[str] = {"sora-2", "sora-2-pro", *CASES}
        self.content_policy_word = "forbidden-topic"
        self.balance_http_402 = False
        self.image_failures_as_task_fail = False

    @property
    def api_base(self) -> str:
        return self.base_url + "/api/v1"

    def setup_routes(self, router: web.UrlDispatcher) -> None:
        self.route("POST", "/api/v1/generateTask/{model}", SUBMIT, self._create)
        self.route("GET", "/api/v1/statusTask/{model}", STATUS, self._status)

    def check_auth(self, request: web.Request) -> bool:
        return request.headers.get("Authorization", "") == f"Bearer {self.api_key}"

    def error(
        self, kind: str, message: str | None = None, status: int | None = None
    ) -> web.Response:
        default_status, default_message = ERROR_MESSAGES[kind]
        status = status or default_status
        if message is None:
            message = SERVER_MESSAGES.get(status, default_message)
        return web.json_response({"code": status, "message": message, "data": None}, status=status)

    @staticmethod
    def quirk(message: str) -> web.Response:
        """The documented HTTP 200 reply carrying an error code 400 (seed 001)."""
        return web.json_response({"code": 400, "message": message, "data": None}, status=200)

    def render(self, task: FakeTask, phase: str, outcome: str) -> dict[str, Any]:
        create_ms = int(task.created_wall * 1000)
        data: dict[str, Any] = {"taskId": task.id}
        if phase != "done":
            data["state"] = "pending" if phase == "queued" else "processing"
            data["createTime"] = create_ms
        else:
            complete_ms = int(task.completed_wall * 1000)
            if outcome == "success":
                urls = [self.file_url(task)]
                data["state"] = "success"
                data["resultJson"] = json.dumps({"resultUrls": urls}, separators=(",", ":"))
            else:
                data["state"] = "failed"
                data["failCode"] = outcome
                data["failMsg"] = FAIL_MESSAGES.get(outcome, "Generation failed")
            data["createTime"] = create_ms
            data["completeTime"] = complete_ms
            if outcome == "success":
                data["costTime"] = complete_ms - create_ms
        return {"code": 200, "message": "success", "data": data}

    # ----- handlers ------------------------------------------------------------------------
    async def _create(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        model = request.match_info["model"]
        if model not in self.models or model in self.retired_models:
            return self.error("model")
        if not self.is_json_request(request):
            return self.error("bad_request", "Content-Type must be application/json")
        body = rec.json
        if not isinstance(body, dict):
            return self.error("bad_request", "Request body must be a JSON object")
        problem = validate(model, body)
        if problem:
            return self.error("bad_request", problem)
        inp = body["input"]
        case = CASES.get(model)
        if self.balance_exhausted:
            if self.balance_http_402:
                return self.error("balance", "Insufficient credits")
            return self.quirk("Insufficient credits")
        if self.content_policy_word and self.content_policy_word in inp.get("prompt", ""):
            return self.quirk("Content violates provider policy, please adjust the prompt")
        outcome = self.outcome
        image: ImageInfo | None = None
        urls = case.images(inp) if case else inp.get("image_urls", [])[:1]
        for index, url in enumerate(urls):
            try:
                info = await self.fetch_image(url)
                problem = case.image_page.problem(info) if case else None
                if problem:
                    raise ImageProblem("bad_format", problem)
            except ImageProblem as exc:
                if not self.image_failures_as_task_fail:
                    return self.error("bad_request", f"input.image_urls[{index}]: {exc}")
                outcome = IMAGE_FAIL_CODES[exc.reason]
                break
            image = image or info
        task = self.new_task(
            f"task_{uuid.uuid4().hex}",
            model,
            body,
            outcome=outcome,
            duration=case.duration(inp) if case else inp["duration"],
            video_size=small_dims(*(case.size(inp, image) if case
                                    else output_size(model, inp, image))),
            image_info=image,
            prompt=inp.get("prompt", ""),
            callback_urls=[body["callback_url"]] if body.get("request_type") == "callback" else [],
        )
        await self.accept(task)
        return web.json_response({"code": 200, "message": "success", "data": {"taskId": task.id}})

    async def _status(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        model = request.match_info["model"]
        if model not in self.models and model not in self.retired_models:
            return self.error("model")
        task_id = request.query.get("taskId", "")
        if not task_id:
            return self.error("bad_request", "taskId is required")
        task = self.tasks.get(task_id)
        if task is None or task.model != model:
            return self.error("not_found")
        return web.json_response(self.render(task, task.phase(), task.outcome))


def output_size(model: str, inp: dict[str, Any], image: ImageInfo | None) -> tuple[int, int]:
    if model == "sora-2-pro" and inp["mode"] == "text-to-video":
        w, h = inp["size"].split("*")
        return int(w), int(h)
    if model == "sora-2-pro":
        if image is None:
            return 1280, 720
        return (1280, 720) if image.width >= image.height else (720, 1280)
    return ASPECT_RATIOS[inp.get("aspect_ratio", "landscape")]


def validate(model: str, body: dict[str, Any]) -> str | None:
    """Return a 400 message, or None when the body follows the documents."""
    request_type = body.get("request_type", "async")
    if request_type not in ("async", "callback"):
        return "request_type must be async or callback"
    callback_url = body.get("callback_url")
    if request_type == "callback" and not is_http_url(callback_url):
        return "callback_url is required when request_type is callback"
    if callback_url is not None and not is_http_url(callback_url):
        return "callback_url must be an http(s) URL"
    provider = body.get("provider")
    if model == "sora-2-pro" and provider != "official":
        return "provider must be official for sora-2-pro"
    if provider is not None and provider not in PROVIDERS:
        return "provider must be one of auto, value, official"
    inp = body.get("input")
    if not isinstance(inp, dict):
        return "input is required and must be an object"
    if model in CASES:
        return CASES[model].check(inp)
    mode = inp.get("mode")
    if mode not in MODES:
        return "input.mode must be text-to-video or image-to-video"
    prompt = inp.get("prompt")
    if not isinstance(prompt, str) or not 1 <= len(prompt) <= 10000:
        return "input.prompt must be a string of 1-10000 characters"
    duration = inp.get("duration")
    if not is_int(duration) or duration not in DURATIONS:
        return "input.duration must be the integer 4, 8 or 12"
    if "remove_watermark" in inp and not isinstance(inp["remove_watermark"], bool):
        return "input.remove_watermark must be a boolean"
    images = inp.get("image_urls")
    if mode == "image-to-video":
        if not isinstance(images, list) or len(images) != 1 or not is_http_url(images[0]):
            return "input.image_urls must hold exactly one http(s) URL for image-to-video"
    elif images is not None:
        return "input.image_urls is only accepted for image-to-video"
    if model == "sora-2-pro":
        return _validate_pro_shape(mode, inp)
    if "size" in inp or "resolution" in inp:
        return "sora-2 takes input.aspect_ratio, not size/resolution"
    if "aspect_ratio" in inp and inp["aspect_ratio"] not in ASPECT_RATIOS:
        return "input.aspect_ratio must be landscape or portrait"
    return None


def _validate_pro_shape(mode: str, inp: dict[str, Any]) -> str | None:
    if "aspect_ratio" in inp:
        return "sora-2-pro takes input.size (text-to-video) or input.resolution (image-to-video)"
    if mode == "text-to-video":
        if "resolution" in inp:
            return "input.resolution is only used in image-to-video mode"
        if inp.get("size") not in PRO_SIZES:
            return "input.size must be one of 720*1280, 1280*720, 1024*1792, 1792*1024"
    else:
        if "size" in inp:
            return "input.size is only used in text-to-video mode"
        if inp.get("resolution") not in PRO_RESOLUTIONS:
            return "input.resolution must be 720p or 1080p"
    return None
