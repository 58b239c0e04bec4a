"""Checking the signed webhooks of fal.ai and Replicate, over the raw body, before anything
reads it.

fal.ai signs with ED25519: the signed bytes are ``request_id + "\\n" + user_id + "\\n" +
timestamp + "\\n" + sha256(body).hexdigest()``, the signature is hex in
``X-Fal-Webhook-Signature``, and the public keys are a JWKS document at ``FAL_JWKS_URL``
(fetched without credentials, kept up to a day). Replicate follows Standard Webhooks:
HMAC-SHA256 over ``id.timestamp.body`` with the account's secret from
``GET /webhooks/default/secret`` (kept until a webhook no longer verifies with it).

When the kept keys do not verify a webhook (a rotation), they are fetched once more and the
check repeated; but a fetch is attempted at most once per ``refetch_min_interval_s``,
whether it worked or not, so neither a flood of forged webhooks nor an outage at the
provider makes more than one request a minute. Concurrent checks wait for one fetch and
all use its result. Both refuse a webhook whose timestamp is more than five minutes from
this host's clock, before any fetch.

What refuses is ``WebhookRejected`` (answered with a 4xx, nothing changes); keys that
cannot be fetched make ``WebhookUnverifiable`` (answered 503, so the provider retries).
No key, secret, signature or API key is ever logged, nor put in an exception or a repr.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import aiohttp
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from standardwebhooks.webhooks import Webhook

from bot.providers.errors import WebhookRejected, WebhookUnverifiable

__all__ = [
    "FalWebhookVerifier",
    "ReplicateWebhookVerifier",
    "WebhookRejected",
    "WebhookUnverifiable",
]

log = logging.getLogger(__name__)

TOLERANCE_S = 300.0  # a webhook older (or newer) than this is refused
REFETCH_MIN_INTERVAL_S = 60.0
JWKS_CACHE_S = 24 * 3600.0
FETCH_TIMEOUT_S = 10.0
MAX_DOCUMENT_BYTES = 64 * 1024  # a JWKS or a secret is a few hundred bytes
ED25519_SIGNATURE_BYTES = 64

Clock = Callable[[], float]
T = TypeVar("T")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value whatever its case (aiohttp's headers, or a plain dict)."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value.strip() if isinstance(value, str) else None


def _timestamp(text: str, now: float, tolerance_s: float) -> int:
    """The signature's Unix time, in seconds; refused when malformed or too far from now."""
    if not (text.isascii() and text.isdigit() and len(text) <= 12):
        raise WebhookRejected("the signature timestamp is not a whole number", status=400)
    stamp = int(text)
    if abs(now - stamp) > tolerance_s:
        raise WebhookRejected("the signature is too old (or from the future)", status=400)
    return stamp


@dataclass(frozen=True)
class _Kept(Generic[T]):
    """What a fetch brought, and its number: a check that saw number n and failed asks for
    a fetch only if nobody has fetched since."""

    value: T | None
    generation: int


class _KeyCache(Generic[T]):
    """Key material fetched on demand: one fetch at a time, an attempt at most once per
    ``interval_s`` (a failed one too), a success kept for ``max_age_s`` (None: until a
    webhook no longer verifies with it)."""

    def __init__(self, fetch: Callable[[], Awaitable[T]], what: str, clock: Clock,
                 interval_s: float, max_age_s: float | None) -> None:
        self._fetch = fetch
        self._what = what
        self._clock = clock
        self._interval_s = interval_s
        self._max_age_s = max_age_s
        self._lock = asyncio.Lock()
        self._value: T | None = None
        self._got_at = 0.0
        self._tried_at: float | None = None
        self._failed = False
        self._generation = 0

    @property
    def held(self) -> bool:
        return self._value is not None

    def current(self) -> _Kept[T]:
        """The kept value if it is still fresh (else None), with its generation."""
        fresh = self._value is not None and (
            self._max_age_s is None or self._clock() - self._got_at < self._max_age_s)
        return _Kept(self._value if fresh else None, self._generation)

    async def renew(self, seen: _Kept[T]) -> T | None:
        """After ``seen`` did not verify a webhook (or there was none): a newer value to try,
        fetched now unless a concurrent check just did; None when there is nothing newer
        and no fetch is allowed yet. Raises WebhookUnverifiable when a fetch fails, and
        while no fetch is allowed yet after a failed one (or nothing fresh is kept)."""
        async with self._lock:
            if self._generation != seen.generation:
                return self.current().value  # another check fetched while this one waited
            if self._tried_at is not None and self._clock() - self._tried_at < self._interval_s:
                if self._failed or self.current().value is None:
                    raise WebhookUnverifiable(f"{self._what} could not be fetched just now")
                return None
            self._tried_at = self._clock()
            self._failed = True
            value = await self._fetch()
            self._value, self._got_at, self._failed = value, self._clock(), False
            self._generation += 1
            return value


