"""The bot's small aiohttp server: provider callbacks, the health check and fitted images.

``POST /callbacks/{provider}/{job_token}`` answers at once; the work happens afterwards
in whoever owns ``on_callback`` (it only has to say whether the token is known).
``GET /healthz`` reports the database and the bot. ``GET /images/{secret}`` serves a
fitted source image to a provider that fetches images by URL.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

log = logging.getLogger(__name__)

CallbackHandler = Callable[[str, str, bytes], Awaitable[bool]]
HealthCheck = Callable[[], Awaitable[dict[str, bool]]]

MAX_CALLBACK_BYTES = 64 * 1024
IMAGE_TTL_S = 6 * 3600


@dataclass
class _ShelvedImage:
    data: bytes
    mime: str
    expires_at: float


class ImageShelf:
    """Images served at unguessable paths for as long as a provider may fetch them."""

    def __init__(self) -> None:
        self._items: dict[str, _ShelvedImage] = {}

    def put(self, data: bytes, mime: str, ttl_s: float = IMAGE_TTL_S) -> str:
        self._expire()
        ext = {"image/png": "png", "image/webp": "webp"}.get(mime, "jpg")
        name = f"{secrets.token_urlsafe(24)}.{ext}"
        self._items[name] = _ShelvedImage(data, mime, time.time() + ttl_s)
        return name

    def get(self, name: str) -> _ShelvedImage | None:
        self._expire()
        return self._items.get(name)

    def _expire(self) -> None:
        now = time.time()
        for key in [k for k, v in self._items.items() if v.expires_at < now]:
            del self._items[key]


class WebhookServer:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        on_callback: CallbackHandler,
        health: HealthCheck,
        public_base_url: str | None = None,
    ) -> None:
        self.host, self._port = host, port
        self.public_base_url = public_base_url
        self._on_callback = on_callback
        self._health = health
        self.images = ImageShelf()
        self._runner: web.AppRunner | None = None
        self.app = web.Application(client_max_size=MAX_CALLBACK_BYTES)
        self.app.router.add_post("/callbacks/{provider}/{token}", self._callback)
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/images/{name}", self._image)

    @property
    def port(self) -> int:
        return self._port

    def callback_url(self, provider: str, token: str) -> str | None:
        if not self.public_base_url:
            return None
        return f"{self.public_base_url}/callbacks/{provider}/{token}"

    def image_url(self, data: bytes, mime: str) -> str | None:
        """Shelve an image and return the public URL a provider can fetch it from."""
        if not self.public_base_url:
            return None
        return f"{self.public_base_url}/images/{self.images.put(data, mime)}"

    async def start(self) -> None:
        self._runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=2.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._port)
        await site.start()
        addresses = self._runner.addresses
        if addresses:
            self._port = int(addresses[0][1])
        log.info("webhook server listening on %s:%d", self.host, self._port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _callback(self, request: web.Request) -> web.Response:
        provider = request.match_info["provider"]
        token = request.match_info["token"]
        if request.content_length is not None and request.content_length > MAX_CALLBACK_BYTES:
            return web.json_response({"error": "body too large"}, status=413)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.json_response({"error": "body too large"}, status=413)
        try:
            known = await self._on_callback(provider, token, body)
        except Exception:
            log.exception("callback handler failed for provider %s", provider)
            return web.json_response({"error": "internal error"}, status=500)
        if not known:
            return web.json_response({"error": "unknown job"}, status=404)
        return web.json_response({"ok": True})

    async def _healthz(self, request: web.Request) -> web.Response:
        try:
            checks = await self._health()
        except Exception:
            log.exception("health check failed")
            checks = {"database": False}
        ok = all(checks.values())
        return web.json_response({"ok": ok, **checks}, status=200 if ok else 503)

    async def _image(self, request: web.Request) -> web.Response:
        item = self.images.get(request.match_info["name"])
        if item is None:
            raise web.HTTPNotFound()
        return web.Response(body=item.data, content_type=item.mime)
