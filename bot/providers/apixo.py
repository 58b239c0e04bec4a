"""APIXO (seeds 000, 001, 004): ``/generateTask/{model}`` and ``/statusTask/{model}``.

Quirk: APIXO may answer HTTP 200 with an error in the body, e.g.
``{"code": 400, "message": "Insufficient credits", "data": null}``; the body code wins.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from bot.catalog import ModelSpec, live_models
from bot.providers.adapter import (
    HttpAdapter,
    Op,
    dig,
    error_from_text,
    failed,
    model_unavailable,
    succeeded,
    unknown_state,
)
from bot.providers.base import GenerationRequest, TaskState, TaskStatus
from bot.providers.errors import Forbidden, ProviderDown, ProviderError
from bot.providers.http import Reply, error_for_status
from bot.providers.inputs import build_input

log = logging.getLogger(__name__)

_STATES = {"pending": TaskState.QUEUED, "processing": TaskState.RUNNING}
_PROBE_TASK = "check-key-probe"


class ApixoProvider(HttpAdapter):
    name = "apixo"
    callback_id_paths = (("data", "taskId"), ("taskId",), ("data", "task_id"))

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}"}

    def _classify(self, reply: Reply, op: Op) -> ProviderError | None:
        body = reply.obj()
        code = body.get("code")
        body_code = code if isinstance(code, int) and not isinstance(code, bool) else None
        if reply.ok and body_code == 200:
            return None
        message = str(body.get("message") or body.get("msg") or "")
        if reply.ok and body_code is None:
            return ProviderDown(detail=self._detail(reply.status, "unexpected reply"))
        status = body_code if reply.ok and body_code is not None else reply.status
        detail = self._detail(reply.status, body_code, message)
        error = error_from_text(status, message, detail, op)
        if error is not None:
            return error
        return error_for_status(status, detail, reply.headers)

    async def submit(
        self, spec: ModelSpec, request: GenerationRequest, callback_url: str | None = None
    ) -> str:
        self._prepare(spec, request)
        try:
            reply = await self._create(f"/generateTask/{spec.api_model}",
                                       build_body(spec, request, callback_url), spec=spec)
        except Forbidden as exc:
            # APIXO's one documented model answer is 403 "Key or route cannot access the
            # model"; for a model the catalog knows is retired, that means it is gone.
            if spec.retired:
                raise model_unavailable(exc.detail or "HTTP 403") from None
            raise
        task_id = self._require_id(dig(reply.body, "data", "taskId"), reply)
        log.info("apixo: created task %s (%s, %ss)", task_id, spec.api_model, request.duration)
        return task_id

    async def status(self, spec: ModelSpec, task_id: str) -> TaskStatus:
        reply = await self._get(f"/statusTask/{spec.api_model}", "status", {"taskId": task_id},
                                spec=spec)
        data = dig(reply.body, "data")
        if not isinstance(data, dict):
            raise ProviderDown(detail=self._detail(reply.status, "status reply without data"))
        return parse_status(task_id, data)

    async def _probe(self) -> None:
        specs = live_models(self.name)
        model = specs[0].api_model if specs else "veo-3-1"
        await self._get(f"/statusTask/{model}", "check", {"taskId": _PROBE_TASK})


def build_body(
    spec: ModelSpec, request: GenerationRequest, callback_url: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"request_type": "callback" if callback_url else "async"}
    if callback_url:
        body["callback_url"] = callback_url
    body.update(spec.body_extra)
    body["input"] = build_input(spec, request)
    return body


def parse_status(task_id: str, data: dict[str, Any]) -> TaskStatus:
    state = str(data.get("state") or "").lower()
    if state in _STATES:
        return TaskStatus(task_id=task_id, state=_STATES[state])
    if state == "success":
        return succeeded(task_id, _result_urls(data.get("resultJson")))
    if state == "failed":
        return failed(task_id, data.get("failCode"), data.get("failMsg"))
    return unknown_state("apixo", task_id, state)


def _result_urls(result: Any) -> Any:
    """``resultJson`` is a JSON string holding {"resultUrls": [...]} (tolerate an object)."""
    if isinstance(result, str):
        try:
            result = json.loads(result)
        except ValueError:
            return None
    return dig(result, "resultUrls")
