"""Emulator of Replicate's predictions API (RESELLERS_BEYOND_APIXO.md, section 2).

Routes (``base_url`` = REPLICATE_BASE_URL ends in /v1):
  POST /v1/models/{owner}/{name}/predictions   {input, webhook?, webhook_events_filter?}
       -> 201 the prediction (status "starting")
  GET  /v1/predictions/{id}                    the prediction: starting -> processing ->
       succeeded (output: one URL; a list with ``output_as_list``) | failed (error; E005 for
       a content refusal) | canceled; outputs are removed ``retention_s`` after it ends
  POST /v1/predictions/{id}/cancel             the prediction, canceled if it had not ended
  GET  /v1/webhooks/default/secret             {"key": "whsec_..."}
  GET  /files/{id}.mp4                         the video (no auth)
Errors: 401 {"title": "Unauthenticated", ...}, 402 insufficient credit, 404 unknown model,
422 {"title": "Input validation failed", "invalid_fields": [...]}, 429 "Request was
throttled. Your rate limit resets in ~N s." Each model's input is checked (``schemas``).
Webhooks carry the prediction, signed as Standard Webhooks (``signed``); the completed
event, and a "starting" event before it with ``send_start_event``.
"""

from __future__ import annotations

import time
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
    small_dims,
)
from .schemas import REPLICATE_MODELS, check, replicate_rules
from .signed import StandardSigner

CONTENT_ERROR = ("The input or output was flagged as sensitive. Please try again with "
                 "different inputs. (E005)")
SIZES = {"16:9": (1280, 720), "9:16": (720, 1280), "1:1": (720, 720)}


def _iso(stamp: float | None) -> str | None:
    return None if stamp is None else datetime.fromtimestamp(stamp, UTC).isoformat()


