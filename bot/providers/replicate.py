"""Replicate's predictions API (RESELLERS_BEYOND_APIXO.md, section 2).

``POST {REPLICATE_BASE_URL}/models/{owner}/{name}/predictions`` with ``{input, webhook,
webhook_events_filter: ["completed"]}``; ``GET /predictions/{id}`` until ``succeeded``
(the output is one URL; a list is accepted), ``failed`` (E005: a content refusal) or
``canceled``. Outputs are deleted an hour after the prediction, so the job service
downloads as soon as it succeeds. 402 is no balance, 422 invalid input, 429 throttled
("resets in ~30s": the bot waits as told). Webhooks follow Standard Webhooks
(``bot.providers.signing``); a verified one carries the prediction itself.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

import aiohttp

from bot.catalog import ModelSpec
from bot.providers.adapter import (
    HttpAdapter,
    Op,
    as_task_id,
    failed,
    model_unavailable,
    segment,
    succeeded,
    unknown_state,
)
from bot.providers.base import (
    CancelOutcome,
    GenerationRequest,
    TaskState,
    TaskStatus,
    WebhookNews,
)
from bot.providers.errors import (
    AuthenticationFailed,
    ContentRejected,
    ImageRejected,
    InsufficientBalance,
    InvalidRequest,
    ProviderError,
    RateLimited,
    WebhookRejected,
)
from bot.providers.http import Reply, error_for_status, parse_retry_after
from bot.providers.inputs import build_input
from bot.providers.signing import ReplicateWebhookVerifier

log = logging.getLogger(__name__)

CONTENT_REFUSAL = "E005"
_STATES = {"starting": TaskState.QUEUED, "processing": TaskState.RUNNING}
_ENDED = ("failed", "canceled", "aborted")
_RESETS_IN = re.compile(r"resets in ~?\s*(\d+(?:\.\d+)?)\s*s", re.IGNORECASE)


def _text(body: dict[str, Any]) -> str:
    return " ".join(str(body.get(k) or "") for k in ("title", "detail")).strip()


def throttle_wait(reply: Reply) -> float | None:
    """Seconds to wait after a 429: Retry-After if sent, else the "resets in ~30s" text."""
    after = parse_retry_after(reply.headers.get("Retry-After"))
    if after is not None:
        return after
    found = _RESETS_IN.search(str(reply.obj().get("detail") or ""))
    return float(found.group(1)) if found else None


def parse_prediction(task_id: str, doc: dict[str, Any]) -> TaskStatus:
    state = str(doc.get("status") or "").lower()
    if state in _STATES:
        return TaskStatus(task_id=task_id, state=_STATES[state])
    if state == "succeeded":
        if doc.get("data_removed"):
            return failed(task_id, "result_removed",
                          "The provider deleted the result before it could be downloaded.")
        return succeeded(task_id, doc.get("output"))
    if state in _ENDED:
        error = str(doc.get("error") or "")
        if CONTENT_REFUSAL in error:
            return failed(task_id, CONTENT_REFUSAL, None)
        if state != "failed":
            return failed(task_id, "cancelled", "The provider stopped this video before it "
                                                "was made.")
        return failed(task_id, "failed", error or None)
    return unknown_state("replicate", task_id, state)


class ReplicateProvider(HttpAdapter):
    name = "replicate"
    signed_webhooks = True

    def __init__(self, session: aiohttp.ClientSession, base_url: str, api_key: str,
                 **options: Any) -> None:
        super().__init__(session, base_url, api_key, **options)
        self._verifier = ReplicateWebhookVerifier(session, self._base, api_key)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}"}

    def _classify(self, reply: Reply, op: Op) -> ProviderError | None:
        if reply.ok:
            return None
        body = reply.obj()
        text = _text(body)
        detail = self._detail(reply.status, None, text)
        if reply.status == 401:
            return AuthenticationFailed(detail=detail)
        if reply.status == 402:
            return InsufficientBalance(detail=detail)
        if reply.status == 429:
            return RateLimited(retry_after=throttle_wait(reply), detail=detail)
        if reply.status == 404 and op == "submit":
            return model_unavailable(detail)  # no such model (or no longer public)
        if reply.status == 422:
            fields = " ".join(str(f.get("field", "")) for f in body.get("invalid_fields") or ()
                              if isinstance(f, dict))
            if CONTENT_REFUSAL in text:
                return ContentRejected(detail=detail)
            if "image" in fields or "frame" in fields:
                return ImageRejected(detail=detail)
            return InvalidRequest(detail=detail)
        if op == "cancel" and reply.status in (400, 409):
            return None  # a finished prediction cannot be cancelled: read by ``cancel``
        return error_for_status(reply.status, detail, reply.headers)

    async def submit(
        self, spec: ModelSpec, request: GenerationRequest, callback_url: str | None = None
    ) -> str:
        self._prepare(spec, request)
        model = spec.endpoint_for(request.shape)
        body: dict[str, Any] = {"input": build_input(spec, request)}
        if callback_url:
            body["webhook"] = callback_url
            body["webhook_events_filter"] = ["completed"]
        reply = await self._create(f"/models/{model}/predictions", body, spec=spec)
        task_id = self._require_id(reply.obj().get("id"), reply)
        log.info("replicate: created prediction %s (%s, %ss)", task_id, model,
                 request.duration)
        return task_id

    async def status(self, spec: ModelSpec, task_id: str) -> TaskStatus:
        reply = await self._get(f"/predictions/{segment(task_id)}", "status", spec=spec)
        return parse_prediction(task_id, reply.obj())

    async def cancel(self, spec: ModelSpec, task_id: str) -> CancelOutcome:
        reply = await self._call("POST", f"/predictions/{segment(task_id)}/cancel", "cancel",
                                 spec=spec)
        state = str(reply.obj().get("status") or "").lower()
        if state in ("canceled", "aborted"):
            return CancelOutcome.CANCELLED
        if state in ("succeeded", "failed") or not reply.ok:
            return CancelOutcome.FINISHED
        return CancelOutcome.REQUESTED

    async def read_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookNews:
        await self._verifier.verify(headers, body)
        try:
            doc = json.loads(body)
        except ValueError:
            raise WebhookRejected("the body is not JSON", status=400) from None
        task_id = as_task_id(doc.get("id")) if isinstance(doc, dict) else None
        if task_id is None:
            raise WebhookRejected("the body names no prediction", status=400)
        status = parse_prediction(task_id, doc)
        # start, output and logs events are taken in stride: only a final status counts.
        return WebhookNews(task_id, status if status.state.finished else None)

    async def _probe(self) -> None:
        """The account's webhook secret: a cheap authenticated read that creates nothing."""
        await self._get("/webhooks/default/secret", "check")
