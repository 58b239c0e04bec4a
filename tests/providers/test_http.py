"""The shared HTTP plumbing: Retry-After parsing, read retries, and the create rules."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest

from bot.catalog import get_model
from bot.providers.apixo import ApixoProvider
from bot.providers.base import GenerationRequest
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
    TimedOut,
)
from bot.providers.http import (
    Reply,
    RetryPolicy,
    describe,
    error_for_status,
    get_json,
    parse_retry_after,
    post_json,
)
from tests.providers.helpers import KEY, ScriptServer, Step, unused_port

FAST = RetryPolicy.fast(attempts=4, timeout=0.5)
SPEC = get_model("apixo", "sora-2")
CREATED = {"code": 200, "message": "success", "data": {"taskId": "task_1"}}
REQUEST = GenerationRequest(prompt="a lighthouse in a storm", duration=4)


def classify(reply: Reply) -> ProviderError | None:
    return None if reply.ok else error_for_status(reply.status, describe(reply.status),
                                                  reply.headers)


def apixo(server: ScriptServer, session: aiohttp.ClientSession, **kw: RetryPolicy) -> ApixoProvider:
    return ApixoProvider(session, server.url + "/api/v1", KEY,
                         retry=kw.get("retry", FAST), submit_retry=kw.get("submit_retry", FAST))


# ----- Retry-After -------------------------------------------------------------------------
NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-5", 0.0),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        ("Fri, 01 May 2026 12:00:10 GMT", 10.0),
        (format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_policy_defaults_and_validation() -> None:
    default = RetryPolicy()
    assert (default.attempts, default.base_delay, default.max_delay, default.max_total,
            default.timeout) == (5, 0.5, 20.0, 90.0, 30.0)
    assert RetryPolicy.fast(attempts=7).attempts == 7
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)
    for attempt in range(1, 12):
        assert 0 < default.backoff(attempt) <= default.max_delay


# ----- reads ---------------------------------------------------------------------------------
async def test_status_503_twice_then_200(server: ScriptServer, session: aiohttp.ClientSession
                                         ) -> None:
    server.then(Step(503), Step(503), Step(200, {"fine": 1}))
    reply = await get_json(session, server.url + "/s", op="t", headers={}, classify=classify,
                           policy=FAST)
    assert reply.status == 200 and reply.body == {"fine": 1}
    assert server.count("GET") == 3


async def test_status_gives_up_with_typed_errors(server: ScriptServer,
                                                 session: aiohttp.ClientSession) -> None:
    server.default = Step(429, {}, headers={"Retry-After": "0"})
    with pytest.raises(RateLimited) as info:
        await get_json(session, server.url, op="t", headers={}, classify=classify, policy=FAST)
    assert info.value.retry_after == 0.0
    assert server.count("GET") == FAST.attempts

    server.default = Step(500)
    with pytest.raises(ProviderDown):
        await get_json(session, server.url, op="t", headers={}, classify=classify, policy=FAST)

    server.default = Step(200, {}, delay=0.5)
    slow = RetryPolicy.fast(attempts=2, timeout=0.1)
    with pytest.raises(TimedOut):
        await get_json(session, server.url, op="t", headers={}, classify=classify, policy=slow)


async def test_status_4xx_is_not_retried(server: ScriptServer,
                                         session: aiohttp.ClientSession) -> None:
    server.default = Step(401, {"code": 401, "message": "bad key"})
    with pytest.raises(AuthenticationFailed):
        await get_json(session, server.url, op="t", headers={}, classify=classify, policy=FAST)
    assert server.count("GET") == 1


async def test_retry_after_is_honoured(server: ScriptServer,
                                       session: aiohttp.ClientSession) -> None:
    server.then(Step(429, {}, headers={"Retry-After": "1"}), Step(200, {}))
    started = time.monotonic()
    await get_json(session, server.url, op="t", headers={}, classify=classify, policy=FAST)
    assert time.monotonic() - started >= 0.95  # backoff alone would be ~0.01 s
    assert server.count("GET") == 2


async def test_retry_after_beyond_the_budget_gives_up_at_once(
    server: ScriptServer, session: aiohttp.ClientSession
) -> None:
    server.default = Step(429, {}, headers={"Retry-After": "30"})
    started = time.monotonic()
    with pytest.raises(RateLimited) as info:
        await get_json(session, server.url, op="t", headers={}, classify=classify,
                       policy=RetryPolicy.fast(max_total=2.0))
    assert info.value.retry_after == 30.0
    assert time.monotonic() - started < 1.0
    assert server.count("GET") == 1


async def test_total_time_is_bounded(server: ScriptServer,
                                     session: aiohttp.ClientSession) -> None:
    server.default = Step(503)
    policy = RetryPolicy(attempts=50, base_delay=0.2, max_delay=0.2, max_total=1.0, timeout=1.0)
    started = time.monotonic()
    with pytest.raises(ProviderDown):
        await get_json(session, server.url, op="t", headers={}, classify=classify, policy=policy)
    assert time.monotonic() - started < 1.5
    assert 2 <= server.count("GET") < 50


async def test_connection_refused_is_retried_then_raises(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{unused_port()}/x"
    caplog.set_level(logging.WARNING, logger="bot.providers.http")
    with pytest.raises(ProviderDown, match="could not connect"):
        await get_json(session, url, op="probe", headers={}, classify=classify, policy=FAST)
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == FAST.attempts - 1


# ----- creates -------------------------------------------------------------------------------
async def test_submit_429_twice_then_created(server: ScriptServer,
                                             session: aiohttp.ClientSession) -> None:
    server.then(Step(429, {"code": 429, "message": "Rate limit exceeded"}),
                Step(429, {"code": 429, "message": "Rate limit exceeded"}), Step(200, CREATED))
    task_id = await apixo(server, session).submit(SPEC, REQUEST)
    assert task_id == "task_1"
    assert server.count("POST") == 3


async def test_submit_429_in_the_body_is_retried_too(server: ScriptServer,
                                                     session: aiohttp.ClientSession) -> None:
    server.then(Step(200, {"code": 429, "message": "Too many requests", "data": None}),
                Step(200, CREATED))
    assert await apixo(server, session).submit(SPEC, REQUEST) == "task_1"
    assert server.count("POST") == 2


async def test_submit_429_exhausted_raises_rate_limited(server: ScriptServer,
                                                        session: aiohttp.ClientSession) -> None:
    server.default = Step(429, {"code": 429, "message": "slow down"},
                          headers={"Retry-After": "0"})
    with pytest.raises(RateLimited) as info:
        await apixo(server, session).submit(SPEC, REQUEST)
    assert info.value.retry_after == 0.0
    assert server.count("POST") == FAST.attempts


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_submit_5xx_is_uncertain_and_never_resent(
    server: ScriptServer, session: aiohttp.ClientSession, status: int
) -> None:
    server.then(Step(status, {"code": status, "message": "Internal server error"}))
    server.default = Step(200, CREATED)
    with pytest.raises(SubmitUncertain):
        await apixo(server, session).submit(SPEC, REQUEST)
    assert server.count("POST") == 1


async def test_submit_timeout_is_uncertain_and_never_resent(
    server: ScriptServer, session: aiohttp.ClientSession
) -> None:
    server.then(Step(200, CREATED, delay=1.0))
    provider = apixo(server, session, submit_retry=RetryPolicy.fast(timeout=0.2))
    with pytest.raises(SubmitUncertain, match="no answer"):
        await provider.submit(SPEC, REQUEST)
    assert server.count("POST") == 1


async def test_submit_dropped_connection_is_uncertain(server: ScriptServer,
                                                      session: aiohttp.ClientSession) -> None:
    server.then(Step(drop=True))
    with pytest.raises(SubmitUncertain, match="connection lost"):
        await apixo(server, session).submit(SPEC, REQUEST)
    assert server.count("POST") == 1


async def test_submit_connection_refused_is_retried_then_raises(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.providers.http")
    provider = ApixoProvider(session, f"http://127.0.0.1:{unused_port()}/api/v1", KEY,
                             submit_retry=FAST)
    with pytest.raises(ProviderDown):
        await provider.submit(SPEC, REQUEST)
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == FAST.attempts - 1


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, InvalidRequest), (401, AuthenticationFailed), (402, InsufficientBalance),
     (403, Forbidden), (404, EndpointNotFound)],
)
async def test_submit_4xx_maps_and_is_not_retried(
    server: ScriptServer, session: aiohttp.ClientSession, status: int,
    error: type[ProviderError]
) -> None:
    server.default = Step(status, {"code": status, "message": "nope", "data": None})
    live = SPEC.model_copy(update={"retired": False})  # a retired model's 403 means "gone"
    with pytest.raises(error):
        await apixo(server, session).submit(live, REQUEST)
    assert server.count("POST") == 1


async def test_submit_garbled_success_is_uncertain(server: ScriptServer,
                                                   session: aiohttp.ClientSession) -> None:
    server.then(Step(200, text="<html>gateway</html>"))
    with pytest.raises(SubmitUncertain):
        await apixo(server, session).submit(SPEC, REQUEST)
    server.then(Step(200, {"code": 200, "message": "success", "data": None}))
    with pytest.raises(SubmitUncertain):
        await apixo(server, session).submit(SPEC, REQUEST)
    assert server.count("POST") == 2


async def test_non_submit_post_retries_like_a_read(server: ScriptServer,
                                                   session: aiohttp.ClientSession) -> None:
    server.then(Step(500), Step(200, {}))
    await post_json(session, server.url, {}, op="t", headers={}, classify=classify,
                    policy=FAST, submit=False)
    assert server.count("POST") == 2


async def test_redirects_are_not_followed(server: ScriptServer,
                                          session: aiohttp.ClientSession) -> None:
    server.then(Step(302, {}, headers={"Location": "http://127.0.0.1:9/steal"}))
    with pytest.raises(ProviderError):
        await apixo(server, session).status(SPEC, "task_1")
    assert len(server.seen) == 1


# ----- secrets -------------------------------------------------------------------------------
async def test_secrets_stay_out_of_errors_and_logs(
    server: ScriptServer, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = f"Invalid key {KEY} for Bearer {KEY}"
    server.then(*[Step(503, {"code": 503, "message": echo})] * 2)
    server.then(Step(401, {"code": 401, "message": echo}))
    with pytest.raises(AuthenticationFailed) as info:
        await apixo(server, session).status(SPEC, "task_1")
    assert KEY not in str(info.value)
    assert KEY not in (info.value.detail or "") and "***" in (info.value.detail or "")
    assert KEY not in caplog.text
    assert server.seen[0].headers["Authorization"] == f"Bearer {KEY}"


async def test_retry_after_on_503_is_honoured_for_reads(
    server: ScriptServer, session: aiohttp.ClientSession
) -> None:
    server.then(Step(503, {}, headers={"Retry-After": "1"}), Step(200, {}))
    started = time.monotonic()
    await get_json(session, server.url, op="t", headers={}, classify=classify, policy=FAST)
    assert time.monotonic() - started >= 0.95


async def test_a_raise_for_status_session_does_not_change_the_rules(
    server: ScriptServer,
) -> None:
    async with aiohttp.ClientSession(raise_for_status=True) as strict:
        provider = ApixoProvider(strict, server.url, KEY, retry=FAST, submit_retry=FAST)
        server.then(Step(400, {"code": 400, "message": "bad"}))
        with pytest.raises(InvalidRequest):
            await provider.submit(SPEC, REQUEST)
        server.then(Step(500, {"code": 500, "message": "oops"}))
        with pytest.raises(SubmitUncertain):
            await provider.submit(SPEC, REQUEST)
    assert server.count("POST") == 2
