"""Checking the signed webhooks of fal.ai and Replicate, over the raw body, before anything
reads it.

fal.ai signs with ED25519: the signed bytes are ``request_id + "\\n" + user_id + "\\n" +
timestamp + "\\n" + sha256(body).hexdigest()``, the signature is hex in
``X-Fal-Webhook-Signature``, and the public keys are a JWKS document at ``FAL_JWKS_URL``
(fetched without credentials, kept up to a day; a webhook no kept key verifies makes one
fresh fetch, at most once a minute, so a key rotation is picked up and a flood of forged
webhooks costs one request a minute). Replicate follows Standard Webhooks: HMAC-SHA256
over ``id.timestamp.body`` with the account's secret from ``GET /webhooks/default/secret``
(kept; fetched again, at most once a minute, when a webhook does not verify with it).
Both refuse a webhook whose timestamp is more than five minutes from this host's clock.

What refuses is ``WebhookRejected`` (answered with a 4xx, nothing changes); keys that
cannot be fetched make ``WebhookUnverifiable`` (answered 503, so the provider retries).
No key, secret or signature is ever logged.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from standardwebhooks.webhooks import Webhook

from bot.providers.errors import WebhookRejected, WebhookUnverifiable

log = logging.getLogger(__name__)

TOLERANCE_S = 300.0  # a webhook older (or newer) than this is refused
REFETCH_MIN_INTERVAL_S = 60.0
JWKS_CACHE_S = 24 * 3600.0
FETCH_TIMEOUT_S = 10.0

Clock = Callable[[], float]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value whatever its case (aiohttp's headers, or a plain dict)."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value.strip() if isinstance(value, str) else None


def _timestamp(text: str | None, now: float, tolerance_s: float) -> int:
    if text is None:
        raise WebhookRejected("no signature timestamp")
    try:
        stamp = int(text)
    except ValueError:
        raise WebhookRejected("the signature timestamp is not a number", status=400) from None
    if abs(now - stamp) > tolerance_s:
        raise WebhookRejected("the signature is too old (or from the future)", status=400)
    return stamp


class _Refetch:
    """At most one fetch at a time, and none sooner than ``interval_s`` after the last."""

    def __init__(self, clock: Clock, interval_s: float) -> None:
        self._clock = clock
        self._interval_s = interval_s
        self._lock = asyncio.Lock()
        self.fetched_at: float | None = None

    def allowed(self) -> bool:
        return self.fetched_at is None or self._clock() - self.fetched_at >= self._interval_s

    async def run(self, fetch: Callable[[], Awaitable[None]], *, force: bool,
                  kept: Callable[[], bool]) -> bool:
        """Fetch again: at once when ``force``d (nothing usable is kept), else only if the
        last fetch is old enough. False when it may not fetch yet."""
        async with self._lock:
            if not force and not self.allowed():
                return False
            if force and kept():
                return True  # a concurrent webhook fetched it meanwhile
            try:
                await fetch()
            finally:
                self.fetched_at = self._clock()
            return True


async def _get_json(session: aiohttp.ClientSession, url: str, what: str,
                    headers: Mapping[str, str] | None = None) -> tuple[int, Any]:
    try:
        async with session.get(url, headers=dict(headers or {}), allow_redirects=False,
                               timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)) as resp:
            if resp.status != 200:
                return resp.status, None
            return resp.status, await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        log.warning("could not fetch %s (%s)", what, type(exc).__name__)
        raise WebhookUnverifiable(f"could not fetch {what}") from None


class FalWebhookVerifier:
    """fal.ai's ED25519 webhook signatures, with keys from its JWKS document."""

    def __init__(self, session: aiohttp.ClientSession, jwks_url: str, *,
                 clock: Clock = time.time, tolerance_s: float = TOLERANCE_S,
                 refetch_min_interval_s: float = REFETCH_MIN_INTERVAL_S,
                 cache_s: float = JWKS_CACHE_S) -> None:
        self._session = session
        self._jwks_url = jwks_url
        self._clock = clock
        self._tolerance_s = tolerance_s
        self._cache_s = cache_s
        self._keys: list[Ed25519PublicKey] = []
        self._fetch = _Refetch(clock, refetch_min_interval_s)
        self.fetches = 0

    def __repr__(self) -> str:
        return f"FalWebhookVerifier(keys={len(self._keys)})"

    async def verify(self, headers: Mapping[str, str], body: bytes) -> str:
        request_id = _header(headers, "X-Fal-Webhook-Request-Id")
        user_id = _header(headers, "X-Fal-Webhook-User-Id")
        signature_hex = _header(headers, "X-Fal-Webhook-Signature")
        if not request_id or user_id is None or not signature_hex:
            raise WebhookRejected("the webhook is not signed")
        stamp = _timestamp(_header(headers, "X-Fal-Webhook-Timestamp"), self._clock(),
                           self._tolerance_s)
        try:
            signature = bytes.fromhex(signature_hex)
        except ValueError:
            raise WebhookRejected("the signature is not hex") from None
        message = "\n".join(
            (request_id, user_id, str(stamp), hashlib.sha256(body).hexdigest())).encode()
        if self._expired():
            await self._refresh(force=True)
        if self._verifies(signature, message):
            return request_id
        if await self._refresh(force=False) and self._verifies(signature, message):
            return request_id  # a key published since the last fetch (a rotation)
        raise WebhookRejected("the signature does not verify")

    def _expired(self) -> bool:
        """No usable key set: none fetched, or the last is a day old (or came empty)."""
        fetched = self._fetch.fetched_at
        return not self._keys or fetched is None or self._clock() - fetched >= self._cache_s

    def _verifies(self, signature: bytes, message: bytes) -> bool:
        for key in self._keys:
            try:
                key.verify(signature, message)
                return True
            except InvalidSignature:
                continue
        return False

    async def _refresh(self, *, force: bool) -> bool:
        """Fetch the key set again (forced: the cache is empty or a day old); False when it
        may not be fetched again yet."""
        return await self._fetch.run(self._fetch_keys, force=force,
                                     kept=lambda: not self._expired())

    async def _fetch_keys(self) -> None:
        status, doc = await _get_json(self._session, self._jwks_url, "fal's webhook keys")
        self.fetches += 1
        if status != 200 or not isinstance(doc, dict):
            log.warning("FAL_JWKS_URL answered HTTP %s: no webhook keys", status)
            raise WebhookUnverifiable("fal's webhook keys are not available")
        self._keys = _ed25519_keys(doc)