async def _get_json(session: aiohttp.ClientSession, url: str, what: str, *,
                    headers: Mapping[str, str] | None = None,
                    allow_redirects: bool = True) -> tuple[int, Any]:
    """GET a small JSON document: (status, parsed body, or None unless the status is 200).
    A network failure, a timeout or a body that is not JSON is WebhookUnverifiable."""
    try:
        async with session.get(url, headers=dict(headers or {}),
                               allow_redirects=allow_redirects,
                               timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)) as resp:
            if resp.status != 200:
                return resp.status, None
            raw = b""  # read(n) gives what has arrived so far: read to the end, capped
            while chunk := await resp.content.read(MAX_DOCUMENT_BYTES + 1 - len(raw)):
                raw += chunk
                if len(raw) > MAX_DOCUMENT_BYTES:
                    raise ValueError("too large")
            return resp.status, json.loads(raw)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        log.warning("could not fetch %s (%s)", what, type(exc).__name__)
        raise WebhookUnverifiable(f"could not fetch {what}") from None


class FalWebhookVerifier:
    """fal.ai's ED25519 webhook signatures, with the public keys of its JWKS document."""

    def __init__(self, session: aiohttp.ClientSession, jwks_url: str, *,
                 clock: Clock = time.time, tolerance_s: float = TOLERANCE_S,
                 refetch_min_interval_s: float = REFETCH_MIN_INTERVAL_S,
                 cache_s: float = JWKS_CACHE_S) -> None:
        self._session = session
        self._jwks_url = jwks_url
        self._clock = clock
        self._tolerance_s = tolerance_s
        self._keys: _KeyCache[tuple[Ed25519PublicKey, ...]] = _KeyCache(
            self._fetch_keys, "fal's webhook keys", clock, refetch_min_interval_s, cache_s)

    def __repr__(self) -> str:
        kept = self._keys.current().value
        return f"FalWebhookVerifier(keys={len(kept) if kept else 0})"

    async def verify(self, headers: Mapping[str, str], body: bytes) -> str:
        """Check the raw body's signature; return the verified request id
        (X-Fal-Webhook-Request-Id). Raise WebhookRejected / WebhookUnverifiable."""
        request_id = _header(headers, "X-Fal-Webhook-Request-Id")
        user_id = _header(headers, "X-Fal-Webhook-User-Id")
        stamp = _header(headers, "X-Fal-Webhook-Timestamp")
        signature_hex = _header(headers, "X-Fal-Webhook-Signature")
        if not (request_id and user_id and stamp and signature_hex):
            raise WebhookRejected("the webhook is not signed")
        if "\n" in request_id or "\n" in user_id:  # would shift the signed lines
            raise WebhookRejected("a signed header spans lines", status=400)
        _timestamp(stamp, self._clock(), self._tolerance_s)
        try:
            signature = bytes.fromhex(signature_hex)
        except ValueError:
            raise WebhookRejected("the signature is not hex", status=400) from None
        if len(signature) != ED25519_SIGNATURE_BYTES:
            raise WebhookRejected("the signature is not an ED25519 signature", status=400)
        message = "\n".join(
            (request_id, user_id, stamp, hashlib.sha256(body).hexdigest())).encode()
        kept = self._keys.current()
        if kept.value is not None and _verifies(kept.value, signature, message):
            return request_id
        newer = await self._keys.renew(kept)  # a key published since (a rotation)
        if newer is not None and _verifies(newer, signature, message):
            return request_id
        raise WebhookRejected("the signature does not verify")

    async def _fetch_keys(self) -> tuple[Ed25519PublicKey, ...]:
        status, doc = await _get_json(self._session, self._jwks_url, "fal's webhook keys")
        if status != 200:
            log.warning("FAL_JWKS_URL answered HTTP %s: no keys to check fal's webhooks",
                        status)
            raise WebhookUnverifiable("fal's webhook keys are not available")
        keys = _ed25519_keys(doc)
        if not keys:
            log.warning("FAL_JWKS_URL lists no ED25519 key: fal's webhooks cannot be checked")
            raise WebhookUnverifiable("fal's webhook keys are not available")
        log.info("fetched %d webhook key(s) from FAL_JWKS_URL", len(keys))
        return keys


