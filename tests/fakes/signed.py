"""How the emulators sign their webhooks, from the digest: fal.ai with ED25519 (public
keys served as a JWKS document), Replicate with Standard Webhooks (HMAC-SHA256 with the
account's ``whsec_`` secret). ``mode`` makes them misbehave for the tests: "valid",
"none" (no signature headers), "wrong" (signed with a key or secret nobody published),
"stale" (a correct signature ten minutes old) or "tampered" (signed, then one byte of
the body changed)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

MODES = ("valid", "none", "wrong", "stale", "tampered")
STALE_S = 600


def _stamp(mode: str) -> int:
    return int(time.time()) - (STALE_S if mode == "stale" else 0)


def _tamper(body: bytes, mode: str) -> bytes:
    """One byte changed, from the end, where the JSON still parses: only the signature can
    tell (a digit of a number, or a letter inside a string)."""
    if mode != "tampered" or not body:
        return body
    for at in range(len(body) - 1, -1, -1):
        byte = body[at:at + 1]
        if not byte.isalnum():
            continue
        swapped = (b"8" if byte == b"9" else bytes([byte[0] + 1])) if byte.isdigit() else \
            (b"y" if byte == b"z" else b"Y" if byte == b"Z" else bytes([byte[0] + 1]))
        changed = body[:at] + swapped + body[at + 1:]
        try:
            json.loads(changed)
        except ValueError:
            continue
        return changed
    return body[:-1] + (b" " if body[-1:] != b" " else b"\n")


class Ed25519Signer:
    """fal.ai's webhook signing keys: the newest signs, the JWKS lists the published."""

    def __init__(self) -> None:
        self.keys: list[tuple[str, Ed25519PrivateKey]] = []
        self.rotate()

    def rotate(self) -> None:
        """A new key with a new kid; the JWKS serves only the new key from now on."""
        self.keys = [(f"key-{secrets.token_hex(4)}", Ed25519PrivateKey.generate())]

    def jwks(self) -> dict[str, object]:
        keys = []
        for kid, key in self.keys:
            raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            keys.append({"kty": "OKP", "crv": "Ed25519", "kid": kid, "use": "sig",
                         "x": base64.urlsafe_b64encode(raw).decode().rstrip("=")})
        return {"keys": keys}

    def sign(self, request_id: str, user_id: str, body: bytes, mode: str
             ) -> tuple[bytes, dict[str, str]]:
        if mode == "none":
            return body, {"Content-Type": "application/json"}
        stamp = str(_stamp(mode))
        message = "\n".join((request_id, user_id, stamp,
                             hashlib.sha256(body).hexdigest())).encode()
        key = Ed25519PrivateKey.generate() if mode == "wrong" else self.keys[-1][1]
        return _tamper(body, mode), {
            "Content-Type": "application/json",
            "X-Fal-Webhook-Request-Id": request_id, "X-Fal-Webhook-User-Id": user_id,
            "X-Fal-Webhook-Timestamp": stamp,
            "X-Fal-Webhook-Signature": key.sign(message).hex(),
        }


class StandardSigner:
    """Replicate's account secret and Standard Webhooks' signature."""

    def __init__(self) -> None:
        self.secret = ""
        self.rotate()

    def rotate(self) -> None:
        self.secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()

    def sign(self, webhook_id: str, body: bytes, mode: str) -> tuple[bytes, dict[str, str]]:
        if mode == "none":
            return body, {"Content-Type": "application/json"}
        stamp = str(_stamp(mode))
        secret = os.urandom(32) if mode == "wrong" else base64.b64decode(
            self.secret.removeprefix("whsec_"))
        digest = hmac.new(secret, f"{webhook_id}.{stamp}.".encode() + body,
                          hashlib.sha256).digest()
        return _tamper(body, mode), {
            "Content-Type": "application/json", "webhook-id": webhook_id,
            "webhook-timestamp": stamp,
            "webhook-signature": "v1," + base64.b64encode(digest).decode(),
        }
