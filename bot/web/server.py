"""The bot's small aiohttp server: provider callbacks, the health check and fitted images.

``POST /callbacks/{provider}/{job_token}`` answers at once; the work happens afterwards
in whoever owns ``on_callback`` (it only has to say whether the token is known).
``GET /healthz`` reports the database and the bot. ``GET /images/{secret}`` serves a
fitted source image to a provider that fetches images by URL.

The server faces the internet, so it cannot be starved of file descriptors by clients
that connect and never finish a request (aiohttp itself sets no deadline for request
headers): at most ``max_connections`` are open at once, each must send every request's
headers within ``header_timeout_s`` (of connecting, or of the end of the previous
response on a kept-alive connection) and a callback body within ``BODY_TIMEOUT_S``, and
a new connection arriving at the cap displaces the oldest one waiting for headers (a new
one, or a kept-alive one between requests); one in the middle of a request (its body
being read, its response being written) is never displaced (``bot.web.guard``). At
start the process's soft descriptor limit is raised toward the hard limit.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from bot.providers.errors import WebhookRejected, WebhookUnverifiable
from bot.store import DatabaseUnavailable, Store
from bot.web.guard import ConnectionGuard, raise_open_files_limit

log = logging.getLogger(__name__)

# (provider, job token, raw body, headers) -> whether the token names a job.
CallbackHandler = Callable[[str, str, bytes, Mapping[str, str]], Awaitable[bool]]
HealthCheck = Callable[[], Awaitable[dict[str, Any]]]

MAX_CALLBACK_BYTES = 64 * 1024
IMAGE_TTL_S = 6 * 3600
HEADER_TIMEOUT_S = 10.0  # for a request's headers, from connecting or the previous response
BODY_TIMEOUT_S = 10.0  # to send a callback body (64 KiB at most)
KEEPALIVE_S = 15.0  # aiohttp's own limit for an idle keep-alive connection
MAX_CONNECTIONS = 256  # open at once; providers send a handful of callbacks a minute


class ImageStore(Protocol):
    """Where the images a provider fetches by URL are kept while it may fetch them."""

    async def put(self, name: str, data: bytes, mime: str, job_id: str | None) -> None: ...

    async def get(self, name: str) -> tuple[bytes, str] | None: ...


@dataclass
class _ShelvedImage:
    data: bytes
    mime: str
    expires_at: float


class ImageShelf:
    """In this process's memory (the command line's one job); bounded in time and count.
    The bot keeps them in its database instead, so any process serves them."""

    def __init__(self, ttl_s: float = IMAGE_TTL_S, max_items: int = 100) -> None:
        self._items: dict[str, _ShelvedImage] = {}
        self._ttl_s, self._max_items = ttl_s, max_items

    async def put(self, name: str, data: bytes, mime: str, job_id: str | None) -> None:
        self._expire()
        while len(self._items) >= self._max_items:
            del self._items[next(iter(self._items))]
        self._items[name] = _ShelvedImage(data, mime, time.time() + self._ttl_s)

    async def get(self, name: str) -> tuple[bytes, str] | None:
        self._expire()
        item = self._items.get(name)
        return None if item is None else (item.data, item.mime)

    def _expire(self) -> None:
        now = time.time()
        for key in [k for k, v in self._items.items() if v.expires_at < now]:
            del self._items[key]


class StoredImages:
    """In the database: any process serves them, and they survive a restart."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def put(self, name: str, data: bytes, mime: str, job_id: str | None) -> None:
        await self._store.put_image(name, data, mime, job_id)

    async def get(self, name: str) -> tuple[bytes, str] | None:
        return await self._store.get_image(name)