def _verifies(keys: tuple[Ed25519PublicKey, ...], signature: bytes, message: bytes) -> bool:
    for key in keys:
        try:
            key.verify(signature, message)
        except InvalidSignature:
            continue
        return True
    return False


def _ed25519_keys(doc: Any) -> tuple[Ed25519PublicKey, ...]:
    """The document's OKP/Ed25519 keys; any other entry is passed over."""
    entries = doc.get("keys") if isinstance(doc, dict) else None
    keys: list[Ed25519PublicKey] = []
    for jwk in entries if isinstance(entries, list) else ():
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
    return tuple(keys)


class ReplicateWebhookVerifier:
    """Replicate's Standard Webhooks signatures, with the account's signing secret.

    The ``standardwebhooks`` library computes the signature (``Webhook(secret).sign``: the
    secret's decoding and the HMAC-SHA256 over ``id.timestamp.body``), but its ``verify``
    is not called: it reads the time from ``datetime.now`` with no way to inject a clock.
    So the timestamp is checked here, against ``clock`` with ``tolerance_s`` (five minutes
    both ways by default, the library's own rule), and the library's signature is compared
    in constant time with each ``v1,`` entry of the header, as its ``verify`` does.
    """

    def __init__(self, session: aiohttp.ClientSession, base_url: str, api_key: str, *,
                 clock: Clock = time.time, tolerance_s: float = TOLERANCE_S,
                 refetch_min_interval_s: float = REFETCH_MIN_INTERVAL_S) -> None:
        self._session = session
        self._url = f"{base_url.rstrip('/')}/webhooks/default/secret"
        self._api_key = api_key
        self._clock = clock
        self._tolerance_s = tolerance_s
        self._secret: _KeyCache[Webhook] = _KeyCache(
            self._fetch_secret, "Replicate's webhook secret", clock, refetch_min_interval_s,
            None)

    def __repr__(self) -> str:
        return f"ReplicateWebhookVerifier(secret={'kept' if self._secret.held else 'none'})"

    async def verify(self, headers: Mapping[str, str], body: bytes) -> str:
        """Check the Standard Webhooks signature; return the webhook-id. Raise
        WebhookRejected / WebhookUnverifiable."""
        webhook_id = _header(headers, "webhook-id")
        stamp = _header(headers, "webhook-timestamp")
        signatures = _header(headers, "webhook-signature")
        if not (webhook_id and stamp and signatures):
            raise WebhookRejected("the webhook is not signed")
        when = datetime.fromtimestamp(_timestamp(stamp, self._clock(), self._tolerance_s), UTC)
        given = [s.encode() for s in signatures.split() if s.startswith("v1,")]
        if not given:
            raise WebhookRejected("the webhook has no v1 signature", status=400)
        kept = self._secret.current()
        if kept.value is not None and _matches(kept.value, webhook_id, when, body, given):
            return webhook_id
        newer = await self._secret.renew(kept)  # none kept yet, or the secret was rotated
        if newer is not None and _matches(newer, webhook_id, when, body, given):
            return webhook_id
        raise WebhookRejected("the signature does not verify")

    async def _fetch_secret(self) -> Webhook:
        status, doc = await _get_json(
            self._session, self._url, "Replicate's webhook secret",
            headers={"Authorization": f"Bearer {self._api_key}"},
            allow_redirects=False)  # the API key goes to this URL only
        if status in (401, 403):
            log.error("Replicate refused REPLICATE_API_KEY (HTTP %s) when asked for the "
                      "webhook secret: its webhooks cannot be checked until the key is "
                      "fixed", status)
            raise WebhookUnverifiable("Replicate refused the API key")
        secret = doc.get("key") if isinstance(doc, dict) else None
        if status != 200 or not isinstance(secret, str) or not secret:
            log.warning("Replicate's webhook secret endpoint answered HTTP %s without a "
                        "secret", status)
            raise WebhookUnverifiable("Replicate's webhook secret is not available")
        try:
            webhook = Webhook(secret)
        except Exception:  # not base64, or empty: the library's errors vary by version
            log.warning("Replicate's webhook secret is malformed")
            raise WebhookUnverifiable("Replicate's webhook secret is malformed") from None
        log.info("fetched Replicate's webhook secret")
        return webhook


def _matches(webhook: Webhook, webhook_id: str, when: datetime, body: bytes,
             given: list[bytes]) -> bool:
    expected = webhook.sign(webhook_id, when, body).encode()
    return any(hmac.compare_digest(expected, entry) for entry in given)
