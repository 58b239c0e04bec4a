"""Emulator of fal.ai's queue API (RESELLERS_BEYOND_APIXO.md, section 1).

Routes (``base_url`` is FAL_BASE_URL; ``jwks_url`` is FAL_JWKS_URL):
  POST /{endpoint_id}[?fal_webhook=URL]         the model input as the body
       -> {request_id, gateway_request_id, status_url, response_url, cancel_url}; the
          URLs drop the endpoint's sub-path: /{owner}/{app}/requests/{id}
  GET  /{owner}/{app}/requests/{id}/status      IN_QUEUE (+queue_position) | IN_PROGRESS |
                                                COMPLETED (a failure ends COMPLETED too)
  GET  /{owner}/{app}/requests/{id}             the result: {"video": {...}}, or the error:
       422 {"detail": [{... "type": "content_policy_violation"}]}, 500 runner error
       (X-Fal-Error-Type), 400 "Request is still in progress" / "Request was cancelled"
  PUT  /{owner}/{app}/requests/{id}/cancel      202 CANCELLATION_REQUESTED |
                                                400 ALREADY_COMPLETED | 404 NOT_FOUND
  GET  /.well-known/jwks.json                   the webhook keys (no auth)
  GET  /files/{id}.mp4                          the video (no auth; fal's CDN)
Auth ``Authorization: Key <key>`` (401 otherwise). Out of credit: 403 "User is locked.
Reason: Exhausted balance. ..." Each endpoint's input is checked (``schemas``): 422.
Webhooks: {request_id, gateway_request_id, status: OK|ERROR, payload, error}, signed with
ED25519 (``signed``).
"""

from __future__ import annotations

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
    small_dims,
)
from .schemas import FAL_ENDPOINTS, check
from .signed import Ed25519Signer

LOCKED = ("User is locked. Reason: Exhausted balance. Top up your balance at "
          "fal.ai/dashboard/billing.")
SIZES = {"16:9": (1280, 720), "9:16": (720, 1280), "1:1": (720, 720)}
USER_ID = "fal-user-7"


