"""Emulator of Replicate's predictions API (RESELLERS_BEYOND_APIXO.md, section 2).

Routes (``base_url`` = REPLICATE_BASE_URL ends in /v1):
  POST /v1/models/{owner}/{name}/predictions   {input, webhook?, webhook_events_filter?}
       -> 201 the prediction (status "starting"); inputs per model in ``replicate_models``
  GET  /v1/predictions/{id}                    the prediction: starting -> processing ->
       succeeded (output: one URL; a list with ``output_as_list``) | failed (error; "(E005)"
       for a content refusal) | canceled. ``retention_s`` after it ends, ``data_removed``
       turns true, input and output are null and the file answers 404.
  POST /v1/predictions/{id}/cancel             200 the prediction: canceled if it had not
       ended; a finished one comes back unchanged (still 200)
  GET  /v1/webhooks/default/secret             {"key": "whsec_..."}
  GET  /files/{id}.mp4                         the video (no auth)
Errors {"title", "detail", "status"}: 401 Unauthenticated, 402 Insufficient credit, 404
unknown model or prediction, 422 "Input validation failed" (+ invalid_fields [{type, field,
description}]; a bad image too), 429 "Request was throttled. Your rate limit resets in
~N s." (only "detail"). ``urls.stream`` and ``urls.web`` are named but not served.
Webhooks carry the prediction, signed as Standard Webhooks (``signed``).
"""

from __future__ import annotations

import asyncio
import hashlib
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
    is_http_url,
    small_dims,
)
from .replicate_models import MODELS
from .schemas import check
from .signed import StandardSigner

CONTENT_ERROR = ("The input or output was flagged as sensitive. Please try again with "
                 "different inputs. (E005)")
MODEL_ERROR = "Prediction failed: the model could not generate a video."
EVENTS = ("start", "output", "logs", "completed")
ERRORS = {
    "auth": (401, "Unauthenticated", "You did not pass a valid authentication token"),
    "forbidden": (403, "Forbidden", "You do not have permission to perform this action."),
    "balance": (402, "Insufficient credit", "You have insufficient credit to run this model. "
                "Go to https://replicate.com/account/billing to purchase credit."),
    "rate_limit": (429, "Too many requests", "Request was throttled."),
    "not_found": (404, "Not found", "The requested resource could not be found."),
    "model": (404, "Not found", "The requested model could not be found."),
    "bad_request": (400, "Bad request", "The request could not be understood."),
    "server": (500, "Internal server error", "Something went wrong."),
}
FIELD_TYPES = {"missing": "required", "extra_forbidden": "additional_property_not_allowed",
               "literal_error": "enum", "image_load_error": "invalid_file"}


def _iso(stamp: float | None) -> str | None:
    return None if stamp is None else datetime.fromtimestamp(stamp, UTC).isoformat()


def invalid_field(kind: str, name: str, description: str) -> dict[str, str]:
    return {"type": FIELD_TYPES.get(kind, "invalid_type"), "field": f"input.{name}",
            "description": f"{name}: {description}"}


