"""Shared HTTP plumbing for the provider adapters.

Every adapter sends its requests through ``get_json`` (status and other reads) or
``post_json`` (creating a task) with the one ``aiohttp.ClientSession`` the application
owns. Both return a ``Reply`` (status, headers, parsed body) or raise one of the typed
errors in ``bot.providers.errors``.

Retry rules:

* reads retry 429, 5xx, timeouts and connection failures with exponential backoff and
  jitter, waiting at least what ``Retry-After`` asks, bounded in attempts and in time;
  when the budget is spent the last typed error is raised (RateLimited, ProviderDown,
  TimedOut);
* creates retry only what certainly created nothing: a connection that could not be
  opened and HTTP 429. What may hide a created task (a timeout, a connection lost after
  sending, a 5xx without the provider's documented refusal) raises ``SubmitUncertain``
  and is never re-sent: a duplicate create would pay twice. A 5xx that the adapter
  recognises as the provider's documented refusal (``UpstreamRefused``, e.g.
  aivideoapi's 503 ``upstream_error``) is a definite failure, raised at once;
* a 404 on a create is ``EndpointNotFound`` (a wrong base URL, say) unless the adapter
  recognised the provider's documented model-not-found answer;
* every attempt, creates and reads alike, first waits for the request-rate limiter the
  adapter hands in (one per provider and model; see ``ratelimit.py``).

Nothing here puts a header, a request URL or a key into a log line or an error: details
are built from the status code and the provider's own error code and message, with the
key scrubbed out in case a provider echoes it.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple

import aiohttp
import yarl
from aiolimiter import AsyncLimiter
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
)

from bot.providers.errors import (
    AuthenticationFailed,
    EndpointNotFound,
    Forbidden,
    InsufficientBalance,
    InvalidRequest,
    ProviderDown,
    ProviderError,
    RateLimited,
    SubmitUncertain,
    TaskNotFound,
    TimedOut,
    UpstreamRefused,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard one call tries: attempts, backoff (seconds) and time budget."""

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 20.0
    max_total: float = 90.0
    timeout: float = 30.0  # per request, connect + send + read

    def __post_init__(self) -> None:
        if self.attempts < 1 or min(self.base_delay, self.max_delay) < 0:
            raise ValueError("attempts must be at least 1 and delays not negative")
        if self.max_total <= 0 or self.timeout <= 0:
            raise ValueError("max_total and timeout must be positive")

    @classmethod
    def fast(cls, **changes: Any) -> RetryPolicy:
        """A policy for tests: tiny delays and timeouts; override any field."""
        values: dict[str, Any] = dict(attempts=3, base_delay=0.01, max_delay=0.05,
                                      max_total=5.0, timeout=2.0)
        return cls(**{**values, **changes})

    def backoff(self, attempt: int) -> float:
        """The jittered wait after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


STATUS_RETRY = RetryPolicy()
# Creates wait longer for an answer (a timeout there leaves the outcome unknown).
SUBMIT_RETRY = RetryPolicy(attempts=4, base_delay=1.0, max_delay=20.0, max_total=60.0, timeout=60.0)


class Reply(NamedTuple):
    status: int
    headers: Mapping[str, str]
    body: Any  # parsed JSON; None when the body was empty or not JSON

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def obj(self) -> dict[str, Any]:
        """The body when it is a JSON object, else an empty dict."""
        return self.body if isinstance(self.body, dict) else {}


# Turns a reply into the typed error it stands for, or None when it is a success.
Classifier = Callable[[Reply], ProviderError | None]


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def describe(
    status: int, code: object = None, message: object = None, *, secrets: Iterable[str] = ()
) -> str:
    """A log-safe detail: HTTP status plus the provider's error code and message."""
    parts = [f"HTTP {status}"]
    if code not in (None, ""):
        parts.append(str(code)[:80])
    text = " ".join(parts)
    if message not in (None, ""):
        text += ": " + " ".join(str(message).split())[:300]
    return redact(text, secrets)


_BY_STATUS: dict[int, type[ProviderError]] = {
    400: InvalidRequest,
    401: AuthenticationFailed,
    402: InsufficientBalance,
    403: Forbidden,
    404: TaskNotFound,
    409: InvalidRequest,
    413: InvalidRequest,
    415: InvalidRequest,
    422: InvalidRequest,
}


def error_for_status(
    status: int, detail: str, headers: Mapping[str, str] | None = None
) -> ProviderError:
    """The typed error an HTTP (or APIXO body) status code stands for."""
    if status == 429:
        after = parse_retry_after((headers or {}).get("Retry-After"))
        return RateLimited(retry_after=after, detail=detail)
    if status in (408, 504):
        return TimedOut(detail=detail)
    if status >= 500:
        return ProviderDown(detail=detail)
    cls = _BY_STATUS.get(status)
    if cls is not None:
        return cls(detail=detail)
    return ProviderError("The video provider gave an answer the bot does not understand.",
                         detail=detail)


class _Transient(Exception):
    """Internal: an attempt failed in a way the retry loop may try again."""

    def __init__(self, error: ProviderError, *, retry_after: float | None = None) -> None:
        super().__init__(error.code)
        self.error = error
        self.retry_after = retry_after


