"""fal.ai's queue API (RESELLERS_BEYOND_APIXO.md, section 1).

``POST {FAL_BASE_URL}/{endpoint_id}?fal_webhook=...`` with the model input as the body
answers with the request's ``status_url``, ``response_url`` and ``cancel_url``. They drop
the endpoint's sub-path, so the bot keeps the request's path as its task id
(``fal-ai/kling-video/requests/{id}``) and follows it only on the configured base's host:
the key never goes elsewhere. There is no failed state: a request ends ``COMPLETED`` and
its result (``GET response_url``) decides: the video, a 422 ``content_policy_violation``
(a content refusal) or another error (a failure, refunded).

Out of credit is a 403 "User is locked ...": read as no balance (failover), not as a bad
key. Webhooks are signed with ED25519 (``bot.providers.signing``); a verified one carries
the result itself.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Mapping
from typing import Any

import aiohttp
import yarl

from bot.catalog import ModelSpec
from bot.providers.adapter import HttpAdapter, Op, dig, failed, succeeded, unknown_state
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
    Forbidden,
    ImageRejected,
    InsufficientBalance,
    InvalidRequest,
    ProviderError,
    RateLimited,
    SubmitUncertain,
    WebhookRejected,
)
from bot.providers.http import Reply, error_for_status, parse_retry_after
from bot.providers.inputs import build_input
from bot.providers.signing import FalWebhookVerifier

log = logging.getLogger(__name__)

CONTENT_POLICY = "content_policy_violation"
_STATES = {"IN_QUEUE": TaskState.QUEUED, "IN_PROGRESS": TaskState.RUNNING}
_TASK_PATH = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]*(/[A-Za-z0-9][A-Za-z0-9._\-]*)*")
_PROBE_APP = "fal-ai/veo3.1"


def _text(body: dict[str, Any]) -> str:
    """fal's error text: ``detail`` as a string, or the messages of a detail list."""
    detail = body.get("detail")
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        return "; ".join(str(d.get("msg", "")) for d in detail if isinstance(d, dict))
    return ""


def _items(body: Any) -> list[dict[str, Any]]:
    detail = body.get("detail") if isinstance(body, dict) else None
    return [d for d in detail if isinstance(d, dict)] if isinstance(detail, list) else []


def _is_content_refusal(body: Any) -> bool:
    return any(item.get("type") == CONTENT_POLICY for item in _items(body))


def _mentions_image(body: Any) -> bool:
    return any(word in "/".join(map(str, item.get("loc") or ()))
               for item in _items(body) for word in ("image", "frame"))


def outcome(task_id: str, status: int, body: Any) -> TaskStatus:
    """A finished request's result: the video, or why there is none."""
    if 200 <= status < 300:
        return succeeded(task_id, dig(body, "video", "url"))
    if _is_content_refusal(body):
        return failed(task_id, CONTENT_POLICY, None)
    text = _text(body) if isinstance(body, dict) else ""
    code = body.get("error_type") if isinstance(body, dict) else None
    return failed(task_id, code or f"http_{status}", text or None)


def app_of(endpoint: str) -> str:
    """An endpoint's app (``fal-ai/kling-video``): the first two segments of its id, the
    part of the path fal's request URLs keep."""
    return "/".join(endpoint.split("/")[:2])