class FakeReplicate(FakeProvider):
    """Replicate emulator. Beyond FakeProvider's switches and records:

    outcome / task.outcome: "success", "content" (failed with E005), "failed" (failed with
        another error); a cancelled prediction has "canceled".
    content_policy_word: a prompt containing it fails with E005.
    throttle_creates: the next N creates answer 429 "... resets in ~{throttle_s}s." (with a
        Retry-After header too when ``throttle_retry_after``).
    output_as_list: ``output`` is [url] instead of url.
    retention_s: seconds after the end until the data is removed (default 3600).
    send_start_event: also send a "starting" event before the final one, whatever the
        filter (default True); without the filter only the completed event is sent.
    callback_mode "early": the prediction is done at once and its completed event comes
        before the create reply (no start event), then again as usual.
    webhook_signing: "valid" | "none" | "wrong" | "stale" | "tampered" (see ``signed``).
    rotate_secret(); secret_fetches counts reads of the secret; cancels lists the ids.
    Each task keeps the model (``task.model``), the whole body (``task.body``: its
    "input" as sent), the webhook (``task.extra["webhook"]``) and its events filter.
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
        self.cancels: list[str] = []

    @property
    def host(self) -> str:
        """The emulator's root (``base_url`` without /v1)."""
        return self.base_url.removesuffix("/v1")

    async def start(self) -> FakeReplicate:
        await super().start()
        self.base_url += "/v1"
        return self

    def file_url(self, task: FakeTask) -> str:
        return f"{self.host}/files/{task.id}.mp4"

    def setup_routes(self, router: web.UrlDispatcher) -> None:
        self.route("POST", "/v1/models/{owner}/{name}/predictions", SUBMIT, self._create)
        self.route("GET", "/v1/predictions/{id}", STATUS, self._get)
        self.route("POST", "/v1/predictions/{id}/cancel", OTHER, self._cancel)
        self.route("GET", "/v1/webhooks/default/secret", OTHER, self._secret)

    def check_auth(self, request: web.Request) -> bool:
        return request.headers.get("Authorization", "") == f"Bearer {self.api_key}"

    def error(self, kind: str, message: str | None = None,
              status: int | None = None) -> web.Response:
        code, title, detail = ERRORS[kind]
        code = status or code
        return web.json_response({"title": title, "detail": message or detail,
                                  "status": code}, status=code)

    @staticmethod
    def invalid(fields: list[dict[str, str]]) -> web.Response:
        detail = "".join(f"- {f['description']}\n" for f in fields)
        return web.json_response({"title": "Input validation failed", "status": 422,
                                  "detail": detail, "invalid_fields": fields}, status=422)

    async def _secret(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        self.secret_fetches += 1
        return web.json_response({"key": self.signer.secret})

    def rotate_secret(self) -> None:
        """A new secret: webhooks are signed with it, and the secret route serves it."""
        self.signer.rotate()

    # ----- predictions -----------------------------------------------------------------
    async def _create(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        name = f"{request.match_info['owner']}/{request.match_info['name']}"
        model = MODELS.get(name)
        if model is None or name in self.retired_models:
            return self.error("model", f"Model {name} could not be found.")
        if self.throttle_creates > 0:
            self.throttle_creates -= 1
            response = web.json_response({"detail": f"Request was throttled. Your rate limit "
                                                    f"resets in ~{self.throttle_s}s."},
                                         status=429)
            if self.throttle_retry_after:
                response.headers["Retry-After"] = str(self.throttle_s)
            return response
        if self.balance_exhausted:
            return self.error("balance")
        body = rec.json
        if not isinstance(body, dict):
            return self.invalid([{"type": "invalid_type", "field": "body",
                                  "description": "the body must be a JSON object"}])
        problems = self._envelope(body)
        inp = body.get("input")
        if isinstance(inp, dict):
            problems += [invalid_field(p["type"], p["loc"][-1], p["msg"])
                         for p in check(model.schema, inp)]
        else:
            problems.append({"type": "required" if inp is None else "invalid_type",
                             "field": "input", "description": "input must be an object"})
        if not problems and isinstance(inp, dict) and (cross := model.cross(inp)):
            problems.append(invalid_field("value_error", *cross))
        if problems:
            return self.invalid(problems)
        assert isinstance(inp, dict)
        image: ImageInfo | None = None
        for field, ref, data_ok in model.schema.image_refs(inp):
            try:
                info = await self.fetch_image(ref, allow_data_uri=data_ok,
                                              max_bytes=model.schema.max_image_bytes)
            except ImageProblem as exc:
                return self.invalid([invalid_field("image_load_error", field, str(exc))])
            image = image or info
        outcome = self.outcome
        if self.content_policy_word and self.content_policy_word in inp.get("prompt", ""):
            outcome = "content"
        webhook = body.get("webhook")
        events = body.get("webhook_events_filter")
        size = model.size(inp, image)
        task = self.new_task(
            uuid.uuid4().hex[:26], name, body, outcome=outcome, duration=model.seconds(inp),
            video_size=small_dims(*size), image_info=image, prompt=inp.get("prompt", ""),
            callback_urls=[webhook] if webhook and self._wants(events, "completed") else [],
            extra={"webhook": webhook, "events": events, "frame": size},
        )
        early = self.callback_mode == "early" and bool(task.callback_urls)
        if early:  # done at once: the completed event beats the reply, and tells the truth
            task.queue_s = task.task_s = 0.0
        await self.accept(task)
        if webhook and not early and (self.send_start_event or (events and "start" in events)):
            starting = self.prediction(task, phase="queued")
            task.extra["start_event"] = self._spawn(
                self._deliver(task, webhook, starting, "start", 0))
        return web.json_response(self.prediction(task), status=201)

    @staticmethod
    def _envelope(body: dict[str, Any]) -> list[dict[str, str]]:
        problems = [invalid_field("extra_forbidden", key, "Additional property is not allowed")
                    for key in body if key not in ("input", "webhook", "webhook_events_filter")]
        if "webhook" in body and not is_http_url(body["webhook"]):
            problems.append(invalid_field("invalid_type", "webhook", "must be an http(s) URL"))
        events = body.get("webhook_events_filter")
        if events is not None and not (isinstance(events, list) and events
                                       and all(e in EVENTS for e in events)):
            problems.append(invalid_field("enum", "webhook_events_filter",
                                          f"must be a list of {', '.join(EVENTS)}"))
        for problem in problems:  # envelope fields are not under input.
            problem["field"] = problem["field"].removeprefix("input.")
        return problems

    @staticmethod
    def _wants(events: list[str] | None, event: str) -> bool:
        return events is None or event in events

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
        self.cancels.append(task.id)
        if task.phase() != "done":
            task.outcome = "canceled"
            self.finish_now(task.id)
        return web.json_response(self.prediction(task))

    def removed(self, task: FakeTask) -> bool:
        """Its data is gone (``retention_s`` after it ended)."""
        return task.phase() == "done" and time.time() > task.completed_wall + self.retention_s

    def prediction(self, task: FakeTask, phase: str | None = None) -> dict[str, Any]:
        """The prediction object as GET, the create reply and webhooks show it."""
        phase = phase or task.phase()
        where = f"{self.base_url}/predictions/{task.id}"
        doc: dict[str, Any] = {
            "id": task.id, "model": task.model,
            "version": hashlib.sha256(task.model.encode()).hexdigest(),
            "input": task.body.get("input"), "output": None, "error": None, "logs": "",
            "status": {"queued": "starting", "processing": "processing"}.get(phase),
            "created_at": _iso(task.created_wall),
            "started_at": _iso(task.created_wall + task.queue_s) if phase != "queued" else None,
            "completed_at": None, "data_removed": False, "metrics": {},
            "urls": {"get": where, "cancel": f"{where}/cancel",
                     "stream": f"{self.host}/stream/{task.id}",
                     "web": f"{self.host}/p/{task.id}"},
        }
        if phase == "processing":
            doc["logs"] = "Generating video...\n"
        if phase != "done":
            return doc
        doc["completed_at"] = _iso(task.completed_wall)
        doc["metrics"] = {"predict_time": round(task.task_s - task.queue_s, 3),
                          "total_time": round(task.task_s, 3)}
        doc["logs"] = "Generating video...\nDone.\n"
        if task.outcome == "success":
            doc["status"] = "succeeded"
            doc["output"] = [self.file_url(task)] if self.output_as_list else self.file_url(task)
        elif task.outcome == "canceled":
            doc["status"] = "canceled"
        else:
            doc["status"] = "failed"
            doc["error"] = CONTENT_ERROR if task.outcome == "content" else MODEL_ERROR
        if self.removed(task):
            doc.update(output=None, input=None, logs="", data_removed=True)
        return doc

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        task = self.tasks.get(request.match_info["name"].removesuffix(".mp4"))
        if task is not None and self.removed(task):
            await self._record(request)
            return web.Response(status=404, text="Not Found")
        return await super()._handle_file(request)

    # ----- webhooks --------------------------------------------------------------------
    def callback_payload(self, task: FakeTask, outcome: str) -> dict[str, Any]:
        return self.prediction(task)

    async def _deliver(self, task: FakeTask, url: str, payload: dict[str, Any], kind: str,
                       copy: int) -> None:
        start = task.extra.get("start_event")
        if kind != "start" and start is not None and not start.done():
            await asyncio.wait([start])  # the start event goes first
        await super()._deliver(task, url, payload, kind, copy)

    def webhook_request(self, task: FakeTask, payload: dict[str, Any],
                        event: str) -> tuple[bytes, dict[str, str]]:
        """One Standard Webhooks message per event: the same ``webhook-id`` on every retry
        and repeated copy of it."""
        body, _ = super().webhook_request(task, payload, event)
        kind = event.split("-", 1)[0]
        return self.signer.sign(f"msg_{task.id}_{kind}", body, self.webhook_signing)
