"""The webhook signature checks of fal.ai (ED25519, keys from a JWKS document) and Replicate
(Standard Webhooks), with real keys made here and a real key server on 127.0.0.1: good
signatures pass; unsigned, wrongly signed, stale, future, malformed and altered webhooks are
refused; keys are fetched again on a rotation or when a day old, at most once a minute
(failed fetches too), one fetch shared by concurrent checks; no secret is ever shown."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from multidict import CIMultiDict, CIMultiDictProxy
from standardwebhooks.webhooks import Webhook

from bot.providers import signing
from bot.providers.signing import (
    FalWebhookVerifier,
    ReplicateWebhookVerifier,
    WebhookRejected,
    WebhookUnverifiable,
)
from tests.providers.signing_keys import (
    BODY,
    NOW,
    Clock,
    KeyServer,
    flip_one_byte,
    new_secret,
)


@pytest.fixture
async def keys(caplog: pytest.LogCaptureFixture) -> AsyncIterator[KeyServer]:
    caplog.set_level(logging.DEBUG, logger="bot.providers.signing")
    server = await KeyServer().start()
    yield server
    await server.close()
    server.assert_clean(caplog.text)  # no secret, key or signature was logged


def fal(keys: KeyServer, session: aiohttp.ClientSession, clock: Clock,
        **options: float) -> FalWebhookVerifier:
    return FalWebhookVerifier(session, f"{keys.base}/.well-known/jwks.json", clock=clock,
                              **options)


def replicate(keys: KeyServer, session: aiohttp.ClientSession,
              clock: Clock) -> ReplicateWebhookVerifier:
    return ReplicateWebhookVerifier(session, f"{keys.base}/v1/", keys.api_key, clock=clock)


async def refused(keys: KeyServer, check: Awaitable[str], kind: type[Exception] = WebhookRejected
                  ) -> Any:
    with pytest.raises(kind) as info:
        await check
    keys.assert_clean(info.value)
    return info.value


# fal.ai


async def test_fal_accepts_good_signatures_in_any_header_case(
    keys: KeyServer, session: aiohttp.ClientSession
) -> None:
    verifier = fal(keys, session, Clock())
    keys.assert_clean(verifier)
    aiohttp_headers = CIMultiDictProxy(CIMultiDict(keys.fal_headers()))
    assert await verifier.verify(aiohttp_headers, BODY) == "req-1"
    lower = {k.lower(): v for k, v in keys.fal_headers().items()}
    assert await verifier.verify(lower, BODY) == "req-1"
    assert await verifier.verify(keys.fal_headers(stamp=NOW - 300), BODY) == "req-1"
    assert await verifier.verify(keys.fal_headers(stamp=NOW + 300), BODY) == "req-1"
    assert keys.jwks_fetches == 1 and keys.jwks_auth == [None]  # kept; no credential sent
    assert repr(verifier) == "FalWebhookVerifier(keys=1)"  # the broken entries passed over


FAL_REFUSALS = {  # what is wrong -> the status the web server answers
    "unsigned": 401, "no request id": 401, "no user id": 401, "no timestamp": 401,
    "no signature": 401, "other key": 401, "altered body": 401, "other request id": 401,
    "other timestamp": 401, "stale": 400, "future": 400, "not hex": 400,
    "short signature": 400, "timestamp not whole": 400, "timestamp huge": 400,
    "id spans lines": 400,
}


@pytest.mark.parametrize("what", list(FAL_REFUSALS))
async def test_fal_refuses(keys: KeyServer, session: aiohttp.ClientSession, what: str) -> None:
    verifier = fal(keys, session, Clock())
    body, headers = BODY, keys.fal_headers()
    drop = {"no request id": "X-Fal-Webhook-Request-Id", "no user id": "X-Fal-Webhook-User-Id",
            "no timestamp": "X-Fal-Webhook-Timestamp", "no signature": "X-Fal-Webhook-Signature"}
    if what == "unsigned":
        headers = {"Content-Type": "application/json"}
    elif what in drop:
        del headers[drop[what]]
    elif what == "other key":
        headers = keys.fal_headers(key=Ed25519PrivateKey.generate())
    elif what == "altered body":
        body = flip_one_byte(BODY)
    elif what == "other request id":  # the signature covers the request id
        headers["X-Fal-Webhook-Request-Id"] = "req-2"
    elif what == "other timestamp":
        headers["X-Fal-Webhook-Timestamp"] = str(int(NOW) + 1)
    elif what == "stale":
        headers = keys.fal_headers(stamp=NOW - 301)
    elif what == "future":
        headers = keys.fal_headers(stamp=NOW + 301)
    elif what == "not hex":
        headers["X-Fal-Webhook-Signature"] = "zz" * 64
    elif what == "short signature":
        headers["X-Fal-Webhook-Signature"] = headers["X-Fal-Webhook-Signature"][:-2]
    elif what == "timestamp not whole":
        headers["X-Fal-Webhook-Timestamp"] = f"{int(NOW)}.0"
    elif what == "timestamp huge":
        headers["X-Fal-Webhook-Timestamp"] = "9" * 5000
    elif what == "id spans lines":
        headers["X-Fal-Webhook-Request-Id"] = "req-1\nuser-9"
    error = await refused(keys, verifier.verify(headers, body))
    assert error.status == FAL_REFUSALS[what] and error.reason
    # Only a well-formed, fresh webhook may make the bot fetch the keys.
    assert keys.jwks_fetches == (1 if FAL_REFUSALS[what] == 401 and "no" not in what
                                 and what != "unsigned" else 0)


async def test_fal_picks_up_a_rotated_key_at_most_once_a_minute(
    keys: KeyServer, session: aiohttp.ClientSession
) -> None:
    clock = Clock()
    verifier = fal(keys, session, clock)
    assert await verifier.verify(keys.fal_headers(), BODY) == "req-1"
    keys.fal_keys = [("k2", Ed25519PrivateKey.generate())]  # rotated: a new kid signs
    clock.now += 30  # too soon after the last fetch: refused, nothing fetched
    await refused(keys, verifier.verify(keys.fal_headers(stamp=clock.now), BODY))
    assert keys.jwks_fetches == 1
    clock.now += 31
    assert await verifier.verify(keys.fal_headers(stamp=clock.now), BODY) == "req-1"
    assert keys.jwks_fetches == 2
    keys.fal_keys.append(("k3", Ed25519PrivateKey.generate()))  # another unknown key
    clock.now += 10
    k3_signed = keys.fal_headers(stamp=clock.now)
    await refused(keys, verifier.verify(k3_signed, BODY))  # within the minute: no fetch
    assert keys.jwks_fetches == 2
    clock.now += 51
    assert await verifier.verify(keys.fal_headers(stamp=clock.now), BODY) == "req-1"
    k2_signed = keys.fal_headers(stamp=clock.now, key=keys.fal_keys[0][1])
    assert await verifier.verify(k2_signed, BODY) == "req-1"  # every listed key counts
    assert keys.jwks_fetches == 3


async def test_fal_concurrent_checks_share_one_fetch(
    keys: KeyServer, session: aiohttp.ClientSession
) -> None:
    clock = Clock()
    verifier = fal(keys, session, clock)
    keys.delay = 0.05  # every check is waiting before the first fetch ends
    checks = [verifier.verify(keys.fal_headers(), BODY) for _ in range(20)]
    assert await asyncio.gather(*checks) == ["req-1"] * 20
    assert keys.jwks_fetches == 1
    keys.fal_keys = [("k2", Ed25519PrivateKey.generate())]
    clock.now += 61  # a rotation: all twenty are signed by the new key, one fetch serves all
    checks = [verifier.verify(keys.fal_headers(stamp=clock.now), BODY) for _ in range(20)]
    assert await asyncio.gather(*checks) == ["req-1"] * 20
    assert keys.jwks_fetches == 2


async def test_fal_keys_expire_after_cache_s(
    keys: KeyServer, session: aiohttp.ClientSession
) -> None:
    clock = Clock()
    verifier = fal(keys, session, clock, cache_s=3600)
    assert await verifier.verify(keys.fal_headers(), BODY) == "req-1"
    clock.now += 3599
    assert await verifier.verify(keys.fal_headers(stamp=clock.now), BODY) == "req-1"
    assert keys.jwks_fetches == 1
    clock.now += 1  # expired: fetched again though the kept key still verifies
    assert await verifier.verify(keys.fal_headers(stamp=clock.now), BODY) == "req-1"
    assert keys.jwks_fetches == 2
    clock.now += 3600
    keys.jwks_status = 503  # expired keys are not used when no fresh ones can be had
    await refused(keys, verifier.verify(keys.fal_headers(stamp=clock.now), BODY),
                  WebhookUnverifiable)
    clock.now += 61  # nor after that failed fetch
    await refused(keys, verifier.verify(keys.fal_headers(stamp=clock.now), BODY),
                  WebhookUnverifiable)
    assert keys.jwks_fetches == 4


async def test_fal_without_its_keys_is_unverifiable_and_asks_once_a_minute(
    keys: KeyServer, session: aiohttp.ClientSession
) -> None:
    clock = Clock()
    verifier = fal(keys, session, clock)
    keys.jwks_status = 503
    await refused(keys, verifier.verify(keys.fal_headers(), BODY), WebhookUnverifiable)
    keys.delay = 0.05
    checks = [verifier.verify(keys.fal_headers(), BODY) for _ in range(10)]
    for result in await asyncio.gather(*checks, return_exceptions=True):
        assert isinstance(result, WebhookUnverifiable)
    assert keys.jwks_fetches == 1  # an outage is not hammered
    keys.jwks_status = 200
    clock.now += 61
    assert await verifier.verify(keys.fal_headers(stamp=clock.now), BODY) == "req-1"
    assert keys.jwks_fetches == 2


@pytest.mark.parametrize("trouble", ["no ed25519 key", "not json", "unreachable", "timeout"])
async def test_fal_unusable_keys_are_unverifiable(
    keys: KeyServer, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch,
    trouble: str
) -> None:
    verifier, headers = fal(keys, session, Clock()), keys.fal_headers()
    if trouble == "no ed25519 key":
        keys.fal_keys = []  # only the entries that are passed over
    elif trouble == "not json":
        keys.jwks_text = "<html>maintenance</html>"
    elif trouble == "unreachable":
        with socket.socket() as sock:  # a loopback port that nothing listens on
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        verifier = FalWebhookVerifier(session, f"http://127.0.0.1:{port}/jwks.json",
                                      clock=Clock())
    elif trouble == "timeout":
        monkeypatch.setattr(signing, "FETCH_TIMEOUT_S", 0.1)
        keys.delay = 1.0
    await refused(keys, verifier.verify(headers, BODY), WebhookUnverifiable)


# Replicate


async def test_replicate_accepts_a_good_signature(
    keys: KeyServer, session: aiohttp.ClientSession
) -> None:
    verifier = replicate(keys, session, Clock())
    assert await verifier.verify(keys.replicate_headers(), BODY) == "msg_1"
    title_case = {k.title(): v for k, v in keys.replicate_headers(stamp=NOW - 300).items()}
    assert await verifier.verify(title_case, BODY) == "msg_1"
    assert await verifier.verify(CIMultiDictProxy(CIMultiDict(
        keys.replicate_headers(stamp=NOW + 300))), BODY) == "msg_1"
    assert keys.secret_fetches == 1 and keys.bearer == [f"Bearer {keys.api_key}"]
    keys.assert_clean(verifier)
    # The library agrees with what was accepted (its own clock: a fresh timestamp).
    now = datetime.now(UTC).timestamp()
    Webhook(keys.secret).verify(BODY, keys.replicate_headers(stamp=now), json_parse=False)


REPLICATE_REFUSALS = {
    "unsigned": 401, "no id": 401, "no timestamp": 401, "no signature": 401,
    "wrong secret": 401, "altered body": 401, "other id": 401, "stale": 400, "future": 400,
    "timestamp not whole": 400, "no v1 entry": 400,
}


@pytest.mark.parametrize("what", list(REPLICATE_REFUSALS))
async def test_replicate_refuses(
    keys: KeyServer, session: aiohttp.ClientSession, what: str
) -> None:
    verifier = replicate(keys, session, Clock())
    body, headers = BODY, keys.replicate_headers()
    drop = {"no id": "webhook-id", "no timestamp": "webhook-timestamp",
            "no signature": "webhook-signature"}
    if what == "unsigned":
        headers = {}
    elif what in drop:
        del headers[drop[what]]
    elif what == "wrong secret":
        headers = keys.replicate_headers(secret=new_secret())
    elif what == "altered body":
        body = flip_one_byte(BODY)
    elif what == "other id":
        headers["webhook-id"] = "msg_2"
    elif what == "stale":
        headers = keys.replicate_headers(stamp=NOW - 301)
    elif what == "future":
        headers = keys.replicate_headers(stamp=NOW + 301)
    elif what == "timestamp not whole":
        headers["webhook-timestamp"] = "soon"
    elif what == "no v1 entry":
        headers["webhook-signature"] = headers["webhook-signature"].replace("v1,", "v2,")
    error = await refused(keys, verifier.verify(headers, body))
    assert error.status == REPLICATE_REFUSALS[what]


async def test_replicate_picks_up_a_rotated_secret_once(
    keys: KeyServer, session: aiohttp.ClientSession
) -> None:
    clock = Clock()
    verifier = replicate(keys, session, clock)
    keys.delay = 0.05
    checks = [verifier.verify(keys.replicate_headers(), BODY) for _ in range(10)]
    assert await asyncio.gather(*checks) == ["msg_1"] * 10
    assert keys.secret_fetches == 1  # concurrent checks shared the first fetch
    keys.rotate_secret()
    clock.now += 30  # within the minute: the kept secret rules, nothing fetched
    await refused(keys, verifier.verify(keys.replicate_headers(stamp=clock.now), BODY))
    assert keys.secret_fetches == 1
    clock.now += 31
    assert await verifier.verify(keys.replicate_headers(stamp=clock.now), BODY) == "msg_1"
    assert await verifier.verify(keys.replicate_headers(stamp=clock.now), BODY) == "msg_1"
    assert keys.secret_fetches == 2


@pytest.mark.parametrize("status", [401, 403])
async def test_replicate_with_a_refused_api_key_is_unverifiable(
    keys: KeyServer, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture,
    status: int
) -> None:
    clock = Clock()
    verifier = replicate(keys, session, clock)
    keys.secret_status = status
    await refused(keys, verifier.verify(keys.replicate_headers(), BODY), WebhookUnverifiable)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "REPLICATE_API_KEY" in errors[0].getMessage()
    await refused(keys, verifier.verify(keys.replicate_headers(), BODY), WebhookUnverifiable)
    assert keys.secret_fetches == 1  # the key is not tried again within the minute
    keys.secret_status = 200
    clock.now += 61
    assert await verifier.verify(keys.replicate_headers(stamp=clock.now), BODY) == "msg_1"
    keys.assert_clean(verifier, caplog.text)


@pytest.mark.parametrize("trouble", ["server error", "no key", "malformed key"])
async def test_replicate_without_a_secret_is_unverifiable(
    keys: KeyServer, session: aiohttp.ClientSession, trouble: str
) -> None:
    if trouble == "server error":
        keys.secret_status = 500
    elif trouble == "no key":
        keys.secret = ""
    else:
        keys.secret = "whsec_"  # decodes to nothing
    verifier = replicate(keys, session, Clock())
    await refused(keys, verifier.verify(keys.replicate_headers(secret=new_secret()), BODY),
                  WebhookUnverifiable)


# Both documents


@pytest.mark.parametrize("pieces", [2, 7])
async def test_documents_that_arrive_in_pieces_are_read_whole(
    keys: KeyServer, session: aiohttp.ClientSession, pieces: int
) -> None:
    keys.pieces = pieces
    assert await fal(keys, session, Clock()).verify(keys.fal_headers(), BODY) == "req-1"
    assert await replicate(keys, session, Clock()).verify(
        keys.replicate_headers(), BODY) == "msg_1"
    assert keys.jwks_fetches == 1 and keys.secret_fetches == 1


async def test_a_document_over_the_size_cap_is_unverifiable(
    keys: KeyServer, session: aiohttp.ClientSession
) -> None:
    keys.pieces = 4
    keys.jwks_text = '{"keys": [], "pad": "' + "x" * (64 * 1024) + '"}'
    await refused(keys, fal(keys, session, Clock()).verify(keys.fal_headers(), BODY),
                  WebhookUnverifiable)