class FakeFal(FakeProvider):
    """fal.ai emulator. Beyond FakeProvider's switches:

    content_policy_word: a prompt containing it ends with the content refusal.
    webhook_signing: "valid" | "none" | "wrong" | "stale" | "tampered".
    honour_cancel_running: a running request stops when cancelled (else it runs on).
    signer.rotate(): a new key (the JWKS then lists only it); jwks_fetches counts reads.
    cancels: the request ids a cancel was asked for.
    """

    def __init__(self, api_key: str | None = None, **kw: Any) -> None:
        super().__init__(api_key, **kw)
        self.content_policy_word = "forbidden-topic"
        self.webhook_signing = "valid"
        self.honour_cancel_running = False
        self.signer = Ed25519Signer()
        self.jwks_fetches = 0
        self.cancels: list[str] = []

    @property
    def jwks_url(self) -> str:
        return f"{self.base_url}/.well-known/jwks.json"

    def rotate_key(self) -> None:
        self.signer.rotate()

    def setup_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/.well-known/jwks.json", self._jwks)
        self.route("GET", "/{owner}/{app}/requests/{id}/status", STATUS, self._status)
        self.route("GET", "/{owner}/{app}/requests/{id}", STATUS, self._result)
        self.route("PUT", "/{owner}/{app}/requests/{id}/cancel", OTHER, self._cancel)
        self.route("POST", "/{endpoint:.+}", SUBMIT, self._submit)

    def check_auth(self, request: web.Request) -> bool:
        return request.headers.get("Authorization", "") == f"Key {self.api_key}"

    def error(self, kind: str, message: str | None = None,
              status: int | None = None) -> web.Response:
        statuses = {"auth": 401, "forbidden": 403, "balance": 403, "rate_limit": 429,
                    "server": 500, "bad_request": 400, "not_found": 404, "model": 404}
        code = status or statuses[kind]
        text = message or {"auth": "No user found for Key ID and Secret",
                           "forbidden": "This key cannot access this application",
                           "balance": LOCKED, "rate_limit": "Too many requests",
                           "not_found": "Request not found",
                           "model": "Application not found"}.get(kind, "Internal error")
        response = web.json_response({"detail": text}, status=code)
        if code >= 500:
            response.headers["X-Fal-Error-Type"] = "internal_error"
        return response

    async def _jwks(self, request: web.Request) -> web.Response:
        self.jwks_fetches += 1
        return web.json_response(self.signer.jwks())

    # ----- the queue -------------------------------------------------------------------
    async def _submit(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        endpoint = request.match_info["endpoint"]
        schema = FAL_ENDPOINTS.get(endpoint)
        if schema is None:
            return self.error("model")
        if self.balance_exhausted:
            return self.error("balance")
        body = rec.json
        problems = check(schema, body)
        if problems:
            return web.json_response({"detail": problems}, status=422)
        assert isinstance(body, dict)
        image: ImageInfo | None = None
        for name in schema.images:
            if name not in body:
                continue
            try:
                info = await self.fetch_image(body[name])
            except ImageProblem as exc:
                return web.json_response({"detail": [{"loc": ["body", name], "msg": str(exc),
                                                      "type": "image_load_error"}]}, status=422)
            image = image or info
        webhook = request.query.get("fal_webhook")
        outcome = self.outcome
        if self.content_policy_word and self.content_policy_word in body.get("prompt", ""):
            outcome = "content"
        app = "/".join(endpoint.split("/")[:2])
        task = self.new_task(
            str(uuid.uuid4()), endpoint, body, outcome=outcome, duration=_length(endpoint, body),
            video_size=small_dims(*_size(body, image)), image_info=image,
            prompt=body.get("prompt", ""), callback_urls=[webhook] if webhook else [],
            extra={"app": app, "cancelled": False},
        )
        await self.accept(task)
        where = f"{self.base_url}/{app}/requests/{task.id}"
        return web.json_response({
            "request_id": task.id, "gateway_request_id": task.id, "response_url": where,
            "status_url": f"{where}/status", "cancel_url": f"{where}/cancel",
        })

    def _task(self, request: web.Request) -> FakeTask | None:
        task = self.tasks.get(request.match_info["id"])
        app = f"{request.match_info['owner']}/{request.match_info['app']}"
        return task if task is not None and task.extra.get("app") == app else None

    async def _status(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        task = self._task(request)
        if task is None:
            return self.error("not_found")
        phase = task.phase()
        if phase == "queued":
            ahead = sum(1 for t in self.tasks.values()
                        if t.phase() == "queued" and t.created_mono < task.created_mono)
            return web.json_response({"status": "IN_QUEUE", "queue_position": ahead})
        if phase == "processing":
            return web.json_response({"status": "IN_PROGRESS", "logs": []})
        return web.json_response({"status": "COMPLETED", "logs": [],
                                  "metrics": {"inference_time": task.task_s}})

    async def _result(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        task = self._task(request)
        if task is None:
            return self.error("not_found")
        if task.phase() != "done":
            return web.json_response({"detail": "Request is still in progress"}, status=400)
        status, payload = self.outcome_of(task)
        response = web.json_response(payload, status=status)
        if status >= 500:
            response.headers["X-Fal-Error-Type"] = "runner_server_error"
        return response

    def outcome_of(self, task: FakeTask) -> tuple[int, dict[str, Any]]:
        if task.outcome == "success":
            return 200, {"video": {"url": self.file_url(task), "content_type": "video/mp4",
                                   "file_name": f"{task.id}.mp4", "file_size": 250_000},
                         "seed": 42}
        if task.outcome == "content":
            return 422, {"detail": [{"loc": ["body", "prompt"],
                                     "msg": "The content could not be processed because it "
                                            "contained material flagged by a content checker.",
                                     "type": "content_policy_violation",
                                     "ctx": {"categories": ["violence"]}}]}
        if task.outcome == "cancelled":
            return 400, {"detail": "Request was cancelled"}
        return 500, {"detail": "The model failed to generate a video",
                     "error_type": "runner_server_error"}

    async def _cancel(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        task = self._task(request)
        if task is None:
            return web.json_response({"status": "NOT_FOUND"}, status=404)
        self.cancels.append(task.id)
        phase = task.phase()
        if phase == "done":
            return web.json_response({"status": "ALREADY_COMPLETED"}, status=400)
        if phase == "queued" or self.honour_cancel_running:
            task.outcome = "cancelled"
            self.finish_now(task.id)  # dropped: COMPLETED, with an error at response_url
        return web.json_response({"status": "CANCELLATION_REQUESTED"}, status=202)

    # ----- webhooks --------------------------------------------------------------------
    def callback_payload(self, task: FakeTask, outcome: str) -> dict[str, Any]:
        status, payload = self.outcome_of(task)
        doc: dict[str, Any] = {"request_id": task.id, "gateway_request_id": task.id,
                               "status": "OK" if status == 200 else "ERROR",
                               "payload": payload}
        if status != 200:
            doc["error"] = f"Invalid status code: {status}"
        return doc

    def webhook_request(self, task: FakeTask, payload: dict[str, Any],
                        event: str) -> tuple[bytes, dict[str, str]]:
        body, _ = super().webhook_request(task, payload, event)
        return self.signer.sign(task.id, USER_ID, body, self.webhook_signing)


def _length(endpoint: str, body: dict[str, Any]) -> int:
    duration = body.get("duration")
    if isinstance(duration, str):
        return int(duration.removesuffix("s"))
    if "/pro/" in endpoint and "hailuo" in endpoint:
        return 6  # Hailuo 2.3 Pro takes no duration: 6 s
    if "veo3.1" in endpoint:
        return 8
    return 6 if "hailuo" in endpoint else 5


def _size(body: dict[str, Any], image: ImageInfo | None) -> tuple[int, int]:
    aspect = body.get("aspect_ratio")
    if aspect in SIZES:
        return SIZES[aspect]
    if image is not None:
        return (1280, 720) if image.width >= image.height else (720, 1280)
    return SIZES["16:9"]
