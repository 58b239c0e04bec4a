"""The fakes behind test_signing: a clock the tests move, and fal's JWKS document and
Replicate's webhook secret served on 127.0.0.1 by real keys made here."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import secrets
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from standardwebhooks.webhooks import Webhook

BODY = b'{"request_id": "req-1", "status": "OK", "payload": {"video": {"url": "u"}}}'
NOW = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def raw_x(public: Any) -> str:
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def flip_one_byte(body: bytes) -> bytes:
    return body[:20] + bytes([body[20] ^ 0x01]) + body[21:]


class KeyServer:
    """fal's JWKS document and Replicate's secret endpoint, on loopback; it remembers every
    secret it made or signed with, so that the tests can look for them where none may be."""

    def __init__(self) -> None:
        self.fal_keys = [("k1", Ed25519PrivateKey.generate())]
        self.secret = new_secret()
        self.api_key = "r8_" + secrets.token_hex(16)
        self.jwks_status = self.secret_status = 200
        self.jwks_text: str | None = None  # served instead of the document when set
        self.delay = 0.0
        self.pieces = 1  # the documents are written in this many pieces, 50 ms apart
        self.jwks_fetches = self.secret_fetches = 0
        self.jwks_auth: list[str | None] = []
        self.bearer: list[str | None] = []
        self.secrets: set[str] = {self.secret, self.api_key}
        self.base = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> KeyServer:
        app = web.Application()
        app.router.add_get("/.well-known/jwks.json", self.jwks)
        app.router.add_get("/v1/webhooks/default/secret", self.replicate_secret)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def rotate_secret(self) -> None:
        self.secret = new_secret()
        self.secrets.add(self.secret)

    async def jwks(self, request: web.Request) -> web.StreamResponse:
        self.jwks_fetches += 1
        self.jwks_auth.append(request.headers.get("Authorization"))
        await asyncio.sleep(self.delay)
        if self.jwks_status != 200:
            return web.json_response({"detail": "down"}, status=self.jwks_status)
        if self.jwks_text is not None:
            return await self.send(request, self.jwks_text.encode())
        keys: list[dict[str, str]] = [
            {"kty": "RSA", "n": "x", "e": "AQAB", "kid": "rsa"},
            {"kty": "OKP", "crv": "X25519", "x": raw_x(X25519PrivateKey.generate().public_key()),
             "kid": "x25519"},
            {"kty": "OKP", "crv": "Ed25519", "x": "not-a-key", "kid": "broken"},
        ]  # all passed over
        keys += [{"kty": "OKP", "crv": "Ed25519", "x": raw_x(key.public_key()), "kid": kid,
                  "use": "sig"} for kid, key in self.fal_keys]
        return await self.send(request, json.dumps({"keys": keys}).encode())

    async def replicate_secret(self, request: web.Request) -> web.Response:
        self.secret_fetches += 1
        self.bearer.append(request.headers.get("Authorization"))
        await asyncio.sleep(self.delay)
        if self.secret_status != 200:
            return web.json_response({"detail": "no"}, status=self.secret_status)
        return await self.send(request, json.dumps({"key": self.secret}).encode())

    async def send(self, request: web.Request, document: bytes) -> web.StreamResponse:
        """A 200 with the document, in ``pieces`` writes (chunked) with a pause between."""
        if self.pieces == 1:
            return web.Response(body=document, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        size = -(-len(document) // self.pieces)
        for start in range(0, len(document), size):
            await response.write(document[start:start + size])
            await asyncio.sleep(0.05)
        await response.write_eof()
        return response

    def fal_headers(self, body: bytes = BODY, *, stamp: float = NOW, key: Any = None,
                    request_id: str = "req-1") -> dict[str, str]:
        signer = key or self.fal_keys[-1][1]
        message = "\n".join((request_id, "user-9", str(int(stamp)),
                             hashlib.sha256(body).hexdigest())).encode()
        signature = signer.sign(message).hex()
        self.secrets.add(signature)
        return {"X-Fal-Webhook-Request-Id": request_id, "X-Fal-Webhook-User-Id": "user-9",
                "X-Fal-Webhook-Timestamp": str(int(stamp)),
                "X-Fal-Webhook-Signature": signature}

    def replicate_headers(self, body: bytes = BODY, *, stamp: float = NOW,
                          secret: str | None = None) -> dict[str, str]:
        signature = Webhook(secret or self.secret).sign(
            "msg_1", datetime.fromtimestamp(stamp, UTC), body)
        self.secrets.add(signature)
        return {"webhook-id": "msg_1", "webhook-timestamp": str(int(stamp)),
                "webhook-signature": f"v1,bm90IHRoaXMgb25l {signature}"}

    def assert_clean(self, *shown: object) -> None:
        for thing in shown:
            texts = [str(thing), repr(thing)]
            if isinstance(thing, BaseException):
                texts += [str(thing.args), str(thing.__cause__), str(thing.__context__)]
            for text in texts:
                leaked = [s for s in self.secrets if s in text]
                assert not leaked, f"a secret shows in {text!r}"
