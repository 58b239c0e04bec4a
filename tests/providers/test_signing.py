"""The webhook signature checks of fal.ai (ED25519, keys from a JWKS document) and Replicate
(Standard Webhooks), with real keys and a real key server on 127.0.0.1: good signatures
pass; unsigned, wrongly signed, stale, future and altered webhooks are refused; keys are
fetched again on a rotation, but never more than once a minute."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from standardwebhooks.webhooks import Webhook

from bot.providers.errors import WebhookRejected, WebhookUnverifiable
from bot.providers.signing import FalWebhookVerifier, ReplicateWebhookVerifier

BODY = b'{"request_id": "req-1", "status": "OK", "payload": {"video": {"url": "u"}}}'
NOW = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


class KeyServer:
    """A JWKS document and a Standard Webhooks secret, served on loopback."""

    def __init__(self) -> None:
        self.keys: list[tuple[str, Ed25519PrivateKey]] = [("k1", Ed25519PrivateKey.generate())]
        self.secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
        self.jwks_fetches = self.secret_fetches = 0
        self.secret_status = 200
        self.jwks_status = 200
        self.bearer: list[str | None] = []
        self.base = ""

    def jwk(self, kid: str, key: Ed25519PrivateKey) -> dict[str, str]:
        raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        x = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid}

    async def jwks(self, request: web.Request) -> web.Response:
        self.jwks_fetches += 1
        assert "Authorization" not in request.headers  # fal's keys need no credential
        if self.jwks_status != 200:
            return web.json_response({"detail": "down"}, status=self.jwks_status)
        keys = [self.jwk(kid, key) for kid, key in self.keys]
        keys.append({"kty": "RSA", "n": "x", "e": "AQAB", "kid": "rsa"})  # ignored
        return web.json_response({"keys": keys})

    async def replicate_secret(self, request: web.Request) -> web.Response:
        self.secret_fetches += 1
        self.bearer.append(request.headers.get("Authorization"))
        if self.secret_status != 200:
            return web.json_response({"detail": "no"}, status=self.secret_status)
        return web.json_response({"key": self.secret})

    def fal_headers(self, body: bytes = BODY, *, stamp: float = NOW, key: Any = None,
                    request_id: str = "req-1") -> dict[str, str]:
        signer = key or self.keys[-1][1]
        message = "\n".join((request_id, "user-9", str(int(stamp)),
                             hashlib.sha256(body).hexdigest())).encode()
        return {"X-Fal-Webhook-Request-Id": request_id, "X-Fal-Webhook-User-Id": "user-9",
                "X-Fal-Webhook-Timestamp": str(int(stamp)),
                "X-Fal-Webhook-Signature": signer.sign(message).hex()}

    def replicate_headers(self, body: bytes = BODY, *, stamp: float = NOW,
                          secret: str | None = None) -> dict[str, str]:
        signature = Webhook(secret or self.secret).sign(
            "msg_1", datetime.fromtimestamp(stamp, UTC), body)
        return {"webhook-id": "msg_1", "webhook-timestamp": str(int(stamp)),
                "webhook-signature": f"v1,bm90IHRoaXMgb25l {signature}"}


@pytest.fixture
async def keys() -> AsyncIterator[KeyServer]:
    server = KeyServer()
    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", server.jwks)
    app.router.add_get("/v1/webhooks/default/secret", server.replicate_secret)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield server
    await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def fal(keys: KeyServer, session: aiohttp.ClientSession, clock: Clock) -> FalWebhookVerifier:
    return FalWebhookVerifier(session, f"{keys.base}/.well-known/jwks.json", clock=clock)


async def test_fal_accepts_a_good_signature(keys: KeyServer, session: Any) -> None:
    verifier = fal(keys, session, Clock())
    headers = {k.lower(): v for k, v in keys.fal_headers().items()}  # any header case
    assert await verifier.verify(headers, BODY) == "req-1"
    assert await verifier.verify(keys.fal_headers(), BODY) == "req-1"
    assert keys.jwks_fetches == 1  # kept


@pytest.mark.parametrize("what", ["unsigned", "other key", "altered", "stale", "future",
                                  "not hex", "other request"])
async def test_fal_refuses(keys: KeyServer, session: Any, what: str) -> None:
    clock = Clock()
    verifier = fal(keys, session, clock)
    body, headers = BODY, keys.fal_headers()
    if what == "unsigned":
        headers = {}
    elif what == "other key":
        headers = keys.fal_headers(key=Ed25519PrivateKey.generate())
    elif what == "altered":
        body = BODY.replace(b"OK", b"OK ")
    elif what == "stale":
        headers = keys.fal_headers(stamp=NOW - 301)
    elif what == "future":
        headers = keys.fal_headers(stamp=NOW + 301)
    elif what == "not hex":
        headers["X-Fal-Webhook-Signature"] = "zz" * 64
    elif what == "other request":  # the signature covers the request id
        headers["X-Fal-Webhook-Request-Id"] = "req-2"
    with pytest.raises(WebhookRejected) as info:
        await verifier.verify(headers, body)
    assert info.value.status in (400, 401)


async def test_fal_picks_up_a_rotated_key_once_a_minute(keys: KeyServer, session: Any) -> None:
    clock = Clock()
    verifier = fal(keys, session, clock)
    assert await verifier.verify(keys.fal_headers(), BODY) == "req-1"
    keys.keys = [("k2", Ed25519PrivateKey.generate())]  # rotated: an unknown kid signs
    clock.now += 61
    assert await verifier.verify(keys.fal_headers(stamp=clock.now), BODY) == "req-1"
    assert keys.jwks_fetches == 2
    # A forged webhook right after makes no fetch (one a minute at most) and is refused.
    with pytest.raises(WebhookRejected):
        await verifier.verify(
            keys.fal_headers(stamp=clock.now, key=Ed25519PrivateKey.generate()), BODY)
    assert keys.jwks_fetches == 2
    keys.keys.append(("k3", Ed25519PrivateKey.generate()))
    with pytest.raises(WebhookRejected):  # still within the minute: not fetched yet
        await verifier.verify(keys.fal_headers(stamp=clock.now), BODY)
    clock.now += 61
    assert await verifier.verify(keys.fal_headers(stamp=clock.now), BODY) == "req-1"
    assert keys.jwks_fetches == 3


async def test_fal_keys_expire_after_a_day_and_concurrent_checks_share_a_fetch(
    keys: KeyServer, session: Any
) -> None:
    clock = Clock()
    verifier = fal(keys, session, clock)
    checks = [verifier.verify(keys.fal_headers(), BODY) for _ in range(20)]
    assert await asyncio.gather(*checks) == ["req-1"] * 20
    assert keys.jwks_fetches == 1
    clock.now += 24 * 3600
    assert await verifier.verify(keys.fal_headers(stamp=clock.now), BODY) == "req-1"
    assert keys.jwks_fetches == 2


async def test_fal_without_its_keys_is_unverifiable(keys: KeyServer, session: Any) -> None:
    keys.jwks_status = 503
    with pytest.raises(WebhookUnverifiable):
        await fal(keys, session, Clock()).verify(keys.fal_headers(), BODY)
    nowhere = FalWebhookVerifier(session, "http://127.0.0.1:9/jwks.json", clock=Clock())
    with pytest.raises(WebhookUnverifiable):
        await nowhere.verify(keys.fal_headers(), BODY)


def replicate(keys: KeyServer, session: Any, clock: Clock,
              key: str = "r8_secret_api_key") -> ReplicateWebhookVerifier:
    return ReplicateWebhookVerifier(session, f"{keys.base}/v1", key, clock=clock)


async def test_replicate_accepts_a_good_signature(keys: KeyServer, session: Any) -> None:
    verifier = replicate(keys, session, Clock())
    assert await verifier.verify(keys.replicate_headers(), BODY) == "msg_1"
    assert await verifier.verify(keys.replicate_headers(), BODY) == "msg_1"
    assert keys.secret_fetches == 1 and keys.bearer == ["Bearer r8_secret_api_key"]
    # The library that implements the scheme agrees (its own clock: a fresh timestamp).
    now = datetime.now(UTC).timestamp()
    Webhook(keys.secret).verify(BODY, keys.replicate_headers(stamp=now))


@pytest.mark.parametrize("what", ["unsigned", "wrong secret", "altered", "stale", "future"])
async def test_replicate_refuses(keys: KeyServer, session: Any, what: str) -> None:
    verifier = replicate(keys, session, Clock())
    body, headers = BODY, keys.replicate_headers()
    if what == "unsigned":
        headers = {"webhook-id": "msg_1"}
    elif what == "wrong secret":
        other = "whsec_" + base64.b64encode(os.urandom(32)).decode()
        headers = keys.replicate_headers(secret=other)
    elif what == "altered":
        body = BODY + b" "
    elif what == "stale":
        headers = keys.replicate_headers(stamp=NOW - 301)
    elif what == "future":
        headers = keys.replicate_headers(stamp=NOW + 301)
    with pytest.raises(WebhookRejected):
        await verifier.verify(headers, body)


async def test_replicate_picks_up_a_rotated_secret(keys: KeyServer, session: Any) -> None:
    clock = Clock()
    verifier = replicate(keys, session, clock)
    assert await verifier.verify(keys.replicate_headers(), BODY) == "msg_1"
    keys.secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    with pytest.raises(WebhookRejected):  # within the minute: the old secret still rules
        await verifier.verify(keys.replicate_headers(), BODY)
    clock.now += 61
    assert await verifier.verify(keys.replicate_headers(stamp=clock.now), BODY) == "msg_1"
    assert keys.secret_fetches == 2


async def test_replicate_with_a_refused_key_is_unverifiable_and_secret_free(
    keys: KeyServer, session: Any, caplog: pytest.LogCaptureFixture
) -> None:
    keys.secret_status = 401
    verifier = replicate(keys, session, Clock(), key="r8_do_not_leak")
    with pytest.raises(WebhookUnverifiable) as info:
        await verifier.verify(keys.replicate_headers(), BODY)
    assert "REPLICATE_API_KEY" in caplog.text
    for text in (caplog.text, str(info.value), repr(verifier)):
        assert "r8_do_not_leak" not in text and keys.secret not in text
