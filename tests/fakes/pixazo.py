"""Emulator of the Pixazo gateway's Sora video API (seed 003).

Routes (the client's base URL is ``base_url``, i.e. the gateway root):
  POST /sora-video/v1/video/generate       text-to-video   -> 202 {request_id,status,polling_url}
  POST /sora-video/v1/video/i2v/generate   image-to-video  -> 202 {request_id,status,polling_url}
  GET  /v2/requests/status/{request_id}    -> {request_id,status,model_id,error,output,...}
  POST /sora-video/v1/video/result {"video_id"}  older call -> {id,status,video_url,...}
  GET  /files/{request_id}.mp4             -> the result video (no auth)
Auth header: Ocp-Apim-Subscription-Key. Errors: {"error": ..., "message": ...}.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

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

ERRORS = {  # kind -> (status, error, message)
    "bad_request": (400, "Bad Request", "Invalid request"),
    "model": (400, "Model not found", "Model 'sora-video' not found or is disabled"),
    "auth": (401, "Unauthorized", "Access denied due to missing or invalid subscription key."),
    "balance": (402, "Insufficient Balance", "Your wallet does not have enough balance."),
    "forbidden": (403, "Forbidden", "Access to this API is forbidden for this subscription."),
    "not_found": (404, "Not Found", "Request not found"),
    "rate_limit": (429, "Too Many Requests", "Rate limit is exceeded. Try again later."),
    "server": (500, "Internal Server Error", "An unexpected error occurred."),
}
SIZES = ("1280x720", "720x1280", "1792x1024", "1024x1792")
SECONDS = (4, 8, 12)
MODEL_ID = "sora-video"  # the gateway's model_id in status documents
FAIL_MESSAGES = {"FAILED": "Video generation failed", "ERROR": "Description of the error"}
OLD_STATUS = {"queued": "queued", "processing": "in_progress"}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FakePixazo(FakeProvider):
    """Pixazo emulator. Extra attributes beyond FakeProvider:

    models: accepted ``model`` values (default {"sora-2-pro"}, also the default when the body
        has none); others, or ones in ``retired_models``, answer 400 Model not found.
        Putting "sora-video" in ``retired_models`` disables the whole gateway model.
    default_size / default_seconds: used when a text-to-video body omits them (1280x720, 4).
    error_message: the ``error`` string of FAILED/ERROR tasks (default per status).
    media_type: ``output.media_type`` of completed tasks (default "application/octet-stream",
        as the seed's example shows).
    Callbacks, as seed 003 describes them: the ``X-Webhook-URL`` header asks the queue
    system for a webhook carrying the status document (keyed by ``request_id``); the body's
    ``callback_url`` gets "the video details", here in the shape of the older result call
    (keyed by the model's ``video_id``). A request with both gets both callbacks.
    ``outcome``: "success", "FAILED" or "ERROR"; any other string fails the task (FAILED)
        with that string as its ``error``.
    """

    def __init__(self, api_key: str | None = None, **kw: Any) -> None:
        super().__init__(api_key, **kw)
        self.models: set[str] = {"sora-2-pro"}
        self.default_size = "1280x720"
        self.default_seconds = 4
        self.error_message: str | None = None
        self.media_type = "application/octet-stream"

    def setup_routes(self, router: web.UrlDispatcher) -> None:
        self.route("POST", "/sora-video/v1/video/generate", SUBMIT, self._create_t2v)
        self.route("POST", "/sora-video/v1/video/i2v/generate", SUBMIT, self._create_i2v)
        self.route("GET", "/v2/requests/status/{request_id}", STATUS, self._status)
        self.route("POST", "/sora-video/v1/video/result", STATUS, self._old_result)

    def check_auth(self, request: web.Request) -> bool:
        key = request.headers.get("Ocp-Apim-Subscription-Key", "")
        return bool(key) and key == self.api_key

    def error(
        self, kind: str, message: str | None = None, status: int | None = None
    ) -> web.Response:
        default_status, err, default_message = ERRORS[kind]
        body = {"error": err, "message": message or default_message}
        return web.json_response(body, status=status or default_status)

    def _failure(self, outcome: str) -> tuple[str, str]:
        if outcome in FAIL_MESSAGES:
            return outcome, self.error_message or FAIL_MESSAGES[outcome]
        return "FAILED", self.error_message or outcome

    def render(self, task: FakeTask, phase: str, outcome: str) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "request_id": task.id,
            "status": "QUEUED" if phase == "queued" else "PROCESSING",
            "model_id": MODEL_ID,
            "error": None,
            "output": None,
            "created_at": iso(task.created_wall),
            "updated_at": iso(task.created_wall + (task.queue_s if phase != "queued" else 0)),
            "completed_at": None,
        }
        if phase == "done":
            doc["updated_at"] = doc["completed_at"] = iso(task.completed_wall)
            if outcome == "success":
                doc["status"] = "COMPLETED"
                doc["output"] = {"media_url": [self.file_url(task)], "media_type": self.media_type}
            else:
                doc["status"], doc["error"] = self._failure(outcome)
        return doc

    def callback_payloads(self, task: FakeTask, outcome: str) -> list[tuple[str, dict[str, Any]]]:
        sends: list[tuple[str, dict[str, Any]]] = []
        if task.extra.get("webhook"):
            sends.append((task.extra["webhook"], self.render(task, "done", outcome)))
        if task.extra.get("details_callback"):
            sends.append((task.extra["details_callback"], self._video_details(task, outcome)))
        return sends

    # ----- handlers ------------------------------------------------------------------------
    async def _create_t2v(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        return await self._create(request, rec, i2v=False)

    async def _create_i2v(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        return await self._create(request, rec, i2v=True)

    async def _create(
        self, request: web.Request, rec: RecordedRequest, *, i2v: bool
    ) -> web.Response:
        body = rec.json
        if not self.is_json_request(request) or not isinstance(body, dict):
            return self.error("bad_request", "Request body must be a JSON object")
        model = body.get("model", "sora-2-pro")
        if (
            not isinstance(model, str)
            or model not in self.models
            or model in self.retired_models
            or MODEL_ID in self.retired_models
        ):
            return self.error("model", f"Model '{model}' not found or is disabled")
        problem = validate(body, i2v=i2v)
        if problem:
            return self.error("bad_request", problem)
        webhook, details = request.headers.get("X-Webhook-URL"), body.get("callback_url")
        callback_urls = [u for u in (webhook, details) if u]
        if not all(is_http_url(u) for u in callback_urls):
            return self.error("bad_request", "callback_url / X-Webhook-URL must be http(s) URLs")
        if self.balance_exhausted:
            return self.error("balance")
        size = body.get("size", self.default_size)
        image: ImageInfo | None = None
        if i2v:
            try:
                image = await self.fetch_image(body["image"], allow_data_uri=True)
            except ImageProblem as exc:
                return self.error("bad_request", f"image: {exc}")
            image_size = f"{image.width}x{image.height}"
            if image_size not in SIZES:
                return self.error(
                    "bad_request",
                    f"Unsupported image dimensions {image_size}; must be exactly one of "
                    + ", ".join(SIZES),
                )
            if "size" in body and body["size"] != image_size:
                return self.error(
                    "bad_request", f"size {body['size']} does not match image {image_size}"
                )
            size = image_size
        width, height = (int(v) for v in size.split("x"))
        task = self.new_task(
            f"sora-video_{uuid.uuid4()}",
            model,
            body,
            duration=body.get("seconds", self.default_seconds),
            video_size=small_dims(width, height),
            image_info=image,
            prompt=body["prompt"],
            callback_urls=callback_urls,
            extra={"size": size, "video_id": f"video_{uuid.uuid4().hex}",
                   "webhook": webhook, "details_callback": details},
        )
        await self.accept(task)
        polling_url = f"{self.base_url}/v2/requests/status/{task.id}"
        reply = {"request_id": task.id, "status": "QUEUED", "polling_url": polling_url}
        return web.json_response(reply, status=202)

    async def _status(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        task = self.tasks.get(request.match_info["request_id"])
        if task is None:
            return self.error("not_found", "Request not found")
        return web.json_response(self.render(task, task.phase(), task.outcome))

    async def _old_result(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        video_id = rec.json.get("video_id") if isinstance(rec.json, dict) else None
        if not isinstance(video_id, str) or not video_id:
            return self.error("bad_request", "video_id is required")
        task = self.tasks.get(video_id) or next(
            (t for t in self.tasks.values() if t.extra.get("video_id") == video_id), None
        )
        if task is None:
            return self.error("not_found", "Video not found")
        doc = self._video_details(task, task.outcome, task.phase())
        doc["id"] = video_id
        return web.json_response(doc)

    def _video_details(self, task: FakeTask, outcome: str, phase: str = "done") -> dict[str, Any]:
        """The older result call's document: keyed by the model's video id."""
        doc: dict[str, Any] = {
            "id": task.extra["video_id"],
            "status": OLD_STATUS.get(phase, "completed"),
            "model": task.model,
            "prompt": task.prompt,
            "created_at": int(task.created_wall * 1000),
        }
        if phase == "done":
            doc["completed_at"] = int(task.completed_wall * 1000)
            if outcome == "success":
                doc["video_url"] = self.file_url(task)
            else:
                doc["status"] = "failed"
                doc["error"] = self._failure(outcome)[1]
            doc["metadata"] = {
                "total_attempts": 1,
                "polling_duration_seconds": round(task.task_s),
            }
        return doc


def validate(body: dict[str, Any], *, i2v: bool) -> str | None:
    """Return a 400 message, or None when the body follows the document."""
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return "prompt is required"
    if "seconds" in body and (not is_int(body["seconds"]) or body["seconds"] not in SECONDS):
        return "seconds must be the integer 4, 8 or 12"
    if "size" in body and body["size"] not in SIZES:
        return "size must be one of " + ", ".join(SIZES)
    if i2v:
        image = body.get("image")
        if not isinstance(image, str) or not image:
            return "image is required"
        if not (is_http_url(image) or image.startswith("data:image/")):
            return "image must be an http(s) URL or a data:image/...;base64 URI"
    elif "image" in body:
        return "image is only accepted by /video/i2v/generate"
    return None