def _ed25519_keys(doc: dict[str, Any]) -> list[Ed25519PublicKey]:
    keys: list[Ed25519PublicKey] = []
    for jwk in doc.get("keys") or ():
        if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            continue
        x = jwk.get("x")
        if not isinstance(x, str):
            continue
        try:
            raw = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
            keys.append(Ed25519PublicKey.from_public_bytes(raw))
        except ValueError:
            continue
    return keys


class ReplicateWebhookVerifier:
    """Replicate's Standard Webhooks signatures, with the account's signing secret."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, api_key: str, *,
                 clock: Clock = time.time, tolerance_s: float = TOLERANCE_S,
                 refetch_min_interval_s: float = REFETCH_MIN_INTERVAL_S) -> None:
        self._session = session
        self._url = f"{base_url.rstrip('/')}/webhooks/default/secret"
        self._key = api_key
        self._clock = clock
        self._tolerance_s = tolerance_s
        self._webhook: Webhook | None = None
        self._fetch = _Refetch(clock, refetch_min_interval_s)
        self.fetches = 0

    def __repr__(self) -> str:
        return f"ReplicateWebhookVerifier(secret={'kept' if self._webhook else 'none'})"

    async def verify(self, headers: Mapping[str, str], body: bytes) -> str:
        webhook_id = _header(headers, "webhook-id")
        signatures = _header(headers, "webhook-signature")
        if not webhook_id or not signatures:
            raise WebhookRejected("the webhook is not signed")
        stamp = _timestamp(_header(headers, "webhook-timestamp"), self._clock(),
                           self._tolerance_s)
        if self._webhook is None:
            await self._refresh(force=True)
        if self._verifies(webhook_id, stamp, body, signatures):
            return webhook_id
        if await self._refresh(force=False) and self._verifies(webhook_id, stamp, body,
                                                                signatures):
            return webhook_id  # the secret was rotated
        raise WebhookRejected("the signature does not verify")

    def _verifies(self, webhook_id: str, stamp: int, body: bytes, signatures: str) -> bool:
        """Standard Webhooks' HMAC (the library signs); the timestamp was checked against
        this host's clock already, so the library's own clock is not consulted."""
        if self._webhook is None:
            return False
        expected = self._webhook.sign(webhook_id, datetime.fromtimestamp(stamp, UTC),
                                      body).encode()
        return any(hmac.compare_digest(expected, given.encode())
                   for given in signatures.split(" ") if given)

    async def _refresh(self, *, force: bool) -> bool:
        return await self._fetch.run(self._fetch_secret, force=force,
                                     kept=lambda: self._webhook is not None)

    async def _fetch_secret(self) -> None:
        status, doc = await _get_json(self._session, self._url, "Replicate's webhook secret",
                                      {"Authorization": f"Bearer {self._key}"})
        self.fetches += 1
        if status in (401, 403):
            log.error("Replicate refused REPLICATE_API_KEY when the bot asked for its "
                      "webhook secret (HTTP %s)", status)
        secret = doc.get("key") if isinstance(doc, dict) else None
        if status != 200 or not isinstance(secret, str) or not secret:
            raise WebhookUnverifiable("Replicate's webhook secret is not available")
        try:
            self._webhook = Webhook(secret)
        except Exception:
            raise WebhookUnverifiable("Replicate's webhook secret is malformed") from None