class FakeReplicate(FakeProvider):
    """Replicate emulator. Beyond FakeProvider's switches:

    content_policy_word: a prompt containing it fails with E005.
    throttle_creates: the next N creates answer 429 "resets in ~throttle_s s" (a
        Retry-After header too with ``throttle_retry_after``).
    output_as_list, retention_s, send_start_event, webhook_signing (see ``signed``).
    signer.rotate(); secret_fetches counts reads of the secret.
    """

    def __init__(self, api_key: str | None = None, **kw: Any) -> None:
        super().__init__(api_key, **kw)
        self.content_policy_word = "forbidden-topic"
        self.throttle_creates = 0
        self.throttle_s = 1
        self.throttle_retry_after = False
        self.output_as_list = False
        self.retention_s = 3600.0
        self.send_start_event = True
        self.webhook_signing = "valid"
        self.signer = StandardSigner()
        self.secret_fetches = 0

    @property
    def base(self) -> str:  # the host, without /v1
        return self.base_url.removesuffix("/v1")

    async def start(self) -> FakeReplicate:
        await super().start()
        self.base_url += "/v1"
        return self

    def file_url(self, task: FakeTask) -> str:
        return f"{self.base}/files/{task.id}.mp4"

    def setup_routes(self, router: web.UrlDispatcher) -> None:
        self.route("POST", "/v1/models/{owner}/{name}/predictions", SUBMIT, self._create)
        self.route("GET", "/v1/predictions/{id}", STATUS, self._get)
        self.route("POST", "/v1/predictions/{id}/cancel", OTHER, self._cancel)
        self.route("GET", "/v1/webhooks/default/secret", OTHER, self._secret)

    def check_auth(self, request: web.Request) -> bool:
        return request.headers.get("Authorization", "") == f"Bearer {self.api_key}"

    def error(self, kind: str, message: str | None = None,
              status: int | None = None) -> web.Response:
        table = {"auth": (401, "Unauthenticated", "You did not pass a valid authentication "
                          "token"),
                 "forbidden": (403, "Forbidden", "You do not have permission"),
                 "balance": (402, "Insufficient credit", "You have insufficient credit to run "
                             "this model. Go to https://replicate.com/account/billing to "
                             "purchase credit."),
                 "rate_limit": (429, "Too many requests", "Request was throttled."),
                 "not_found": (404, "Not found", "The requested resource does not exist"),
                 "model": (404, "Not found", "The requested model does not exist"),
                 "bad_request": (400, "Bad request", "Invalid request"),
                 "server": (500, "Internal server error", "Something went wrong")}
        code, title, detail = table[kind]
        code = status or code
        return web.json_response({"title": title, "detail": message or detail,
                                  "status": code}, status=code)

    async def _secret(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        self.secret_fetches += 1
        return web.json_response({"key": self.signer.secret})

    def rotate_secret(self) -> None:
        self.signer.rotate()

    # ----- predictions -----------------------------------------------------------------
    async def _create(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        model = f"{request.match_info['owner']}/{request.match_info['name']}"
        schema = REPLICATE_MODELS.get(model)
        if schema is None or model in self.retired_models:
            return self.error("model")
        if self.throttle_creates > 0:
            self.throttle_creates -= 1
            response = self.error("rate_limit", f"Request was throttled. Your rate limit "
                                                f"resets in ~{self.throttle_s}s.")
            if self.throttle_retry_after:
                response.headers["Retry-After"] = str(self.throttle_s)
            return response
        if self.balance_exhausted:
            return self.error("balance")
        body = rec.json if isinstance(rec.json, dict) else {}
        inp = body.get("input")
        problems = check(schema, inp)
        rule = replicate_rules(model, inp) if isinstance(inp, dict) and not problems else None
        if problems or rule:
            fields = [{"type": p["type"], "field": p["loc"][-1], "description": p["msg"]}
                      for p in problems]
            return web.json_response({"title": "Input validation failed", "status": 422,
                                      "detail": rule or "; ".join(
                                          f"{f['field']}: {f['description']}" for f in fields),
                                      "invalid_fields": fields}, status=422)
        assert isinstance(inp, dict)
        image: ImageInfo | None = None
        for name in schema.images:
            if name in inp:
                try:
                    image = image or await self.fetch_image(inp[name])
                except ImageProblem as exc:
                    return web.json_response({"title": "Input validation failed",
                                              "status": 422, "detail": f"{name}: {exc}",
                                              "invalid_fields": [{"field": name}]}, status=422)
        outcome = self.outcome
        if self.content_policy_word and self.content_policy_word in inp.get("prompt", ""):
            outcome = "content"
        webhook = body.get("webhook")
        events = body.get("webhook_events_filter") or ["start", "output", "logs", "completed"]
        task = self.new_task(
            uuid.uuid4().hex[:26], model, body, outcome=outcome,
            duration=int(inp.get("duration", 6 if "hailuo" in model else 5)),
            video_size=small_dims(*SIZES.get(inp.get("aspect_ratio", ""), _image_size(image))),
            image_info=image, prompt=inp.get("prompt", ""),
            callback_urls=[webhook] if isinstance(webhook, str) else [],
            extra={"events": events, "canceled": False},
        )
        await self.accept(task)
        if webhook and (self.send_start_event or "start" in events):
            self._send_start(task, webhook)
        return web.json_response(self.prediction(task), status=201)

    def _send_start(self, task: FakeTask, url: str) -> None:
        starting = self.prediction(task, phase="queued")
        self._spawn(self._deliver(task, url, starting, "start", 0))

    def _task(self, request: web.Request) -> FakeTask | None:
        return self.tasks.get(request.match_info["id"])

    async def _get(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        task = self._task(request)
        if task is None:
            return self.error("not_found")
        return web.json_response(self.prediction(task))

    async def _cancel(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        task = self._task(request)
        if task is None:
            return self.error("not_found")
        if task.phase() != "done":
            task.outcome = "canceled"
            self.finish_now(task.id)
        return web.json_response(self.prediction(task))

    def prediction(self, task: FakeTask, phase: str | None = None) -> dict[str, Any]:
        phase = phase or task.phase()
        where = f"{self.base_url}/predictions/{task.id}"
        doc: dict[str, Any] = {
            "id": task.id, "model": task.model, "version": "official",
            "input": task.body.get("input"), "output": None, "error": None, "logs": "",
            "status": {"queued": "starting", "processing": "processing"}.get(phase),
            "created_at": _iso(task.created_wall),
            "started_at": _iso(task.created_wall + task.queue_s) if phase != "queued" else None,
            "completed_at": None, "data_removed": False, "metrics": {},
            "urls": {"get": where, "cancel": f"{where}/cancel", "web": "https://replicate.com"},
        }
        if phase != "done":
            return doc
        doc["completed_at"] = _iso(task.completed_wall)
        doc["metrics"] = {"predict_time": task.task_s - task.queue_s}
        if task.outcome == "success":
            doc["status"] = "succeeded"
            doc["output"] = [self.file_url(task)] if self.output_as_list else self.file_url(task)
        elif task.outcome == "canceled":
            doc["status"] = "canceled"
        else:
            doc["status"] = "failed"
            doc["error"] = CONTENT_ERROR if task.outcome == "content" else \
                "Prediction failed: the model could not generate a video."
        if time.time() > task.completed_wall + self.retention_s:
            doc.update(output=None, input=None, data_removed=True)
        return doc

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        task = self.tasks.get(request.match_info["name"].removesuffix(".mp4"))
        if task is not None and time.time() > task.completed_wall + self.retention_s:
            return web.Response(status=404, text="Not Found")
        return await super()._handle_file(request)

    # ----- webhooks --------------------------------------------------------------------
    def callback_payload(self, task: FakeTask, outcome: str) -> dict[str, Any]:
        return self.prediction(task, phase="done")

    def webhook_request(self, task: FakeTask, payload: dict[str, Any],
                        event: str) -> tuple[bytes, dict[str, str]]:
        body, _ = super().webhook_request(task, payload, event)
        return self.signer.sign(f"msg_{task.id}_{event}", body, self.webhook_signing)


def _image_size(image: ImageInfo | None) -> tuple[int, int]:
    if image is None:
        return 1280, 720
    return (1280, 720) if image.width >= image.height else (720, 1280)
