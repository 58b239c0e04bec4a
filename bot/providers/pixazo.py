"""Pixazo gateway (seed 003): Sora text/image-to-video and the universal status endpoint.

The status URL is always built from the configured base; the ``polling_url`` of a reply
is ignored so the subscription key never goes to a host a reply names.

Callbacks are asked for with the ``X-Webhook-URL`` header only: the seed documents its
payload (the status document, "Error via Status/Webhook", keyed by ``request_id``). The
body's ``callback_url`` would add a second callback whose payload the seed describes only
as "the video details", so it is never sent.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.catalog import Mode, ModelSpec
from bot.providers.adapter import (
    HttpAdapter,
    Op,
    dig,
    error_from_text,
    failed,
    model_unavailable,
    segment,
    succeeded,
    unknown_state,
)
from bot.providers.base import GenerationRequest, TaskState, TaskStatus
from bot.providers.errors import ProviderDown, ProviderError
from bot.providers.http import Reply, error_for_status

log = logging.getLogger(__name__)

_STATES = {"QUEUED": TaskState.QUEUED, "PENDING": TaskState.QUEUED,
           "PROCESSING": TaskState.RUNNING, "IN_PROGRESS": TaskState.RUNNING}
_PROBE_TASK = "sora-video_check-key-probe"
TEXT_PATH = "/sora-video/v1/video/generate"
IMAGE_PATH = "/sora-video/v1/video/i2v/generate"
# The queue system's documented answer for a model it does not (or no longer) offer:
# 400 {"error": "Model not found", "message": "Model '...' not found or is disabled"}.
_MODEL_NOT_FOUND = "model not found"


class PixazoProvider(HttpAdapter):
    name = "pixazo"
    callback_id_paths = (("request_id",), ("data", "request_id"), ("id",), ("requestId",))

    def _headers(self) -> dict[str, str]:
        return {"Ocp-Apim-Subscription-Key": self._key, "Cache-Control": "no-cache"}

    def _classify(self, reply: Reply, op: Op) -> ProviderError | None:
        if reply.ok:
            if isinstance(reply.body, dict):
                return None
            return ProviderDown(detail=self._detail(reply.status, "unexpected reply"))
        body = reply.obj()
        kind, message = str(body.get("error") or ""), str(body.get("message") or "")
        detail = self._detail(reply.status, kind, message)
        if reply.status == 400 and kind.strip().lower() == _MODEL_NOT_FOUND:
            return model_unavailable(detail)  # the seed's documented answer
        error = error_from_text(reply.status, f"{kind} {message}", detail, op)
        if error is not None:
            return error
        return error_for_status(reply.status, detail, reply.headers)

    async def submit(
        self, spec: ModelSpec, request: GenerationRequest, callback_url: str | None = None
    ) -> str:
        self._prepare(spec, request)
        path = IMAGE_PATH if request.mode is Mode.IMAGE else TEXT_PATH
        headers = {"X-Webhook-URL": callback_url} if callback_url else None
        reply = await self._create(path, build_body(spec, request), headers, spec=spec)
        task_id = self._require_id(dig(reply.body, "request_id"), reply)
        log.info("pixazo: created request %s (%s, %ss)", task_id, spec.api_model,
                 request.duration)
        return task_id

    async def status(self, spec: ModelSpec, task_id: str) -> TaskStatus:
        reply = await self._get(f"/v2/requests/status/{segment(task_id)}", "status", spec=spec)
        return parse_status(task_id, reply.obj())

    async def _probe(self) -> None:
        await self._get(f"/v2/requests/status/{_PROBE_TASK}", "check")


def build_body(spec: ModelSpec, request: GenerationRequest) -> dict[str, Any]:
    """The create body; the callback URL travels in the X-Webhook-URL header instead."""
    body: dict[str, Any] = {"prompt": request.prompt.strip()}
    image = request.image
    if request.mode is Mode.IMAGE and image is not None:
        use_url = spec.image.transport == "url" and image.url
        body["image"] = image.url if use_url else image.data_uri()
    body.update(spec.fields_for(request.mode, request.orientation))
    if request.mode is Mode.IMAGE and image is not None:
        body["size"] = f"{image.width}x{image.height}"  # must match the image exactly
    body["seconds"] = request.duration
    body["model"] = spec.api_model
    body.update(spec.input_extra)  # Pixazo has no input object: its fields sit at the top
    body.update(spec.body_extra)
    return body


def parse_status(task_id: str, doc: dict[str, Any]) -> TaskStatus:
    state = str(doc.get("status") or "").upper()
    if state in _STATES:
        return TaskStatus(task_id=task_id, state=_STATES[state])
    if state in ("COMPLETED", "SUCCEEDED"):
        return succeeded(task_id, dig(doc, "output", "media_url"))
    if state in ("FAILED", "ERROR"):
        error = doc.get("error")
        text = dig(error, "message") if isinstance(error, dict) else error
        return failed(task_id, state, text)
    return unknown_state("pixazo", task_id, state)
