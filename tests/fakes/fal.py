"""Emulator of fal.ai's queue API (RESELLERS_BEYOND_APIXO.md, section 1).

Routes (``base_url`` is FAL_BASE_URL, the queue host; ``jwks_url`` is FAL_JWKS_URL):
  POST /{endpoint_id}[?fal_webhook=URL]         the model input as the body (``fal_models``)
       -> 200 {request_id, gateway_request_id, response_url, status_url, cancel_url}; the
          URLs drop the endpoint's sub-path: /{owner}/{app}/requests/{id}
  GET  /{owner}/{app}/requests/{id}/status      IN_QUEUE (+queue_position, 0-based) |
       IN_PROGRESS | COMPLETED (+metrics); a failed or cancelled request ends COMPLETED too.
       ``logs`` is a list with ``?logs=1``, else null.
  GET  /{owner}/{app}/requests/{id}             the result: 200 {"video": {url, content_type,
       file_name, file_size}, "seed"}; a content refusal 422 {"detail": [{"type":
       "content_policy_violation", ...}]}; a model failure 500 {"detail", "error_type":
       "runner_server_error"} (header X-Fal-Error-Type); before the end 400 {"detail":
       "Request is still in progress"}; cancelled 400 {"detail": "Request was cancelled"}
  PUT  /{owner}/{app}/requests/{id}/cancel      202 CANCELLATION_REQUESTED | 400
       ALREADY_COMPLETED | 404 NOT_FOUND
  GET  /.well-known/jwks.json                   the webhook keys (no auth)
  GET  /files/{id}.mp4                          the video (no auth: fal's CDN)
Auth ``Authorization: Key <key>``: 401 {"detail"} otherwise. Out of credit: 403 "User is
locked. Reason: Exhausted balance. ..."; ``forbidden``: 403 that is not a lock. Unknown (or
retired) endpoint: 404. A bad input: 422 {"detail": [{"loc": ["body", field], "msg",
"type"}]}, and so is an image that does not load. Webhooks: {request_id, gateway_request_id,
status: "OK"|"ERROR", payload, error (on ERROR)}, signed with ED25519 (``signed``).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
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
    make_mp4,
    small_dims,
)
from .fal_models import ENDPOINTS
from .schemas import check, problem
from .signed import Ed25519Signer

LOCKED = ("User is locked. Reason: Exhausted balance. Top up your balance at "
          "fal.ai/dashboard/billing.")
USER_ID = "fal-user-7"
ERROR_TYPES = {500: "internal_error", 502: "runner_incomplete_response",
               503: "runner_disconnected", 504: "request_timeout"}
DETAILS = {"auth": "No user found for Key ID and Secret",
           "forbidden": "Access denied: this key cannot use this application",
           "balance": LOCKED, "rate_limit": "Too many requests",
           "not_found": "Request not found", "model": "Application not found",
           "bad_request": "Bad request"}
STATUSES = {"auth": 401, "forbidden": 403, "balance": 403, "rate_limit": 429, "server": 500,
            "bad_request": 400, "not_found": 404, "model": 404}


class FakeFal(FakeProvider):
    """fal.ai emulator. Beyond FakeProvider's switches and records:

    outcome / task.outcome: "success", "content" (content_policy_violation at the result),
        "failed" (500 runner_server_error); a cancelled request has "cancelled".
    content_policy_word: a prompt containing it ends with the content refusal.
    content_categories: the refusal's ``ctx.categories``.
    honour_cancel_running: a running request stops (as cancelled) when cancelled; by
        default it only gets the signal and runs on to its outcome.
    webhook_signing: "valid" | "none" | "wrong" | "stale" | "tampered" (see ``signed``).
    callback_mode "early": the request is done at once and its webhook comes before the
        submit reply, then again as usual.
    rotate_key(): a new key and kid (the JWKS lists only it); jwks_fetches counts reads.
    cancels: the request ids a cancel was asked for (known ones).
    Each task keeps the endpoint id (``task.model``), the input as sent (``task.body``) and
    the webhook URL asked for (``task.extra["webhook"]``, None without).
    """

    def __init__(self, api_key: str | None = None, **kw: Any) -> None:
        super().__init__(api_key, **kw)
        self.content_policy_word = "forbidden-topic"
        self.content_categories = ["violence"]
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
        code = status or STATUSES[kind]
        if code >= 500:
            error_type = ERROR_TYPES.get(code, "internal_error")
            response = web.json_response({"detail": message or "Internal server error",
                                          "error_type": error_type}, status=code)
            response.headers["X-Fal-Error-Type"] = error_type
            return response
        return web.json_response({"detail": message or DETAILS[kind]}, status=code)

    @staticmethod
    def invalid(problems: list[dict[str, Any]]) -> web.Response:
        return web.json_response({"detail": problems}, status=422,
                                 headers={"X-Fal-Retryable": "false"})

    async def _jwks(self, request: web.Request) -> web.Response:
        self.jwks_fetches += 1
        return web.json_response(self.signer.jwks())

    # ----- the queue -------------------------------------------------------------------
    async def _submit(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        endpoint_id = request.match_info["endpoint"]
        endpoint = ENDPOINTS.get(endpoint_id)
        if endpoint is None or endpoint_id in self.retired_models:
            return self.error("model", f"Application '{endpoint_id}' not found")
        if self.balance_exhausted:
            return self.error("balance")
        webhook = request.query.get("fal_webhook")
        if webhook is not None and not is_http_url(webhook):
            return self.invalid([{"loc": ["query", "fal_webhook"],
                                  "msg": "Input should be a valid URL", "type": "url_parsing"}])
        body = rec.json
        problems = check(endpoint.schema, body)
        if problems:
            return self.invalid(problems)
        assert isinstance(body, dict)
        image: ImageInfo | None = None
        for name, ref, data_ok in endpoint.schema.image_refs(body):
            try:
                info = await self.fetch_image(ref, allow_data_uri=data_ok,
                                              max_bytes=endpoint.schema.max_image_bytes)
            except ImageProblem as exc:
                return self.invalid([problem(name, str(exc), "image_load_error")])
            image = image or info
        outcome = self.outcome
        if self.content_policy_word and self.content_policy_word in body.get("prompt", ""):
            outcome = "content"
        app = "/".join(endpoint_id.split("/")[:2])
        size = endpoint.size(body, image)
        task = self.new_task(
            str(uuid.uuid4()), endpoint_id, body, outcome=outcome,
            duration=endpoint.seconds(body), video_size=small_dims(*size), image_info=image,
            prompt=body.get("prompt", ""), callback_urls=[webhook] if webhook else [],
            extra={"app": app, "webhook": webhook, "frame": size},
        )
        await self.accept(task)
        where = self._where(task)
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
        logs = self._logs(task, phase) if request.query.get("logs") == "1" else None
        if phase == "queued":
            ahead = sum(1 for t in self.tasks.values()
                        if t.phase() == "queued" and t.created_mono < task.created_mono)
            return web.json_response({"status": "IN_QUEUE", "queue_position": ahead,
                                      "response_url": self._where(task)})
        if phase == "processing":
            return web.json_response({"status": "IN_PROGRESS", "logs": logs,
                                      "response_url": self._where(task)})
        return web.json_response({"status": "COMPLETED", "logs": logs,
                                  "metrics": {"inference_time": task.task_s - task.queue_s},
                                  "response_url": self._where(task)})

    def _where(self, task: FakeTask) -> str:
        return f"{self.base_url}/{task.extra['app']}/requests/{task.id}"

    @staticmethod
    def _logs(task: FakeTask, phase: str) -> list[dict[str, str]]:
        if phase == "queued":
            return []
        stamp = datetime.fromtimestamp(task.created_wall + task.queue_s, UTC).isoformat()
        lines = ["Starting generation"] + (["Generation finished"] if phase == "done" else [])
        return [{"message": line, "level": "INFO", "source": "user", "timestamp": stamp}
                for line in lines]

    async def _result(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        task = self._task(request)
        if task is None:
            return self.error("not_found")
        if task.phase() != "done":
            return web.json_response({"detail": "Request is still in progress"}, status=400)
        await self.prepare_result(task)
        status, payload = self.outcome_of(task)
        response = web.json_response(payload, status=status)
        if status >= 500:
            response.headers["X-Fal-Error-Type"] = payload["error_type"]
        elif status == 422:
            response.headers["X-Fal-Retryable"] = "false"
        return response

    async def _file_size(self, task: FakeTask) -> int:
        if self.video_file is not None:
            return self.video_file.stat().st_size
        if self.video_bytes is not None:
            return len(self.video_bytes)
        made = await asyncio.to_thread(make_mp4, float(task.duration), *task.video_size)
        return len(made)

    def outcome_of(self, task: FakeTask) -> tuple[int, dict[str, Any]]:
        """The HTTP status and body of a finished request's result."""
        if task.outcome == "success":
            return 200, {"video": {"url": self.file_url(task), "content_type": "video/mp4",
                                   "file_name": f"{task.id}.mp4",
                                   "file_size": task.extra.get("file_size", 0)},
                         "seed": 42}
        if task.outcome == "content":
            return 422, {"detail": [{
                "loc": ["body", "prompt"],
                "msg": "The content could not be processed because it contained material "
                       "flagged by a content checker.",
                "type": "content_policy_violation",
                "url": "https://docs.fal.ai/errors#content_policy_violation",
                "ctx": {"categories": list(self.content_categories)},
                "input": task.prompt}]}
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
    async def accept(self, task: FakeTask) -> None:
        """``callback_mode="early"``: the request is done at once, so the webhook that beats
        the submit reply tells the truth (a signed webhook is believed); the usual one
        follows as a repeat."""
        if self.callback_mode == "early" and task.callback_urls:
            task.queue_s = task.task_s = 0.0
            await self.prepare_result(task)
        await super().accept(task)

    def callback_payload(self, task: FakeTask, outcome: str) -> dict[str, Any]:
        status, payload = self.outcome_of(task)
        doc: dict[str, Any] = {"request_id": task.id, "gateway_request_id": task.id,
                               "status": "OK" if status == 200 else "ERROR",
                               "payload": payload}
        if status != 200:
            doc["error"] = f"Invalid status code: {status}"
        return doc

    async def prepare_result(self, task: FakeTask) -> None:
        if task.outcome == "success" and "file_size" not in task.extra:
            task.extra["file_size"] = await self._file_size(task)

    def webhook_request(self, task: FakeTask, payload: dict[str, Any],
                        event: str) -> tuple[bytes, dict[str, str]]:
        body, _ = super().webhook_request(task, payload, event)
        return self.signer.sign(task.id, USER_ID, body, self.webhook_signing)