def _parse_body(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


async def _once(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    op: str,
    headers: Mapping[str, str],
    body: Any,
    params: Mapping[str, str] | None,
    limit_s: float,
    classify: Classifier,
    submit: bool,
) -> Reply:
    client_timeout = aiohttp.ClientTimeout(total=limit_s, sock_connect=min(limit_s, 10.0))
    try:
        async with session.request(
            method,
            url,
            headers=dict(headers),
            json=body,
            params=params,
            timeout=client_timeout,
            allow_redirects=False,  # custom key headers must not follow a redirect
            raise_for_status=False,  # statuses are classified below, whatever the session says
        ) as resp:
            reply = Reply(resp.status, resp.headers, _parse_body(await resp.read()))
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
        # No connection was made, so nothing was sent: safe to try again even for a create.
        down = ProviderDown(detail=f"could not connect ({type(exc).__name__})")
        raise _Transient(down) from None
    except aiohttp.InvalidURL:
        raise ProviderError("The bot's provider base URL is not a valid URL.",
                            detail="invalid URL") from None
    except TimeoutError:
        if submit:
            raise _uncertain(op, f"no answer within {limit_s:g}s") from None
        raise _Transient(TimedOut(detail=f"no answer within {limit_s:g}s")) from None
    except (aiohttp.ClientError, OSError) as exc:
        detail = f"connection lost ({type(exc).__name__})"
        if submit:
            raise _uncertain(op, detail) from None
        raise _Transient(ProviderDown(detail=detail)) from None

    error = classify(reply)
    if error is None:
        return reply
    if isinstance(error, RateLimited):
        raise _Transient(error, retry_after=error.retry_after)
    if submit and isinstance(error, UpstreamRefused):
        log.warning("%s: refused by the provider (%s); nothing was created", op, error.detail)
        raise error
    if isinstance(error, ProviderDown | TimedOut):
        if submit:
            raise _uncertain(op, error.detail or f"HTTP {reply.status}")
        raise _Transient(error, retry_after=parse_retry_after(reply.headers.get("Retry-After")))
    if submit and isinstance(error, TaskNotFound):
        # A create names no task yet: a 404 here means the address is wrong.
        log.error("%s: %s answered 404 (%s); check the provider's base URL", op,
                  _where(url), error.detail)
        raise EndpointNotFound(detail=error.detail) from None
    raise error


def _where(url: str) -> str:
    """scheme://host[:port]/path of a request URL: no user info, no query string."""
    try:
        parsed = yarl.URL(url)
        return str(parsed.with_user(None).with_query(None).with_fragment(None))
    except (TypeError, ValueError):
        return "<unparseable URL>"


def _uncertain(op: str, detail: str) -> SubmitUncertain:
    log.warning("%s: outcome unknown (%s); the request will not be re-sent", op, detail)
    return SubmitUncertain(detail=detail)


async def _send(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    op: str,
    headers: Mapping[str, str],
    classify: Classifier,
    policy: RetryPolicy,
    body: Any = None,
    params: Mapping[str, str] | None = None,
    submit: bool = False,
    limiter: AsyncLimiter | None = None,
) -> Reply:
    started = time.monotonic()

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        hint = exc.retry_after if isinstance(exc, _Transient) else None
        return max(hint or 0.0, policy.backoff(state.attempt_number))

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _Transient):
            log.warning("%s: %s (%s); attempt %d failed, retrying in %.2fs", op,
                        exc.error.code, exc.error.detail, state.attempt_number,
                        state.upcoming_sleep)

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts) | stop_before_delay(policy.max_total),
        wait=wait,
        retry=retry_if_exception_type(_Transient),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                if limiter is not None:  # the provider's request rate, before every attempt
                    await limiter.acquire()
                limit_s = policy.timeout
                if not submit:  # keep reads inside the total budget
                    left = policy.max_total - (time.monotonic() - started)
                    limit_s = max(min(limit_s, left), min(limit_s, 1.0))
                return await _once(session, method, url, op=op, headers=headers, body=body,
                                   params=params, limit_s=limit_s, classify=classify,
                                   submit=submit)
    except _Transient as exc:
        log.warning("%s: giving up after %.1fs: %s (%s)", op, time.monotonic() - started,
                    exc.error.code, exc.error.detail)
        raise exc.error from None
    raise AssertionError("unreachable: the retry loop neither returned nor raised")


async def get_json(
    session: aiohttp.ClientSession,
    url: str,
    *,
    op: str,
    headers: Mapping[str, str],
    classify: Classifier,
    policy: RetryPolicy = STATUS_RETRY,
    params: Mapping[str, str] | None = None,
    limiter: AsyncLimiter | None = None,
) -> Reply:
    """A read (status, balance, key check): transient failures are retried."""
    return await _send(session, "GET", url, op=op, headers=headers, classify=classify,
                       policy=policy, params=params, limiter=limiter)


async def call_json(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    op: str,
    headers: Mapping[str, str],
    classify: Classifier,
    policy: RetryPolicy = STATUS_RETRY,
    body: Any = None,
    limiter: AsyncLimiter | None = None,
) -> Reply:
    """An idempotent call other than a read (a cancel): retried like a read."""
    return await _send(session, method, url, op=op, headers=headers, classify=classify,
                       policy=policy, body=body, limiter=limiter)


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    body: Any,
    *,
    op: str,
    headers: Mapping[str, str],
    classify: Classifier,
    policy: RetryPolicy = SUBMIT_RETRY,
    submit: bool = True,
    limiter: AsyncLimiter | None = None,
    params: Mapping[str, str] | None = None,
) -> Reply:
    """A POST; with ``submit`` (the default) it follows the create rules above."""
    return await _send(session, "POST", url, op=op, headers=headers, classify=classify,
                       policy=policy, body=body, params=params, submit=submit,
                       limiter=limiter)
