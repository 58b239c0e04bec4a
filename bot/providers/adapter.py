"""What the HTTP adapters share: construction, request helpers, callback and reply parsing.

Each adapter (APIXO, aivideoapi.ai, Pixazo) subclasses ``HttpAdapter`` and supplies its
auth headers, its error classifier and its request/reply shapes; the plumbing (retries,
typed errors, secret scrubbing) lives here and in ``http.py``.
"""

from __future__ import annotations

import abc
import json
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal
from urllib.parse import quote

import aiohttp

from bot.catalog import ModelSpec
from bot.providers.base import GenerationRequest, TaskState, TaskStatus, VideoProvider
from bot.providers.errors import (
    ContentRejected,
    ImageRejected,
    InsufficientBalance,
    InvalidRequest,
    ModelUnavailable,
    ProviderError,
    SubmitUncertain,
    fail_message,
)
from bot.providers.http import (
    STATUS_RETRY,
    SUBMIT_RETRY,
    Reply,
    RetryPolicy,
    call_json,
    describe,
    get_json,
    post_json,
)
from bot.providers.ratelimit import RequestRates
from bot.providers.validation import validate_request

log = logging.getLogger(__name__)

Op = Literal["submit", "status", "check", "result", "cancel"]

# Task ids we accept from a callback body: provider ids are short tokens like these.
_TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,199}")
_CONTENT_WORDS = ("content polic", "policy", "safety", "sensitive", "moderation", "violat",
                  "prohibited", "inappropriate", "nsfw")
_BALANCE_WORDS = ("insufficient", "balance", "credit", "top up", "wallet", "quota exceeded")


def mentions_content_policy(text: str) -> bool:
    lowered = text.lower()
    return any(word in lowered for word in _CONTENT_WORDS)


def mentions_balance(text: str) -> bool:
    lowered = text.lower()
    return any(word in lowered for word in _BALANCE_WORDS)


def model_unavailable(detail: str) -> ModelUnavailable:
    return ModelUnavailable(
        "This model is no longer offered by the video provider; pick another model "
        "or ask an admin to update the bot.",
        detail=detail,
    )


def spend_limit_reached(detail: str) -> InsufficientBalance:
    return InsufficientBalance(
        "The bot's API key has reached its spending limit with the video provider; "
        "try again later or ask an admin to raise it.",
        detail=detail,
    )


def error_from_text(status: int, text: str, detail: str, op: Op) -> ProviderError | None:
    """The error a provider's free-text message makes plain, whatever its status code."""
    if status == 402 or (status in (400, 403) and mentions_balance(text)):
        return InsufficientBalance(detail=detail)
    if status == 400 and mentions_content_policy(text):
        return ContentRejected(detail=detail)
    if status == 400 and "image" in text.lower():
        return ImageRejected(detail=detail)
    return None


