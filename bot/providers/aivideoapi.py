"""aivideoapi.ai (seed 002): ``/v1/videos/generations``, ``/v1/tasks/{id}``, ``/v1/credits``.

Errors come as ``{"error": {"code", "message", "type"}}``; the code decides the class.
A create answered 503 ``upstream_error`` is a definite refusal (the document: the upstream
provider returned an error and the credits are refunded), so the job fails at once; a
5xx without that body (a gateway's own error page, ``internal_error``) may hide a created
task and stays "uncertain".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bot.catalog import Mode, ModelSpec
from bot.providers.adapter import (
    HttpAdapter,
    Op,
    dig,
    error_from_text,
    failed,
    model_unavailable,
    normalise_progress,
    segment,
    spend_limit_reached,
    succeeded,
    unknown_state,
)
from bot.providers.base import GenerationRequest, TaskState, TaskStatus
from bot.providers.errors import (
    AuthenticationFailed,
    Forbidden,
    InsufficientBalance,
    InvalidRequest,
    ProviderDown,
    ProviderError,
    RateLimited,
    TaskNotFound,
    UpstreamRefused,
)
from bot.providers.http import Reply, error_for_status, parse_retry_after

log = logging.getLogger(__name__)

_STATES = {"pending": TaskState.QUEUED, "queued": TaskState.QUEUED,
           "processing": TaskState.RUNNING, "running": TaskState.RUNNING}


def _rate_limited(detail: str, reply: Reply) -> ProviderError:
    return RateLimited(retry_after=parse_retry_after(reply.headers.get("Retry-After")),
                       detail=detail)


_BY_CODE: dict[str, Callable[[str, Reply], ProviderError]] = {
    "invalid_request": lambda d, r: InvalidRequest(detail=d),
    "invalid_api_key": lambda d, r: AuthenticationFailed(detail=d),
    "insufficient_credits": lambda d, r: InsufficientBalance(detail=d),
    "ip_not_allowed": lambda d, r: Forbidden(
        "The video provider does not accept requests from this bot's address "
        "(the key's IP allowlist).", detail=d),
    "model_not_found": lambda d, r: model_unavailable(d),
    "task_not_found": lambda d, r: TaskNotFound(detail=d),
    "rate_limit_exceeded": _rate_limited,
    "spend_limit_exceeded": lambda d, r: spend_limit_reached(d),
    "internal_error": lambda d, r: ProviderDown(detail=d),
    "upstream_error": lambda d, r: UpstreamRefused(detail=d),
}


class AivideoapiProvider(HttpAdapter):
    name = "aivideoapi"
    callback_id_paths = (("id",), ("taskId",), ("data", "taskId"), ("task_id",))

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}"}

    def _classify(self, reply: Reply, op: Op) -> ProviderError | None:
        body = reply.obj()
        if reply.ok:
            if not isinstance(reply.body, dict):
                return ProviderDown(detail=self._detail(reply.status, "unexpected reply"))
            code = body.get("code")
            if isinstance(code, int) and not isinstance(code, bool) and code != 200:
                # An error in a 200 envelope: judge it by its code.
                detail = self._detail(reply.status, code, body.get("msg"))
                return error_for_status(code, detail, reply.headers)
            return None
        error = body.get("error")
        code = str(dig(error, "code") or "") if isinstance(error, dict) else ""
        message = dig(error, "message") if isinstance(error, dict) else body.get("message")
        detail = self._detail(reply.status, code, message)
        if code == "invalid_request":
            refined = error_from_text(400, str(message or ""), detail, op)
            if refined is not None:
                return refined
        make = _BY_CODE.get(code)
        if make is not None:
            return make(detail, reply)
        return (error_from_text(reply.status, str(message or ""), detail, op)
                or error_for_status(reply.status, detail, reply.headers))

    async def submit(
        self, spec: ModelSpec, request: GenerationRequest, callback_url: str | None = None
    ) -> str:
        self._prepare(spec, request)
        reply = await self._create("/v1/videos/generations",
                                   build_body(spec, request, callback_url), spec=spec)
        task_id = self._require_id(dig(reply.body, "data", "taskId"), reply)
        log.info("aivideoapi: created task %s (%s, %ss)", task_id, spec.api_model,
                 request.duration)
        return task_id

    async def status(self, spec: ModelSpec, task_id: str) -> TaskStatus:
        reply = await self._get(f"/v1/tasks/{segment(task_id)}", "status", spec=spec)
        return parse_status(task_id, reply.obj())

    async def _probe(self) -> None:
        await self._get("/v1/credits", "check")


def build_body(
    spec: ModelSpec, request: GenerationRequest, callback_url: str | None
) -> dict[str, Any]:
    inp: dict[str, Any] = {
        "prompt": request.prompt.strip(),
        "duration": request.duration,
        **spec.fields_for(request.mode, request.orientation),
        **spec.input_extra,
    }
    if request.mode is Mode.IMAGE and request.image is not None:
        inp["image_urls"] = [request.image.url]
    body: dict[str, Any] = {"model": spec.api_model}
    if callback_url:
        body["callback_url"] = callback_url
    body.update(spec.body_extra)
    body["input"] = inp
    return body


def parse_status(task_id: str, task: dict[str, Any]) -> TaskStatus:
    state = str(task.get("status") or "").lower()
    progress = normalise_progress(task.get("progress"))
    if state in _STATES:
        return TaskStatus(task_id=task_id, state=_STATES[state], progress=progress)
    if state in ("completed", "succeeded", "success"):
        return succeeded(task_id, dig(task, "output", "urls"))
    if state == "failed":
        error = task.get("error")
        text = dig(error, "message") if isinstance(error, dict) else error
        return failed(task_id, dig(error, "code"), text)
    return unknown_state("aivideoapi", task_id, state, progress)