class WebhookServer:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        on_callback: CallbackHandler,
        health: HealthCheck,
        public_base_url: str | None = None,
        images: ImageStore | None = None,
        header_timeout_s: float = HEADER_TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.host, self._port = host, port
        self.public_base_url = public_base_url
        self._on_callback = on_callback
        self._health = health
        self.images: ImageStore = images if images is not None else ImageShelf()
        self._header_timeout_s = header_timeout_s
        self._max_connections = max_connections
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self.guard: ConnectionGuard | None = None
        self.app = web.Application(client_max_size=MAX_CALLBACK_BYTES)
        self.app.on_response_prepare.append(self._responding)
        self.app.router.add_post("/callbacks/{provider}/{token}", self._callback)
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/images/{name}", self._image)

    @property
    def port(self) -> int:
        return self._port

    async def _responding(self, request: web.Request, response: web.StreamResponse) -> None:
        """A response starts: its connection is busy until it is written (``ConnectionGuard``).
        Every response the application makes passes here, those aiohttp makes before any
        handler or middleware runs (an unknown ``Expect``, 417) included."""
        if self.guard is not None:
            self.guard.responding(request)

    def callback_url(self, provider: str, token: str) -> str | None:
        if not self.public_base_url:
            return None
        return f"{self.public_base_url}/callbacks/{provider}/{token}"

    async def image_url(self, data: bytes, mime: str, job_id: str | None = None) -> str | None:
        """Keep an image at an unguessable path; the public URL a provider fetches it from."""
        if not self.public_base_url:
            return None
        ext = {"image/png": "png", "image/webp": "webp"}.get(mime, "jpg")
        name = f"{secrets.token_urlsafe(24)}.{ext}"
        await self.images.put(name, data, mime, job_id)
        return f"{self.public_base_url}/images/{name}"

    async def start(self) -> None:
        raise_open_files_limit()
        self._runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=2.0,
            keepalive_timeout=KEEPALIVE_S,
        )
        await self._runner.setup()
        assert self._runner.server is not None
        self.guard = ConnectionGuard(self._runner.server, limit=self._max_connections,
                                      header_timeout_s=self._header_timeout_s)
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(self.guard, self.host, self._port)
        sockets = self._listener.sockets
        if sockets:
            self._port = int(sockets[0].getsockname()[1])
        log.info("webhook server listening on %s:%d", self.host, self._port)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()  # accept nothing more
        if self._runner is not None:
            await self._runner.cleanup()  # finishes and closes aiohttp's connections
            self._runner = None
        if self.guard is not None:
            self.guard.close_all()
        if self._listener is not None:
            await self._listener.wait_closed()
            self._listener = None

    async def _callback(self, request: web.Request) -> web.Response:
        provider = request.match_info["provider"]
        token = request.match_info["token"]
        if request.content_length is not None and request.content_length > MAX_CALLBACK_BYTES:
            return web.json_response({"error": "body too large"}, status=413)
        try:
            async with asyncio.timeout(BODY_TIMEOUT_S):
                body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.json_response({"error": "body too large"}, status=413)
        except TimeoutError:
            return web.json_response({"error": "body too slow"}, status=408)
        try:
            known = await self._on_callback(provider, token, body, request.headers)
        except WebhookRejected as exc:  # unsigned, wrongly signed, stale or altered
            log.warning("refused a webhook for provider %s: %s", provider, exc.reason)
            return web.json_response({"error": exc.reason}, status=exc.status)
        except WebhookUnverifiable:
            log.warning("could not check a webhook for provider %s: no keys", provider)
            return web.json_response({"error": "cannot verify now"}, status=503)
        except DatabaseUnavailable as exc:  # the provider retries; the poll is the net
            log.warning("callback for provider %s not taken: %s", provider, exc.reason)
            return web.json_response({"error": "unavailable"}, status=503)
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
        ok = all(v for v in checks.values() if isinstance(v, bool))
        return web.json_response({"ok": ok, **checks}, status=200 if ok else 503)

    async def _image(self, request: web.Request) -> web.Response:
        item = await self.images.get(request.match_info["name"])
        if item is None:
            raise web.HTTPNotFound()
        data, mime = item
        return web.Response(body=data, content_type=mime)