def dig(value: Any, *path: str) -> Any:
    """``value[path[0]][path[1]]...`` through dicts, or None if any step is missing."""
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def as_task_id(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and _TASK_ID.fullmatch(value.strip()):
        return value.strip()
    return None


def task_id_hint(body: bytes, paths: Iterable[tuple[str, ...]]) -> str | None:
    """The first plausible task id found at one of ``paths`` in a JSON body, else None."""
    try:
        doc = json.loads(body)
    except (ValueError, TypeError, RecursionError):
        return None
    for path in paths:
        found = as_task_id(dig(doc, *path))
        if found is not None:
            return found
    return None


def normalise_progress(value: Any) -> float | None:
    """Progress as 0..1 from 0..1, 0..100 or a numeric string; None when absent/garbled."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(str(value).strip().rstrip("%"))
    except ValueError:
        return None
    if number != number or number < 0:  # NaN or negative
        return None
    if number > 1:
        number /= 100
    return min(number, 1.0)


def url_list(value: Any) -> list[str]:
    """http(s) URLs from a list (or a single string) of them."""
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return [u for u in items if isinstance(u, str) and u.startswith(("https://", "http://"))]


def succeeded(task_id: str, urls: Any) -> TaskStatus:
    """A finished task: SUCCEEDED with its video URLs, or FAILED when it named none."""
    found = url_list(urls)
    if found:
        return TaskStatus(task_id=task_id, state=TaskState.SUCCEEDED, progress=1.0,
                          video_urls=found)
    return TaskStatus(task_id=task_id, state=TaskState.FAILED, error_code="no_result",
                      error_message="The provider finished but sent no video.")


def failed(task_id: str, code: Any, text: Any) -> TaskStatus:
    """A failed task, with a member-readable message built from its code and text."""
    code_s = str(code).strip() if code not in (None, "") else None
    text_s = str(text).strip() if text not in (None, "") else None
    return TaskStatus(task_id=task_id, state=TaskState.FAILED, error_code=code_s or "failed",
                      error_message=fail_message(code_s, text_s))


def unknown_state(provider: str, task_id: str, state: str, progress: float | None = None
                  ) -> TaskStatus:
    log.warning("%s: task %s has an unknown state %r; treating it as running",
                provider, task_id, state[:40])
    return TaskStatus(task_id=task_id, state=TaskState.RUNNING, progress=progress)


def segment(task_id: str) -> str:
    """A task id made safe as one URL path segment."""
    return quote(task_id, safe="")


class HttpAdapter(VideoProvider):
    """Base of the adapters that talk to a provider over HTTP with an API key."""

    name: str
    # Where a callback body may carry the task id, tried in order.
    callback_id_paths: tuple[tuple[str, ...], ...] = (("id",),)

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        api_key: str,
        *,
        retry: RetryPolicy = STATUS_RETRY,
        submit_retry: RetryPolicy = SUBMIT_RETRY,
    ) -> None:
        if not api_key:
            raise ValueError(f"{self.name}: an API key is required")
        self._session = session
        self._base = base_url.rstrip("/")
        self._key = api_key
        self._retry = retry
        self._submit_retry = submit_retry
        self._rates = RequestRates()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self._base!r})"

    # ----- what each adapter supplies ---------------------------------------------------
    @abc.abstractmethod
    def _headers(self) -> dict[str, str]:
        """The auth (and other fixed) headers of every request."""

    @abc.abstractmethod
    def _classify(self, reply: Reply, op: Op) -> ProviderError | None:
        """The typed error a reply stands for, or None when it is a success."""

    @abc.abstractmethod
    async def _probe(self) -> None:
        """One cheap authenticated call, raising the typed error of its reply."""

    # ----- shared behaviour --------------------------------------------------------------
    def _detail(self, status: int, code: object = None, message: object = None) -> str:
        return describe(status, code, message, secrets=(self._key,))

    def _prepare(self, spec: ModelSpec, request: GenerationRequest) -> None:
        """Check the request before any HTTP: right provider, fits the catalog entry."""
        if spec.provider != self.name:
            raise InvalidRequest(
                f"The model {spec.id} belongs to {spec.provider}, not {self.name}.",
                detail="spec/provider mismatch",
            )
        validate_request(spec, request)

    async def _get(self, path: str, op: Op, params: Mapping[str, str] | None = None,
                   *, spec: ModelSpec | None = None) -> Reply:
        return await get_json(
            self._session,
            self._base + path,
            op=f"{self.name} {op}",
            headers=self._headers(),
            classify=lambda reply: self._classify(reply, op),
            policy=self._retry,
            params=params,
            limiter=self._rates.for_model(spec),
        )

    async def _create(
        self, path: str, body: Mapping[str, Any], headers: Mapping[str, str] | None = None,
        *, spec: ModelSpec | None = None, params: Mapping[str, str] | None = None,
    ) -> Reply:
        return await post_json(
            self._session,
            self._base + path,
            dict(body),
            op=f"{self.name} submit",
            headers={**self._headers(), **(headers or {})},
            classify=lambda reply: self._classify(reply, "submit"),
            policy=self._submit_retry,
            limiter=self._rates.for_model(spec),
            params=params,
        )

    async def _call(self, method: str, path: str, op: Op, *, body: Any = None,
                    spec: ModelSpec | None = None) -> Reply:
        """An idempotent call that is not a read (a cancel), retried like one."""
        return await call_json(
            self._session,
            method,
            self._base + path,
            op=f"{self.name} {op}",
            headers=self._headers(),
            classify=lambda reply: self._classify(reply, op),
            policy=self._retry,
            body=body,
            limiter=self._rates.for_model(spec),
        )

    def _require_id(self, value: Any, reply: Reply) -> str:
        """The task id of a create reply; without one the outcome is unknown."""
        task_id = as_task_id(value)
        if task_id is None:
            raise SubmitUncertain(detail=self._detail(reply.status, "no task id in the reply"))
        return task_id

    def parse_callback(self, body: bytes) -> str | None:
        return task_id_hint(body, self.callback_id_paths)

    async def check_key(self) -> None:
        try:
            await self._probe()
        except (InvalidRequest, ModelUnavailable):
            return  # the key was accepted; the made-up task or model was not