class FalProvider(HttpAdapter):
    name = "fal"
    signed_webhooks = True

    def __init__(self, session: aiohttp.ClientSession, base_url: str, api_key: str, *,
                 jwks_url: str, **options: Any) -> None:
        super().__init__(session, base_url, api_key, **options)
        self._verifier = FalWebhookVerifier(session, jwks_url)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Key {self._key}"}

    def _classify(self, reply: Reply, op: Op) -> ProviderError | None:
        if reply.ok:
            return None
        body = reply.obj()
        text = _text(body)
        kind = body.get("error_type") or reply.headers.get("X-Fal-Error-Type")
        detail = self._detail(reply.status, kind, text)
        if reply.status == 401:
            return AuthenticationFailed(detail=detail)
        if reply.status == 403:
            if "user is locked" in text.lower():  # out of credit (or locked): fail over
                return InsufficientBalance(detail=detail)
            return Forbidden(detail=detail)
        if reply.status == 429:
            after = parse_retry_after(reply.headers.get("Retry-After"))
            return RateLimited(retry_after=after, detail=detail)
        if op == "result" and (reply.status < 500 or kind):
            return None  # the request's own outcome, read by ``outcome``
        if op == "cancel" and reply.status in (400, 404):
            return None  # ALREADY_COMPLETED / NOT_FOUND, read by ``cancel``
        if op == "submit" and reply.status == 422:
            if _is_content_refusal(body):
                return ContentRejected(detail=detail)
            if _mentions_image(body):
                return ImageRejected(detail=detail)
            return InvalidRequest(detail=detail)
        return error_for_status(reply.status, detail, reply.headers)

    async def submit(
        self, spec: ModelSpec, request: GenerationRequest, callback_url: str | None = None
    ) -> str:
        self._prepare(spec, request)
        endpoint = spec.endpoint_for(request.shape)
        params = {"fal_webhook": callback_url} if callback_url else None
        reply = await self._create(f"/{endpoint}", build_input(spec, request), spec=spec,
                                   params=params)
        request_id = dig(reply.body, "request_id")
        if not isinstance(request_id, str) or not _TASK_PATH.fullmatch(request_id):
            raise SubmitUncertain(detail=self._detail(reply.status, "no request id in the reply"))
        task_id = self._task_path(reply.obj(), endpoint, request_id)
        log.info("fal: created request %s (%s, %ss)", request_id, endpoint, request.duration)
        return task_id

    def _task_path(self, body: dict[str, Any], endpoint: str, request_id: str) -> str:
        """The request's path under the base, from the URLs fal returned when they are on
        the configured host; else rebuilt as the documents describe (the key is never sent
        to another host)."""
        base = yarl.URL(self._base)
        rebuilt = f"{app_of(endpoint)}/requests/{request_id}"
        found = body.get("status_url")
        try:
            url = yarl.URL(str(found)) if isinstance(found, str) else None
            elsewhere = url is None or url.origin() != base.origin()
        except ValueError:  # not a URL, or not an absolute one
            url, elsewhere = None, True
        if url is None or elsewhere:
            if found is not None:
                log.warning("fal: the status URL of request %s is not on FAL_BASE_URL's host;"
                            " using the documented path instead", request_id)
            return rebuilt
        prefix = base.path.rstrip("/") + "/"
        path = url.path
        if not path.startswith(prefix) or not path.endswith("/status"):
            return rebuilt
        task = path[len(prefix):].removesuffix("/status")
        if not _TASK_PATH.fullmatch(task) or not task.endswith(f"/{request_id}"):
            return rebuilt
        return task

    def _path(self, spec: ModelSpec, task_id: str) -> str:
        """A stored task id as a path: a full request path, or a bare request id (named by
        a verified webhook before the create answered) under the model's app."""
        if "/" in task_id:
            return task_id
        return f"{app_of(spec.endpoint_for(next(iter(spec.shapes))))}/requests/{task_id}"

    def task_key(self, task_id: str) -> str:
        return task_id.rsplit("/", 1)[-1]

    async def status(self, spec: ModelSpec, task_id: str) -> TaskStatus:
        path = self._path(spec, task_id)
        reply = await self._get(f"/{path}/status", "status", spec=spec)
        state = str(reply.obj().get("status") or "").upper()
        if state in _STATES:
            return TaskStatus(task_id=task_id, state=_STATES[state])
        if state != "COMPLETED":
            return unknown_state(self.name, task_id, state)
        result = await self._get(f"/{path}", "result", spec=spec)
        return outcome(task_id, result.status, result.body)

    async def cancel(self, spec: ModelSpec, task_id: str) -> CancelOutcome:
        reply = await self._call("PUT", f"/{self._path(spec, task_id)}/cancel", "cancel",
                                 spec=spec)
        said = str(reply.obj().get("status") or "").upper()
        if reply.ok and said in ("CANCELLATION_REQUESTED", ""):
            # A queued request is dropped, a running one only signalled: the final status
            # (an error at response_url, or the video) tells which.
            return CancelOutcome.REQUESTED
        return CancelOutcome.FINISHED  # ALREADY_COMPLETED, NOT_FOUND

    async def read_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookNews:
        request_id = await self._verifier.verify(headers, body)
        try:
            doc = json.loads(body)
        except ValueError:
            raise WebhookRejected("the body is not JSON", status=400) from None
        if not isinstance(doc, dict):
            raise WebhookRejected("the body is not a JSON object", status=400)
        if doc.get("request_id") not in (None, request_id):
            raise WebhookRejected("the body names another request", status=400)
        said = str(doc.get("status") or "").upper()
        payload = doc.get("payload")
        if said == "OK" and dig(payload, "video", "url"):
            return WebhookNews(request_id, outcome(request_id, 200, payload))
        if said == "ERROR":
            code = 422 if _is_content_refusal(payload) else 500
            return WebhookNews(request_id, outcome(request_id, code, payload or {}))
        return WebhookNews(request_id)  # no usable result: the poll reads response_url

    async def _probe(self) -> None:
        """A status read of a made-up request: 404 means the key was accepted."""
        await self._get(f"/{_PROBE_APP}/requests/{uuid.uuid4()}/status", "check")
