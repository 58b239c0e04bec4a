"""Test helpers for driving the emulators with plain HTTP: a receiver on 127.0.0.1 that
keeps every webhook's raw body and headers (and can refuse the first ones) and serves
images, plus small image and MP4 helpers."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Self

import aiohttp
import av
from aiohttp import web
from PIL import Image


@dataclass
class Hook:
    name: str
    headers: dict[str, str]
    raw: bytes


class Loopback:
    """POST /hook/{name}: records the webhook and answers 200 (500 to the first
    ``fail_first``); GET /img/{name}: the bytes in ``images``."""

    def __init__(self) -> None:
        self.hooks: list[Hook] = []
        self.images: dict[str, bytes] = {}
        self.fail_first = 0
        self.root = ""
        self._runner: web.AppRunner | None = None

    def hook_url(self, name: str = "h") -> str:
        return f"{self.root}/hook/{name}"

    def image_url(self, name: str, data: bytes | None = None) -> str:
        if data is not None:
            self.images[name] = data
        return f"{self.root}/img/{name}"

    async def _hook(self, request: web.Request) -> web.Response:
        self.hooks.append(Hook(request.match_info["name"], dict(request.headers),
                               await request.read()))
        if self.fail_first > 0:
            self.fail_first -= 1
            return web.Response(status=500)
        return web.json_response({"ok": True})

    async def _image(self, request: web.Request) -> web.Response:
        data = self.images.get(request.match_info["name"])
        return web.Response(body=data) if data is not None else web.Response(status=404)

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/hook/{name}", self._hook)
        app.router.add_get("/img/{name}", self._image)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.root = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def call(http: aiohttp.ClientSession, method: str, url: str,
               **kw: Any) -> tuple[int, Any, Any]:
    """(status, JSON body or None, headers) of one request."""
    async with http.request(method, url, **kw) as resp:
        raw = await resp.read()
        try:
            body = await resp.json(content_type=None) if raw else None
        except ValueError:
            body = None
        return resp.status, body, resp.headers


async def until(predicate: Any, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "not in time"
        await asyncio.sleep(0.02)


def with_images(rx: Loopback, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with each "@WxH" made an image URL on ``rx`` (a PNG of that size) and each
    "data@WxH" a data URI of one, inside lists too."""
    def one(value: Any) -> Any:
        if isinstance(value, list):
            return [one(v) for v in value]
        if isinstance(value, str) and value.startswith(("@", "data@")):
            kind, size = value.split("@")
            width, height = map(int, size.split("x"))
            data = image_bytes(width, height)
            if kind == "data":
                return f"data:image/png;base64,{base64.b64encode(data).decode()}"
            return rx.image_url(size, data)
        return value
    return {key: one(value) for key, value in body.items()}


def image_bytes(width: int, height: int, fmt: str = "PNG", **save: Any) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 80, 40)).save(buf, fmt, **save)
    return buf.getvalue()


def mp4_facts(data: bytes) -> tuple[float, int, int]:
    """(seconds, width, height) of an MP4, read by decoding it."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        rate = stream.average_rate or Fraction(4)
    return len(frames) / float(rate), frames[0].width, frames[0].height
