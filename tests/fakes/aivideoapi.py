"""Emulator of the aivideoapi.ai API (seed 002).

Routes (the client's base URL is ``base_url``):
  POST /v1/videos/generations  -> {"code":200,"msg":"success","data":{"taskId":"<uuid>"}}
  GET  /v1/tasks/{taskId}      -> task object {id,status,model,created_at,...}
  GET  /v1/credits             -> {"code":200,"data":{"credits":<int>}}  (shape assumed)
  GET  /files/{taskId}.mp4     -> the result video (no auth)
Errors: {"error": {"code", "message", "type"}} with the documented status/code/type table.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from aiohttp import web

from .common import (
    OTHER,
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

ERRORS = {  # kind -> (status, code, type, message)
    "bad_request": (400, "invalid_request", "invalid_request_error", "Invalid request."),
    "auth": (401, "invalid_api_key", "authentication_error", "Invalid API key."),
    "balance": (
        402,
        "insufficient_credits",
        "billing_error",
        "Your credit balance is too low. Please top up.",
    ),
    "forbidden": (
        403,
        "ip_not_allowed",
        "permission_error",
        "Request IP not in the key's allowlist.",
    ),
    "model": (
        404,
        "model_not_found",
        "invalid_request_error",
        "Model does not exist or is inactive.",
    ),
    "not_found": (404, "task_not_found", "invalid_request_error", "Task ID does not exist."),
    "rate_limit": (
        429,
        "rate_limit_exceeded",
        "rate_limit_error",
        "Too many requests, please slow down.",
    ),
    "spend_limit": (429, "spend_limit_exceeded", "billing_error", "Key spend limit reached."),
    "server": (500, "internal_error", "api_error", "Unexpected server error."),
    "upstream": (
        503,
        "upstream_error",
        "upstream_error",
        "Upstream AI provider returned an error.",
    ),
}
FAIL_MESSAGES = {"upstream_error": "Video generation failed"}
DURATIONS = (4, 8, 12)
ASPECT_RATIOS = {"16:9": (1280, 720), "9:16": (720, 1280)}
CREDITS_PER_SECOND = 25


class FakeAivideoapi(FakeProvider):
    """aivideoapi.ai emulator. Extra attributes beyond FakeProvider:

    models: accepted model ids (default {"sora-2"}); others -> 404 model_not_found.
    credits: balance in credits (default 100000); a create costs 25 credits per second and
        answers 402 insufficient_credits when the balance is short; failed tasks are refunded.
    report_progress: give a numeric ``progress`` (0-100) while processing (default: null,
        as in the document's example).
    The default api_key is "sk-test"; keys not starting with "sk-" never authenticate.
    ``outcome`` other than "success" is the failed task's ``error.code`` (e.g. upstream_error).
    upstream_refusals: answer this many creates with the documented 503 ``upstream_error``
        ("Upstream AI provider returned an error"): no task is made and no credit is taken.
    """

    default_api_key = "sk-test"
    status_5xx_codes = (500, 503)

    def __init__(self, api_key: str | None = None, **kw: Any) -> None:
        super().__init__(api_key, **kw)
        self.models: set[str] = {"sora-2"}
        self.credits = 100_000
        self.report_progress = False
        self.upstream_refusals = 0

    def setup_routes(self, router: web.UrlDispatcher) -> None:
        self.route("POST", "/v1/videos/generations", SUBMIT, self._create)
        self.route("GET", "/v1/tasks/{task_id}", STATUS, self._status)
        self.route("GET", "/v1/credits", OTHER, self._credits)

    def check_auth(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        key = header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""
        return key.startswith("sk-") and key == self.api_key

    def error(
        self, kind: str, message: str | None = None, status: int | None = None
    ) -> web.Response:
        if kind == "server" and status == 503:
            kind = "upstream"
        http_status, code, err_type, default_message = ERRORS[kind]
        body = {"error": {"code": code, "message": message or default_message, "type": err_type}}
        return web.json_response(body, status=status or http_status)

    def render(self, task: FakeTask, phase: str, outcome: str) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": task.id,
            "status": {"queued": "pending", "processing": "processing"}.get(phase, ""),
            "model": task.model,
            "created_at": int(task.created_wall),
        }
        if phase != "done":
            obj["progress"] = self._progress(task) if phase == "processing" else None
        elif outcome == "success":
            obj["status"] = "completed"
            obj["completed_at"] = int(task.completed_wall)
            obj["output"] = {
                "urls": [self.file_url(task)],
                "metadata": {"duration": task.duration, "prompt": task.prompt},
            }
        else:
            obj["status"] = "failed"
            obj["error"] = {
                "code": outcome,
                "message": FAIL_MESSAGES.get(outcome, "Video generation failed"),
            }
        return obj

    def _progress(self, task: FakeTask) -> int | None:
        if not self.report_progress:
            return None
        span = max(task.task_s - task.queue_s, 1e-6)
        done = (time.monotonic() - task.created_mono - task.queue_s) / span
        return max(0, min(99, int(done * 100)))

    def on_task_finished(self, task: FakeTask) -> None:
        if task.outcome != "success":  # "pre-charged credits are automatically refunded"
            self.credits += task.extra.get("cost", 0)

    # ----- handlers ------------------------------------------------------------------------
    async def _create(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        body = rec.json
        if not self.is_json_request(request) or not isinstance(body, dict):
            return self.error("bad_request", "Request body must be a JSON object.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return self.error("bad_request", "'model' is required.")
        if model not in self.models or model in self.retired_models:
            return self.error("model", f"Model '{model}' does not exist or is inactive.")
        problem = validate(body)
        if problem:
            return self.error("bad_request", problem)
        inp = body["input"]
        cost = CREDITS_PER_SECOND * inp["duration"]
        if self.balance_exhausted or self.credits < cost:
            return self.error("balance")
        if self.upstream_refusals > 0:
            self.upstream_refusals -= 1
            return self.error("upstream")
        image: ImageInfo | None = None
        if "image_urls" in inp:
            try:
                image = await self.fetch_image(inp["image_urls"][0])
            except ImageProblem as exc:
                return self.error("bad_request", f"input.image_urls[0]: {exc}")
            ratio = image.width / image.height
            if not 0.4 <= ratio <= 2.5:
                return self.error("bad_request", "Image aspect ratio must be between 2:5 and 5:2.")
            if min(image.width, image.height) < 300:
                return self.error("bad_request", "Image shortest side must be at least 300px.")
        self.credits -= cost
        task = self.new_task(
            str(uuid.uuid4()),
            model,
            body,
            duration=inp["duration"],
            video_size=small_dims(*ASPECT_RATIOS[inp["aspect_ratio"]]),
            image_info=image,
            prompt=inp["prompt"],
            callback_urls=[body["callback_url"]] if body.get("callback_url") else [],
            extra={"cost": cost},
        )
        await self.accept(task)
        return web.json_response({"code": 200, "msg": "success", "data": {"taskId": task.id}})

    async def _status(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        task = self.tasks.get(request.match_info["task_id"])
        if task is None:
            return self.error("not_found")
        return web.json_response(self.render(task, task.phase(), task.outcome))

    async def _credits(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        return web.json_response({"code": 200, "data": {"credits": self.credits}})


def validate(body: dict[str, Any]) -> str | None:
    """Return a 400 message, or None when the body follows the document."""
    callback_url = body.get("callback_url")
    if callback_url is not None and not is_http_url(callback_url):
        return "'callback_url' must be an http(s) URL."
    inp = body.get("input")
    if not isinstance(inp, dict):
        return "'input' is required."
    prompt = inp.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        return "'input.prompt' is required."
    if len(prompt) > 5000:
        return "'input.prompt' must be at most 5000 characters."
    duration = inp.get("duration")
    if not is_int(duration) or duration not in DURATIONS:
        return "'input.duration' must be 4, 8 or 12."
    if inp.get("aspect_ratio") not in ASPECT_RATIOS:
        return "'input.aspect_ratio' must be 16:9 or 9:16."
    if "image_urls" in inp:
        images = inp["image_urls"]
        if not isinstance(images, list) or len(images) != 1 or not is_http_url(images[0]):
            return "'input.image_urls' must hold exactly one http(s) URL."
    return None
